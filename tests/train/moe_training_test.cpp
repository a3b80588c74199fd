// Mixture-of-Experts runs through the trainer: metrics carry every named loss term and each MoE
// layer's statistics, an interrupted run resumes bit-identically (auxiliary-loss-free biases
// included), and an upcycled model reproduces its dense parent at step 0.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>
#include <sstream>

#include "core/file_util.h"
#include "train/checkpoint.h"
#include "train/train_test_util.h"
#include "train/trainer.h"
#include "train/upcycle.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;

class MoETraining : public test::PatternShardsTest {
 protected:
  RunConfig moe_run(const std::string& name) {
    RunConfig c = run(name);
    c.model.n_experts = 4;
    c.model.d_ff_expert = 16;
    c.model.top_k = 2;
    c.model.router = nn::RouterKind::SigmoidTopK;
    c.model.n_shared_experts = 1;
    c.model.balance_loss = 0.01;
    c.model.router_z_loss = 0.001;
    c.model.bias_update_rate = 0.01;
    return c;
  }
};

TEST_F(MoETraining, MetricsCarryLossTermsAndExpertLoads) {
  RunConfig c = moe_run("a");
  const TrainSummary s = run_training(c, {.quiet = true});
  EXPECT_LT(s.losses.back().second, s.losses.front().second);
  std::istringstream lines(read_file(root_ + "/a/metrics.jsonl"));
  std::string line;
  int checked = 0;
  while (std::getline(lines, line)) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("loss")) continue;
    ++checked;
    // The objective is the sum of its terms.
    const double ce = j.at("loss/ce"), aux = j.at("loss/aux");
    EXPECT_NEAR(j.at("loss").get<double>(), ce + aux, 1e-5) << line;
    EXPECT_NEAR(aux, j.at("loss/moe_balance").get<double>() + j.at("loss/router_z").get<double>(), 1e-6) << line;
    for (int layer = 0; layer < 2; ++layer) {
      const std::string p = "layers." + std::to_string(layer) + ".";
      const auto load = j.at(p + "moe.tokens_per_expert").get<std::vector<double>>();
      ASSERT_EQ(load.size(), 4u);
      double total = 0;
      for (double l : load) total += l;
      EXPECT_EQ(total, 2.0 * 2 * 8 * 2) << "2 micro-batches of 2 × 8 tokens, top-2";
      EXPECT_GE(j.at(p + "moe.max_mean_load").get<double>(), 1.0);
      EXPECT_EQ(j.at(p + "moe.expert_bias").size(), 4u);
      EXPECT_EQ(j.at(p + "moe.dropped_tokens").get<double>(), 0.0);
    }
  }
  EXPECT_EQ(checked, 12);
}

TEST_F(MoETraining, ResumedRunIsBitIdentical) {
  for (nn::RouterKind router : {nn::RouterKind::SigmoidTopK, nn::RouterKind::ExpertChoice}) {
    RunConfig c = moe_run("unused");
    c.model.router = router;
    if (router == nn::RouterKind::ExpertChoice) c.model.capacity_factor = 1.0, c.model.bias_update_rate = 0;
    c.model.dropout = 0.1;
    const std::string dir = root_ + "/" + std::string(nn::to_string(router));
    const test::ResumeRuns r = test::run_interrupted_and_resumed(c, dir, 6);
    test::expect_resumed_run_identical(r, 4);
  }
}

// The experts start as the dense FFN: full copies give the dense model's logits whatever the
// router picks (normalised gates); slices of the FFN do with a zero router and top_k = G.
TEST_F(MoETraining, UpcycledModelStartsAsItsDenseParent) {
  nn::ModelConfig dense_cfg = test::tiny_config();
  dense_cfg.d_ff = 16;
  const auto dense = test::make_model(dense_cfg, DType::F64, 5);
  const Tensor ids = test::random_ids(2, 6, dense_cfg.vocab_size, 1);
  const Tensor want = dense->forward(ids);
  struct Case {
    const char* name;
    int64_t d_ff_expert, top_k;
    nn::RouterKind router;
    int64_t shared;
  };
  for (const Case k : {Case{"copies, softmax", 16, 2, nn::RouterKind::SoftmaxTopK, 0},
                       Case{"copies, sigmoid, shared", 16, 3, nn::RouterKind::SigmoidTopK, 1},
                       Case{"slices of 8, top-2", 8, 2, nn::RouterKind::SoftmaxTopK, 0},
                       Case{"slices of 4, top-4", 4, 4, nn::RouterKind::SoftmaxTopK, 0}}) {
    nn::ModelConfig m = dense_cfg;
    m.n_experts = 8, m.d_ff_expert = k.d_ff_expert, m.top_k = k.top_k, m.router = k.router;
    m.n_shared_experts = k.shared;
    Generator g(3);
    const auto moe = upcycle(*dense, m, g, 0.1);
    moe->set_training(false);
    const Tensor got = moe->forward(ids);
    const double diff = amax(abs(got - want)).item();
    EXPECT_LT(diff, 1e-12) << k.name;
  }
  // Shapes that cannot be upcycled are refused naming the key.
  nn::ModelConfig wrong = dense_cfg;
  wrong.n_experts = 4, wrong.d_ff_expert = 6;
  Generator g(3);
  try {
    upcycle(*dense, wrong, g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.d_ff_expert"), std::string::npos) << e.what();
  }
  wrong.d_ff_expert = 8;
  wrong.d_model = 12;
  try {
    upcycle(*dense, wrong, g);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.d_model (checkpoint: 8, config: 12)"), std::string::npos) << e.what();
  }
}

}  // namespace
}  // namespace lmforge::train
