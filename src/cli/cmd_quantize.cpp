// lmforge quantize: weight-only quantization of a checkpoint (int8, fp8, bf16, f16) into an
// inference checkpoint that eval, score, generate and serve load directly; with --data, the
// perplexity and bits per byte before and after on held-out shards.
#include <fmt/format.h>

#include <filesystem>

#include "cli/command.h"
#include "infer/quantize.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/evaluate.h"
#include "train/quantized_checkpoint.h"

namespace lmforge::cli {
namespace {

namespace fs = std::filesystem;

struct QuantizeArgs {
  std::string checkpoint;
  std::string to = "int8";
  std::string output;
  int64_t group_size = 0;
  std::string data;
  int64_t batch_size = 8;
  int64_t max_batches = 0;
};

// The val_*.bin shards of a directory when it has them, else all of them (as lmforge eval).
train::TokenShards open_shards(const std::string& path) {
  std::error_code ec;
  if (fs::is_directory(path, ec))
    for (const auto& e : fs::directory_iterator(path))
      if (e.path().filename().string().starts_with("val_")) return train::TokenShards::open(path, "val_");
  return train::TokenShards::open(path, "");
}

void print_eval(const char* label, const train::EvalResult& r) {
  fmt::print("{:<7} perplexity {:.4f}  loss {:.5f}", label, r.perplexity, r.loss);
  if (r.bits_per_byte) fmt::print("  bits/byte {:.5f}", *r.bits_per_byte);
  fmt::print("\n");
}

void run(const QuantizeArgs& a) {
  const infer::QuantizeOptions options{.format = infer::parse_quant_format(a.to), .group_size = a.group_size};
  LF_CHECK(a.group_size >= 0, "--group-size must be >= 0 (0: one scale per output channel), got {}", a.group_size);
  LF_CHECK(a.group_size == 0 || options.format == infer::QuantFormat::Int8 || options.format == infer::QuantFormat::Fp8,
           "--group-size applies to int8 and fp8 only");
  const std::string dir = train::resolve_checkpoint_dir(a.checkpoint);
  std::error_code ec;
  LF_CHECK(!fs::exists(fs::path(dir) / train::kQuantizationFile, ec),
           "checkpoint {} is quantized already; quantize the original checkpoint", dir);
  train::LoadedModel m = train::load_checkpoint_model(dir, Device::cpu(), train::Precision::F32);
  const auto& mc = m.model->config();

  std::optional<train::TokenShards> shards;
  std::vector<uint32_t> bytes;
  auto evaluate = [&] {
    train::ValidationBatches batches(*shards, mc.context_length, a.batch_size, a.max_batches);
    return train::evaluate(*m.model, batches, a.batch_size, mc.context_length, bytes.empty() ? nullptr : &bytes);
  };
  std::optional<train::EvalResult> before;
  if (!a.data.empty()) {
    LF_CHECK(a.batch_size > 0, "--batch-size must be > 0");
    shards = open_shards(a.data);
    shards->validate_ids(mc.vocab_size);
    if (m.tokenizer) bytes = train::token_byte_lengths(*m.tokenizer, mc.vocab_size);
    before = evaluate();
  }
  const infer::QuantizeStats stats = infer::quantize_model(*m.model, options);
  fmt::print("quantized {} linear weights to {}{}\n", stats.layers, a.to,
             a.group_size > 0 ? fmt::format(" (groups of {})", a.group_size) : std::string());
  if (before) {
    const train::EvalResult after = evaluate();
    fmt::print("data {}: {} tokens\n", a.data, after.tokens);
    print_eval("before", *before);
    print_eval("after", after);
    fmt::print("perplexity change {:+.3f}%\n", 100.0 * (after.perplexity / before->perplexity - 1.0));
  }
  train::save_quantized_checkpoint(*m.model, a.to, a.group_size, dir, a.output);
  fmt::print("parameters {:.2f} MiB -> {:.2f} MiB ({:.2f} MiB saved, {:.1f}% of the original)\n",
             stats.bytes_before / 1048576.0, stats.bytes_after / 1048576.0,
             (stats.bytes_before - stats.bytes_after) / 1048576.0, 100.0 * stats.bytes_after / stats.bytes_before);
  fmt::print("wrote {}\n", a.output);
}

LMFORGE_COMMAND("quantize", "Quantize a checkpoint's linear weights (int8, fp8, bf16, f16) for inference",
                [](CLI::App& sub) {
  auto args = std::make_shared<QuantizeArgs>();
  sub.add_option("--checkpoint", args->checkpoint, "checkpoint directory (or a run directory: its newest)")->required();
  sub.add_option("--to", args->to, "int8 | fp8 | bf16 | f16")
      ->check(CLI::IsMember({"int8", "fp8", "bf16", "f16"}))
      ->capture_default_str();
  sub.add_option("--output", args->output, "directory to write (must not exist)")->required();
  sub.add_option("--group-size", args->group_size, "int8 / fp8: inputs per scale (0: one per output channel)")
      ->capture_default_str();
  sub.add_option("--data", args->data, "token shards to measure perplexity on before and after");
  sub.add_option("--batch-size", args->batch_size, "sequences per evaluation batch")->capture_default_str();
  sub.add_option("--max-batches", args->max_batches, "evaluate at most this many batches (0: all)")
      ->capture_default_str();
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
