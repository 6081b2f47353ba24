#!/usr/bin/env bash
# Benchmark (not a test): what cost-aware placement does to the bill and to
# lease throughput, each against its FIFO baseline in the same run.
#
#   bench/placement.sh [jobs] [span_seconds] [lease_workers] [lease_seconds]
#
# 1. Replays one workload (60% H.264 1080p, 30% HEVC 1080p, 10% HEVC 2160p;
#    10-minute sources, 60 s chunks) through the pure state machine in
#    virtual time on 2 g4dn.xlarge spot, 8 c6i.4xlarge spot and 1
#    m5.4xlarge on-demand workers (catalogue prices, model priors), with FIFO
#    and with placement. Prints cost per output minute, makespan and ratios.
#    Two loads: the default span, and the same jobs in a third of the time.
# 2. Lease+complete cycles per second through a real coordinator on Redis
#    (bench/lease.sh's harness) with placement off (fifo) and on (cost).
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=${1:-200}
span=${2:-10800}
workers=${3:-32}
secs=${4:-10}
scripts/setup.sh
cargo build --release -q --bins -p spotenc-cli
cargo build --release -q -p spotenc-fleetsim --example placement_bench
cargo build --release -q -p spotenc-tests --example lease_bench
bin=${CARGO_TARGET_DIR:-target}/release
echo "== replay, $jobs jobs over $span s"
"$bin/examples/placement_bench" "$jobs" "$span" 2 8 1
echo "== replay, $jobs jobs over $((span / 3)) s (a saturated fleet)"
"$bin/examples/placement_bench" "$jobs" "$((span / 3))" 2 8 1
echo "== lease cycles on Redis"
out=$(mktemp)
"$bin/examples/lease_bench" "$workers" "$secs" fifo | tee "$out"
fifo=$(awk '/cycles\/s/ { print $NF }' "$out")
"$bin/examples/lease_bench" "$workers" "$secs" cost | tee "$out"
cost=$(awk '/cycles\/s/ { print $NF }' "$out")
rm -f "$out"
awk -v f="$fifo" -v c="$cost" 'BEGIN { printf "lease cycles/s: fifo %d, placement %d, ratio placement/fifo %.3f\n", f, c, c / f }'
