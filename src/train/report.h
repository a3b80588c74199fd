// lmforge report: one self-contained HTML file that draws one or more run directories over
// each other — training and validation loss, every named loss term, learning rate, gradient
// norm, loss scale, throughput, MFU, memory (measured peak beside the accounting prediction),
// any other numeric metric, and per-layer arrays as heatmaps over steps — with a table of the
// config keys in which the runs differ and a list of what could not be read.
//
// The page works offline: the charting library (uPlot, from web/node_modules at build time; see
// report_assets.h), the page's own script and style, and the data (one JSON object) are inlined.
// Charts are interactive the way uPlot is: hover for values, drag to zoom (double-click resets),
// click a legend entry to hide a series; the cursor is shared by all line charts.
//
// For the browser test, the page publishes window.lmforgeReport = {ready, charts: [{id, title,
// kind, series: [{label, run, key, points}]}]} once drawn, `points` being the non-empty values
// each uPlot instance holds.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "train/run_history.h"

namespace lmforge::train {

struct ReportChart {
  std::string id;     // unique in the page
  std::string title;
  std::string unit;   // axis label
  std::string kind;   // "lines" | "heatmap"
  std::vector<std::string> keys;  // metric keys drawn (one for a heatmap)
  int run = -1;       // heatmap: the run it belongs to
  bool log_scale = false;
  bool stepped = false;  // a value that holds until it changes (the f16 loss scale)
};

// The charts for these runs, in page order: the well-known metrics first, then every other
// numeric key (keys sharing a "prefix/" or a "layers.N." pattern share a chart), then one
// heatmap per array key and run.
std::vector<ReportChart> plan_charts(const std::vector<RunHistory>& runs);

struct ConfigDifference {
  std::string key;
  std::vector<std::string> values;  // one per run; "" where the run's config lacks the key
};
// Keys whose values are not the same in every run that has a config (none for a single run),
// train.out_dir aside.
std::vector<ConfigDifference> config_differences(const std::vector<RunHistory>& runs);

// Short unique names for the runs: the directory's name (with its parent when it is `train`),
// the whole path where two names collide.
std::vector<std::string> run_labels(const std::vector<RunHistory>& runs);

// The whole page. Error when the charting library was not embedded at build time.
std::string render_report_html(const std::vector<RunHistory>& runs, std::string_view title);

struct ReportSummary {
  int runs_drawn = 0;                // runs with at least one metrics line
  std::vector<std::string> skipped;  // every run's notes
};
// Reads `run_dirs` and writes the page to `output` atomically. Error when no run has metrics or
// the charting library is missing.
ReportSummary write_report(const std::vector<std::string>& run_dirs, const std::string& output,
                           std::string_view title = {});

// The trainer's call: <run_dir>/report.html for that one run. Never throws: training goes on
// without a report (the reason is printed once per process unless `quiet`).
void write_run_report(const std::string& run_dir, bool quiet) noexcept;

}  // namespace lmforge::train
