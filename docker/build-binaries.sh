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
#   docker/build-binaries.sh --cook          `cargo chef cook` the same builds'
#                                            dependencies (release)
#   docker/build-binaries.sh --list          the paths above, one per line
#
# docker/Dockerfile runs it in its builder stage (release), and
# scripts/images.sh --from-binaries on the host, so both image builds get the
# same binaries built the same way. Debug information is stripped: a spot
# node pulls the image at every boot (symbol names stay, for backtraces).
set -eu

paths="usr/local/bin/spotenc usr/local/bin/cpu-worker usr/local/bin/gpu-worker opt/operator/spotenc"
if [ "${1:-}" = --list ]; then
  for p in $paths; do echo "/$p"; done
  exit 0
fi

# The three builds. Each is copied out before the next: the lean and the
# operator builds of spotenc-cli write the same target/<profile>/spotenc.
build() { # what, then cargo's package and feature flags
  what=$1
  shift
  if [ "$cook" = 1 ]; then
    cargo chef cook --release --locked --recipe-path recipe.json "$@"
  else
    cargo build --profile "$profile" --locked "$@"
    case "$what" in
      lean) cp "$target/spotenc" "$out/usr/local/bin/spotenc" ;;
      operator) cp "$target/spotenc" "$out/opt/operator/spotenc" ;;
      workers) cp "$target/cpu-worker" "$target/gpu-worker" "$out/usr/local/bin/" ;;
    esac
  fi
}

cook=0 profile=release out=""
if [ "${1:-}" = --cook ]; then
  cook=1
else
  out=${1:?usage: docker/build-binaries.sh OUT [PROFILE] | --cook | --list}
  profile=${2:-release}
  dir=$profile
  [ "$profile" = dev ] && dir=debug
  target=${CARGO_TARGET_DIR:-target}/$dir
  mkdir -p "$out/usr/local/bin" "$out/opt/operator"
fi

build lean -p spotenc-cli --no-default-features
if [ "$profile" = release ]; then
  build operator -p spotenc-cli --no-default-features --features operator
fi
build workers -p cpu-worker -p gpu-worker
if [ "$cook" = 0 ]; then
  for f in "$out"/usr/local/bin/* "$out"/opt/operator/*; do
    if [ -f "$f" ]; then strip --strip-debug "$f"; fi
  done
fi
