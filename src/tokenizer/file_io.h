// Whole-file reading and crash-safe writing for tokenizer files (internal to the tokenizer).
#pragma once

#include <string>
#include <string_view>

namespace lmforge::tok::detail {

// The file's bytes; Error naming the file if it cannot be read.
std::string read_file(const std::string& path);
// Writes to path + ".tmp" and renames it over path, so a crash never leaves half a file.
void write_file_atomic(const std::string& path, std::string_view content);

}  // namespace lmforge::tok::detail
