#!/usr/bin/env bash
# Installs the Debian packages lmforge builds and runs with (as root; skipped when present), then
# the front-end packages of `lmforge report` into web/node_modules (npm ci from the committed
# web/package-lock.json: uPlot, inlined into every report, and puppeteer-core for the report's
# browser test). A machine without Node.js still builds: `lmforge report` then says what is missing.
# OpenMPI is optional too (data parallel on CPUs needs it, and its tests skip without it); it is
# installed here so that CI runs them.
#
# --tests adds what only the tests need: clang for the fuzz targets, wrk and curl, Debian's
# chromium for the report's browser test (on Debian only; elsewhere that test is skipped) and the
# OpenAI client for the server tests.
set -euo pipefail
with_tests=0
[ "${1:-}" = "--tests" ] && with_tests=1
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
packages=(build-essential cmake ninja-build pkg-config
          libopenblas-dev libopenblas0-openmp nlohmann-json3-dev libfmt-dev libcli11-dev libtomlplusplus-dev
          libutf8proc-dev libpcre2-dev libgtest-dev libgmock-dev libbenchmark-dev
          libcpp-httplib-dev
          libopenmpi-dev openmpi-bin
          bible-kjv)
if [ $with_tests = 1 ]; then
  packages+=(clang-14 libclang-rt-14-dev libomp-14-dev wrk curl)
  grep -qx 'ID=debian' /etc/os-release 2>/dev/null && packages+=(chromium)
fi
if grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
  command -v npm >/dev/null 2>&1 || packages+=(nodejs npm)
fi
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

# npm ci only when the lock file changed since the last install (npm keeps a copy of it).
web="$ROOT/web"
if command -v npm >/dev/null 2>&1; then
  if ! cmp -s "$web/package-lock.json" "$web/node_modules/.lmforge-installed-lock.json"; then
    echo "installing web/node_modules (npm ci)"
    if (cd "$web" && npm ci --no-audit --no-fund --loglevel=error); then
      cp "$web/package-lock.json" "$web/node_modules/.lmforge-installed-lock.json"
    elif grep -qx 'ID=debian' /etc/os-release 2>/dev/null; then
      exit 1  # CI and the quickstart's machines reach the npm registry: a failure there is real
    else
      echo "warning: npm ci failed; lmforge builds without uPlot, and lmforge report says so"
    fi
  fi
else
  echo "note: no npm; lmforge report needs uPlot from web/node_modules (install Node.js and npm, rerun this script)"
fi

# The official OpenAI client for the server tests (tests/infer/server_test.cpp), from the
# committed tests/infer/package-lock.json into tests/infer/node_modules; without it those tests skip.
client="$ROOT/tests/infer"
if [ $with_tests = 1 ] && command -v npm >/dev/null 2>&1; then
  if ! cmp -s "$client/package-lock.json" "$client/node_modules/.lmforge-installed-lock.json"; then
    echo "installing tests/infer/node_modules (npm ci)"
    (cd "$client" && npm ci --no-audit --no-fund --loglevel=error)
    cp "$client/package-lock.json" "$client/node_modules/.lmforge-installed-lock.json"
  fi
fi
