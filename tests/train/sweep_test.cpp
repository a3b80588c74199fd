// lmforge sweep (train/sweep.h): the variants' product and names, every bad --vary rejected
// before anything runs, and a real two-run sweep on the trainer tests' tiny model.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>

#include "core/error.h"
#include "train/report_assets.h"
#include "train/run_history.h"
#include "train/sweep.h"
#include "train/train_test_util.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class SweepTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / fmt::format("lmforge_sweep_test_{}", ::getpid());
    fs::remove_all(root_);
    data_ = (root_ / "data").string();
    test::write_pattern_shards(data_, 16, 4000, 1000);
    base_ = to_toml(test::tiny_run(data_, (root_ / "unused").string()));
  }
  void TearDown() override { fs::remove_all(root_); }

  std::string error_of(const std::vector<std::string>& vary) {
    std::vector<SweepAxis> axes;
    try {
      for (const auto& v : vary) axes.push_back(parse_sweep_axis(v));
      plan_sweep(base_, "base.toml", {}, axes, (root_ / "out").string());
    } catch (const Error& e) {
      EXPECT_FALSE(fs::exists(root_ / "out")) << "nothing is written before every variant is checked";
      return e.what();
    }
    return "";
  }

  fs::path root_;
  std::string data_, base_;
};

TEST_F(SweepTest, ParsesAxes) {
  const SweepAxis a = parse_sweep_axis("optim.lr=1e-3, 3e-3,1e-2");
  EXPECT_EQ(a.key, "optim.lr");
  EXPECT_EQ(a.values, (std::vector<std::string>{"1e-3", "3e-3", "1e-2"}));
  EXPECT_THROW(parse_sweep_axis("optim.lr"), Error);
  EXPECT_THROW(parse_sweep_axis("=1,2"), Error);
  EXPECT_THROW(parse_sweep_axis("optim.lr=1e-3,,3e-3"), Error);
}

TEST_F(SweepTest, PlansTheProductLastKeyFastest) {
  const SweepPlan p = plan_sweep(base_, "base.toml", {"train.steps=3"},
                                 {parse_sweep_axis("model.norm=rmsnorm,layernorm"),
                                  parse_sweep_axis("optim.lr=0.01,0.003,0.001")},
                                 (root_ / "out").string());
  ASSERT_EQ(p.variants.size(), 6u);
  const char* norms[] = {"rmsnorm", "rmsnorm", "rmsnorm", "layernorm", "layernorm", "layernorm"};
  const double lrs[] = {0.01, 0.003, 0.001, 0.01, 0.003, 0.001};
  for (size_t i = 0; i < 6; ++i) {
    const RunConfig& c = p.variants[i].config;
    EXPECT_EQ(c.model.norm == nn::NormKind::RmsNorm ? "rmsnorm" : "layernorm", std::string(norms[i])) << i;
    EXPECT_EQ(c.optim.lr, lrs[i]) << i;
    EXPECT_EQ(c.train.steps, 3);
    EXPECT_EQ(c.train.seed, 1337);  // the same seed for every variant
    EXPECT_EQ(c.data.path, data_);
    EXPECT_EQ(c.train.out_dir, (root_ / "out" / p.variants[i].name).string());
  }
  EXPECT_EQ(p.variants[0].name, "01-norm=rmsnorm_lr=0.01");
  EXPECT_EQ(p.variants[5].name, "06-norm=layernorm_lr=0.001");
  EXPECT_EQ(p.variants[4].assignments, (std::vector<std::string>{"model.norm=layernorm", "optim.lr=0.003"}));
}

TEST_F(SweepTest, RejectsBadVariantsBeforeTheFirstRun) {
  EXPECT_NE(error_of({"optim.lrr=1e-3,1e-2"}).find("optim.lrr"), std::string::npos);
  EXPECT_NE(error_of({"optim.lr=1e-3,fast"}).find("--vary optim.lr=fast"), std::string::npos);
  EXPECT_NE(error_of({"optim.lr=1e-3", "model.n_layers=2,two"}).find("not an integer"), std::string::npos);
  EXPECT_NE(error_of({"model.norm=rmsnorm,batchnorm"}).find("batchnorm"), std::string::npos);
  EXPECT_NE(error_of({"optim.lr=1e-3", "optim.lr=1e-2"}).find("varied twice"), std::string::npos);
  EXPECT_NE(error_of({"train.out_dir=a,b"}).find("--output"), std::string::npos);
  // Each value fits alone; the combination breaks a cross-key constraint (seq_len > context_length).
  const std::string e = error_of({"train.seq_len=8,64"});
  EXPECT_NE(e.find("02-seq_len=64"), std::string::npos) << e;
  EXPECT_NE(e.find("context_length"), std::string::npos) << e;
}

TEST_F(SweepTest, RunsEachVariantOnTheSameDataAndSeed) {
  const SweepPlan p = plan_sweep(base_, "base.toml", {"train.steps=4", "eval.every=2", "train.peak_tflops=1"},
                                 {parse_sweep_axis("optim.lr=1e-2,1e-3")}, (root_ / "out").string());
  std::vector<std::string> lines;
  const auto results = run_sweep(p, [&](const std::string& l) { lines.push_back(l); });
  ASSERT_EQ(results.size(), 2u);
  ASSERT_TRUE(results[0].ok) << results[0].error;
  ASSERT_TRUE(results[1].ok) << results[1].error;
  ASSERT_EQ(lines.size(), 4u);
  EXPECT_EQ(lines[0].rfind("[1/2] 01-lr=1e-2: optim.lr=1e-2 -> ", 0), 0u) << lines[0];
  EXPECT_NE(lines[3].find("[2/2] 02-lr=1e-3: 4 steps | val loss "), std::string::npos) << lines[3];
  // The first step's loss is computed before any update: the same data and seed give the same bits;
  // the learning rates then part the runs.
  const auto& a = results[0].summary.losses;
  const auto& b = results[1].summary.losses;
  ASSERT_EQ(a.size(), 4u);
  ASSERT_EQ(b.size(), 4u);
  EXPECT_EQ(test::bits(a[0].second), test::bits(b[0].second));
  EXPECT_NE(test::bits(a[3].second), test::bits(b[3].second));
  for (const auto& v : p.variants) {
    const RunHistory h = read_run_history(v.config.train.out_dir);
    EXPECT_EQ(h.scalars.at("loss").steps.size(), 4u) << v.name;
  }
  // The sweep's comparison, and each run's own page written by the trainer.
  if (!report_assets::uplot_js.empty()) {
    EXPECT_TRUE(fs::exists(root_ / "out" / "report.html"));
    for (const auto& v : p.variants) EXPECT_TRUE(fs::exists(fs::path(v.config.train.out_dir) / "report.html")) << v.name;
  }
}

}  // namespace
}  // namespace lmforge::train
