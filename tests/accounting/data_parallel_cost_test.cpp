// Data-parallel accounting against hand-computed sizes: per-rank memory takes the rank's share of
// the micro-batch, ZeRO shards the moments over the padded flat parameter vector, and the bytes
// each collective moves follow from the parameter count.
#include <gtest/gtest.h>

#include "accounting/data_parallel_cost.h"
#include "core/error.h"

namespace lmforge::accounting {
namespace {

nn::ModelConfig tiny() {
  nn::ModelConfig c;
  c.vocab_size = 256;
  c.context_length = 32;
  c.d_model = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  return c;
}

int64_t component(const MemoryEstimate& m, const std::string& prefix) {
  for (const auto& c : m.by_kind)
    if (c.name.starts_with(prefix)) return c.count;
  return -1;
}

TEST(DataParallelCost, ShardsAndVolumesFollowTheParameterCount) {
  const nn::ModelConfig c = tiny();
  const int64_t n = count_parameters(c).total;
  const MemoryOptions opt{.micro_batch_size = 8, .seq_len = 32};
  const int64_t bucket = 1 << 20;

  const DataParallelCost plain = data_parallel_cost(c, opt, 4, 0, bucket);
  // The rank's activations are those of 2 sequences.
  MemoryOptions two = opt;
  two.micro_batch_size = 2;
  const MemoryEstimate single = estimate_memory(c, two);
  EXPECT_EQ(component(plain.per_rank, "optimizer states"), component(single, "optimizer states"));
  EXPECT_EQ(component(plain.per_rank, "activations"), component(single, "activations"));
  EXPECT_EQ(plain.all_reduce_bytes, 4 * n);
  EXPECT_EQ(plain.reduce_scatter_bytes, 0);
  EXPECT_EQ(plain.sent_per_rank_bytes, 2 * 3 * n * 4 / 4);

  const int64_t padded = (n + 3) / 4 * 4;
  for (int zero : {1, 2}) {
    const DataParallelCost z = data_parallel_cost(c, opt, 4, zero, bucket);
    EXPECT_EQ(component(z.per_rank, "optimizer states"), 2 * padded / 4 * 4);
    EXPECT_EQ(component(z.per_rank, "gradient shard"), padded / 4 * 4);
    EXPECT_EQ(z.all_reduce_bytes, 0);
    EXPECT_EQ(z.reduce_scatter_bytes, padded * 4);
    EXPECT_EQ(z.all_gather_bytes, padded * 4);
    EXPECT_LT(z.per_rank.total, plain.per_rank.total);
  }
  // One rank communicates nothing.
  EXPECT_EQ(data_parallel_cost(c, opt, 1, 0, bucket).all_reduce_bytes, 0);
}

TEST(DataParallelCost, AWorldThatDoesNotDivideTheBatchNamesTheKey) {
  try {
    data_parallel_cost(tiny(), {.micro_batch_size = 6, .seq_len = 32}, 4, 0, 1 << 20);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("train.micro_batch_size (6)"), std::string::npos) << e.what();
  }
  EXPECT_THROW(data_parallel_cost(tiny(), {.micro_batch_size = 8}, 2, 3, 1 << 20), Error);
}

}  // namespace
}  // namespace lmforge::accounting
