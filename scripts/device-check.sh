#!/usr/bin/env bash
# Device check for the GPU worker, on a lent H100/H200 (no NVENC engine;
# NVML, CUDA and NVDEC work; 16 cores). Build the bundle here, carry it
# over, run this from it:
#
#   scripts/device-bundle.sh       # here: device/bundle.tar.xz (< 64 MiB)
#   # device tool: carry ["device/bundle.tar.xz"], timeout_s 480, command:
#   #   mkdir -p /tmp/b && tar -C /tmp/b -xJf device/bundle.tar.xz && /tmp/b/device-check.sh "$OUT"
#
# It shows, in $OUT/report.txt (plus probe.json and the logs):
#   1. real NVML telemetry, and NVENC detected as unavailable with the
#      driver's reason (gpu-worker probe);
#   2. spotenc's NVDEC -> scale_cuda -> CPU encode path completing a chunked
#      job (gpu-worker --gpu-decode), judged by ffprobe/PSNR;
#   3. the CPU fallback completing the same chunked job on all cores and on
#      2 cores (taskset), and the ratio of the times.
# Without a bundle (bin/ and lib/ beside it) it uses target/release and the
# system FFmpeg, so it can be dry-run on a machine with no GPU.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=${1:-/tmp/device-out}
mkdir -p "$out"
if [ -d "$here/bin" ]; then
  export PATH=$here/bin:$PATH
  export LD_LIBRARY_PATH=$here/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}
else
  export PATH=$here/../target/release:$PATH
fi
work=$(mktemp -d)
report=$out/report.txt
: >"$report"
log() { echo "$*" | tee -a "$report"; }
port() { echo $((20000 + RANDOM % 20000)); }
frames() { ffprobe -v error -count_frames -select_streams v:0 -show_entries stream=nb_read_frames -of csv=p=0 "$1"; }
psnr() { ffmpeg -hide_banner -nostats -i "$1" -i "$2" -lavfi "[1:v]scale=1280:720[b];[0:v][b]psnr" -f null - 2>&1 | sed -n 's/.*average:\([0-9.inf]*\).*/\1/p' | tail -1; }

log "== host: $(nproc) cores, $(free -g | awk '/Mem:/{print $2}') GiB"
command -v nvidia-smi >/dev/null && nvidia-smi -L | tee -a "$report"

log "== 1. gpu-worker probe"
gpu-worker probe >"$out/probe.json" 2>"$out/probe.err"
log "exit $?"
tee -a "$report" <"$out/probe.json"
echo | tee -a "$report"

ffmpeg -hide_banner -loglevel error -y -f lavfi -i "testsrc2=size=1920x1080:rate=30:duration=30" \
  -c:v libx264 -preset ultrafast -g 60 "$work/clip.mp4"
src_frames=$(frames "$work/clip.mp4")
log "clip: 1080p30, $src_frames frames"

cport=$(port)
SPOTENC_INPUT_ROOTS="$work" SPOTENC_OUTPUT_ROOTS="$work" spotenc coordinator --listen "127.0.0.1:$cport" --data-dir "$work/coord" >"$out/coordinator.log" 2>&1 &
coord=$!
url=http://127.0.0.1:$cport
sleep 1

# run_job NAME WORKER-PREFIX WORKER-ARGS... : one chunked job through one
# gpu-worker; prints the seconds it took.
run_job() {
  local name=$1 prefix=$2
  shift 2
  $prefix gpu-worker --coordinator "$url" --cloud none --name "$name" "$@" >"$out/$name.log" 2>&1 &
  local w=$!
  local t0
  t0=$(date +%s.%N)
  spotenc submit "$work/clip.mp4" "$work/$name.mp4" --coordinator "$url" \
    --chunk-seconds 5 --preset fast --scale 1280x720 --wait >"$out/$name.submit" 2>&1
  local rc=$?
  local t1
  t1=$(date +%s.%N)
  spotenc workers --json --coordinator "$url" >"$out/$name.workers.json" 2>/dev/null
  kill -TERM "$w" 2>/dev/null
  wait "$w" 2>/dev/null
  log "$name: submit exit $rc, $(awk "BEGIN{printf \"%.2f\", $t1 - $t0}") s, frames $(frames "$work/$name.mp4" 2>/dev/null) of $src_frames, PSNR vs source $(psnr "$work/$name.mp4" "$work/clip.mp4") dB, fallbacks logged: $(grep -c 'falls back' "$out/$name.log")"
  awk "BEGIN{print $t1 - $t0}" >"$out/$name.seconds"
}

log "== 2. NVDEC -> scale_cuda -> CPU encode (gpu-worker --gpu-decode)"
run_job nvdec "" --gpu-decode
grep -m3 -E 'slots planned|falls back|NVDEC' "$out/nvdec.log" | tee -a "$report"
grep -o '"telemetry":\[[^]]*\]' "$out/nvdec.workers.json" | tee -a "$report"

log "== 3. CPU fallback: all cores, then 2 cores"
run_job cpu-all ""
run_job cpu-2 "taskset -c 0,1"
a=$(cat "$out/cpu-all.seconds")
b=$(cat "$out/cpu-2.seconds")
awk "BEGIN{printf \"all cores %.2f s, 2 cores %.2f s: time ratio all/2 = %.3f (speed-up %.2fx)\\n\", $a, $b, $a / $b, $b / $a}" | tee -a "$report"

kill "$coord" 2>/dev/null
wait 2>/dev/null
log "== done"
