"""An independent evaluation of OSV records against installed packages, for
server/tests/vulns.rs: the OSV specification's algorithm written from the
specification, with each ecosystem's own version library (packaging for PyPI,
python-semver for Go and crates.io, dpkg itself for Debian).

stdin: {"records": [paths of OSV JSON files], "packages": [{manager, name,
version, source, source_version, owner_package, os_id, os_version_id, host, scope,
scope_id}]}.
stdout: a JSON list of [host, scope, scope_id, manager, name, version, advisory id,
fixed or null].
"""
import functools
import json
import re
import subprocess
import sys

import semver
from packaging.version import InvalidVersion, Version


@functools.lru_cache(maxsize=None)
def dpkg_cmp(a, b):
    if a == b:
        return 0
    lt = subprocess.run(["dpkg", "--compare-versions", a, "lt", b]).returncode == 0
    if lt:
        return -1
    eq = subprocess.run(["dpkg", "--compare-versions", a, "eq", b]).returncode == 0
    return 0 if eq else 1


def pep440(v):
    return Version(v)


def sem(v):
    # Go writes v1.2.3 in modules and go1.2.3 for the toolchain; OSV writes 1.2.3.
    v = re.sub(r"^(go|v)", "", v)
    return semver.Version.parse(v)


def cmp_with(parse):
    def c(a, b):
        x, y = parse(a), parse(b)
        return (x > y) - (x < y)
    return c


ECOSYSTEMS = {
    "PyPI": cmp_with(pep440),
    "Go": cmp_with(sem),
    "crates.io": cmp_with(sem),
    "Debian:12": dpkg_cmp,
}


def norm(eco, name):
    if eco == "PyPI":
        return re.sub(r"[-_.]+", "-", name).lower()
    return name


def package_eco(p):
    m = p["manager"]
    if m == "pypi":
        return "PyPI"
    if m == "golang":
        return "Go"
    if m == "cargo":
        return "crates.io"
    if m == "dpkg" and p.get("os_id") == "debian" and p.get("os_version_id"):
        return "Debian:" + p["os_version_id"].split(".")[0]
    return None


def affects(cmp, affected, v):
    """Whether v is affected, by the specification's evaluation."""
    def ok(a, b):
        try:
            return cmp(a, b)
        except (InvalidVersion, ValueError, TypeError):
            return None

    for listed in affected.get("versions") or []:
        if listed == v or ok(listed, v) == 0:
            return True
    for r in affected.get("ranges") or []:
        if r["type"] not in ("SEMVER", "ECOSYSTEM"):
            continue
        events = []
        for e in r.get("events") or []:
            (kind, ver), = e.items()
            events.append((kind, ver))
        limits = [ver for kind, ver in events if kind == "limit"]
        events = [(k, x) for k, x in events if k != "limit"]
        if any(x != "0" and ok(x, x) is None for _, x in events) or not any(k == "introduced" for k, _ in events):
            continue

        # By version ("0" lowest); at one version, introduced first.
        def order(a, b):
            if a[1] == "0" or b[1] == "0":
                c = (a[1] != "0") - (b[1] != "0")
            else:
                c = ok(a[1], b[1])
            return c or (a[0] != "introduced") - (b[0] != "introduced")

        events.sort(key=functools.cmp_to_key(order))
        if limits and not any(l == "*" or ok(v, l) == -1 for l in limits):
            continue
        affected_now = False
        for kind, x in events:
            c = None if x == "0" else ok(v, x)
            if x != "0" and c is None:
                affected_now = False
                break
            if kind == "introduced" and (x == "0" or c >= 0):
                affected_now = True
            elif kind == "fixed" and c >= 0:
                affected_now = False
            elif kind == "last_affected" and c > 0:
                affected_now = False
        if affected_now:
            return True
    return False


def lowest_fixing(cmp, affected, v):
    """The lowest version the record names as fixed, above v, that it does not affect."""
    fixes = set()
    for r in affected.get("ranges") or []:
        if r["type"] in ("SEMVER", "ECOSYSTEM"):
            fixes |= {e["fixed"] for e in r.get("events") or [] if "fixed" in e}
    best = None
    for f in fixes:
        try:
            above = cmp(f, v) == 1
        except (InvalidVersion, ValueError, TypeError):
            continue
        if above and not affects(cmp, affected, f) and (best is None or cmp(f, best) == -1):
            best = f
    return best


def main():
    job = json.load(sys.stdin)
    records = [json.load(open(p)) for p in job["records"]]
    by_key = {}
    for r in records:
        if r.get("withdrawn"):
            continue
        for a in r.get("affected") or []:
            pkg = a.get("package") or {}
            eco = pkg.get("ecosystem")
            if eco not in ECOSYSTEMS:
                continue
            by_key.setdefault((eco, norm(eco, pkg["name"])), []).append((r["id"], a))
    out = []
    for p in job["packages"]:
        eco = package_eco(p)
        # A distribution package's files are the distribution's to fix: not matched as PyPI/npm/...
        if eco is None or p.get("owner_package"):
            continue
        name = p["source"] if eco.startswith("Debian:") and p.get("source") else p.get("name")
        version = p["source_version"] if eco.startswith("Debian:") and p.get("source_version") else p.get("version")
        if version is None:
            continue
        for rid, a in by_key.get((eco, norm(eco, name)), []):
            if affects(ECOSYSTEMS[eco], a, version):
                fixed = lowest_fixing(ECOSYSTEMS[eco], a, version)
                out.append([p["host"], p["scope"], p["scope_id"], p["manager"], p["name"], p.get("version"), rid, fixed])
    json.dump(out, sys.stdout)


main()
