#!/usr/bin/env bash
# Installs what spotenc needs on Debian 12, if missing. Safe to run repeatedly;
# does nothing when all is present.
#
#   scripts/setup.sh --demo   only what building and running spotenc needs:
#                             FFmpeg 5.1 libraries and CLI tools, clang and
#                             libclang (bindgen), pkg-config and protoc.
#   scripts/setup.sh          that, plus what the tests need: redis-server,
#                             openssl and curl, Prometheus (server and
#                             promtool), Docker (docker.io, whose dockerd
#                             scripts/test.sh starts), docker-compose 1.29,
#                             mmdebstrap (scripts/images.sh bootstraps base
#                             images with it), the Garage S3 server (built with
#                             cargo the first time, with only the features the
#                             tests use), Node.js and npm if missing, and the
#                             validators of scripts/tools.sh.
#   scripts/setup.sh --background-garage
#                             the same, but a missing Garage builds in the
#                             background while the caller compiles the
#                             workspace; `scripts/setup.sh --wait-garage`
#                             waits for it (what scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")"

packages=(libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev
          libavfilter-dev clang libclang-dev pkg-config ffmpeg protobuf-compiler)
full=1 background=0
cache=${XDG_CACHE_HOME:-$HOME/.cache}/spotenc
garage_log=$cache/garage-build.log garage_status=$cache/garage-build.status
if [ "${1:-}" = "--wait-garage" ]; then
  # The background build writes its exit status when it ends.
  if ! command -v garage >/dev/null && [ -f "$garage_status.pending" ]; then
    echo "setup: waiting for the garage build" >&2
    builder=$(cat "$garage_status.pending")
    # Until it writes its status, or dies without one.
    while [ ! -f "$garage_status" ] && kill -0 "$builder" 2>/dev/null; do sleep 5; done
  fi
  command -v garage >/dev/null || { echo "setup: no garage; see $garage_log" >&2; exit 1; }
  exit 0
fi
[ "${1:-}" = "--background-garage" ] && background=1
if [ "${1:-}" = "--demo" ]; then
  full=0
else
  packages+=(redis-server openssl curl prometheus docker.io docker-compose mmdebstrap python3-venv)
  # Node.js and npm for the custom-resource validators, unless present.
  command -v npm >/dev/null || packages+=(nodejs npm)
fi

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in "${packages[@]}"; do
  have_pkg "$p" || need+=("$p")
done
if ((${#need[@]})); then
  echo "setup: installing ${need[*]}" >&2
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
command -v cargo >/dev/null || { echo "setup: cargo not found; install Rust (rustup) first" >&2; exit 1; }
((full)) || exit 0

# Garage, the S3-compatible server the storage tests run against, with the
# features they use: the sqlite metadata engine, its C library bundled (no
# metrics, K2V or LMDB, which the default adds).
install_garage() {
  cargo install garage@2.5.0 --locked -q --no-default-features --features bundled-libs,sqlite
}
building() { [ -f "$garage_status.pending" ] && kill -0 "$(cat "$garage_status.pending")" 2>/dev/null; }
if ! command -v garage >/dev/null && ! building; then
  echo "setup: building garage 2.5.0 (first time only)" >&2
  if ((background)); then
    mkdir -p "$cache"
    rm -f "$garage_status"
    (
      status=0
      install_garage || status=$?
      echo "$status" >"$garage_status"
      rm -f "$garage_status.pending"
    ) >"$garage_log" 2>&1 </dev/null &
    echo $! >"$garage_status.pending"
  else
    install_garage
  fi
fi
./tools.sh >/dev/null
