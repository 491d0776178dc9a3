#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding real installed
# Node.js packages, for the npm collector's tests:
# - Debian's own node-* packages (from the apt archive, `dpkg-deb -x`), with
#   dpkg status stanzas and file lists made from the .debs' own control data,
#   so dpkg ownership of /usr/share/nodejs/* is what dpkg would record;
# - /app/node_modules made by a real `npm install --offline` of tarballs that
#   `npm pack` makes from the npm installation on this machine (the registry is
#   not needed): npm itself (its bundleDependencies give nested node_modules,
#   two levels deep, and scoped @npmcli/... packages), semver, ms and the
#   scoped @npmcli/node-gyp at the top;
# - a global prefix, /usr/local/lib/node_modules, from `npm install -g`;
# - /srv/lock-only: a package.json and package-lock.json with no node_modules
#   (a lock file alone is not an installed package).
# Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/node-apps"
stamp="$root.ok"
debs="node-semver node-ms node-debug node-lru-cache node-yallist"
want="v1 $debs"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  echo "$root"; exit 0
fi
for tool in npm node dpkg-deb apt-get; do
  command -v "$tool" >/dev/null || { echo "node-fixture: $tool is not installed" >&2; exit 1; }
done
# npm's own installation, whose bundled dependencies are the packages installed below.
npmdir="$(npm root -g)/npm"
[[ -f "$npmdir/node_modules/semver/package.json" ]] || {
  echo "node-fixture: npm at $npmdir has no bundled node_modules (a distribution's split npm?)" >&2; exit 1; }
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.node-lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$root/var/lib/dpkg/info"
: > "$root/var/lib/dpkg/status"

echo "node-fixture: apt-get download $debs" >&2
# shellcheck disable=SC2086  # $debs is a list of packages
(cd "$work" && { apt-get download -q $debs >&2 || { apt-get update -qq >&2 && apt-get download -q $debs >&2; }; })
for deb in "$work"/*.deb; do
  dpkg-deb -x "$deb" "$root"
  name="$(dpkg-deb -f "$deb" Package)"
  { echo "Package: $name"; echo "Status: install ok installed"
    dpkg-deb -f "$deb" | grep -v '^Package:'; echo; } >> "$root/var/lib/dpkg/status"
  # The file list dpkg keeps: every path the package ships, "/." first.
  dpkg-deb --fsys-tarfile "$deb" | tar -t | sed -e 's|^\./|/|' -e 's|/$||' -e 's|^$|/.|' \
    > "$root/var/lib/dpkg/info/$name.list"
done

echo "node-fixture: npm pack from $npmdir; npm install --offline into /app" >&2
(cd "$work" && npm pack -q --ignore-scripts "$npmdir" "$npmdir/node_modules/semver" "$npmdir/node_modules/ms" \
  "$npmdir/node_modules/@npmcli/node-gyp" >/dev/null)
mkdir -p "$root/app" "$root/srv/lock-only"
echo '{"name":"fixture-app","version":"1.0.0","private":true}' > "$root/app/package.json"
(cd "$root/app" && npm install -q --offline --ignore-scripts --no-audit --no-fund \
  "$work"/npm-*.tgz "$work"/semver-*.tgz "$work"/ms-*.tgz "$work"/npmcli-node-gyp-*.tgz >&2)
cp "$root/app/package.json" "$root/app/package-lock.json" "$root/srv/lock-only/"
npm install -q -g --offline --ignore-scripts --no-audit --no-fund --prefix "$root/usr/local" \
  "$work"/semver-*.tgz >&2
printf '%s' "$want" > "$stamp"
echo "$root"
