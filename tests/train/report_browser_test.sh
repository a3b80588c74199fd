#!/usr/bin/env bash
# CTest `report_renders_in_chromium`: `lmforge report` over the fixture runs (tests/fixtures/report:
# a plain run, one with NaN values and a torn line, a resumed one, one without metrics), then
# report_browser_check.js opens the page in headless Chromium and checks it; the screenshot lands
# in OUT_DIR. Exits 77 (CTest: skipped) when chromium, node or web/node_modules is missing.
#
#   report_browser_test.sh LMFORGE_BINARY WEB_DIR FIXTURES_DIR OUT_DIR
set -euo pipefail
lmforge=$1 web=$2 fixtures=$3 out=$4
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

chromium="${CHROMIUM:-$(command -v chromium || command -v chromium-browser || true)}"
if [[ -z "$chromium" || ! -x "$chromium" ]]; then
  echo "SKIPPED: no chromium (Debian package chromium, which scripts/install_deps.sh installs; or set CHROMIUM)"
  exit 77
fi
if ! command -v node >/dev/null 2>&1; then
  echo "SKIPPED: no node on PATH (Node.js runs the browser check)"
  exit 77
fi
if [[ ! -d "$web/node_modules/puppeteer-core" ]]; then
  echo "SKIPPED: $web/node_modules/puppeteer-core is missing (scripts/install_deps.sh runs npm ci in $web)"
  exit 77
fi

rm -rf "$out"
mkdir -p "$out"
"$lmforge" report "$fixtures/plain" "$fixtures/nan_truncated" "$fixtures/resumed" "$fixtures/no_metrics" \
  --title "fixture runs" --output "$out/runs.html"
NODE_PATH="$web/node_modules" node "$here/report_browser_check.js" --chromium "$chromium" \
  --report "$out/runs.html" --screenshot "$out/runs.png" \
  --run "plain=$fixtures/plain" --run "nan_truncated=$fixtures/nan_truncated" --run "resumed=$fixtures/resumed" \
  --expect-text "line 6 (not a JSON object" --expect-text "no metrics.jsonl" --expect-text "a resumed run" \
  --expect-text "\"loss\" is null or not finite" --expect-text "Config keys that differ"

# One run alone, as the trainer writes it into its run directory.
"$lmforge" report "$fixtures/plain" --output "$out/plain.html"
NODE_PATH="$web/node_modules" node "$here/report_browser_check.js" --chromium "$chromium" \
  --report "$out/plain.html" --screenshot "$out/plain.png" --run "plain=$fixtures/plain"
