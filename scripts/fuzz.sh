#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with ASan and UBSan) into build-fuzz/ and runs
# each for a bounded time on its seed corpus (tests/fuzz/corpus/<target>/). New inputs go to a
# scratch corpus, never into the repository; a crash, a sanitizer report, a leak, a timeout or an
# out-of-memory stops with the input saved under build-fuzz/artifacts/ and a non-zero exit.
#
#   scripts/fuzz.sh [TARGET ...]     FUZZ_SECONDS=per target (default 25), FUZZ_JOBS (default 1)
#
# FUZZ_SECONDS=0 runs each target once over its seed corpus and nothing else (no mutation): the
# deterministic regression check that scripts/test.sh (CI) runs. Findings of timed runs that are
# fixed join the corpus, so they stay fixed.
#
# Reproduce a finding: build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-25}
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_safetensors fuzz_shard fuzz_tokenizer_json fuzz_tiktoken fuzz_config_toml fuzz_encode_decode)
fi
cc=${FUZZ_CC:-clang-14}
cxx=${FUZZ_CXX:-clang++-14}
command -v "$cxx" >/dev/null || { echo "fuzz: $cxx not found (scripts/install_deps.sh --tests installs clang-14)"; exit 1; }
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache)
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLMFORGE_CUDA=OFF -DLMFORGE_FUZZ=ON \
  -DLMFORGE_BUILD_TESTS=OFF -DLMFORGE_BUILD_BENCH=OFF -DCMAKE_C_COMPILER="$cc" -DCMAKE_CXX_COMPILER="$cxx" \
  "${launcher[@]}" >/dev/null
ninja -C "$build" -j"$(nproc)" "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One thread per run: the libraries' thread pools would only compete with each other.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
status=0
for t in "${targets[@]}"; do
  scratch=$(mktemp -d "/tmp/lmforge_$t.XXXXXX")
  artifacts="$build/artifacts/$t"
  mkdir -p "$artifacts"
  if [ "$seconds" = 0 ]; then
    echo "fuzz: $t over its seed corpus"
    mode=(-runs=0 "tests/fuzz/corpus/$t")
  else
    echo "fuzz: $t for ${seconds}s"
    mode=("$scratch" "tests/fuzz/corpus/$t" -max_total_time="$seconds")
  fi
  if ! "$build/tests/fuzz/$t" "${mode[@]}" -timeout=20 \
       -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$artifacts/" > "$build/artifacts/$t.log" 2>&1; then
    tail -40 "$build/artifacts/$t.log"
    echo "fuzz: $t FAILED; the input is in $artifacts/"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/artifacts/$t.log" | tr '\n' ' '
    echo "corpus: $(ls "$scratch" | wc -l) new inputs"
  fi
  rm -rf "$scratch"
done
exit $status
