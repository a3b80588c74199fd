#include "tokenizer/byte_unicode.h"

#include <array>

#include "tokenizer/unicode.h"

namespace lmforge::tok {
namespace {

struct Tables {
  std::array<uint32_t, 256> to_char{};
  std::array<int16_t, 0x144> to_byte{};  // -1 for characters outside the mapping
  Tables() {
    to_byte.fill(-1);
    auto self = [](int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); };
    uint32_t next = 0x100;
    for (int b = 0; b < 256; ++b) {
      to_char[b] = self(b) ? static_cast<uint32_t>(b) : next++;
      to_byte[to_char[b]] = static_cast<int16_t>(b);
    }
  }
};

const Tables& tables() {
  static const Tables t;
  return t;
}

}  // namespace

uint32_t byte_to_unicode(uint8_t b) { return tables().to_char[b]; }

std::string bytes_to_byte_level(std::string_view bytes) {
  const Tables& t = tables();
  std::string out;
  out.reserve(bytes.size() * 2);
  for (unsigned char c : bytes) unicode::utf8_append(t.to_char[c], out);
  return out;
}

std::optional<std::string> byte_level_to_bytes(std::string_view text, uint32_t* bad_char) {
  const Tables& t = tables();
  std::string out;
  out.reserve(text.size());
  const auto* p = reinterpret_cast<const uint8_t*>(text.data());
  const auto* end = p + text.size();
  while (p < end) {
    uint32_t cp = 0;
    const uint32_t len = unicode::utf8_decode(p, end, cp);
    if (len == 0 || cp >= t.to_byte.size() || t.to_byte[cp] < 0) {
      if (bad_char) *bad_char = len == 0 ? 0xFFFD : cp;
      return std::nullopt;
    }
    out += static_cast<char>(t.to_byte[cp]);
    p += len;
  }
  return out;
}

}  // namespace lmforge::tok
