#!/usr/bin/env bash
# From raw text to a trained, evaluated language model in about five minutes on two CPU cores.
#
#   scripts/quickstart.sh                 # the King James Bible (Debian's bible-kjv) as corpus
#   scripts/quickstart.sh my.txt more.txt # your own text files (paragraphs are documents)
#
# Steps: byte-level BPE tokenizer (4096 ids) -> token shards (90% train / 10% validation, split
# by paragraph) -> the configs/quickstart.toml model trained with AdamW -> validation loss,
# perplexity and bits per byte against the corpus's unigram entropy -> a generated sample.
# Everything lands in one run directory (printed at the end). The same seed gives the same
# numbers on the same machine and thread count.
#
# Environment: LMFORGE (the binary; default: build/lmforge, else `lmforge` on PATH),
# QUICKSTART_DIR (default runs/quickstart-<date>-<time>), SEED (default 1337), STEPS (default
# from the config), DEVICE (cpu, cuda or auto; default auto: cuda when nvidia-smi sees a GPU and the
# binary was built with CUDA, else cpu), OMP_NUM_THREADS.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
SEED="${SEED:-1337}"
RUN="${QUICKSTART_DIR:-runs/quickstart-$(date +%Y%m%d-%H%M%S)}"
DEVICE="${DEVICE:-auto}"
# OpenBLAS keeps its own thread count; give it the same number of threads as OpenMP.
if [[ -n "${OMP_NUM_THREADS:-}" ]]; then export OPENBLAS_NUM_THREADS="${OPENBLAS_NUM_THREADS:-$OMP_NUM_THREADS}"; fi

LMFORGE="${LMFORGE:-}"
if [[ -z "$LMFORGE" ]]; then
  # Install what is missing (Debian packages) and build the binary.
  "$ROOT/scripts/install_deps.sh"
  LMFORGE_BUILD_TARGETS=lmforge "$ROOT/scripts/build.sh"
  LMFORGE="$ROOT/build/lmforge"
fi

stage() { printf '\n== %s ==\n' "$*"; }
elapsed() { printf '   (%ds)\n' "$((SECONDS - $1))"; }

if [[ "$DEVICE" == auto ]]; then
  DEVICE=cpu
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L 2>/dev/null | grep -q '^GPU' &&
     ldd "$(command -v "$LMFORGE" || echo "$LMFORGE")" 2>/dev/null | grep -q libcudart; then
    DEVICE=cuda
  fi
fi
echo "device: $DEVICE"

mkdir -p "$RUN"
T0=$SECONDS

stage "corpus"
if [[ $# -gt 0 ]]; then
  INPUTS=("$@")
  for f in "${INPUTS[@]}"; do [[ -f "$f" ]] || { echo "quickstart: no such file: $f" >&2; exit 1; }; done
  echo "your files: ${INPUTS[*]}"
else
  if ! command -v bible >/dev/null 2>&1; then
    echo "quickstart: the default corpus needs the 'bible' program (Debian package bible-kjv);" >&2
    echo "install it or pass your own text files: scripts/quickstart.sh FILE..." >&2
    exit 1
  fi
  # One verse per line; chapters are separated by blank lines. Each chapter's heading
  # ("Genesis 1") is joined to its verses so that a chapter is one paragraph, one document.
  bible -l100000 gen1:1-rev22:21 |
    awk 'heading && $0 == "" { heading = 0; next } { heading = ($0 ~ /^[^ ].* [0-9]+$/); print }' \
      > "$RUN/kjv.txt"
  INPUTS=("$RUN/kjv.txt")
  echo "King James Bible: $(wc -c < "$RUN/kjv.txt") bytes -> $RUN/kjv.txt"
fi

stage "tokenizer (byte-level BPE, 4096 ids)"
t=$SECONDS
"$LMFORGE" tokenizer train --input "${INPUTS[@]}" --vocab-size 4096 --output "$RUN/tokenizer"
elapsed $t

stage "token shards (90/10 by paragraph)"
t=$SECONDS
"$LMFORGE" tokenize --tokenizer "$RUN/tokenizer/tokenizer.json" --input "${INPUTS[@]}" --output "$RUN/data" \
  --val-fraction 0.1 --documents paragraph
elapsed $t

stage "training (configs/quickstart.toml)"
t=$SECONDS
OVERRIDES=(--set "data.path=$RUN/data" --set "train.out_dir=$RUN/train" --set "train.seed=$SEED"
           --set "train.device=$DEVICE")
[[ -n "${STEPS:-}" ]] && OVERRIDES+=(--set "train.steps=$STEPS")
"$LMFORGE" train --config "$ROOT/configs/quickstart.toml" "${OVERRIDES[@]}"
elapsed $t

stage "evaluation on the whole validation split"
t=$SECONDS
"$LMFORGE" eval --checkpoint "$RUN/train" --data "$RUN/data" --device "$DEVICE"
elapsed $t

stage "a sample (temperature 0.8, top-k 40)"
PROMPT="${PROMPT:-And God said}"
"$LMFORGE" generate --checkpoint "$RUN/train" --prompt "$PROMPT" --max-new-tokens 120 --temperature 0.8 \
  --top-k 40 --seed "$SEED"

stage "done in $((SECONDS - T0))s"
echo "run directory: $RUN"
echo "  metrics:     $RUN/train/metrics.jsonl"
if [[ -f "$RUN/train/report.html" ]]; then
  echo "  report:      $RUN/train/report.html   (open in a browser: loss, learning rate, throughput, memory)"
fi
echo "  checkpoint:  $(ls -d "$RUN"/train/checkpoints/step_* | sort -t_ -k2 -n | tail -1)"
echo "  try:         $LMFORGE generate --checkpoint $RUN/train --prompt \"In the beginning\" --temperature 0"
