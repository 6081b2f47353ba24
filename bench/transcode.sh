#!/usr/bin/env bash
# Benchmark (not a test): spotenc against the ffmpeg CLI with the same x264
# settings on the same 1080p clip, in the same run.
#
#   bench/transcode.sh [seconds] [preset]
#
# Runs, in order: ffmpeg CLI; spotenc with 1 worker; spotenc with 2 workers
# (both chunked every 5 s). Prints wall time, fps and each run's throughput
# relative to the ffmpeg CLI.
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
preset=${2:-medium}
. bench/clip.sh
frames=$(ffprobe -v error -select_streams v:0 -count_packets -show_entries stream=nb_read_packets -of csv=p=0 "$clip")

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'; }

echo "clip: $clip ($frames frames), x264 preset $preset crf 23, keyint 60, closed GOP, $(nproc) cores"
base=$(t ffmpeg -hide_banner -y -i "$clip" -map 0:v -map 0:a -c:v libx264 -preset "$preset" -crf 23 -g 60 \
  -flags +cgop -forced-idr 1 -pix_fmt yuv420p -c:a copy -movflags +faststart "$dir/ffmpeg.mp4")
one=$(t target/release/spotenc transcode "$clip" "$dir/spotenc-1w.mp4" --preset "$preset" --crf 23 --keyint 60 \
  --chunk-seconds 5 --workers 1)
two=$(t target/release/spotenc transcode "$clip" "$dir/spotenc-2w.mp4" --preset "$preset" --crf 23 --keyint 60 \
  --chunk-seconds 5 --workers 2)
for f in ffmpeg spotenc-1w spotenc-2w; do
  n=$(ffprobe -v error -select_streams v:0 -count_frames -show_entries stream=nb_read_frames -of csv=p=0 "$dir/$f.mp4")
  [ "$n" = "$frames" ] || { echo "bench: $f.mp4 has $n frames, expected $frames" >&2; exit 1; }
done
printf '%-22s %8s %8s %8s\n' run seconds fps ratio
for row in "ffmpeg-cli $base" "spotenc-1-worker $one" "spotenc-2-workers $two"; do
  set -- $row
  awk -v n="$1" -v t="$2" -v f="$frames" -v b="$base" 'BEGIN { printf "%-22s %8.2f %8.1f %8.3f\n", n, t, f / t, b / t }'
done
echo "(ratio = ffmpeg-cli seconds / run seconds; above 1 is faster than the ffmpeg CLI)"
