// Training throughput of `lmforge train` itself on one GPU, in the shapes and conventions of the
// PyTorch GPU peer (bench/peers/gpu/torch_peer.py, `train --model gpt2|llama|moe`):
//
//   gpt2   12 layers, d 768, 12 heads, vocab 50304, T 1024, LayerNorm, GELU (tanh), learned
//          positions, biases on every linear and LayerNorm, tied embeddings; batch 64 x 1024
//   llama  24 layers, d 1024, 16 heads / 4 KV heads, SwiGLU d_ff 2816, RoPE, RMSNorm, no biases,
//          vocab 32000 untied, T 2048; batch 16 x 2048
//   moe    the llama shape with every FFN a Mixture of Experts: 64 routed experts of d_ff 704,
//          top-6 softmax gates (not renormalised), 2 shared experts; batch 8 x 2048. MFU and
//          FLOPs count the active parameters (router, 6 routed and 2 shared experts).
//
// Weights normal std 0.02 (no residual scaling), uniform random token ids (gpt2: below 50257, as
// the peer draws them), AdamW (0.9, 0.95, eps 1e-8, lr 3e-4 constant, weight decay 0.1 on every
// matrix, embeddings included, as the peer's 2-D parameter group), grad-norm clip 1.0.
//
//   bench_train_gpu --model gpt2|llama|moe [--batch B] [--seq T] [--precision bf16|f16|f32|auto]
//                   [--recompute-blocks 0|1]
//                   [--steps 10] [--warmup 3] [--device cuda:0]
//
// Side by side with the peer, in one command on the GPU machine:
//
//   python3 torch_peer.py ceil
//   python3 torch_peer.py train --model gpt2 --batch 64 --seq 1024 --peak-measured <ceil TFLOP/s>
//   build/bench/bench_train_gpu --model gpt2 --batch 64 --seq 1024
//   (and the same with --model llama --batch 16 --seq 2048)
//
// The measured path is the trainer's own (train::run_training on a TOML config): a random-token
// shard is written to a temporary directory, the run logs every step to metrics.jsonl, and this
// program reads each step's tokens_per_s and peak_memory_bytes from there. Start-up stays out of
// the timed steps: the matmul peak is measured here before the run and handed to the trainer
// (train.peak_tflops, so it does not measure again), the allocator's peak is reset after it,
// the lone shard has no validation split, and no checkpoint is written (checkpoint.every = 0,
// checkpoint.at_end = false). The first `warmup` steps are dropped; the median of the rest is
// reported. A step's time is the trainer's: host wall clock from sampling the batch to the
// optimizer's launch. The step waits on the device (the loss and the gradient norm are read
// back), so in steady state it spans the device's work of one step, as the peer's CUDA events do.
//
// FLOPs per token are the peer's: 6·N + 12·L·d·T, N the weights taking part in matmuls (every
// projection, the LM head once; not the token lookup of an untied model, positions, norms or
// biases). MFU is given against the bf16 matmul peak measured here (an 8192³ GEMM on a GPU, as
// the peer's `ceil`) and against the H200's 989.4 TFLOP/s datasheet number. Prints a table and
// one `RESULT {json}` line with the peer's key names.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "accounting/accounting.h"
#include "backend/op_profile.h"
#include "core/allocator.h"
#include "data/shard.h"
#include "ops/ops.h"
#include "train/config.h"
#include "train/trainer.h"

using namespace lmforge;
namespace fs = std::filesystem;

namespace {

constexpr double kDatasheetBf16 = 989.4e12;  // H200 dense bf16, FLOP/s

struct Args {
  std::string model = "gpt2";
  int64_t batch = 0, seq = 0;  // 0: the peer's default for the model
  std::string precision = "bf16";
  int steps = 10, warmup = 3;
  std::string device = "cuda";
  bool recompute_blocks = false;
};

Args parse_args(int argc, char** argv) {
  Args a;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    LF_CHECK(i + 1 < argc, "{} needs a value", flag);
    const std::string v = argv[++i];
    if (flag == "--model") a.model = v;
    else if (flag == "--batch") a.batch = std::stoll(v);
    else if (flag == "--seq") a.seq = std::stoll(v);
    else if (flag == "--precision") a.precision = v;
    else if (flag == "--steps") a.steps = std::stoi(v);
    else if (flag == "--warmup") a.warmup = std::stoi(v);
    else if (flag == "--device") a.device = v;
    else if (flag == "--recompute-blocks") a.recompute_blocks = v == "1" || v == "true";
    else throw Error(fmt::format("unknown argument {} (flags: --model gpt2|llama|moe, --batch, --seq, --precision, "
                                 "--steps, --warmup, --device, --recompute-blocks)", flag));
  }
  LF_CHECK(a.model == "gpt2" || a.model == "llama" || a.model == "moe", "--model must be gpt2, llama or moe, got {}",
           a.model);
  LF_CHECK(a.precision == "auto" || a.precision == "f32" || a.precision == "bf16" || a.precision == "f16",
           "--precision must be auto, f32, bf16 or f16, got {}", a.precision);
  LF_CHECK(a.steps > 0 && a.warmup >= 0, "--steps must be > 0 and --warmup >= 0");
  if (a.seq == 0) a.seq = a.model == "gpt2" ? 1024 : 2048;
  if (a.batch == 0) a.batch = a.model == "gpt2" ? 64 : a.model == "moe" ? 8 : 16;
  LF_CHECK(a.batch > 0 && a.seq > 0, "--batch and --seq must be > 0");
  return a;
}

// The [model] section of the peer's model (its context covers at least the sequence).
std::string model_toml(const Args& a) {
  if (a.model == "gpt2")
    return fmt::format(R"([model]
vocab_size = 50304
context_length = {}
d_model = 768
n_layers = 12
n_heads = 12
d_ff = 3072
norm = "layernorm"
ffn = "gelu"
position = "learned"
bias = true
tied_embeddings = true
init = "normal"
init_std = 0.02
norm_eps = 1e-5
)", std::max<int64_t>(a.seq, 1024));
  return fmt::format(R"([model]
vocab_size = 32000
context_length = {}
d_model = 1024
n_layers = 24
n_heads = 16
n_kv_heads = 4
head_dim = 64
d_ff = 2816
norm = "rmsnorm"
ffn = "swiglu"
position = "rope"
rope_theta = 10000.0
bias = false
tied_embeddings = false
init = "normal"
init_std = 0.02
norm_eps = 1e-5
{})", std::max<int64_t>(a.seq, 2048),
                     // The peer's moe: every FFN of the llama shape as 64 routed experts of width 704,
                     // top-6 softmax gates without renormalisation, 2 shared experts.
                     a.model == "moe" ? "n_experts = 64\nd_ff_expert = 704\ntop_k = 6\nn_shared_experts = 2\n"
                                        "router = \"softmax_topk\"\nnormalize_gates = false\n"
                                      : "");
}

bool config_has_key(const std::string& key) {
  for (const auto& [k, help] : train::config_keys())
    if (k == key) return true;
  return false;
}

// train.precision comes from the mixed-precision trainer; without it every run is f32.
std::string precision_line(const std::string& precision) {
  if (config_has_key("train.precision")) return fmt::format("precision = \"{}\"\n", precision);
  LF_CHECK(precision == "f32", "this build has no train.precision (mixed precision); run with --precision f32");
  return "";
}

std::string run_toml(const Args& a, const std::string& shard, const std::string& out_dir) {
  return model_toml(a) + fmt::format(R"(
[data]
path = "{}"

[train]
seed = 1337
steps = {}
micro_batch_size = {}
seq_len = {}
device = "{}"
out_dir = "{}"
log_every = 1
recompute_blocks = {}
{}
[optim]
lr = 3e-4
min_lr = 3e-4
schedule = "constant"
warmup_steps = 0
beta1 = 0.9
beta2 = 0.95
eps = 1e-8
weight_decay = 0.1
grad_clip = 1.0
decay_embeddings = true

[eval]
every = 0

[checkpoint]
every = 0
at_end = false
)", shard, a.warmup + a.steps, a.batch, a.seq, a.device, out_dir, a.recompute_blocks ? "true" : "false",
                                     precision_line(a.precision));
}

// One shard of uniform random ids below `max_id`, enough for every step to read fresh windows.
// data.path names the file itself: a lone shard has no validation split.
void write_random_shard(const std::string& path, int64_t vocab, int64_t max_id, int64_t n_tokens) {
  data::ShardWriter w(path, {.bytes_per_token = data::bytes_per_token_for_vocab(size_t(vocab)),
                             .vocab_size = uint32_t(vocab)});
  Generator g(2024);
  const std::vector<int64_t> ids = to_vector<int64_t>(randint({n_tokens}, 0, max_id, g));
  w.append(std::vector<uint32_t>(ids.begin(), ids.end()));
  w.close();
}

// N of the peer's 6·N: its matmul_params() written out for this config. For gpt2 every 2-D
// parameter but the position table (the tied head counted once); for llama the head, qkv, o and
// the MLP of every block (no token lookup).
// For moe the active parameters: the router, top_k routed and the shared experts.
int64_t peer_matmul_params(const nn::ModelConfig& c) {
  const int64_t d = c.d_model, hd = c.head_dim;
  const int64_t attention = d * (c.n_heads + 2 * c.n_kv_heads) * hd + c.n_heads * hd * d;
  const int64_t mats = c.ffn == nn::FfnKind::SwiGLU ? 3 : 2;
  const int64_t mlp = c.n_experts > 0 ? c.n_experts * d + (c.top_k + c.n_shared_experts) * mats * d * c.d_ff_expert
                                      : mats * d * c.d_ff;
  return c.vocab_size * d + c.n_layers * (attention + mlp);
}

struct StepRecord {
  int64_t step = 0;
  double loss = 0, tokens_per_s = 0, elapsed_s = 0;
  int64_t peak_memory_bytes = 0;
};

std::vector<StepRecord> read_step_metrics(const std::string& path) {
  std::ifstream in(path);
  LF_CHECK(in.good(), "cannot read {}", path);
  std::vector<StepRecord> out;
  for (std::string line; std::getline(in, line);) {
    const auto j = nlohmann::json::parse(line);
    if (!j.contains("tokens_per_s")) continue;
    out.push_back({.step = j.at("step").get<int64_t>(), .loss = j.at("loss").get<double>(),
                   .tokens_per_s = j.at("tokens_per_s").get<double>(), .elapsed_s = j.at("elapsed_s").get<double>(),
                   .peak_memory_bytes = j.at("peak_memory_bytes").get<int64_t>()});
  }
  return out;
}

// Removes the temporary directory however the program leaves.
struct TempDir {
  std::string path;
  explicit TempDir(std::string p) : path(std::move(p)) {
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

double round_to(double v, int digits) {
  const double s = std::pow(10.0, digits);
  return std::round(v * s) / s;
}

}  // namespace

int main(int argc, char** argv) try {
  const Args a = parse_args(argc, argv);
  const Device device = Device::parse(a.device);
  const TempDir tmp((fs::temp_directory_path() / fmt::format("lmforge_bench_train_gpu_{}", ::getpid())).string());
  const std::string shard = tmp.path + "/train_000000.bin", out_dir = tmp.path + "/run";

  train::RunConfig config = train::parse_run_config(run_toml(a, shard, out_dir), "bench_train_gpu");
  const nn::ModelConfig& mc = config.model;
  // The peak before the run, handed to it; then the allocator's peak statistic restarts.
  const double peak = accounting::measure_matmul_peak(device, DType::BF16);
  config.train.peak_tflops = peak / 1e12;
  allocator_for(device).reset_peak();
  op_profile::reset();  // LMFORGE_PROFILE=1: the profile covers the training run only

  const int64_t total_steps = a.warmup + a.steps, tokens_per_step = a.batch * a.seq;
  write_random_shard(shard, mc.vocab_size, a.model == "gpt2" ? 50257 : mc.vocab_size,
                     total_steps * tokens_per_step + a.seq + 1);

  const int64_t n_matmul = peer_matmul_params(mc);
  LF_CHECK(n_matmul == accounting::count_parameters(mc).active_matmul,
           "the peer's matmul parameter count ({}) differs from accounting's ({})", n_matmul,
           accounting::count_parameters(mc).active_matmul);
  const double flops_per_token = 6.0 * double(n_matmul) + 12.0 * double(mc.n_layers * mc.d_model * a.seq);

  std::fprintf(stderr, "bf16 matmul peak %.1f TFLOP/s; training %lld steps of %lld tokens...\n", peak / 1e12,
               static_cast<long long>(total_steps), static_cast<long long>(tokens_per_step));
  const auto t0 = std::chrono::steady_clock::now();
  const train::TrainSummary summary = train::run_training(config, {.quiet = true});
  const double run_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  const std::vector<StepRecord> steps = read_step_metrics(out_dir + "/metrics.jsonl");
  LF_CHECK(int64_t(steps.size()) == total_steps, "metrics.jsonl holds {} training lines, expected {}", steps.size(),
           total_steps);
  std::vector<double> ms;
  int64_t peak_bytes = 0;
  for (const auto& s : steps) {
    peak_bytes = std::max(peak_bytes, s.peak_memory_bytes);
    if (s.step > a.warmup) ms.push_back(1e3 * double(tokens_per_step) / s.tokens_per_s);
  }
  std::vector<double> sorted = ms;
  std::sort(sorted.begin(), sorted.end());
  const double median_ms = sorted[sorted.size() / 2];
  double mean_ms = 0;
  for (double v : ms) mean_ms += v / double(ms.size());
  const double tps = double(tokens_per_step) / (median_ms / 1e3);
  const double achieved = flops_per_token * tps;
  const double first_step_s = steps.front().elapsed_s;

  std::printf("lmforge train on %s: %s, batch %lld x %lld, precision %s, %d warm-up + %d timed steps\n",
              device.str().c_str(), a.model.c_str(), static_cast<long long>(a.batch), static_cast<long long>(a.seq),
              a.precision.c_str(), a.warmup, a.steps);
  std::printf("  %-34s %lld (%lld in matmuls)\n", "parameters", static_cast<long long>(mc.parameter_count()),
              static_cast<long long>(n_matmul));
  std::printf("  %-34s %.4g\n", "FLOPs per token (6N + 12LdT)", flops_per_token);
  std::printf("  %-34s %.2f ms (mean %.2f, min %.2f, max %.2f)\n", "step, median", median_ms, mean_ms, sorted.front(),
              sorted.back());
  std::printf("  %-34s %.0f\n", "tokens/s", tps);
  std::printf("  %-34s %.1f TFLOP/s\n", "achieved", achieved / 1e12);
  std::printf("  %-34s %.1f%% of %.1f TFLOP/s\n", "MFU, measured bf16 matmul peak", 100 * achieved / peak,
              peak / 1e12);
  std::printf("  %-34s %.1f%% of %.1f TFLOP/s\n", "MFU, datasheet", 100 * achieved / kDatasheetBf16,
              kDatasheetBf16 / 1e12);
  std::printf("  %-34s %.2f GiB\n", "peak memory (allocator)", double(peak_bytes) / double(1ll << 30));
  std::printf("  %-34s %.1f s; whole run %.1f s\n", "first step", first_step_s, run_s);
  std::printf("  %-34s %.3f -> %.3f\n", "loss, first -> last", steps.front().loss, steps.back().loss);

  const nlohmann::ordered_json result{
      {"item", "train"},
      {"impl", "lmforge"},
      {"model", a.model},
      {"precision", a.precision},
      {"batch", a.batch},
      {"seq", a.seq},
      {"tokens_per_step", tokens_per_step},
      {"params_total", mc.parameter_count()},
      {"params_matmul_active", n_matmul},
      {"flops_per_token", flops_per_token},
      {"step_ms_median", round_to(median_ms, 2)},
      {"step_ms_mean", round_to(mean_ms, 2)},
      {"step_ms_min", round_to(sorted.front(), 2)},
      {"step_ms_max", round_to(sorted.back(), 2)},
      {"tokens_per_s", std::llround(tps)},
      {"tflops", round_to(achieved / 1e12, 1)},
      {"mfu_datasheet", round_to(achieved / kDatasheetBf16, 4)},
      {"mfu_measured", round_to(achieved / peak, 4)},
      {"peak_measured_tflops", round_to(peak / 1e12, 1)},
      {"first_step_s", round_to(first_step_s, 1)},
      {"loss_first", round_to(steps.front().loss, 3)},
      {"loss_last", round_to(steps.back().loss, 3)},
      {"max_mem_gib", round_to(double(peak_bytes) / double(1ll << 30), 2)},
      {"steps_done", summary.steps_done},
  };
  std::printf("RESULT %s\n", result.dump().c_str());
  // LMFORGE_PROFILE=1: where the time went, by kernel (every call synchronised, so the step
  // times above are then not the throughput).
  if (op_profile::enabled()) std::printf("\n%s", op_profile::report(50).c_str());
  return 0;
} catch (const std::exception& e) {
  std::fprintf(stderr, "error: %s\n", e.what());
  return 1;
}
