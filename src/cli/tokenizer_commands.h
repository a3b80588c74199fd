// Registry of the nested subcommands of `lmforge tokenizer` (encode, decode, info, train, ...),
// and the small I/O helpers they share.
// Each lives in its own file (src/cli/cmd_tokenizer_<name>.cpp) and registers itself with a
// static LMFORGE_TOKENIZER_COMMAND(...), exactly like top-level commands do with
// LMFORGE_COMMAND (command.h); cmd_tokenizer.cpp adds them under `tokenizer` when main() builds
// the CLI, after all static registrations have run.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "cli/command.h"

namespace lmforge::cli {

std::vector<Command>& tokenizer_command_registry();

struct TokenizerCommandRegistrar {
  explicit TokenizerCommandRegistrar(Command c) { tokenizer_command_registry().push_back(std::move(c)); }
};

// The whole of `path` ("-" or empty: standard input) as bytes; Error naming the file.
std::string read_text_input(const std::string& path);

// Writes bytes to `path` ("-" or empty: standard output); Error on failure.
class TextOutput {
 public:
  explicit TextOutput(const std::string& path);
  ~TextOutput();
  TextOutput(const TextOutput&) = delete;
  TextOutput& operator=(const TextOutput&) = delete;
  void write(const std::string& bytes);
  void close();  // flushes; Error if anything failed

 private:
  std::string path_;
  std::FILE* f_ = nullptr;
  bool owned_ = false;
};

// Appends ids as decimal numbers joined by `sep`.
void append_token_ids(std::string& out, const std::vector<uint32_t>& ids, char sep);

}  // namespace lmforge::cli

// LMFORGE_TOKENIZER_COMMAND("name", "help", [](CLI::App& sub) { ... });
#define LMFORGE_TOKENIZER_COMMAND(name, help, setup)                                                        \
  static ::lmforge::cli::TokenizerCommandRegistrar LMFORGE_CONCAT(lmforge_tokenizer_command_, __LINE__) { \
    ::lmforge::cli::Command { name, help, setup }                                                           \
  }
