#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding PHP packages
# that Composer itself installed, for the composer collector's tests.
# packagist.org is not reachable here, so the package comes from Debian:
# psr/log 1.1.4 as Debian's php-psr-log packages it, from the upstream source
# tarball in Debian's archive (its own composer.json, as published), served to
# Debian's composer through a path repository; `composer install` writes
# /var/www/html/vendor/composer/installed.json. Debian's php-psr-log .deb is
# unpacked too (/usr/share/php/Psr/Log, owned by dpkg), which Composer never
# records: not a Composer install.
# Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/php-apps"
stamp="$root.ok"
orig="php-psr-log_1.1.4.orig.tar.gz"
want="v1 $orig $(composer --version 2>/dev/null | head -1 || echo no-composer)"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$root"; exit 0
fi
for tool in composer php curl dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "php-fixture: $tool is not installed (scripts/install-test-deps.sh installs composer)" >&2; exit 1; }
done
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.php-lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/etc" "$root/var/www/html"
: > "$root/var/lib/dpkg/status"
echo 'ID=debian' > "$root/etc/os-release"
(cd "$work" && { apt-get download -q php-psr-log >&2 || { apt-get update -qq >&2 && apt-get download -q php-psr-log >&2; }; })
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$root"
  name="$(dpkg-deb -f "$deb" Package)"
  { echo "Package: $name"; echo "Status: install ok installed"
    dpkg-deb -f "$deb" | grep -v '^Package:'; echo; } >> "$root/var/lib/dpkg/status"
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' \
    > "$root/var/lib/dpkg/info/$name.list"
done
echo "php-fixture: $orig from Debian's archive; composer install" >&2
curl -fsS -o "$work/$orig" "http://deb.debian.org/debian/pool/main/p/php-psr-log/$orig"
tar -C "$work" -xzf "$work/$orig"
cat > "$root/var/www/html/composer.json" <<JSON
{
    "name": "periscope/fixture-site",
    "require": { "psr/log": "1.1.4" },
    "repositories": [
        { "type": "path", "url": "$work/log-1.1.4", "options": { "symlink": false, "versions": { "psr/log": "1.1.4" } } },
        { "packagist.org": false }
    ]
}
JSON
(cd "$root/var/www/html" && COMPOSER_HOME="$work/home" COMPOSER_ALLOW_SUPERUSER=1 \
  composer install -q --no-interaction --no-progress >&2)
printf '%s' "$want" > "$stamp"
echo "$root"
