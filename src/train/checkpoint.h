// Checkpoints: RUN/checkpoints/step_N/ holding
//
//   model.safetensors      the weights, HF Llama tensor names (nn/transformer.h)
//   config.json            HF-style model config (train/hf_config.h)
//   optimizer.safetensors  AdamW moments "<param>.exp_avg", "<param>.exp_avg_sq"; step in metadata
//   trainer_state.json     step, tokens seen, sampler position, dropout RNG, schedule
//   config.toml            the resolved run config
//   tokenizer.json         the run's tokenizer (when the run has one)
//
// Writing is atomic: everything goes into RUN/checkpoints/.tmp-step_N-<pid>/, each file fsynced,
// the directory fsynced and renamed to step_N, the parent fsynced. A crash or error at any point
// leaves the previous checkpoints as they were (the temporary directory is removed on error, or
// by the next save after a crash). Then all but the newest keep_last are deleted.
//
// Loading checks every file (safetensors sizes, offsets and checksum; JSON syntax; tensor names
// and shapes against the model) and fails with an Error naming the file.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/random_kernels.h"
#include "nn/transformer.h"
#include "optim/adamw.h"
#include "optim/schedule.h"
#include "tokenizer/tokenizer.h"
#include "train/config.h"

namespace lmforge::train {

struct TrainerState {
  int64_t step = 0;                // optimizer steps completed
  uint64_t tokens_seen = 0;        // training tokens consumed
  uint64_t sampler_seed = 0;
  uint64_t sampler_position = 0;   // windows drawn by the training sampler
  GeneratorState dropout_rng;
  double lr = 0;                   // learning rate of the last step
  double loss = 0;                 // training loss of the last step
  double elapsed_seconds = 0;      // training time so far (across resumes)
  int64_t bad_steps = 0;           // non-finite steps so far
  // f16 dynamic loss scaling (train.precision = f16): the current scale and the clean steps since
  // it last changed. A state written before loss scaling existed loads with these defaults
  // (scale 0: the trainer starts from train.loss_scale_init).
  double loss_scale = 0;
  int64_t loss_scale_clean_steps = 0;
};

std::string trainer_state_json(const TrainerState& state, const optim::LrSchedule& schedule);
TrainerState parse_trainer_state(const std::string& text, const std::string& source);

struct CheckpointContents {
  const nn::Transformer& model;
  const optim::AdamW& optimizer;
  const TrainerState& state;
  const optim::LrSchedule& schedule;
  const RunConfig& config;
  const tok::Tokenizer* tokenizer = nullptr;  // saved as tokenizer.json when given
  int64_t eos_token_id = -1;
};

// Writes RUN/checkpoints/step_<state.step> atomically, then prunes to keep_last; returns its path.
std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& contents, int64_t keep_last);

// Deletes all but the newest keep_last complete checkpoints (each renamed out of the way first,
// so a kill mid-deletion leaves no half-deleted step_N), and what killed writers and pruners
// left behind. save_checkpoint() calls it.
void prune_checkpoints(const std::string& run_dir, int64_t keep_last);
// step_N directories newer than the newest complete checkpoint that miss a required file (the
// ones a resume would pass over): (directory, first missing file), by step. --resume refuses to
// continue from an older checkpoint, or from scratch, while there is one.
std::vector<std::pair<std::string, std::string>> incomplete_checkpoints(const std::string& run_dir);

// Complete checkpoints (every required file present) under RUN/checkpoints, by step.
std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir);
// The newest complete checkpoint, or "" when there is none.
std::string latest_checkpoint(const std::string& run_dir);
// Marks a model directory: model.safetensors, config.json and config.toml without training state
// (written by lmforge upcycle; eval, score, generate and train.init_from load it).
inline constexpr const char* kModelDirectoryFile = "model_directory.json";
// A checkpoint directory, a model directory, or a run directory (its newest checkpoint); Error
// otherwise.
std::string resolve_checkpoint_dir(const std::string& path);

// DIR/config.toml, checked against DIR/config.json (the same model for other tools): Error
// naming the first key on which they disagree.
RunConfig read_checkpoint_config(const std::string& dir);
// Copies the tensors of `path` (a model.safetensors) into the model's parameters; every
// parameter must be there with its shape, and nothing else may be (a tied lm_head is allowed).
void load_model_weights(const nn::Module& model, const std::string& path);
void load_optimizer_state(optim::AdamW& optimizer, const std::string& dir);
TrainerState read_trainer_state(const std::string& dir);

// A model ready for evaluation or generation.
struct LoadedModel {
  std::string dir;
  RunConfig config;
  std::unique_ptr<nn::Transformer> model;
  std::optional<tok::Tokenizer> tokenizer;  // absent when the checkpoint has no tokenizer.json
};
// `path` as for resolve_checkpoint_dir; the model is put in evaluation mode. `precision` is the
// dtype the forward computes in, as train.precision (the weights stay f32): auto is bf16 on a
// GPU and f32 on the CPU, whatever the run was trained in.
LoadedModel load_checkpoint_model(const std::string& path, Device device, Precision precision = Precision::Auto);

}  // namespace lmforge::train
