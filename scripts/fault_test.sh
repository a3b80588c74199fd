#!/usr/bin/env bash
# Fault test of training: a tiny run is killed with SIGKILL at random moments (during checkpoint
# writes, pruning, metrics writes and resume) and resumed, again and again, until it finishes.
# Then its metrics.jsonl must be the uninterrupted run's history line for line (losses, learning
# rates, gradient norms, validation and checkpoint events; timings excluded) and its last
# checkpoint's weights and optimizer state bit for bit the uninterrupted run's. After every kill
# each step_N directory must be complete and every metrics line but a torn last one must parse.
#
# Then a full disk: the same run on a small tmpfs (where mounting one is allowed; else under a
# file-size limit, which fails writes the same way) must stop with an error naming the file,
# leaving its complete checkpoints and metrics history intact and resumable.
#
#   scripts/fault_test.sh [LMFORGE]     (default build/lmforge; KILLS=N, SEED=S, FAULT_DIR=D,
#                                        FAULT_NO_TMPFS=1 to use the file-size limit)
set -euo pipefail
cd "$(dirname "$0")/.."
lmforge=$(realpath "${1:-build/lmforge}")
kills=${KILLS:-30}
seed=${SEED:-$$}
RANDOM=$seed
work=${FAULT_DIR:-$(mktemp -d /tmp/lmforge_fault.XXXXXX)}
mkdir -p "$work"
trap 'if mountpoint -q "$work/tmpfs" 2>/dev/null; then umount "$work/tmpfs"; fi; rm -rf "$work"' EXIT
export OMP_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2 OMP_WAIT_POLICY=passive
echo "fault test: $lmforge, $kills kills, seed $seed, in $work"

# ---- data: a deterministic corpus, a small tokenizer, shards with a validation split ----
awk 'BEGIN { srand(7); split("the a of and to in is was he she it that with for on as his her at by", w, " ");
             for (d = 0; d < 300; ++d) { n = 20 + int(rand() * 40); s = "";
               for (i = 0; i < n; ++i) s = s w[1 + int(rand() * 20)] (rand() < 0.1 ? ". " : " ");
               print s; print "" } }' > "$work/corpus.txt"
"$lmforge" tokenizer train --input "$work/corpus.txt" --vocab-size 300 --output "$work/tok" >/dev/null
"$lmforge" tokenize --tokenizer "$work/tok/tokenizer.json" --input "$work/corpus.txt" --output "$work/data" \
  --documents paragraph --val-fraction 0.1 >/dev/null

cat > "$work/run.toml" <<EOF
[model]
vocab_size = 320
context_length = 32
d_model = 32
n_layers = 2
n_heads = 2
d_ff = 64
dropout = 0.1

[data]
path = "$work/data"

[train]
steps = 60
micro_batch_size = 4
seq_len = 32
batch_tokens = 256
log_every = 1
peak_tflops = 1.0

[optim]
lr = 3e-3
warmup_steps = 5

[eval]
every = 10
max_batches = 2

[checkpoint]
every = 2
keep_last = 2
EOF

# The newest step_N directory of a run, or "".
newest_checkpoint() {
  local n
  n=$(ls "$1/checkpoints" 2>/dev/null | grep -E '^step_[0-9]+$' | sort -t_ -k2 -n | tail -1 || true)
  [ -z "$n" ] || echo "$1/checkpoints/$n"
}

train() {  # train OUT_DIR [--resume]
  local out=$1
  shift
  "$lmforge" train --config "$work/run.toml" --set "train.out_dir=\"$out\"" "$@"
}

# metrics.jsonl without what depends on timing or on the run directory's name.
stable_metrics() {
  sed -E 's/"(tokens_per_s|mfu|peak_memory_bytes|elapsed_s)":[^,}]*,?//g; s/"path":"[^"]*"//; s/,}/}/' "$1"
}

# After a kill: every step_N is complete, every metrics line but the last parses as an object.
check_after_kill() {
  local out=$1 d f
  for d in "$out"/checkpoints/step_*; do
    [ -e "$d" ] || continue
    for f in model.safetensors config.json optimizer.safetensors trainer_state.json config.toml; do
      [ -f "$d/$f" ] || { echo "FAIL: $d lacks $f after a kill"; exit 1; }
    done
  done
  if [ -f "$out/metrics.jsonl" ]; then
    local n
    n=$(wc -l < "$out/metrics.jsonl")
    if head -n "$n" "$out/metrics.jsonl" | grep -qv '^{.*}$'; then
      echo "FAIL: $out/metrics.jsonl holds a broken line before its end"; exit 1
    fi
  fi
}

# ---- the uninterrupted run ----
train "$work/ref" >/dev/null
ref_ck=$(newest_checkpoint "$work/ref")
echo "uninterrupted run: $(grep -c '"loss"' "$work/ref/metrics.jsonl") steps, last checkpoint $ref_ck"

# ---- killed at random moments, resumed each time ----
out="$work/killed"
done_run=0
for ((k = 1; k <= kills; ++k)); do
  # lmforge itself in the background (not a subshell around it), so that the kill reaches it.
  "$lmforge" train --config "$work/run.toml" --set "train.out_dir=\"$out\"" --resume >"$work/log.txt" 2>&1 &
  pid=$!
  # 0 to ~1.2 s: the short delays land in start-up and resume, the longer ones among the
  # steps, whose every second ends in a checkpoint write and a prune.
  sleep "0.$((RANDOM % 10))$((RANDOM % 10))"
  [ $((RANDOM % 3)) -eq 0 ] && sleep "0.$((RANDOM % 10))"
  if kill -KILL "$pid" 2>/dev/null; then
    wait "$pid" 2>/dev/null || true
    check_after_kill "$out"
    echo "kill $k: at step $(grep -o '"step":[0-9]*,"loss"' "$out/metrics.jsonl" 2>/dev/null | tail -1 | grep -o '[0-9]*' || echo 0)"
  else
    wait "$pid" || { cat "$work/log.txt"; echo "FAIL: the run failed"; exit 1; }
    done_run=1
    echo "kill $k: the run had already finished"
    break
  fi
done
if [ "$done_run" = 0 ]; then
  train "$out" --resume >"$work/log.txt" 2>&1 || { cat "$work/log.txt"; echo "FAIL: the last resume failed"; exit 1; }
fi

# ---- the history and the final state equal the uninterrupted run's ----
if ! diff <(stable_metrics "$work/ref/metrics.jsonl") <(stable_metrics "$out/metrics.jsonl") >"$work/diff.txt"; then
  head -20 "$work/diff.txt"
  echo "FAIL: metrics.jsonl after kills and resumes differs from the uninterrupted run's"
  exit 1
fi
ck=$(newest_checkpoint "$out")
for f in model.safetensors optimizer.safetensors; do
  cmp -s "$ref_ck/$f" "$ck/$f" || { echo "FAIL: $ck/$f differs from the uninterrupted run's"; exit 1; }
done
leftovers=$(find "$out/checkpoints" -mindepth 1 -maxdepth 1 ! -name 'step_*' | wc -l)
[ "$leftovers" = 0 ] || { echo "FAIL: leftovers in $out/checkpoints"; ls -a "$out/checkpoints"; exit 1; }
echo "killed and resumed run: metrics history and final weights and optimizer state identical"

# ---- a full disk ----
# A checkpoint takes about 370 KB (weights and AdamW moments in f32) and up to three exist at
# once (two kept, one being written): a 2 MB tmpfs with 1.1 MB taken fills up at the third.
disk="$work/tmpfs"
mkdir -p "$disk"
limit=()
if [ -z "${FAULT_NO_TMPFS:-}" ] && mount -t tmpfs -o size=2m tmpfs "$disk" 2>/dev/null; then
  echo "disk full: a 2 MB tmpfs, 1.1 MB of it taken"
  head -c 1100000 /dev/zero > "$disk/filler"
else
  # Without a tmpfs, a file-size limit fails writes past 200 KB (the optimizer state) the same
  # way: the write returns an error (EFBIG, SIGXFSZ ignored) and the run must stop on it.
  echo "disk full: no tmpfs can be mounted here; writes past 200 KB per file fail instead (ulimit -f)"
  limit=(ulimit -f 200)
fi
set +e
(
  trap '' XFSZ
  if [ ${#limit[@]} -gt 0 ]; then "${limit[@]}"; fi
  exec "$lmforge" train --config "$work/run.toml" --set "train.out_dir=\"$disk/run\"" --set train.steps=400 \
    --set checkpoint.every=5
) >"$work/full.txt" 2>&1
rc=$?
set -e
[ "$rc" -ne 0 ] || { tail -5 "$work/full.txt"; echo "FAIL: training on a full disk exited 0"; exit 1; }
grep -Eq "No space left on device|File too large" "$work/full.txt" ||
  { tail -5 "$work/full.txt"; echo "FAIL: the error does not say the disk is full"; exit 1; }
grep -q "$disk/run/" "$work/full.txt" || { tail -5 "$work/full.txt"; echo "FAIL: the error names no file"; exit 1; }
check_after_kill "$disk/run"
[ "$(find "$disk/run/checkpoints" -mindepth 1 -maxdepth 1 -name '.tmp-*' 2>/dev/null | wc -l)" = 0 ] ||
  { echo "FAIL: a temporary checkpoint was left on the full disk"; exit 1; }
echo "full disk: $(grep -E 'No space left on device|File too large' "$work/full.txt" | tail -1)"
# With room again, the run resumes from its newest checkpoint and writes the next one.
rm -f "$disk/filler"
last=$(newest_checkpoint "$disk/run")
if [ -n "$last" ]; then
  "$lmforge" train --config "$work/run.toml" --set "train.out_dir=\"$disk/run\"" --set train.steps=$((${last##*_} + 2)) \
    --resume >"$work/resume.txt" 2>&1 || { tail -5 "$work/resume.txt"; echo "FAIL: could not resume after the full disk"; exit 1; }
  [ -d "$disk/run/checkpoints/step_$((${last##*_} + 2))" ] || { echo "FAIL: no checkpoint after resuming"; exit 1; }
  echo "full disk: resumed from $last once there was room"
fi
echo "fault test passed"
