// Tiny model configs and batches shared by the model, optimizer, trainer and inference tests.
#pragma once

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "core/random_kernels.h"
#include "nn/transformer.h"
#include "ops/ops.h"

namespace lmforge::test {

// 2 layers, d_model 8, 2 heads of 4, vocab 11, context 8.
inline nn::ModelConfig tiny_config() {
  nn::ModelConfig c;
  c.vocab_size = 11;
  c.context_length = 8;
  c.d_model = 8;
  c.n_layers = 2;
  c.n_heads = 2;
  c.n_kv_heads = 0;
  c.d_ff = 16;
  c.init_std = 0.3;  // large enough that the loss is far from uniform, so gradients are informative
  return c;
}

// Random ids [b, t] in [0, vocab) on the CPU.
inline Tensor random_ids(int64_t b, int64_t t, int64_t vocab, uint64_t seed) {
  Generator g(seed);
  return randint({b, t}, 0, vocab, g);
}

inline std::unique_ptr<nn::Transformer> make_model(const nn::ModelConfig& c, DType dtype = DType::F32,
                                                   uint64_t seed = 7) {
  auto m = std::make_unique<nn::Transformer>(c, nn::TensorOptions{.dtype = dtype});
  Generator g(seed);
  m->init_parameters(g);
  return m;
}

// Compares a model's backward() with central differences of its loss on a few entries of every
// parameter (f64 model, batch 2 x t, the same dropout masks at every evaluation); returns the
// worst error relative to 1e-7 + 1e-6 |fd| and fails the test for any error above 1.
inline double model_gradient_error(const nn::ModelConfig& c, const std::string& label, int64_t t) {
  double worst = 0;
  auto model = make_model(c, DType::F64, 11);
  const Tensor x = random_ids(2, t, c.vocab_size, 3), y = random_ids(2, t, c.vocab_size, 4);
  const GeneratorState drop0 = model->dropout_generator().state();
  auto loss_at = [&] {
    model->dropout_generator().set_state(drop0);
    return model->loss(x, y);
  };
  model->zero_grad();
  loss_at().backward();
  const double eps = 1e-6;
  Generator pick(5);
  for (auto& p : model->named_parameters()) {
    const Tensor g = p.tensor.grad();
    EXPECT_TRUE(g.defined()) << label << ": no gradient for " << p.name;
    if (!g.defined()) return 1e9;
    const std::vector<double> gv = to_vector<double>(g);
    Tensor flat = p.tensor.detach().view({-1});
    const int64_t n = flat.numel();
    for (int64_t i : to_vector<int64_t>(randint({std::min<int64_t>(n, 4)}, 0, n, pick))) {
      NoGradGuard ng;
      Tensor e = flat.narrow(0, i, 1);
      const double v0 = e.item();
      fill_(e, v0 + eps);
      const double lp = loss_at().item();
      fill_(e, v0 - eps);
      const double lm = loss_at().item();
      fill_(e, v0);
      const double fd = (lp - lm) / (2 * eps), an = gv[size_t(i)];
      const double err = std::abs(an - fd) / (1e-7 + 1e-6 * std::abs(fd));
      worst = std::max(worst, err);
      EXPECT_LE(err, 1.0) << label << ": " << p.name << "[" << i << "] analytic " << an << " numeric " << fd;
    }
  }
  return worst;
}

inline std::string temp_dir(const std::string& name) {
  return (std::filesystem::temp_directory_path() / ("lmforge_test_" + name + "_" + std::to_string(::getpid()))).string();
}

// Same dtype, shape and bytes; on a mismatch, the first differing element.
inline ::testing::AssertionResult bit_identical(const Tensor& a, const Tensor& b) {
  if (!a.defined() || !b.defined()) return ::testing::AssertionFailure() << "undefined tensor";
  if (a.dtype() != b.dtype() || a.shape() != b.shape())
    return ::testing::AssertionFailure() << a.str() << " vs " << b.str();
  const Tensor ca = contiguous(a), cb = contiguous(b);
  if (std::memcmp(ca.data_ptr(), cb.data_ptr(), ca.nbytes()) != 0) {
    const std::vector<double> x = to_vector<double>(ca), y = to_vector<double>(cb);
    for (size_t i = 0; i < x.size(); ++i)
      if (x[i] != y[i]) return ::testing::AssertionFailure() << "element " << i << ": " << x[i] << " vs " << y[i];
    return ::testing::AssertionFailure() << "bytes differ";
  }
  return ::testing::AssertionSuccess();
}

// A model variant for tests that run one check over several architectures: a name, a change to
// the tiny config, and optionally a compute dtype (mixed precision).
struct ModelVariant {
  std::string name;
  std::function<void(nn::ModelConfig&)> apply;
  std::optional<DType> compute_dtype = std::nullopt;
};

// The architectures every whole-model check covers; tests append their own cases.
inline std::vector<ModelVariant> core_model_variants() {
  using nn::ModelConfig;
  return {
      {"llama-like (rmsnorm, pre, swiglu, rope, tied)", [](ModelConfig&) {}},
      {"gpt2-like (layernorm, gelu, learned positions, biases)",
       [](ModelConfig& c) {
         c.norm = nn::NormKind::LayerNorm, c.ffn = nn::FfnKind::GELU, c.position = nn::PositionKind::Learned,
         c.bias = true;
       }},
      {"llama-like, untied, gqa, qk-norm, z-loss",
       [](ModelConfig& c) {
         c.tied_embeddings = false, c.n_heads = 4, c.n_kv_heads = 2, c.qk_norm = true, c.z_loss = 0.1;
       }},
      {"llama-like with dropout", [](ModelConfig& c) { c.dropout = 0.2; }},
  };
}

}  // namespace lmforge::test
