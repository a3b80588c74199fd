#include <gtest/gtest.h>

#include <functional>

#include "core/error.h"
#include "train/config.h"

namespace lmforge::train {
namespace {

constexpr const char* kBase = R"(
[model]
vocab_size = 512
d_model = 64
n_heads = 4
n_kv_heads = 2
norm = "layernorm"

[data]
path = "shards"

[train]
steps = 10
micro_batch_size = 2
batch_tokens = 1024
seq_len = 128

[optim]
lr = 1e-3
min_lr = 1e-4
warmup_steps = 2
)";

std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(RunConfig, ParsesSectionsAndDerivesDefaults) {
  const RunConfig c = parse_run_config(kBase, "base.toml");
  EXPECT_EQ(c.model.vocab_size, 512);
  EXPECT_EQ(c.model.n_kv_heads, 2);
  EXPECT_EQ(c.model.head_dim, 16);
  EXPECT_EQ(c.model.d_ff, 192);
  EXPECT_EQ(c.model.norm, nn::NormKind::LayerNorm);
  EXPECT_EQ(c.data.path, "shards");
  EXPECT_EQ(c.accumulation_steps(), 4);
  EXPECT_DOUBLE_EQ(c.optim.lr, 1e-3);
  EXPECT_EQ(c.decay_steps(), 10);
}

TEST(RunConfig, UnknownKeysAreRejectedNamingTheKey) {
  std::string e = error_of([] { parse_run_config(std::string(kBase) + "[eval]\nevery = 5\nevry = 3\n", "x.toml"); });
  EXPECT_NE(e.find("unknown config key eval.evry"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean eval.every"), std::string::npos) << e;
  EXPECT_NE(e.find("x.toml:"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[modle]\nd_model = 3\n", "y.toml"); });
  EXPECT_NE(e.find("unknown config section [modle]"), std::string::npos) << e;
  e = error_of([] { parse_run_config("steps = 3\n", "z.toml"); });
  EXPECT_NE(e.find("unknown config key steps"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b.toml", {"model.n_layer=3"}); });
  EXPECT_NE(e.find("unknown config key model.n_layer"), std::string::npos) << e;
  EXPECT_NE(e.find("did you mean model.n_layers"), std::string::npos) << e;
}

TEST(RunConfig, TypeErrorsNameTheKey) {
  std::string e = error_of([] { parse_run_config("[model]\nn_layers = 2.5\n", "t.toml"); });
  EXPECT_NE(e.find("model.n_layers must be an integer"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[model]\nnorm = \"batchnorm\"\n", "t.toml"); });
  EXPECT_NE(e.find("model.norm"), std::string::npos) << e;
  e = error_of([] { parse_run_config("[model\n", "t.toml"); });
  EXPECT_NE(e.find("t.toml:1"), std::string::npos) << e;
}

TEST(RunConfig, OverridesApplyInOrder) {
  const RunConfig c = parse_run_config(kBase, "base.toml",
                                       {"model.n_layers=7", "optim.lr=0.002", "model.ffn=gelu", "train.out_dir=\"r 1\"",
                                        "model.qk_norm=true", "model.n_layers = 9"});
  EXPECT_EQ(c.model.n_layers, 9);
  EXPECT_DOUBLE_EQ(c.optim.lr, 0.002);
  EXPECT_EQ(c.model.ffn, nn::FfnKind::GELU);
  EXPECT_EQ(c.model.d_ff, 256);
  EXPECT_EQ(c.train.out_dir, "r 1");
  EXPECT_TRUE(c.model.qk_norm);
  EXPECT_NE(error_of([] { parse_run_config(kBase, "b", {"model.n_layers=x"}); }).find("not an integer"),
            std::string::npos);
  EXPECT_NE(error_of([] { parse_run_config(kBase, "b", {"model.bias=yes"}); }).find("true or false"),
            std::string::npos);
}

TEST(RunConfig, InvalidCombinationsAreRejectedBeforeTraining) {
  std::string e = error_of([] { parse_run_config(kBase, "b", {"model.n_kv_heads=3"}); });
  EXPECT_NE(e.find("model.n_heads (4) is not a multiple of model.n_kv_heads (3)"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.batch_tokens=1000"}); });
  EXPECT_NE(e.find("train.batch_tokens"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.seq_len=1024"}); });
  EXPECT_NE(e.find("exceeds model.context_length"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"optim.min_lr=1"}); });
  EXPECT_NE(e.find("optim.min_lr"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.on_nan=explode"}); });
  EXPECT_NE(e.find("train.on_nan"), std::string::npos) << e;
}

TEST(RunConfig, PrecisionResolvesAutoByDeviceAndRejectsUnknownSpellings) {
  RunConfig c = parse_run_config(kBase, "b");
  EXPECT_EQ(c.train.precision, Precision::F32);  // auto on the CPU
  EXPECT_EQ(c.compute_dtype(), DType::F32);
  EXPECT_NE(to_toml(c).find("precision = \"f32\""), std::string::npos) << to_toml(c);
  c = parse_run_config(kBase, "b", {"train.device=cuda:1"});
  EXPECT_EQ(c.train.precision, Precision::BF16);  // auto on a GPU
  EXPECT_NE(to_toml(c).find("precision = \"bf16\""), std::string::npos) << to_toml(c);
  c = parse_run_config(kBase, "b", {"train.device=cuda", "train.precision=f32"});
  EXPECT_EQ(c.compute_dtype(), DType::F32);
  c = parse_run_config(kBase, "b", {"train.precision=f16", "train.loss_scale_init=1024",
                                    "train.loss_scale_growth_interval=10"});
  EXPECT_EQ(c.compute_dtype(), DType::F16);
  EXPECT_EQ(c.train.loss_scale_init, 1024);
  EXPECT_EQ(c.train.loss_scale_growth_interval, 10);
  std::string e = error_of([] { parse_run_config(kBase, "b", {"train.precision=fp16"}); });
  EXPECT_NE(e.find("train.precision"), std::string::npos) << e;
  EXPECT_NE(e.find("auto | f32 | bf16 | f16"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.loss_scale_init=0"}); });
  EXPECT_NE(e.find("train.loss_scale_init"), std::string::npos) << e;
  e = error_of([] { parse_run_config(kBase, "b", {"train.loss_scale_growth_interval=0"}); });
  EXPECT_NE(e.find("train.loss_scale_growth_interval"), std::string::npos) << e;
}

TEST(RunConfig, ResolvedTomlRoundTrips) {
  const RunConfig c = parse_run_config(kBase, "base.toml", {"optim.lr=0.000123456789", "model.rope_theta=500000"});
  const std::string text = to_toml(c);
  EXPECT_NE(text.find("[model]\nvocab_size = 512\n"), std::string::npos) << text;
  EXPECT_NE(text.find("rope_theta = 500000.0"), std::string::npos) << text;
  const RunConfig d = parse_run_config(text, "resolved.toml");
  EXPECT_EQ(to_toml(d), text);
  EXPECT_EQ(d.optim.lr, c.optim.lr);
}

}  // namespace
}  // namespace lmforge::train

namespace lmforge::train {
namespace {

TEST(RunConfig, PresetsLoadWithTheirSizes) {
  const std::string dir = std::string(LMFORGE_SOURCE_DIR) + "/configs/";
  const RunConfig q = load_run_config(dir + "quickstart.toml");
  EXPECT_GT(q.model.parameter_count(), 3'000'000);
  EXPECT_LT(q.model.parameter_count(), 6'000'000);
  EXPECT_TRUE(q.model.is_llama());
  const RunConfig g = load_run_config(dir + "gpt2-124m.toml");
  EXPECT_EQ(g.model.parameter_count(), 124'439'808);  // GPT-2 small as HF transformers counts it
  EXPECT_EQ(g.accumulation_steps(), 32);
  const RunConfig l = load_run_config(dir + "llama-336m.toml");
  EXPECT_NEAR(double(l.model.parameter_count()), 336e6, 1e6);
  EXPECT_TRUE(l.model.is_llama());
  EXPECT_EQ(l.model.kv_heads(), 4);
}

}  // namespace
}  // namespace lmforge::train
