// meta.json of a shard directory, and the SHA-256 that identifies the tokenizer file in it.
//
// meta.json (written to a temporary name, then renamed):
//   {"format": "lmforge-shards", "version": 1, "header_bytes": 1024, "dtype": "uint16"|"uint32",
//    "tokenizer": {"path", "sha256", "vocab_size", "eot_token", "eot_id"},
//    "documents": "file"|"paragraph", "jsonl_field", "val_fraction", "shard_tokens",
//    "inputs": [{"path", "bytes"}],
//    "train": {"tokens", "documents", "shards": [{"file", "tokens", "documents"}]},
//    "val":   {...the same...},
//    "bytes", "tokens", "bytes_per_token", "invalid_utf8_sequences", "forced_cuts"}
#pragma once

#include <string>
#include <string_view>

#include "data/corpus_tokenize.h"

namespace lmforge::data {

// Lower-case hex SHA-256 (FIPS 180-4) of bytes / of a file's contents (Error naming the file).
std::string sha256_hex(std::string_view bytes);
std::string sha256_file_hex(const std::string& path);

void write_meta_json(const tok::Tokenizer& tokenizer, const TokenizeOptions& options, const TokenizeSummary& summary);

}  // namespace lmforge::data
