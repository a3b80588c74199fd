#include "train/report.h"

#include <fmt/format.h>

#include <algorithm>
#include <atomic>
#include <cctype>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <regex>
#include <set>

#include "accounting/accounting.h"
#include "core/error.h"
#include "core/file_util.h"
#include "core/text_util.h"
#include "train/report_assets.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;
using nlohmann::ordered_json;

// The measured peak's companion: the accounting prediction, drawn at the same steps.
constexpr const char* kPredictedMemoryKey = "predicted_memory_bytes";

struct KnownChart {
  const char* title;
  const char* unit;
  std::vector<std::string> keys;
  bool log_scale = false;
  bool stepped = false;
};

// The metrics the trainer writes (train/metrics.h), in page order. Keys under "loss/" (named
// loss terms) get their chart right after the loss.
const std::vector<KnownChart>& known_charts() {
  static const std::vector<KnownChart> charts = {
      {"Loss: training (solid) and validation (dashed)", "nats/token", {"loss", "val_loss"}},
      {"Validation bits per byte", "bits/byte", {"val_bits_per_byte"}},
      {"Validation perplexity", "perplexity", {"val_perplexity"}},
      {"Learning rate", "lr", {"lr"}},
      {"Gradient norm (before clipping)", "global L2 norm", {"grad_norm"}},
      {"Loss scale (f16)", "scale", {"loss_scale"}, true, true},
      {"Throughput", "tokens/s", {"tokens_per_s"}},
      {"Model FLOPs utilisation", "fraction of peak", {"mfu"}},
      {"Memory: measured peak (solid) beside predicted (dashed)", "bytes", {"peak_memory_bytes", kPredictedMemoryKey}},
      {"Tokens seen", "tokens", {"tokens"}},
      {"Training time", "seconds", {"elapsed_s"}},
      {"Validation tokens", "tokens", {"val_tokens"}},
  };
  return charts;
}

// The chart a key outside the known ones goes to: "moe/aux" -> "moe/*", "layers.3.attn.entropy"
// -> "layers.*.attn.entropy", else the key itself.
std::string family_of(const std::string& key) {
  const size_t slash = key.find('/');
  if (slash != std::string::npos) return key.substr(0, slash) + "/*";
  static const std::regex layer_index(R"((^|\.)(layers?|blocks?|h)\.\d+\.)");
  return std::regex_replace(key, layer_index, "$1$2.*.", std::regex_constants::format_first_only);
}

std::string html_escape(std::string_view s) {
  std::string out;
  for (char c : s) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

// JSON inside <script>: '<' only occurs in strings, where \u003c means the same and cannot close
// the element.
std::string json_for_script(const ordered_json& j) {
  const std::string s = j.dump();
  std::string out;
  out.reserve(s.size());
  for (char c : s) {
    if (c == '<') out += "\\u003c";
    else out += c;
  }
  return out;
}

// The runs with the predicted memory as a series at the steps of the measured peak.
std::vector<RunHistory> with_predicted_memory(const std::vector<RunHistory>& runs) {
  std::vector<RunHistory> out = runs;
  for (auto& r : out) {
    const auto peak = r.scalars.find("peak_memory_bytes");
    if (!r.predicted_memory_bytes || peak == r.scalars.end() || r.scalars.contains(kPredictedMemoryKey)) continue;
    ScalarSeries predicted{.steps = peak->second.steps, .values = {}};
    predicted.values.assign(predicted.steps.size(), double(*r.predicted_memory_bytes));
    r.scalars[kPredictedMemoryKey] = std::move(predicted);
  }
  return out;
}

ordered_json run_json(const RunHistory& r, const std::string& label) {
  ordered_json scalars = ordered_json::object(), arrays = ordered_json::object(), events = ordered_json::array();
  for (const auto& [key, s] : r.scalars) scalars[key] = {{"steps", s.steps}, {"values", s.values}};
  for (const auto& [key, a] : r.arrays) {
    ordered_json rows = ordered_json::array();
    for (const auto& row : a.rows) {
      ordered_json jr = ordered_json::array();
      for (double v : row) jr.push_back(std::isfinite(v) ? ordered_json(v) : ordered_json());
      rows.push_back(std::move(jr));
    }
    arrays[key] = {{"steps", a.steps}, {"rows", std::move(rows)}};
  }
  for (const auto& e : r.events) events.push_back({{"step", e.step}, {"event", e.event}, {"detail", e.detail}});
  return {{"name", label}, {"dir", r.dir}, {"scalars", std::move(scalars)}, {"arrays", std::move(arrays)},
          {"events", std::move(events)}};
}

std::string last_value(const RunHistory& r, const std::string& key, const char* format) {
  const auto it = r.scalars.find(key);
  if (it == r.scalars.end() || it->second.values.empty()) return "";
  return fmt::format(fmt::runtime(format), it->second.values.back());
}

std::string runs_table(const std::vector<RunHistory>& runs, const std::vector<std::string>& labels) {
  std::string out =
      "<table class=\"runs\"><thead><tr><th>run</th><th>directory</th><th>metrics lines</th><th>last step</th>"
      "<th>last loss</th><th>last val loss</th><th>last val bits/byte</th><th>predicted memory</th></tr></thead><tbody>\n";
  for (size_t i = 0; i < runs.size(); ++i) {
    const RunHistory& r = runs[i];
    int64_t last_step = -1;
    for (const auto& [k, s] : r.scalars) if (!s.steps.empty()) last_step = std::max(last_step, s.steps.back());
    out += fmt::format(
        "<tr data-run=\"{}\"><td class=\"run-name\">{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td>"
        "<td>{}</td><td>{}</td></tr>\n",
        i, html_escape(labels[i]), html_escape(r.dir), r.lines_read, last_step >= 0 ? std::to_string(last_step) : "",
        last_value(r, "loss", "{:.4f}"), last_value(r, "val_loss", "{:.4f}"), last_value(r, "val_bits_per_byte", "{:.4f}"),
        r.predicted_memory_bytes ? accounting::human_bytes(double(*r.predicted_memory_bytes)) : "");
  }
  return out + "</tbody></table>\n";
}

std::string config_section(const std::vector<RunHistory>& runs, const std::vector<std::string>& labels) {
  if (runs.size() == 1) {
    if (runs[0].config.empty()) return "";
    std::string out = "<details><summary>Config (config.toml)</summary><table class=\"config\"><tbody>\n";
    for (const auto& [k, v] : runs[0].config)
      out += fmt::format("<tr><td>{}</td><td>{}</td></tr>\n", html_escape(k), html_escape(v));
    return out + "</tbody></table></details>\n";
  }
  const auto diffs = config_differences(runs);
  if (diffs.empty()) return "<p class=\"config-same\">The runs' configs are the same in every key.</p>\n";
  std::string out = "<h2>Config keys that differ</h2>\n<table class=\"config-diff\"><thead><tr><th>key</th>";
  for (size_t i = 0; i < runs.size(); ++i) out += fmt::format("<th data-run=\"{}\">{}</th>", i, html_escape(labels[i]));
  out += "</tr></thead><tbody>\n";
  for (const auto& d : diffs) {
    out += fmt::format("<tr><td>{}</td>", html_escape(d.key));
    for (const auto& v : d.values) out += fmt::format("<td>{}</td>", v.empty() ? "&mdash;" : html_escape(v));
    out += "</tr>\n";
  }
  return out + "</tbody></table>\n";
}

void check_assets() {
  LF_CHECK(!report_assets::uplot_js.empty(),
           "the charting library uPlot was not found when lmforge was built (looked in {}); run "
           "scripts/install_deps.sh (it runs npm ci in web/), then rebuild",
           report_assets::uplot_dir);
}

}  // namespace

std::vector<std::string> run_labels(const std::vector<RunHistory>& runs) {
  std::vector<std::string> labels;
  for (const auto& r : runs) {
    fs::path p = fs::path(r.dir).lexically_normal();
    if (p.filename().empty()) p = p.parent_path();
    std::string name = p.filename().string();
    if (name == "train" && p.has_parent_path() && !p.parent_path().filename().empty())
      name = p.parent_path().filename().string() + "/train";
    labels.push_back(name.empty() ? r.dir : name);
  }
  std::map<std::string, int> uses;
  for (const auto& l : labels) ++uses[l];
  for (size_t i = 0; i < labels.size(); ++i)
    if (uses[labels[i]] > 1) labels[i] = runs[i].dir;
  // Identical paths given twice: numbered.
  for (size_t i = 0; i < labels.size(); ++i) {
    int n = 1;
    for (size_t j = i + 1; j < labels.size(); ++j)
      if (labels[j] == labels[i]) labels[j] += fmt::format(" #{}", ++n);
  }
  return labels;
}

std::vector<ReportChart> plan_charts(const std::vector<RunHistory>& runs) {
  std::set<std::string> keys;
  std::set<std::string, decltype(&natural_less)> array_keys(&natural_less);
  for (const auto& r : runs) {
    for (const auto& [k, s] : r.scalars) if (!s.steps.empty()) keys.insert(k);
    for (const auto& [k, a] : r.arrays) if (!a.steps.empty()) array_keys.insert(k);
  }
  std::vector<ReportChart> charts;
  auto add = [&](ReportChart c) {
    c.id = fmt::format("chart-{}", charts.size());
    charts.push_back(std::move(c));
  };

  // Every key not drawn by a known chart, grouped into families.
  std::set<std::string> known_keys;
  for (const auto& k : known_charts()) known_keys.insert(k.keys.begin(), k.keys.end());
  std::map<std::string, std::vector<std::string>, decltype(&natural_less)> families(&natural_less);
  for (const auto& k : keys)
    if (!known_keys.contains(k)) families[family_of(k)].push_back(k);
  for (auto& [f, ks] : families) std::sort(ks.begin(), ks.end(), natural_less);

  for (const auto& k : known_charts()) {
    std::vector<std::string> present;
    for (const auto& key : k.keys) if (keys.contains(key)) present.push_back(key);
    if (!present.empty())
      add({.id = "", .title = k.title, .unit = k.unit, .kind = "lines", .keys = present, .log_scale = k.log_scale,
           .stepped = k.stepped});
    if (k.keys.front() == "loss" && families.contains("loss/*")) {
      add({.id = "", .title = "Loss terms", .unit = "nats/token", .kind = "lines", .keys = families["loss/*"]});
      families.erase("loss/*");
    }
  }
  for (const auto& [f, ks] : families)
    add({.id = "", .title = f, .unit = ks.size() == 1 ? ks[0] : f, .kind = "lines", .keys = ks});
  for (const auto& k : array_keys)
    for (size_t i = 0; i < runs.size(); ++i)
      if (runs[i].arrays.contains(k) && !runs[i].arrays.at(k).steps.empty())
        add({.id = "", .title = k, .unit = "index", .kind = "heatmap", .keys = {k}, .run = int(i)});
  return charts;
}

std::vector<ConfigDifference> config_differences(const std::vector<RunHistory>& runs) {
  std::vector<std::string> order;
  std::vector<std::map<std::string, std::string>> maps;
  int with_config = 0;
  for (const auto& r : runs) {
    std::map<std::string, std::string> m;
    for (const auto& [k, v] : r.config) {
      if (std::find(order.begin(), order.end(), k) == order.end()) order.push_back(k);
      m[k] = v;
    }
    with_config += !r.config.empty();
    maps.push_back(std::move(m));
  }
  std::vector<ConfigDifference> out;
  if (with_config < 2) return out;
  for (const auto& k : order) {
    // Every run has its own directory; the runs table shows it.
    if (k == "train.out_dir") continue;
    ConfigDifference d{.key = k, .values = {}};
    std::set<std::string> distinct;
    for (size_t i = 0; i < runs.size(); ++i) {
      if (runs[i].config.empty()) {
        d.values.push_back("");
        continue;
      }
      const auto it = maps[i].find(k);
      d.values.push_back(it == maps[i].end() ? "" : it->second);
      distinct.insert(d.values.back());
    }
    if (distinct.size() > 1) out.push_back(std::move(d));
  }
  return out;
}

std::string render_report_html(const std::vector<RunHistory>& runs_in, std::string_view title) {
  check_assets();
  const std::vector<RunHistory> runs = with_predicted_memory(runs_in);
  const std::vector<std::string> labels = run_labels(runs);
  const std::vector<ReportChart> charts = plan_charts(runs);

  ordered_json data{{"title", title}, {"runs", ordered_json::array()}, {"charts", ordered_json::array()}};
  for (size_t i = 0; i < runs.size(); ++i) data["runs"].push_back(run_json(runs[i], labels[i]));
  for (const auto& c : charts)
    data["charts"].push_back({{"id", c.id}, {"title", c.title}, {"unit", c.unit}, {"kind", c.kind}, {"keys", c.keys},
                              {"run", c.run}, {"log", c.log_scale}, {"stepped", c.stepped}});

  std::string skipped;
  for (size_t i = 0; i < runs.size(); ++i)
    for (const auto& s : runs[i].skipped)
      skipped += fmt::format("<li><b>{}</b>: {}</li>\n", html_escape(labels[i]), html_escape(s));

  std::string page;
  page += "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n";
  page += "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n";
  page += fmt::format("<meta name=\"generator\" content=\"lmforge report (uPlot {})\">\n", report_assets::uplot_version);
  page += fmt::format("<title>{}</title>\n", html_escape(title));
  page += fmt::format("<style>\n{}\n</style>\n<style>\n{}\n</style>\n", report_assets::uplot_css, report_assets::page_css);
  page += "</head>\n<body>\n";
  page += fmt::format("<header><h1>{}</h1><p>{} run(s) · hover for values · drag to zoom, double-click to reset · "
                      "click a legend entry to hide it</p></header>\n",
                      html_escape(title), runs.size());
  page += "<section id=\"runs\">\n" + runs_table(runs, labels) + "</section>\n";
  page += "<section id=\"config\">\n" + config_section(runs, labels) + "</section>\n";
  if (!skipped.empty())
    page += "<section id=\"skipped\">\n<h2>Skipped</h2>\n<ul>\n" + skipped + "</ul>\n</section>\n";
  page += "<section id=\"charts\"></section>\n";
  page += "<noscript>The charts need JavaScript.</noscript>\n";
  page += "<script type=\"application/json\" id=\"lmforge-report-data\">" + json_for_script(data) + "</script>\n";
  // uPlot's script, then the page's: both inline; the file fetches nothing.
  page += fmt::format("<script>\n{}\n</script>\n<script>\n{}\n</script>\n", report_assets::uplot_js,
                      report_assets::page_js);
  page += "</body>\n</html>\n";
  return page;
}

ReportSummary write_report(const std::vector<std::string>& run_dirs, const std::string& output,
                           std::string_view title) {
  check_assets();
  LF_CHECK(!run_dirs.empty(), "report: no run directories given");
  std::vector<RunHistory> runs;
  ReportSummary summary;
  for (const auto& d : run_dirs) {
    runs.push_back(read_run_history(d));
    summary.runs_drawn += runs.back().lines_read > 0;
    for (const auto& s : runs.back().skipped) summary.skipped.push_back(s);
  }
  LF_CHECK(summary.runs_drawn > 0, "report: none of the {} run directories has metrics to draw ({})",
           run_dirs.size(), fmt::join(summary.skipped, "; "));
  const std::string page =
      render_report_html(runs, title.empty() ? (runs.size() == 1 ? "lmforge run: " + run_dirs[0] : "lmforge runs")
                                             : std::string(title));
  // Written beside the target and renamed over it: a browser open on the old page never reads a half-written one.
  const fs::path out = fs::path(output);
  if (out.has_parent_path()) fs::create_directories(out.parent_path());
  write_file_atomic(output, page);
  return summary;
}

void write_run_report(const std::string& run_dir, bool quiet) noexcept {
  static std::atomic<bool> warned{false};
  try {
    write_report({run_dir}, (fs::path(run_dir) / "report.html").string());
  } catch (const std::exception& e) {
    if (!quiet && !warned.exchange(true)) fmt::print(stderr, "warning: {}/report.html not written: {}\n", run_dir, e.what());
  }
}

}  // namespace lmforge::train
