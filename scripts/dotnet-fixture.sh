#!/usr/bin/env bash
# Build (once) and print the path of a root filesystem holding a real .NET
# dependency manifest, for the nuget collector's tests. No .NET SDK or NuGet
# feed is reachable here, so the manifest comes from a package that ships
# one: pythonnet's wheel from PyPI carries Python.Runtime.dll and the
# Python.Runtime.deps.json the .NET SDK wrote when its authors built it
# (19 libraries: the project itself and the NuGet packages it was built with).
# `pip install --no-deps --target` puts it into /app/site, as an application
# image would. Cached outside the clone; a stamp file marks a complete build.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
root="$cache/rootfs/dotnet-app"
stamp="$root.ok"
want="v1 pythonnet==3.0.3"
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
mkdir -p "$cache/rootfs"
exec 9>"$cache/rootfs/.dotnet-lock"
flock 9
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then echo "$root"; exit 0; fi
rm -rf "$root" "$stamp"
mkdir -p "$root/etc" "$root/app/site"
echo 'ID=debian' > "$root/etc/os-release"
echo "dotnet-fixture: pip install pythonnet==3.0.3 into /app/site" >&2
python3 -m pip install -q --no-deps --no-compile --target "$root/app/site" pythonnet==3.0.3 >&2
printf '%s' "$want" > "$stamp"
echo "$root"
