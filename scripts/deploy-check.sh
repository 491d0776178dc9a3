#!/usr/bin/env bash
# Validates the deployment files under deploy/ with the tools that consume them, offline:
#  - deploy/k8s: rendered with `kubectl kustomize` (or `kustomize build`), then every resource checked by the
#    PyPI package kubernetes-validate, --strict (unknown fields are errors), against the newest Kubernetes
#    version it ships schemas for. Without kubectl or kustomize the render is skipped, said so, and each file
#    the kustomization lists is validated on its own (the generated Secret then goes unchecked).
#  - deploy/systemd: `systemd-analyze verify` on both units, in a scratch root holding the systemd units of
#    this machine and stand-ins for the binaries (verify checks that ExecStart's program exists), and
#    `systemd-analyze security --offline=true`, whose exposure scores are printed and may not rise above the
#    ones deploy/README.md records.
#  - deploy/compose.yaml: `docker-compose config` (or `docker compose config`).
# Any warning counts as a failure: kubernetes-validate only warns about a kind it has no schema for, and
# systemd-analyze verify only warns about a directive it cannot parse. Exits non-zero if any check failed.
# kubernetes-validate comes from $PERISCOPE_PYTHON, else from scripts/python-clients.sh's venv.
set -euo pipefail
cd "$(dirname "$0")/.."

# The exposure levels deploy/README.md records, in tenths (systemd-analyze's --threshold scale).
AGENT_EXPOSURE_MAX=25
SERVER_EXPOSURE_MAX=12

PERISCOPE_PYTHON="${PERISCOPE_PYTHON:-$(scripts/python-clients.sh)}"
py="$PERISCOPE_PYTHON"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
passed=0
failed=0
ok() { echo "deploy-check: ok: $*"; passed=$((passed + 1)); }
fail() { echo "deploy-check: FAILED: $*" >&2; failed=$((failed + 1)); }

# --- Kubernetes ---------------------------------------------------------------------------------------------
kv_version="$("$py" -c 'import kubernetes_validate.version as v; print(v.__version__)')"
k8s_version="$("$py" -c 'import kubernetes_validate.utils as u; print(u.latest_version())')"
echo "deploy-check: kubernetes-validate $kv_version, Kubernetes $k8s_version schemas, --strict"

# validate FILE...: every resource must pass, and every one must have had a schema to pass.
validate() {
  local out rc=0 docs passes
  out="$("$py" -m kubernetes_validate --strict -k "$k8s_version" "$@" 2>&1)" || rc=$?
  docs="$("$py" -c '
import sys, yaml
print(sum(1 for f in sys.argv[1:] for d in yaml.safe_load_all(open(f)) if d))' "$@")"
  passes="$(grep -c '^INFO .* passed for resource' <<<"$out" || true)"
  if ((rc != 0)) || grep -qv '^INFO ' <<<"$out" || [[ "$passes" != "$docs" || "$docs" == 0 ]]; then
    echo "$out" >&2
    fail "kubernetes-validate: $passes of $docs resources passed in $*"
  else
    ok "kubernetes-validate: $docs resources in $*"
  fi
}

if command -v kubectl >/dev/null; then
  render=(kubectl kustomize deploy/k8s)
elif command -v kustomize >/dev/null; then
  render=(kustomize build deploy/k8s)
else
  render=()
fi
if ((${#render[@]})); then
  if "${render[@]}" >"$tmp/rendered.yaml" 2>"$tmp/render.err"; then
    ok "${render[*]} rendered $(grep -c '^kind: ' "$tmp/rendered.yaml") resources"
    validate "$tmp/rendered.yaml"
  else
    cat "$tmp/render.err" >&2
    fail "${render[*]}"
  fi
else
  echo "deploy-check: SKIP kustomize render: neither kubectl nor kustomize is installed;" \
    "validating the files deploy/k8s/kustomization.yaml lists one by one (its generated Secret is not checked)"
  mapfile -t files < <("$py" -c '
import yaml
for r in yaml.safe_load(open("deploy/k8s/kustomization.yaml"))["resources"]:
    print("deploy/k8s/" + r)')
  validate "${files[@]}"
fi

# --- systemd ------------------------------------------------------------------------------------------------
units=(deploy/systemd/periscope-agent.service deploy/systemd/periscope-server.service)
if ! command -v systemd-analyze >/dev/null; then
  fail "systemd-analyze not found (Debian package systemd)"
else
  # verify resolves the units' dependencies (sysinit.target, ...) and ExecStart's program inside --root: give it
  # this machine's units, the two to check, and empty executables where the binaries will be installed.
  root="$tmp/root"
  mkdir -p "$root/etc/systemd/system" "$root/usr/lib/systemd"
  for d in /usr/lib/systemd/system /lib/systemd/system; do
    if [[ -f "$d/sysinit.target" ]]; then cp -a "$d" "$root/usr/lib/systemd/"; break; fi
  done
  cp "${units[@]}" "$root/etc/systemd/system/"
  for u in "${units[@]}"; do
    # ExecStart=[prefixes]/path args...: the program's path.
    exe="$(sed -n 's/^ExecStart=[-@:+!]*\([^ ]*\).*/\1/p' "$u")"
    mkdir -p "$root$(dirname "$exe")"
    install -m 0755 /dev/null "$root$exe"
  done
  rc=0
  out="$(systemd-analyze verify --root="$root" --man=no "${units[@]##*/}" 2>&1)" || rc=$?
  if ((rc != 0)) || [[ -n "$out" ]]; then
    echo "$out" >&2
    fail "systemd-analyze verify ${units[*]##*/}"
  else
    ok "systemd-analyze verify ${units[*]##*/}"
  fi
  for u in "${units[@]}"; do
    case "$u" in
      *agent*) max=$AGENT_EXPOSURE_MAX ;;
      *) max=$SERVER_EXPOSURE_MAX ;;
    esac
    rc=0
    out="$(systemd-analyze security --offline=true --threshold="$max" --no-pager "$u" 2>&1)" || rc=$?
    score="$(grep 'Overall exposure level' <<<"$out" | sed 's/^→ //')" || true
    if ((rc != 0)) || [[ -z "$score" ]]; then
      grep -v '^✓' <<<"$out" >&2 || true
      fail "systemd-analyze security: ${score:-no score} (at most $((max / 10)).$((max % 10)) allowed)"
    else
      ok "systemd-analyze security: $score"
    fi
  done
fi

# --- compose ------------------------------------------------------------------------------------------------
if command -v docker-compose >/dev/null; then
  compose=(docker-compose)
elif docker compose version >/dev/null 2>&1; then
  compose=(docker compose)
else
  compose=()
fi
if ((${#compose[@]} == 0)); then
  fail "neither docker-compose nor the docker compose plugin is installed"
elif "${compose[@]}" -f deploy/compose.yaml config -q 2>"$tmp/compose.err" \
  && ! [[ -s "$tmp/compose.err" ]]; then
  ok "${compose[*]} config: deploy/compose.yaml ($("${compose[@]}" version --short 2>/dev/null || true))"
else
  cat "$tmp/compose.err" >&2
  fail "${compose[*]} config: deploy/compose.yaml"
fi

echo "deploy-check: $passed passed, $failed failed"
((failed == 0))
