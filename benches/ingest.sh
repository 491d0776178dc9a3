#!/usr/bin/env bash
# End-to-end ingest: synthetic agents (the agent's own encoding and gRPC
# client) streaming realistic package and process rows to a real
# `periscope serve` on loopback. Prints rows/s, wire bytes per row and rows
# per server CPU second for a bulk load, then the agent sends per second a
# steady-state fleet (change-only crawls) gets through, as hosts per server
# at a 60 s interval. Target: 1M rows/s per server core.
#
#   benches/ingest.sh                 HOSTS=200 PACKAGES=2000 PROCESSES=150 SENDERS=16 FLEET=2000
#
# Release build of the server (datafusion): about 25 minutes cold on 2 cores.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${CARGO_TARGET_DIR:-target}"
cargo build -q --release -p periscope-server --bin periscope --example ingest_bench
"$target/release/examples/ingest_bench"
