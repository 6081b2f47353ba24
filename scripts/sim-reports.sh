#!/usr/bin/env bash
# Writes the simulator's JSON report for every shipped scenario (2 simulated
# days, cost and FIFO placement) into DIR, so two builds can be compared
# byte for byte: scripts/sim-reports.sh SPOTENC DIR, then diff -r.
set -euo pipefail
spotenc=$1 out=$2
cd "$(dirname "$0")/.."
mkdir -p "$out"
# A fixed directory: the report names the workload file it read.
tmp=${TMPDIR:-/tmp}/spotenc-sim-workloads
mkdir -p "$tmp"
ex=examples/simulate
run() { # name pools workload
  sed 's/^days = .*/days = 2/' "$ex/$3" >"$tmp/$3"
  for p in cost fifo; do
    "$spotenc" simulate --pools "$ex/$2" --workload "$tmp/$3" --placement "$p" --json \
      >"$out/$1-$p.json" 2>/dev/null
  done
}
run chunk-sweep chunk-sweep.pools.toml chunk-sweep.workload.toml
run gpu-mix gpu-mix.pools.toml gpu-mix.workload.toml
run scale-50m scale-50m.pools.toml scale-50m.workload.toml
run seed-5m-ondemand seed-5m-ondemand.pools.toml seed-5m.workload.toml
run seed-5m-spot seed-5m-spot.pools.toml seed-5m.workload.toml
ls "$out"
