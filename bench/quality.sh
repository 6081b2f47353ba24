#!/usr/bin/env bash
# Benchmark (not a test): what per-chunk quality metrics cost. The same
# 1080p clip through `spotenc transcode` with --quality-metrics on and off,
# libx264 medium and libx265 medium, in the same run; each pair is run
# `rounds` times, alternating off and on. Prints wall times and the on/off
# ratio per codec (the goal: at most 1.10). Chunks are the jobs' default
# (300 s) unless `chunk` says otherwise: each chunk ends with the frames the
# meter still has to score after its encoder is done.
#
#   bench/quality.sh [seconds] [rounds] [workers] [chunk-seconds]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
rounds=${2:-2}
workers=${3:-1}
chunk=${4:-300}
. bench/clip.sh
bin=${CARGO_TARGET_DIR:-target}/release/spotenc
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'; }

echo "clip: $clip, preset medium, crf 23 (h264) / 28 (hevc), chunks of $chunk s, $workers worker(s), $(nproc) cores, $rounds rounds"
printf '%-6s %-5s %s\n' codec round "off s / on s"
for codec in ${SPOTENC_BENCH_CODECS:-h264 hevc}; do
  crf=23
  [ "$codec" = hevc ] && crf=28
  off_sum=0 on_sum=0
  for r in $(seq "$rounds"); do
    run=("$bin" transcode "$clip" "$dir/q-$codec.mp4" --codec "$codec" --preset medium --crf "$crf"
      --chunk-seconds "$chunk" --workers "$workers")
    off=$(t "${run[@]}" --quality-metrics off)
    on=$(t "${run[@]}" --quality-metrics on)
    printf '%-6s %-5s %.2f / %.2f\n' "$codec" "$r" "$off" "$on"
    off_sum=$(awk -v a="$off_sum" -v b="$off" 'BEGIN { print a + b }')
    on_sum=$(awk -v a="$on_sum" -v b="$on" 'BEGIN { print a + b }')
  done
  awk -v c="$codec" -v off="$off_sum" -v on="$on_sum" -v n="$rounds" 'BEGIN {
    printf "%-6s mean off %.2f s, on %.2f s: on/off %.3f\n", c, off / n, on / n, on / off
  }'
done
