// Hand-written scanners for the three OpenAI split patterns (internal to the tokenizer).
//
// Each scanner reproduces the leftmost-first, backtracking semantics of its regex (as run by
// tiktoken with fancy-regex) without a regex engine: at each position the alternatives are
// tried in pattern order, and the few places where the regex would backtrack are resolved by
// looking at the run just scanned (see scanner.cpp for the case analysis). ASCII bytes take a
// table lookup; other bytes are decoded and classified through unicode::ClassTable.
//
// The patterns, verbatim from tiktoken 1.0.22 (known_encodings.cpp holds them as strings):
//   r50k_base:   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
//   cl100k_base: (?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}|
//                 ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
//   o200k_base:  [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:...)?|
//                [^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:...)?|
//                \p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+
// Every byte belongs to exactly one piece, so concatenating the pieces gives the text back.
#pragma once

#include <cstddef>
#include <cstdint>

namespace lmforge::tok::detail {

enum class ScannerKind : uint8_t { R50k, Cl100k, O200k };

// Scans pieces of text[0, n) starting at `pos` (a piece boundary). Writes the end offset of each
// piece to ends[0..k) and returns k (1 <= k <= cap while pos < n; 0 when pos == n). The pieces
// are [pos, ends[0]), [ends[0], ends[1]), ...
size_t scan_pieces(ScannerKind kind, const char* text, size_t n, size_t pos, size_t* ends, size_t cap);

}  // namespace lmforge::tok::detail
