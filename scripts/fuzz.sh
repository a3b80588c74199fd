#!/usr/bin/env bash
# Builds the libFuzzer targets (tests/fuzz/, clang with ASan and UBSan) into build-fuzz/
# (scripts/sanitized_build.sh) and runs each for a bounded time on its seed corpus
# (tests/fuzz/corpus/<target>/). New inputs go to a scratch corpus, never into the repository; a
# crash, a sanitizer report, a leak, a timeout or an out-of-memory stops with the input saved
# under build-fuzz/artifacts/<target>/, printed in base64 as well (a CI log then carries it), and a
# non-zero exit.
#
#   scripts/fuzz.sh [TARGET ...]     FUZZ_SECONDS=per target (default 25), FUZZ_SEED (default random)
#
# A timed run first runs every seed input, so the earlier findings (which join the corpus once
# fixed) are checked every time. FUZZ_SECONDS=0 runs the seed corpus only (no mutation).
#
# Reproduce a finding: build-fuzz/tests/fuzz/<target> build-fuzz/artifacts/<target>/crash-...
# (or: base64 -d > input, from the log).
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${FUZZ_SECONDS:-25}
build=${FUZZ_BUILD_DIR:-build-fuzz}
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(fuzz_safetensors fuzz_shard fuzz_tokenizer_json fuzz_tiktoken fuzz_config_toml fuzz_encode_decode)
fi
FUZZ_BUILD_DIR="$build" scripts/sanitized_build.sh "${targets[@]}"

export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
jobs_max=$(nproc)  # before OMP_NUM_THREADS is set: nproc honours it
# One thread per run: the libraries' thread pools would only compete with each other.
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
seed=${FUZZ_SEED:-$(( (RANDOM << 15 | RANDOM) + 1 ))}
# Each target runs single-threaded; as many run side by side as there are cores. Each one's
# report goes to build-fuzz/artifacts/<target>.report and is printed in the targets' order.
run_target() {
  local t=$1 scratch artifacts mode
  scratch=$(mktemp -d "/tmp/lmforge_$t.XXXXXX")
  artifacts="$build/artifacts/$t"
  rm -rf "$artifacts"
  mkdir -p "$artifacts"
  if [ "$seconds" = 0 ]; then
    echo "fuzz: $t over its seed corpus"
    mode=(-runs=0 "tests/fuzz/corpus/$t")
  else
    echo "fuzz: $t for ${seconds}s (FUZZ_SEED=$seed)"
    mode=("$scratch" "tests/fuzz/corpus/$t" -max_total_time="$seconds" -seed="$seed")
  fi
  local ok=0
  if ! "$build/tests/fuzz/$t" "${mode[@]}" -timeout=20 \
       -rss_limit_mb=2048 -malloc_limit_mb=1024 -max_len=65536 -print_final_stats=1 \
       -artifact_prefix="$artifacts/" > "$build/artifacts/$t.log" 2>&1; then
    ok=1
    tail -40 "$build/artifacts/$t.log"
    echo "fuzz: $t FAILED; the input is in $artifacts/:"
    for f in "$artifacts"/*; do
      [ -f "$f" ] || continue
      echo "$f ($(wc -c < "$f") bytes), base64:"
      base64 -w 76 "$f" | head -200
    done
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/artifacts/$t.log" | tr '\n' ' '
    echo "corpus: $(ls "$scratch" | wc -l) new inputs"
  fi
  rm -rf "$scratch"
  return $ok
}
# The exit status of each target goes to a file: `wait -n` may have reaped a job already.
mkdir -p "$build/artifacts"
for t in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_max" ]; do wait -n || true; done
  rm -f "$build/artifacts/$t.status"
  (if run_target "$t" > "$build/artifacts/$t.report" 2>&1; then echo 0; else echo 1; fi > "$build/artifacts/$t.status") &
done
wait || true
status=0
for t in "${targets[@]}"; do
  cat "$build/artifacts/$t.report"
  [ "$(cat "$build/artifacts/$t.status" 2>/dev/null)" = 0 ] || status=1
done
exit $status
