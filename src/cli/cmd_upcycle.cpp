// lmforge upcycle: a Mixture-of-Experts model directory whose experts start as the FFN of a dense
// checkpoint (train/upcycle.h). Train it with `train.init_from = "OUTPUT"`; eval, score and
// generate load it as they load a checkpoint.
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "train/checkpoint.h"
#include "core/file_util.h"
#include "train/hf_config.h"
#include "train/safetensors.h"
#include "train/upcycle.h"

namespace lmforge::cli {
namespace {

namespace fs = std::filesystem;

struct UpcycleArgs {
  std::string checkpoint, config, output;
  std::vector<std::string> overrides;
  double router_std = 1e-3;
  int64_t seed = 0;
};

void run_upcycle(const UpcycleArgs& a) {
  train::RunConfig moe = train::load_run_config(a.config, a.overrides);
  const train::LoadedModel dense = train::load_checkpoint_model(a.checkpoint, Device::cpu(), train::Precision::F32);
  std::error_code ec;
  LF_CHECK(!fs::exists(a.output, ec), "upcycle: {} already exists; choose a new --output directory", a.output);
  Generator gen(uint64_t(a.seed));
  const auto model = train::upcycle(*dense.model, moe.model, gen, a.router_std);
  moe.model = model->config();

  write_directory_atomic(a.output, [&](const std::string& dir) {
    const fs::path tmp(dir);
    train::NamedTensors t;
    for (const auto& p : model->named_parameters()) t.push_back({p.name, p.tensor});
    for (const auto& [name, b] : model->named_buffers()) t.push_back({name, b});
    train::write_safetensors((tmp / "model.safetensors").string(), t, {{"lmforge.upcycled_from", dense.dir}});
    int64_t eos = -1;
    if (dense.tokenizer)
      if (const auto eot = dense.tokenizer->find_eot_id()) eos = *eot;
    write_file_synced((tmp / "config.json").string(), train::hf_config_json(moe.model, eos));
    write_file_synced((tmp / "config.toml").string(), train::to_toml(moe));
    write_file_synced((tmp / train::kModelDirectoryFile).string(),
                      fmt::format("{{\"upcycled_from\": {}}}\n", nlohmann::json(dense.dir).dump()));
    if (dense.tokenizer) {
      dense.tokenizer->save_tokenizer_json((tmp / "tokenizer.json").string());
      fsync_file((tmp / "tokenizer.json").string());
    }
  });
  fmt::print("upcycled {} ({} parameters) into {}: {} parameters, {} experts of width {} in {} of {} layers\n",
             dense.dir, dense.model->parameter_count(), a.output, model->parameter_count(), moe.model.n_experts,
             moe.model.d_ff_expert, moe.model.moe_layer_count(), moe.model.n_layers);
  fmt::print("train it with: lmforge train --config {} --set train.init_from=\"{}\"\n", a.config, a.output);
}

LMFORGE_COMMAND("upcycle", "turn a dense checkpoint into a Mixture-of-Experts model whose experts start as its FFN",
                [](CLI::App& sub) {
                  auto args = std::make_shared<UpcycleArgs>();
                  sub.add_option("--checkpoint", args->checkpoint, "dense checkpoint or run directory")->required();
                  sub.add_option("--config", args->config, "run config of the MoE model (TOML)")->required();
                  sub.add_option("--set", args->overrides, "override a config key (repeatable)");
                  sub.add_option("--output", args->output, "new model directory")->required();
                  sub.add_option("--router-std", args->router_std, "standard deviation of the initial router");
                  sub.add_option("--seed", args->seed, "seed of the router's initialisation");
                  sub.callback([args] { run_upcycle(*args); });
                });

}  // namespace
}  // namespace lmforge::cli
