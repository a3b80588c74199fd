#!/usr/bin/env bash
# Configures and builds lmforge into build/ (CUDA backend on when nvcc is found).
set -euo pipefail
cd "$(dirname "$0")/.."
cuda=OFF
if command -v nvcc >/dev/null 2>&1 || [ -x /usr/local/cuda/bin/nvcc ]; then
  cuda=ON
  export PATH="/usr/local/cuda/bin:$PATH"
fi
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DLMFORGE_CUDA="${LMFORGE_CUDA:-$cuda}" "$@" >/dev/null
ninja -C build -j"$(nproc)" "${LMFORGE_BUILD_TARGETS:-all}"
