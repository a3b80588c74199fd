// lmforge tokenize: text files -> token shards + meta.json (data/corpus_tokenize.h). With a
// piece-level tokenizer (char, word) it reports the OOV rate of what it encoded.
#include <fmt/format.h>

#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "core/error.h"
#include "data/corpus_tokenize.h"
#include "data/shard.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct TokenizeArgs {
  std::string tokenizer;
  std::string pattern;
  std::string documents = "file";
  data::TokenizeOptions options;
};

// Occurrences of `id` in the shards written (counted from the files, so every path of the
// encoder is covered).
uint64_t count_id_in_shards(const data::TokenizeOptions& o, const data::TokenizeSummary& s, uint32_t id) {
  uint64_t n = 0;
  for (const auto* shards : {&s.train_shards, &s.val_shards}) {
    for (const data::ShardSummary& shard : *shards) {
      const data::ShardReader r((std::filesystem::path(o.output_dir) / shard.file).string());
      if (r.bytes_per_token() == 2) {
        for (uint16_t t : r.u16()) n += t == id;
      } else {
        for (uint32_t t : r.u32()) n += t == id;
      }
    }
  }
  return n;
}

void run_tokenize(TokenizeArgs& a) {
  data::TokenizeOptions& o = a.options;
  o.documents = data::parse_document_mode(a.documents);
  o.tokenizer_path = a.tokenizer;
  o.progress = true;
  const tok::Tokenizer tokenizer = tok::Tokenizer::load(a.tokenizer, a.pattern);
  fmt::print("tokenize: tokenizer={} (vocab {}), {} input file{}, documents={}, val_fraction={}, "
             "shard_tokens={}, threads={}, output={}\n",
             a.tokenizer, tokenizer.vocab_size(), o.inputs.size(), o.inputs.size() == 1 ? "" : "s", a.documents,
             o.val_fraction, o.shard_tokens, o.n_threads, o.output_dir);
  std::fflush(stdout);
  const data::TokenizeSummary s = data::tokenize_corpus(tokenizer, o);
  fmt::print("read {:.2f} MB in {:.2f} s: {:.2f} MB/s on {} thread{}\n", static_cast<double>(s.bytes) / 1e6, s.seconds,
             s.mb_per_second(), o.n_threads, o.n_threads == 1 ? "" : "s");
  fmt::print("documents: {} (train {}, val {})\n", s.documents, s.train_documents, s.val_documents);
  fmt::print("tokens: {} (train {}, val {}), {:.3f} bytes/token\n", s.tokens, s.train_tokens, s.val_tokens,
             s.bytes_per_token());
  fmt::print("invalid UTF-8 sequences: {}\n", s.invalid_utf8);
  if (const auto unk = tokenizer.unknown_id()) {
    // Every id but the end-of-text ones before documents stands for one character or word.
    const uint64_t unknown = count_id_in_shards(o, s, *unk), pieces = s.tokens - s.documents;
    fmt::print("OOV rate: {:.4f}% ({} of {} pieces became {})\n",
               pieces ? 100.0 * static_cast<double>(unknown) / static_cast<double>(pieces) : 0.0, unknown, pieces,
               tokenizer.token_bytes(*unk));
  }
  if (s.forced_cuts > 0) {
    fmt::print("note: {} chunk cut{} fell inside long lines without a safe split point; ids there may differ "
               "slightly from encoding the document in one piece\n",
               s.forced_cuts, s.forced_cuts == 1 ? "" : "s");
  }
  fmt::print("wrote {} train shard{} and {} val shard{} ({}), {}/meta.json\n", s.train_shards.size(),
             s.train_shards.size() == 1 ? "" : "s", s.val_shards.size(), s.val_shards.size() == 1 ? "" : "s",
             s.bytes_per_token_stored == 2 ? "uint16" : "uint32", o.output_dir);
  if (o.val_fraction > 0 && s.val_documents == 0) {
    fmt::print("warning: no document went to validation (the split is by document; with one big file use "
               "--documents paragraph)\n");
  }
}

LMFORGE_COMMAND("tokenize", "Encode text files into token shards (train/val) for training", [](CLI::App& sub) {
  auto args = std::make_shared<TokenizeArgs>();
  args->options.n_threads = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  sub.add_option("--tokenizer", args->tokenizer, "tokenizer.json or .tiktoken file")->required();
  sub.add_option("--pattern", args->pattern,
                 "pre-tokenizer of a .tiktoken file whose name does not say it (r50k_base, cl100k_base, o200k_base)");
  sub.add_option("--input", args->options.inputs,
                 "text files (each one document, see --documents) or .jsonl files (one document per line)")
      ->required();
  sub.add_option("--output", args->options.output_dir, "output directory for the shards and meta.json")->required();
  sub.add_option("--val-fraction", args->options.val_fraction,
                 "fraction of documents for validation, spread evenly (document i when floor((i+1)f) > floor(if))")
      ->check(CLI::Range(0.0, 0.999999));
  sub.add_option("--threads", args->options.n_threads, "encoding threads")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--shard-tokens", args->options.shard_tokens, "tokens per shard")->check(CLI::PositiveNumber)
      ->capture_default_str();
  sub.add_option("--documents", args->documents,
                 "what a document is in a plain text file: file (the whole file) or paragraph (separated by "
                 "blank lines)")
      ->check(CLI::IsMember({"file", "paragraph"}))
      ->capture_default_str();
  sub.add_option("--jsonl-field", args->options.jsonl_field, "JSON string field holding a .jsonl document's text")
      ->capture_default_str();
  sub.add_option("--eot", args->options.eot_token, "special token put before every document")
      ->capture_default_str();
  sub.add_flag("--overwrite", args->options.overwrite, "replace shards and meta.json already in the output directory");
  sub.callback([args] { run_tokenize(*args); });
});

}  // namespace
}  // namespace lmforge::cli
