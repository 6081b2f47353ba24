#!/usr/bin/env bash
# Benchmark (not a test): the chaos run. Redis, 2 coordinator replicas and
# 4 CPU workers take a stream of jobs while N rounds each kill -9 a random
# victim (a worker, a replica, or Redis, restarted on its append-only file)
# and start it again. Prints the faults, jobs correct (frames and PSNR),
# partial outputs seen at final paths, lost jobs, and turnaround against a
# no-fault baseline run first.
#   bench/chaos.sh [rounds, default 100] [seed]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q --bins -p spotenc-cli -p cpu-worker
cargo build --release -q -p spotenc-tests --example chaos_bench
exec "${CARGO_TARGET_DIR:-target}/release/examples/chaos_bench" "${1:-100}" ${2:+"$2"}
