#!/usr/bin/env bash
# Installs what spotenc needs to build and test on Debian 12, if missing:
# FFmpeg 5.1 libraries and CLI tools, clang/libclang for bindgen, pkg-config,
# protoc, redis-server, openssl and curl for the tests, Prometheus (server
# and promtool) for the capacity-planning tests and rule checks, and the
# Garage S3 server (built with cargo). Safe to run repeatedly; does nothing when all is present.
set -euo pipefail

need=()
have_pkg() { dpkg-query -W -f='${Status}' "$1" 2>/dev/null | grep -q "install ok installed"; }
for p in libavcodec-dev libavformat-dev libavutil-dev libswscale-dev libswresample-dev \
         libavfilter-dev libavdevice-dev clang libclang-dev pkg-config ffmpeg protobuf-compiler \
         redis-server openssl curl prometheus; do
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
# Garage, the S3-compatible server the storage tests run against (about 10 min
# to build the first time on 2 cores).
if ! command -v garage >/dev/null; then
  echo "setup: building garage 2.5.0 (first time only)" >&2
  cargo install garage@2.5.0 --locked -q
fi
