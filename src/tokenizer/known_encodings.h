// The three OpenAI encodings whose split patterns and special tokens are built in, so a
// `.tiktoken` rank file (which holds neither) can be loaded by name.
//
// Patterns are tiktoken 1.0.22's `pat_str` strings. `gpt2` is an alias of r50k_base (same ranks
// and pattern). The equivalent spellings that current Python tiktoken writes (possessive
// quantifiers, `'(?:[sdmt]|ll|ve|re)`) are recognized too, so every one of them gets the
// hand-written scanner.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>
#include <utility>
#include <vector>

#include "tokenizer/scanner.h"

namespace lmforge::tok {

struct KnownEncoding {
  std::string_view name;     // canonical: r50k_base, cl100k_base, o200k_base
  std::string_view pattern;  // tiktoken's pat_str
  detail::ScannerKind scanner;
  uint32_t n_ranks;          // ranks in the official .tiktoken file (0..n_ranks-1)
  std::vector<std::pair<std::string_view, uint32_t>> special_tokens;
};

// By canonical name or alias (gpt2); nullptr if unknown.
const KnownEncoding* find_known_encoding(std::string_view name);
// The encoding whose pattern (any known spelling) is exactly `pattern`; nullptr if none.
const KnownEncoding* find_known_encoding_by_pattern(std::string_view pattern);
// "r50k_base, gpt2, cl100k_base, o200k_base" for messages.
std::string_view known_encoding_names();

}  // namespace lmforge::tok
