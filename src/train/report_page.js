// The script of an `lmforge report` page (inlined by src/train/report.cpp after uPlot's). It reads
// the JSON in #lmforge-report-data — runs (scalar series, array series, events) and the planned
// charts — and draws every chart with uPlot: line charts with one series per run and key (one
// run: a colour and a dash per key; several runs: a colour per run, a dash per key), cursors synced by
// step; heatmaps of an array metric over steps. When done it publishes window.lmforgeReport for
// the browser test: every chart with the non-empty points each series holds in uPlot.
(function () {
  'use strict';
  const data = JSON.parse(document.getElementById('lmforge-report-data').textContent);
  const report = { ready: false, charts: [], errors: [] };
  window.lmforgeReport = report;

  const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf',
                   '#bcbd22', '#7f7f7f'];
  const color = (i) => palette[i % palette.length];
  const dashes = [[], [6, 4], [2, 3], [10, 3, 2, 3]];
  const multiRun = data.runs.length > 1;

  for (const el of document.querySelectorAll('[data-run]')) el.style.borderLeft = `6px solid ${color(+el.dataset.run)}`;

  const fmtNumber = (v) => {
    if (v == null || !Number.isFinite(v)) return '—';
    const a = Math.abs(v);
    return a !== 0 && (a >= 1e5 || a < 1e-3) ? v.toExponential(2) : String(+v.toPrecision(5));
  };
  const fmtBytes = (v) => {
    if (v == null || !Number.isFinite(v)) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0;
    while (Math.abs(v) >= 1024 && i < units.length - 1) { v /= 1024; ++i; }
    return `${v.toFixed(Math.abs(v) >= 100 || i === 0 ? 0 : 1)} ${units[i]}`;
  };
  const fmtPercent = (v) => (v == null || !Number.isFinite(v) ? '—' : `${(100 * v).toFixed(2)}%`);
  const formatterFor = (unit) => (unit === 'bytes' ? fmtBytes : unit === 'fraction of peak' ? fmtPercent : fmtNumber);

  const container = document.getElementById('charts');
  const chartWidth = () => {
    const w = container.clientWidth || 1000;
    return Math.floor(w >= 1000 ? w / 2 - 24 : w - 16);
  };
  const plots = [];

  // Steps where something went wrong, drawn as red lines on the loss charts.
  const troubleSteps = (run) =>
    run.events.filter((e) => e.event === 'nonfinite_loss' || e.event === 'rollback').map((e) => e.step);

  function lineChart(spec, el) {
    const series = [];
    data.runs.forEach((run, ri) => spec.keys.forEach((key, ki) => {
      const s = run.scalars[key];
      if (s && s.steps.length) series.push({ ri, ki, key, run: run.name, s });
    }));
    const steps = Array.from(new Set(series.flatMap((x) => x.s.steps))).sort((a, b) => a - b);
    const at = new Map(steps.map((st, i) => [st, i]));
    const columns = series.map((x) => {
      const col = new Array(steps.length).fill(null);
      x.s.steps.forEach((st, j) => { col[at.get(st)] = x.s.values[j]; });
      return col;
    });
    const fmt = formatterFor(spec.unit);
    const byKey = !multiRun && spec.keys.length > 1;
    const marks = spec.keys.includes('loss') ? data.runs.map((r, ri) => ({ ri, steps: troubleSteps(r) })) : [];
    const opts = {
      title: spec.title,
      width: chartWidth(),
      height: 300,
      cursor: { sync: { key: 'lmforge-step', setSeries: false } },
      scales: { x: { time: false }, y: spec.log ? { distr: 3 } : {} },
      axes: [{ label: 'step' },
             { label: spec.unit, size: 70, values: (u, vals) => vals.map((v) => (v == null ? '' : fmt(v))) }],
      series: [{ label: 'step' }].concat(series.map((x) => ({
        label: multiRun && spec.keys.length > 1 ? `${x.run} · ${x.key}` : multiRun ? x.run : x.key,
        stroke: byKey ? color(x.ki) : color(x.ri),
        dash: dashes[x.ki % dashes.length],
        width: 1.5,
        spanGaps: true,
        points: { show: x.s.steps.length <= 60, size: 5 },
        value: (u, v) => fmt(v),
        paths: spec.stepped ? uPlot.paths.stepped({ align: 1 }) : undefined,
      }))),
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.lineWidth = 1;
          for (const m of marks) {
            ctx.strokeStyle = color(m.ri);
            ctx.setLineDash([3, 3]);
            for (const st of m.steps) {
              const x = u.valToPos(st, 'x', true);
              if (x < u.bbox.left || x > u.bbox.left + u.bbox.width) continue;
              ctx.beginPath();
              ctx.moveTo(x, u.bbox.top);
              ctx.lineTo(x, u.bbox.top + u.bbox.height);
              ctx.stroke();
            }
          }
          ctx.restore();
        }],
      },
    };
    const u = new uPlot(opts, [steps].concat(columns), el);
    plots.push(u);
    return series.map((x, i) => ({
      label: opts.series[i + 1].label,
      run: x.run,
      key: x.key,
      points: u.data[i + 1].filter((v) => v != null).length,
    }));
  }

  // viridis, five stops, interpolated.
  const ramp = [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]];
  const rampColor = (t) => {
    const x = Math.min(Math.max(t, 0), 1) * (ramp.length - 1), i = Math.min(Math.floor(x), ramp.length - 2), f = x - i;
    const c = ramp[i].map((a, k) => Math.round(a + (ramp[i + 1][k] - a) * f));
    return `rgb(${c[0]},${c[1]},${c[2]})`;
  };

  function heatmap(spec, el) {
    const run = data.runs[spec.run], key = spec.keys[0], a = run.arrays[key];
    const steps = a.steps, rows = a.rows;
    const width = Math.max(...rows.map((r) => r.length));
    let lo = Infinity, hi = -Infinity;
    for (const r of rows) for (const v of r) if (v != null) { lo = Math.min(lo, v); hi = Math.max(hi, v); }
    if (!(hi > lo)) hi = lo + 1;
    // Each row of cells spans from its step to the next; the last one as wide as the gap before it.
    const gap = steps.length > 1 ? steps[steps.length - 1] - steps[steps.length - 2] : 1;
    const xs = steps.concat([steps[steps.length - 1] + gap]);
    const caption = document.createElement('div');
    caption.className = 'heatmap-caption';
    const legend = `<span class="ramp"></span> ${fmtNumber(lo)} … ${fmtNumber(hi)}`;
    caption.innerHTML = legend;
    const opts = {
      title: `${key} — ${run.name}`,
      width: chartWidth(),
      height: 300,
      legend: { show: false },
      cursor: { points: { show: false } },
      scales: { x: { time: false }, y: { auto: false, range: [-0.5, width - 0.5] } },
      axes: [{ label: 'step' }, { label: spec.unit, size: 50,
                                   values: (u, vals) => vals.map((v) => (Number.isInteger(v) ? v : '')) }],
      series: [{ label: 'step' }, { label: key, stroke: 'transparent', points: { show: false } }],
      hooks: {
        draw: [(u) => {
          const ctx = u.ctx;
          ctx.save();
          ctx.beginPath();
          ctx.rect(u.bbox.left, u.bbox.top, u.bbox.width, u.bbox.height);
          ctx.clip();
          for (let j = 0; j < steps.length; ++j) {
            const x0 = u.valToPos(xs[j], 'x', true), x1 = u.valToPos(xs[j + 1], 'x', true);
            rows[j].forEach((v, i) => {
              if (v == null) return;
              const y0 = u.valToPos(i + 0.5, 'y', true), y1 = u.valToPos(i - 0.5, 'y', true);
              ctx.fillStyle = rampColor((v - lo) / (hi - lo));
              ctx.fillRect(x0, y0, Math.max(x1 - x0, 1), y1 - y0);
            });
          }
          ctx.restore();
        }],
        setCursor: [(u) => {
          const { left, top } = u.cursor;
          if (left == null || left < 0) { caption.innerHTML = legend; return; }
          const x = u.posToVal(left, 'x'), i = Math.round(u.posToVal(top, 'y'));
          let j = steps.length - 1;
          while (j > 0 && steps[j] > x) --j;
          const v = rows[j] && i >= 0 && i < rows[j].length ? rows[j][i] : null;
          caption.innerHTML = `${legend} &nbsp; step ${steps[j]}, index ${i}: <b>${fmtNumber(v)}</b>`;
        }],
      },
    };
    const u = new uPlot(opts, [xs, xs.map(() => null)], el);
    el.appendChild(caption);
    plots.push(u);
    return [{ label: key, run: run.name, key, points: rows.length }];
  }

  for (const spec of data.charts) {
    const el = document.createElement('div');
    el.className = `chart chart-${spec.kind}`;
    el.id = spec.id;
    container.appendChild(el);
    try {
      const series = spec.kind === 'heatmap' ? heatmap(spec, el) : lineChart(spec, el);
      report.charts.push({ id: spec.id, title: spec.title, kind: spec.kind, series });
    } catch (e) {
      report.errors.push(`${spec.title}: ${e}`);
      console.error(`lmforge report: chart "${spec.title}" failed:`, e);
    }
  }
  window.addEventListener('resize', () => { for (const u of plots) u.setSize({ width: chartWidth(), height: 300 }); });
  report.ready = true;
})();
