// Finding special-token text in a string (internal to the tokenizer).
//
// Candidates are grouped by first byte and tried longest first, so at the leftmost position
// where any (allowed) special occurs, the longest one wins, whatever the order they were
// declared in. When all specials share one first byte (the usual "<|...|>"), the search is a
// memchr for that byte.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::tok::detail {

class SpecialMatcher {
 public:
  static constexpr size_t npos = static_cast<size_t>(-1);
  struct Match {
    size_t pos = npos;  // npos: none
    size_t index = 0;   // into the texts given to the constructor
  };

  SpecialMatcher() = default;
  explicit SpecialMatcher(std::vector<std::string> texts);

  // Leftmost occurrence at or after `from` among the texts with mask[index] != 0 (all texts when
  // mask is null); the longest one at that position.
  Match find(std::string_view text, size_t from, const std::vector<uint8_t>* mask) const;
  // True if some occurrence of a text covers both p-1 and p (cutting at p would break it).
  bool spans(std::string_view text, size_t p) const;
  bool empty() const { return texts_.empty(); }
  size_t max_length() const { return max_length_; }

 private:
  bool match_at(std::string_view text, size_t i, const std::vector<uint8_t>* mask, size_t& index) const;
  std::vector<std::string> texts_;
  std::array<std::vector<uint32_t>, 256> by_first_byte_;  // indices, longest first
  int single_first_byte_ = -1;                            // the only first byte, or -1
  size_t max_length_ = 0;
};

}  // namespace lmforge::tok::detail
