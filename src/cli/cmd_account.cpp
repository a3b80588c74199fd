// lmforge account: parameters, FLOPs, memory and predicted step time of a config, and the KV
// cache of decoding with it (bytes per token, and the context that fits a given memory); with
// --world-size N, each rank's memory and the bytes communicated per step in data parallel.
#include <cmath>
#include <cstdio>
#include <string_view>

#include "accounting/accounting.h"
#include "accounting/data_parallel_cost.h"
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
  std::string memory;               // e.g. "80GiB"; empty: no fit
  std::string inference_precision;  // f32 | bf16 | f16; empty: the config's compute dtype
  int64_t world_size = 0;           // data parallel ranks; 0: no data-parallel section
  int zero = -1;                    // -1: the config's dist.zero
};

// "80GiB", "80 GB", "512MiB", "1.5TiB", "1000000" (bytes) -> bytes. Binary (KiB, MiB, GiB, TiB)
// and decimal (KB, MB, GB, TB) units.
int64_t parse_memory(const std::string& text) {
  std::string_view s = text;
  size_t end = 0;
  while (end < s.size() && ((s[end] >= '0' && s[end] <= '9') || s[end] == '.')) ++end;
  std::string_view unit = s.substr(end);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  double value = 0;
  bool ok = end > 0 && end <= 20;
  if (ok) {
    try {
      size_t used = 0;
      value = std::stod(std::string(s.substr(0, end)), &used);
      ok = used == end;
    } catch (const std::exception&) {
      ok = false;
    }
  }
  const std::pair<std::string_view, double> units[] = {
      {"", 1.0},      {"B", 1.0},     {"KiB", 0x1p10}, {"MiB", 0x1p20}, {"GiB", 0x1p30}, {"TiB", 0x1p40},
      {"KB", 1e3},    {"MB", 1e6},    {"GB", 1e9},     {"TB", 1e12}};
  double scale = 0;
  for (const auto& [name, factor] : units)
    if (unit == name) scale = factor;
  LF_CHECK(ok && scale > 0, "--memory: \"{}\" is not a size such as 80GiB, 512MiB, 40GB or a number of bytes", text);
  const double bytes = value * scale;
  LF_CHECK(std::isfinite(bytes) && bytes >= 1 && bytes < 0x1p62, "--memory: {} is not a size between 1 byte and 4 EiB",
           text);
  return int64_t(bytes);
}

void run_account(const AccountArgs& a) {
  train::RunConfig rc = train::load_run_config(a.config, a.overrides);
  DType inference_dtype = rc.compute_dtype();
  if (!a.inference_precision.empty()) {
    LF_CHECK(a.inference_precision == "f32" || a.inference_precision == "bf16" || a.inference_precision == "f16",
             "--inference-precision must be f32, bf16 or f16, got \"{}\"", a.inference_precision);
    inference_dtype = parse_dtype(a.inference_precision);
  }
  const int64_t memory = a.memory.empty() ? 0 : parse_memory(a.memory);
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
  std::fputs(accounting::format_kv_cache_report(rc.model, inference_dtype, memory).c_str(), stdout);
  if (a.world_size > 0 || a.zero >= 0) {
    const int64_t world = a.world_size > 0 ? a.world_size : 1;
    const int zero = a.zero >= 0 ? a.zero : int(rc.dist.zero);
    const auto cost = accounting::data_parallel_cost(rc.model, mo, world, zero, int64_t(rc.dist.bucket_mb * 1024 * 1024));
    std::fputs(accounting::format_data_parallel_report(cost, world, zero).c_str(), stdout);
  }
}

LMFORGE_COMMAND("account", "Parameters, FLOPs per token, memory and predicted step time of a config",
                [](CLI::App& sub) {
                  auto a = std::make_shared<AccountArgs>();
                  sub.add_option("--config", a->config, "Run config (TOML)")->required();
                  sub.add_option("--set", a->overrides, "Override a key: section.key=value (repeatable)");
                  sub.add_option("--batch", a->batch, "Micro-batch size (default: the config's)");
                  sub.add_option("--peak-tflops", a->peak_tflops, "Peak matmul TFLOP/s for the time prediction");
                  sub.add_flag("--measure-peak", a->measure_peak, "Measure this machine's matmul peak first");
                  sub.add_option("--world-size", a->world_size,
                                 "Data parallel over N ranks: memory per rank and bytes communicated per step");
                  sub.add_option("--zero", a->zero, "ZeRO stage 0, 1 or 2 with --world-size (default: dist.zero)");
                  sub.add_option("--memory", a->memory,
                                 "Memory for inference (e.g. 80GiB): the KV-cache context that fits beside the weights");
                  sub.add_option("--inference-precision", a->inference_precision,
                                 "dtype of the weights and KV cache at inference: f32 | bf16 | f16 (default: the "
                                 "config's compute dtype)");
                  sub.callback([a] { run_account(*a); });
                });

}  // namespace
}  // namespace lmforge::cli
