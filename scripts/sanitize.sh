#!/usr/bin/env bash
# Builds the CPU unit tests with AddressSanitizer and UndefinedBehaviorSanitizer in the
# instrumented tree the fuzz targets use (scripts/sanitized_build.sh, build-fuzz/) and runs them,
# split over one process per core (gtest sharding). scripts/test.sh (CI) runs it.
#
#   scripts/sanitize.sh                 the unit tests less the long end-to-end runs listed below
#   scripts/sanitize.sh FILTER          a gtest filter instead: scripts/sanitize.sh '*'  (all),
#                                       scripts/sanitize.sh 'Checkpoint*'
#
# Left out by default: tests that repeat whole training, quantization or generation runs for
# minutes to compare their results (bit-identical resume, bf16 against f32, int8 perplexity,
# batched against one-at-a-time generation, measured against predicted memory, non-finite-loss
# recovery), and those that loop simple code millions of times for statistics (random-number
# moments, float conversion against a search, GEMM peak measurements, 16,000 speculative
# draws). Each drives code that shorter tests run too (a checkpoint save and restore, a bf16
# step, a quantized forward, a batched decode step, one conversion, one speculative draw), so
# under the sanitizers they would add minutes and no code; the optimized build (scripts/test.sh)
# runs them all.
set -euo pipefail
cd "$(dirname "$0")/.."
build=${FUZZ_BUILD_DIR:-build-fuzz}
long_runs=(
  'Quantize.Int8PerplexityIsWithinOnePercentOfF32' 'Quantize.CheckpointLoadsAsItWasQuantized'
  'Quantize.BadQuantizedFilesNameTheTensor' '*Accounting.PredictedPeakMemoryWithinTenPercentOfMeasured'
  'NnOps.AttentionMemoryIsLinearInSequenceLength' '*.ResumedRunIsBitIdentical' 'TrainerTest.Bf16TrainingTracksF32'
  'TrainerTest.F16*' 'BatchGenerate.BatchedEqualsOneAtATime*' 'BatchGenerate.QuantizedModelBatchedEqualsOneAtATime'
  'Transformer.EveryArchitectureSwitchPassesAFiniteDifferenceCheck' 'TrainerTest.NonFiniteLoss*'
  'Random.TruncatedNormalBoundsAndMoments' 'FloatConvert.RandomF32MatchesSearchReference' 'MatmulPeakCache.*'
  'Speculative.SamplingDrawsTheTargetDistribution'
)
default_filter="-$(IFS=:; echo "${long_runs[*]}")"
filter=${1:-$default_filter}
FUZZ_BUILD_DIR="$build" scripts/sanitized_build.sh lmforge_tests
export ASAN_OPTIONS=${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
# One thread per test process: the shards already use every core.
shards=$(nproc)  # before OMP_NUM_THREADS is set: nproc honours it
export OMP_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1
pids=()
for ((i = 0; i < shards; ++i)); do
  GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$i "$build/tests/lmforge_tests" --gtest_filter="$filter" \
    --gtest_brief=1 > "$build/sanitize_shard_$i.log" 2>&1 &
  pids+=($!)
done
status=0
for ((i = 0; i < shards; ++i)); do
  if ! wait "${pids[$i]}"; then
    tail -60 "$build/sanitize_shard_$i.log"
    echo "sanitize: shard $i of $shards FAILED (log: $build/sanitize_shard_$i.log)"
    status=1
  else
    grep -E "^\[  PASSED  \]|tests? ran" "$build/sanitize_shard_$i.log" | tr '\n' ' '
    echo "(shard $i of $shards)"
  fi
done
exit $status
