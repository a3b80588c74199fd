#include "train/trainer.h"

#include <chrono>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <memory>

#include "accounting/accounting.h"
#include "backend/backend.h"
#include "backend/op_profile.h"
#include "core/allocator.h"
#include "dist/communicator.h"
#include "dist/data_parallel.h"
#include "dist/run_consistency.h"
#include "nn/transformer.h"
#include "ops/ops.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/loss_scale.h"
#include "optim/schedule.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/evaluate.h"
#include "core/file_util.h"
#include "core/progress.h"
#include "train/metrics.h"
#include "train/report.h"
#include "train/run_dir_lock.h"

namespace lmforge::train {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;

// Independent seeds for the run's streams (SplitMix64 of seed and stream number).
uint64_t derive_seed(uint64_t seed, uint64_t stream) {
  uint64_t z = seed + 0x9E3779B97F4A7C15ull * (stream + 1);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}
enum Stream : uint64_t { kInitStream = 0, kDataStream = 1, kDropoutStream = 2, kRankDropoutStreams = 1000 };

// The tokenizer of a shard directory: DIR/tokenizer.json, else the one meta.json names (as
// written by `lmforge tokenize`, relative to the working directory or to DIR); "" if neither.
std::string find_shard_tokenizer(const std::string& dir) {
  std::error_code ec;
  const fs::path local = fs::path(dir) / "tokenizer.json";
  if (fs::is_regular_file(local, ec)) return local.string();
  const fs::path meta = fs::path(dir) / "meta.json";
  if (!fs::is_regular_file(meta, ec)) return "";
  try {
    const auto j = nlohmann::json::parse(read_file(meta.string()));
    const std::string p = j.at("tokenizer").at("path").get<std::string>();
    for (const fs::path& c : {fs::path(p), fs::path(dir) / p})
      if (fs::is_regular_file(c, ec)) return c.string();
  } catch (const nlohmann::json::exception&) {
  }
  return "";
}

class Trainer {
 public:
  Trainer(const RunConfig& config, const TrainOptions& options) : cfg_(config), opt_(options) {
    if (opt_.communicator) {
      opt_.rank = opt_.communicator->rank();
      world_ = opt_.communicator->world_size();
    }
  }
  TrainSummary run();

 private:
  template <class... A>
  void say(fmt::format_string<A...> f, A&&... a) {
    if (!opt_.quiet && opt_.rank == 0) {
      fmt::print(f, std::forward<A>(a)...);
      std::fflush(stdout);
    }
  }
  void start_data_parallel();
  // Data parallel: rank r > 0 draws its dropout masks from a stream of its own (the seed mixed
  // with r), at the offset all ranks share; rank 0's is the run's stream, the one checkpoints store.
  GeneratorState rank_dropout_state(GeneratorState s) const {
    if (opt_.rank > 0) s.seed = derive_seed(s.seed, kRankDropoutStreams + uint64_t(opt_.rank));
    return s;
  }
  void open_data();
  void build();
  void restore(const std::string& dir, bool keep_sampler);
  void save();
  void validate_now(int64_t step);
  // One optimizer step in its stages (see train_step()).
  enum class StepResult { Done, NonFinite, LossScaleOverflow };
  StepResult train_step(int64_t step, double lr, double& loss, double& grad_norm);
  struct MicroBatchLosses {
    TensorList totals;                    // each micro-batch's loss [1] f64, on the device
    std::vector<std::string> term_names;  // the named loss terms (nn::LossTerms)
    TensorList terms;                     // their values [1] f64, micro-batch-major
    TensorList graphs;                    // the losses with their graphs, freed after the update
  };
  MicroBatchLosses forward_backward(int64_t step, double loss_scale);
  void sync_gradients();
  // Averages the micro-batches' losses and terms over the ranks (data parallel).
  void average_losses(MicroBatchLosses& mb);
  // The optimizer of the step: the whole-model AdamW, or under dist.zero >= 1 this rank's shard.
  void optimizer_step(double lr, double grad_scale, const optim::AdamW::DeviceClip& clip);
  void cancel_optimizer_step();
  int64_t optimizer_step_count() const;
  bool sharded_optimizer() const { return dp_ && dp_->zero_stage() > 0; }
  // Metrics go to metrics.jsonl from the primary rank only.
  void write_metrics(const nlohmann::ordered_json& line);
  // Adds the step's named loss terms and per-layer statistics to a metrics line.
  void add_step_details(nlohmann::ordered_json& j);
  void handle_bad_step(int64_t step, int& consecutive);

  RunConfig cfg_;
  TrainOptions opt_;
  Device device_;
  std::string run_dir_;
  std::unique_ptr<TokenShards> train_shards_, val_shards_;
  std::string tokenizer_path_;
  std::optional<tok::Tokenizer> tokenizer_;
  std::vector<uint32_t> token_bytes_;
  int64_t eos_id_ = -1;
  std::unique_ptr<nn::Transformer> model_;
  std::vector<nn::NamedParameter> params_;
  std::unique_ptr<optim::AdamW> optimizer_;  // null when the optimizer is sharded (dp_)
  optim::AdamWOptions adamw_options_;
  int world_ = 1;
  std::unique_ptr<dist::DataParallel> dp_;  // data parallel (TrainOptions::communicator)
  std::optional<optim::DynamicLossScaler> loss_scaler_;  // f16 only
  optim::LrSchedule schedule_;
  std::unique_ptr<RandomWindowSampler> sampler_;
  std::unique_ptr<MetricsLog> metrics_;
  std::optional<RunDirLock> run_dir_lock_;  // rank 0: held while this trainer runs
  TrainerState state_;
  TrainSummary summary_;
  std::vector<int64_t> x_, y_;  // host batch buffers [B, T], reused every micro-batch
  int64_t last_eval_step_ = -1, last_checkpoint_step_ = -1;
  std::vector<std::pair<std::string, double>> loss_terms_;  // the last settled step's named terms
};

void Trainer::start_data_parallel() {
  dist::Communicator& comm = *opt_.communicator;
  comm.set_timeout_seconds(cfg_.dist.timeout_s);
  LF_CHECK(cfg_.train.micro_batch_size % world_ == 0,
           "train.micro_batch_size ({}) must be a multiple of the world size ({}): every rank takes an equal share "
           "of each micro-batch (train.batch_tokens sets the tokens per step through gradient accumulation)",
           cfg_.train.micro_batch_size, world_);
  LF_CHECK(comm.device_type() == device_.type, "train.device = {} but the {} communicator moves {} tensors",
           cfg_.train.device, comm.backend_name(), comm.device_type() == DeviceType::CPU ? "CPU" : "CUDA");
  // The GPU index may differ between ranks; everything else must not.
  RunConfig same = cfg_;
  same.train.device = device_.is_cuda() ? "cuda" : "cpu";
  dist::check_ranks_agree(comm, device_, to_toml(same), dist::executable_build_id());
}

void Trainer::open_data() {
  const auto& d = cfg_.data;
  std::error_code ec;
  const bool is_dir = fs::is_directory(d.path, ec);
  train_shards_ = std::make_unique<TokenShards>(TokenShards::open(d.path, "train_"));
  if (!d.val_path.empty()) val_shards_ = std::make_unique<TokenShards>(TokenShards::open(d.val_path, "val_"));
  else if (is_dir) val_shards_ = std::make_unique<TokenShards>(TokenShards::open(d.path, "val_"));
  if (val_shards_) {
    // Checked now, not at the first evaluation, which may come after the last step.
    const ValidationBatches probe(*val_shards_, cfg_.seq_len(), cfg_.eval_batch_size());
    LF_CHECK(probe.n_windows() > 0, "the validation shards ({}) have nothing to predict (a shard needs at least 2 "
             "tokens): write a larger split with `lmforge tokenize --val-fraction`, or point data.val_path at other "
             "shards", val_shards_->describe());
  }
  for (auto* shards : {train_shards_.get(), val_shards_.get()}) {
    if (!shards) continue;
    try {
      shards->validate_ids(cfg_.model.vocab_size);
    } catch (const Error& e) {
      throw Error(fmt::format("{} (model.vocab_size = {}; retokenize or raise model.vocab_size)", e.what(),
                              cfg_.model.vocab_size));
    }
  }
  tokenizer_path_ = d.tokenizer.empty() && is_dir ? find_shard_tokenizer(d.path) : d.tokenizer;
  if (!tokenizer_path_.empty()) {
    tokenizer_ = tok::Tokenizer::load(tokenizer_path_);
    LF_CHECK(int64_t(tokenizer_->vocab_size()) <= cfg_.model.vocab_size,
             "model.vocab_size ({}) is smaller than the vocabulary of {} ({})", cfg_.model.vocab_size,
             tokenizer_path_, tokenizer_->vocab_size());
    token_bytes_ = token_byte_lengths(*tokenizer_, cfg_.model.vocab_size);
    if (const auto eot = tokenizer_->find_eot_id()) eos_id_ = *eot;
  }
  std::vector<uint64_t> counts;
  train_shards_->count_ids(counts);
  if (val_shards_) val_shards_->count_ids(counts);
  summary_.unigram_entropy = unigram_entropy(counts);
}

void Trainer::build() {
  const uint64_t seed = uint64_t(cfg_.train.seed);
  model_ = std::make_unique<nn::Transformer>(cfg_.model, nn::TensorOptions{.device = device_});
  Generator init_gen(derive_seed(seed, kInitStream));
  model_->init_parameters(init_gen);
  if (!cfg_.train.init_from.empty()) {
    // Weights (and buffers) from another model directory of the same model; a resumed run
    // overwrites them with its checkpoint's.
    const std::string dir = resolve_checkpoint_dir(cfg_.train.init_from);
    const std::string diff = model_difference(read_checkpoint_config(dir).model, cfg_.model);
    LF_CHECK(diff.empty(), "train.init_from = \"{}\": {} holds a different model: {}", cfg_.train.init_from, dir, diff);
    load_model_weights(*model_, (fs::path(dir) / "model.safetensors").string());
  }
  model_->dropout_generator().set_state(rank_dropout_state({derive_seed(seed, kDropoutStream), 0}));
  model_->set_training(true);
  model_->set_compute_dtype(cfg_.compute_dtype());
  model_->set_recompute_blocks(cfg_.train.recompute_blocks);
  backend_for(device_).set_allow_tf32(cfg_.train.allow_tf32);
  if (cfg_.compute_dtype() == DType::F16) {
    loss_scaler_.emplace(cfg_.train.loss_scale_init, cfg_.train.loss_scale_growth_interval);
  }
  params_ = model_->named_parameters();
  const auto& o = cfg_.optim;
  adamw_options_ = optim::AdamWOptions{.beta1 = o.beta1, .beta2 = o.beta2, .eps = o.eps, .weight_decay = o.weight_decay,
                                       .decay_norms = o.decay_norms, .decay_biases = o.decay_biases,
                                       .decay_embeddings = o.decay_embeddings};
  if (opt_.communicator) {
    const int64_t bucket = std::max<int64_t>(1, int64_t(cfg_.dist.bucket_mb * 1024 * 1024 / 4));
    dp_ = std::make_unique<dist::DataParallel>(
        *opt_.communicator, params_,
        dist::DataParallelOptions{.zero_stage = int(cfg_.dist.zero), .bucket_elements = bucket, .adamw = adamw_options_});
  }
  if (!sharded_optimizer()) optimizer_ = std::make_unique<optim::AdamW>(params_, adamw_options_);
  schedule_ = optim::LrSchedule{.kind = o.schedule, .lr = o.lr, .min_lr = o.min_lr, .warmup_steps = o.warmup_steps,
                                .decay_steps = cfg_.decay_steps()};
  sampler_ = std::make_unique<RandomWindowSampler>(*train_shards_, cfg_.seq_len(), derive_seed(seed, kDataStream));
  state_.sampler_seed = sampler_->seed();
  state_.dropout_rng = model_->dropout_generator().state();
  x_.resize(size_t(cfg_.tokens_per_micro_batch() / world_));
  y_.resize(size_t(cfg_.tokens_per_micro_batch() / world_));
}

void Trainer::restore(const std::string& dir, bool keep_sampler) {
  const RunConfig saved = read_checkpoint_config(dir);
  const std::string diff = model_difference(saved.model, cfg_.model);
  LF_CHECK(diff.empty(), "checkpoint {} was trained with a different model: {}", dir, diff);
  load_model_weights(*model_, (fs::path(dir) / "model.safetensors").string());
  if (sharded_optimizer()) {
    // The checkpoint holds the whole model's moments, whatever world size wrote it.
    optim::AdamW full(params_, adamw_options_);
    load_optimizer_state(full, dir);
    dp_->load_optimizer_state(full);
  } else {
    load_optimizer_state(*optimizer_, dir);
  }
  const uint64_t position = sampler_->position();
  const TrainerState s = read_trainer_state(dir);
  LF_CHECK(s.sampler_seed == sampler_->seed(), "checkpoint {} was trained with another train.seed (its data "
           "order differs); resume with the seed it was trained with", dir);
  state_ = s;
  sampler_->set_position(keep_sampler ? position : s.sampler_position);
  state_.sampler_position = sampler_->position();
  model_->dropout_generator().set_state(rank_dropout_state(s.dropout_rng));
  if (loss_scaler_) {
    // A checkpoint without a loss scale (f32 / bf16 runs, older states) starts from the configured one.
    if (s.loss_scale > 0) loss_scaler_->set_state(s.loss_scale, s.loss_scale_clean_steps);
    else loss_scaler_->set_state(cfg_.train.loss_scale_init, 0);
  }
  LF_CHECK(optimizer_step_count() == s.step, "checkpoint {}: optimizer step {} but trainer step {}", dir,
           optimizer_step_count(), s.step);
}

void Trainer::save() {
  state_.sampler_position = sampler_->position();
  if (loss_scaler_) {
    state_.loss_scale = loss_scaler_->scale();
    state_.loss_scale_clean_steps = loss_scaler_->clean_steps();
  }
  state_.dropout_rng = model_->dropout_generator().state();
  // Under dist.zero >= 1 every rank takes part in gathering the moments; rank 0 writes.
  std::unique_ptr<optim::AdamW> gathered;
  if (sharded_optimizer()) {
    gathered = std::make_unique<optim::AdamW>(params_, adamw_options_);
    dp_->gather_optimizer_state(*gathered);
  }
  last_checkpoint_step_ = state_.step;
  if (opt_.rank != 0) return;
  const CheckpointContents c{.model = *model_, .optimizer = gathered ? *gathered : *optimizer_, .state = state_,
                             .schedule = schedule_,
                             .config = cfg_, .tokenizer = tokenizer_ ? &*tokenizer_ : nullptr, .eos_token_id = eos_id_};
  const auto t0 = Clock::now();
  summary_.last_checkpoint = save_checkpoint(run_dir_, c, cfg_.checkpoint.keep_last);
  last_checkpoint_step_ = state_.step;
  write_metrics({{"step", state_.step}, {"event", "checkpoint"}, {"path", summary_.last_checkpoint}});
  say("checkpoint {} ({:.1f}s)\n", summary_.last_checkpoint, seconds_since(t0));
}

void Trainer::validate_now(int64_t step) {
  last_eval_step_ = step;
  if (!val_shards_) return;
  ValidationBatches batches(*val_shards_, cfg_.seq_len(), cfg_.eval_batch_size(), cfg_.eval.max_batches);
  const auto t0 = Clock::now();
  const EvalResult r = evaluate(*model_, batches, cfg_.eval_batch_size(), cfg_.seq_len(),
                                token_bytes_.empty() ? nullptr : &token_bytes_);
  summary_.val_loss = r.loss;
  summary_.val_perplexity = r.perplexity;
  summary_.val_bits_per_byte = r.bits_per_byte;
  nlohmann::ordered_json j{{"step", step}, {"val_loss", r.loss}, {"val_perplexity", r.perplexity}};
  j["val_bits_per_byte"] = r.bits_per_byte ? nlohmann::ordered_json(*r.bits_per_byte) : nlohmann::ordered_json();
  j["val_tokens"] = r.tokens;
  write_metrics(j);
  if (opt_.rank == 0) write_run_report(run_dir_, opt_.quiet);  // report.html, redrawn at each validation
  say("step {} | val loss {:.4f} | val ppl {:.2f} | val bits/byte {} | {} tokens ({:.1f}s)\n", step, r.loss,
      r.perplexity, r.bits_per_byte ? fmt::format("{:.4f}", *r.bits_per_byte) : std::string("n/a"), r.tokens,
      seconds_since(t0));
}

// ---- one optimizer step, in stages ----
//
// 1. forward_backward: each micro-batch's forward and backward (gradients accumulate in .grad);
// 2. sync_gradients:  the data-parallel seam (TrainOptions::sync_gradients; nothing alone);
// 3. clip + update:   the global gradient norm and the AdamW update that clips with it, queued
//                     on the device and skipped there when the norm or a loss is not finite;
// 4. settle:          the host reads the losses and the norm (which arrive while the device runs
//                     the update) and decides the step; a skipped update is undone in the count.
// Logging and checkpoints follow in run(), on the primary rank only.
// The whole step is queued before the host waits for anything: the batches go up through
// staging copies and the gradient norm stays on the device. A read earlier in the step would
// leave the GPU idle while the host catches up.

Trainer::MicroBatchLosses Trainer::forward_backward(int64_t step, double loss_scale) {
  // Data parallel: this rank's consecutive share of the global micro-batch's windows.
  const int64_t accum = cfg_.accumulation_steps(), global_b = cfg_.train.micro_batch_size, t = cfg_.seq_len();
  const int64_t b = global_b / world_;
  MicroBatchLosses out;
  for (int64_t m = 0; m < accum; ++m) {
    sampler_->next_batch_rows(global_b, int64_t(opt_.rank) * b, b, x_, y_);
    const Tensor xs = from_vector<int64_t>(x_, {b, t}, device_);
    const Tensor ys = from_vector<int64_t>(y_, {b, t}, device_);
    nn::LossTerms lt = model_->loss_terms(xs, ys);
    Tensor& loss = lt.total;
    if (opt_.loss_hook) opt_.loss_hook(step, loss);
    // f16: the loss is multiplied by the loss scale before backward and the gradients divided by
    // it inside the optimizer (grad_scale), so the update is the unscaled one.
    const double factor = loss_scale / double(accum);
    (factor != 1.0 ? loss * factor : loss).backward();
    out.totals.push_back(loss.detach().to(DType::F64).reshape({1}));
    if (out.term_names.empty())
      for (const auto& [name, v] : lt.terms) out.term_names.push_back(name);
    for (const auto& [name, v] : lt.terms) out.terms.push_back(v.to(DType::F64).reshape({1}));
    out.graphs.push_back(loss);  // the graph is freed once the update is queued, while it runs
  }
  return out;
}

void Trainer::sync_gradients() {
  if (dp_) dp_->sync_gradients();
  if (opt_.sync_gradients) opt_.sync_gradients(params_);
}

void Trainer::average_losses(MicroBatchLosses& mb) {
  if (!dp_ || world_ == 1) return;
  NoGradGuard no_grad;
  TensorList parts = mb.totals;
  parts.insert(parts.end(), mb.terms.begin(), mb.terms.end());
  Tensor all = contiguous(cat(parts, 0));
  dp_->communicator().all_reduce(all, dist::ReduceOp::Avg);
  for (size_t i = 0; i < mb.totals.size(); ++i) mb.totals[i] = all.narrow(0, int64_t(i), 1);
  for (size_t i = 0; i < mb.terms.size(); ++i) mb.terms[i] = all.narrow(0, int64_t(mb.totals.size() + i), 1);
}

void Trainer::optimizer_step(double lr, double grad_scale, const optim::AdamW::DeviceClip& clip) {
  if (sharded_optimizer()) dp_->step(lr, grad_scale, clip);
  else optimizer_->step(lr, grad_scale, clip);
}

void Trainer::cancel_optimizer_step() {
  if (sharded_optimizer()) dp_->cancel_step();
  else optimizer_->cancel_step();
}

int64_t Trainer::optimizer_step_count() const {
  return sharded_optimizer() ? dp_->step_count() : optimizer_->step_count();
}

Trainer::StepResult Trainer::train_step(int64_t step, double lr, double& loss_out, double& grad_norm) {
  const int64_t accum = cfg_.accumulation_steps();
  const double loss_scale = loss_scaler_ ? loss_scaler_->scale() : 1.0;
  model_->step_stats().clear();
  MicroBatchLosses mb = forward_backward(step, loss_scale);
  sync_gradients();
  // Every rank decides on the same (averaged) numbers, so all skip or all take a step.
  average_losses(mb);

  // Clip + update. 0·loss is 0 for a finite loss and NaN otherwise: a non-finite loss skips the
  // update too.
  const Tensor norm_sq = dp_ ? dp_->grad_norm_squared() : optim::grad_norm_squared(params_);
  TensorList parts = mb.totals;
  parts.push_back(norm_sq.reshape({1}));
  parts.insert(parts.end(), mb.terms.begin(), mb.terms.end());
  const Tensor readout = cat(parts, 0);
  const Tensor guarded_sq = add(norm_sq, mul(sum(readout.narrow(0, 0, accum)), 0.0));
  const auto pending = backend_for(readout).read_async(readout);
  optimizer_step(lr, 1.0 / loss_scale, {.norm_squared = guarded_sq, .max_norm = cfg_.optim.grad_clip});
  mb.graphs.clear();

  // Settle.
  const auto& bytes = pending->wait();
  std::vector<double> values(size_t(readout.numel()));
  LF_ASSERT(bytes.size() == values.size() * sizeof(double));
  std::memcpy(values.data(), bytes.data(), bytes.size());
  double loss_sum = 0;
  for (int64_t m = 0; m < accum; ++m) {
    const double l = values[size_t(m)];
    if (!std::isfinite(l)) {
      loss_out = l;
      cancel_optimizer_step();
      return StepResult::NonFinite;
    }
    loss_sum += l;
  }
  loss_out = loss_sum / double(accum);
  // Each named term's mean over the micro-batches.
  loss_terms_.clear();
  const size_t n_terms = mb.term_names.size();
  for (size_t i = 0; i < n_terms; ++i) {
    double v = 0;
    for (int64_t m = 0; m < accum; ++m) v += values[size_t(accum) + 1 + size_t(m) * n_terms + i];
    loss_terms_.emplace_back(mb.term_names[i], v / double(accum));
  }
  grad_norm = optim::clip_norm(values[size_t(accum)], 1.0 / loss_scale);
  if (loss_scaler_) {
    const auto outcome = loss_scaler_->update(grad_norm);
    if (loss_scaler_->scale() != loss_scale) {
      write_metrics({{"step", step + 1}, {"event", "loss_scale"}, {"scale", loss_scaler_->scale()},
                     {"reason", outcome == optim::DynamicLossScaler::Outcome::SkipOverflow ? "overflow" : "growth"}});
    }
    if (outcome == optim::DynamicLossScaler::Outcome::SkipOverflow) {
      cancel_optimizer_step();
      return StepResult::LossScaleOverflow;
    }
    if (outcome == optim::DynamicLossScaler::Outcome::NonFinite) {
      cancel_optimizer_step();
      return StepResult::NonFinite;
    }
  } else if (!std::isfinite(grad_norm)) {
    cancel_optimizer_step();
    return StepResult::NonFinite;
  }
  // State that follows the step's routing (MoE balancing biases) moves once the step counts.
  model_->after_optimizer_step();
  return StepResult::Done;
}

void Trainer::write_metrics(const nlohmann::ordered_json& line) {
  if (opt_.rank == 0) metrics_->write(line);
}

void Trainer::add_step_details(nlohmann::ordered_json& j) {
  for (const auto& [name, v] : loss_terms_) j["loss/" + name] = v;
  const nn::StepStats& stats = model_->step_stats();
  if (stats.values().empty()) return;
  // Per-layer statistics (one device read at a log step). Losses as means over micro-batches,
  // by name over layers too; counts as sums over the step.
  NoGradGuard no_grad;
  const double per_mb = 1.0 / double(std::max<int64_t>(1, stats.micro_batches()));
  for (const auto& [name, v] : stats.loss_totals()) j["loss/" + name] = to_vector<double>(cast(v, DType::F64)).at(0) * per_mb;
  for (const auto& [key, v] : stats.values()) {
    const bool is_loss = key.find(".loss.") != std::string::npos;
    const std::vector<double> x = to_vector<double>(cast(v, DType::F64));
    if (x.size() == 1) {
      j[key] = is_loss ? x[0] * per_mb : x[0];
      continue;
    }
    j[key] = x;
    if (key.ends_with(".tokens_per_expert") && !x.empty()) {
      double total = 0, peak = 0;
      for (double c : x) total += c, peak = std::max(peak, c);
      const std::string layer = key.substr(0, key.size() - std::string("tokens_per_expert").size());
      j[layer + "max_mean_load"] = total > 0 ? peak / (total / double(x.size())) : 0.0;
    }
  }
}

void Trainer::handle_bad_step(int64_t step, int& consecutive) {
  model_->zero_grad();
  ++consecutive;
  ++state_.bad_steps;
  summary_.bad_steps.push_back(step + 1);
  const bool rollback = cfg_.train.on_nan == OnNan::Rollback;
  const std::string ckpt = rollback ? latest_checkpoint(run_dir_) : std::string();
  const char* action = !rollback ? "skip" : ckpt.empty() ? "skip (no checkpoint to roll back to)" : "rollback";
  write_metrics({{"step", step + 1}, {"event", "nonfinite_loss"}, {"action", action}});
  if (!opt_.quiet)
    fmt::print(stderr, "step {}: non-finite loss or gradient; {}\n", step + 1, action);
  LF_CHECK(consecutive < cfg_.train.max_bad_steps,
           "stopping: {} non-finite steps in a row (the run did not get past step {} in between); lower optim.lr, "
           "set model.z_loss or check the data", consecutive, step + 1);
  if (!ckpt.empty()) {
    restore(ckpt, /*keep_sampler=*/true);
    write_metrics({{"step", state_.step}, {"event", "rollback"}, {"path", ckpt}});
    say("rolled back to {}\n", ckpt);
  }
}

TrainSummary Trainer::run() {
  const auto t_start = Clock::now();
  device_ = Device::parse(cfg_.train.device);
  run_dir_ = cfg_.train.out_dir;
  summary_.run_dir = run_dir_;
  say("# resolved config\n{}\n", to_toml(cfg_));
  fs::create_directories(run_dir_);
  if (opt_.communicator) start_data_parallel();
  // One trainer per run directory (metrics.jsonl, checkpoints); the writing rank takes the lock.
  if (opt_.rank == 0) run_dir_lock_.emplace(run_dir_);
  open_data();
  build();

  std::string resume_from;
  if (opt_.resume) {
    resume_from = latest_checkpoint(run_dir_);
    // A newer checkpoint missing a file is not passed over for an older one (or for a fresh
    // start over the run's history): that would silently throw its steps away.
    const auto incomplete = incomplete_checkpoints(run_dir_);
    LF_CHECK(incomplete.empty(), "--resume: checkpoint {} is incomplete ({} is missing) and newer than {}; restore "
             "the file, or move the directory away to resume from {}", incomplete.empty() ? "" : incomplete.back().first,
             incomplete.empty() ? "" : incomplete.back().second,
             resume_from.empty() ? "any complete checkpoint" : resume_from,
             resume_from.empty() ? "scratch" : resume_from);
    if (resume_from.empty()) say("no checkpoint in {}/checkpoints: starting from scratch\n", run_dir_);
  } else {
    LF_CHECK(list_checkpoints(run_dir_).empty(), "{} already holds checkpoints; pass --resume to continue that run "
             "or choose another train.out_dir", run_dir_);
  }
  if (!resume_from.empty()) {
    restore(resume_from, /*keep_sampler=*/false);
    say("resumed from {} (step {})\n", resume_from, state_.step);
  }
  if (opt_.rank == 0) {
    metrics_ = std::make_unique<MetricsLog>((fs::path(run_dir_) / "metrics.jsonl").string(),
                                            resume_from.empty() ? -1 : state_.step);
    // A kill between the checkpoint's rename and its metrics line lost the line: it is written
    // now, where it belongs (after the step's other lines, before the next step's).
    if (!resume_from.empty() && !metrics_->has_event(state_.step, "checkpoint"))
      write_metrics({{"step", state_.step}, {"event", "checkpoint"}, {"path", resume_from}});
    write_file_synced((fs::path(run_dir_) / "config.toml").string(), to_toml(cfg_));
  }

  const int64_t steps = cfg_.train.steps, accum = cfg_.accumulation_steps();
  const int64_t tokens_per_step = cfg_.tokens_per_micro_batch() * accum;
  const double flops_per_token = accounting::count_flops(model_->config(), cfg_.seq_len()).training_per_token;
  // MFU's denominator: the configured peak, else the best matmul rate measured on this machine in
  // the dtype the GEMMs run in (bf16 tensor cores under bf16 training), kept across runs in the
  // user's cache so that a start under load does not lower it (accounting/matmul_peak.h).
  const accounting::MatmulPeak peak = accounting::resolve_matmul_peak(
      model_->device(), cfg_.compute_dtype(), cfg_.train.peak_tflops, accounting::default_peak_cache_path());
  say("matmul peak {:.1f} GFLOP/s ({}); MFU is reported against it\n", peak.flops / 1e9, peak.source);
  const int64_t predicted_memory =
      accounting::estimate_memory(model_->config(), {.micro_batch_size = cfg_.train.micro_batch_size / world_,
                                                     .seq_len = cfg_.seq_len(),
                                                     .compute_dtype = cfg_.compute_dtype(),
                                                     .recompute_blocks = cfg_.train.recompute_blocks}).total;
  say("model: {} parameters; predicted {:.3g} training FLOPs per token, {} peak memory\n",
      model_->parameter_count(), flops_per_token, accounting::human_bytes(double(predicted_memory)));
  say("data: {} training tokens in {} shard(s), {} validation tokens; unigram entropy {:.4f} nats/token\n",
      train_shards_->total_tokens(), train_shards_->n_shards(), val_shards_ ? val_shards_->total_tokens() : 0,
      summary_.unigram_entropy);
  say("batch: {} tokens per step = {} sequences x {} tokens x {} accumulation step(s); {} steps on {}\n",
      tokens_per_step, cfg_.train.micro_batch_size, cfg_.seq_len(), accum, steps, device_.str());
  if (dp_)
    say("data parallel: {} ranks over {}, {} sequences each per micro-batch, dist.zero = {}\n", world_,
        opt_.communicator->backend_name(), cfg_.train.micro_batch_size / world_, cfg_.dist.zero);

  Allocator& alloc = allocator_for(device_);
  double window_seconds = 0, train_seconds = 0;
  int64_t window_tokens = 0, steps_run = 0;
  int consecutive_bad = 0;
  // Non-finite steps are "in a row" until the run gets past the step where the last one
  // happened: the finite steps a rollback replays up to it do not end the row, so a run that
  // diverges again after every rollback stops after train.max_bad_steps.
  int64_t last_bad_step = 0;
  for (int64_t step = state_.step; step < steps;) {
    const auto t0 = Clock::now();
    const double lr = schedule_.at(step);
    double loss = 0, grad_norm = 0;
    const StepResult result = train_step(step, lr, loss, grad_norm);
    // A kernel profile covers the steps after the first: the first one also pays for the device
    // allocations and module loading that later steps reuse.
    if (steps_run == 0 && op_profile::enabled()) op_profile::reset();
    if (result == StepResult::LossScaleOverflow) {
      // Not a bad step: the gradients are dropped and the same step is tried again with the
      // next batch at half the scale.
      model_->zero_grad();
      say("step {}: gradient overflow in f16; loss scale lowered to {}\n", step + 1, loss_scaler_->scale());
      continue;
    }
    if (result == StepResult::NonFinite) {
      last_bad_step = step + 1;
      handle_bad_step(step, consecutive_bad);
      step = state_.step;
      continue;
    }
    if (step + 1 >= last_bad_step) consecutive_bad = 0;
    model_->zero_grad();
    state_.step = ++step;
    state_.tokens_seen += uint64_t(tokens_per_step);
    state_.lr = lr;
    state_.loss = loss;
    summary_.losses.push_back({step, loss});
    const double dt = seconds_since(t0);
    window_seconds += dt;
    train_seconds += dt;
    state_.elapsed_seconds += dt;
    window_tokens += tokens_per_step;
    ++steps_run;

    const bool last = step == steps;
    if (step % cfg_.train.log_every == 0 || last) {
      const double tps = window_tokens / std::max(window_seconds, 1e-9);
      nlohmann::ordered_json j{{"step", step}, {"loss", loss}, {"lr", lr}, {"grad_norm", grad_norm},
                               {"tokens_per_s", tps}};
      // Above the peak is not a utilisation: null, and the flag says the peak was underestimated.
      const accounting::Mfu mfu = accounting::model_flops_utilization(flops_per_token * tps, peak.flops * world_);
      j["mfu"] = mfu.value ? nlohmann::ordered_json(*mfu.value) : nlohmann::ordered_json();
      j["mfu_above_peak"] = mfu.above_peak;
      j["peak_memory_bytes"] = alloc.stats().peak_bytes_in_use;
      j["tokens"] = state_.tokens_seen;
      j["elapsed_s"] = state_.elapsed_seconds;
      add_step_details(j);
      write_metrics(j);
      const double eta = (train_seconds / double(steps_run)) * double(steps - step);
      say("step {}/{} | loss {:.4f} | lr {:.2e} | grad norm {:.3f} | {} tok/s | {} | ETA {}\n", step, steps, loss, lr,
          grad_norm, format_count(tps), accounting::format_mfu(mfu), format_duration(eta));
      window_seconds = 0;
      window_tokens = 0;
    }
    if ((cfg_.eval.every > 0 && step % cfg_.eval.every == 0) || last) validate_now(step);
    const bool checkpoint_due =
        (cfg_.checkpoint.every > 0 && step % cfg_.checkpoint.every == 0) || (last && cfg_.checkpoint.at_end);
    if (checkpoint_due) save();  // a collective under dist.zero >= 1; rank 0 writes
    if (opt_.stop_after_step > 0 && step >= opt_.stop_after_step) break;
  }
  summary_.steps_done = state_.step;
  summary_.seconds = seconds_since(t_start);
  summary_.tokens_per_second = train_seconds > 0 ? double(steps_run * tokens_per_step) / train_seconds : 0;
  if (opt_.rank == 0) write_run_report(run_dir_, opt_.quiet);
  say("done: {} steps, {} tokens/s, {} total; run directory {}\n", state_.step, format_count(summary_.tokens_per_second),
      format_duration(summary_.seconds), run_dir_);
  return summary_;
}

}  // namespace

TrainSummary run_training(const RunConfig& config, const TrainOptions& options) {
  RunConfig c = config;
  c.validate();
  Trainer t(c, options);
  return t.run();
}

}  // namespace lmforge::train
