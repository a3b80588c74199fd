#!/usr/bin/env bash
# Load test of `lmforge serve` with wrk (Debian package wrk): 1, 8 and 64 concurrent clients, each
# sending POST /v1/completions (bench/serve/completions.lua) back to back for DURATION seconds.
#   bench/serve/wrk_serve.sh LMFORGE CHECKPOINT [DURATION=60] [SLOTS=16] [MAX_TOKENS=32]
# Prints one line per client count (requests/s, tokens/s, p50/p99 latency, errors) and the
# server's peak resident memory.
set -euo pipefail
LMFORGE="$1"; CHECKPOINT="$2"; DURATION="${3:-60}"; SLOTS="${4:-16}"; export MAX_TOKENS="${5:-32}"
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
LOG="$(mktemp)"
"$LMFORGE" serve --checkpoint "$CHECKPOINT" --port 0 --slots "$SLOTS" --model-name bench >"$LOG" 2>&1 &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true; rm -f "$LOG"' EXIT
for _ in $(seq 600); do grep -q "serving" "$LOG" && break; sleep 0.1; done
PORT="$(sed -n 's|.*http://[^:]*:\([0-9]*\).*|\1|p' "$LOG" | head -1)"
[ -n "$PORT" ] || { cat "$LOG"; exit 1; }
export MODEL=bench
for clients in 1 8 64; do
  threads=$(( clients < 2 ? 1 : 2 ))
  line="$(wrk -t "$threads" -c "$clients" -d "${DURATION}s" --timeout 120s -s "$HERE/completions.lua" \
          "http://127.0.0.1:$PORT/v1/completions" | grep '^RESULT')"
  echo "clients=$clients ${line#RESULT }"
done
echo "server peak RSS: $(grep VmHWM /proc/$SERVER/status | awk '{print $2, $3}')"
