// What data-parallel training costs each rank (dist/data_parallel.h): memory per rank and the
// bytes the collectives move per optimizer step, for a world size and a ZeRO stage.
//
// Memory per rank is estimate_memory() for the rank's share of the micro-batch, with
//   zero 0: every rank holds the whole model, its gradients and both AdamW moments;
//   zero 1: the moments are sharded (2·N·4 / W bytes), plus this rank's averaged gradient shard
//           (N·4 / W) and one staging bucket;
//   zero 2: as 1; the full gradients are dropped right after the reduce-scatter, so between
//           steps only the shard remains, but the backward still produces them whole (the
//           reduction is not overlapped with it), so the peak counts them.
// Checkpoints gather the moments on every rank for a moment (2·N·4 bytes); not in the peak.
//
// Communication per step, payload bytes (f32 gradients and parameters; N padded to a multiple
// of W): zero 0 all-reduces N·4; zero 1 and 2 reduce-scatter N·4 and all-gather N·4. The bytes
// each rank sends with ring algorithms (what MPI and NCCL use for large buffers) are
// 2·(W−1)/W · N·4 in either case; the losses and a per-parameter flag add a few bytes.
#pragma once

#include <cstdint>
#include <string>

#include "accounting/accounting.h"

namespace lmforge::accounting {

struct DataParallelCost {
  MemoryEstimate per_rank;
  int64_t all_reduce_bytes = 0;      // per step
  int64_t reduce_scatter_bytes = 0;  // per step (input size)
  int64_t all_gather_bytes = 0;      // per step (output size)
  int64_t sent_per_rank_bytes = 0;   // ring algorithms
};

// `per_rank.micro_batch_size` is the global micro-batch; each rank gets 1/world_size of it.
DataParallelCost data_parallel_cost(const nn::ModelConfig& config, MemoryOptions per_rank, int64_t world_size,
                                    int zero_stage, int64_t bucket_bytes);
std::string format_data_parallel_report(const DataParallelCost& cost, int64_t world_size, int zero_stage);

}  // namespace lmforge::accounting
