// Accounting of multi-token prediction modules: their parameters equal the built model's, their
// forward FLOPs are one more block, the [2C -> C] projection and the output head for each module
// over T - k of the T positions, and the predicted training peak stays within 10% of the
// allocator's measured peak.
#include <gtest/gtest.h>

#include "accounting/accounting.h"
#include "nn/transformer.h"
#include "ops/ops.h"
#include "optim/adamw.h"

namespace lmforge {
namespace {

nn::ModelConfig base() {
  nn::ModelConfig c;
  c.vocab_size = 512;
  c.context_length = 64;
  c.d_model = 96;
  c.n_layers = 3;
  c.n_heads = 6;
  c.n_kv_heads = 2;
  c.tied_embeddings = false;
  return c;
}

double component(const accounting::FlopCount& f, const std::string& name) {
  for (const auto& c : f.forward_per_token)
    if (c.name == name) return double(c.count);
  return 0;
}

TEST(MtpAccounting, ParametersMatchTheBuiltModel) {
  for (int64_t depth : {1, 3}) {
    nn::ModelConfig c = base();
    c.mtp_depth = depth;
    nn::Transformer model(c, {});
    EXPECT_EQ(accounting::count_parameters(c).total, model.parameter_count()) << depth;
  }
}

// From the model without modules: a block is its layers' FLOPs over n_layers; each module adds
// one block, 2·(2C)·C for eh_proj and 2·C·V for the head, on (T - k) / T of the tokens.
TEST(MtpAccounting, FlopsAreOneBlockProjectionAndHeadPerModule) {
  const int64_t T = 64;
  const nn::ModelConfig plain = base();
  const auto f0 = accounting::count_flops(plain, T);
  const double block = (component(f0, "attention projections") + component(f0, "attention scores and values") +
                        component(f0, "mlp")) / double(plain.n_layers);
  const double d = double(plain.d_model), v = double(plain.vocab_size);
  nn::ModelConfig c = plain;
  c.mtp_depth = 2;
  const auto f = accounting::count_flops(c, T);
  const double share = (double(T - 1) + double(T - 2)) / double(T);
  const double expected = share * (block + 2 * 2 * d * d + 2 * d * v);
  EXPECT_NEAR(f.forward_per_token_total - f0.forward_per_token_total, expected, 1e-6 * expected + 4);
  EXPECT_NEAR(component(f, "mtp output head"), share * 2 * d * v, 2);
}

TEST(MtpAccounting, PredictedPeakMemoryWithinTenPercentOfMeasured) {
  nn::ModelConfig c = base();
  c.vocab_size = 2048;
  c.context_length = 128;
  c.mtp_depth = 2;
  const int64_t B = 8, T = 128;
  Allocator& alloc = allocator_for(Device::cpu());
  const int64_t before = alloc.stats().bytes_in_use;
  double measured = 0;
  {
    nn::Transformer model(c, {});
    Generator gen(3);
    model.init_parameters(gen);
    optim::AdamW opt(model.named_parameters(), {});
    for (int step = 0; step < 2; ++step) {  // the second step: the first creates the optimizer state
      Tensor ids = randint({B, T + 1}, 0, c.vocab_size, gen);
      Tensor x = ids.narrow(1, 0, T).contiguous(), y = ids.narrow(1, 1, T).contiguous();
      alloc.reset_peak();
      model.zero_grad();
      model.loss(x, y).backward();
      opt.step(1e-3);
      measured = double(alloc.stats().peak_bytes_in_use - before);
    }
  }
  const auto est = accounting::estimate_memory(c, {.micro_batch_size = B, .seq_len = T});
  EXPECT_NEAR(double(est.total), measured, 0.10 * measured)
      << "predicted " << est.total << " bytes, measured peak " << measured << " bytes";
}

}  // namespace
}  // namespace lmforge
