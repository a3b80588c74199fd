#!/usr/bin/env bash
# Configures and builds targets of the instrumented build (clang, ASan + UBSan + libFuzzer's
# coverage, -DLMFORGE_FUZZ=ON) in build-fuzz/: the fuzz targets (scripts/fuzz.sh) and the unit
# tests under the sanitizers (scripts/sanitize.sh) share this one tree, so lmforge's objects are
# compiled once for both.
#
#   scripts/sanitized_build.sh TARGET ...       FUZZ_BUILD_DIR (default build-fuzz)
#
# -O1 with line tables only: faster to compile than -O2 -g, and a sanitizer report still names
# file:line in every frame. -Wno-pass-failed: at -O1 clang does not vectorize the `omp simd`
# loops and would say so for each.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
cc=${FUZZ_CC:-clang-14}
cxx=${FUZZ_CXX:-clang++-14}
command -v "$cxx" >/dev/null || { echo "sanitized build: $cxx not found (scripts/install_deps.sh --tests installs clang-14)"; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_CXX_FLAGS_RELEASE="-O1 -gline-tables-only -Wno-pass-failed" \
  -DLMFORGE_CUDA=OFF -DLMFORGE_FUZZ=ON -DLMFORGE_BUILD_TESTS=ON -DLMFORGE_BUILD_BENCH=OFF \
  -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" "${launcher[@]}" >/dev/null
ninja -C "$build" -j"$(nproc)" "$@"
