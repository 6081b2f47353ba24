#!/usr/bin/env bash
# The whole test suite: installs what is missing, checks formatting and
# lints, builds the binaries the end-to-end tests run, then runs every test.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh --background-garage
# The Python validators' bin directory, for tests/src/lib.rs's `tool`.
SPOTENC_TOOLS_BIN=$(scripts/tools.sh)
export SPOTENC_TOOLS_BIN
cargo fmt --all -- --check
cargo clippy --workspace --all-targets -q -- -D warnings
# The coordinator image's lean build (no FFmpeg, kube, plotters, allocator),
# and the simulator's build (bench/build-sim.sh).
cargo clippy -p spotenc-cli --no-default-features -q -- -D warnings
cargo clippy -p spotenc-cli --no-default-features --features sim -q -- -D warnings
cargo build --workspace --bins -q
scripts/setup.sh --wait-garage
cargo test --workspace -q
