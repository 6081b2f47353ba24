# Sourced by the benchmarks: set-up, release build, and the 1080p30 test
# clip of $secs seconds (with AAC audio) in bench/out, made once.
scripts/setup.sh
cargo build --release --bins -q
dir=bench/out
mkdir -p "$dir"
clip="$dir/clip-1080p-${secs}s.mp4"
if [ ! -f "$clip" ]; then
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=$secs" \
    -f lavfi -i "sine=frequency=440:sample_rate=48000:duration=$secs" \
    -c:v libx264 -preset veryfast -crf 18 -g 60 -c:a aac -shortest "$clip"
fi
