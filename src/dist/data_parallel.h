// Data parallel training over a Communicator: gradient averaging, and ZeRO stages 1 and 2.
//
// Every rank holds the whole model and runs the same step on its share of the global batch
// (train/data_loader.h RandomWindowSampler::next_batch_rows). Afterwards:
//
//   zero = 0  the gradients are averaged over ranks by all-reduce, in buckets of
//             bucket_elements (a bucket lying inside one gradient is reduced in place, others go
//             through a staging buffer); every rank then runs the same AdamW update on the
//             same numbers, so the replicas stay identical.
//   zero = 1  the parameters are viewed as one flat vector (in named_parameters() order,
//             padded to a multiple of the world size) split into world_size equal shards; rank r
//             owns shard r. The gradients are reduce-scattered (averaged) bucket by bucket into
//             the rank's shard, AdamW keeps moments for the shard only and updates the shard's
//             slice of each parameter in place, and the parameters are all-gathered back.
//   zero = 2  as 1, and each rank drops its full gradients as soon as they have been
//             reduce-scattered, keeping only its shard between steps.
//
// The reductions run after the whole backward (not overlapped with it).
//
// The gradient norm for clipping is over the full averaged gradient: local under zero 0 (every
// rank holds it all), the sum of the shards' squares all-reduced under zero 1 and 2. A
// parameter that got no gradient on any rank keeps none (AdamW leaves it alone, as in one
// process); one that got a gradient on some ranks is taken as zero on the others.
//
// Results: with world 2 and f32, the all-reduce and the reduce-scatter add the same two numbers
// for each element, and the average halves exactly, so zero 0, 1 and 2 give bit-identical
// parameters whenever clipping does not engage (with clipping, the norm's f64 summation order
// differs between them, changing the clip factor in its last bits).
//
// Checkpoints: gather_optimizer_state() assembles the full moments on every rank (one
// all-gather per moment), so a checkpoint holds them as a single process writes them and can be
// resumed at any world size; load_optimizer_state() takes this rank's shard back out of them.
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dist/communicator.h"
#include "nn/module.h"
#include "optim/adamw.h"

namespace lmforge::dist {

struct DataParallelOptions {
  int zero_stage = 0;                          // 0, 1 or 2
  int64_t bucket_elements = 25 * 1024 * 1024 / 4;  // f32 elements per collective
  optim::AdamWOptions adamw;                   // the shard optimizer's (zero 1 and 2)
};

class DataParallel {
 public:
  DataParallel(Communicator& comm, const std::vector<nn::NamedParameter>& params, DataParallelOptions options);
  ~DataParallel();

  int zero_stage() const { return options_.zero_stage; }
  Communicator& communicator() { return comm_; }

  // After backward: averages the gradients (zero 0) or reduce-scatters them into this rank's
  // shard (zero 1, 2).
  void sync_gradients();
  // Σ g² over the whole averaged gradient, an f64 scalar on the parameters' device, the same on
  // every rank. Call after sync_gradients().
  Tensor grad_norm_squared();

  // Zero 1, 2: the shard optimizer's update (as optim::AdamW::step with a DeviceClip), then the
  // all-gather of the parameters.
  void step(double lr, double grad_scale, const optim::AdamW::DeviceClip& clip);
  void cancel_step();
  int64_t step_count() const;
  // Zero 1, 2: a collective; `full` (an AdamW over the whole model) receives every moment and
  // the step count.
  void gather_optimizer_state(optim::AdamW& full);
  // Zero 1, 2: this rank's shard of `full`'s moments, and its step count.
  void load_optimizer_state(const optim::AdamW& full);

  // The flat layout (tests, accounting): parameters' elements, padded total, shard size.
  int64_t total_elements() const { return total_; }
  int64_t shard_elements() const { return shard_; }

 private:
  struct Piece {  // the part of parameter `param` inside a flat range
    size_t param;
    int64_t param_offset, flat_offset, length;
  };
  std::vector<Piece> pieces_in(int64_t begin, int64_t end) const;
  // Marks which parameters have a gradient on some rank; gives the others zeros where needed.
  void agree_on_gradients();
  // Copies flat range [begin, end) of the gradients (zeros past the end or where none) into dst.
  void gather_flat_grads(int64_t begin, int64_t end, Tensor dst) const;
  void all_gather_parameters();

  Communicator& comm_;
  std::vector<nn::NamedParameter> params_;
  DataParallelOptions options_;
  std::vector<int64_t> offsets_;  // flat offset of each parameter
  std::vector<bool> has_grad_;    // some rank produced a gradient this step
  int64_t total_ = 0, padded_ = 0, shard_ = 0;
  Device device_;
  Tensor staging_;                // bucket staging buffer, f32
  // Zero 1, 2.
  Tensor shard_grad_;             // [shard_] f32: this rank's averaged gradient
  std::vector<Piece> own_pieces_;
  std::vector<nn::NamedParameter> shard_params_;  // views of the parameters' owned slices
  std::unique_ptr<optim::AdamW> shard_optimizer_;
};

}  // namespace lmforge::dist
