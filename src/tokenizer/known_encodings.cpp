#include "tokenizer/known_encodings.h"

#include <array>

namespace lmforge::tok {
namespace {

constexpr std::string_view kR50kPattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kCl100kPattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr std::string_view kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|)"
    R"(\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

// Spellings of the same patterns written by Python tiktoken (possessive quantifiers); they
// split every text exactly as the forms above (the possessive parts never need to backtrack,
// and \s*[\r\n] ends after the last line break of the run just as \s*[\r\n]+ does).
// Its o200k_base pattern is the one above.
constexpr std::string_view kR50kPatternPython =
    R"('(?:[sdmt]|ll|ve|re)| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
constexpr std::string_view kCl100kPatternPython =
    R"('(?i:[sdmt]|ll|ve|re)|[^\r\n\p{L}\p{N}]?+\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]++[\r\n]*|\s*[\r\n]|\s+(?!\S)|\s+)";
const std::array<KnownEncoding, 3>& encodings() {
  static const std::array<KnownEncoding, 3> all = {{
      {"r50k_base", kR50kPattern, detail::ScannerKind::R50k, 50256, {{"<|endoftext|>", 50256}}},
      {"cl100k_base",
       kCl100kPattern,
       detail::ScannerKind::Cl100k,
       100256,
       {{"<|endoftext|>", 100257},
        {"<|fim_prefix|>", 100258},
        {"<|fim_middle|>", 100259},
        {"<|fim_suffix|>", 100260},
        {"<|endofprompt|>", 100276}}},
      {"o200k_base",
       kO200kPattern,
       detail::ScannerKind::O200k,
       199998,
       {{"<|endoftext|>", 199999}, {"<|endofprompt|>", 200018}}},
  }};
  return all;
}

}  // namespace

const KnownEncoding* find_known_encoding(std::string_view name) {
  if (name == "gpt2") name = "r50k_base";
  for (const auto& e : encodings())
    if (e.name == name) return &e;
  return nullptr;
}

const KnownEncoding* find_known_encoding_by_pattern(std::string_view pattern) {
  const auto& e = encodings();
  if (pattern == kR50kPattern || pattern == kR50kPatternPython) return &e[0];
  if (pattern == kCl100kPattern || pattern == kCl100kPatternPython) return &e[1];
  if (pattern == kO200kPattern) return &e[2];
  return nullptr;
}

std::string_view known_encoding_names() { return "r50k_base (alias gpt2), cl100k_base, o200k_base"; }

}  // namespace lmforge::tok
