// The training loop.
//
// One step: for each of accumulation_steps() micro-batches, sample windows, forward, check the
// loss is finite, backward of loss / accumulation_steps (gradients accumulate in the
// parameters); then clip to the global norm, one AdamW update at the schedule's learning rate,
// drop the gradients. Every train.log_every steps a metrics line and a progress line; every
// eval.every steps validation loss, perplexity and bits per byte; every checkpoint.every steps
// a checkpoint; the last step always gets validation, and a checkpoint unless checkpoint.at_end
// is false.
//
// Reproducibility: one seed (train.seed) derives three independent streams — initialisation,
// the data sampler and dropout. A checkpoint holds the sampler position and the dropout
// generator's state next to weights and optimizer moments, so a resumed run performs exactly
// the operations the uninterrupted one would: its losses are bit-identical.
//
// Precision (train.precision): the model computes in f32, bf16 or f16 from f32 master weights
// (nn/compute_copy.h); under f16 the loss is scaled before backward by a dynamic loss scale
// (optim/loss_scale.h), unscaled inside the update, and a gradient overflow skips the step and
// halves the scale (a metrics event "loss_scale", not a non-finite step). The scale and its count
// of clean steps are part of the checkpoint, so resuming stays bit-identical.
//
// Data parallel (TrainOptions::communicator): the global batch is the configured one at any world
// size, split over the ranks; with f32 arithmetic a run of N ranks follows the single-process run
// within the rounding of the changed summation order (docs/DISTRIBUTED.md).
//
// A non-finite loss or gradient norm stops the step before the update (the step number is
// logged); train.on_nan = skip drops the batch and tries the step again with the next one,
// rollback restores the newest checkpoint (weights, optimizer, schedule; the sampler keeps
// moving forward so the offending data is not replayed). train.max_bad_steps in a row stop the
// run with an error.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "train/config.h"

namespace lmforge {
class Tensor;
}
namespace lmforge::nn {
struct NamedParameter;
}
namespace lmforge::dist {
class Communicator;
}

namespace lmforge::train {

struct TrainOptions {
  bool resume = false;
  bool quiet = false;  // no printing (tests)
  // Called on each micro-batch's loss before it is checked (tests inject non-finite losses).
  std::function<void(int64_t step, Tensor& loss)> loss_hook = nullptr;
  // Stop after this optimizer step as if the process were killed (tests of resume); 0: never.
  int64_t stop_after_step = 0;
  // This process's rank in a multi-process (data-parallel) run: only rank 0 writes metrics,
  // reports and checkpoints.
  int rank = 0;
  // The gradient-sync seam between backward and clipping: called once per optimizer step with
  // the parameters whose .grad hold this process's accumulated gradients (a data-parallel run
  // all-reduces them here). Unset: a single process, nothing to do.
  std::function<void(const std::vector<nn::NamedParameter>&)> sync_gradients = nullptr;
  // Data parallel (dist/data_parallel.h): the communicator of this process's rank, or null for a
  // single process. Each global micro-batch of train.micro_batch_size windows is split evenly over
  // the ranks (the windows one process would draw, each rank its consecutive share); gradients
  // are averaged, or the optimizer sharded (dist.zero); losses are averaged before they are
  // logged; `rank` is taken from the communicator. Every rank must run run_training with it.
  dist::Communicator* communicator = nullptr;
};

struct TrainSummary {
  std::string run_dir;
  std::string last_checkpoint;
  int64_t steps_done = 0;
  std::vector<std::pair<int64_t, double>> losses;  // (step, training loss) of each step run here
  std::optional<double> val_loss, val_perplexity, val_bits_per_byte;
  double unigram_entropy = 0;  // nats per token of the training and validation shards
  double tokens_per_second = 0;
  double seconds = 0;
  std::vector<int64_t> bad_steps;  // steps whose loss or gradient was not finite
};

TrainSummary run_training(const RunConfig& config, const TrainOptions& options = {});

}  // namespace lmforge::train
