-- wrk script for `lmforge serve`: POST /v1/completions with one prompt, counting the completion
-- tokens of every answer (from its usage) across wrk's threads. Environment: MODEL (the served
-- model's id), MAX_TOKENS (32). Prints one RESULT line (bench/serve/wrk_serve.sh collects it).
local threads = {}

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.body = string.format(
  '{"model": "%s", "prompt": "And God said", "max_tokens": %s, "temperature": 0.8, "top_k": 40, "seed": 1}',
  os.getenv("MODEL") or "lmforge", os.getenv("MAX_TOKENS") or "32")

function setup(thread)
  table.insert(threads, thread)
end

function init(args)
  tokens = 0
  bad = 0
end

function response(status, headers, body)
  if status ~= 200 then
    bad = bad + 1
    return
  end
  local n = body:match('"completion_tokens":(%d+)')
  if n then tokens = tokens + tonumber(n) else bad = bad + 1 end
end

function done(summary, latency, requests)
  local total, bad_total = 0, 0
  for _, t in ipairs(threads) do
    total = total + t:get("tokens")
    bad_total = bad_total + t:get("bad")
  end
  local seconds = summary.duration / 1e6
  local e = summary.errors
  io.write(string.format(
    "RESULT requests=%d seconds=%.1f requests_per_s=%.2f tokens=%d tokens_per_s=%.1f p50_ms=%.0f p99_ms=%.0f " ..
    "socket_errors=%d non_200=%d bad_bodies=%d\n",
    summary.requests, seconds, summary.requests / seconds, total, total / seconds, latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, e.connect + e.read + e.write + e.timeout, e.status, bad_total))
end
