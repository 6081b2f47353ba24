#!/usr/bin/env bash
# Benchmark (not a test): one 1080p S3 job on two workers, in the compose
# fleet's containers against the same processes run directly on the host,
# in the same run (tests/examples/container_bench.rs). The images are built
# from the same release binaries the host fleet runs (the coordinators run
# the lean spotenc on both sides). Prints both wall times
# and the containers/host ratio (the goal: at most 1.05).
#
#   bench/containers.sh [seconds] [rounds] [chunk-seconds] [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
rounds=${2:-2}
. bench/clip.sh
docker info >/dev/null 2>&1 || { echo "containers: no Docker engine answers (start dockerd)" >&2; exit 1; }
scripts/images.sh --from-binaries --profile release --tag bench
cargo build --release -q -p spotenc-tests --example container_bench
# The host fleet runs the coordinator image's lean spotenc too.
cargo build --release -q -p spotenc-cli --no-default-features
exec "${CARGO_TARGET_DIR:-target}/release/examples/container_bench" "$clip" bench "$rounds" "${3:-4}" "${4:-medium}"
