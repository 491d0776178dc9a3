#!/usr/bin/env bash
# Builds the container images from binaries built on this machine, FROM scratch:
#   scripts/images.sh [--agent BIN] [--server BIN] [--tag TAG]
# Defaults: the release binaries in $CARGO_TARGET_DIR (or target/), built here
# if missing; TAG 0.1.0 (the workspace version). Produces periscope-agent:TAG
# and periscope-server:TAG and prints each image's size. Each image holds the
# binary (stripped of debug info and symbols), the shared libraries `ldd` names with the
# dynamic loader, and passwd/group entries for its user: nothing is pulled.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
agent="" server="" tag="$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -1)"
while [[ $# -gt 0 ]]; do
  case "$1" in
    --agent) agent="$2"; shift 2 ;;
    --server) server="$2"; shift 2 ;;
    --tag) tag="$2"; shift 2 ;;
    *) echo "images: unknown argument $1" >&2; exit 2 ;;
  esac
done
if [[ -z "$agent" || -z "$server" ]]; then
  cargo build --release --bin periscope-agent --bin periscope >&2
  agent="${agent:-$target/release/periscope-agent}"
  server="${server:-$target/release/periscope}"
fi

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

# rootfs DIR BIN NAME: the binary as /NAME, its libraries at their own paths.
rootfs() {
  local dir="$1" bin="$2" name="$3"
  mkdir -p "$dir/rootfs/etc" "$dir/rootfs/tmp"
  chmod 1777 "$dir/rootfs/tmp"
  # Symbols too: a panic still prints its message, and the agent image stays well under 30 MB.
  objcopy --strip-all "$bin" "$dir/rootfs/$name"
  # `ldd` prints "libx.so => /path (addr)" and the loader as "/lib64/ld-linux... (addr)".
  ldd "$bin" | awk '/=> \// {print $3} /^[ \t]*\// {print $1}' | while read -r lib; do
    mkdir -p "$dir/rootfs$(dirname "$lib")"
    cp -L "$lib" "$dir/rootfs$lib"
  done
  printf 'root:x:0:0:root:/:/nonexistent\nnonroot:x:65532:65532:nonroot:/:/nonexistent\n' >"$dir/rootfs/etc/passwd"
  printf 'root:x:0:\nnonroot:x:65532:\n' >"$dir/rootfs/etc/group"
}

build() {
  local image="$1" dockerfile="$2" bin="$3" name="$4"
  local dir="$work/$image"
  mkdir -p "$dir"
  rootfs "$dir" "$bin" "$name"
  cp "$dockerfile" "$dir/Dockerfile"
  mkdir -p "$dir/data"
  # The classic builder: BuildKit may try to resolve images from a registry this machine cannot reach.
  DOCKER_BUILDKIT=0 docker build -q -t "$image:$tag" "$dir" >/dev/null
  printf 'images: %s:%s %s bytes\n' "$image" "$tag" "$(docker image inspect -f '{{.Size}}' "$image:$tag")"
}

build periscope-agent deploy/images/agent.Dockerfile "$agent" periscope-agent
build periscope-server deploy/images/server.Dockerfile "$server" periscope
