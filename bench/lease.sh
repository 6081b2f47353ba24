#!/usr/bin/env bash
# Benchmark (not a test): lease+complete cycles per second through a
# coordinator on the Redis store, with redis-benchmark as the ceiling.
#   bench/lease.sh [workers] [seconds] [cost|fifo]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q --bins -p spotenc-cli
cargo build --release -q -p spotenc-tests --example lease_bench
exec "${CARGO_TARGET_DIR:-target}"/release/examples/lease_bench "${1:-32}" "${2:-10}" "${3:-cost}"
