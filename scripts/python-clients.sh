#!/usr/bin/env bash
# A Python virtualenv (cached) with the third-party clients the tests check
# Periscope against: DuckDB reading the stored Parquet files directly.
# Prints the venv's python.
set -euo pipefail
cache="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}"
venv="$cache/venv-clients"
want="duckdb==1.1.3"
if [[ ! -f "$venv/.ok" || "$(cat "$venv/.ok")" != "$want" ]]; then
  echo "python-clients: installing $want into $venv" >&2
  rm -rf "$venv"
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "$want" >&2
  echo "$want" > "$venv/.ok"
fi
echo "$venv/bin/python"
