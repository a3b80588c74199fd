// Unicode character classes and UTF-8 decoding for the pre-tokenizer scanners.
//
// Every code point gets one byte of class flags. The table is built once, on first use, by
// asking utf8proc for each code point's general category (so it follows the Unicode version of
// the installed utf8proc) and is stored two-level: a block index per 256 code points pointing
// at deduplicated 256-byte blocks (~100 KiB instead of 1.1 MB, so the hot part stays in cache).
//
// White_Space is a Unicode *property*, not a category, and utf8proc has no query for it; its
// 25 code points are listed in unicode.cpp (the set is stable since Unicode 6.3, when U+180E
// left it). This is the `\s` of the Rust regex crate that tiktoken uses; C's isspace, Python's
// str.isspace and PCRE2's \s all differ from it (see pcre2_regex.h).
//
// Invalid UTF-8 (a stray continuation byte, an overlong form, a surrogate, a truncated
// sequence, anything past U+10FFFF) is never an error here: each offending byte is a
// one-byte character with no class flags, i.e. punctuation-like "other" text. Encoding
// therefore accepts every byte string, and the bytes come back unchanged on decoding.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace lmforge::tok::unicode {

enum ClassFlag : uint8_t {
  kLetter = 1 << 0,     // \p{L}
  kNumber = 1 << 1,     // \p{N}
  kSpace = 1 << 2,      // White_Space (regex \s)
  kUpperish = 1 << 3,   // [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]  (o200k_base)
  kLowerish = 1 << 4,   // [\p{Ll}\p{Lm}\p{Lo}\p{M}]        (o200k_base)
  kMark = 1 << 5,       // \p{M}
};

// The flags of one code point computed directly from utf8proc (slow; the table's source).
uint8_t compute_flags(uint32_t cp);
// True for the 25 White_Space code points.
bool is_white_space(uint32_t cp);

class ClassTable {
 public:
  static const ClassTable& get();  // built on first call (thread-safe)

  uint8_t flags(uint32_t cp) const {
    return cp < 0x110000 ? blocks_[static_cast<size_t>(index_[cp >> 8]) << 8 | (cp & 0xFF)] : 0;
  }
  uint8_t ascii(uint8_t b) const { return blocks_[b]; }  // block 0 holds U+0000..U+00FF
  size_t n_blocks() const { return n_blocks_; }

 private:
  ClassTable();
  uint16_t index_[0x110000 >> 8];
  std::vector<uint8_t> storage_;  // the distinct blocks, 256 bytes each
  const uint8_t* blocks_;
  size_t n_blocks_;
};

// Length of the valid UTF-8 sequence at p (1..4) and its code point, or 0 if the bytes at p do
// not start a valid sequence (end is one past the last readable byte; p < end).
inline uint32_t utf8_decode(const uint8_t* p, const uint8_t* end, uint32_t& cp) {
  const uint8_t b0 = p[0];
  if (b0 < 0x80) {
    cp = b0;
    return 1;
  }
  const size_t left = static_cast<size_t>(end - p);
  if (b0 < 0xC2) return 0;
  if (b0 < 0xE0) {
    if (left < 2 || (p[1] & 0xC0) != 0x80) return 0;
    cp = (uint32_t{b0} & 0x1F) << 6 | (p[1] & 0x3F);
    return 2;
  }
  if (b0 < 0xF0) {
    if (left < 3) return 0;
    const uint8_t lo = b0 == 0xE0 ? 0xA0 : 0x80, hi = b0 == 0xED ? 0x9F : 0xBF;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80) return 0;
    cp = (uint32_t{b0} & 0x0F) << 12 | (uint32_t{p[1]} & 0x3F) << 6 | (p[2] & 0x3F);
    return 3;
  }
  if (b0 < 0xF5) {
    if (left < 4) return 0;
    const uint8_t lo = b0 == 0xF0 ? 0x90 : 0x80, hi = b0 == 0xF4 ? 0x8F : 0xBF;
    if (p[1] < lo || p[1] > hi || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80) return 0;
    cp = (uint32_t{b0} & 0x07) << 18 | (uint32_t{p[1]} & 0x3F) << 12 | (uint32_t{p[2]} & 0x3F) << 6 | (p[3] & 0x3F);
    return 4;
  }
  return 0;
}

// Length of the "maximal subpart" of an ill-formed sequence at p (Unicode §3.9, what Python's
// errors="replace" and WHATWG replace with one U+FFFD each). Call only where utf8_decode is 0.
size_t utf8_invalid_length(const uint8_t* p, const uint8_t* end);

// Byte offset of the first invalid UTF-8 sequence in [p, p+n), or n if all of it is valid.
size_t utf8_first_invalid(const char* p, size_t n);

// Appends the UTF-8 form of cp (cp < 0x110000, not a surrogate).
void utf8_append(uint32_t cp, std::string& out);

}  // namespace lmforge::tok::unicode
