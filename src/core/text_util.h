// Small text helpers shared by the layers that read names and line-oriented files.
#pragma once

#include <string>
#include <string_view>

namespace lmforge {

// Natural order: runs of digits compare by their value, so "train_2.bin" sorts before
// "train_10.bin" and "layers.9.x" before "layers.10.x"; everything else compares by byte.
bool natural_less(const std::string& a, const std::string& b);

// s without leading and trailing spaces, tabs and carriage returns.
std::string_view trim_blanks(std::string_view s);

}  // namespace lmforge
