#!/usr/bin/env bash
# Fleet query latency: a synthetic fleet (10,000 hosts x 50 containers over
# 300 images by default) written through Periscope's store, then the canonical
# fleet questions answered by Periscope and by DuckDB over the same Parquet
# files, side by side (p50/p95 over RUNS runs), plus bytes on disk per row.
# ADVISORIES synthetic OSV records (default 30,000) are imported for the two
# vulnerability questions (DuckDB compares their versions as strings). DuckDB
# is the current release on PyPI, installed in a venv of the benchmark's own.
# Target: Periscope no slower than DuckDB, p50 under 1 s per question.
#
#   benches/fleet-query.sh        HOSTS=10000 CONTAINERS=50 IMAGES=300 IMAGE_PACKAGES=150 HOST_PACKAGES=300 ADVISORIES=30000 RUNS=7
#
# FLEET_DATA=DIR keeps the written fleet in DIR and, when DIR already holds
# one, queries it instead of writing a new one; DUCKDB=0 leaves DuckDB out.
#
# Release build of the server (datafusion): about 25 minutes cold on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
# The peer is DuckDB's current release from PyPI, in a venv of the
# benchmark's own (the tests' clients are pinned); BENCH_PYTHON overrides.
# The table header names the version that ran.
if [ -z "${BENCH_PYTHON:-}" ]; then
  venv="${PERISCOPE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/periscope}/venv-bench"
  [ -x "$venv/bin/python" ] || python3 -m venv "$venv" || { rm -rf "$venv"; exit 1; }
  "$venv/bin/python" -m pip install -q --disable-pip-version-check --upgrade duckdb
  BENCH_PYTHON="$venv/bin/python"
fi
export PERISCOPE_PYTHON="$BENCH_PYTHON"
cargo build -q --release -p periscope-server --example fleet_bench
"$target/release/examples/fleet_bench"
