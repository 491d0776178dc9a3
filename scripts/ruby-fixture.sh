#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding real installed
# Ruby gems, for the gem collector's tests:
# - Debian's own ruby packages (from the apt archive, `dpkg-deb -x`), with dpkg
#   status stanzas and file lists made from the .debs' own control data:
#   libruby3.1 (default gems under specifications/default, bundled gems),
#   rake, ruby-rack, ruby-minitest, ruby-webrick (rubygems-integration/all) and
#   ruby-json (a native gem under /usr/lib/<triplet>/rubygems-integration);
# - gems installed by RubyGems itself: webrick and rack, each built with
#   `gem build` from the Debian package's gem directory and installed with
#   `gem install --local`: webrick into /usr/local/bundle (the official ruby
#   image's GEM_HOME), rack into /app/vendor/bundle/ruby/3.1.0 (bundler's
#   vendored path).
# Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/ruby-gems"
stamp="$root.ok"
debs="libruby3.1 rake ruby-rack ruby-minitest ruby-webrick ruby-json"
want="v1 $debs"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$root"; exit 0
fi
for tool in gem dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "ruby-fixture: $tool is not installed (scripts/install-test-deps.sh installs ruby)" >&2; exit 1; }
done
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.ruby-lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/var/lib/dpkg/info" "$root/etc"
: > "$root/var/lib/dpkg/status"
echo 'ID=debian' > "$root/etc/os-release"

echo "ruby-fixture: apt-get download $debs" >&2
# shellcheck disable=SC2086  # $debs is a list of packages
(cd "$work" && { apt-get download -q $debs >&2 || { apt-get update -qq >&2 && apt-get download -q $debs >&2; }; })
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$root"
  name="$(dpkg-deb -f "$deb" Package)"
  arch="$(dpkg-deb -f "$deb" Architecture)"
  # Multi-Arch: same packages' lists carry the architecture, as dpkg names them.
  list="$name"
  [[ "$(dpkg-deb -f "$deb" Multi-Arch)" == "same" ]] && list="$name:$arch"
  { echo "Package: $name"; echo "Status: install ok installed"
    dpkg-deb -f "$deb" | grep -v '^Package:'; echo; } >> "$root/var/lib/dpkg/status"
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' \
    > "$root/var/lib/dpkg/info/$list.list"
done

echo "ruby-fixture: gem build and gem install --local" >&2
integ="$root/usr/share/rubygems-integration/all"
for g in webrick-1.8.1 rack-2.2.22; do
  cp -r "$integ/gems/$g" "$work/$g"
  (cd "$work/$g" && gem build -q "$integ/specifications/$g.gemspec" >&2)
done
gem install -q --local --ignore-dependencies --no-document --install-dir "$root/usr/local/bundle" \
  "$work/webrick-1.8.1/webrick-1.8.1.gem" >&2
gem install -q --local --ignore-dependencies --no-document --install-dir "$root/app/vendor/bundle/ruby/3.1.0" \
  "$work/rack-2.2.22/rack-2.2.22.gem" >&2
printf '%s' "$want" > "$stamp"
echo "$root"
