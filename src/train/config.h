// A run's configuration: the TOML file with sections [model], [data], [train], [optim], [eval],
// [checkpoint] and [dist], then `--set section.key=value` overrides, then validation.
//
// Every key is declared once (config.cpp's field table) with its type, default and help; the
// same spelling is the TOML key, the --set key and the metrics key. Unknown sections and keys
// are rejected naming the key, the file and line, and the closest known key. to_toml() writes
// the resolved configuration (every key, defaults filled), which loads back to the same values;
// a run prints it at start and stores it as config.toml in the run and in each checkpoint.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/dtype.h"
#include "nn/model_config.h"
#include "optim/schedule.h"

namespace lmforge::train {

enum class OnNan { Skip, Rollback };
std::string_view to_string(OnNan v);
void parse_enum(std::string_view s, std::string_view key, OnNan& out);

// train.precision: the dtype of the forward and backward pass. Parameters, gradients and
// optimizer states are f32 in every case; bf16 / f16 compute from cached copies of the weights
// (nn/compute_copy.h), f16 with dynamic loss scaling. Auto resolves in validate(): bf16 on a GPU,
// f32 on the CPU.
enum class Precision { Auto, F32, BF16, F16 };
std::string_view to_string(Precision v);
void parse_enum(std::string_view s, std::string_view key, Precision& out);
// The dtype `precision` computes in (auto: bf16 on a GPU, f32 on the CPU).
DType compute_dtype_for(Precision precision, bool on_gpu);

struct DataConfig {
  std::string path;       // a directory from `lmforge tokenize` (train_*.bin, val_*.bin) or one shard
  std::string val_path;   // "": the val_*.bin shards next to the training ones
  std::string tokenizer;  // tokenizer.json; "": <data dir>/tokenizer.json when it exists
};

struct TrainSection {
  int64_t seed = 1337;
  int64_t steps = 1000;             // optimizer steps
  int64_t micro_batch_size = 8;     // sequences per forward/backward
  int64_t seq_len = 0;              // 0: model.context_length
  int64_t batch_tokens = 0;         // tokens per optimizer step; 0: one micro-batch
  std::string device = "cpu";
  std::string out_dir = "runs/run";
  int64_t log_every = 10;
  OnNan on_nan = OnNan::Skip;
  int64_t max_bad_steps = 10;       // stop after this many non-finite steps in a row
  double peak_tflops = 0;           // the device's peak for MFU; 0: measured at start
  Precision precision = Precision::Auto;
  // Activation recomputation: keep only each block's input for backward and recompute the block
  // there (less activation memory for about a third more compute per step).
  bool recompute_blocks = false;
  // f32 GEMMs on CUDA in TF32 (inputs rounded to 10 mantissa bits, f32 accumulation): faster f32
  // training, no longer within f32 rounding of the CPU. No effect on the CPU or in bf16 / f16.
  bool allow_tf32 = false;
  // A model directory or checkpoint (e.g. from `lmforge upcycle`) whose weights start the run
  // instead of the initialisation; the optimizer starts fresh. "": none.
  std::string init_from;
  // f16 dynamic loss scaling: the loss is multiplied by the scale before backward; a non-finite
  // gradient skips the step and halves the scale, growth_interval clean steps in a row double it.
  double loss_scale_init = 65536;
  int64_t loss_scale_growth_interval = 2000;
};

struct OptimConfig {
  double lr = 3e-4;
  double min_lr = 3e-5;
  optim::ScheduleKind schedule = optim::ScheduleKind::Cosine;
  int64_t warmup_steps = 100;
  int64_t decay_steps = 0;          // 0: train.steps
  double beta1 = 0.9;
  double beta2 = 0.95;
  double eps = 1e-8;
  double weight_decay = 0.1;
  double grad_clip = 1.0;           // global norm; 0 disables
  bool decay_norms = false;
  bool decay_biases = false;
  bool decay_embeddings = false;
};

struct EvalConfig {
  int64_t every = 100;              // steps between validations; 0: only at the end
  int64_t max_batches = 0;          // 0: the whole validation set
  int64_t batch_size = 0;           // 0: train.micro_batch_size
};

struct CheckpointConfig {
  int64_t every = 500;              // steps between checkpoints; 0: none before the end
  int64_t keep_last = 3;
  bool at_end = true;               // one after the last step (benchmarks turn it off)
};

// [dist]: data-parallel training over several processes (dist/data_parallel.h); no effect in a
// single process.
struct DistConfig {
  int64_t zero = 0;                 // 0: replicated optimizer; 1: sharded moments; 2: also sharded gradients
  double bucket_mb = 25;            // MiB of f32 gradients per collective
  double timeout_s = 600;           // a collective or the start-up rendezvous waiting longer ends the rank
};

struct RunConfig {
  nn::ModelConfig model;
  DataConfig data;
  TrainSection train;
  OptimConfig optim;
  EvalConfig eval;
  CheckpointConfig checkpoint;
  DistConfig dist;

  // Resolves the model config and checks every cross-key constraint; Error naming the key.
  void validate();
  int64_t seq_len() const { return train.seq_len > 0 ? train.seq_len : model.context_length; }
  int64_t tokens_per_micro_batch() const { return train.micro_batch_size * seq_len(); }
  // Micro-batches per optimizer step (after validate()).
  int64_t accumulation_steps() const;
  int64_t decay_steps() const { return optim.decay_steps > 0 ? optim.decay_steps : train.steps; }
  int64_t eval_batch_size() const { return eval.batch_size > 0 ? eval.batch_size : train.micro_batch_size; }
  // The dtype train.precision computes in (after validate(): f32, bf16 or f16).
  DType compute_dtype() const;
};

// Reads `path`, applies each "key=value" override in order, validates.
RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides = {});
// The same from TOML text; `source` names it in messages.
RunConfig parse_run_config(std::string_view toml_text, std::string_view source,
                           const std::vector<std::string>& overrides = {});
// Sets one "section.key=value" (value as in TOML, quotes optional for strings); no validation.
void apply_override(RunConfig& config, std::string_view assignment);
// The whole configuration as TOML.
std::string to_toml(const RunConfig& config);
// The first [model] key whose value differs between a checkpoint's config and a run's, as
// "model.KEY (checkpoint: A, config: B)" with TOML literals, or "" when the models match.
std::string model_difference(const nn::ModelConfig& checkpoint, const nn::ModelConfig& config);
// Every known key ("model.n_layers", ...) with its help text, for --help and messages.
std::vector<std::pair<std::string, std::string>> config_keys();

}  // namespace lmforge::train
