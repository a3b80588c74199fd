// lmforge account: parameters, FLOPs, memory and predicted step time of a config.
#include <cmath>
#include <cstdio>

#include "accounting/accounting.h"
#include "cli/command.h"
#include "core/checked_math.h"
#include "train/config.h"
#include "train/config_limits.h"

namespace lmforge::cli {
namespace {

struct AccountArgs {
  std::string config;
  std::vector<std::string> overrides;
  int64_t batch = 0;
  double peak_tflops = 0;
  bool measure_peak = false;
};

void run_account(const AccountArgs& a) {
  train::RunConfig rc = train::load_run_config(a.config, a.overrides);
  LF_CHECK(a.batch >= 0, "--batch must be >= 0 (0: the config's micro-batch), got {}", a.batch);
  check_size_limit("--batch", a.batch, train::limits::kMaxMicroBatchSize);
  checked_size_product("--batch · seq_len", a.batch, rc.seq_len(), train::limits::kMaxTokensPerMicroBatch);
  LF_CHECK(a.peak_tflops >= 0 && std::isfinite(a.peak_tflops), "--peak-tflops must be a finite number >= 0, got {}",
           a.peak_tflops);
  accounting::MemoryOptions mo{.micro_batch_size = a.batch > 0 ? a.batch : rc.train.micro_batch_size,
                               .seq_len = rc.seq_len(), .compute_dtype = rc.compute_dtype(),
                               .recompute_blocks = rc.train.recompute_blocks};
  double peak = a.peak_tflops > 0 ? a.peak_tflops * 1e12 : rc.train.peak_tflops * 1e12;
  if (a.measure_peak || peak <= 0) {
    Device dev = Device::parse(rc.train.device);
    peak = accounting::measure_matmul_peak(dev, rc.compute_dtype());
    std::printf("measured matmul peak on %s: %.1f GFLOP/s (%s)\n", dev.str().c_str(), peak / 1e9,
                std::string(dtype_name(rc.compute_dtype())).c_str());
  }
  // Tokens per optimizer step: the (possibly overridden) micro-batch times the accumulation.
  const int64_t tokens = checked_size_product("tokens per optimizer step (--batch · seq_len · accumulation steps)",
                                              mo.micro_batch_size * rc.seq_len(), rc.accumulation_steps(),
                                              train::limits::kMaxBatchTokens);
  std::fputs(accounting::format_report(rc.model, mo, tokens, rc.train.steps, peak).c_str(), stdout);
}

LMFORGE_COMMAND("account", "Parameters, FLOPs per token, memory and predicted step time of a config",
                [](CLI::App& sub) {
                  auto a = std::make_shared<AccountArgs>();
                  sub.add_option("--config", a->config, "Run config (TOML)")->required();
                  sub.add_option("--set", a->overrides, "Override a key: section.key=value (repeatable)");
                  sub.add_option("--batch", a->batch, "Micro-batch size (default: the config's)");
                  sub.add_option("--peak-tflops", a->peak_tflops, "Peak matmul TFLOP/s for the time prediction");
                  sub.add_flag("--measure-peak", a->measure_peak, "Measure this machine's matmul peak first");
                  sub.callback([a] { run_account(*a); });
                });

}  // namespace
}  // namespace lmforge::cli
