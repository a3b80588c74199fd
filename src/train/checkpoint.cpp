#include "train/checkpoint.h"

#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <unordered_set>

#include "ops/ops.h"
#include "core/file_util.h"
#include "train/hf_config.h"
#include "train/quantized_checkpoint.h"
#include "train/safetensors.h"

namespace lmforge::train {

namespace fs = std::filesystem;

namespace {

constexpr const char* kRequired[] = {"model.safetensors", "config.json", "optimizer.safetensors",
                                     "trainer_state.json", "config.toml"};
constexpr int kStateVersion = 1;

std::string checkpoints_root(const std::string& run_dir) { return (fs::path(run_dir) / "checkpoints").string(); }

// The N of "step_N", or -1.
int64_t step_of(const std::string& name) {
  if (!name.starts_with("step_") || name.size() == 5) return -1;
  int64_t n = 0;
  for (size_t i = 5; i < name.size(); ++i) {
    if (!std::isdigit(static_cast<unsigned char>(name[i]))) return -1;
    n = n * 10 + (name[i] - '0');
  }
  return n;
}

bool is_complete(const fs::path& dir) {
  std::error_code ec;
  for (const char* f : kRequired)
    if (!fs::is_regular_file(dir / f, ec)) return false;
  return true;
}

void remove_quietly(const fs::path& p) {
  std::error_code ec;
  fs::remove_all(p, ec);
}

}  // namespace

std::string trainer_state_json(const TrainerState& s, const optim::LrSchedule& sched) {
  nlohmann::ordered_json j;
  j["format"] = "lmforge-trainer-state";
  j["version"] = kStateVersion;
  j["step"] = s.step;
  j["tokens_seen"] = s.tokens_seen;
  j["sampler"] = {{"seed", s.sampler_seed}, {"position", s.sampler_position}};
  j["dropout_rng"] = {{"seed", s.dropout_rng.seed}, {"offset", s.dropout_rng.offset}};
  j["lr"] = s.lr;
  j["loss"] = s.loss;
  j["elapsed_seconds"] = s.elapsed_seconds;
  j["bad_steps"] = s.bad_steps;
  if (s.loss_scale > 0) j["loss_scale"] = {{"scale", s.loss_scale}, {"clean_steps", s.loss_scale_clean_steps}};
  j["schedule"] = {{"kind", optim::to_string(sched.kind)}, {"lr", sched.lr}, {"min_lr", sched.min_lr},
                   {"warmup_steps", sched.warmup_steps}, {"decay_steps", sched.decay_steps},
                   {"next_lr", sched.at(s.step)}};
  return j.dump(2) + "\n";
}

TrainerState parse_trainer_state(const std::string& text, const std::string& source) {
  TrainerState s;
  try {
    const auto j = nlohmann::json::parse(text);
    LF_CHECK(j.value("format", "") == "lmforge-trainer-state", "{}: not an lmforge trainer state", source);
    LF_CHECK(j.at("version").get<int>() == kStateVersion, "{}: unsupported trainer state version {}", source,
             j.at("version").dump());
    s.step = j.at("step").get<int64_t>();
    s.tokens_seen = j.at("tokens_seen").get<uint64_t>();
    s.sampler_seed = j.at("sampler").at("seed").get<uint64_t>();
    s.sampler_position = j.at("sampler").at("position").get<uint64_t>();
    s.dropout_rng.seed = j.at("dropout_rng").at("seed").get<uint64_t>();
    s.dropout_rng.offset = j.at("dropout_rng").at("offset").get<uint64_t>();
    s.lr = j.at("lr").get<double>();
    s.loss = j.at("loss").is_number() ? j.at("loss").get<double>() : 0.0;
    s.elapsed_seconds = j.at("elapsed_seconds").get<double>();
    s.bad_steps = j.at("bad_steps").get<int64_t>();
    if (j.contains("loss_scale")) {  // absent before f16 loss scaling, and in f32 / bf16 runs
      s.loss_scale = j.at("loss_scale").at("scale").get<double>();
      s.loss_scale_clean_steps = j.at("loss_scale").at("clean_steps").get<int64_t>();
    }
  } catch (const nlohmann::json::exception& e) {
    throw Error(fmt::format("{}: malformed trainer state ({}); the file is corrupted", source, e.what()));
  }
  LF_CHECK(s.step >= 0, "{}: negative step {}", source, s.step);
  LF_CHECK(s.loss_scale >= 0 && std::isfinite(s.loss_scale) && s.loss_scale_clean_steps >= 0,
           "{}: bad loss scale {} (clean steps {})", source, s.loss_scale, s.loss_scale_clean_steps);
  return s;
}

std::string save_checkpoint(const std::string& run_dir, const CheckpointContents& c, int64_t keep_last) {
  const fs::path root = checkpoints_root(run_dir);
  fs::create_directories(root);
  const std::string name = fmt::format("step_{}", c.state.step);
  const fs::path final_dir = root / name;
  const fs::path tmp = root / fmt::format(".tmp-{}-{}", name, ::getpid());
  remove_quietly(tmp);
  try {
    fs::create_directory(tmp);
    write_safetensors((tmp / "model.safetensors").string(), [&] {
      NamedTensors t;
      for (const auto& p : c.model.named_parameters()) t.push_back({p.name, p.tensor});
      for (const auto& [name, b] : c.model.named_buffers()) t.push_back({name, b});
      return t;
    }(), {{"lmforge.step", std::to_string(c.state.step)}});
    write_file_synced((tmp / "config.json").string(), hf_config_json(c.model.config(), c.eos_token_id));
    write_safetensors((tmp / "optimizer.safetensors").string(), c.optimizer.state_tensors(),
                      {{"lmforge.optimizer", "adamw"}, {"lmforge.optimizer_step", std::to_string(c.optimizer.step_count())}});
    write_file_synced((tmp / "trainer_state.json").string(), trainer_state_json(c.state, c.schedule));
    write_file_synced((tmp / "config.toml").string(), to_toml(c.config));
    if (c.tokenizer) {
      c.tokenizer->save_tokenizer_json((tmp / "tokenizer.json").string());
      fsync_file((tmp / "tokenizer.json").string());
    }
    fsync_directory(tmp.string());
    std::error_code ec;
    if (fs::exists(final_dir, ec)) {
      // A checkpoint of the same step (a rolled-back run passing it again): swap it out.
      const fs::path old = root / fmt::format(".old-{}-{}", name, ::getpid());
      remove_quietly(old);
      fs::rename(final_dir, old);
      fs::rename(tmp, final_dir);
      remove_quietly(old);
    } else {
      fs::rename(tmp, final_dir);
    }
    fsync_directory(root.string());
  } catch (const fs::filesystem_error& e) {
    remove_quietly(tmp);
    throw Error(fmt::format("writing checkpoint {} failed: {}", final_dir.string(), e.what()));
  } catch (...) {
    remove_quietly(tmp);
    throw;
  }
  prune_checkpoints(run_dir, keep_last);
  return final_dir.string();
}

void prune_checkpoints(const std::string& run_dir, int64_t keep_last) {
  const fs::path root = checkpoints_root(run_dir);
  // A checkpoint leaves the step_N namespace by one atomic rename before it is deleted, so a
  // kill during the deletion leaves a ".old-" directory (removed below by the next prune), never
  // a half-deleted step_N.
  auto all = list_checkpoints(run_dir);
  for (size_t i = 0; i + size_t(keep_last) < all.size(); ++i) {
    const fs::path doomed = root / fmt::format(".old-{}-{}", fs::path(all[i].second).filename().string(), ::getpid());
    std::error_code ec;
    fs::rename(all[i].second, doomed, ec);
    remove_quietly(ec ? fs::path(all[i].second) : doomed);
  }
  // Leftovers of killed writers and pruners: temporary and renamed-out directories, and step_N
  // directories older than the newest complete checkpoint that are not complete themselves (a
  // prune killed mid-way by a version that deleted in place).
  const std::string newest = latest_checkpoint(run_dir);
  const int64_t newest_step = newest.empty() ? -1 : step_of(fs::path(newest).filename().string());
  std::error_code ec;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const std::string n = e.path().filename().string();
    const int64_t step = step_of(n);
    if (n.starts_with(".tmp-") || n.starts_with(".old-") || (step >= 0 && step < newest_step && !is_complete(e.path())))
      remove_quietly(e.path());
  }
}

std::vector<std::pair<std::string, std::string>> incomplete_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<std::string, std::string>> out;
  const fs::path root = checkpoints_root(run_dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  const std::string newest = latest_checkpoint(run_dir);
  const int64_t newest_step = newest.empty() ? -1 : step_of(fs::path(newest).filename().string());
  std::vector<std::pair<int64_t, std::pair<std::string, std::string>>> found;
  for (const auto& e : fs::directory_iterator(root, ec)) {
    const int64_t step = step_of(e.path().filename().string());
    if (step <= newest_step || !e.is_directory(ec)) continue;
    for (const char* f : kRequired)
      if (!fs::is_regular_file(e.path() / f, ec)) {
        found.push_back({step, {e.path().string(), f}});
        break;
      }
  }
  std::sort(found.begin(), found.end());
  for (auto& [step, entry] : found) out.push_back(std::move(entry));
  return out;
}

std::vector<std::pair<int64_t, std::string>> list_checkpoints(const std::string& run_dir) {
  std::vector<std::pair<int64_t, std::string>> out;
  const fs::path root = checkpoints_root(run_dir);
  std::error_code ec;
  if (!fs::is_directory(root, ec)) return out;
  for (const auto& e : fs::directory_iterator(root)) {
    const int64_t step = step_of(e.path().filename().string());
    if (step >= 0 && e.is_directory() && is_complete(e.path())) out.push_back({step, e.path().string()});
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string latest_checkpoint(const std::string& run_dir) {
  auto all = list_checkpoints(run_dir);
  return all.empty() ? std::string() : all.back().second;
}

std::string resolve_checkpoint_dir(const std::string& path) {
  std::error_code ec;
  LF_CHECK(fs::exists(path, ec), "checkpoint {} does not exist", path);
  if (fs::is_regular_file(fs::path(path) / "model.safetensors", ec)) {
    if (fs::is_regular_file(fs::path(path) / kQuantizationFile, ec) ||
        fs::is_regular_file(fs::path(path) / kModelDirectoryFile, ec)) {
      // An inference checkpoint (train/quantized_checkpoint.h) or a model directory (lmforge
      // upcycle): the model alone.
      for (const char* f : {"config.json", "config.toml"})
        LF_CHECK(fs::is_regular_file(fs::path(path) / f, ec), "checkpoint {} is incomplete: {} is missing", path, f);
      return path;
    }
    for (const char* f : kRequired)
      LF_CHECK(fs::is_regular_file(fs::path(path) / f, ec), "checkpoint {} is incomplete: {} is missing", path, f);
    return path;
  }
  const std::string latest = latest_checkpoint(path);
  LF_CHECK(!latest.empty(), "{} is neither a checkpoint directory (with model.safetensors) nor a run directory "
           "with complete checkpoints under checkpoints/", path);
  return latest;
}

RunConfig read_checkpoint_config(const std::string& dir) {
  const std::string p = (fs::path(dir) / "config.toml").string();
  RunConfig config = parse_run_config(read_file(p), p);
  // config.json describes the same model for other tools (HF transformers); a checkpoint whose
  // two descriptions disagree has been edited or mixed up, and which one the weights follow is
  // unknown. The end-of-text ids depend on the tokenizer, not the model, and are left out.
  const std::string jp = (fs::path(dir) / "config.json").string();
  std::error_code ec;
  if (fs::is_regular_file(jp, ec)) {
    nlohmann::json stored, expected = nlohmann::json::parse(hf_config_json(config.model, -1));
    try {
      stored = nlohmann::json::parse(read_file(jp));
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not valid JSON ({}); the file is corrupted", jp, e.what()));
    }
    LF_CHECK(stored.is_object(), "{}: not a JSON object; the file is corrupted", jp);
    stored.erase("bos_token_id");
    stored.erase("eos_token_id");
    for (const auto& [key, value] : expected.items())
      LF_CHECK(stored.contains(key) && stored[key] == value, "{}: \"{}\" is {} but {} gives {}; the checkpoint's two "
               "model descriptions disagree", jp, key, stored.contains(key) ? stored[key].dump() : "missing", p,
               value.dump());
    for (const auto& [key, value] : stored.items())
      LF_CHECK(expected.contains(key), "{}: unexpected key \"{}\" (not part of the model {} describes)", jp, key, p);
  }
  return config;
}

void load_model_weights(const nn::Module& model, const std::string& path) {
  SafetensorsFile f(path);
  NoGradGuard no_grad;
  std::unordered_set<std::string> used;
  for (auto p : model.named_parameters()) {
    LF_CHECK(f.contains(p.name), "{}: tensor '{}' is missing (the checkpoint is for another model)", path, p.name);
    Tensor src = f.get_finite_float(p.name);
    LF_CHECK(src.shape() == p.tensor.shape(), "{}: tensor '{}' has shape {} but the model needs {}", path, p.name,
             shape_str(src.shape()), shape_str(p.tensor.shape()));
    copy_(p.tensor, src);
    p.tensor.bump_version();
    used.insert(p.name);
  }
  for (auto [name, b] : model.named_buffers()) {
    LF_CHECK(f.contains(name), "{}: tensor '{}' is missing (the checkpoint is for another model)", path, name);
    Tensor src = f.get(name);
    LF_CHECK(src.shape() == b.shape(), "{}: tensor '{}' has shape {} but the model needs {}", path, name,
             shape_str(src.shape()), shape_str(b.shape()));
    copy_(b, src);
    b.bump_version();
    used.insert(name);
  }
  for (const auto& n : f.names())
    LF_CHECK(used.count(n) || n == "lm_head.weight", "{}: tensor '{}' does not belong to this model", path, n);
}

void load_optimizer_state(optim::AdamW& opt, const std::string& dir) {
  const std::string path = (fs::path(dir) / "optimizer.safetensors").string();
  SafetensorsFile f(path);
  auto it = f.metadata().find("lmforge.optimizer_step");
  LF_CHECK(it != f.metadata().end(), "{}: metadata lmforge.optimizer_step is missing", path);
  int64_t step = 0;
  try {
    step = std::stoll(it->second);
  } catch (const std::exception&) {
    throw Error(fmt::format("{}: bad optimizer step '{}'", path, it->second));
  }
  NamedTensors moments;
  for (const auto& name : f.names()) moments.push_back({name, f.get_finite_float(name)});
  opt.load_state(moments, step, path);
}

TrainerState read_trainer_state(const std::string& dir) {
  const std::string p = (fs::path(dir) / "trainer_state.json").string();
  return parse_trainer_state(read_file(p), p);
}

LoadedModel load_checkpoint_model(const std::string& path, Device device, Precision precision) {
  LoadedModel out;
  out.dir = resolve_checkpoint_dir(path);
  out.config = read_checkpoint_config(out.dir);
  out.model = std::make_unique<nn::Transformer>(out.config.model, nn::TensorOptions{.device = device});
  const std::string weights = (fs::path(out.dir) / "model.safetensors").string();
  std::error_code quantized_ec;
  if (fs::is_regular_file(fs::path(out.dir) / kQuantizationFile, quantized_ec))
    load_quantized_model_weights(*out.model, weights);
  else
    load_model_weights(*out.model, weights);
  out.model->set_training(false);
  out.model->set_compute_dtype(compute_dtype_for(precision, !device.is_cpu()));
  const fs::path tj = fs::path(out.dir) / "tokenizer.json";
  std::error_code ec;
  if (fs::is_regular_file(tj, ec)) out.tokenizer = tok::Tokenizer::load(tj.string());
  return out;
}

}  // namespace lmforge::train
