#!/usr/bin/env bash
# Benchmark (not a test): three renditions (1080p, 720p, 480p) of one
# 1080p clip, in the same run, as
#   1. the ffmpeg CLI: one decode, split into three x264 encodes;
#   2. spotenc, one job with two --rendition (one decode per chunk);
#   3. spotenc, three separate jobs (three decodes per chunk).
# Same x264 settings throughout; prints wall times and the ratios.
#
#   bench/renditions.sh [seconds] [preset] [workers]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-20}
preset=${2:-veryfast}
workers=${3:-2}
. bench/clip.sh
t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'; }
x264=(-c:v libx264 -preset "$preset" -g 60 -c:a aac -b:a 128k)
sp=(target/release/spotenc transcode --workers "$workers" --preset "$preset" --keyint 60 --chunk-seconds 5 --audio-reencode)

echo "clip: $clip, x264 preset $preset, renditions 1080p crf 23, 720p crf 24, 480p crf 26; $(nproc) cores, $workers spotenc workers"
ff=$(t ffmpeg -hide_banner -y -i "$clip" -filter_complex \
  "[0:v]split=3[a][b][c];[b]scale=1280:720[b2];[c]scale=854:480:force_original_aspect_ratio=decrease,scale=trunc(iw/2)*2:trunc(ih/2)*2[c2]" \
  -map "[a]" -map 0:a "${x264[@]}" -crf 23 "$dir/r-ff-1080.mp4" \
  -map "[b2]" -map 0:a "${x264[@]}" -crf 24 "$dir/r-ff-720.mp4" \
  -map "[c2]" -map 0:a "${x264[@]}" -crf 26 "$dir/r-ff-480.mp4")
one=$(t "${sp[@]}" "$clip" "$dir/r-one-1080.mp4" --crf 23 \
  --rendition "$dir/r-one-720.mp4,scale=1280x720,crf=24" \
  --rendition "$dir/r-one-480.mp4,scale=854x480,crf=26")
three=$(t sh -c "${sp[*]} $clip $dir/r-3-1080.mp4 --crf 23 && ${sp[*]} $clip $dir/r-3-720.mp4 --scale 1280x720 --crf 24 && ${sp[*]} $clip $dir/r-3-480.mp4 --scale 854x480 --crf 26")
for f in r-ff-480 r-one-480 r-3-480; do
  printf '%s: %s frames\n' "$f" "$(ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$dir/$f.mp4")"
done
awk -v ff="$ff" -v one="$one" -v three="$three" 'BEGIN {
  printf "ffmpeg CLI, one decode:      %7.2f s\n", ff
  printf "spotenc, one job:            %7.2f s  (time ratio to ffmpeg %.3f)\n", one, one / ff
  printf "spotenc, three jobs:         %7.2f s  (time ratio to ffmpeg %.3f)\n", three, three / ff
  printf "one job / three jobs:        %.3f\n", one / three
}'
