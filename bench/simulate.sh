#!/usr/bin/env bash
# Benchmark (not a test): the fleet simulator's speed, the seed scenarios'
# dollars per output minute against the seed document's figures, each run's
# cost lower bound and efficiency (bound / paid), idle and on-demand shares
# and cost turnaround p95 next to the figures before issue 31, uhd-mix, FIFO
# against cost placement on gpu-mix, and the chunk-length sweep.
#
#   bench/simulate.sh [plot_dir] [skip-50m]   (default: bench-plots; on 2 cores
#                                             at 66d50ee the runs took 70 s, 47 s
#                                             of it the 50M run, after about
#                                             14 min of build (856 s in all),
#                                             see bench/build-sim.sh)
#
# Every figure comes from `spotenc simulate` on examples/simulate/; each run
# prints its wall time and simulated events per second on stderr.
set -euo pipefail
cd "$(dirname "$0")/.."
plots=${1:-bench-plots}
scripts/setup.sh
# The sim profile (whole-program LTO, see Cargo.toml) with PGO, as
# bench/build-sim.sh says; the simulator links no FFmpeg.
spotenc=$(bench/build-sim.sh)
echo "simulator: $spotenc"
ex=examples/simulate
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# run NAME POOLS WORKLOAD [ARGS...]: prints the report's headline and the
# wall/events line; leaves the JSON in $log.json
run() {
  local name=$1 pools=$2 workload=$3
  shift 3
  local t0 t1
  t0=$(date +%s.%N)
  /usr/bin/time -f "%M" -o "$log.rss" "$spotenc" simulate --pools "$ex/$pools" --workload "$ex/$workload" --json "$@" >"$log.json" 2>"$log"
  t1=$(date +%s.%N)
  local rss
  rss=$(tail -1 "$log.rss")
  python3 - "$name" "$log.json" "$(grep 'events in' "$log")" "$rss" <<'PY'
import json, sys
name, path, line, rss = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
runs = json.load(open(path))["runs"]
for r in runs:
    idle = 100 * r['idle_dollars'] / r['dollars'] if r['dollars'] else 0.0
    p95 = r['turnaround'].get('cost', {}).get('p95_s', 0.0)
    print(f"{name}: chunk {r['chunk_seconds']:>5.0f} s  {r['placement']:<4}  "
          f"${r['dollars_per_output_minute']:.5f}/output-min  bound ${r['bound_per_output_minute']:.5f}  "
          f"efficiency {r['efficiency']:.2f}  idle {idle:.0f}%  on-demand {100 * r['on_demand_share']:.1f}%  "
          f"p95 cost {p95:.0f} s  waste ${r['waste_dollars']:.2f}  total ${r['dollars']:.0f}  "
          f"minutes {r['output_minutes']:.0f}")
print(f"{name}: {line.strip()}  max RSS {rss / 1024:.0f} MiB")
PY
}

per_minute() {
  python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["runs"][0]["dollars_per_output_minute"])' "$log.json"
}

echo "== seed scenarios (30 days, 5M output minutes/month of H.264)"
run seed-5m-ondemand seed-5m-ondemand.pools.toml seed-5m.workload.toml
od=$(per_minute)
run seed-5m-spot seed-5m-spot.pools.toml seed-5m.workload.toml
spot=$(per_minute)
python3 - "$od" "$spot" <<'PY'
import sys
od, spot = float(sys.argv[1]), float(sys.argv[2])
for name, got, seed in (("on-demand", od, 0.0055), ("80% spot", spot, 0.0019)):
    print(f"{name:<10} simulated ${got:.5f}/min  seed ${seed:.4f}/min  ratio {got / seed:.2f}"
          f"  ({'within' if abs(got / seed - 1) <= 0.35 else 'outside'} ±35%)")
print("reference: MediaConvert $0.015/min, Bitmovin $0.009/min")
PY

# Before issue 31 (encoder affinity and the planner's efficiency), 30 days,
# seed 1, from docs/simulator.md at b183cc08; the bound is the workload's,
# the same before and after.
echo "before: seed-5m-ondemand \$0.00644/min  idle 10%  on-demand 100%  p95 684 s"
echo "before: seed-5m-spot     \$0.00315/min  idle 19%  on-demand 34.0%  p95 558 s"
echo "before: gpu-mix          \$0.00063/min  idle 28%  on-demand 37.9%  p95 507 s"

echo "== uhd-mix (50% 4K HEVC, 50% 1080p H.264; g4dn and c6i spot and on-demand)"
run uhd-mix uhd-mix.pools.toml uhd-mix.workload.toml

echo "== gpu-mix (30% HEVC on g4dn/g5/c6i), FIFO against cost placement"
run gpu-mix gpu-mix.pools.toml gpu-mix.workload.toml --placement fifo
fifo=$(per_minute)
run gpu-mix gpu-mix.pools.toml gpu-mix.workload.toml --placement cost
cost=$(per_minute)
python3 -c 'import sys; f,c=map(float,sys.argv[1:]); print(f"gpu-mix $/output-min: fifo {f:.5f}, cost {c:.5f}, ratio cost/fifo {c/f:.3f}")' "$fifo" "$cost"

echo "== chunk-sweep (5%/h interruptions), plots in $plots/"
"$spotenc" simulate --pools "$ex/chunk-sweep.pools.toml" --workload "$ex/chunk-sweep.workload.toml" \
  --chunk-seconds 30,60,120,180,300,600,900,1800 --plot "$plots" | tail -10

if [ "${2:-}" != skip-50m ]; then
  echo "== scale: 50M output minutes/month (30 days)"
  run scale-50m scale-50m.pools.toml scale-50m.workload.toml
fi
