#include "accounting/data_parallel_cost.h"

#include <fmt/format.h>

#include <algorithm>

#include "core/error.h"

namespace lmforge::accounting {

DataParallelCost data_parallel_cost(const nn::ModelConfig& config, MemoryOptions opt, int64_t world_size,
                                    int zero_stage, int64_t bucket_bytes) {
  LF_CHECK(world_size >= 1, "--world-size must be >= 1, got {}", world_size);
  LF_CHECK(zero_stage >= 0 && zero_stage <= 2, "--zero must be 0, 1 or 2, got {}", zero_stage);
  LF_CHECK(opt.micro_batch_size % world_size == 0,
           "train.micro_batch_size ({}) must be a multiple of the world size ({}): each rank takes an equal share",
           opt.micro_batch_size, world_size);
  opt.micro_batch_size /= world_size;
  DataParallelCost cost;
  cost.per_rank = estimate_memory(config, opt);
  const int64_t n = count_parameters(config).total;
  const int64_t padded = (n + world_size - 1) / world_size * world_size;
  const int64_t shard_bytes = padded / world_size * 4;
  if (zero_stage > 0) {
    for (auto& c : cost.per_rank.by_kind)
      if (c.name.starts_with("optimizer states"))
        c = {fmt::format("optimizer states (AdamW m, v in f32, 1/{} shard)", world_size), 2 * shard_bytes};
    cost.per_rank.by_kind.push_back({"gradient shard (f32)", shard_bytes});
  }
  // The staging buffer of the bucketed collectives.
  cost.per_rank.by_kind.push_back({"communication bucket (f32)", std::min(bucket_bytes, padded * 4)});
  cost.per_rank.total = 0;
  for (const auto& c : cost.per_rank.by_kind) cost.per_rank.total += c.count;
  if (world_size > 1) {
    if (zero_stage == 0) cost.all_reduce_bytes = n * 4;
    else cost.reduce_scatter_bytes = cost.all_gather_bytes = padded * 4;
    cost.sent_per_rank_bytes = 2 * (world_size - 1) * (zero_stage == 0 ? n : padded) * 4 / world_size;
  }
  return cost;
}

std::string format_data_parallel_report(const DataParallelCost& cost, int64_t world_size, int zero_stage) {
  std::string out = fmt::format("\nData parallel: {} rank(s), dist.zero = {}\n  memory per rank:\n", world_size,
                                zero_stage);
  for (const auto& c : cost.per_rank.by_kind) out += fmt::format("    {:<52} {:>12}\n", c.name, human_bytes(double(c.count)));
  out += fmt::format("    {:<52} {:>12}\n", "total (predicted peak)", human_bytes(double(cost.per_rank.total)));
  if (zero_stage == 2)
    out += "    (zero 2 keeps only the gradient shard between steps; the backward still makes the full gradients)\n";
  out += "  communication per optimizer step:\n";
  out += fmt::format("    {:<52} {:>12}\n", "all-reduced", human_bytes(double(cost.all_reduce_bytes)));
  out += fmt::format("    {:<52} {:>12}\n", "reduce-scattered", human_bytes(double(cost.reduce_scatter_bytes)));
  out += fmt::format("    {:<52} {:>12}\n", "all-gathered", human_bytes(double(cost.all_gather_bytes)));
  out += fmt::format("    {:<52} {:>12}\n", "sent by each rank (ring algorithms)", human_bytes(double(cost.sent_per_rank_bytes)));
  return out;
}

}  // namespace lmforge::accounting
