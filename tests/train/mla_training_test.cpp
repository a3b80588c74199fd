// Multi-head Latent Attention runs through the trainer and checkpoints: a checkpoint of an MLA
// model loads back with the same weights and logits and exports as HF DeepSeek-V3, and an
// interrupted MLA run resumes bit-identically.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "core/file_util.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

void make_mla(nn::ModelConfig& c) {
  c.attention = nn::AttentionKind::MLA;
  c.q_lora_rank = 8;
  c.kv_lora_rank = 8;
  c.qk_nope_head_dim = 6;
  c.qk_rope_head_dim = 4;
  c.v_head_dim = 5;
}

class MlaTraining : public test::PatternShardsTest {};

TEST_F(MlaTraining, CheckpointRoundTrip) {
  RunConfig rc = run("unused");
  make_mla(rc.model);
  rc.validate();
  auto model = test::make_model(rc.model, DType::F32, 21);
  optim::AdamW opt(model->named_parameters(), {});
  TrainerState state;
  state.step = 3;
  optim::LrSchedule sched;
  const std::string dir = root_ + "/ckpt";
  const std::string saved = save_checkpoint(dir, {.model = *model, .optimizer = opt, .state = state,
                                                  .schedule = sched, .config = rc}, 1);
  const auto hf = nlohmann::json::parse(read_file(saved + "/config.json"));
  EXPECT_EQ(hf.at("architectures")[0], "DeepseekV3ForCausalLM");
  LoadedModel m = load_checkpoint_model(dir, Device::cpu());
  EXPECT_TRUE(m.model->config().is_mla());
  const auto a = model->named_parameters(), b = m.model->named_parameters();
  ASSERT_EQ(a.size(), b.size());
  bool has_latent = false;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].name, b[i].name);
    EXPECT_TRUE(test::bit_identical(a[i].tensor, b[i].tensor)) << a[i].name;
    has_latent |= a[i].name == "model.layers.1.self_attn.kv_b_proj.weight";
  }
  EXPECT_TRUE(has_latent);
  NoGradGuard ng;
  const Tensor ids = test::random_ids(2, 7, rc.model.vocab_size, 4);
  EXPECT_TRUE(test::bit_identical(model->forward(ids), m.model->forward(ids)));
}

TEST_F(MlaTraining, ResumedRunIsBitIdentical) {
  RunConfig c = run("unused");
  make_mla(c.model);
  c.model.dropout = 0.1;
  const test::ResumeRuns r = test::run_interrupted_and_resumed(c, root_ + "/mla", 6);
  EXPECT_LT(r.full.losses.back().second, r.full.losses.front().second) << "an MLA model learns the pattern";
  test::expect_resumed_run_identical(r, 4);
}

}  // namespace
}  // namespace lmforge::train
