// Opens an `lmforge report` page in headless Chromium (Debian's, driven by puppeteer-core from
// web/node_modules) and checks it as a person would see it:
//   - no console error, no page error, no request leaving the file (the page is self-contained);
//   - every numeric key of every run's metrics.jsonl is a series of some chart, holding as many
//     points as the file has finite values of it (counted here with a plain loop of our own: bare
//     NaN / Infinity and nulls left out, unreadable lines skipped, a step that comes again
//     replacing that series from there on), and every array key a heatmap with a row per line;
//   - `expect_text` phrases appear on the page (what it says it skipped);
//   - hovering a chart shows values in its legend, and a click on a legend entry hides it;
//   - a full-page screenshot is written.
//
//   node report_browser_check.js --chromium PATH --report FILE.html --screenshot FILE.png
//        [--run NAME=DIR ...] [--expect-text TEXT ...]
// Exit 0 and "N passed, 0 failed" when every check holds; exit 1 naming each failure.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const puppeteer = require('puppeteer-core');

function parseArgs(argv) {
  const a = { runs: [], expectText: [] };
  for (let i = 2; i < argv.length; i += 2) {
    const [k, v] = [argv[i], argv[i + 1]];
    if (k === '--chromium') a.chromium = v;
    else if (k === '--report') a.report = v;
    else if (k === '--screenshot') a.screenshot = v;
    else if (k === '--run') { const eq = v.indexOf('='); a.runs.push({ name: v.slice(0, eq), dir: v.slice(eq + 1) }); }
    else if (k === '--expect-text') a.expectText.push(v);
    else throw new Error(`unknown argument ${k}`);
  }
  return a;
}

// key -> number of points the page should hold for this run; arrays -> number of rows.
function expectedCounts(dir) {
  let file = path.join(dir, 'metrics.jsonl');
  if (!fs.existsSync(file)) file = path.join(dir, 'train', 'metrics.jsonl');
  const scalars = new Map(), arrays = new Map();
  if (!fs.existsSync(file)) return { scalars, arrays };
  const add = (map, key, step) => {
    const steps = (map.get(key) || []).filter((s) => s < step);
    steps.push(step);
    map.set(key, steps);
  };
  for (const line of fs.readFileSync(file, 'utf8').split('\n')) {
    let j;
    try { j = JSON.parse(line.replace(/-?Infinity|NaN/g, 'null')); } catch (e) { continue; }
    if (j === null || typeof j !== 'object' || Array.isArray(j) || !Number.isInteger(j.step)) continue;
    const isEvent = typeof j.event === 'string';
    const numeric = Object.keys(j).filter((k) => k !== 'step' && (typeof j[k] === 'number' || j[k] === null));
    for (const k of Object.keys(j)) {
      if (k === 'step' || k === 'event') continue;
      const key = !isEvent ? k : numeric.length === 1 ? j.event : `${j.event}/${k}`;
      const v = j[k];
      if (typeof v === 'number' && Number.isFinite(v)) add(scalars, key, j.step);
      else if (Array.isArray(v) && v.length && v.every((e) => typeof e === 'number' || e === null)) add(arrays, key, j.step);
    }
  }
  const counts = (m) => new Map([...m].map(([k, steps]) => [k, steps.length]));
  return { scalars: counts(scalars), arrays: counts(arrays) };
}

async function main() {
  const args = parseArgs(process.argv);
  const failures = [];
  let passed = 0;
  const check = (ok, what) => { if (ok) ++passed; else failures.push(what); };

  const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmforge-chromium-'));
  const browser = await puppeteer.launch({
    executablePath: args.chromium,
    headless: true,
    userDataDir,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
           '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  try {
    const page = await browser.newPage();
    await page.setViewport({ width: 1400, height: 900 });
    const consoleErrors = [], outside = [];
    page.on('console', (m) => { if (m.type() === 'error') consoleErrors.push(m.text()); });
    page.on('pageerror', (e) => consoleErrors.push(String(e)));
    page.on('request', (r) => { if (!/^(file|data|about):/.test(r.url())) outside.push(r.url()); });
    await page.goto(`file://${path.resolve(args.report)}`, { waitUntil: 'load' });
    await page.waitForFunction('window.lmforgeReport && window.lmforgeReport.ready', { timeout: 30000 });
    const report = await page.evaluate(() => window.lmforgeReport);

    check(report.errors.length === 0, `chart errors: ${report.errors.join('; ')}`);
    check(report.charts.length > 0, 'no charts drawn');

    // Every key of every run is drawn with its point count, and nothing else is.
    const drawn = new Map();  // "run\u0000key\u0000kind" -> points
    for (const c of report.charts)
      for (const s of c.series) drawn.set(`${s.run}\u0000${s.key}\u0000${c.kind}`, s.points);
    const seen = new Set();
    for (const run of args.runs) {
      const exp = expectedCounts(run.dir);
      for (const [kind, counts] of [['lines', exp.scalars], ['heatmap', exp.arrays]]) {
        for (const [key, n] of counts) {
          const id = `${run.name}\u0000${key}\u0000${kind}`;
          seen.add(id);
          check(drawn.get(id) === n, `${run.name}: ${key} (${kind}) holds ${drawn.get(id)} points, the file has ${n}`);
        }
      }
      // The prediction is drawn at the steps of the measured peak.
      const peak = exp.scalars.get('peak_memory_bytes');
      const predicted = `${run.name}\u0000predicted_memory_bytes\u0000lines`;
      if (drawn.has(predicted)) {
        seen.add(predicted);
        check(drawn.get(predicted) === peak, `${run.name}: predicted memory has ${drawn.get(predicted)} points, peak ${peak}`);
      }
    }
    for (const id of drawn.keys()) check(seen.has(id), `a series not in any metrics file: ${id.replace(/\u0000/g, ' / ')}`);

    const text = await page.evaluate(() => document.body.innerText);
    for (const t of args.expectText) check(text.includes(t), `the page does not say "${t}"`);

    // Hover: the first line chart's legend shows numbers under the cursor.
    const over = await page.$('.chart-lines .u-over');
    const box = await over.boundingBox();
    await page.mouse.move(box.x + box.width * 0.6, box.y + box.height / 2);
    const values = await page.$$eval('.chart-lines:first-child .u-legend .u-series:not(:first-child) .u-value',
                                     (els) => els.map((e) => e.textContent));
    check(values.some((v) => /\d/.test(v)), `hovering shows no values in the legend (${values.join(', ')})`);
    // Toggle: a click on a legend entry hides that series.
    await page.click('.chart-lines:first-child .u-legend .u-series:nth-child(2) .u-label');
    const hidden = await page.$eval('.chart-lines:first-child .u-legend .u-series:nth-child(2)',
                                    (e) => e.classList.contains('u-off'));
    check(hidden, 'a click on a legend entry does not hide the series');
    await page.click('.chart-lines:first-child .u-legend .u-series:nth-child(2) .u-label');
    await page.mouse.move(0, 0);

    check(consoleErrors.length === 0, `console errors: ${consoleErrors.join(' | ')}`);
    check(outside.length === 0, `requests leaving the file: ${outside.join(', ')}`);
    await page.screenshot({ path: args.screenshot, fullPage: true });
    check(fs.statSync(args.screenshot).size > 10000, 'the screenshot is (nearly) empty');
    console.log(`${args.report}: ${report.charts.length} charts, screenshot ${args.screenshot}`);
  } finally {
    await browser.close();
    fs.rmSync(userDataDir, { recursive: true, force: true });
  }
  for (const f of failures) console.log(`FAILED: ${f}`);
  console.log(`${passed} passed, ${failures.length} failed`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => { console.error(e); process.exit(1); });
