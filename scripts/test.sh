#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test: the unit tests (those labelled
# `cuda` only when a GPU is present), the fault test of training, the unit tests under the
# sanitizers and the fuzz targets.
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
# Under ASan and UBSan, in one instrumented build (clang, build-fuzz/) whose objects the unit
# tests and the fuzz targets share: the unit tests less a few long end-to-end runs (the list
# and why: scripts/sanitize.sh), then each fuzz target for FUZZ_SECONDS (20) from its seed
# corpus, every earlier finding included. A new finding fails the run with its input saved and
# printed in base64 (reproduce: scripts/fuzz.sh says how). The seed is fixed here (FUZZ_SEED, 1 by
# default) so that a test run is repeatable; scripts/fuzz.sh run by hand draws a new one each time.
scripts/sanitize.sh
FUZZ_SECONDS=${FUZZ_SECONDS:-20} FUZZ_SEED=${FUZZ_SEED:-1} scripts/fuzz.sh
