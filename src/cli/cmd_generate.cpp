// lmforge generate: sample text from a checkpoint with a KV cache, streamed as it is made.
// --speculative drafts with the checkpoint's multi-token prediction modules and verifies with the
// main model (infer/speculative.h); it reports its acceptance rate and speed on stderr, and with
// --compare-plain also the speed of plain decoding of the same prompt.
#include <fmt/format.h>

#include <chrono>
#include <cstdio>

#include "cli/command.h"
#include "core/progress.h"
#include "infer/generate.h"
#include "infer/speculative.h"
#include "train/checkpoint.h"

namespace lmforge::cli {
namespace {

struct GenerateArgs {
  std::string checkpoint;
  std::string prompt;
  int64_t max_new_tokens = 200;
  double temperature = 1.0;
  int64_t top_k = 0;
  double top_p = 1.0;
  uint64_t seed = 0;
  std::string device = "cpu";
  std::string precision = "auto";
  bool no_echo = false;
  bool speculative = false;
  bool compare_plain = false;
  bool cuda_graph = false;
};

void run(const GenerateArgs& a) {
  infer::GenerateOptions o{.max_new_tokens = a.max_new_tokens,
                           .sampling = {.temperature = a.temperature, .top_k = a.top_k, .top_p = a.top_p},
                           .seed = a.seed,
                           .cuda_graph = a.cuda_graph};
  o.sampling.validate();
  LF_CHECK(!a.compare_plain || a.speculative, "--compare-plain compares --speculative with plain decoding; add "
           "--speculative");
  if (a.speculative) {
    // Checked on the config, before the weights are read.
    const std::string dir = train::resolve_checkpoint_dir(a.checkpoint);
    const int64_t depth = train::read_checkpoint_config(dir).model.mtp_depth;
    LF_CHECK(depth > 0, "--speculative drafts with multi-token prediction modules, but checkpoint {} has "
             "model.mtp_depth = {} (train with model.mtp_depth > 0)", dir, depth);
  }
  const train::LoadedModel m =
      train::load_checkpoint_model(a.checkpoint, Device::parse(a.device), precision_of(a.precision));
  LF_CHECK(m.tokenizer.has_value(), "checkpoint {} has no tokenizer.json; generate needs one", m.dir);
  const tok::Tokenizer& tok = *m.tokenizer;
  std::vector<uint32_t> prompt = tok.encode_ordinary(a.prompt);
  const std::optional<uint32_t> eot = tok.find_eot_id();
  // Documents in the shards start after an end-of-text id, so a prompt starts there too.
  if (eot) prompt.insert(prompt.begin(), *eot);
  LF_CHECK(!prompt.empty(), "the prompt is empty and the tokenizer has no end-of-text token to start from");
  o.stop_token = eot;
  if (!a.no_echo) {
    std::fwrite(a.prompt.data(), 1, a.prompt.size(), stdout);
    std::fflush(stdout);
  }
  infer::Utf8Stream stream;
  const auto print = [&](uint32_t id) {
    if (eot && id == *eot) return;
    const std::string text = stream.push(tok.token_bytes(id));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  };
  if (!a.speculative) {
    infer::generate(*m.model, prompt, o, print);
  } else {
    infer::SpeculativeStats stats;
    if (a.compare_plain) {
      // Untimed warm-up of both paths (kernel loading, the allocator's first blocks), so the
      // first timed run does not pay for what the second then reuses.
      infer::GenerateOptions warm = o;
      warm.max_new_tokens = std::min<int64_t>(o.max_new_tokens, 8);
      infer::generate_speculative(*m.model, prompt, warm, nullptr, nullptr);
      infer::generate(*m.model, prompt, warm);
    }
    const auto start = std::chrono::steady_clock::now();
    const std::vector<uint32_t> ids = infer::generate_speculative(*m.model, prompt, o, print, &stats);
    const double s = seconds_since(start);
    const std::string rest = stream.flush() + "\n";
    std::fwrite(rest.data(), 1, rest.size(), stdout);
    std::fflush(stdout);
    fmt::print(stderr, "speculative: {} tokens in {:.3f} s ({:.1f} tokens/s); {} of {} draft tokens accepted ({:.1f}%) "
               "in {} verification forwards\n", ids.size(), s, double(ids.size()) / s, stats.accepted, stats.drafted,
               100.0 * stats.acceptance_rate(), stats.rounds);
    if (a.compare_plain) {
      const auto plain_start = std::chrono::steady_clock::now();
      const std::vector<uint32_t> plain = infer::generate(*m.model, prompt, o);
      const double ps = seconds_since(plain_start);
      fmt::print(stderr, "plain:       {} tokens in {:.3f} s ({:.1f} tokens/s); speculative speed-up {:.2f}x{}\n",
                 plain.size(), ps, double(plain.size()) / ps, (double(ids.size()) / s) / (double(plain.size()) / ps),
                 o.sampling.temperature == 0 || o.sampling.top_k == 1
                     ? (plain == ids ? "; the same tokens" : "; the tokens DIFFER")
                     : "");
    }
    return;
  }
  const std::string rest = stream.flush() + "\n";
  std::fwrite(rest.data(), 1, rest.size(), stdout);
}

LMFORGE_COMMAND("generate", "Generate text from a checkpoint (greedy, temperature, top-k, top-p) with a KV cache",
                [](CLI::App& sub) {
  auto args = std::make_shared<GenerateArgs>();
  sub.add_option("--checkpoint", args->checkpoint, "checkpoint directory (or a run directory: its newest)")->required();
  sub.add_option("--prompt", args->prompt, "text to continue")->required();
  sub.add_option("--max-new-tokens", args->max_new_tokens, "tokens to generate at most")->capture_default_str();
  sub.add_option("--temperature", args->temperature, "softmax temperature; 0 = greedy")->capture_default_str();
  sub.add_option("--top-k", args->top_k, "sample among the k most likely tokens (0: all)")->capture_default_str();
  sub.add_option("--top-p", args->top_p, "sample among the most likely tokens holding this probability")
      ->capture_default_str();
  sub.add_option("--seed", args->seed, "sampling seed")->capture_default_str();
  sub.add_option("--device", args->device, "cpu | cuda | cuda:N")->capture_default_str();
  add_precision_option(sub, args->precision);
  sub.add_flag("--no-echo", args->no_echo, "print only the continuation");
  sub.add_flag("--cuda-graph", args->cuda_graph,
               "experimental: on a GPU, record one decode step as a CUDA graph and replay it for every token "
               "instead of launching its kernels (the tokens are the same)");
  sub.add_flag("--speculative", args->speculative,
               "self-speculative decoding: draft with the model's multi-token prediction modules (model.mtp_depth "
               "> 0), verify with the main model; prints the acceptance rate and tokens/s to stderr");
  sub.add_flag("--compare-plain", args->compare_plain,
               "with --speculative: also time plain decoding of the same prompt and print the speed-up");
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
