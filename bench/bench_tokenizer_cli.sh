#!/usr/bin/env bash
# `lmforge tokenizer encode` end to end (process start, tokenizer load, input, encode, output),
# side by side with tiktoken's WASM build (npm `tiktoken`, bench/peers/tokenizer/bench_encode.js),
# one program after the other, never at once. docs/BENCHMARKS.md, "From the command line".
#
#   bench_tokenizer_cli.sh LMFORGE PEERS_DIR FILE... [-- ENCODING...]
#
# LMFORGE: the lmforge binary; PEERS_DIR: where install_peers.sh put the npm peers; FILEs: the
# texts (bench/build_cli_corpus.sh); ENCODINGs: default cl100k_base o200k_base. Prints one JSON
# line per (file, encoding) and one per tokenizer load:
#   load_sec      median of 5 runs of `encode` on an empty input, minus nothing: the whole process
#   cli_cold_sec  the first run on the file after dropping it from the page cache (dd iflag=nocache)
#   cli_warm_sec  the median of 3 further runs (the file cached; each process starts with empty
#                 BPE caches, so every run is a first pass over the text for the encoder)
#   cli_*_mbps    file bytes / those seconds, everything included
#   tiktoken_mbps bench_encode.js tiktoken ENC FILE --threads 1: warm passes, load excluded
#   ratio_cold, ratio_warm: cli_*_mbps / tiktoken_mbps
# The ids are written with --binary and compared with tiktoken's by tests/tokenizer/peer_check.js
# ("identical" in the line). CPU seconds (user + sys) of the CLI runs are printed too: on a busy
# machine they show what the wall clock hides.
set -euo pipefail
LMFORGE=$(realpath "$1"); PEERS=$(realpath "$2"); shift 2
here=$(cd "$(dirname "$0")" && pwd)
root=$(dirname "$here")
files=(); encodings=()
while [ $# -gt 0 ] && [ "$1" != "--" ]; do files+=("$(realpath "$1")"); shift; done
[ $# -gt 0 ] && shift
while [ $# -gt 0 ]; do encodings+=("$1"); shift; done
[ ${#encodings[@]} -gt 0 ] || encodings=(cl100k_base o200k_base)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Runs the command, prints "wall cpu" seconds.
timed() {
  /usr/bin/time -f "%e %U %S" -o "$tmp/time" "$@" > /dev/null
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$tmp/time"
}
median() { sort -n | awk '{v[NR]=$1} END {print v[int((NR+1)/2)]}'; }

for enc in "${encodings[@]}"; do
  tok="$root/tests/fixtures/tokenizers/$enc.tiktoken"
  for i in 1 2 3 4 5; do timed "$LMFORGE" tokenizer encode --tokenizer "$tok" --input /dev/null; done > "$tmp/load"
  echo "{\"load\":\"$enc\",\"file\":\"$enc.tiktoken\",\"load_sec\":$(cut -d' ' -f1 "$tmp/load" | median),\"load_cpu_sec\":$(cut -d' ' -f2 "$tmp/load" | median)}"
done

for f in "${files[@]}"; do
  bytes=$(stat -c %s "$f")
  for enc in "${encodings[@]}"; do
    tok="$root/tests/fixtures/tokenizers/$enc.tiktoken"
    run=("$LMFORGE" tokenizer encode --tokenizer "$tok" --input "$f" --output "$tmp/ids" --binary --ordinary)
    dd if="$f" iflag=nocache count=0 status=none
    read -r cold cold_cpu < <(timed "${run[@]}")
    for i in 1 2 3; do timed "${run[@]}"; done > "$tmp/warm"
    warm=$(cut -d' ' -f1 "$tmp/warm" | median); warm_cpu=$(cut -d' ' -f2 "$tmp/warm" | median)
    tik=$(cd "$PEERS" && NPM_DIR="$PEERS" node "$root/bench/peers/tokenizer/bench_encode.js" tiktoken "$enc" "$f" --threads 1 --min-sec 1)
    tik_mbps=$(echo "$tik" | sed 's/.*"mbps":\([0-9.]*\).*/\1/')
    same=$(cd "$PEERS" && NPM_DIR="$PEERS" node "$root/tests/tokenizer/peer_check.js" tiktoken-ids "$enc" "$f" "$tmp/ids" |
           sed 's/.*"identical":\([a-z]*\).*/\1/')
    awk -v f="$(basename "$f")" -v e="$enc" -v b="$bytes" -v c="$cold" -v cc="$cold_cpu" -v w="$warm" -v wc="$warm_cpu" \
        -v t="$tik_mbps" -v s="$same" 'BEGIN {
      printf "{\"file\":\"%s\",\"enc\":\"%s\",\"bytes\":%d,\"cli_cold_sec\":%s,\"cli_cold_cpu_sec\":%s,", f, e, b, c, cc
      printf "\"cli_warm_sec\":%s,\"cli_warm_cpu_sec\":%s,\"cli_cold_mbps\":%.1f,\"cli_warm_mbps\":%.1f,", w, wc, b / c / 1e6, b / w / 1e6
      printf "\"tiktoken_mbps\":%s,\"ratio_cold\":%.1f,\"ratio_warm\":%.1f,\"identical\":%s}\n", t, b / c / 1e6 / t, b / w / 1e6 / t, s
    }'
  done
done
