#!/usr/bin/env bash
# A Python virtualenv (cached) with the third-party clients the tests check
# Periscope against: DuckDB reading the stored Parquet files directly, the
# deltalake package (delta-rs) reading them as Delta tables, and the ADBC
# Flight SQL driver (with pyarrow) talking to `periscope serve --flight-listen`,
# Python's `packaging` (the reference PEP 440 ordering), and the SBOM validators:
# cyclonedx-python-lib (CycloneDX's JSON schemas) and spdx-tools (SPDX 2.3
# parsing and validation), and kubernetes-validate (deploy/k8s's manifests against
# Kubernetes' schemas, scripts/deploy-check.sh), PyYAML (server/tests/deploy.rs reads
# the manifests) and the Prometheus client's OpenMetrics parser (it scrapes /metrics).
# syft has a venv of its own (scripts/syft.sh).
# Prints the venv's python.
set -euo pipefail
set -f  # $want is split into requirements, never globbed ([extras] look like a glob)
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
venv="$cache/venv-clients"
want="duckdb==1.1.3 deltalake==1.6.6 adbc-driver-flightsql==1.13.0 adbc-driver-manager==1.13.0 pyarrow==26.0.1 packaging==24.2 semver==3.0.4 cyclonedx-python-lib[json-validation]==11.12.0 spdx-tools==0.8.5 kubernetes-validate==1.37.0 prometheus-client==0.26.0 PyYAML==6.0.3"
if [[ ! -f "$venv/.ok" || "$(cat "$venv/.ok")" != "$want" ]]; then
  echo "python-clients: installing $want into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  # shellcheck disable=SC2086  # $want is a list of requirements
  "$venv/bin/pip" install -q $want >&2
  echo "$want" > "$venv/.ok"
fi
echo "$venv/bin/python"
