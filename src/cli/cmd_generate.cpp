// lmforge generate: sample text from a checkpoint with a KV cache, streamed as it is made.
#include <fmt/format.h>

#include <cstdio>

#include "cli/command.h"
#include "infer/generate.h"
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
};

void run(const GenerateArgs& a) {
  infer::GenerateOptions o{.max_new_tokens = a.max_new_tokens,
                           .sampling = {.temperature = a.temperature, .top_k = a.top_k, .top_p = a.top_p},
                           .seed = a.seed};
  o.sampling.validate();
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
  infer::generate(*m.model, prompt, o, [&](uint32_t id) {
    if (eot && id == *eot) return;
    const std::string text = stream.push(tok.token_bytes(id));
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
  });
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
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
