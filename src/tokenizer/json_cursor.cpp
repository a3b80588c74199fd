#include "tokenizer/json_cursor.h"

#include <fmt/format.h>

#include <algorithm>
#include <array>
#include <bit>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <unordered_set>
#include <vector>

#include "core/error.h"
#include "tokenizer/unicode.h"

namespace lmforge::tok {
namespace {

// Bytes a string holds as they are: printable ASCII other than '"' and '\\'.
constexpr std::array<bool, 256> kPlainStringByte = [] {
  std::array<bool, 256> t{};
  for (int b = 0x20; b < 0x80; ++b) t[b] = b != '"' && b != '\\';
  return t;
}();

bool is_json_space(char c) { return c == ' ' || c == '\n' || c == '\r' || c == '\t'; }
bool is_ascii_digit(char c) { return c >= '0' && c <= '9'; }

// How a byte is shown in an error: itself if printable ASCII, else its hex value.
std::string shown_byte(std::string_view text, size_t at) {
  if (at >= text.size()) return "the end of the text";
  const auto c = static_cast<unsigned char>(text[at]);
  if (c >= 0x20 && c < 0x7F) return fmt::format("'{}'", static_cast<char>(c));
  return fmt::format("byte 0x{:02X}", c);
}

}  // namespace

JsonCursor::JsonCursor(std::string_view text, std::string path) : text_(text), path_(std::move(path)) {
  if (text_.starts_with("\xEF\xBB\xBF")) pos_ = 3;
}

char JsonCursor::peek() {
  while (pos_ < text_.size() && is_json_space(text_[pos_])) ++pos_;
  return pos_ < text_.size() ? text_[pos_] : '\0';
}

void JsonCursor::expect_end() {
  peek();
  if (pos_ < text_.size()) fail(pos_, fmt::format("expected the end of the text after the value, got {}",
                                                  shown_byte(text_, pos_)));
}

void JsonCursor::fail(size_t at, std::string_view what) const {
  at = std::min(at, text_.size());
  const size_t line = 1 + static_cast<size_t>(std::count(text_.begin(), text_.begin() + at, '\n'));
  const size_t line_start = at == 0 ? std::string_view::npos : text_.rfind('\n', at - 1);
  const size_t col = at - (line_start == std::string_view::npos ? 0 : line_start + 1) + 1;
  throw Error(fmt::format("{}:{}:{}: not valid JSON: {}", path_, line, col, what));
}

void JsonCursor::duplicate_key(std::string_view key, std::string_view object) const {
  throw Error(fmt::format("{}: key '{}' appears twice in {}; one of them would be dropped", path_, key,
                          object.empty() ? "the top-level object" : fmt::format("'{}'", object)));
}

void JsonCursor::begin_object() {
  if (peek() != '{') fail(pos_, fmt::format("expected an object, got {}", shown_byte(text_, pos_)));
  ++pos_;
}

bool JsonCursor::next_key(bool& first, std::string_view& key, std::string& scratch) {
  const char c = peek();
  if (c == '}') {
    ++pos_;
    return false;
  }
  if (!first) {
    if (c != ',') fail(pos_, fmt::format("expected ',' or '}}' after an object member, got {}", shown_byte(text_, pos_)));
    ++pos_;
    if (peek() != '"') fail(pos_, fmt::format("expected a string key after ',', got {}", shown_byte(text_, pos_)));
  } else if (c != '"') {
    fail(pos_, fmt::format("expected a string key or '}}', got {}", shown_byte(text_, pos_)));
  }
  first = false;
  key = read_string(scratch);
  last_key_.assign(key);
  return true;
}

void JsonCursor::expect_colon() {
  if (peek() != ':') fail(pos_, fmt::format("expected ':' after an object key, got {}", shown_byte(text_, pos_)));
  ++pos_;
}

void JsonCursor::begin_array() {
  if (peek() != '[') fail(pos_, fmt::format("expected an array, got {}", shown_byte(text_, pos_)));
  ++pos_;
}

bool JsonCursor::next_element(bool& first) {
  const char c = peek();
  if (c == ']') {
    ++pos_;
    return false;
  }
  if (!first) {
    if (c != ',') fail(pos_, fmt::format("expected ',' or ']' after an array element, got {}", shown_byte(text_, pos_)));
    ++pos_;
    peek();
  }
  first = false;
  return true;
}

uint32_t JsonCursor::read_hex4(size_t at) {
  uint32_t v = 0;
  for (size_t i = 0; i < 4; ++i) {
    const size_t k = at + i;
    const char c = k < text_.size() ? text_[k] : '\0';
    uint32_t d = 0;
    if (c >= '0' && c <= '9') {
      d = static_cast<uint32_t>(c - '0');
    } else if (c >= 'a' && c <= 'f') {
      d = static_cast<uint32_t>(c - 'a' + 10);
    } else if (c >= 'A' && c <= 'F') {
      d = static_cast<uint32_t>(c - 'A' + 10);
    } else {
      fail(k, fmt::format("a \\u escape needs four hex digits, got {}", shown_byte(text_, k)));
    }
    v = v << 4 | d;
  }
  return v;
}

std::string_view JsonCursor::read_string(std::string& scratch) {
  if (peek() != '"') fail(pos_, fmt::format("expected a string, got {}", shown_byte(text_, pos_)));
  const size_t n = text_.size();
  const char* s = text_.data();
  size_t i = pos_ + 1;
  size_t run = i;  // start of the bytes not yet copied into scratch (once there was an escape)
  bool escaped = false;
  for (;;) {
    // Plain bytes 8 at a time (most of a file is string text), then one by one up to the next
    // byte that is not plain. Each test flags a byte that is exact when it is the lowest flagged
    // one, which is all that is used.
    constexpr uint64_t kOnes = 0x0101010101010101ull, kHigh = 0x8080808080808080ull;
    auto zero_byte = [](uint64_t v) { return (v - kOnes) & ~v & kHigh; };
    while (i + 8 <= n) {
      uint64_t w;
      std::memcpy(&w, s + i, 8);
      const uint64_t stop = zero_byte(w ^ (kOnes * '"')) | zero_byte(w ^ (kOnes * '\\')) |
                            ((w - kOnes * 0x20) & ~w & kHigh) | (w & kHigh);
      if (stop != 0) {
        i += static_cast<size_t>(std::countr_zero(stop)) / 8;
        break;
      }
      i += 8;
    }
    while (i < n && kPlainStringByte[static_cast<unsigned char>(s[i])]) ++i;
    if (i >= n) fail(n, "a string is not closed (no '\"' before the end of the text)");
    const auto c = static_cast<unsigned char>(s[i]);
    if (c == '"') break;
    if (c >= 0x80) {
      uint32_t cp = 0;
      const uint32_t len =
          unicode::utf8_decode(reinterpret_cast<const uint8_t*>(s + i), reinterpret_cast<const uint8_t*>(s + n), cp);
      if (len == 0) fail(i, fmt::format("invalid UTF-8 in a string at {}", shown_byte(text_, i)));
      i += len;
      continue;
    }
    if (c < 0x20) fail(i, fmt::format("control character 0x{:02X} in a string must be escaped", c));
    // A backslash.
    if (!escaped) {
      scratch.clear();
      escaped = true;
    }
    scratch.append(s + run, i - run);
    const char e = i + 1 < n ? s[i + 1] : '\0';
    size_t next = i + 2;
    switch (e) {
      case '"': scratch += '"'; break;
      case '\\': scratch += '\\'; break;
      case '/': scratch += '/'; break;
      case 'b': scratch += '\b'; break;
      case 'f': scratch += '\f'; break;
      case 'n': scratch += '\n'; break;
      case 'r': scratch += '\r'; break;
      case 't': scratch += '\t'; break;
      case 'u': {
        uint32_t cp = read_hex4(i + 2);
        next = i + 6;
        if (cp >= 0xDC00 && cp <= 0xDFFF)
          fail(i, fmt::format("\\u{:04X} is a low surrogate with no high surrogate before it", cp));
        if (cp >= 0xD800 && cp <= 0xDBFF) {
          if (next + 1 >= n || s[next] != '\\' || s[next + 1] != 'u')
            fail(next, fmt::format("\\u{:04X} is a high surrogate not followed by a \\u escape of a low one", cp));
          const uint32_t lo = read_hex4(next + 2);
          if (lo < 0xDC00 || lo > 0xDFFF)
            fail(next, fmt::format("\\u{:04X} is a high surrogate followed by \\u{:04X}, not a low surrogate", cp,
                                   lo));
          cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
          next += 6;
        }
        unicode::utf8_append(cp, scratch);
        break;
      }
      default:
        fail(i + 1, fmt::format("invalid escape '\\' followed by {} in a string", shown_byte(text_, i + 1)));
    }
    i = run = next;
  }
  pos_ = i + 1;
  if (!escaped) return text_.substr(run, i - run);
  scratch.append(s + run, i - run);
  return scratch;
}

bool JsonCursor::read_number(uint64_t& value) {
  peek();
  const size_t n = text_.size();
  size_t i = pos_;
  bool is_unsigned = true;
  if (i < n && text_[i] == '-') {
    is_unsigned = false;
    ++i;
  }
  if (i >= n || !is_ascii_digit(text_[i])) fail(i, fmt::format("a number needs a digit here, got {}", shown_byte(text_, i)));
  value = 0;
  if (text_[i] == '0') {
    ++i;
  } else {
    for (; i < n && is_ascii_digit(text_[i]); ++i) {
      const auto d = static_cast<uint64_t>(text_[i] - '0');
      if (value > (UINT64_MAX - d) / 10) is_unsigned = false;  // past 64 bits: nlohmann reads a double
      value = value * 10 + d;
    }
  }
  if (i < n && text_[i] == '.') {
    is_unsigned = false;
    ++i;
    if (i >= n || !is_ascii_digit(text_[i]))
      fail(i, fmt::format("a number needs a digit after '.', got {}", shown_byte(text_, i)));
    while (i < n && is_ascii_digit(text_[i])) ++i;
  }
  if (i < n && (text_[i] == 'e' || text_[i] == 'E')) {
    is_unsigned = false;
    ++i;
    if (i < n && (text_[i] == '+' || text_[i] == '-')) ++i;
    if (i >= n || !is_ascii_digit(text_[i]))
      fail(i, fmt::format("a number needs a digit in its exponent, got {}", shown_byte(text_, i)));
    while (i < n && is_ascii_digit(text_[i])) ++i;
  }
  // nlohmann reads a number that is no 64-bit integer as a double, and rejects it where that is
  // infinite (1e999, or 400 digits).
  const std::string_view token = text_.substr(pos_, i - pos_);
  if (!is_unsigned && (token.size() > 19 || token.find_first_of(".eE") != std::string_view::npos) &&
      !std::isfinite(std::strtod(std::string(token).c_str(), nullptr)))
    fail(pos_, fmt::format("number overflow parsing '{}'", token));
  pos_ = i;
  return is_unsigned;
}

void JsonCursor::expect_literal(std::string_view word) {
  for (size_t k = 0; k < word.size(); ++k)
    if (pos_ + k >= text_.size() || text_[pos_ + k] != word[k])
      fail(pos_ + k, fmt::format("expected '{}', got {}", word, shown_byte(text_, pos_ + k)));
  pos_ += word.size();
}

void JsonCursor::skip_scalar() {
  std::string scratch;
  uint64_t v = 0;
  const char c = peek();
  switch (c) {
    case '"': read_string(scratch); return;
    case 't': expect_literal("true"); return;
    case 'f': expect_literal("false"); return;
    case 'n': expect_literal("null"); return;
    default:
      if (c != '-' && !is_ascii_digit(c)) fail(pos_, fmt::format("expected a value, got {}", shown_byte(text_, pos_)));
      read_number(v);
  }
}

std::string_view JsonCursor::skip_value() {
  peek();
  const size_t start = pos_;
  if (start >= text_.size()) fail(start, "expected a value, got the end of the text");
  // An explicit stack, not recursion: a deeply nested text must not exhaust the call stack.
  struct Open {
    bool object;
    bool first = true;
    std::string name;  // the key this object is the value of
    std::unordered_set<std::string> keys{};
  };
  std::vector<Open> stack;
  std::string scratch;
  for (;;) {
    // At a value.
    const char c = peek();
    if (c == '{' || c == '[') {
      ++pos_;
      stack.push_back({.object = c == '{', .name = c == '{' ? last_key_ : std::string()});
    } else {
      skip_scalar();
    }
    // On to the next value, closing what ends first.
    for (;;) {
      if (stack.empty()) return text_.substr(start, pos_ - start);
      Open& o = stack.back();
      if (o.object) {
        std::string_view key;
        if (!next_key(o.first, key, scratch)) {
          stack.pop_back();
          continue;
        }
        if (!o.keys.emplace(key).second) duplicate_key(key, o.name);
        expect_colon();
      } else if (!next_element(o.first)) {
        stack.pop_back();
        continue;
      }
      break;
    }
  }
}

}  // namespace lmforge::tok
