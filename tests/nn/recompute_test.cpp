// Activation recomputation (autograd/recompute.h, Transformer::set_recompute_blocks): the same
// loss and bit-identical gradients as keeping the activations, the same dropout draws, and less
// memory held between forward and backward.
#include <gtest/gtest.h>

#include "autograd/recompute.h"
#include "core/allocator.h"
#include "nn/model_test_util.h"

namespace lmforge::nn {
namespace {

TEST(Checkpoint, GradientsMatchTheKeptTapeAndTheFunctionRunsTwice) {
  Generator g(1);
  const Tensor x0 = randn({5, 4}, g, DType::F64), w0 = randn({3, 4}, g, DType::F64);
  const Tensor dy = randn({5, 3}, g, DType::F64);
  auto fn = [&](const Tensor& x, const Tensor& w) { return tanh(linear(x, w)) * 2.0; };

  Tensor x = x0.detach().set_requires_grad(true), w = w0.detach().set_requires_grad(true);
  fn(x, w).backward(dy);

  Tensor xc = x0.detach().set_requires_grad(true), wc = w0.detach().set_requires_grad(true);
  int calls = 0;
  const TensorList out = checkpoint(
      "test", [&](const TensorList& in) { ++calls; return TensorList{fn(in[0], wc), Tensor()}; }, {xc, Tensor()});
  EXPECT_EQ(calls, 1);
  ASSERT_EQ(out.size(), 2u);
  EXPECT_FALSE(out[1].defined());
  EXPECT_TRUE(out[0].requires_grad());
  out[0].backward(dy);
  EXPECT_EQ(calls, 2) << "the backward recomputes";
  EXPECT_TRUE(test::bit_identical(xc.grad(), x.grad())) << "input gradient";
  EXPECT_TRUE(test::bit_identical(wc.grad(), w.grad())) << "parameter gradient";
}

TEST(Checkpoint, WithoutGradOrInputsNeedingItTheFunctionJustRuns) {
  Generator g(2);
  const Tensor x = randn({3}, g);
  int calls = 0;
  const TensorList out = checkpoint("test", [&](const TensorList& in) { ++calls; return TensorList{in[0] * 2.0}; }, {x});
  EXPECT_EQ(calls, 1);
  EXPECT_FALSE(out[0].requires_grad());
  EXPECT_TRUE(test::bit_identical(out[0], x * 2.0));
}

// Loss and every parameter gradient of a model with recomputation against the same model without,
// over two micro-batches accumulated (so the dropout generator advances between them).
void check_recompute_matches(const test::ModelVariant& v) {
  SCOPED_TRACE(v.name);
  ModelConfig c = test::tiny_config();
  c.n_layers = 3;
  v.apply(c);
  auto kept = test::make_model(c, DType::F32, 21), recomputed = test::make_model(c, DType::F32, 21);
  if (v.compute_dtype) {
    kept->set_compute_dtype(*v.compute_dtype);
    recomputed->set_compute_dtype(*v.compute_dtype);
  }
  recomputed->set_recompute_blocks(true);
  for (int micro = 0; micro < 2; ++micro) {
    const Tensor ids = test::random_ids(2, 7, c.vocab_size, 40 + micro);
    const Tensor targets = test::random_ids(2, 7, c.vocab_size, 50 + micro);
    const Tensor a = kept->loss(ids, targets), b = recomputed->loss(ids, targets);
    EXPECT_TRUE(test::bit_identical(a, b)) << "loss, micro-batch " << micro;
    a.backward();
    b.backward();
    EXPECT_EQ(kept->dropout_generator().state().offset, recomputed->dropout_generator().state().offset)
        << "dropout draws after micro-batch " << micro;
  }
  const auto kp = kept->named_parameters(), rp = recomputed->named_parameters();
  ASSERT_EQ(kp.size(), rp.size());
  for (size_t i = 0; i < kp.size(); ++i)
    EXPECT_TRUE(test::bit_identical(rp[i].tensor.grad(), kp[i].tensor.grad())) << kp[i].name;
}

TEST(Recompute, SameLossAndGradientsBitForBit) {
  std::vector<test::ModelVariant> variants = test::core_model_variants();
  variants.insert(variants.end(), {
      {"post-norm layernorm with dropout",
       [](ModelConfig& c) { c.norm_position = NormPosition::Post, c.norm = NormKind::LayerNorm, c.dropout = 0.2; }},
      {"llama-like, bf16 compute", [](ModelConfig&) {}, DType::BF16},
      // The multi-token prediction modules' blocks are recomputed too.
      {"two MTP modules with dropout", [](ModelConfig& c) { c.mtp_depth = 2, c.dropout = 0.1; }},
      {"MLA with an MTP module, MoE", [](ModelConfig& c) {
         c.attention = AttentionKind::MLA, c.kv_lora_rank = 6, c.q_lora_rank = 0, c.qk_nope_head_dim = 4,
         c.qk_rope_head_dim = 2, c.v_head_dim = 3, c.mtp_depth = 1, c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2;
       }},
  });
  for (const auto& v : variants) check_recompute_matches(v);
}

// Bytes the CPU allocator holds at the peak of a forward + backward of a model with `layers`
// blocks and `mtp_depth` multi-token prediction modules.
int64_t peak_bytes_of_a_step(bool recompute, int64_t layers = 8, int64_t mtp_depth = 0) {
  ModelConfig c = test::tiny_config();
  c.d_model = 64, c.n_heads = 4, c.d_ff = 256, c.n_layers = layers, c.context_length = 64, c.vocab_size = 64;
  c.mtp_depth = mtp_depth;
  auto model = test::make_model(c, DType::F32, 3);
  model->set_recompute_blocks(recompute);
  const Tensor ids = test::random_ids(8, 64, c.vocab_size, 1), targets = test::random_ids(8, 64, c.vocab_size, 2);
  Allocator& alloc = allocator_for(Device::cpu());
  alloc.reset_peak();
  const int64_t before = alloc.stats().bytes_in_use;
  model->loss(ids, targets).backward();
  return alloc.stats().peak_bytes_in_use - before;
}

TEST(Recompute, MtpModulesHoldLessMemoryToo) {
  // 2 blocks and 4 modules: the modules' blocks are recomputed with the model's.
  const int64_t kept = peak_bytes_of_a_step(false, 2, 4), recomputed = peak_bytes_of_a_step(true, 2, 4);
  EXPECT_LT(double(recomputed), 0.8 * double(kept)) << recomputed << " vs " << kept << " bytes";
}

TEST(Recompute, HoldsLessMemoryBetweenForwardAndBackward) {
  const int64_t kept = peak_bytes_of_a_step(false), recomputed = peak_bytes_of_a_step(true);
  // 8 blocks: the kept tape holds every block's activations, the recomputed one each block's
  // input and one block's activations at a time.
  EXPECT_LT(double(recomputed), 0.6 * double(kept)) << recomputed << " vs " << kept << " bytes";
}

}  // namespace
}  // namespace lmforge::nn
