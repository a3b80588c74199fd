// lmforge train: a model from a TOML config (train/config.h), with --set overrides, --resume
// and --device; --nproc N trains data parallel over N local ranks (docs/DISTRIBUTED.md).
//
// Multi-process runs: a process started by mpirun, torchrun or srun (dist/launch_env.h) joins
// its ranks (dist/process_group.h) and trains its share. `--nproc N` outside a launcher starts
// the ranks itself (dist/local_launch.h): on GPUs N copies of this process, one GPU each; on the
// CPU `mpirun -np N` of this command, since CPU ranks communicate through MPI.
#include <fmt/format.h>

#include <optional>

#include "backend/op_profile.h"
#include "cli/command.h"
#include "dist/launch_env.h"
#include "dist/local_launch.h"
#include "dist/process_group.h"
#include "train/trainer.h"

namespace lmforge::cli {
namespace {

struct TrainArgs {
  std::string config;
  std::vector<std::string> overrides;
  bool resume = false;
  std::string device;
  bool profile = false;
  int nproc = 0;  // 0: as the launcher says (one process without one)
};

void run(const TrainArgs& a) {
  std::vector<std::string> overrides = a.overrides;
  if (!a.device.empty()) overrides.push_back("train.device=" + a.device);
  train::RunConfig config = train::load_run_config(a.config, overrides);
  const dist::LaunchEnv env = dist::read_launch_env();
  LF_CHECK(a.nproc >= 0, "--nproc must be >= 1, got {}", a.nproc);
  if (env.launcher == dist::Launcher::None && a.nproc > 1) {
    if (Device::parse(config.train.device).is_cuda()) dist::run_local_ranks(a.nproc);
    else dist::exec_under_mpirun(a.nproc);
    return;
  }
  LF_CHECK(a.nproc == 0 || env.launcher == dist::Launcher::None || a.nproc == env.world_size,
           "--nproc {} but {} started {} ranks: drop --nproc under a launcher, or make them agree", a.nproc,
           dist::launcher_name(env.launcher), env.world_size);
  train::TrainOptions options;
  options.resume = a.resume;
  std::optional<dist::ProcessGroup> group;
  if (env.launcher != dist::Launcher::None) {
    group = dist::join_process_group(env, Device::parse(config.train.device), config.dist.timeout_s);
    config.train.device = group->device.str();
    options.communicator = group->communicator.get();
  }
  if (a.profile) op_profile::enable();
  const train::TrainSummary s = train::run_training(config, options);
  if (env.rank != 0) return;  // rank 0 reports for the run
  if (op_profile::enabled())
    fmt::print("\n# time by kernel (each call on an idle device; steps after the first, with evaluation and checkpoints)\n{}",
               op_profile::report());
  if (s.val_loss) {
    fmt::print("final: val loss {:.4f} nats/token (unigram entropy {:.4f}) | val perplexity {:.2f} | val bits/byte {}\n",
               *s.val_loss, s.unigram_entropy, *s.val_perplexity,
               s.val_bits_per_byte ? fmt::format("{:.4f}", *s.val_bits_per_byte) : std::string("n/a"));
  }
  fmt::print("run directory: {}\n", s.run_dir);
}

std::string keys_footer() {
  std::string out = "\nConfig keys (TOML sections [model] [data] [train] [optim] [eval] [checkpoint] [dist]; override any with "
                    "--set section.key=value):\n";
  for (const auto& [key, help] : train::config_keys()) out += fmt::format("  {:<28} {}\n", key, help);
  return out;
}

LMFORGE_COMMAND("train", "Train a model from a TOML config", [](CLI::App& sub) {
  auto args = std::make_shared<TrainArgs>();
  sub.add_option("--config", args->config, "run config (TOML); presets in configs/")->required()->check(
      CLI::ExistingFile);
  sub.add_option("--set", args->overrides, "override a config key: --set model.n_layers=12 (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub.add_flag("--resume", args->resume, "continue from the newest complete checkpoint in train.out_dir");
  sub.add_option("--device", args->device, "cpu | cuda | cuda:N (overrides train.device)");
  sub.add_option("--nproc", args->nproc,
                 "data parallel over N local ranks: one GPU each on cuda; on cpu the ranks run under mpirun "
                 "(docs/DISTRIBUTED.md)");
  sub.add_flag("--profile", args->profile,
               "time every kernel (synchronising after each; slows the run) and print where the time went "
               "(also LMFORGE_PROFILE=1)");
  sub.footer(keys_footer());
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
