#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding real binaries
# with embedded package metadata, for the binaries collector's tests:
#   /usr/local/bin/goapp       a Go binary built here with Debian's Go toolchain,
#                              from a module whose dependencies come from a local
#                              file:// module proxy (proxy.golang.org is not
#                              reachable): a plain dependency, one replaced by
#                              another module at a pseudo-version, a +incompatible
#                              one and one replaced by a local directory;
#   /opt/tools/goapp-nosection the same binary with its .go.buildinfo section
#                              renamed, so only the build info magic finds it;
#   /usr/local/bin/uvx         uv's uvx from its PyPI wheel, built by its
#                              authors with cargo-auditable (a real .dep-v0).
# Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
want="v1 uv==0.13.9 $(go version 2>/dev/null || echo no-go)"
dir="$cache/binaries"
root="$dir/root"
stamp="$dir/root.ok"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
command -v go >/dev/null || { echo "binary-fixtures: go is missing (scripts/install-test-deps.sh installs golang-go)" >&2; exit 1; }
mkdir -p "$dir"
exec 9>"$dir/.lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp" "$dir/work"
work="$dir/work"
mkdir -p "$work/proxy" "$work/app/local" "$root/usr/local/bin" "$root/opt/tools"

# A file:// module proxy (the GOPROXY protocol: list, .info, .mod, .zip per version).
python3 - "$work/proxy" <<'PY'
import json, os, sys, zipfile
proxy = sys.argv[1]
def module(path, version, files, gomod=True):
    d = os.path.join(proxy, path, "@v")
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "list"), "a") as f:
        f.write(version + "\n")
    with open(os.path.join(d, version + ".info"), "w") as f:
        json.dump({"Version": version, "Time": "2019-11-09T02:19:31Z"}, f)
    with open(os.path.join(d, version + ".mod"), "w") as f:
        f.write(f"module {path}\n\ngo 1.16\n")
    with zipfile.ZipFile(os.path.join(d, version + ".zip"), "w") as z:
        prefix = f"{path}@{version}/"
        if gomod:
            z.writestr(prefix + "go.mod", f"module {path}\n\ngo 1.16\n")
        for name, text in files.items():
            z.writestr(prefix + name, text)
pkg = lambda name, s: {f"{name}.go": f'package {name}\n\nfunc Say() string {{ return "{s}" }}\n'}
module("example.com/greet", "v1.0.0", pkg("greet", "hello"))
module("example.com/colors", "v0.3.0", pkg("colors", "red"))
module("example.com/colorsfork", "v0.0.0-20191109021931-daa7c04131f5", pkg("colors", "fork red"))
module("example.com/legacy", "v2.0.0+incompatible", pkg("legacy", "old"), gomod=False)
PY

cat > "$work/app/local/go.mod" <<'M'
module example.com/local

go 1.19
M
printf 'package local\n\nfunc Say() string { return "local" }\n' > "$work/app/local/local.go"
cat > "$work/app/go.mod" <<'M'
module example.com/goapp

go 1.19

require (
	example.com/colors v0.3.0
	example.com/greet v1.0.0
	example.com/legacy v2.0.0+incompatible
	example.com/local v1.5.0
)

replace example.com/colors => example.com/colorsfork v0.0.0-20191109021931-daa7c04131f5

replace example.com/local => ./local
M
cat > "$work/app/main.go" <<'G'
package main

import (
	"fmt"

	"example.com/colors"
	"example.com/greet"
	"example.com/legacy"
	"example.com/local"
)

func main() { fmt.Println(greet.Say(), colors.Say(), legacy.Say(), local.Say()) }
G
(
  cd "$work/app"
  export GOPROXY="file://$work/proxy" GOSUMDB=off GOFLAGS=-mod=mod GOPATH="$work/gopath" \
    GOCACHE="$work/gocache" GOTOOLCHAIN=local CGO_ENABLED=0
  go build -buildvcs=false -o "$root/usr/local/bin/goapp" . >&2
)
objcopy --rename-section .go.buildinfo=.gobinfo "$root/usr/local/bin/goapp" "$root/opt/tools/goapp-nosection"

# uvx from uv's wheel: cargo-auditable's .dep-v0, as its authors built it.
pip download -q --no-deps --only-binary=:all: --platform manylinux_2_17_x86_64 -d "$work/wheel" uv==0.13.9 >&2
python3 - "$work/wheel" "$root/usr/local/bin/uvx" <<'PY'
import glob, os, sys, zipfile
whl = glob.glob(os.path.join(sys.argv[1], "uv-*.whl"))[0]
with zipfile.ZipFile(whl) as z:
    name = next(n for n in z.namelist() if n.endswith("/scripts/uvx"))
    with open(sys.argv[2], "wb") as f:
        f.write(z.read(name))
os.chmod(sys.argv[2], 0o755)
PY
chmod -R u+w "$work" # the module cache is read-only
rm -rf "$work"
printf '%s' "$want" > "$stamp"
echo "$root"
