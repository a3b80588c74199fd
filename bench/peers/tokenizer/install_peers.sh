#!/usr/bin/env bash
# Installs the tokenizer peers from the npm registry into DIR (default: ./tokenizer-peers; run it
# from a folder outside the source tree, e.g. the project's build/ folder) and builds HF
# tokenizer.json files for r50k/cl100k/o200k from the project's tests/fixtures/tokenizers.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
dir=${1:-$PWD/tokenizer-peers}
mkdir -p "$dir" && cd "$dir"
[ -f package.json ] || npm init -y >/dev/null
npm install --no-audit --no-fund tiktoken@1.0.22 js-tiktoken@1.0.21 gpt-tokenizer@4.0.0 @anush008/tokenizers@0.6.0 >/dev/null
mkdir -p hf
for e in r50k_base cl100k_base o200k_base; do
  python3 "$here/make_hf_json.py" "$here/../../../tests/fixtures/tokenizers" "$e" "hf/$e.json"
done
echo "peers installed in $dir"
