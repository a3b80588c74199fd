#!/usr/bin/env bash
# Builds the CPU unit tests with AddressSanitizer and UndefinedBehaviorSanitizer
# (-DLMFORGE_SANITIZE=ON) into build-asan/ and runs them. Not part of scripts/test.sh: the
# instrumented build and run take longer than CI's budget allows; run it before a release or
# after touching memory-handling code. Pass a gtest filter to run a part: scripts/sanitize.sh 'Checkpoint*'
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SANITIZE_BUILD_DIR:-build-asan}
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMFORGE_CUDA=OFF -DLMFORGE_SANITIZE=ON \
  -DLMFORGE_BUILD_BENCH=OFF "${launcher[@]}" >/dev/null
ninja -C "$build" -j"$(nproc)" lmforge_tests
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
if [ $# -gt 0 ]; then
  "$build/tests/lmforge_tests" --gtest_filter="$1"
else
  ctest --test-dir "$build" --output-on-failure -j"$(nproc)" -L cpu
fi
