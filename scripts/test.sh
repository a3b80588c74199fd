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
# The readers of untrusted bytes under libFuzzer with ASan and UBSan, about 25 s per target plus
# their instrumented build (scripts/sanitize.sh runs the unit tests that way; not in this script).
scripts/fuzz.sh
