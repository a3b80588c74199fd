// lmforge tokenizer train: a tokenizer from text files -> DIR/tokenizer.json (+ DIR/tokenizer.tiktoken
// for byte and bpe, which that format can hold). --kind bpe (the default): byte-level BPE
// (tokenizer/bpe_trainer.h); byte: the 256 bytes, nothing to learn; char, word: the most frequent
// characters or words plus an unknown token (tokenizer/piece_vocab_trainer.h), with the OOV rate
// on the training text.
#include <fmt/format.h>

#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "core/error.h"
#include "tokenizer/bpe_trainer_tokenizer.h"
#include "tokenizer/piece_vocab_trainer.h"

namespace lmforge::cli {
namespace {

struct TokenizerTrainArgs {
  std::string kind = "bpe";
  std::vector<std::string> inputs;
  size_t vocab_size = 0;
  std::vector<std::string> specials = {"<|endoftext|>"};
  std::string pattern{tok::kDefaultTrainPattern};
  int threads = 1;
  std::string output;
};

namespace fs = std::filesystem;

void create_output_directory(const std::string& dir) {
  std::error_code ec;
  fs::create_directories(dir, ec);
  LF_CHECK(!ec && fs::is_directory(dir), "cannot create output directory {}: {}", dir,
           ec ? ec.message() : "not a directory");
}

void run_train_byte(const TokenizerTrainArgs& a) {
  const size_t size = tok::min_vocab_size(a.specials.size());
  LF_CHECK(a.vocab_size == 0 || a.vocab_size == size, "--kind byte has exactly 256 + {} special token{} = {} ids; "
           "--vocab-size {} does not match (leave it out)", a.specials.size(), a.specials.size() == 1 ? "" : "s", size,
           a.vocab_size);
  tok::TrainerOptions o;
  o.vocab_size = size;
  o.special_tokens = a.specials;
  tok::check_trainer_options(o);
  create_output_directory(a.output);
  const tok::Tokenizer t = tok::Tokenizer::byte_level(a.specials);
  const std::string json_path = (fs::path(a.output) / "tokenizer.json").string();
  const std::string tiktoken_path = (fs::path(a.output) / "tokenizer.tiktoken").string();
  t.save_tokenizer_json(json_path);
  t.save_tiktoken(tiktoken_path);
  fmt::print("tokenizer train: kind=byte (no training), specials=[{}]\n", fmt::join(a.specials, ", "));
  fmt::print("vocab: ids 0-255 bytes, {} special{} from 256; wrote {} and {}\n", a.specials.size(),
             a.specials.size() == 1 ? "" : "s", json_path, tiktoken_path);
}

// char and word: the most frequent pieces, an unknown token for the rest.
void run_train_pieces(const TokenizerTrainArgs& a) {
  const bool chars = a.kind == "char";
  tok::PieceVocabOptions o;
  o.vocab_size = a.vocab_size;
  o.special_tokens = a.specials;
  o.n_threads = a.threads;
  o.progress = true;
  tok::check_piece_vocab_options(o);
  const tok::Pretokenizer pt = tok::pretokenizer_for_pattern(chars ? tok::kCharPattern : a.pattern);
  create_output_directory(a.output);
  fmt::print("tokenizer train: kind={}, {} input file{}, vocab_size={}, pattern={}, specials=[{}], threads={}, "
             "output={}\n", a.kind, a.inputs.size(), a.inputs.size() == 1 ? "" : "s", a.vocab_size,
             chars ? std::string(tok::kCharPattern) : a.pattern, fmt::join(a.specials, ", "), a.threads, a.output);
  std::fflush(stdout);
  const tok::TrainedPieceTokenizer t = tok::train_piece_tokenizer(a.inputs, o, pt);
  const tok::PieceVocabReport& r = t.report;
  const std::string json_path = (fs::path(a.output) / "tokenizer.json").string();
  t.tokenizer.save_tokenizer_json(json_path);
  const char* unit = chars ? "character" : "word";
  fmt::print("counted {:.2f} MB in {:.2f} s: {} {}s, {} distinct\n", static_cast<double>(r.count.bytes) / 1e6,
             r.count.seconds, r.pieces, unit, r.distinct_pieces);
  const size_t n = t.tokenizer.n_ordinary_tokens();
  fmt::print("vocab: {} the most frequent {}s, {} special{} and {} from {}; wrote {}\n",
             n ? fmt::format("ids 0-{}", n - 1) : std::string("no ids (an empty corpus):"), unit, a.specials.size(),
             a.specials.size() == 1 ? "" : "s", tok::kUnknownToken, n, json_path);
  if (t.tokenizer.vocab_size() < a.vocab_size) {
    fmt::print("note: the corpus has only {} distinct {}s; the vocabulary has {} ids, not {}\n", r.distinct_pieces,
               unit, t.tokenizer.vocab_size(), a.vocab_size);
  }
  fmt::print("OOV rate: {:.4f}% of the training text's {}s ({} of {}) become {}\n", 100.0 * r.oov_rate(), unit,
             r.unknown_pieces, r.pieces, tok::kUnknownToken);
}

void run_train_bpe(const TokenizerTrainArgs& a) {
  tok::TrainerOptions o;
  o.vocab_size = a.vocab_size;
  o.special_tokens = a.specials;
  o.n_threads = a.threads;
  o.progress = true;
  tok::check_trainer_options(o);
  create_output_directory(a.output);
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

void run_train(const TokenizerTrainArgs& a) {
  if (a.kind == "byte") return run_train_byte(a);
  LF_CHECK(!a.inputs.empty(), "--kind {} needs at least one --input file", a.kind);
  LF_CHECK(a.vocab_size > 0, "--kind {} needs --vocab-size", a.kind);
  if (a.kind == "char" || a.kind == "word") return run_train_pieces(a);
  run_train_bpe(a);
}

LMFORGE_SUBCOMMAND("tokenizer", "train", "Train a tokenizer (byte-level BPE, or a byte, char or word baseline) on text "
                   "files", [](CLI::App& sub) {
  auto args = std::make_shared<TokenizerTrainArgs>();
  sub.add_option("--kind", args->kind,
                 "bpe: byte-level BPE; byte: the 256 bytes (no training); char / word: the most frequent characters "
                 "/ words (pieces of --pattern) plus an unknown token")
      ->check(CLI::IsMember({"bpe", "byte", "char", "word"}))
      ->capture_default_str();
  args->threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("--input", args->inputs, "training text files (each one document; not needed for --kind byte)")
      ->check(CLI::ExistingFile);
  sub.add_option("--vocab-size", args->vocab_size,
                 "total ids: bpe 256 bytes + merges + specials; char / word pieces + specials + the unknown token "
                 "(specials take the last ids); not needed for byte");
  sub.add_option("--special", args->specials, "special token (repeatable; replaces the default)")
      ->capture_default_str();
  sub.add_option("--pattern", args->pattern,
                 "pre-tokenizer of bpe and word: r50k_base, gpt2, cl100k_base, o200k_base or a regex")
      ->capture_default_str();
  sub.add_option("--threads", args->threads, "threads for counting")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--output", args->output, "output directory (tokenizer.json, tokenizer.tiktoken)")->required();
  sub.callback([args] { run_train(*args); });
});

}  // namespace
}  // namespace lmforge::cli
