#include "train/config.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "core/checked_math.h"
#include "core/enum_names.h"
#include "core/error.h"
#include "nn/model_limits.h"
#include "train/config_fields.h"
#include "train/config_limits.h"

namespace lmforge::train {

using detail::ConfigField;
using detail::ConfigValue;

namespace {
constexpr EnumNames<OnNan, 2> kOnNanNames{{{OnNan::Skip, "skip"}, {OnNan::Rollback, "rollback"}}};
constexpr EnumNames<Precision, 4> kPrecisionNames{
    {{Precision::Auto, "auto"}, {Precision::F32, "f32"}, {Precision::BF16, "bf16"}, {Precision::F16, "f16"}}};
}  // namespace

std::string_view to_string(OnNan v) { return enum_name(kOnNanNames, v); }
void parse_enum(std::string_view s, std::string_view key, OnNan& out) { out = parse_enum_name(kOnNanNames, s, key); }

std::string_view to_string(Precision v) { return enum_name(kPrecisionNames, v); }
void parse_enum(std::string_view s, std::string_view key, Precision& out) {
  out = parse_enum_name(kPrecisionNames, s, key);
}

namespace {

const char* type_name(const ConfigValue& v) {
  switch (v.index()) {
    case 0: return "an integer";
    case 1: return "a float";
    case 2: return "a boolean";
    default: return "a string";
  }
}

std::string render_float(double v) {
  if (std::isnan(v)) return "nan";
  if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
  std::string s = fmt::format("{}", v);
  if (s.find_first_of(".eE") == std::string::npos) s += ".0";
  return s;
}

std::string render_string(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') out += '\\';
    if (c == '\n') { out += "\\n"; continue; }
    out += c;
  }
  return out + "\"";
}

ConfigField int_field(std::string key, int64_t* p, std::string help) {
  return {key, ConfigField::Kind::Int, std::move(help),
          [key, p](const ConfigValue& v) {
            if (auto* i = std::get_if<int64_t>(&v)) *p = *i;
            else throw Error(fmt::format("{} must be an integer, got {}", key, type_name(v)));
          },
          [p] { return std::to_string(*p); }};
}

ConfigField float_field(std::string key, double* p, std::string help) {
  return {key, ConfigField::Kind::Float, std::move(help),
          [key, p](const ConfigValue& v) {
            if (auto* d = std::get_if<double>(&v)) *p = *d;
            else if (auto* i = std::get_if<int64_t>(&v)) *p = double(*i);
            else throw Error(fmt::format("{} must be a number, got {}", key, type_name(v)));
          },
          [p] { return render_float(*p); }};
}

ConfigField bool_field(std::string key, bool* p, std::string help) {
  return {key, ConfigField::Kind::Bool, std::move(help),
          [key, p](const ConfigValue& v) {
            if (auto* b = std::get_if<bool>(&v)) *p = *b;
            else throw Error(fmt::format("{} must be true or false, got {}", key, type_name(v)));
          },
          [p] { return std::string(*p ? "true" : "false"); }};
}

ConfigField string_field(std::string key, std::string* p, std::string help) {
  return {key, ConfigField::Kind::String, std::move(help),
          [key, p](const ConfigValue& v) {
            if (auto* s = std::get_if<std::string>(&v)) *p = *s;
            else throw Error(fmt::format("{} must be a string, got {}", key, type_name(v)));
          },
          [p] { return render_string(*p); }};
}

template <class E>
ConfigField enum_field(std::string key, E* p, std::string help) {
  return {key, ConfigField::Kind::String, std::move(help),
          [key, p](const ConfigValue& v) {
            auto* s = std::get_if<std::string>(&v);
            if (!s) throw Error(fmt::format("{} must be a string, got {}", key, type_name(v)));
            parse_enum(*s, key, *p);  // found by argument-dependent lookup
          },
          [p] { return render_string(std::string(to_string(*p))); }};
}

size_t edit_distance(std::string_view a, std::string_view b) {
  std::vector<size_t> prev(b.size() + 1), cur(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) prev[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    cur[0] = i;
    for (size_t j = 1; j <= b.size(); ++j)
      cur[j] = std::min({prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1)});
    std::swap(prev, cur);
  }
  return prev[b.size()];
}

std::string_view trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

}  // namespace

namespace detail {

const std::vector<std::string>& config_sections() {
  static const std::vector<std::string> s{"model", "data", "train", "optim", "eval", "checkpoint", "dist"};
  return s;
}

std::vector<ConfigField> config_fields(RunConfig& c) {
  // [model]: every field ModelConfig declares (nn/model_config.h), in its order.
  std::vector<ConfigField> fields;
  c.model.visit_fields([&]<class T>(std::string_view name, T& value, std::string_view help) {
    std::string key = "model." + std::string(name);
    if constexpr (std::is_same_v<T, int64_t>) fields.push_back(int_field(std::move(key), &value, std::string(help)));
    else if constexpr (std::is_same_v<T, double>) fields.push_back(float_field(std::move(key), &value, std::string(help)));
    else if constexpr (std::is_same_v<T, bool>) fields.push_back(bool_field(std::move(key), &value, std::string(help)));
    else if constexpr (std::is_same_v<T, std::string>) fields.push_back(string_field(std::move(key), &value, std::string(help)));
    else fields.push_back(enum_field(std::move(key), &value, std::string(help)));
  });
  std::vector<ConfigField> rest{
      string_field("data.path", &c.data.path, "directory of token shards (train_*.bin, val_*.bin) or one shard file"),
      string_field("data.val_path", &c.data.val_path, "validation shards (\"\": val_*.bin in data.path)"),
      string_field("data.tokenizer", &c.data.tokenizer, "tokenizer.json (\"\": data.path/tokenizer.json when present)"),
      int_field("train.seed", &c.train.seed, "the one seed of the run: initialisation, data order, dropout"),
      int_field("train.steps", &c.train.steps, "optimizer steps"),
      int_field("train.micro_batch_size", &c.train.micro_batch_size, "sequences per forward/backward pass"),
      int_field("train.seq_len", &c.train.seq_len, "tokens per training sequence (0: model.context_length)"),
      int_field("train.batch_tokens", &c.train.batch_tokens, "tokens per optimizer step, reached by gradient accumulation (0: one micro-batch)"),
      string_field("train.device", &c.train.device, "cpu | cuda | cuda:N"),
      string_field("train.out_dir", &c.train.out_dir, "run directory (metrics.jsonl, config.toml, checkpoints/)"),
      int_field("train.log_every", &c.train.log_every, "steps between metrics lines"),
      enum_field("train.on_nan", &c.train.on_nan, "skip | rollback: what a non-finite loss does"),
      int_field("train.max_bad_steps", &c.train.max_bad_steps, "stop after this many non-finite steps in a row"),
      float_field("train.peak_tflops", &c.train.peak_tflops, "device peak TFLOP/s for MFU (0: measure the matmul peak at start)"),
      enum_field("train.precision", &c.train.precision, "auto | f32 | bf16 | f16: compute dtype, f32 master weights (auto: bf16 on cuda, f32 on cpu)"),
      bool_field("train.recompute_blocks", &c.train.recompute_blocks,
                 "recompute each block's forward in backward instead of keeping its activations (less memory, ~1/3 more compute)"),
      bool_field("train.allow_tf32", &c.train.allow_tf32,
                 "f32 GEMMs on CUDA in TF32 (faster; no longer within f32 rounding of the CPU)"),
      string_field("train.init_from", &c.train.init_from,
                   "model directory or checkpoint whose weights start the run, e.g. from lmforge upcycle (\"\": none)"),
      float_field("train.loss_scale_init", &c.train.loss_scale_init, "f16 only: initial dynamic loss scale"),
      int_field("train.loss_scale_growth_interval", &c.train.loss_scale_growth_interval, "f16 only: clean steps before the loss scale doubles"),
      float_field("optim.lr", &c.optim.lr, "peak learning rate"),
      float_field("optim.min_lr", &c.optim.min_lr, "learning-rate floor at the end of the decay"),
      enum_field("optim.schedule", &c.optim.schedule, "cosine | linear | constant"),
      int_field("optim.warmup_steps", &c.optim.warmup_steps, "linear warmup steps"),
      int_field("optim.decay_steps", &c.optim.decay_steps, "step at which min_lr is reached (0: train.steps)"),
      float_field("optim.beta1", &c.optim.beta1, "AdamW beta1"),
      float_field("optim.beta2", &c.optim.beta2, "AdamW beta2"),
      float_field("optim.eps", &c.optim.eps, "AdamW epsilon"),
      float_field("optim.weight_decay", &c.optim.weight_decay, "decoupled weight decay"),
      float_field("optim.grad_clip", &c.optim.grad_clip, "global gradient-norm limit (0: off)"),
      bool_field("optim.decay_norms", &c.optim.decay_norms, "apply weight decay to norm gains"),
      bool_field("optim.decay_biases", &c.optim.decay_biases, "apply weight decay to biases"),
      bool_field("optim.decay_embeddings", &c.optim.decay_embeddings, "apply weight decay to embeddings"),
      int_field("eval.every", &c.eval.every, "steps between validations (0: only at the end)"),
      int_field("eval.max_batches", &c.eval.max_batches, "validation batches (0: the whole validation set)"),
      int_field("eval.batch_size", &c.eval.batch_size, "validation sequences per batch (0: train.micro_batch_size)"),
      int_field("checkpoint.every", &c.checkpoint.every, "steps between checkpoints (0: none before the end)"),
      int_field("checkpoint.keep_last", &c.checkpoint.keep_last, "checkpoints to keep"),
      bool_field("checkpoint.at_end", &c.checkpoint.at_end, "save a checkpoint after the last step"),
      int_field("dist.zero", &c.dist.zero, "data parallel: 0 replicated optimizer | 1 sharded AdamW moments | 2 also sharded gradients"),
      float_field("dist.bucket_mb", &c.dist.bucket_mb, "data parallel: MiB of f32 gradients per all-reduce / reduce-scatter"),
      float_field("dist.timeout_s", &c.dist.timeout_s, "data parallel: seconds a collective may wait before the rank exits with an error"),
  };
  fields.insert(fields.end(), std::make_move_iterator(rest.begin()), std::make_move_iterator(rest.end()));
  return fields;
}

const ConfigField& find_field(const std::vector<ConfigField>& fields, std::string_view key, std::string_view where) {
  for (const auto& f : fields)
    if (f.key == key) return f;
  const ConfigField* best = nullptr;
  size_t best_d = SIZE_MAX;
  for (const auto& f : fields) {
    const size_t d = edit_distance(key, f.key);
    if (d < best_d) best_d = d, best = &f;
  }
  std::string hint;
  if (best && best_d <= std::max<size_t>(3, key.size() / 3)) hint = fmt::format("; did you mean {}?", best->key);
  else hint = "; `lmforge train --help` lists the keys";
  throw Error(fmt::format("{}: unknown config key {}{}", where, key, hint));
}

}  // namespace detail

void apply_override(RunConfig& config, std::string_view assignment) {
  const size_t eq = assignment.find('=');
  LF_CHECK(eq != std::string_view::npos, "--set {}: expected section.key=value", assignment);
  const std::string key(trim(assignment.substr(0, eq)));
  const std::string_view text = trim(assignment.substr(eq + 1));
  auto fields = detail::config_fields(config);
  const ConfigField& f = detail::find_field(fields, key, "--set");
  ConfigValue v;
  switch (f.kind) {
    case ConfigField::Kind::Int: {
      int64_t i = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), i);
      LF_CHECK(ec == std::errc() && ptr == text.data() + text.size(), "--set {}: \"{}\" is not an integer", key, text);
      v = i;
      break;
    }
    case ConfigField::Kind::Float: {
      const std::string s(text);
      char* end = nullptr;
      const double d = std::strtod(s.c_str(), &end);
      LF_CHECK(!s.empty() && end == s.c_str() + s.size(), "--set {}: \"{}\" is not a number", key, text);
      v = d;
      break;
    }
    case ConfigField::Kind::Bool:
      LF_CHECK(text == "true" || text == "false", "--set {}: expected true or false, got \"{}\"", key, text);
      v = text == "true";
      break;
    case ConfigField::Kind::String: {
      std::string_view s = text;
      if (s.size() >= 2 && (s.front() == '"' || s.front() == '\'') && s.back() == s.front())
        s = s.substr(1, s.size() - 2);
      v = std::string(s);
      break;
    }
  }
  f.set(v);
}

RunConfig parse_run_config(std::string_view toml_text, std::string_view source,
                           const std::vector<std::string>& overrides) {
  RunConfig c;
  auto fields = detail::config_fields(c);
  detail::read_toml(toml_text, source, fields);
  for (const auto& o : overrides) apply_override(c, o);
  try {
    c.validate();
  } catch (const Error& e) {
    // The checks name the key; the file (and the overrides) tell where it was set.
    throw Error(fmt::format("{}{}: {}", source, overrides.empty() ? "" : " with the --set overrides", e.what()));
  }
  return c;
}

std::string to_toml(const RunConfig& config) {
  RunConfig copy = config;
  auto fields = detail::config_fields(copy);
  std::string out, section;
  for (const auto& f : fields) {
    const size_t dot = f.key.find('.');
    const std::string s = f.key.substr(0, dot);
    if (s != section) {
      out += (out.empty() ? "[" : "\n[") + s + "]\n";
      section = s;
    }
    out += f.key.substr(dot + 1) + " = " + f.render() + "\n";
  }
  return out;
}

std::vector<std::pair<std::string, std::string>> config_keys() {
  RunConfig c;
  std::vector<std::pair<std::string, std::string>> out;
  for (const auto& f : detail::config_fields(c)) out.push_back({f.key, f.help});
  return out;
}

std::string model_difference(const nn::ModelConfig& checkpoint, const nn::ModelConfig& config) {
  RunConfig a, b;
  a.model = checkpoint;
  b.model = config;
  const auto fa = detail::config_fields(a), fb = detail::config_fields(b);
  for (size_t i = 0; i < fa.size() && i < fb.size(); ++i) {
    if (!fa[i].key.starts_with("model.")) continue;
    const std::string va = fa[i].render(), vb = fb[i].render();
    if (va != vb) return fmt::format("{} (checkpoint: {}, config: {})", fa[i].key, va, vb);
  }
  return "";
}

void RunConfig::validate() {
  model.resolve();
  // The model's parameter count, checked once every factor of it is bounded (so it cannot
  // overflow); the expert sizes are resolved last, so they are bounded here.
  if (model.n_experts > 0) {
    check_size_limit("model.n_experts", model.n_experts, nn::limits::kMaxExperts);
    check_size_limit("model.n_shared_experts", model.n_shared_experts, nn::limits::kMaxExperts);
    check_size_limit("model.d_ff_expert", model.d_ff_expert, nn::limits::kMaxDFF);
  }
  check_size_limit("the model's parameter count", model.parameter_count(), nn::limits::kMaxParameters,
                   "lower model.n_layers, model.d_model, model.d_ff or model.vocab_size");
  LF_CHECK(!data.path.empty(), "data.path is not set: point it at the directory `lmforge tokenize` wrote");
  LF_CHECK(train.steps > 0, "train.steps must be > 0, got {}", train.steps);
  check_size_limit("train.steps", train.steps, limits::kMaxSteps);
  LF_CHECK(train.seed >= 0, "train.seed must be >= 0, got {}", train.seed);
  LF_CHECK(train.micro_batch_size > 0, "train.micro_batch_size must be > 0, got {}", train.micro_batch_size);
  check_size_limit("train.micro_batch_size", train.micro_batch_size, limits::kMaxMicroBatchSize);
  LF_CHECK(train.seq_len >= 0, "train.seq_len must be >= 0 (0 means model.context_length), got {}", train.seq_len);
  LF_CHECK(seq_len() <= model.context_length, "train.seq_len ({}) exceeds model.context_length ({})", seq_len(),
           model.context_length);
  // Both factors are bounded by now; the product is checked before anyone allocates it.
  const int64_t per = checked_size_product("train.micro_batch_size · seq_len", train.micro_batch_size, seq_len(),
                                           limits::kMaxTokensPerMicroBatch,
                                           "lower train.micro_batch_size and raise train.batch_tokens instead");
  LF_CHECK(train.batch_tokens >= 0, "train.batch_tokens must be >= 0, got {}", train.batch_tokens);
  check_size_limit("train.batch_tokens", train.batch_tokens, limits::kMaxBatchTokens);
  if (train.batch_tokens > 0) {
    LF_CHECK(train.batch_tokens % per == 0,
             "train.batch_tokens ({}) must be a multiple of train.micro_batch_size · seq_len = {} (try {} or {})",
             train.batch_tokens, per, std::max<int64_t>(per, train.batch_tokens / per * per),
             (train.batch_tokens / per + 1) * per);
  }
  LF_CHECK(train.log_every > 0, "train.log_every must be > 0, got {}", train.log_every);
  LF_CHECK(train.max_bad_steps > 0, "train.max_bad_steps must be > 0, got {}", train.max_bad_steps);
  LF_CHECK(train.peak_tflops >= 0 && std::isfinite(train.peak_tflops),
           "train.peak_tflops must be a finite number >= 0, got {}", train.peak_tflops);
  LF_CHECK(!train.out_dir.empty(), "train.out_dir must not be empty");
  if (train.precision == Precision::Auto)
    train.precision = train.device.starts_with("cuda") ? Precision::BF16 : Precision::F32;
  LF_CHECK(train.loss_scale_init >= 1 && std::isfinite(train.loss_scale_init),
           "train.loss_scale_init must be a finite number >= 1, got {}", train.loss_scale_init);
  LF_CHECK(train.loss_scale_growth_interval > 0, "train.loss_scale_growth_interval must be > 0, got {}",
           train.loss_scale_growth_interval);
  LF_CHECK(optim.lr > 0 && std::isfinite(optim.lr), "optim.lr must be > 0, got {}", optim.lr);
  LF_CHECK(optim.min_lr >= 0 && optim.min_lr <= optim.lr, "optim.min_lr ({}) must be in [0, optim.lr = {}]",
           optim.min_lr, optim.lr);
  LF_CHECK(optim.warmup_steps >= 0, "optim.warmup_steps must be >= 0, got {}", optim.warmup_steps);
  check_size_limit("optim.warmup_steps", optim.warmup_steps, limits::kMaxSteps);
  LF_CHECK(optim.decay_steps >= 0, "optim.decay_steps must be >= 0, got {}", optim.decay_steps);
  check_size_limit("optim.decay_steps", optim.decay_steps, limits::kMaxSteps);
  LF_CHECK(decay_steps() >= optim.warmup_steps, "optim.decay_steps ({}) must be >= optim.warmup_steps ({})",
           decay_steps(), optim.warmup_steps);
  LF_CHECK(optim.beta1 >= 0 && optim.beta1 < 1, "optim.beta1 must be in [0, 1), got {}", optim.beta1);
  LF_CHECK(optim.beta2 >= 0 && optim.beta2 < 1, "optim.beta2 must be in [0, 1), got {}", optim.beta2);
  LF_CHECK(optim.eps > 0 && std::isfinite(optim.eps), "optim.eps must be a finite number > 0, got {}", optim.eps);
  LF_CHECK(optim.weight_decay >= 0 && std::isfinite(optim.weight_decay),
           "optim.weight_decay must be a finite number >= 0, got {}", optim.weight_decay);
  LF_CHECK(optim.grad_clip >= 0 && std::isfinite(optim.grad_clip),
           "optim.grad_clip must be a finite number >= 0 (0 disables clipping), got {}", optim.grad_clip);
  LF_CHECK(eval.every >= 0, "eval.every must be >= 0, got {}", eval.every);
  LF_CHECK(eval.max_batches >= 0, "eval.max_batches must be >= 0, got {}", eval.max_batches);
  LF_CHECK(eval.batch_size >= 0, "eval.batch_size must be >= 0, got {}", eval.batch_size);
  check_size_limit("eval.batch_size", eval.batch_size, limits::kMaxMicroBatchSize);
  checked_size_product("eval.batch_size · seq_len", eval_batch_size(), seq_len(), limits::kMaxTokensPerMicroBatch);
  LF_CHECK(checkpoint.every >= 0, "checkpoint.every must be >= 0, got {}", checkpoint.every);
  LF_CHECK(checkpoint.keep_last >= 1, "checkpoint.keep_last must be >= 1, got {}", checkpoint.keep_last);
  check_size_limit("checkpoint.keep_last", checkpoint.keep_last, limits::kMaxKeepLast);
  LF_CHECK(dist.zero >= 0 && dist.zero <= 2, "dist.zero must be 0, 1 or 2, got {}", dist.zero);
  LF_CHECK(dist.bucket_mb > 0 && dist.bucket_mb <= 4096 && std::isfinite(dist.bucket_mb),
           "dist.bucket_mb must be in (0, 4096], got {}", dist.bucket_mb);
  LF_CHECK(dist.timeout_s > 0 && std::isfinite(dist.timeout_s), "dist.timeout_s must be a finite number > 0, got {}",
           dist.timeout_s);
}

DType compute_dtype_for(Precision precision, bool on_gpu) {
  switch (precision) {
    case Precision::BF16: return DType::BF16;
    case Precision::F16: return DType::F16;
    case Precision::F32: return DType::F32;
    case Precision::Auto: break;
  }
  return on_gpu ? DType::BF16 : DType::F32;
}

DType RunConfig::compute_dtype() const { return compute_dtype_for(train.precision, train.device.starts_with("cuda")); }

int64_t RunConfig::accumulation_steps() const {
  return train.batch_tokens > 0 ? train.batch_tokens / tokens_per_micro_batch() : 1;
}

}  // namespace lmforge::train
