#!/usr/bin/env bash
# Benchmark (not a test): notice -> requeue, -> re-lease by another worker,
# -> exit, for AWS/GCP/Azure notices (local metadata servers) and SIGTERM,
# against SIGKILL plus lease expiry in the same run.
#   bench/interrupt.sh [rounds]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q --bins -p spotenc-cli -p cpu-worker
cargo build --release -q -p spotenc-tests --example interrupt_bench
exec target/release/examples/interrupt_bench "${1:-3}"
