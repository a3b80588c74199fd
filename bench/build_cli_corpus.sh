#!/usr/bin/env bash
# Deterministic 40 MB inputs for timing `lmforge tokenizer encode` end to end (docs/BENCHMARKS.md,
# "From the command line"), each as two halves: one half is for tuning, the other is held out,
# and every speed claim is reported on both.
#   code:  the C/C++ headers under /usr/include (*.h, *.hpp, *.hh, *.tcc), C-locale sorted by
#          path, files that are not valid UTF-8 left out (the JavaScript peers read text as UTF-16,
#          so their ids differ on invalid bytes), concatenated;
#   prose: english-100m.txt of bench/peers/tokenizer/build_corpus.sh (given as ENGLISH_100M).
# Each half is cut at the last line break before 40,000,000 bytes.
# Usage: build_cli_corpus.sh OUTDIR [ENGLISH_100M]
# Outputs in OUTDIR: code-a.txt, code-b.txt, [prose-a.txt, prose-b.txt,] MANIFEST.txt (bytes and
# sha256 of each output: the same installed headers give byte-identical files).
set -euo pipefail
export LC_ALL=C
OUT=${1:?usage: build_cli_corpus.sh OUTDIR [ENGLISH_100M]}
PROSE=${2:-}
mkdir -p "$OUT"
list=$(mktemp)
trap 'rm -f "$list"' EXIT
(cd /usr/include && find . -type f \( -name '*.h' -o -name '*.hpp' -o -name '*.hh' -o -name '*.tcc' \) | sort) > "$list"
python3 - "$OUT" "$list" "$PROSE" > "$OUT/MANIFEST.txt" <<'PY'
import os, sys
out, listing, prose = sys.argv[1], sys.argv[2], sys.argv[3]
HALF = 40_000_000

def write_halves(data, name):
    a_end = data.rfind(b"\n", 0, HALF) + 1
    b_end = data.rfind(b"\n", a_end, a_end + HALF) + 1
    assert b_end - a_end > HALF - 100_000, f"not enough input for two halves of {name}"
    open(os.path.join(out, name + "-a.txt"), "wb").write(data[:a_end])
    open(os.path.join(out, name + "-b.txt"), "wb").write(data[a_end:b_end])

parts, size, skipped = [], 0, 0
for rel in open(listing, "rb").read().split(b"\n"):
    if not rel:
        continue
    b = open(b"/usr/include/" + rel, "rb").read()
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        skipped += 1
        continue
    parts.append(b)
    size += len(b)
    if size > 2 * HALF + 1_000_000:
        break
write_halves(b"".join(parts), "code")
print(f"# code: {len(parts)} header files from /usr/include in C-locale order, {skipped} skipped as not UTF-8")
if prose:
    write_halves(open(prose, "rb").read(), "prose")
    print(f"# prose: {os.path.basename(prose)}, sha256 in build_corpus.sh's MANIFEST.txt")
PY
for f in code-a.txt code-b.txt prose-a.txt prose-b.txt; do
  [ -f "$OUT/$f" ] && echo "$f $(stat -c %s "$OUT/$f") $(sha256sum "$OUT/$f" | cut -d' ' -f1)" >> "$OUT/MANIFEST.txt"
done
cat "$OUT/MANIFEST.txt"
