#include "data/corpus_tokenize_text.h"

#include <string.h>

#include <cstring>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/bpe_trainer_count.h"

namespace lmforge::data {

DocumentMode parse_document_mode(std::string_view s) {
  if (s == "file") return DocumentMode::File;
  if (s == "paragraph") return DocumentMode::Paragraph;
  throw Error(fmt::format("unknown document mode '{}' (expected file or paragraph)", s));
}

std::string_view document_mode_name(DocumentMode m) { return m == DocumentMode::File ? "file" : "paragraph"; }

namespace {

// Length of the valid UTF-8 sequence at s[i], or 0 with *bad set to the length of the maximal
// invalid subpart (>= 1) when it is ill-formed.
inline size_t utf8_sequence(std::string_view s, size_t i, size_t* bad) {
  const auto c = static_cast<unsigned char>(s[i]);
  const size_t n = s.size();
  auto cont = [&](size_t k, unsigned lo, unsigned hi) {
    if (i + k >= n) return false;
    const auto b = static_cast<unsigned char>(s[i + k]);
    return b >= lo && b <= hi;
  };
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) {
    if (cont(1, 0x80, 0xBF)) return 2;
    *bad = 1;
    return 0;
  }
  if (c >= 0xE0 && c <= 0xEF) {
    const unsigned lo = c == 0xE0 ? 0xA0 : 0x80, hi = c == 0xED ? 0x9F : 0xBF;
    if (!cont(1, lo, hi)) {
      *bad = 1;
      return 0;
    }
    if (cont(2, 0x80, 0xBF)) return 3;
    *bad = 2;
    return 0;
  }
  if (c >= 0xF0 && c <= 0xF4) {
    const unsigned lo = c == 0xF0 ? 0x90 : 0x80, hi = c == 0xF4 ? 0x8F : 0xBF;
    if (!cont(1, lo, hi)) {
      *bad = 1;
      return 0;
    }
    if (!cont(2, 0x80, 0xBF)) {
      *bad = 2;
      return 0;
    }
    if (cont(3, 0x80, 0xBF)) return 4;
    *bad = 3;
    return 0;
  }
  *bad = 1;
  return 0;
}

inline bool all_ascii8(const char* p) {
  uint64_t v;
  std::memcpy(&v, p, 8);
  return (v & 0x8080808080808080ull) == 0;
}

}  // namespace

uint64_t count_invalid_utf8(std::string_view s) {
  uint64_t bad_count = 0;
  size_t i = 0;
  while (i < s.size()) {
    if (i + 8 <= s.size() && all_ascii8(s.data() + i)) {
      i += 8;
      continue;
    }
    size_t bad = 0;
    const size_t len = utf8_sequence(s, i, &bad);
    if (len > 0) {
      i += len;
    } else {
      ++bad_count;
      i += bad;
    }
  }
  return bad_count;
}

std::string replace_invalid_utf8(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  size_t i = 0;
  while (i < s.size()) {
    size_t bad = 0;
    const size_t len = utf8_sequence(s, i, &bad);
    if (len > 0) {
      out.append(s.data() + i, len);
      i += len;
    } else {
      out += "\xEF\xBF\xBD";
      i += bad;
    }
  }
  return out;
}

bool is_blank_line(std::string_view text, size_t line_start) {
  for (size_t i = line_start; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '\n') return true;
    if (c != ' ' && c != '\t' && c != '\r') return false;
  }
  return true;  // an unterminated last line of only spaces
}

Cut find_cut(std::string_view text, size_t from, DocumentMode mode, bool jsonl) {
  // Candidates are line starts p (text[p-1] == '\n') with from <= p < text.size().
  size_t i = from > 0 ? from - 1 : 0;
  static const std::vector<std::string> kNoSpecials;
  while (i < text.size()) {
    const void* hit = std::memchr(text.data() + i, '\n', text.size() - i);
    if (hit == nullptr) break;
    i = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
    const size_t p = i + 1;
    ++i;
    if (p < from || p >= text.size()) continue;
    if (jsonl) return {p, CutKind::Document};
    if (mode == DocumentMode::Paragraph && p >= 2) {
      // Undecidable until the line at p ends: is it blank?
      if (is_blank_line(text, p) && std::memchr(text.data() + p, '\n', text.size() - p) == nullptr) return {};
    }
    if (mode == DocumentMode::Paragraph && p >= 2 && !is_blank_line(text, p)) {
      // The start of a non-blank line whose previous line is blank.
      const void* prev_nl = memrchr(text.data(), '\n', p - 1);
      const size_t prev_start =
          prev_nl == nullptr ? 0 : static_cast<size_t>(static_cast<const char*>(prev_nl) - text.data()) + 1;
      if (is_blank_line(text, prev_start)) return {p, CutKind::Document};
    }
    if (tok::is_safe_split(text, p, kNoSpecials)) return {p, CutKind::Safe};
  }
  return {};
}

size_t forced_cut(std::string_view text) {
  if (text.size() < 2) return text.size();
  const void* nl = memrchr(text.data(), '\n', text.size() - 1);
  if (nl != nullptr) return static_cast<size_t>(static_cast<const char*>(nl) - text.data()) + 1;
  size_t p = text.size() - 1;
  while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
  return p > 0 ? p : text.size();
}

}  // namespace lmforge::data
