// Pre-tokenization: cutting text into the pieces that BPE encodes one by one.
//
// Three ways, one class:
//  * named("r50k_base" | "gpt2" | "cl100k_base" | "o200k_base"): a hand-written scanner that
//    reproduces tiktoken's regex exactly (scanner.h), with an ASCII fast path;
//  * regex(pattern): any pattern; the known patterns (any spelling in known_encodings.cpp) get
//    the scanner, every other one PCRE2 with JIT (pcre2_regex.h, which also says how \s is made
//    to mean Unicode White_Space); pcre2(pattern) forces PCRE2 even for a known pattern;
//  * none(): the whole text is one piece (byte-level tokenizers).
// Pieces are non-empty, in order, and cover every byte of the text exactly once, whatever the
// bytes (invalid UTF-8 included).
//
// A Pretokenizer is immutable and cheap to copy (shared state); split() may be called from
// many threads at once.
#pragma once

#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::tok {

class Pretokenizer {
 public:
  Pretokenizer();  // none()

  static Pretokenizer named(std::string_view name);
  static Pretokenizer regex(std::string pattern);
  static Pretokenizer pcre2(std::string pattern, bool unicode_white_space = true);
  static Pretokenizer none();

  // The pattern as given (tiktoken's pat_str for a named one; empty for none()).
  const std::string& pattern() const;
  // r50k_base, cl100k_base, o200k_base (also for a recognized regex), "regex" or "none".
  std::string_view name() const;
  bool uses_scanner() const;
  bool is_none() const;

  // Calls f(piece) for each piece of text, in order.
  void split(std::string_view text, const std::function<void(std::string_view)>& f) const;
  std::vector<std::string_view> pieces(std::string_view text) const;

  // The fast form: writes the end offsets of the next pieces after `pos` (a piece boundary)
  // into ends[0..k), k <= cap (cap >= 2), and returns k; 0 only when pos == text.size().
  size_t next_pieces(std::string_view text, size_t pos, size_t* ends, size_t cap) const;

  template <class F>
  void for_each_piece(std::string_view text, F&& f) const {
    constexpr size_t kBatch = 256;
    size_t ends[kBatch];
    size_t pos = 0;
    while (pos < text.size()) {
      const size_t k = next_pieces(text, pos, ends, kBatch);
      for (size_t i = 0; i < k; ++i) {
        f(text.substr(pos, ends[i] - pos));
        pos = ends[i];
      }
    }
  }

  // True if cutting `text` at p (0 < p < size) and splitting both sides separately gives the
  // same pieces as splitting the whole. Only ever true for the scanners; see pretokenizer.cpp.
  bool is_cut_point(std::string_view text, size_t p) const;

  struct Impl;

 private:
  explicit Pretokenizer(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}
  std::shared_ptr<const Impl> impl_;
};

}  // namespace lmforge::tok
