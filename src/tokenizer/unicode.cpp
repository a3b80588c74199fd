#include "tokenizer/unicode.h"

#include <utf8proc.h>

#include <cstring>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace lmforge::tok::unicode {

bool is_white_space(uint32_t cp) {
  // PropList.txt, White_Space (Unicode 6.3 and later).
  if (cp >= 0x09 && cp <= 0x0D) return true;
  if (cp >= 0x2000 && cp <= 0x200A) return true;
  switch (cp) {
    case 0x20: case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F:
    case 0x3000:
      return true;
    default:
      return false;
  }
}

uint8_t compute_flags(uint32_t cp) {
  uint8_t f = is_white_space(cp) ? kSpace : 0;
  if (cp >= 0xD800 && cp <= 0xDFFF) return f;  // surrogates never decode from valid UTF-8
  switch (utf8proc_category(static_cast<utf8proc_int32_t>(cp))) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LT:
      f |= kLetter | kUpperish;
      break;
    case UTF8PROC_CATEGORY_LL:
      f |= kLetter | kLowerish;
      break;
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      f |= kLetter | kUpperish | kLowerish;
      break;
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_MC:
    case UTF8PROC_CATEGORY_ME:
      f |= kMark | kUpperish | kLowerish;
      break;
    case UTF8PROC_CATEGORY_ND:
    case UTF8PROC_CATEGORY_NL:
    case UTF8PROC_CATEGORY_NO:
      f |= kNumber;
      break;
    default:
      break;
  }
  return f;
}

const ClassTable& ClassTable::get() {
  static const ClassTable table;
  return table;
}

ClassTable::ClassTable() {
  // Deduplicate the 4352 blocks of 256 code points: most of the code space is unassigned or
  // one uniform script, so a few hundred distinct blocks remain.
  std::unordered_map<std::string, uint16_t> seen;
  std::string block(256, '\0');
  for (uint32_t hi = 0; hi < (0x110000 >> 8); ++hi) {
    for (uint32_t lo = 0; lo < 256; ++lo) block[lo] = static_cast<char>(compute_flags(hi << 8 | lo));
    auto [it, inserted] = seen.try_emplace(block, static_cast<uint16_t>(seen.size()));
    if (inserted) storage_.insert(storage_.end(), block.begin(), block.end());
    index_[hi] = it->second;
  }
  blocks_ = storage_.data();
  n_blocks_ = seen.size();
}

size_t utf8_invalid_length(const uint8_t* p, const uint8_t* end) {
  const uint8_t b0 = p[0];
  size_t need;
  uint8_t lo = 0x80, hi = 0xBF;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    need = 2;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    need = 3;
    if (b0 == 0xE0) lo = 0xA0;
    if (b0 == 0xED) hi = 0x9F;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    need = 4;
    if (b0 == 0xF0) lo = 0x90;
    if (b0 == 0xF4) hi = 0x8F;
  } else {
    return 1;
  }
  size_t n = 1;
  const size_t left = static_cast<size_t>(end - p);
  if (n < left && p[n] >= lo && p[n] <= hi) {
    ++n;
    while (n < need && n < left && (p[n] & 0xC0) == 0x80) ++n;
  }
  return n;
}

size_t utf8_first_invalid(const char* s, size_t n) {
  const auto* p = reinterpret_cast<const uint8_t*>(s);
  const uint8_t* end = p + n;
  size_t i = 0;
  while (i < n) {
    // 8 ASCII bytes at a time.
    if (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, p + i, 8);
      if ((w & 0x8080808080808080ull) == 0) {
        i += 8;
        continue;
      }
    }
    uint32_t cp;
    const uint32_t len = utf8_decode(p + i, end, cp);
    if (len == 0) return i;
    i += len;
  }
  return n;
}

void utf8_append(uint32_t cp, std::string& out) {
  if (cp < 0x80) {
    out += static_cast<char>(cp);
  } else if (cp < 0x800) {
    out += static_cast<char>(0xC0 | cp >> 6);
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else if (cp < 0x10000) {
    out += static_cast<char>(0xE0 | cp >> 12);
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | cp >> 18);
    out += static_cast<char>(0x80 | (cp >> 12 & 0x3F));
    out += static_cast<char>(0x80 | (cp >> 6 & 0x3F));
    out += static_cast<char>(0x80 | (cp & 0x3F));
  }
}

}  // namespace lmforge::tok::unicode
