// The one translation unit that compiles toml++ (header-only, slow to compile): reading a run
// config's TOML into the field table. Before toml++ sees the text, a scan rejects any non-ASCII
// byte outside strings and comments, naming the line and column: TOML 1.0 allows non-ASCII text
// only there (bare keys, whitespace, numbers and punctuation are ASCII), and toml++ 3.3.0 reaches
// an unreachable branch (undefined behaviour) in its Unicode whitespace table on some such code
// points (e.g. U+FEF7), so they must never reach it. Control characters (other than tab and line
// breaks), which TOML allows nowhere, are refused the same way, and so is a table header that does
// not start with a key (`[;x]`), on which toml++ assumes what is false (undefined behaviour), and a
// quote where no string can start (toml++ reads on through the bytes there).
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

// Walks the text as TOML's lexer would at the level of strings and comments (the only places a
// quote or a hash means anything other than itself) and throws at the first byte >= 0x80 found
// elsewhere. A leading UTF-8 byte-order mark is allowed (toml++ skips it). Columns count
// characters (UTF-8 lead bytes), from 1, as an editor shows them. Where the text is not valid
// TOML the scan may disagree with toml++ about what is a string, but only after a point toml++
// rejects anyway (a single-line string ends at the newline here, an unterminated one at the end).
// Also, first, any control character but tab and a line break (LF, CRLF), anywhere: TOML allows
// them nowhere (a string spells them as escapes), and toml++ 3.3.0 trips an assertion on a NUL
// inside a table header.
void check_before_toml_library(std::string_view text, std::string_view source) {
  size_t line = 1;
  size_t line_start = 0;
  const auto column_of = [&](size_t at) {
    size_t column = 1;
    for (size_t k = line_start; k < at; ++k)
      if ((static_cast<unsigned char>(text[k]) & 0xC0) != 0x80) ++column;
    return column;
  };
  for (size_t k = 0; k < text.size(); ++k) {
    const auto c = static_cast<unsigned char>(text[k]);
    if (c == '\n') {
      ++line;
      line_start = k + 1;
    } else if ((c < 0x20 && c != '\t' && !(c == '\r' && k + 1 < text.size() && text[k + 1] == '\n')) || c == 0x7F) {
      throw Error(fmt::format("{}:{}:{}: control character (byte 0x{:02X}) in the config; TOML allows only tab and "
                              "line breaks (write it as an escape inside a string)", source, line, column_of(k), c));
    }
  }
  size_t i = text.starts_with("\xEF\xBB\xBF") ? 3 : 0;
  line = 1;
  line_start = 0;
  const auto fail = [&](size_t at) {
    throw Error(fmt::format("{}:{}:{}: non-ASCII character (byte 0x{:02X}) outside a string or comment; TOML "
                            "allows non-ASCII text only inside quoted strings and comments",
                            source, line, column_of(at), static_cast<unsigned char>(text[at])));
  };
  const auto newline = [&](size_t at) {
    ++line;
    line_start = at + 1;
  };
  // Skips to just past the closing delimiter of a string opened before `i`; a backslash escapes
  // the next byte in basic strings. Multi-line strings count their newlines.
  const auto skip_string = [&](std::string_view close, bool escapes, bool multiline) {
    while (i < text.size()) {
      const char c = text[i];
      if (c == '\n') {
        if (!multiline) return;  // toml++ rejects the unterminated string here
        newline(i);
        ++i;
      } else if (escapes && c == '\\') {
        // A backslash not followed by an escape letter is a line-ending backslash for toml++
        // 3.3.0, which then classifies the bytes after it with the same Unicode whitespace table
        // (undefined behaviour on some code points): the first one after any ASCII whitespace
        // must be ASCII.
        size_t k = i + 1;
        if (k < text.size() && std::string_view("btnfr\"\\uUe").find(text[k]) == std::string_view::npos) {
          while (k < text.size() && (text[k] == ' ' || text[k] == '\t' || text[k] == '\r' || text[k] == '\n')) ++k;
          LF_CHECK(k >= text.size() || static_cast<unsigned char>(text[k]) < 0x80,
                   "{}:{}:{}: a non-ASCII character follows a backslash (and whitespace) in a string; the "
                   "backslash must start an escape (\\n, \\t, \\uXXXX, ...) or end the line before ASCII text",
                   source, line, column_of(i));
        }
        i += 2;
        if (i - 1 < text.size() && text[i - 1] == '\n') newline(i - 1);
      } else if (text.substr(i).starts_with(close)) {
        i += close.size();
        // A multi-line string may end with up to two quotes of its own kind before the delimiter.
        while (multiline && i < text.size() && text[i] == close[0]) ++i;
        return;
      } else {
        ++i;
      }
    }
  };
  // The first character of a table header's key, which toml++ 3.3.0 assumes (undefined
  // behaviour when false) is a bare-key character or a quote: `[;x]` must not reach it.
  const auto check_table_header = [&](size_t open) {
    size_t k = open + 1;
    if (k < text.size() && text[k] == '[') ++k;
    while (k < text.size() && (text[k] == ' ' || text[k] == '\t')) ++k;
    if (k >= text.size()) return;
    const char first = text[k];
    const bool ok = (first >= 'A' && first <= 'Z') || (first >= 'a' && first <= 'z') || (first >= '0' && first <= '9') ||
                    first == '_' || first == '-' || first == '"' || first == '\'' || first == ']';
    LF_CHECK(ok, "{}:{}:{}: a table header must start with a key (letters, digits, _ and -, or a quoted key), not "
             "'{}'", source, line, column_of(k), first);
  };
  bool at_line_start = true;  // nothing but spaces and tabs since the last line break
  // The last character outside strings, spaces and comments on this line ('\n' at its start), and
  // whether an '=' came before on it. A quote starts a string only where TOML has a key or a
  // value: at the start of a line, after '=', '[', ',', '{', or after the '.' of a dotted key
  // (before the '='). Elsewhere (a quote right after `642n_h`) toml++ sees no string and reads on
  // through the bytes that follow, so such a quote is refused rather than taken as a string.
  // in_bare: inside a run of bare characters (a key, a number, a word) with no space or
  // delimiter since its start. A '[' or '{' glued to such a run (`642n_[`) opens no array or
  // table for toml++, which reads the whole run as one value, so a quote after it starts no string.
  char prev = '\n';
  bool after_equals = false;
  bool in_bare = false;
  const auto check_string_start = [&](size_t at) {
    const bool ok = !in_bare && (prev == '\n' || prev == '=' || prev == '[' || prev == ',' || prev == '{' ||
                                 (prev == '.' && !after_equals));
    LF_CHECK(ok, "{}:{}:{}: a quote after '{}' does not start a string (a string is a value, after '=', or a "
             "quoted key)", source, line, column_of(at), prev);
    prev = '"';
  };
  while (i < text.size()) {
    const std::string_view rest = text.substr(i);
    const char c = text[i];
    if (at_line_start && c == '[') check_table_header(i);
    at_line_start = c == ' ' || c == '\t' || (at_line_start && c == '\r');
    if (c == '"' || c == '\'') check_string_start(i);
    if (c == '\n') {
      at_line_start = true;
      prev = '\n';
      after_equals = false;
      in_bare = false;
      newline(i);
      ++i;
    } else if (c == '#') {
      while (i < text.size() && text[i] != '\n') ++i;
    } else if (rest.starts_with("\"\"\"")) {
      i += 3;
      skip_string("\"\"\"", true, true);
    } else if (rest.starts_with("'''")) {
      i += 3;
      skip_string("'''", false, true);
    } else if (c == '"') {
      ++i;
      skip_string("\"", true, false);
    } else if (c == '\'') {
      ++i;
      skip_string("'", false, false);
    } else if (static_cast<unsigned char>(c) >= 0x80) {
      fail(i);
    } else {
      if (c == ' ' || c == '\t' || c == '\r') {
        in_bare = false;
      } else {
        const bool delimiter = c == '=' || c == ',' || c == ']' || c == '}' || ((c == '[' || c == '{') && !in_bare) ||
                               (c == '.' && !after_equals);  // the dots of a dotted key
        in_bare = !delimiter;
        prev = c;
      }
      after_equals = after_equals || c == '=';
      ++i;
    }
  }
}

}  // namespace

void read_toml(std::string_view text, std::string_view source, const std::vector<ConfigField>& fields) {
  check_before_toml_library(text, source);
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
                              "[optim], [eval], [checkpoint], [dist])", at, section));
    }
    LF_CHECK(known, "{}: unknown config section [{}] (expected model, data, train, optim, eval, checkpoint or dist)", at,
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
