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
# The container tests (tests/tests/containers.rs) need a Docker engine and
# the images built from these binaries. Start dockerd unless one answers
# (its socket owned by our group, when not root), and stop only the one
# started here. Without an engine or images, those tests fail with the
# reason; the rest still run.
if ! docker info >/dev/null 2>&1; then
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo -n"
  echo "test: starting dockerd (log: ${TMPDIR:-/tmp}/spotenc-dockerd.log)" >&2
  $sudo dockerd --iptables=false --group "$(id -gn)" >"${TMPDIR:-/tmp}/spotenc-dockerd.log" 2>&1 &
  dockerd_pid=$!
  trap 'status=$?; $sudo kill "$dockerd_pid" 2>/dev/null || true; wait "$dockerd_pid" 2>/dev/null || true; exit $status' EXIT
  for _ in $(seq 60); do
    docker info >/dev/null 2>&1 && break
    kill -0 "$dockerd_pid" 2>/dev/null || break
    sleep 1
  done
fi
if docker info >/dev/null 2>&1; then
  # Compose projects a killed test run left behind (restart: unless-stopped
  # would bring them back with the engine).
  for project in $(docker ps -aq --filter label=com.docker.compose.project \
      --format '{{.Label "com.docker.compose.project"}}' | sort -u | grep '^spotenc-test-' || true); do
    docker ps -aq --filter "label=com.docker.compose.project=$project" | xargs -r docker rm -fv >/dev/null
  done
  scripts/images.sh --from-binaries --tag test || echo "test: the images did not build; the container tests will fail" >&2
else
  echo "test: no Docker engine; the container tests will fail" >&2
fi
scripts/setup.sh --wait-garage
cargo test --workspace -q
