#!/usr/bin/env bash
# Build (once) and print the path of a minimal Debian bookworm root filesystem
# for the tests: `debootstrap --variant=minbase bookworm`, plus a few packages
# that exercise epochs, multi-arch names and source versions.
# The result is cached outside the clone; a stamp file marks a complete build,
# so an interrupted run is redone rather than half-used.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/bookworm-minbase"
stamp="$root.ok"
extra="${PERISCOPE_ROOTFS_EXTRA:-libc-bin,zlib1g,libcap2}"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$extra" ]]; then
  echo "$root"; exit 0
fi
if ! command -v debootstrap >/dev/null; then
  echo "debian-rootfs: installing debootstrap" >&2
  apt-get update -qq >&2 && apt-get install -y -qq debootstrap >&2
fi
mkdir -p "$cache/rootfs"
lock="$cache/rootfs/.lock"
exec 9>"$lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$extra" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
mirror="${PERISCOPE_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
echo "debian-rootfs: debootstrap --variant=minbase bookworm into $root" >&2
debootstrap --variant=minbase --include="$extra" bookworm "$root" "$mirror" >&2
rm -rf "$root/var/cache/apt/archives/"*.deb
printf '%s' "$extra" > "$stamp"
echo "$root"
