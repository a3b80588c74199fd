// The one translation unit that compiles toml++ (header-only, slow to compile): reading a run
// config's TOML into the field table.
#define TOML_HEADER_ONLY 1
#include <toml++/toml.h>

#include <fstream>
#include <sstream>

#include "core/error.h"
#include "core/file_util.h"
#include "train/config_fields.h"

namespace lmforge::train {

namespace detail {

namespace {

std::string where(std::string_view source, const toml::source_region& r) {
  return fmt::format("{}:{}", source, r.begin.line);
}

}  // namespace

void read_toml(std::string_view text, std::string_view source, const std::vector<ConfigField>& fields) {
  toml::table root;
  try {
    root = toml::parse(text, source);
  } catch (const toml::parse_error& e) {
    throw Error(fmt::format("{}:{}:{}: invalid TOML: {}", source, e.source().begin.line, e.source().begin.column,
                            e.description()));
  }
  const auto& sections = config_sections();
  for (const auto& [section_key, section_node] : root) {
    const std::string section(section_key.str());
    const std::string at = where(source, section_node.source());
    const bool known = std::find(sections.begin(), sections.end(), section) != sections.end();
    if (!section_node.is_table()) {
      LF_CHECK(!known, "{}: {} must be a section ([{}]), not a value", at, section, section);
      throw Error(fmt::format("{}: unknown config key {} (keys live in the sections [model], [data], [train], "
                              "[optim], [eval], [checkpoint])", at, section));
    }
    LF_CHECK(known, "{}: unknown config section [{}] (expected model, data, train, optim, eval or checkpoint)", at,
             section);
    for (const auto& [key, node] : *section_node.as_table()) {
      const std::string full = section + "." + std::string(key.str());
      const std::string kat = where(source, node.source());
      const ConfigField& f = find_field(fields, full, kat);
      ConfigValue v;
      if (auto i = node.value<int64_t>(); i && node.is_integer()) v = *i;
      else if (node.is_floating_point()) v = *node.value<double>();
      else if (node.is_boolean()) v = *node.value<bool>();
      else if (node.is_string()) v = *node.value<std::string>();
      else throw Error(fmt::format("{}: {} must be a number, boolean or string, not a {}", kat, full,
                                   node.is_table() ? "table" : node.is_array() ? "array" : "date/time"));
      try {
        f.set(v);
      } catch (const Error& e) {
        throw Error(fmt::format("{}: {}", kat, e.what()));
      }
    }
  }
}

}  // namespace detail

RunConfig load_run_config(const std::string& path, const std::vector<std::string>& overrides) {
  return parse_run_config(read_file(path, "config file"), path, overrides);
}

}  // namespace lmforge::train
