#!/usr/bin/env bash
# The quick start: installs what is missing, builds spotenc, makes a 20 s
# 720p sample clip with audio, and transcodes it chunked through the embedded
# coordinator and two CPU workers. Prints what ffprobe sees in the result.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --demo
# Only what the demo runs: `spotenc transcode` (the coordinator and workers
# in one process), without the simulator, the operator or the other
# binaries, in the `quick` profile (Cargo.toml: FFmpeg does the encoding).
cargo build --profile quick -q -p spotenc-cli --bin spotenc --no-default-features --features transcode
out=${SPOTENC_DEMO_DIR:-target/demo}
mkdir -p "$out"
if [ ! -f "$out/sample.mp4" ]; then
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i testsrc2=size=1280x720:rate=30:duration=20 \
    -f lavfi -i sine=frequency=440:sample_rate=48000:duration=20 \
    -c:v libx264 -preset veryfast -g 60 -bf 3 -c:a aac -shortest "$out/sample.mp4"
fi
rm -f "$out/sample.hevc.mp4"
set -x
"${CARGO_TARGET_DIR:-target}/quick/spotenc" transcode "$out/sample.mp4" "$out/sample.hevc.mp4" \
  --codec hevc --crf 26 --preset fast --chunk-seconds 5 --workers 2
set +x
ffprobe -v error -show_entries stream=codec_name,width,height,nb_frames,duration \
  -of compact=p=0 "$out/sample.hevc.mp4"
echo "demo: wrote $out/sample.hevc.mp4"
