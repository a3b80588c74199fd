// Helpers shared by the trainer tests: a simple pre-tokenizer, generated corpora and a scratch
// directory for corpus files.
#pragma once

#include <unistd.h>

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <random>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/bpe_trainer_count.h"

namespace lmforge::tok::testing {

// A directory of its own under the system's temporary directory, removed with everything in it
// when the object goes.
struct ScratchDir {
  explicit ScratchDir(const std::string& tag)
      : path((std::filesystem::temp_directory_path() / ("lmforge_" + tag + "_" + std::to_string(::getpid()))).string()) {
    std::filesystem::create_directories(path);
  }
  ~ScratchDir() { std::filesystem::remove_all(path); }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  // Writes `content` to the file `name` in the directory; returns its path.
  std::string file(const std::string& name, const std::string& content) const {
    const std::string p = path + "/" + name;
    std::ofstream(p, std::ios::binary) << content;
    return p;
  }
  std::string path;
};

// Runs of one class (ASCII letters and all bytes >= 0x80, digits, whitespace, the rest); a single
// space joins the run that follows it, as in GPT-2. Cutting after "\n" before a letter never
// changes its pieces, like the real patterns.
inline void simple_split(std::string_view text, const std::function<void(std::string_view)>& emit) {
  auto cls = [](unsigned char c) {
    if (c >= 0x80 || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z')) return 0;
    if (c >= '0' && c <= '9') return 1;
    if (c == ' ' || (c >= '\t' && c <= '\r')) return 2;
    return 3;
  };
  size_t i = 0;
  while (i < text.size()) {
    size_t j = i;
    if (text[i] == ' ' && i + 1 < text.size() && cls(static_cast<unsigned char>(text[i + 1])) != 2) ++j;
    const int c = cls(static_cast<unsigned char>(text[j]));
    ++j;
    while (j < text.size() && cls(static_cast<unsigned char>(text[j])) == c) {
      if (c == 2 && text[j] == ' ' && j + 1 < text.size() && cls(static_cast<unsigned char>(text[j + 1])) != 2) break;
      ++j;
    }
    emit(text.substr(i, j - i));
    i = j;
  }
}

inline const SplitFn& simple_split_fn() {
  static const SplitFn f = [](std::string_view t, const std::function<void(std::string_view)>& e) {
    simple_split(t, e);
  };
  return f;
}

// Words drawn from a Zipf-like distribution over random words, with spaces, newlines, digits.
inline std::string random_words_corpus(uint32_t seed, size_t n_words, std::string_view alphabet = "abcdefghij") {
  std::mt19937 rng(seed);
  std::vector<std::string> vocab;
  for (int i = 0; i < 200; ++i) {
    std::string w;
    const int len = 1 + static_cast<int>(rng() % 8);
    for (int k = 0; k < len; ++k) w += alphabet[rng() % alphabet.size()];
    vocab.push_back(w);
  }
  std::string out;
  for (size_t i = 0; i < n_words; ++i) {
    const double u = std::uniform_real_distribution<double>(0, 1)(rng);
    out += vocab[static_cast<size_t>(u * u * u * static_cast<double>(vocab.size()))];
    const uint32_t r = rng() % 20;
    out += r == 0 ? "\n" : r == 1 ? ". " : r == 2 ? " 42 " : " ";
  }
  return out;
}

// Multi-byte UTF-8: Cyrillic, CJK, emoji and accented Latin mixed with ASCII.
inline std::string unicode_corpus(uint32_t seed, size_t n_words) {
  static const char* const kParts[] = {"при", "вет", "мир", "日本", "語", "中文", "😀", "👍🏽", "é", "ß",
                                       "ñ",   "ü",   "a",   "the", "🇫🇷", "한국", "\u00a0", "x"};
  std::mt19937 rng(seed);
  std::string out;
  for (size_t i = 0; i < n_words; ++i) {
    const int len = 1 + static_cast<int>(rng() % 4);
    for (int k = 0; k < len; ++k) out += kParts[rng() % std::size(kParts)];
    out += rng() % 10 == 0 ? "\n" : " ";
  }
  return out;
}

// Many distinct words of count 1 over a tiny alphabet: most steps are ties.
inline std::string tie_heavy_corpus(uint32_t seed, size_t n_words) {
  std::mt19937 rng(seed);
  std::string out;
  for (size_t i = 0; i < n_words; ++i) {
    const int len = 2 + static_cast<int>(rng() % 5);
    for (int k = 0; k < len; ++k) out += static_cast<char>("abc\xff"[rng() % 4]);
    out += ' ';
  }
  return out;
}

// Long repeated runs: the inputs that make naive BPE quadratic.
inline std::string repetitive_corpus() {
  std::string out;
  out += std::string(1000, 'a') + " ";
  for (int i = 0; i < 300; ++i) out += "ab";
  out += " ";
  for (int i = 0; i < 50; ++i) out += "aaaa bbbb abab baba\n";
  out += std::string(257, 'b') + "\n" + std::string(64, ' ') + "x";
  return out;
}

}  // namespace lmforge::tok::testing
