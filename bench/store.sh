#!/usr/bin/env bash
# Benchmark (not a test): lease latency through a coordinator process with
# many finished jobs in its store, on the embedded store and on Redis,
# against the same store empty, in the same run.
#   bench/store.sh [finished_jobs] [workers,...] [seconds] [embedded,redis]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q --bins -p spotenc-cli
cargo build --release -q -p spotenc-coordinator --example store_bench
exec "${CARGO_TARGET_DIR:-target}"/release/examples/store_bench "${1:-100000}" "${2:-1,4}" "${3:-10}" "${4:-embedded,redis}"
