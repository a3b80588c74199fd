// The small I/O helpers shared by the `lmforge tokenizer` commands (encode, decode, info, train:
// src/cli/cmd_tokenizer_<name>.cpp, each registered with LMFORGE_SUBCOMMAND("tokenizer", ...),
// command.h). Defined in cmd_tokenizer.cpp.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::cli {

// The whole of `path` ("-" or empty: standard input) as bytes; Error naming the file.
std::string read_text_input(const std::string& path);

// Writes bytes to `path` ("-" or empty: standard output); Error on failure. A file is written as
// "<path>.tmp" and renamed over `path` by close(), so an error (or a kill) leaves any earlier
// file at `path` as it was and no partial output under its name.
class TextOutput {
 public:
  explicit TextOutput(const std::string& path);
  ~TextOutput();
  TextOutput(const TextOutput&) = delete;
  TextOutput& operator=(const TextOutput&) = delete;
  void write(std::string_view bytes);
  void close();  // flushes; Error if anything failed

 private:
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  bool owned_ = false;
};

// Appends ids as decimal numbers joined by `sep`.
void append_token_ids(std::string& out, const std::vector<uint32_t>& ids, char sep);

}  // namespace lmforge::cli
