// Corpus tokenization: text files -> token shards (data/shard.h) + meta.json.
//
// Pipeline. The calling thread reads each input in blocks and cuts it into chunks of about a
// megabyte (data/corpus_tokenize_text.h says where); n_threads workers encode chunks with
// Tokenizer::encode_ordinary (special-token text in the corpus is ordinary text); the calling
// thread writes the results strictly in chunk order. At most 4 chunks per worker are in flight,
// so memory stays bounded for any input size. Cuts never depend on the thread count, so the
// shards are byte-identical for any --threads.
//
// Output, in output_dir:
//   train_000000.bin, train_000001.bin, ...   shards of at most shard_tokens tokens
//   val_000000.bin, ...                        when val_fraction > 0
//   meta.json                                   tokenizer (path, sha256, vocab size, eot id),
//                                               inputs, per-shard counts, totals
// Every document is preceded by the end-of-text id (as llm.c's GPT-2 shards), so a shard is
// "<eot> doc <eot> doc ..."; a document may continue into the next shard.
//
// Train/validation split by document, deterministic: with fraction f, the document with
// 0-based index i (counted over all inputs in order) goes to validation when
// floor((i + 1) * f) > floor(i * f), i.e. evenly spread, about one in 1/f.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "data/corpus_tokenize_text.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::data {

struct TokenizeOptions {
  std::vector<std::string> inputs;
  std::string output_dir;
  double val_fraction = 0.0;
  int n_threads = 1;
  uint64_t shard_tokens = 100'000'000;
  DocumentMode documents = DocumentMode::File;
  std::string jsonl_field = "text";
  std::string eot_token = "<|endoftext|>";  // the special token put before every document
  size_t chunk_bytes = size_t{1} << 20;
  size_t max_chunk_bytes = size_t{64} << 20;
  // Replace existing shards / meta.json in output_dir (otherwise their presence is an Error).
  bool overwrite = false;
  bool progress = false;
  std::string tokenizer_path;  // recorded in meta.json (with its sha256) when set
};

struct ShardSummary {
  std::string file;  // name inside output_dir
  uint64_t tokens = 0;
  uint64_t documents = 0;
};

struct TokenizeSummary {
  uint64_t bytes = 0;          // input bytes read
  uint64_t tokens = 0;         // ids written, end-of-text ids included
  uint64_t documents = 0;
  uint64_t invalid_utf8 = 0;   // ill-formed UTF-8 sequences in the input
  uint64_t forced_cuts = 0;    // chunk cuts that were not at a safe split or document boundary
  std::vector<ShardSummary> train_shards;
  std::vector<ShardSummary> val_shards;
  uint64_t train_tokens = 0, val_tokens = 0;
  uint64_t train_documents = 0, val_documents = 0;
  int bytes_per_token_stored = 2;  // shard width
  double seconds = 0;

  double mb_per_second() const { return seconds > 0 ? static_cast<double>(bytes) / 1e6 / seconds : 0.0; }
  // Input bytes per token, end-of-text ids excluded.
  double bytes_per_token() const {
    const uint64_t t = tokens - documents;
    return t > 0 ? static_cast<double>(bytes) / static_cast<double>(t) : 0.0;
  }
};

// Is document i (0-based) a validation document for fraction f?
bool is_validation_document(uint64_t i, double val_fraction);

TokenizeSummary tokenize_corpus(const tok::Tokenizer& tokenizer, const TokenizeOptions& options);

}  // namespace lmforge::data
