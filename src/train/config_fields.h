// The field table behind RunConfig (train/config.h): one entry per key with a typed setter and
// a renderer. Shared by the TOML reader (config_toml.cpp, the one file that compiles toml++)
// and the rest of the config code (config.cpp).
#pragma once

#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "train/config.h"

namespace lmforge::train::detail {

// A value as read from TOML or a --set override.
using ConfigValue = std::variant<int64_t, double, bool, std::string>;

struct ConfigField {
  enum class Kind { Int, Float, Bool, String };  // enums are strings
  std::string key;   // "section.name"
  Kind kind = Kind::String;
  std::string help;
  // Stores a value; throws Error naming the key when the type does not fit.
  std::function<void(const ConfigValue&)> set;
  // The current value as a TOML literal.
  std::function<std::string()> render;
};

// The fields of `config`, bound to it, in the order to_toml() writes them.
std::vector<ConfigField> config_fields(RunConfig& config);
// The field for `key`, or Error naming the key, where it came from and the closest known key.
const ConfigField& find_field(const std::vector<ConfigField>& fields, std::string_view key, std::string_view where);
// The known section names.
const std::vector<std::string>& config_sections();

// Parses TOML text into `fields`; errors name `source` and the line.
void read_toml(std::string_view text, std::string_view source, const std::vector<ConfigField>& fields);

}  // namespace lmforge::train::detail
