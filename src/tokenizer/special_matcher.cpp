#include "tokenizer/special_matcher.h"

#include <algorithm>
#include <cstring>

namespace lmforge::tok::detail {

SpecialMatcher::SpecialMatcher(std::vector<std::string> texts) : texts_(std::move(texts)) {
  for (uint32_t i = 0; i < texts_.size(); ++i) {
    if (texts_[i].empty()) continue;
    by_first_byte_[static_cast<uint8_t>(texts_[i][0])].push_back(i);
    max_length_ = std::max(max_length_, texts_[i].size());
  }
  int distinct = 0;
  for (int b = 0; b < 256; ++b) {
    auto& v = by_first_byte_[b];
    if (v.empty()) continue;
    std::stable_sort(v.begin(), v.end(), [&](uint32_t x, uint32_t y) { return texts_[x].size() > texts_[y].size(); });
    ++distinct;
    single_first_byte_ = b;
  }
  if (distinct != 1) single_first_byte_ = -1;
}

bool SpecialMatcher::match_at(std::string_view text, size_t i, const std::vector<uint8_t>* mask,
                              size_t& index) const {
  for (uint32_t k : by_first_byte_[static_cast<uint8_t>(text[i])]) {
    if (mask && !(*mask)[k]) continue;
    const std::string& s = texts_[k];
    if (s.size() <= text.size() - i && std::memcmp(text.data() + i, s.data(), s.size()) == 0) {
      index = k;
      return true;
    }
  }
  return false;
}

SpecialMatcher::Match SpecialMatcher::find(std::string_view text, size_t from, const std::vector<uint8_t>* mask) const {
  if (texts_.empty()) return {};
  size_t index = 0;
  if (single_first_byte_ >= 0) {
    while (from < text.size()) {
      const void* hit = std::memchr(text.data() + from, single_first_byte_, text.size() - from);
      if (hit == nullptr) return {};
      const size_t i = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
      if (match_at(text, i, mask, index)) return {i, index};
      from = i + 1;
    }
    return {};
  }
  for (size_t i = from; i < text.size(); ++i) {
    if (by_first_byte_[static_cast<uint8_t>(text[i])].empty()) continue;
    if (match_at(text, i, mask, index)) return {i, index};
  }
  return {};
}

bool SpecialMatcher::spans(std::string_view text, size_t p) const {
  if (texts_.empty() || p == 0 || p >= text.size()) return false;
  const size_t lo = p >= max_length_ ? p - max_length_ + 1 : 0;
  for (size_t start = lo; start < p; ++start) {
    for (uint32_t k : by_first_byte_[static_cast<uint8_t>(text[start])]) {
      const std::string& s = texts_[k];
      if (start + s.size() > p && start + s.size() <= text.size() &&
          std::memcmp(text.data() + start, s.data(), s.size()) == 0)
        return true;
    }
  }
  return false;
}

}  // namespace lmforge::tok::detail
