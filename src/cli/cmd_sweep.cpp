// lmforge sweep --config BASE.toml --vary KEY=V1,V2 [--vary ...] [--steps N] --output DIR: the
// variants of a config trained one after another and compared in one report (train/sweep.h).
#include <fmt/format.h>

#include "cli/command.h"
#include "core/error.h"
#include "core/file_util.h"
#include "train/sweep.h"

namespace lmforge::cli {
namespace {

struct SweepArgs {
  std::string config;
  std::vector<std::string> vary;
  std::vector<std::string> overrides;
  int64_t steps = 0;
  std::string output;
};

void run(const SweepArgs& a) {
  std::vector<train::SweepAxis> axes;
  for (const auto& v : a.vary) axes.push_back(train::parse_sweep_axis(v));
  std::vector<std::string> overrides = a.overrides;
  if (a.steps > 0) overrides.push_back(fmt::format("train.steps={}", a.steps));
  const train::SweepPlan plan = train::plan_sweep(read_file(a.config, "sweep base config"), a.config, overrides, axes, a.output);
  fmt::print("sweep: {} run(s) of {} into {}\n", plan.variants.size(), a.config, a.output);
  const auto results = train::run_sweep(plan, [](const std::string& line) {
    fmt::print("{}\n", line);
    std::fflush(stdout);
  });
  int failed = 0;
  for (const auto& r : results) failed += !r.ok;
  fmt::print("report: {}/report.html\n", a.output);
  LF_CHECK(failed == 0, "sweep: {} of {} run(s) failed (see above); the report shows what they wrote", failed,
           results.size());
}

LMFORGE_COMMAND("sweep", "Train variants of a config (the product of --vary lists) and compare them in one report",
                [](CLI::App& sub) {
  auto args = std::make_shared<SweepArgs>();
  sub.add_option("--config", args->config, "the base run config (TOML)")->required()->check(CLI::ExistingFile);
  sub.add_option("--vary", args->vary,
                 "a key and its values: --vary optim.lr=1e-3,3e-3 (repeatable; every combination runs)")
      ->required()
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub.add_option("--set", args->overrides, "override a base config key for every run (repeatable)")
      ->expected(1)
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeAll);
  sub.add_option("--steps", args->steps, "train.steps of every run")->check(CLI::PositiveNumber);
  sub.add_option("--output,-o", args->output, "the sweep's directory: one run directory per variant, report.html")
      ->required();
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
