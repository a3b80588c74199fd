// The accounting model against the model itself: parameter counts equal the built model's,
// FLOPs follow 2·m·n·k per matmul, and the predicted peak memory of a training step is within
// 10% of the allocator's measured peak.
#include <gtest/gtest.h>

#include "accounting/accounting.h"
#include "nn/transformer.h"
#include "ops/ops.h"
#include "optim/adamw.h"

namespace lmforge {
namespace {

nn::ModelConfig small(bool gpt2) {
  nn::ModelConfig c;
  c.vocab_size = 512;
  c.context_length = 64;
  c.d_model = 96;
  c.n_layers = 3;
  c.n_heads = 6;
  c.n_kv_heads = gpt2 ? 6 : 2;
  if (gpt2) {
    c.norm = nn::NormKind::LayerNorm;
    c.ffn = nn::FfnKind::GELU;
    c.position = nn::PositionKind::Learned;
    c.bias = true;
  } else {
    c.tied_embeddings = false;
    c.qk_norm = true;
  }
  c.resolve();
  return c;
}

TEST(Accounting, ParameterCountMatchesTheBuiltModel) {
  for (bool gpt2 : {false, true}) {
    nn::ModelConfig c = small(gpt2);
    nn::Transformer model(c, {});
    EXPECT_EQ(accounting::count_parameters(c).total, model.parameter_count()) << (gpt2 ? "gpt2" : "llama");
  }
}

TEST(Accounting, FlopsFollowTwoMnkPerMatmul) {
  nn::ModelConfig c = small(false);
  const int64_t T = 64, d = c.d_model, L = c.n_layers, hd = c.head_dim;
  const auto f = accounting::count_flops(c, T);
  const double qkvo = 2.0 * (d * c.n_heads * hd + 2 * d * c.n_kv_heads * hd + c.n_heads * hd * d);
  const double mlp = 2.0 * 3 * d * c.d_ff;
  const double attn = 2.0 * 2 * T * c.n_heads * hd;
  const double head = 2.0 * d * c.vocab_size;
  EXPECT_DOUBLE_EQ(f.forward_per_token_total, L * (qkvo + mlp + attn) + head);
  EXPECT_DOUBLE_EQ(f.training_per_token, 3 * f.forward_per_token_total);
  // Without GQA the conventional 6N + 12·L·H·hd·T is the same count.
  nn::ModelConfig m = small(true);
  const auto g = accounting::count_flops(m, T);
  EXPECT_NEAR(g.training_per_token, g.six_n_plus_attention, 1e-6 * g.training_per_token);
}

// The allocator's peak over a training step (the second: the first creates the optimizer state,
// the gradients and the compute copies), less what the process held before.
double measured_step_peak(const nn::ModelConfig& c, int64_t B, int64_t T, DType compute_dtype, bool recompute = false) {
  Allocator& alloc = allocator_for(Device::cpu());
  const int64_t before = alloc.stats().bytes_in_use;  // whatever else the process holds
  double measured = 0;
  nn::Transformer model(c, {});
  Generator gen(3);
  model.init_parameters(gen);
  model.set_compute_dtype(compute_dtype);
  model.set_recompute_blocks(recompute);
  optim::AdamW opt(model.named_parameters(), {});
  for (int step = 0; step < 2; ++step) {
    Tensor ids = randint({B, T + 1}, 0, c.vocab_size, gen);
    Tensor x = ids.narrow(1, 0, T).contiguous(), y = ids.narrow(1, 1, T).contiguous();
    alloc.reset_peak();
    model.zero_grad();
    Tensor loss = model.loss(x, y);
    loss.backward();
    opt.step(1e-3);
    measured = double(alloc.stats().peak_bytes_in_use - before);
  }
  return measured;
}

TEST(Accounting, PredictedPeakMemoryWithinTenPercentOfMeasured) {
  nn::ModelConfig c = small(false);
  c.vocab_size = 2048;
  c.context_length = 128;
  c.resolve();
  const int64_t B = 8, T = 128;
  for (DType dt : {DType::F32, DType::BF16})
    for (bool recompute : {false, true}) {
      SCOPED_TRACE(fmt::format("{} recompute {}", dtype_name(dt), recompute));
      const double measured = measured_step_peak(c, B, T, dt, recompute);
      const auto est = accounting::estimate_memory(
          c, {.micro_batch_size = B, .seq_len = T, .compute_dtype = dt, .recompute_blocks = recompute});
      EXPECT_NEAR(double(est.total), measured, 0.10 * measured)
          << "predicted " << est.total << " bytes, measured peak " << measured << " bytes";
    }
}

// Mixture of Experts: total parameters as built, active ones as top_k of the routed experts, and
// the active forward FLOPs per token from 2·m·n·k of each product a token goes through.
TEST(Accounting, MoeTotalAndActiveParametersAndFlops) {
  nn::ModelConfig c = small(false);
  c.n_experts = 8, c.d_ff_expert = 32, c.top_k = 2, c.n_shared_experts = 1, c.moe_layers = "after:1";
  c.resolve();
  nn::Transformer model(c);
  const auto p = accounting::count_parameters(c);
  EXPECT_EQ(p.total, model.parameter_count());
  const int64_t d = c.d_model, moe_layers = c.n_layers - 1, expert = 3 * d * 32;
  EXPECT_EQ(p.total - p.active, moe_layers * (8 - 2) * expert);
  const auto dense = accounting::count_flops(small(false), 64), moe = accounting::count_flops(c, 64);
  // Each MoE layer swaps the dense MLP (2·3·d·d_ff) for the router (2·d·E) and 3 experts' products.
  const double delta = double(moe_layers) * (2.0 * d * 8 + 3 * 2.0 * expert / 1.0 - 2.0 * 3 * d * c.d_ff);
  EXPECT_NEAR(moe.forward_per_token_total - dense.forward_per_token_total, delta, 1.0);
  EXPECT_NE(accounting::format_report(c, {.micro_batch_size = 2, .seq_len = 64}, 128, 10, 0).find("active per token"),
            std::string::npos);
}

}  // namespace
}  // namespace lmforge
