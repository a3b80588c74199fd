// lmforge tokenizer train: byte-level BPE from text files (tokenizer/bpe_trainer.h) ->
// DIR/tokenizer.json + DIR/tokenizer.tiktoken.
#include <fmt/format.h>

#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "core/error.h"
#include "tokenizer/bpe_trainer_tokenizer.h"

namespace lmforge::cli {
namespace {

struct TrainArgs {
  std::vector<std::string> inputs;
  size_t vocab_size = 0;
  std::vector<std::string> specials = {"<|endoftext|>"};
  std::string pattern{tok::kDefaultTrainPattern};
  int threads = 1;
  std::string output;
};

void run_train(const TrainArgs& a) {
  tok::TrainerOptions o;
  o.vocab_size = a.vocab_size;
  o.special_tokens = a.specials;
  o.n_threads = a.threads;
  o.progress = true;
  tok::check_trainer_options(o);
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::create_directories(a.output, ec);
  LF_CHECK(!ec && fs::is_directory(a.output), "cannot create output directory {}: {}", a.output,
           ec ? ec.message() : "not a directory");
  fmt::print("tokenizer train: {} input file{}, vocab_size={}, pattern={}, specials=[{}], threads={}, output={}\n",
             a.inputs.size(), a.inputs.size() == 1 ? "" : "s", a.vocab_size, a.pattern, fmt::join(a.specials, ", "),
             a.threads, a.output);
  std::fflush(stdout);
  const tok::TrainedTokenizer t = tok::train_tokenizer(a.inputs, o, a.pattern);
  const tok::TrainerReport& r = t.report;
  const std::string json_path = (fs::path(a.output) / "tokenizer.json").string();
  const std::string tiktoken_path = (fs::path(a.output) / "tokenizer.tiktoken").string();
  t.tokenizer.save_tokenizer_json(json_path);
  t.tokenizer.save_tiktoken(tiktoken_path);
  fmt::print("counted {:.2f} MB in {:.2f} s ({:.1f} MB/s): {} pieces, {} distinct\n",
             static_cast<double>(r.count.bytes) / 1e6, r.count.seconds,
             static_cast<double>(r.count.bytes) / 1e6 / std::max(r.count.seconds, 1e-9), r.count.pieces,
             r.distinct_pieces);
  fmt::print("learned {} merges in {:.2f} s: {:.0f} merges/s\n", r.n_merges, r.merge_seconds, r.merges_per_second);
  if (r.n_new_tokens + tok::min_vocab_size(a.specials.size()) < a.vocab_size) {
    fmt::print("note: the corpus ran out of pairs; the vocabulary has {} ids, not {}\n", t.tokenizer.vocab_size(),
               a.vocab_size);
  }
  // Training ends with each piece in the segmentation that the saved tokenizer encodes it to
  // (tests/tokenizer/bpe_trainer_tokenizer_test.cpp checks this), so this is the compression of
  // encoding the training text, special-token text excluded.
  fmt::print("compression: {:.3f} bytes/token on the training text\n", r.bytes_per_token);
  fmt::print("vocab: ids 0-255 bytes, 256-{} merges, {} special{} from {}; wrote {} and {}\n",
             255 + r.n_new_tokens, a.specials.size(), a.specials.size() == 1 ? "" : "s", 256 + r.n_new_tokens,
             json_path, tiktoken_path);
}

LMFORGE_SUBCOMMAND("tokenizer", "train", "Train a byte-level BPE tokenizer on text files", [](CLI::App& sub) {
  auto args = std::make_shared<TrainArgs>();
  args->threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("--input", args->inputs, "training text files (each one document)")->required()->check(
      CLI::ExistingFile);
  sub.add_option("--vocab-size", args->vocab_size,
                 "total ids: 256 bytes + merges + special tokens (specials take the last ids)")
      ->required();
  sub.add_option("--special", args->specials, "special token (repeatable; replaces the default)")
      ->capture_default_str();
  sub.add_option("--pattern", args->pattern,
                 "pre-tokenizer: r50k_base, gpt2, cl100k_base, o200k_base or a regex")
      ->capture_default_str();
  sub.add_option("--threads", args->threads, "threads for counting")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--output", args->output, "output directory (tokenizer.json, tokenizer.tiktoken)")->required();
  sub.callback([args] { run_train(*args); });
});

}  // namespace
}  // namespace lmforge::cli
