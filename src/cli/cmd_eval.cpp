// lmforge eval: held-out loss, perplexity and bits per byte of a checkpoint on token shards, or
// multiple-choice accuracy on a JSONL file.
#include <fmt/format.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "infer/score.h"
#include "train/checkpoint.h"
#include "train/data_loader.h"
#include "train/evaluate.h"

namespace lmforge::cli {
namespace {

struct EvalArgs {
  std::string checkpoint;
  std::string data;
  std::string choices;
  std::string device = "cpu";
  std::string precision = "auto";
  std::string normalize = "tokens";
  int64_t batch_size = 8;
  int64_t seq_len = 0;
  int64_t max_batches = 0;
  bool json = false;
};

train::TokenShards open_eval_shards(const std::string& path) {
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) {
    for (const auto& e : std::filesystem::directory_iterator(path))
      if (e.path().filename().string().starts_with("val_")) return train::TokenShards::open(path, "val_");
    return train::TokenShards::open(path, "");
  }
  return train::TokenShards::open(path, "");
}

void run_data(const EvalArgs& a, const train::LoadedModel& m) {
  const auto& mc = m.model->config();
  const int64_t seq_len = a.seq_len > 0 ? a.seq_len : mc.context_length;
  LF_CHECK(seq_len <= mc.context_length, "--seq-len {} exceeds the model's context_length {}", seq_len,
           mc.context_length);
  LF_CHECK(a.batch_size > 0, "--batch-size must be > 0");
  const train::TokenShards shards = open_eval_shards(a.data);
  shards.validate_ids(mc.vocab_size);
  std::vector<uint64_t> counts;
  shards.count_ids(counts);
  std::vector<uint32_t> bytes;
  if (m.tokenizer) bytes = train::token_byte_lengths(*m.tokenizer, mc.vocab_size);
  train::ValidationBatches batches(shards, seq_len, a.batch_size, a.max_batches);
  const train::EvalResult r =
      train::evaluate(*m.model, batches, a.batch_size, seq_len, bytes.empty() ? nullptr : &bytes);
  const double h = train::unigram_entropy(counts);
  if (a.json) {
    nlohmann::ordered_json j{{"checkpoint", m.dir}, {"data", a.data}, {"tokens", r.tokens}, {"loss", r.loss},
                             {"perplexity", r.perplexity}};
    j["bits_per_byte"] = r.bits_per_byte ? nlohmann::ordered_json(*r.bits_per_byte) : nlohmann::ordered_json();
    j["unigram_entropy"] = h;
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("checkpoint {}\ndata {}: {} tokens predicted in {} shard(s)\n", m.dir, a.data, r.tokens, shards.n_shards());
  fmt::print("loss {:.4f} nats/token (unigram entropy of this data: {:.4f})\n", r.loss, h);
  fmt::print("perplexity {:.3f}\n", r.perplexity);
  if (r.bits_per_byte) fmt::print("bits per byte {:.4f} ({} bytes)\n", *r.bits_per_byte, r.bytes);
  else fmt::print("bits per byte n/a (the checkpoint has no tokenizer.json)\n");
}

void run_choices(const EvalArgs& a, const train::LoadedModel& m) {
  LF_CHECK(m.tokenizer.has_value(), "checkpoint {} has no tokenizer.json; --choices needs one to encode the text", m.dir);
  const auto items = infer::read_choices_jsonl(a.choices);
  const infer::LengthNorm norm = a.normalize == "bytes"  ? infer::LengthNorm::Bytes
                                 : a.normalize == "none" ? infer::LengthNorm::None
                                                         : infer::LengthNorm::Tokens;
  const infer::ChoiceResult r = infer::evaluate_choices(*m.model, *m.tokenizer, items, norm);
  if (a.json) {
    nlohmann::ordered_json j{{"checkpoint", m.dir}, {"choices", a.choices}, {"items", r.n_items},
                             {"correct", r.n_correct}, {"accuracy", r.accuracy}, {"normalize", a.normalize}};
    fmt::print("{}\n", j.dump());
    return;
  }
  fmt::print("checkpoint {}\n{}: {} items, {} correct\naccuracy {:.4f}\n", m.dir, a.choices, r.n_items, r.n_correct,
             r.accuracy);
}

void run(const EvalArgs& a) {
  LF_CHECK(a.data.empty() != a.choices.empty(), "give exactly one of --data SHARDS or --choices FILE.jsonl");
  const train::LoadedModel m =
      train::load_checkpoint_model(a.checkpoint, Device::parse(a.device), precision_of(a.precision));
  if (!a.data.empty()) run_data(a, m);
  else run_choices(a, m);
}

LMFORGE_COMMAND("eval", "Evaluate a checkpoint: loss/perplexity/bits per byte on shards, or multiple-choice accuracy",
                [](CLI::App& sub) {
  auto args = std::make_shared<EvalArgs>();
  sub.add_option("--checkpoint", args->checkpoint, "checkpoint directory (or a run directory: its newest)")->required();
  sub.add_option("--data", args->data, "token shards: a directory (its val_*.bin, else every *.bin) or one file");
  sub.add_option("--choices", args->choices,
                 "JSONL, one {\"context\": str, \"options\": [str, ...], \"answer\": index} per line");
  sub.add_option("--normalize", args->normalize, "length normalisation of option log-likelihoods")
      ->check(CLI::IsMember({"tokens", "bytes", "none"}))
      ->capture_default_str();
  sub.add_option("--device", args->device, "cpu | cuda | cuda:N")->capture_default_str();
  add_precision_option(sub, args->precision);
  sub.add_option("--batch-size", args->batch_size, "sequences per batch")->capture_default_str();
  sub.add_option("--seq-len", args->seq_len, "tokens per sequence (0: the model's context_length)")
      ->capture_default_str();
  sub.add_option("--max-batches", args->max_batches, "stop after this many batches (0: all)")->capture_default_str();
  sub.add_flag("--json", args->json, "print one JSON object");
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
