#include "tokenizer/base64.h"

#include <array>
#include <cstdint>

namespace lmforge::tok {
namespace {

constexpr char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

constexpr std::array<int8_t, 256> make_decode_table() {
  std::array<int8_t, 256> t{};
  for (auto& v : t) v = -1;
  for (int i = 0; i < 64; ++i) t[static_cast<uint8_t>(kAlphabet[i])] = static_cast<int8_t>(i);
  return t;
}
constexpr auto kDecode = make_decode_table();

}  // namespace

std::string base64_encode(std::string_view bytes) {
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 3 <= bytes.size(); i += 3) {
    const uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16 |
                       uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8 | static_cast<uint8_t>(bytes[i + 2]);
    out += kAlphabet[v >> 18];
    out += kAlphabet[v >> 12 & 63];
    out += kAlphabet[v >> 6 & 63];
    out += kAlphabet[v & 63];
  }
  const size_t rest = bytes.size() - i;
  if (rest > 0) {
    uint32_t v = uint32_t{static_cast<uint8_t>(bytes[i])} << 16;
    if (rest == 2) v |= uint32_t{static_cast<uint8_t>(bytes[i + 1])} << 8;
    out += kAlphabet[v >> 18];
    out += kAlphabet[v >> 12 & 63];
    out += rest == 2 ? kAlphabet[v >> 6 & 63] : '=';
    out += '=';
  }
  return out;
}

bool base64_decode_into(std::string_view text, std::string& out) {
  if (text.size() % 4 != 0) return false;
  if (text.empty()) {
    out.clear();
    return true;
  }
  const size_t pad = text.back() != '=' ? 0 : text[text.size() - 2] != '=' ? 1 : 2;
  out.resize(text.size() / 4 * 3 - pad);
  const auto* in = reinterpret_cast<const uint8_t*>(text.data());
  auto* o = reinterpret_cast<uint8_t*>(out.data());
  // Whole groups: four table lookups, one sign test for all of them ('=' decodes to -1 too).
  const size_t full = text.size() / 4 - (pad > 0);
  for (size_t g = 0; g < full; ++g, in += 4, o += 3) {
    const int a = kDecode[in[0]], b = kDecode[in[1]], c = kDecode[in[2]], d = kDecode[in[3]];
    if ((a | b | c | d) < 0) return false;
    const uint32_t w = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6 | uint32_t(d);
    o[0] = static_cast<uint8_t>(w >> 16);
    o[1] = static_cast<uint8_t>(w >> 8);
    o[2] = static_cast<uint8_t>(w);
  }
  if (pad == 0) return true;
  // The padded last group: "xx==" or "xxx=", and the bits the padding drops must be zero
  // (canonical form).
  const int a = kDecode[in[0]], b = kDecode[in[1]], c = pad == 1 ? kDecode[in[2]] : 0;
  if ((a | b | c) < 0) return false;
  const uint32_t w = uint32_t(a) << 18 | uint32_t(b) << 12 | uint32_t(c) << 6;
  o[0] = static_cast<uint8_t>(w >> 16);
  if (pad == 1) o[1] = static_cast<uint8_t>(w >> 8);
  return (w & (pad == 1 ? 0xFFu : 0xFFFFu)) == 0;
}

std::optional<std::string> base64_decode(std::string_view text) {
  std::string out;
  if (!base64_decode_into(text, out)) return std::nullopt;
  return out;
}

}  // namespace lmforge::tok
