// Mixed precision in the model: f32 masters read through cached bf16 / f16 compute copies. A copy
// always equals the cast of its master's current value (after set_compute_dtype, an optimizer
// step, a checkpoint load), the masters' gradients are f32 and close to the f32 model's, and the
// activations really are computed in the compute dtype.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <filesystem>

#include "nn/model_test_util.h"
#include "optim/adamw.h"
#include "train/checkpoint.h"
#include "train/safetensors.h"
#include "test_util.h"

namespace lmforge {
namespace {

using test::same_bits;

nn::ModelConfig config() {
  nn::ModelConfig c = test::tiny_config();
  c.qk_norm = true;  // every kind of weight: embeddings, projections, norms, q/k norms
  c.bias = true;
  return c;
}

// Every parameter's copy is defined, of `dtype`, and equal to the cast of the master.
void expect_copies_fresh(const nn::Transformer& m, DType dtype) {
  for (const auto& p : m.named_parameters()) {
    SCOPED_TRACE(p.name);
    ASSERT_TRUE(p.compute_copy->tensor.defined());
    EXPECT_EQ(p.compute_copy->tensor.dtype(), dtype);
    EXPECT_TRUE(p.compute_copy->fresh_for(p.tensor, dtype));
    EXPECT_TRUE(same_bits(p.compute_copy->tensor, cast(p.tensor.detach(), dtype)));
  }
}

TEST(ComputeCopy, DefaultComputesInTheParameterDtype) {
  auto m = test::make_model(config());
  const Tensor ids = test::random_ids(2, 5, 11, 1);
  EXPECT_EQ(m->forward(ids).dtype(), DType::F32);
  for (const auto& p : m->named_parameters()) EXPECT_FALSE(p.compute_copy->tensor.defined()) << p.name;
}

TEST(ComputeCopy, ActivationsAndLogitsInComputeDtypeLossInF32) {
  auto m = test::make_model(config());
  m->set_compute_dtype(DType::BF16);
  const Tensor ids = test::random_ids(2, 5, 11, 1), targets = test::random_ids(2, 5, 11, 2);
  EXPECT_EQ(m->hidden(ids).dtype(), DType::BF16);
  EXPECT_EQ(m->forward(ids).dtype(), DType::BF16);
  EXPECT_EQ(m->loss(ids, targets).dtype(), DType::F32);
  EXPECT_EQ(m->token_nll(ids, targets).dtype(), DType::F32);
  // Generation's cache holds keys and values in the compute dtype.
  EXPECT_EQ(m->make_cache(1, 4).layers[0].k.dtype(), DType::BF16);
  expect_copies_fresh(*m, DType::BF16);
}

TEST(ComputeCopy, RefreshedAfterSetComputeDtypeStepAndCheckpointLoad) {
  auto m = test::make_model(config());
  const Tensor ids = test::random_ids(2, 5, 11, 1), targets = test::random_ids(2, 5, 11, 2);
  m->set_compute_dtype(DType::BF16);
  m->loss(ids, targets);
  expect_copies_fresh(*m, DType::BF16);

  // Another compute dtype: the bf16 copies are dropped and f16 ones made on the next forward.
  m->set_compute_dtype(DType::F16);
  for (const auto& p : m->named_parameters()) EXPECT_FALSE(p.compute_copy->tensor.defined()) << p.name;
  m->loss(ids, targets);
  expect_copies_fresh(*m, DType::F16);

  // An optimizer step writes the copies itself and marks them fresh: the next forward casts
  // nothing (the copies' storage versions do not move).
  m->set_compute_dtype(DType::BF16);
  Tensor loss = m->loss(ids, targets);
  loss.backward();
  const auto params = m->named_parameters();
  optim::AdamW opt(params, {});
  std::vector<uint64_t> before;
  for (const auto& p : params) before.push_back(p.tensor.version());
  opt.step(1e-2);
  m->zero_grad();
  std::vector<uint64_t> copy_versions;
  for (size_t i = 0; i < params.size(); ++i) {
    EXPECT_NE(params[i].tensor.version(), before[i]) << params[i].name;  // the masters did change
    copy_versions.push_back(params[i].compute_copy->tensor.version());
  }
  expect_copies_fresh(*m, DType::BF16);
  m->loss(ids, targets);
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_EQ(params[i].compute_copy->tensor.version(), copy_versions[i]) << params[i].name;

  // Loading a checkpoint's weights leaves the copies stale until the next forward refreshes them.
  const std::string path = test::temp_dir("compute_copy") + ".safetensors";
  auto other = test::make_model(config(), DType::F32, /*seed=*/99);
  train::NamedTensors saved;
  for (const auto& p : other->named_parameters()) saved.push_back({p.name, p.tensor});
  train::write_safetensors(path, saved, {});
  train::load_model_weights(*m, path);
  std::filesystem::remove(path);
  for (const auto& p : m->named_parameters()) EXPECT_FALSE(p.compute_copy->fresh_for(p.tensor, DType::BF16)) << p.name;
  const Tensor after_load = m->loss(ids, targets);
  expect_copies_fresh(*m, DType::BF16);
  other->set_compute_dtype(DType::BF16);
  EXPECT_EQ(after_load.item(), other->loss(ids, targets).item());
}

TEST(ComputeCopy, MasterGradientsAreF32AndCloseToTheF32Model) {
  // Relative error bounds of the whole gradient and of each parameter's: bf16 keeps 8 bits of
  // mantissa, f16 11, so f16 must be several times closer. A gradient that does not reach its
  // master, or reaches it twice, is off by 100%.
  struct Case {
    DType dtype;
    double total, each;
  };
  for (const Case& k : {Case{DType::BF16, 0.05, 0.2}, Case{DType::F16, 0.01, 0.05}}) {
    for (int arch = 0; arch < 3; ++arch) {
      // Llama-style tied and untied; GPT-2 style (LayerNorm, GELU in the GEMM epilogue, learned
      // positions, biases).
      const bool tied = arch != 1, gpt2 = arch == 2;
      SCOPED_TRACE(fmt::format("{} {}{}", dtype_name(k.dtype), tied ? "tied" : "untied", gpt2 ? " gpt2" : ""));
      nn::ModelConfig c = config();
      c.tied_embeddings = tied;
      if (gpt2) {
        c.norm = nn::NormKind::LayerNorm;
        c.ffn = nn::FfnKind::GELU;
        c.position = nn::PositionKind::Learned;
        c.qk_norm = false;
        c.d_ff = 0;
      }
      auto ref = test::make_model(c), mixed = test::make_model(c);
      mixed->set_compute_dtype(k.dtype);
      const Tensor ids = test::random_ids(4, 8, 11, 3), targets = test::random_ids(4, 8, 11, 4);
      const Tensor lr = ref->loss(ids, targets), lm = mixed->loss(ids, targets);
      EXPECT_NEAR(lm.item(), lr.item(), 0.02 * lr.item());
      lr.backward();
      lm.backward();
      const auto pr = ref->named_parameters(), pm = mixed->named_parameters();
      double diff2 = 0, ref2 = 0;
      for (size_t i = 0; i < pr.size(); ++i) {
        SCOPED_TRACE(pr[i].name);
        const Tensor gr = pr[i].tensor.grad(), gm = pm[i].tensor.grad();
        ASSERT_TRUE(gm.defined());
        EXPECT_EQ(gm.dtype(), DType::F32);
        // The key bias's true gradient is exactly zero (a per-row constant added to the scores
        // leaves the softmax unchanged): both sides hold rounding noise only.
        if (pr[i].name.find("k_proj.bias") != std::string::npos) continue;
        const auto a = to_vector<double>(gr), b = to_vector<double>(gm);
        double d2 = 0, r2 = 0;
        for (size_t j = 0; j < a.size(); ++j) {
          d2 += (a[j] - b[j]) * (a[j] - b[j]);
          r2 += a[j] * a[j];
        }
        EXPECT_LE(std::sqrt(d2), k.each * std::sqrt(r2) + 1e-6);
        diff2 += d2;
        ref2 += r2;
      }
      EXPECT_LE(std::sqrt(diff2), k.total * std::sqrt(ref2));
      EXPECT_GT(diff2, 0.0);  // the mixed model did compute in low precision
    }
  }
}

}  // namespace
}  // namespace lmforge
