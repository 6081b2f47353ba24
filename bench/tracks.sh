#!/usr/bin/env bash
# Benchmark (not a test): what keeping every track costs. A 2-minute 1080p
# source with 4 audio tracks (AAC stereo twice, AC-3 5.1, FLAC stereo) and
# 2 subtitle tracks against the same video with its first audio track only,
# through spotenc and through the ffmpeg CLI doing the same mapping in one
# process, in the same run.
#
#   bench/tracks.sh [preset] [workers]
#
# Prints each run's wall time and the 4-track/1-track ratio of each tool
# (the goal for spotenc: at most 1.10, since audio tasks run beside the
# video), and spotenc's time against the CLI's.
set -euo pipefail
cd "$(dirname "$0")/.."
preset=${1:-ultrafast}
workers=${2:-2}
scripts/setup.sh --demo
cargo build --release -q -p spotenc-cli
bin=${CARGO_TARGET_DIR:-target}/release/spotenc
dir=bench/out/tracks
mkdir -p "$dir"

many=$dir/src-4a2s.mkv
one=$dir/src-1a.mkv
if [ ! -f "$many" ] || [ ! -f "$one" ]; then
  printf '1\n00:00:01,000 --> 00:00:03,000\nHello\n\n2\n00:01:00,000 --> 00:01:02,000\nWorld\n' >"$dir/a.srt"
  printf '1\n00:00:05,000 --> 00:00:07,000\nHola\n' >"$dir/b.srt"
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=25:duration=120" \
    -f lavfi -i "sine=f=440:sample_rate=48000:duration=120,pan=stereo|c0=c0|c1=c0" \
    -f lavfi -i "sine=f=550:sample_rate=48000:duration=120,pan=stereo|c0=c0|c1=c0" \
    -f lavfi -i "sine=f=220:sample_rate=48000:duration=120,pan=5.1(side)|c0=c0|c1=c0|c2=c0|c3=c0|c4=c0|c5=c0" \
    -f lavfi -i "sine=f=330:sample_rate=48000:duration=120,pan=stereo|c0=c0|c1=c0" \
    -i "$dir/a.srt" -i "$dir/b.srt" \
    -map 0:v -map 1:a -map 2:a -map 3:a -map 4:a -map 5:s -map 6:s \
    -c:v libx264 -preset veryfast -crf 18 -g 50 \
    -c:a:0 aac -c:a:1 aac -c:a:2 ac3 -c:a:3 flac -c:s srt \
    -metadata:s:a:0 language=eng -metadata:s:a:1 language=fre \
    -metadata:s:a:2 language=spa -metadata:s:a:3 language=ger \
    -metadata:s:s:0 language=eng -metadata:s:s:1 language=spa "$many"
  ffmpeg -hide_banner -loglevel error -y -i "$many" -map 0:v -map 0:a:0 -c copy "$one"
fi

t() { local s e; s=$(date +%s.%N); "$@" >/dev/null 2>&1; e=$(date +%s.%N); awk -v s="$s" -v e="$e" 'BEGIN { print e - s }'; }
x264=(-c:v libx264 -preset "$preset" -crf 23 -g 50 -flags +cgop)
spot=(--preset "$preset" --crf 23 --keyint 50 --chunk-seconds 10 --workers "$workers")

echo "source: 120 s 1080p25; x264 preset $preset crf 23; spotenc $workers workers, 10 s chunks; $(nproc) cores"
s1=$(t "$bin" transcode "$one" "$PWD/$dir/spotenc-1a.mkv" "${spot[@]}")
s4=$(t "$bin" transcode "$many" "$PWD/$dir/spotenc-4a2s.mkv" "${spot[@]}")
c1=$(t ffmpeg -hide_banner -y -i "$one" -map 0 "${x264[@]}" -c:a copy "$dir/cli-1a.mkv")
c4=$(t ffmpeg -hide_banner -y -i "$many" -map 0 "${x264[@]}" -c:a aac -c:a:0 copy -c:a:1 copy \
  -c:s copy "$dir/cli-4a2s.mkv")
for f in spotenc-4a2s cli-4a2s; do
  n=$(ffprobe -v error -show_entries stream=codec_type -of csv=p=0 "$dir/$f.mkv" | sort | uniq -c | tr -s ' ' | tr '\n' ';')
  echo "$f streams:$n"
done
printf '%-12s %10s %10s %8s\n' tool 1-track 4a+2s ratio
awk -v a="$s1" -v b="$s4" 'BEGIN { printf "%-12s %10.2f %10.2f %8.3f\n", "spotenc", a, b, b / a }'
awk -v a="$c1" -v b="$c4" 'BEGIN { printf "%-12s %10.2f %10.2f %8.3f\n", "ffmpeg-cli", a, b, b / a }'
awk -v s="$s4" -v c="$c4" 'BEGIN { printf "spotenc/ffmpeg-cli, 4a+2s: %.3f\n", s / c }'
