#!/bin/sh
# Builds the binaries the images carry and lays them out under OUT, the paths
# the Dockerfile's runtime stages copy from its `builder` stage:
#
#   OUT/usr/local/bin/spotenc      the coordinator's lean build: no FFmpeg,
#                                  kube, plotters or allocator
#   OUT/usr/local/bin/cpu-worker
#   OUT/usr/local/bin/gpu-worker
#   OUT/opt/operator/spotenc       with the `operator` feature alone
#                                  (release only: only the full build makes
#                                  the operator image)
#
#   docker/build-binaries.sh OUT [PROFILE]   PROFILE: release (default) or dev
#   docker/build-binaries.sh --list          the paths above, one per line
#
# docker/Dockerfile runs it in its builder stage (release), and
# scripts/images.sh --from-binaries on the host (dev, stripped), so both
# image builds get the same binaries built the same way.
set -eu

paths="usr/local/bin/spotenc usr/local/bin/cpu-worker usr/local/bin/gpu-worker opt/operator/spotenc"
if [ "$1" = --list ]; then
  for p in $paths; do echo "/$p"; done
  exit 0
fi
out=$1 profile=${2:-release}
dir=$profile
[ "$profile" = dev ] && dir=debug
target=${CARGO_TARGET_DIR:-target}/$dir
mkdir -p "$out/usr/local/bin" "$out/opt/operator"

# Each build is copied out before the next: the lean and the operator builds
# of spotenc-cli write the same target/<profile>/spotenc.
cargo build --profile "$profile" --locked -p spotenc-cli --no-default-features
cp "$target/spotenc" "$out/usr/local/bin/spotenc"
if [ "$profile" = release ]; then
  cargo build --profile "$profile" --locked -p spotenc-cli --no-default-features --features operator
  cp "$target/spotenc" "$out/opt/operator/spotenc"
fi
cargo build --profile "$profile" --locked -p cpu-worker -p gpu-worker
cp "$target/cpu-worker" "$target/gpu-worker" "$out/usr/local/bin/"
if [ "$profile" != release ]; then
  # Debug information makes a dev build's binaries hundreds of megabytes.
  strip --strip-debug "$out"/usr/local/bin/*
fi
