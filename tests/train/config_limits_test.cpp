// Every size in a run config is bounded before anything is allocated: huge values and values
// whose products wrap around in int64 are errors naming the key and the limit, never a crash, a
// hang or a silently wrong size. A sweep sets every key to extreme values and demands either a
// clear Error or a config whose derived sizes (parameters, memory, FLOPs, tokens per step) are
// positive and finite.
#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>

#include "accounting/accounting.h"
#include "core/error.h"
#include "nn/model_limits.h"
#include "train/config.h"
#include "train/config_fields.h"
#include "train/config_limits.h"

namespace lmforge::train {
namespace {

constexpr const char* kLimitsBase = R"(
[model]
vocab_size = 512
context_length = 64
d_model = 64
n_heads = 4

[data]
path = "shards"

[train]
steps = 1000
micro_batch_size = 2
seq_len = 32
)";

std::string error_of(const std::vector<std::string>& overrides) {
  try {
    parse_run_config(kLimitsBase, "limits.toml", overrides);
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

void expect_error(const std::vector<std::string>& overrides, const std::vector<std::string>& parts) {
  const std::string e = error_of(overrides);
  ASSERT_FALSE(e.empty()) << "accepted: " << fmt::format("{}", fmt::join(overrides, " "));
  for (const auto& p : parts) EXPECT_NE(e.find(p), std::string::npos) << "missing '" << p << "' in: " << e;
}

TEST(ConfigLimits, ProductsThatWrapAroundAreErrorsNamingTheKeyAndLimit) {
  // 2^62 · 4 wraps to 0 in int64: before the limits it reached the sampler as an empty batch.
  expect_error({"train.micro_batch_size=4611686018427387904", "train.seq_len=4"},
               {"limits.toml", "train.micro_batch_size", "1048576 (2^20)"});
  expect_error({"train.micro_batch_size=4611686018427387904", "train.batch_tokens=8"},
               {"train.micro_batch_size", "exceeds the limit"});
  // batch_tokens % (micro_batch_size · seq_len) divided by zero here before.
  expect_error({"model.context_length=4611686018427387904", "train.batch_tokens=8"},
               {"model.context_length", "16777216 (2^24)"});
  // Each factor within its limit, the product not.
  expect_error({"train.micro_batch_size=1048576", "train.seq_len=64"},
               {"train.micro_batch_size · seq_len", "16777216 (2^24)"});
  expect_error({"eval.batch_size=1048576"}, {"eval.batch_size · seq_len"});
  expect_error({"train.batch_tokens=9223372036854775807"}, {"train.batch_tokens", "2^40"});
}

TEST(ConfigLimits, HugeModelSizesAreRejectedBeforeAnythingIsAllocated) {
  // These allocated 16 GB and looped, or looped over 2^31 layers, before.
  expect_error({"model.vocab_size=4294967296"}, {"model.vocab_size = 4294967296", "16777216 (2^24)"});
  expect_error({"model.n_layers=2147483648"}, {"model.n_layers", "4096 (2^12)"});
  expect_error({"model.d_model=1000000000", "model.n_heads=1"}, {"model.d_model", "65536 (2^16)"});
  expect_error({"model.head_dim=1000000"}, {"model.head_dim", "4096"});
  expect_error({"model.d_ff=9223372036854775807"}, {"model.d_ff", "2^18"});
  // Every factor within its limit, the whole model too big: the parameter count names the limit.
  expect_error({"model.vocab_size=16777216", "model.d_model=65536", "model.tied_embeddings=false",
                "model.n_heads=16", "model.d_ff=65536"},
               {"parameter count", "2^40"});
}

TEST(ConfigLimits, NonFiniteFloatsAreRejected) {
  expect_error({"optim.eps=inf"}, {"optim.eps"});
  expect_error({"optim.eps=nan"}, {"optim.eps"});
  expect_error({"optim.weight_decay=inf"}, {"optim.weight_decay"});
  expect_error({"optim.grad_clip=inf"}, {"optim.grad_clip"});
  expect_error({"train.peak_tflops=inf"}, {"train.peak_tflops"});
}

TEST(ConfigLimits, ErrorsAfterParsingNameTheFile) {
  expect_error({"model.n_heads=3"}, {"limits.toml with the --set overrides:", "model.d_model"});
  try {
    parse_run_config(std::string(kLimitsBase) + "[optim]\nbeta1 = 2.0\n", "beta.toml");
    FAIL() << "beta1 = 2 accepted";
  } catch (const Error& e) {
    EXPECT_EQ(std::string(e.what()).rfind("beta.toml: optim.beta1", 0), 0u) << e.what();
  }
}

// Every integer key at every extreme value, every float key at inf, nan and huge values: an
// Error, or a config whose derived sizes are all positive, finite and within the limits.
TEST(ConfigLimits, EveryKeyAtExtremeValuesIsAnErrorOrSane) {
  RunConfig probe;
  const auto fields = detail::config_fields(probe);
  const std::vector<std::string> ints = {"9223372036854775807", "4611686018427387904", "4294967296", "2147483648",
                                         "-1", "-9223372036854775808", "0", "1"};
  const std::vector<std::string> floats = {"inf", "-inf", "nan", "1e308", "-1e308", "1e-320", "0"};
  int accepted = 0, rejected = 0;
  for (const auto& f : fields) {
    if (f.kind != detail::ConfigField::Kind::Int && f.kind != detail::ConfigField::Kind::Float) continue;
    for (const auto& v : f.kind == detail::ConfigField::Kind::Int ? ints : floats) {
      SCOPED_TRACE(f.key + "=" + v);
      RunConfig c;
      try {
        c = parse_run_config(kLimitsBase, "sweep.toml", {f.key + "=" + v});
      } catch (const Error& e) {
        ++rejected;
        continue;
      }
      ++accepted;
      const int64_t params = c.model.parameter_count();
      EXPECT_GT(params, 0);
      EXPECT_LE(params, nn::limits::kMaxParameters);
      EXPECT_GT(c.tokens_per_micro_batch(), 0);
      EXPECT_LE(c.tokens_per_micro_batch(), limits::kMaxTokensPerMicroBatch);
      EXPECT_GE(c.accumulation_steps(), 1);
      const auto mem = accounting::estimate_memory(
          c.model, {.micro_batch_size = c.train.micro_batch_size, .seq_len = c.seq_len()});
      EXPECT_GT(mem.total, 0);
      for (const auto& comp : mem.by_kind) EXPECT_GE(comp.count, 0) << comp.name;
      const double flops = accounting::count_flops(c.model, c.seq_len()).training_per_token;
      EXPECT_TRUE(std::isfinite(flops) && flops > 0);
    }
  }
  EXPECT_GT(accepted, 0);
  EXPECT_GT(rejected, 0);
}

}  // namespace
}  // namespace lmforge::train
