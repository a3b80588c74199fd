// lmforge tokenizer decode: token ids -> text.
//   plain:   the input is ids separated by whitespace (or commas); writes the decoded bytes.
//   --jsonl: each input line is {"ids": [...]}; writes one line {"text": ...} per input line.
// Strict by default: decoded bytes that are not valid UTF-8 are an error naming the offset;
// --lossy replaces them with U+FFFD.
#include <nlohmann/json.hpp>

#include <charconv>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct DecodeArgs {
  std::string tokenizer;
  std::string pattern;
  std::string input = "-";
  std::string output = "-";
  bool lossy = false;
  bool jsonl = false;
};

std::vector<uint32_t> parse_ids(std::string_view s, const std::string& where) {
  std::vector<uint32_t> ids;
  size_t i = 0;
  while (true) {
    while (i < s.size() && (s[i] == ' ' || s[i] == '\n' || s[i] == '\t' || s[i] == '\r' || s[i] == ',')) ++i;
    if (i == s.size()) break;
    uint32_t v = 0;
    const auto [ptr, ec] = std::from_chars(s.data() + i, s.data() + s.size(), v);
    const size_t end = static_cast<size_t>(ptr - s.data());
    const bool separated = end == s.size() || std::string_view(" \n\t\r,").find(s[end]) != std::string_view::npos;
    if (ec != std::errc() || !separated) {
      size_t stop = i;
      while (stop < s.size() && std::string_view(" \n\t\r,").find(s[stop]) == std::string_view::npos) ++stop;
      throw Error(fmt::format("{}: '{}' (number {} of the input) is not a token id", where,
                              s.substr(i, std::min<size_t>(stop - i, 40)), ids.size() + 1));
    }
    ids.push_back(v);
    i = end;
  }
  return ids;
}

void run_decode(const DecodeArgs& a) {
  const tok::Tokenizer tok = tok::Tokenizer::load(a.tokenizer, a.pattern);
  const tok::DecodeMode mode = a.lossy ? tok::DecodeMode::Lossy : tok::DecodeMode::Strict;
  const std::string data = read_text_input(a.input);
  const std::string in_name = a.input == "-" ? "standard input" : a.input;
  TextOutput o(a.output);
  if (!a.jsonl) {
    o.write(tok.decode(parse_ids(data, in_name), mode));
    o.close();
    return;
  }
  std::string out;
  size_t pos = 0, line_no = 0;
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    const std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    const std::string where = fmt::format("{}:{}", in_name, line_no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(fmt::format("{}: not a JSON line: {}", where, e.what()));
    }
    LF_CHECK(j.is_object() && j.contains("ids") && j["ids"].is_array(), "{}: expected an object with an array \"ids\"",
             where);
    std::vector<uint32_t> ids;
    for (const auto& v : j["ids"]) {
      LF_CHECK(v.is_number_unsigned() && v.get<uint64_t>() <= UINT32_MAX, "{}: {} is not a token id", where, v.dump());
      ids.push_back(v.get<uint32_t>());
    }
    std::string text;
    try {
      text = tok.decode(ids, mode);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", where, e.what()));
    }
    out += nlohmann::json{{"text", text}}.dump();
    out += '\n';
    if (out.size() > (size_t{1} << 20)) {
      o.write(out);
      out.clear();
    }
  }
  o.write(out);
  o.close();
}

LMFORGE_SUBCOMMAND("tokenizer", "decode", "Decode token ids into text", [](CLI::App& sub) {
  auto a = std::make_shared<DecodeArgs>();
  sub.add_option("--tokenizer", a->tokenizer, "tokenizer file: .tiktoken or tokenizer.json")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--pattern", a->pattern, "encoding of a .tiktoken file (default: from the file name)");
  sub.add_option("--input", a->input, "input file, - for standard input")->capture_default_str();
  sub.add_option("--output", a->output, "output file, - for standard output")->capture_default_str();
  sub.add_flag("--lossy", a->lossy, "replace invalid UTF-8 with U+FFFD instead of failing");
  sub.add_flag("--jsonl", a->jsonl, "input lines are {\"ids\": [...]}; output lines are {\"text\": ...}");
  sub.callback([a] { run_decode(*a); });
});

}  // namespace
}  // namespace lmforge::cli
