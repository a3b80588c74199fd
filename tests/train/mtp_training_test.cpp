// Multi-token prediction runs through the trainer: metrics carry the "mtp" loss term, an
// interrupted run resumes bit-identically (dropout and MoE modules included), and the checkpoint
// carries the modules, so it decodes speculatively with the same greedy tokens as plain decoding.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file_util.h"
#include "infer/speculative.h"
#include "train/checkpoint.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

class MtpTraining : public test::PatternShardsTest {
 protected:
  RunConfig mtp_run(const std::string& name) {
    RunConfig c = run(name);
    c.model.mtp_depth = 2;
    c.model.mtp_weight = 0.3;
    return c;
  }
};

TEST_F(MtpTraining, MetricsCarryTheMtpTermAndCheckpointsTheModules) {
  const RunConfig c = mtp_run("a");
  const TrainSummary s = run_training(c, {.quiet = true});
  EXPECT_LT(s.losses.back().second, s.losses.front().second);
  std::istringstream lines(read_file(root_ + "/a/metrics.jsonl"));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    ++checked;
    const double ce = j.at("loss/ce"), mtp = j.at("loss/mtp");
    EXPECT_GT(mtp, 0);
    EXPECT_NEAR(j.at("loss").get<double>(), ce + mtp, 1e-5) << line;
  }
  EXPECT_EQ(checked, 12);

  const LoadedModel m = load_checkpoint_model(s.last_checkpoint, Device::cpu());
  ASSERT_EQ(m.model->mtp_modules().size(), 2u);
  // Evaluation reports the main model's loss alone.
  ASSERT_TRUE(s.val_loss.has_value());
  const std::vector<uint32_t> prompt = {0, 3, 6, 2};
  const infer::GenerateOptions o{.max_new_tokens = 12, .sampling = {.temperature = 0}};
  infer::SpeculativeStats stats;
  EXPECT_EQ(infer::generate_speculative(*m.model, prompt, o, nullptr, &stats), infer::generate(*m.model, prompt, o));
  EXPECT_GT(stats.drafted, 0);
}

TEST_F(MtpTraining, ResumedRunIsBitIdentical) {
  struct Case {
    const char* name;
    std::function<void(RunConfig&)> apply;
  };
  for (const Case& k : {Case{"dense_dropout", [](RunConfig& c) { c.model.dropout = 0.1; }},
                        Case{"moe_loss_free_balancing", [](RunConfig& c) {
                               c.model.n_experts = 4, c.model.d_ff_expert = 16, c.model.top_k = 2;
                               c.model.router = nn::RouterKind::SigmoidTopK, c.model.bias_update_rate = 0.01;
                               c.model.balance_loss = 0.01;
                             }}}) {
    RunConfig c = mtp_run("unused");
    k.apply(c);
    const test::ResumeRuns r = test::run_interrupted_and_resumed(c, root_ + "/" + k.name, 6);
    test::expect_resumed_run_identical(r, 4);
  }
}

}  // namespace
}  // namespace lmforge::train
