#!/usr/bin/env bash
# Benchmark (not a test): download-first against FFmpeg HTTP range reads for
# a job's source on S3 (Garage on loopback), same clip, same run.
#   bench/s3_input.sh [chunk-seconds] [preset]
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
cargo build --release -q --bins -p spotenc-cli -p cpu-worker
cargo build --release -q -p spotenc-tests --example s3_input_bench
clip=bench/out/clip-1080p-20s.mp4
if [ ! -f "$clip" ]; then
  mkdir -p bench/out
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=20" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=20" \
    -c:v libx264 -preset veryfast -crf 18 -g 60 -c:a aac -shortest "$clip"
fi
exec target/release/examples/s3_input_bench "$clip" "${1:-5}" "${2:-ultrafast}"
