#!/usr/bin/env bash
# Builds the simulator the way bench/simulate.sh times it and prints the
# binary's path: the sim profile (whole-program LTO, see Cargo.toml),
# optimised with a profile (PGO) recorded on two days each of gpu-mix and
# chunk-sweep. Neither scenario is one the benchmark times for speed
# (seed-5m-spot and scale-50m), so the profile is not fitted to them.
#
#   bench/build-sim.sh          PGO build, or the plain sim build with a
#                               line on stderr saying why PGO is off
#   SPOTENC_SIM_PGO=0 bench/build-sim.sh    the plain sim build
#
# Why PGO: under callgrind's cache model the event loop missed the
# instruction cache about 440 times per event at 7b09917; the profile lets LLVM lay
# hot code out together and move cold code away (measured in bench/RESULTS.md's
# speed paragraph). The three steps (instrumented build, training run,
# build with the merged profile) are plain cargo and llvm-profdata;
# cargo-pgo wraps the same steps and would be one more tool to install.
#
# Each build has a target directory of its own under the usual one, as
# RUSTFLAGS differ and would otherwise rebuild every crate each time.
set -euo pipefail
cd "$(dirname "$0")/.."
target=${CARGO_TARGET_DIR:-$PWD/target}
build() { cargo build --profile sim -q --bins -p spotenc-cli --no-default-features --features sim; }

plain() {
  echo "build-sim: $1; timing the plain sim build" >&2
  build >&2
  echo "$target/sim/spotenc"
}

[ "${SPOTENC_SIM_PGO:-1}" = 0 ] && { plain "SPOTENC_SIM_PGO=0"; exit 0; }
# llvm-profdata must read the format of rustc's own LLVM: rustup's
# llvm-tools component, not the distribution's.
bin="$(rustc --print sysroot)/lib/rustlib/$(rustc -vV | sed -n 's/^host: //p')/bin"
if [ ! -x "$bin/llvm-profdata" ]; then
  rustup component add llvm-tools >&2 || true
fi
[ -x "$bin/llvm-profdata" ] || { plain "no llvm-profdata (rustup component add llvm-tools failed)"; exit 0; }

raw="$target/pgo/raw" prof="$target/pgo/sim.profdata" gen="$target/pgo/gen/sim/spotenc"
CARGO_TARGET_DIR="$target/pgo/gen" RUSTFLAGS="-Cprofile-generate=$raw" build >&2
# Trained again only when the instrumented build changed: a new profile
# file would rebuild the optimised one, every crate of it.
if [ ! -f "$prof" ] || [ "$gen" -nt "$prof" ]; then
  rm -rf "$raw"
  mkdir -p "$raw"
  ex=examples/simulate
  for s in gpu-mix chunk-sweep; do
    w="$target/pgo/$s.workload.toml"
    sed 's/^days *=.*/days = 2/' "$ex/$s.workload.toml" >"$w"
    grep -q '^days = 2$' "$w" || { echo "build-sim: no days line in $s's workload" >&2; exit 1; }
    LLVM_PROFILE_FILE="$raw/$s-%p.profraw" "$gen" simulate \
      --pools "$ex/$s.pools.toml" --workload "$w" --json >/dev/null
  done
  "$bin/llvm-profdata" merge -o "$prof" "$raw"
fi
CARGO_TARGET_DIR="$target/pgo/use" RUSTFLAGS="-Cprofile-use=$prof" build >&2
echo "$target/pgo/use/sim/spotenc"
