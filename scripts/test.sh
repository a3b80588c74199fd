#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test: the unit tests (those labelled
# `cuda` only when a GPU is present), the fault test of training and the fuzz targets.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh --tests
scripts/build.sh
labels=()
if ! (command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1); then
  echo "no GPU found: skipping tests labelled cuda"
  labels=(-LE cuda)
fi
ctest --test-dir build --output-on-failure -j"$(nproc)" "${labels[@]}"
# Faults during training: kill -9 at random moments and a full disk (about half a minute).
scripts/fault_test.sh build/lmforge
# The readers of untrusted bytes built for libFuzzer with ASan and UBSan, run over their seed
# corpora (every earlier finding included): deterministic, so a red run is a regression. Timed
# fuzzing finds new inputs (scripts/fuzz.sh with FUZZ_SECONDS); it is not run here because a new
# finding would turn an unrelated change red. scripts/sanitize.sh runs the unit tests under the
# sanitizers; not in this script.
FUZZ_SECONDS=0 scripts/fuzz.sh
