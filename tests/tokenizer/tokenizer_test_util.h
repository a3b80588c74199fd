// Shared helpers for the tokenizer tests: the reference data in tests/fixtures/tokenizers and the
// three OpenAI encodings, loaded once per test binary.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <fstream>
#include <map>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::tok::testing {

inline std::string tokenizers_dir() { return std::string(LMFORGE_FIXTURES_DIR) + "/tokenizers"; }

inline const std::vector<std::string>& encoding_names() {
  static const std::vector<std::string> names = {"r50k_base", "cl100k_base", "o200k_base"};
  return names;
}

// The named encoding from its .tiktoken file (cached; Tokenizer is thread-safe and immutable).
inline const Tokenizer& encoding(const std::string& name) {
  static std::mutex mu;
  static std::map<std::string, Tokenizer> cache;
  std::lock_guard<std::mutex> lock(mu);
  auto it = cache.find(name);
  if (it == cache.end()) it = cache.emplace(name, Tokenizer::load(tokenizers_dir() + "/" + name + ".tiktoken")).first;
  return it->second;
}

struct GoldenCase {
  std::string text;
  std::vector<uint32_t> ids;
  size_t line = 0;
};

// golden/<name>.jsonl or golden/<name>.special.jsonl
inline std::vector<GoldenCase> golden(const std::string& name, bool special = false) {
  const std::string path = tokenizers_dir() + "/golden/" + name + (special ? ".special.jsonl" : ".jsonl");
  std::ifstream in(path);
  std::vector<GoldenCase> out;
  std::string line;
  size_t n = 0;
  while (std::getline(in, line)) {
    ++n;
    if (line.empty()) continue;
    auto j = nlohmann::json::parse(line);
    out.push_back({j["text"].get<std::string>(), j["ids"].get<std::vector<uint32_t>>(), n});
  }
  return out;
}

// Random bytes (any values).
inline std::string random_bytes(std::mt19937_64& rng, size_t n) {
  std::string s(n, '\0');
  for (auto& c : s) c = static_cast<char>(rng() & 0xFF);
  return s;
}

inline void append_utf8(std::string& out, uint32_t cp) {
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

// Random valid UTF-8 from a mix of ASCII, Latin, CJK, emoji, marks, spaces and random scalars.
inline std::string random_unicode(std::mt19937_64& rng, size_t n_chars) {
  static const uint32_t interesting[] = {
      ' ',    ' ',    ' ',    '\n',   '\r',   '\t',   '\'',   's',    'S',    't',    'l',    'e',    'r',
      'v',    'd',    'm',    'A',    'z',    '0',    '7',    '.',    ',',    '/',    '-',    '!',    0x0B,
      0x0C,   0x1C,   0x1F,   0x85,   0xA0,   0x180E, 0x200B, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000, 0xFEFF,
      0x1680, 0x2000, 0x200A, 0x0301, 0x0308, 0x20DD, 0x0903, 0x01C5, 0x01C4, 0x01C6, 0x02B0, 0x05D0, 0x0627,
      0x4E2D, 0x6587, 0x3042, 0xAC00, 0x0660, 0x0966, 0x2160, 0x00BD, 0x00B2, 0x017F, 0x212A, 0x1F600, 0x1F44D,
      0x1F3FD, 0x200D, 0xFE0F, 0x1F1FA, 0x10400, 0x1D7CE, 0xE000, 0xFFFD, 0x10FFFF, 0x00DF, 0x0130, 0x2019};
  std::string s;
  for (size_t i = 0; i < n_chars; ++i) {
    uint32_t cp;
    const uint64_t r = rng() % 10;
    if (r < 6) {
      cp = interesting[rng() % (sizeof(interesting) / sizeof(interesting[0]))];
    } else if (r < 8) {
      cp = 0x20 + static_cast<uint32_t>(rng() % 0x5F);
    } else {
      do cp = static_cast<uint32_t>(rng() % 0x110000);
      while (cp >= 0xD800 && cp <= 0xDFFF);
    }
    append_utf8(s, cp);
  }
  return s;
}

}  // namespace lmforge::tok::testing
