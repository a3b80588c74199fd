#!/usr/bin/env bash
# Installs dependencies, builds everything and runs every test. Tests labelled `cuda` run only
# when a GPU is present.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install_deps.sh
scripts/build.sh
labels=()
if ! (command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1); then
  echo "no GPU found: skipping tests labelled cuda"
  labels=(-LE cuda)
fi
ctest --test-dir build --output-on-failure -j"$(nproc)" "${labels[@]}"
