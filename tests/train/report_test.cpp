// Reading run directories back (train/run_history.h) and the report built from them
// (train/report.h), against the hand-written runs in tests/fixtures/report (see its README).
// The page's drawing is checked in a real browser by report_browser_check.js.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <set>
#include <nlohmann/json.hpp>

#include "accounting/accounting.h"
#include "core/error.h"
#include "train/config.h"
#include "core/file_util.h"
#include "train/report.h"
#include "train/report_assets.h"
#include "train/run_history.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

std::string fixture(const std::string& name) { return std::string(LMFORGE_FIXTURES_DIR) + "/report/" + name; }

bool mentions(const std::vector<std::string>& notes, const std::string& text) {
  for (const auto& n : notes)
    if (n.find(text) != std::string::npos) return true;
  return false;
}

TEST(RunHistory, ReadsEveryNumericKeyOfAPlainRun) {
  const RunHistory h = read_run_history(fixture("plain"));
  EXPECT_TRUE(h.skipped.empty()) << h.skipped.front();
  EXPECT_EQ(h.lines_read, 9);
  // loss = 5.5 - 0.05 · step at steps 10..40.
  const ScalarSeries& loss = h.scalars.at("loss");
  EXPECT_EQ(loss.steps, (std::vector<int64_t>{10, 20, 30, 40}));
  EXPECT_EQ(loss.values, (std::vector<double>{5.0, 4.5, 4.0, 3.5}));
  EXPECT_EQ(h.scalars.at("val_loss").steps, (std::vector<int64_t>{20, 40}));
  EXPECT_DOUBLE_EQ(h.scalars.at("val_loss").values[1], 3.6);
  EXPECT_EQ(h.scalars.at("loss/ce").steps.size(), 4u);
  EXPECT_DOUBLE_EQ(h.scalars.at("loss/z").values[0], 0.009);
  // The f16 loss scale comes from its events.
  EXPECT_EQ(h.scalars.at("loss_scale").steps, (std::vector<int64_t>{1, 25}));
  EXPECT_EQ(h.scalars.at("loss_scale").values, (std::vector<double>{32768, 65536}));
  // Per-layer arrays: one row per line.
  const ArraySeries& experts = h.arrays.at("layers.0.moe.tokens_per_expert");
  EXPECT_EQ(experts.steps, (std::vector<int64_t>{10, 20, 30, 40}));
  EXPECT_EQ(experts.rows[0], (std::vector<double>{10, 40, 25, 5}));
  EXPECT_EQ(experts.rows[3], (std::vector<double>{40, 10, 25, 5}));
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].event, "checkpoint");
  EXPECT_EQ(h.events[0].step, 40);
  // Strings of events are not series.
  EXPECT_FALSE(h.scalars.contains("path"));

  // config.toml as flat keys, and the memory the accounting predicts for it.
  const auto lr = std::find_if(h.config.begin(), h.config.end(), [](const auto& kv) { return kv.first == "optim.lr"; });
  ASSERT_NE(lr, h.config.end());
  EXPECT_EQ(lr->second, "0.001");
  const RunConfig c = load_run_config(fixture("plain/config.toml"));
  ASSERT_TRUE(h.predicted_memory_bytes);
  EXPECT_EQ(*h.predicted_memory_bytes,
            accounting::estimate_memory(c.model, {.micro_batch_size = 4, .seq_len = 64}).total);
}

TEST(RunHistory, SkipsNonFiniteValuesAndATornLine) {
  const RunHistory h = read_run_history(fixture("nan_truncated"));
  // Step 20's loss is null, step 40's line is cut short.
  EXPECT_EQ(h.scalars.at("loss").steps, (std::vector<int64_t>{10, 30}));
  // Step 30's gradient norm is a bare NaN; the rest of that line is still read.
  EXPECT_EQ(h.scalars.at("grad_norm").steps, (std::vector<int64_t>{10, 20}));
  EXPECT_EQ(h.scalars.at("lr").steps, (std::vector<int64_t>{10, 20, 30}));
  EXPECT_EQ(h.lines_read, 5);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].event, "nonfinite_loss");
  EXPECT_EQ(h.events[0].detail, "action=skip");
  EXPECT_TRUE(mentions(h.skipped, "line 6")) << fmt::format("{}", fmt::join(h.skipped, "\n"));
  EXPECT_TRUE(mentions(h.skipped, "\"loss\" is null or not finite at 1 step(s) (first at step 20)"));
  EXPECT_TRUE(mentions(h.skipped, "\"grad_norm\" is null or not finite at 1 step(s) (first at step 30)"));
}

TEST(RunHistory, AResumedRunKeepsItsLaterLines) {
  // The run directory holds train/ (the quickstart's layout).
  const RunHistory h = read_run_history(fixture("resumed"));
  EXPECT_EQ(h.metrics_path, fixture("resumed") + "/train/metrics.jsonl");
  EXPECT_EQ(h.scalars.at("loss").steps, (std::vector<int64_t>{10, 20, 30, 40}));
  EXPECT_EQ(h.scalars.at("loss").values, (std::vector<double>{5.0, 4.9, 4.7, 4.5}));
  EXPECT_EQ(h.scalars.at("val_loss").steps, (std::vector<int64_t>{20, 40}));
  EXPECT_TRUE(mentions(h.skipped, "step 30 at line 6 after step 40")) << fmt::format("{}", fmt::join(h.skipped, "\n"));
}

TEST(RunHistory, MissingMetricsAndDirectoriesAreNotes) {
  const RunHistory none = read_run_history(fixture("no_metrics"));
  EXPECT_EQ(none.lines_read, 0);
  EXPECT_TRUE(none.scalars.empty());
  EXPECT_TRUE(mentions(none.skipped, "no metrics.jsonl"));
  EXPECT_FALSE(none.config.empty());
  const RunHistory missing = read_run_history(fixture("does_not_exist"));
  EXPECT_TRUE(mentions(missing.skipped, "not a directory"));
}

TEST(RunHistory, ParsesLinesByHand) {
  RunHistory h;
  parse_metrics_jsonl("{\"step\": 1, \"event\": \"note\", \"path\": \"NaN Infinity\"}\n"
                      "\n"
                      "{\"step\": 2, \"x\": Infinity, \"y\": -Infinity, \"z\": [1, NaN, 3]}\n"
                      "[1, 2]\n"
                      "{\"loss\": 1}\n"
                      "{\"step\": 3, \"x\": 1.5, \"w\": [\"a\"]}\n"
                      "{\"step\": 3, \"x\": 2.5}\n",
                      "m", h);
  ASSERT_EQ(h.events.size(), 1u);
  EXPECT_EQ(h.events[0].detail, "path=NaN Infinity");  // words inside strings stay
  EXPECT_EQ(h.scalars.at("x").steps, (std::vector<int64_t>{3}));
  EXPECT_EQ(h.scalars.at("x").values, (std::vector<double>{2.5}));  // the same step again: the later one
  ASSERT_EQ(h.arrays.at("z").rows.size(), 1u);
  EXPECT_TRUE(std::isnan(h.arrays.at("z").rows[0][1]));
  EXPECT_EQ(h.arrays.at("z").rows[0][2], 3);
  EXPECT_FALSE(h.arrays.contains("w"));
  EXPECT_TRUE(mentions(h.skipped, "skipped 2 unreadable line(s): line 4 (not a JSON object), line 5 (no integer"));
  EXPECT_TRUE(mentions(h.skipped, "\"w\" holds arrays of non-numbers"));
  EXPECT_TRUE(mentions(h.skipped, "\"y\" is null or not finite"));
}

TEST(RunHistory, ReadsFlatToml) {
  const auto kv = read_flat_toml("# c\n[model]\nd_model = 64\nnorm = \"rms norm\"\n\n[optim]\n lr = 1e-3 \n");
  ASSERT_EQ(kv.size(), 3u);
  EXPECT_EQ(kv[0], (std::pair<std::string, std::string>{"model.d_model", "64"}));
  EXPECT_EQ(kv[1], (std::pair<std::string, std::string>{"model.norm", "\"rms norm\""}));
  EXPECT_EQ(kv[2], (std::pair<std::string, std::string>{"optim.lr", "1e-3"}));
}

std::vector<std::string> titles(const std::vector<ReportChart>& charts) {
  std::vector<std::string> out;
  for (const auto& c : charts) out.push_back(c.title);
  return out;
}

TEST(Report, PlansKnownChartsThenFamiliesThenHeatmaps) {
  RunHistory a, b;
  parse_metrics_jsonl("{\"step\": 1, \"loss\": 2, \"val_loss\": 2, \"loss/z\": 0.1, \"loss/ce\": 1.9, \"lr\": 0.1, "
                      "\"layers.10.attn.entropy\": 1, \"layers.2.attn.entropy\": 2, \"moe/aux\": 0.5, \"zeta\": 1, "
                      "\"layers.10.moe.load\": [1, 2], \"layers.2.moe.load\": [3, 4]}\n",
                      "a", a);
  parse_metrics_jsonl("{\"step\": 1, \"loss\": 3, \"grad_norm\": 1, \"layers.2.moe.load\": [1]}\n", "b", b);
  const auto charts = plan_charts({a, b});
  EXPECT_EQ(titles(charts),
            (std::vector<std::string>{"Loss: training (solid) and validation (dashed)", "Loss terms", "Learning rate",
                                      "Gradient norm (before clipping)", "layers.*.attn.entropy", "moe/*", "zeta",
                                      "layers.2.moe.load", "layers.2.moe.load", "layers.10.moe.load"}));
  EXPECT_EQ(charts[0].keys, (std::vector<std::string>{"loss", "val_loss"}));
  EXPECT_EQ(charts[1].keys, (std::vector<std::string>{"loss/ce", "loss/z"}));
  EXPECT_EQ(charts[4].keys, (std::vector<std::string>{"layers.2.attn.entropy", "layers.10.attn.entropy"}));
  EXPECT_EQ(charts[7].kind, "heatmap");
  EXPECT_EQ(charts[7].run, 0);
  EXPECT_EQ(charts[8].run, 1);
  EXPECT_EQ(charts[9].run, 0);
  std::set<std::string> ids;
  for (const auto& c : charts) ids.insert(c.id);
  EXPECT_EQ(ids.size(), charts.size());
}

TEST(Report, ConfigDifferencesAndLabels) {
  const std::vector<RunHistory> runs = {read_run_history(fixture("plain")), read_run_history(fixture("nan_truncated")),
                                        read_run_history(fixture("resumed"))};
  const auto d = config_differences(runs);
  ASSERT_EQ(d.size(), 3u);
  EXPECT_EQ(d[0].key, "model.n_layers");
  EXPECT_EQ(d[0].values, (std::vector<std::string>{"2", "2", "4"}));
  EXPECT_EQ(d[1].key, "model.norm");
  EXPECT_EQ(d[1].values, (std::vector<std::string>{"\"rmsnorm\"", "\"layernorm\"", "\"rmsnorm\""}));
  EXPECT_EQ(d[2].key, "optim.lr");
  EXPECT_EQ(d[2].values, (std::vector<std::string>{"0.001", "0.01", "0.001"}));
  EXPECT_TRUE(config_differences({runs[0]}).empty());
  // Every run has its own directory: not a difference worth a row.
  RunHistory p, q;
  p.config = {{"train.out_dir", "\"a\""}, {"optim.lr", "0.1"}};
  q.config = {{"train.out_dir", "\"b\""}, {"optim.lr", "0.1"}};
  EXPECT_TRUE(config_differences({p, q}).empty());

  RunHistory x, y, z, t;
  x.dir = "sweep/a/run/";
  y.dir = "other/run";
  z.dir = "q/train";
  t.dir = "q/train";
  EXPECT_EQ(run_labels({x, y}), (std::vector<std::string>{"sweep/a/run/", "other/run"}));
  EXPECT_EQ(run_labels({x, z}), (std::vector<std::string>{"run", "q/train"}));
  EXPECT_EQ(run_labels({z, t}), (std::vector<std::string>{"q/train", "q/train #2"}));
}

// The JSON object the page draws from.
nlohmann::json page_data(const std::string& page) {
  const std::string open = "<script type=\"application/json\" id=\"lmforge-report-data\">";
  const size_t a = page.find(open);
  EXPECT_NE(a, std::string::npos);
  const size_t b = page.find("</script>", a);
  return nlohmann::json::parse(page.substr(a + open.size(), b - a - open.size()));
}

TEST(Report, ThePageIsSelfContainedAndCarriesTheData) {
  if (report_assets::uplot_js.empty()) GTEST_SKIP() << "uPlot was not installed when this build was made";
  RunHistory odd = read_run_history(fixture("plain"));
  odd.dir = "</script><b>x";
  const std::string page = render_report_html({odd, read_run_history(fixture("nan_truncated"))}, "t <&>");
  // Nothing is fetched: no external scripts, styles or images.
  for (const char* ref : {"<script src", "<link", "<img", "@import", "url(http"})
    EXPECT_EQ(page.find(ref), std::string::npos) << ref;
  EXPECT_NE(page.find("<title>t &lt;&amp;&gt;</title>"), std::string::npos);
  EXPECT_NE(page.find(report_assets::uplot_js.substr(0, 200)), std::string::npos);
  const auto data = page_data(page);
  ASSERT_EQ(data["runs"].size(), 2u);
  EXPECT_EQ(data["runs"][0]["dir"], "</script><b>x");
  EXPECT_EQ(data["runs"][0]["scalars"]["loss"]["values"], nlohmann::json({5.0, 4.5, 4.0, 3.5}));
  EXPECT_EQ(data["runs"][1]["scalars"]["loss"]["steps"], nlohmann::json({10, 30}));
  // The prediction is drawn beside the measured peak, at its steps.
  const auto& predicted = data["runs"][0]["scalars"]["predicted_memory_bytes"];
  EXPECT_EQ(predicted["steps"], nlohmann::json({10, 20, 30, 40}));
  EXPECT_EQ(predicted["values"][0].get<double>(), double(*odd.predicted_memory_bytes));
  // What was skipped is said on the page; the config table holds the differing keys.
  EXPECT_NE(page.find("line 6 (not a JSON object"), std::string::npos);
  EXPECT_NE(page.find("<td>optim.lr</td><td>0.001</td><td>0.01</td>"), std::string::npos);
}

TEST(Report, WritesAtomicallyAndRefusesRunsWithoutMetrics) {
  if (report_assets::uplot_js.empty()) GTEST_SKIP() << "uPlot was not installed when this build was made";
  const fs::path dir = fs::temp_directory_path() / fmt::format("lmforge_report_test_{}", ::getpid());
  fs::remove_all(dir);
  const std::string out = (dir / "sub" / "r.html").string();
  const ReportSummary s = write_report({fixture("plain"), fixture("no_metrics")}, out);
  EXPECT_EQ(s.runs_drawn, 1);
  EXPECT_TRUE(mentions(s.skipped, "no metrics.jsonl"));
  EXPECT_EQ(std::distance(fs::directory_iterator(dir / "sub"), fs::directory_iterator()), 1);  // no temporary left
  EXPECT_NE(read_file(out).find("</html>"), std::string::npos);
  try {
    write_report({fixture("no_metrics")}, out);
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("none of the 1 run directories has metrics"), std::string::npos) << e.what();
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace lmforge::train
