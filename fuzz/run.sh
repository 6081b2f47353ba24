#!/usr/bin/env bash
# Runs cargo-fuzz targets for a fixed wall time each, PAIR at a time (the
# machine has 2 cores), then minimises each corpus. Each run's libFuzzer log
# goes to fuzz/logs/TARGET.log; the summary line is printed at the end.
#   fuzz/run.sh [seconds] [target...]
# Needs nightly and cargo-fuzz (`cargo install cargo-fuzz`).
set -euo pipefail
cd "$(dirname "$0")"
secs=${1:-1800}
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(job_spec records config_toml worker_config probe)
pair=${PAIR:-2}
mkdir -p logs
cargo +nightly fuzz build -O
run() {
  local t=$1
  cargo +nightly fuzz run "$t" -O -- -max_total_time="$secs" -rss_limit_mb=2048 \
    -print_final_stats=1 >"logs/$t.log" 2>&1 || echo "$t: exit $? (see fuzz/logs/$t.log)"
}
for ((i = 0; i < ${#targets[@]}; i += pair)); do
  for t in "${targets[@]:i:pair}"; do run "$t" & done
  wait
done
for t in "${targets[@]}"; do
  cargo +nightly fuzz cmin "$t" -O >"logs/$t.cmin.log" 2>&1
  echo "$t: $(grep -E '^stat::number_of_executed_units' "logs/$t.log" | tail -1)," \
    "$(grep -cE '^==[0-9]+== ERROR|panicked at' "logs/$t.log" || true) findings," \
    "corpus $(find "corpus/$t" -type f | wc -l) files after cmin"
done
