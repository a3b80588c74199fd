#!/usr/bin/env bash
# Installs the Debian packages lmforge builds and runs with (as root; skipped when present).
set -euo pipefail
packages=(build-essential cmake ninja-build pkg-config
          libopenblas-dev libopenblas0-openmp nlohmann-json3-dev libfmt-dev libcli11-dev libtomlplusplus-dev
          libutf8proc-dev libpcre2-dev libgtest-dev libgmock-dev libbenchmark-dev
          bible-kjv)
missing=()
for p in "${packages[@]}"; do
  dpkg -s "$p" >/dev/null 2>&1 || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing: ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
