// The three scanners. Notation: L = \p{L}, N = \p{N}, S = \s (White_Space), "other" = a
// character that is none of L, N, S (punctuation, symbols, marks, controls, invalid bytes);
// U = [\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}], W = [\p{Ll}\p{Lm}\p{Lo}\p{M}] (o200k; they overlap on
// Lm, Lo and M).
//
// Where the regexes backtrack:
//  * \s+(?!\S) on a whitespace run [i, j): at the end of the text it takes the whole run;
//    before a non-space it gives back one character (the look-ahead needs a space after it),
//    so it matches [i, start of the last character) when the run has two or more characters
//    and fails on a single one, which \s+ then takes.
//  * \s*[\r\n]+ on a whitespace run: \s* takes the run and gives back characters until
//    [\r\n]+ can match, i.e. the match ends just after the last \r or \n of the run.
//  * o200k alternative 1, P? U* W+ C?: U* takes the longest U run [s, u); if the character at
//    u is in W (then it is Ll), W+ continues greedily from u; otherwise U* gives back
//    characters until one in W is freed, so the match ends after the last W character of the
//    run, and fails if the run holds none (only Lu/Lt). The optional prefix P? is tried first
//    with one character, then without; without it the match can only start at a mark (P
//    excludes letters), and a mark is in W, so alternative 1 then always succeeds.
#include "tokenizer/scanner.h"

#include "tokenizer/unicode.h"

namespace lmforge::tok::detail {
namespace {

using namespace unicode;

constexpr uint8_t kLNS = kLetter | kNumber | kSpace;

struct Text {
  const uint8_t* s;
  size_t n;
  const ClassTable& table;

  // Class flags of the character at i (< n) and its length in bytes.
  inline uint8_t at(size_t i, uint32_t& len) const {
    const uint8_t b = s[i];
    if (b < 0x80) {
      len = 1;
      return table.ascii(b);
    }
    uint32_t cp;
    len = utf8_decode(s + i, s + n, cp);
    if (len == 0) {
      len = 1;  // an invalid byte: one "other" character
      return 0;
    }
    return table.flags(cp);
  }

  // End of the run of characters, starting at i, whose flags intersect `mask`.
  inline size_t run_any(size_t i, uint8_t mask) const {
    while (i < n) {
      const uint8_t b = s[i];
      if (b < 0x80) {
        if (!(table.ascii(b) & mask)) break;
        ++i;
      } else {
        uint32_t len;
        if (!(at(i, len) & mask)) break;
        i += len;
      }
    }
    return i;
  }

  // End of the run of characters, starting at i, whose flags avoid `mask`.
  inline size_t run_none(size_t i, uint8_t mask) const {
    while (i < n) {
      const uint8_t b = s[i];
      if (b < 0x80) {
        if (table.ascii(b) & mask) break;
        ++i;
      } else {
        uint32_t len;
        if (at(i, len) & mask) break;
        i += len;
      }
    }
    return i;
  }

  // End of up to three N characters starting at i (s[i] is N).
  inline size_t digits3(size_t i) const {
    for (int k = 0; k < 3 && i < n; ++k) {
      uint32_t len;
      if (!(at(i, len) & kNumber)) break;
      i += len;
    }
    return i;
  }

  inline size_t run_newlines(size_t i, bool slash) const {
    while (i < n && (s[i] == '\r' || s[i] == '\n' || (slash && s[i] == '/'))) ++i;
    return i;
  }

  // A whitespace run starting at i (s[i] is S), resolved for \s*[\r\n]+ (when `newline_rule`),
  // then \s+(?!\S), then \s+.
  inline size_t whitespace(size_t i, bool newline_rule) const {
    size_t last_start = i, newline_end = 0;
    size_t j = i;
    while (j < n) {
      const uint8_t b = s[j];
      uint32_t len = 1;
      if (b < 0x80) {
        if (!(table.ascii(b) & kSpace)) break;
        if (b == '\r' || b == '\n') newline_end = j + 1;
      } else if (!(at(j, len) & kSpace)) {
        break;
      }
      last_start = j;
      j += len;
    }
    if (newline_rule && newline_end != 0) return newline_end;
    if (j == n) return n;
    return last_start > i ? last_start : j;
  }

  inline static uint8_t lower_ascii(uint8_t c) { return (c >= 'A' && c <= 'Z') ? c | 0x20 : c; }

  // Length of 's|'t|'re|'ve|'m|'ll|'d at i (s[i] == '\''), or 0. Case-insensitive matching
  // follows Unicode simple case folding, under which U+017F (long s) matches 's'.
  template <bool kCaseInsensitive>
  inline size_t contraction(size_t i) const {
    if (i + 1 >= n) return 0;
    uint8_t c = s[i + 1];
    if (kCaseInsensitive) c = lower_ascii(c);
    switch (c) {
      case 's': case 't': case 'm': case 'd':
        return 2;
      case 'r': case 'v': case 'l': {
        if (i + 2 >= n) return 0;
        const uint8_t want = c == 'l' ? 'l' : 'e';
        uint8_t c2 = s[i + 2];
        if (kCaseInsensitive) c2 = lower_ascii(c2);
        return c2 == want ? 3 : 0;
      }
      case 0xC5:
        return kCaseInsensitive && i + 2 < n && s[i + 2] == 0xBF ? 3 : 0;
      default:
        return 0;
    }
  }
};

// ---- r50k_base ----
inline size_t next_r50k(const Text& t, size_t i) {
  const uint8_t b = t.s[i];
  if (b == '\'') {
    if (size_t c = t.contraction<false>(i)) return i + c;
  }
  uint32_t len;
  const uint8_t f = t.at(i, len);
  if (b == ' ' && i + 1 < t.n) {  // ' ?' followed by a letter, digit or other character
    uint32_t len2;
    const uint8_t g = t.at(i + 1, len2);
    if (g & kLetter) return t.run_any(i + 1, kLetter);
    if (g & kNumber) return t.run_any(i + 1, kNumber);
    if (!(g & kLNS)) return t.run_none(i + 1, kLNS);
  }
  if (f & kLetter) return t.run_any(i, kLetter);
  if (f & kNumber) return t.run_any(i, kNumber);
  if (!(f & kSpace)) return t.run_none(i, kLNS);
  return t.whitespace(i, false);
}

// ---- cl100k_base ----
inline size_t next_cl100k(const Text& t, size_t i) {
  const uint8_t b = t.s[i];
  if (b == '\'') {
    if (size_t c = t.contraction<true>(i)) return i + c;
  }
  uint32_t len;
  const uint8_t f = t.at(i, len);
  if (f & kLetter) return t.run_any(i, kLetter);
  // [^\r\n\p{L}\p{N}]\p{L}+
  if (!(f & kNumber) && b != '\r' && b != '\n' && i + len < t.n) {
    uint32_t len2;
    if (t.at(i + len, len2) & kLetter) return t.run_any(i + len, kLetter);
  }
  if (f & kNumber) return t.digits3(i);
  // ' ?[^\s\p{L}\p{N}]+[\r\n]*'
  if (b == ' ' && i + 1 < t.n) {
    uint32_t len2;
    if (!(t.at(i + 1, len2) & kLNS)) return t.run_newlines(t.run_none(i + 1, kLNS), false);
  }
  if (!(f & kSpace)) return t.run_newlines(t.run_none(i, kLNS), false);
  return t.whitespace(i, true);
}

// ---- o200k_base ----
// Alternative 1 from s without its prefix: U* W+; returns the end or 0 on failure.
inline size_t o200k_alt1(const Text& t, size_t s) {
  size_t u = s, last_w_end = 0;
  uint8_t f = 0;
  uint32_t len = 0;
  while (u < t.n) {
    f = t.at(u, len);
    if (!(f & kUpperish)) break;
    u += len;
    if (f & kLowerish) last_w_end = u;
  }
  if (u < t.n && (f & kLowerish)) return t.run_any(u + len, kLowerish);
  return last_w_end;
}

// Alternative 2 from s without its prefix: U+ W*; returns the end or 0 on failure.
inline size_t o200k_alt2(const Text& t, size_t s) {
  uint32_t len;
  if (!(t.at(s, len) & kUpperish)) return 0;
  return t.run_any(t.run_any(s + len, kUpperish), kLowerish);
}

inline size_t next_o200k(const Text& t, size_t i) {
  const uint8_t b = t.s[i];
  uint32_t len;
  const uint8_t f = t.at(i, len);
  const bool prefix = !(f & (kLetter | kNumber)) && b != '\r' && b != '\n' && i + len < t.n;
  size_t e = 0;
  if (prefix) e = o200k_alt1(t, i + len);
  if (!e && (f & (kUpperish | kLowerish))) e = o200k_alt1(t, i);
  if (!e && prefix) e = o200k_alt2(t, i + len);
  if (!e && (f & kUpperish)) e = o200k_alt2(t, i);
  if (e) {
    if (e < t.n && t.s[e] == '\'') e += t.contraction<true>(e);
    return e;
  }
  if (f & kNumber) return t.digits3(i);
  // ' ?[^\s\p{L}\p{N}]+[\r\n/]*'
  if (b == ' ' && i + 1 < t.n) {
    uint32_t len2;
    if (!(t.at(i + 1, len2) & kLNS)) return t.run_newlines(t.run_none(i + 1, kLNS), true);
  }
  if (!(f & kSpace)) return t.run_newlines(t.run_none(i, kLNS), true);
  return t.whitespace(i, true);
}

template <size_t (*Next)(const Text&, size_t)>
size_t scan(const Text& t, size_t pos, size_t* ends, size_t cap) {
  size_t k = 0;
  while (pos < t.n && k < cap) {
    pos = Next(t, pos);
    ends[k++] = pos;
  }
  return k;
}

}  // namespace

size_t scan_pieces(ScannerKind kind, const char* text, size_t n, size_t pos, size_t* ends, size_t cap) {
  const Text t{reinterpret_cast<const uint8_t*>(text), n, ClassTable::get()};
  switch (kind) {
    case ScannerKind::R50k:
      return scan<next_r50k>(t, pos, ends, cap);
    case ScannerKind::Cl100k:
      return scan<next_cl100k>(t, pos, ends, cap);
    case ScannerKind::O200k:
      return scan<next_o200k>(t, pos, ends, cap);
  }
  return 0;
}

}  // namespace lmforge::tok::detail
