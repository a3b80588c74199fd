// Weight-only quantization: per-element error bounds, quantized checkpoints written and loaded,
// and the perplexity cost on a small trained model.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <functional>

#include "infer/quantize.h"
#include "ops/ops.h"
#include "train/checkpoint.h"
#include "train/evaluate.h"
#include "train/quantized_checkpoint.h"
#include "train/safetensors.h"
#include "train/train_test_util.h"

namespace lmforge::infer {
namespace {

namespace fs = std::filesystem;

// A weight with an outlier per row, so groups and channels get different scales.
Tensor test_weight() {
  Generator g(11);
  Tensor w = randn({6, 64}, g, DType::F32, Device::cpu(), 0, 0.05);
  std::vector<float> v = to_vector<float>(w);
  for (int64_t r = 0; r < 6; ++r) v[size_t(r * 64 + (r * 13) % 64)] = 0.5f * float(r + 1);
  v[3] = 0;  // exact zero stays zero
  return from_vector<float>(v, {6, 64});
}

TEST(Quantize, Int8RoundTripIsWithinHalfAStep) {
  const Tensor w = test_weight();
  const std::vector<float> wv = to_vector<float>(w);
  for (int64_t group : {0, 16}) {
    const QuantizedWeight q = quantize_weight(w, {.format = QuantFormat::Int8, .group_size = group});
    const int64_t gs = group ? group : 64;
    ASSERT_EQ(q.data.dtype(), DType::I8);
    ASSERT_EQ(q.scale.shape(), (Shape{6, 64 / gs}));
    const std::vector<float> d = to_vector<float>(dequantize(q)), s = to_vector<float>(q.scale);
    const std::vector<int8_t> qv = to_vector<int8_t>(q.data);
    for (int64_t r = 0; r < 6; ++r)
      for (int64_t c = 0; c < 64; ++c) {
        const size_t i = size_t(r * 64 + c);
        const float scale = s[size_t(r * (64 / gs) + c / gs)];
        float amax = 0;  // the scale is the group's max |w| over 127
        for (int64_t k = c / gs * gs; k < (c / gs + 1) * gs; ++k) amax = std::max(amax, std::abs(wv[size_t(r * 64 + k)]));
        ASSERT_FLOAT_EQ(scale, amax / 127.f);
        ASSERT_LE(std::abs(d[i] - wv[i]), scale / 2 * (1 + 1e-5f)) << r << "," << c;
        ASSERT_LE(std::abs(int(qv[i])), 127);
      }
    EXPECT_EQ(d[3], 0.f);
  }
}

TEST(Quantize, Fp8AndHalfCastsAreWithinTheirRounding) {
  const Tensor w = test_weight();
  const std::vector<float> wv = to_vector<float>(w);
  const QuantizedWeight f8 = quantize_weight(w, {.format = QuantFormat::Fp8});
  ASSERT_EQ(f8.data.dtype(), DType::F8E4M3);
  const std::vector<float> d8 = to_vector<float>(dequantize(f8)), s8 = to_vector<float>(f8.scale);
  for (size_t i = 0; i < wv.size(); ++i) {
    const float scale = s8[i / 64];
    // 3 mantissa bits: half an ulp is 2^-4 relative; below e4m3's normal range (2^-6 · scale)
    // the step is 2^-9 · scale.
    const float bound = std::max(std::abs(wv[i]) * 0.0625f, scale * std::ldexp(1.f, -10)) * (1 + 1e-5f);
    ASSERT_LE(std::abs(d8[i] - wv[i]), bound) << i;
  }
  for (const auto& [format, rel] : {std::pair{QuantFormat::BF16, 1.f / 256}, std::pair{QuantFormat::F16, 1.f / 2048}}) {
    const QuantizedWeight h = quantize_weight(w, {.format = format});
    EXPECT_FALSE(h.scale.defined());
    const std::vector<float> d = to_vector<float>(dequantize(h));
    for (size_t i = 0; i < wv.size(); ++i) ASSERT_LE(std::abs(d[i] - wv[i]), std::abs(wv[i]) * rel) << i;
  }
  EXPECT_THROW(quantize_weight(w, {.format = QuantFormat::Int8, .group_size = 48}), Error);  // 48 ∤ 64
  EXPECT_THROW(parse_quant_format("int4"), Error);
}

TEST(Quantize, MixtureOfExpertsIsRefusedNamingTheTensor) {
  nn::ModelConfig c = test::tiny_config();
  c.n_experts = 4;
  c.top_k = 2;
  c.d_ff_expert = 8;
  auto model = test::make_model(c);
  const size_t params = model->named_parameters().size();
  try {
    quantize_model(*model, {.format = QuantFormat::Int8});
    ADD_FAILURE() << "an MoE model was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.layers.0.mlp."), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("Mixture-of-Experts"), std::string::npos) << e.what();
  }
  EXPECT_EQ(model->named_parameters().size(), params);  // refused before anything changed
}

// A trained checkpoint of a small model on the pattern shards (train_test_util.h).
struct TrainedModel {
  std::string data_dir, checkpoint;
};

const TrainedModel& trained_model() {
  static const TrainedModel m = [] {
    const std::string root = test::temp_dir("quantize");
    fs::remove_all(root);
    TrainedModel t{.data_dir = root + "/data", .checkpoint = ""};
    test::write_pattern_shards(t.data_dir, 64, 40000, 4000);
    train::RunConfig c = test::tiny_run(t.data_dir, root + "/run");
    c.model.vocab_size = 64;
    c.model.context_length = 32;
    c.model.d_model = 64;
    c.model.n_heads = 4;
    c.model.d_ff = 128;
    c.train.seq_len = 32;
    c.train.micro_batch_size = 8;
    c.train.batch_tokens = 256;
    c.train.steps = 120;
    c.optim.lr = 3e-3;
    c.optim.min_lr = 3e-4;
    c.optim.warmup_steps = 10;
    c.eval.every = 120;
    c.checkpoint.every = 120;
    t.checkpoint = train::run_training(c, {.quiet = true}).last_checkpoint;
    return t;
  }();
  return m;
}

train::EvalResult evaluate_on_val(const nn::Transformer& model, const std::string& data_dir) {
  const train::TokenShards shards = train::TokenShards::open(data_dir, "val_");
  train::ValidationBatches batches(shards, model.config().context_length, 8);
  return train::evaluate(model, batches, 8, model.config().context_length, nullptr);
}

TEST(Quantize, Int8PerplexityIsWithinOnePercentOfF32) {
  const TrainedModel& t = trained_model();
  train::LoadedModel m = train::load_checkpoint_model(t.checkpoint, Device::cpu(), train::Precision::F32);
  const train::EvalResult f32 = evaluate_on_val(*m.model, t.data_dir);
  ASSERT_LT(f32.perplexity, 20.0);  // it learned the pattern (uniform over 64 ids would be 64)
  const QuantizeStats stats = quantize_model(*m.model, {.format = QuantFormat::Int8});
  EXPECT_EQ(stats.layers, 2 * 7);  // q, k, v, o, gate, up, down per layer; the head is tied
  EXPECT_LT(stats.bytes_after, stats.bytes_before);
  const train::EvalResult int8 = evaluate_on_val(*m.model, t.data_dir);
  EXPECT_NE(int8.loss, f32.loss);  // the int8 kernel did run
  EXPECT_LT(std::abs(int8.perplexity / f32.perplexity - 1), 0.01) << f32.perplexity << " vs " << int8.perplexity;
}

TEST(Quantize, CheckpointLoadsAsItWasQuantized) {
  const TrainedModel& t = trained_model();
  const std::string out = test::temp_dir("quantize_out");
  for (const char* format : {"int8", "fp8", "bf16"}) {
    fs::remove_all(out);
    train::LoadedModel m = train::load_checkpoint_model(t.checkpoint, Device::cpu(), train::Precision::F32);
    quantize_model(*m.model, {.format = parse_quant_format(format), .group_size = format[0] == 'i' ? 32 : 0});
    train::save_quantized_checkpoint(*m.model, format, format[0] == 'i' ? 32 : 0, m.dir, out);
    EXPECT_THROW(train::save_quantized_checkpoint(*m.model, format, 0, m.dir, out), Error);  // exists already
    const train::LoadedModel loaded = train::load_checkpoint_model(out, Device::cpu(), train::Precision::F32);
    const Tensor ids = test::random_ids(2, 16, 64, 4);
    NoGradGuard no_grad;
    EXPECT_TRUE(test::bit_identical(loaded.model->forward(ids), m.model->forward(ids))) << format;
    // The quantized weights are not held as f32 parameters any more.
    for (const auto& p : loaded.model->named_parameters()) EXPECT_EQ(p.name.find("_proj"), std::string::npos) << p.name;
  }
  fs::remove_all(out);
}

TEST(Quantize, BadQuantizedFilesNameTheTensor) {
  const TrainedModel& t = trained_model();
  const std::string out = test::temp_dir("quantize_bad");
  fs::remove_all(out);
  train::LoadedModel m = train::load_checkpoint_model(t.checkpoint, Device::cpu(), train::Precision::F32);
  quantize_model(*m.model, {.format = QuantFormat::Int8});
  train::save_quantized_checkpoint(*m.model, "int8", 0, m.dir, out);
  const std::string file = out + "/model.safetensors";
  const train::NamedTensors all = train::SafetensorsFile(file).all();
  const std::string victim = "model.layers.1.mlp.up_proj.weight_scale";
  auto rewrite = [&](const std::function<void(train::NamedTensors&)>& edit) {
    train::NamedTensors t2;
    for (const auto& [n, v] : all) {
      Tensor copy = Tensor::empty(v.shape(), v.dtype());  // off the mapping of the file being replaced
      copy_(copy, v);
      t2.push_back({n, copy});
    }
    edit(t2);
    train::write_safetensors(file + ".tmp", t2, {{"lmforge.quantization", "int8"}, {"lmforge.group_size", "0"}});
    fs::rename(file + ".tmp", file);
  };
  auto expect_error = [&](const std::string& needle) {
    try {
      train::load_checkpoint_model(out, Device::cpu(), train::Precision::F32);
      ADD_FAILURE() << "no error for " << needle;
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(needle), std::string::npos) << e.what();
    }
  };
  rewrite([&](train::NamedTensors& t2) {
    std::erase_if(t2, [&](const auto& p) { return p.first == victim; });
  });
  expect_error("up_proj.weight_scale");
  rewrite([&](train::NamedTensors& t2) {
    for (auto& [n, v] : t2)
      if (n == victim) v = v.narrow(0, 0, 5).contiguous();
  });
  expect_error("up_proj.weight");
  rewrite([&](train::NamedTensors& t2) { t2.push_back({"model.extra.weight", zeros({2})}); });
  expect_error("model.extra.weight");
  fs::remove_all(out);
}

}  // namespace
}  // namespace lmforge::infer
