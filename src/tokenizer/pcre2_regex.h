// Split patterns that have no hand-written scanner, through PCRE2 (internal to the tokenizer).
//
// Compiled with PCRE2_UTF | PCRE2_UCP (so \p{..}, \w, \d and case-insensitive matching are
// Unicode-aware) and PCRE2_MATCH_INVALID_UTF (invalid UTF-8 in the text never matches and never
// errors), then JIT-compiled when the platform supports it.
//
// \s. PCRE2's \s with UCP is "Perl space": \t \n \v \f \r, U+0085 and the Z categories, plus
// U+180E (MONGOLIAN VOWEL SEPARATOR), which PCRE2 keeps from Unicode before 6.3. tiktoken's \s
// is the Unicode White_Space property, which lost U+180E in 6.3; everything else agrees. So by
// default \s and \S are rewritten, outside and inside character classes, into explicit
// White_Space ranges (rewrite_white_space); the cross-check test shows the raw PCRE2 pattern
// differs from tiktoken exactly on U+180E. The rewrite understands escapes, \Q...\E, character
// classes and POSIX [:name:] items; it does not look inside (?x) comments.
//
// Pieces. Text that no match covers (including invalid UTF-8) becomes a piece of its own, as HF
// tokenizers' Split with behaviour "Isolated" does, so no byte is ever dropped. Empty matches
// are skipped.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

struct pcre2_real_code_8;

namespace lmforge::tok::detail {

// \s -> the White_Space class, \S -> its complement.
std::string rewrite_white_space(std::string_view pattern);

class Pcre2Regex {
 public:
  // Throws Error naming the offset and PCRE2's message when the pattern does not compile.
  Pcre2Regex(const std::string& pattern, bool unicode_white_space);
  ~Pcre2Regex();
  Pcre2Regex(const Pcre2Regex&) = delete;
  Pcre2Regex& operator=(const Pcre2Regex&) = delete;

  // First non-empty match in text[0, n) that starts at or after `from`; false if none.
  bool find(const char* text, size_t n, size_t from, size_t& start, size_t& end) const;
  // Same contract as detail::scan_pieces (cap >= 2).
  size_t scan_pieces(const char* text, size_t n, size_t pos, size_t* ends, size_t cap) const;
  bool jit() const { return jit_; }
  const std::string& compiled_pattern() const { return compiled_; }

 private:
  pcre2_real_code_8* code_ = nullptr;
  bool jit_ = false;
  std::string compiled_;
};

}  // namespace lmforge::tok::detail
