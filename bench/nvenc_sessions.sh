#!/usr/bin/env bash
# Benchmark for a g4dn (T4) or g5 (A10G): how many NVENC sessions per GPU
# pay off. For N = 1, 2, 3, ... it runs one chunked 1080p job through a
# gpu-worker with --sessions-per-gpu N (NVDEC -> scale_cuda -> NVENC, frames
# on the GPU) and, as the baseline in the same run, N concurrent `ffmpeg`
# CLI encodes with the same settings (-hwaccel cuda, scale_cuda,
# h264_nvenc). It stops once spotenc's aggregate fps rises less than 5 %
# from one N to the next, and prints fps, NVML encoder utilisation and the
# spotenc/ffmpeg ratio for every N.
#
#   bench/nvenc_sessions.sh [max-sessions] [clip-seconds]
#
# Needs an NVIDIA driver with NVENC, FFmpeg with nvenc/cuda (the Debian one
# has them) and the release binaries (`cargo build --release --bins`), or
# the bundle from scripts/device-bundle.sh (bin/ and lib/ beside it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -d bin ]; then
  export PATH=$PWD/bin:$PATH LD_LIBRARY_PATH=$PWD/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
  export PATH=$PWD/target/release:$PATH
fi
max=${1:-8}
secs=${2:-60}
work=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$work"' EXIT

gpu-worker probe >"$work/probe.json"
python3 -c 'import json,sys; r=json.load(open(sys.argv[1])); print("nvenc:", r["nvenc"]); [print(g["name"], g["nvenc"]) for g in r["gpus"]]' "$work/probe.json"

ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$secs" \
  -c:v libx264 -preset ultrafast -g 60 "$work/clip.mp4"
frames=$((secs * 30))
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
SPOTENC_INPUT_ROOTS="$work" SPOTENC_OUTPUT_ROOTS="$work" spotenc coordinator --listen "127.0.0.1:$port" --data-dir "$work/c" >"$work/coordinator.log" 2>&1 &
url=http://127.0.0.1:$port
sleep 1

enc_util() { nvidia-smi --query-gpu=utilization.encoder --format=csv,noheader,nounits | head -1; }

prev=0
printf '%9s %14s %14s %12s %8s\n' sessions spotenc_fps ffmpeg_fps enc_util_% ratio
for n in $(seq 1 "$max"); do
  gpu-worker --coordinator "$url" --cloud none --name "bench$n" --sessions-per-gpu "$n" \
    >"$work/worker$n.log" 2>&1 &
  w=$!
  sleep 1
  util_log=$work/util$n
  (while sleep 1; do enc_util; done) >"$util_log" &
  sampler=$!
  # n chunks at a time: chunks of secs/(2n) seconds keep every session busy.
  chunk=$(python3 -c "print(max(2, $secs / (2 * $n)))")
  t0=$(date +%s.%N)
  spotenc submit "$work/clip.mp4" "$work/out$n.mp4" --coordinator "$url" \
    --chunk-seconds "$chunk" --preset medium --bitrate 6M --wait >/dev/null
  t1=$(date +%s.%N)
  kill "$sampler" "$w"
  wait "$w" 2>/dev/null || true
  s_fps=$(python3 -c "print(round($frames / ($t1 - $t0), 1))")
  util=$(sort -n "$util_log" | tail -1)

  # Baseline: n concurrent ffmpeg CLI encodes of the whole clip.
  t0=$(date +%s.%N)
  pids=()
  for i in $(seq 1 "$n"); do
    ffmpeg -hide_banner -loglevel error -y -hwaccel cuda -hwaccel_output_format cuda \
      -i "$work/clip.mp4" -vf scale_cuda=1920:1080 -c:v h264_nvenc -preset p5 -b:v 6M \
      "$work/ff$n-$i.mp4" &
    pids+=($!)
  done
  wait "${pids[@]}"
  t1=$(date +%s.%N)
  f_fps=$(python3 -c "print(round($n * $frames / ($t1 - $t0), 1))")
  ratio=$(python3 -c "print(round($s_fps / $f_fps, 3))")
  printf '%9s %14s %14s %12s %8s\n' "$n" "$s_fps" "$f_fps" "$util" "$ratio"
  if python3 -c "import sys; sys.exit(0 if $prev > 0 and $s_fps < $prev * 1.05 else 1)"; then
    echo "aggregate fps stopped rising at $n sessions; use --sessions-per-gpu $((n - 1))"
    break
  fi
  prev=$s_fps
done
