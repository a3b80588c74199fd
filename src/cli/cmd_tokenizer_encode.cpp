// lmforge tokenizer encode: text -> token ids.
//   plain:   the whole input is one text; prints its ids separated by spaces, then a newline.
//   --jsonl: each input line is {"text": ...}; writes one line {"ids": [...]} per input line,
//            in order (lines are encoded in batches on --threads threads).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <thread>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "core/error.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct EncodeArgs {
  std::string tokenizer;
  std::string pattern;
  unsigned threads = 1;
  std::string input = "-";
  std::string output = "-";
  std::string allow_special = "none";
  bool ordinary = false;
  bool jsonl = false;
};

void encode_plain(const tok::Tokenizer& tok, const EncodeArgs& a, const tok::SpecialPolicy& policy) {
  const std::string text = read_text_input(a.input);
  const std::vector<uint32_t> ids = tok.encode_parallel(text, a.threads, policy);
  std::string out;
  out.reserve(ids.size() * 6 + 1);
  append_token_ids(out, ids, ' ');
  out += '\n';
  TextOutput o(a.output);
  o.write(out);
  o.close();
}

void encode_jsonl(const tok::Tokenizer& tok, const EncodeArgs& a, const tok::SpecialPolicy& policy) {
  const std::string data = read_text_input(a.input);
  const std::string in_name = a.input == "-" ? "standard input" : a.input;
  TextOutput o(a.output);
  std::vector<std::string> texts;
  std::vector<size_t> lines;
  size_t line_no = 0, pos = 0, batch_bytes = 0;
  auto flush = [&] {
    std::vector<std::string_view> views(texts.begin(), texts.end());
    std::vector<std::vector<uint32_t>> ids;
    try {
      ids = tok.encode_batch(views, a.threads, policy);
    } catch (const Error&) {
      // Find the line to name (only on this error path).
      for (size_t i = 0; i < texts.size(); ++i) {
        try {
          tok.encode(texts[i], policy);
        } catch (const Error& e) {
          throw Error(fmt::format("{}:{}: {}", in_name, lines[i], e.what()));
        }
      }
      throw;
    }
    std::string out;
    for (const auto& v : ids) {
      out += "{\"ids\":[";
      append_token_ids(out, v, ',');
      out += "]}\n";
    }
    o.write(out);
    texts.clear();
    lines.clear();
    batch_bytes = 0;
  };
  while (pos < data.size()) {
    size_t end = data.find('\n', pos);
    if (end == std::string::npos) end = data.size();
    const std::string_view line(data.data() + pos, end - pos);
    pos = end + 1;
    ++line_no;
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::parse_error& e) {
      throw Error(fmt::format("{}:{}: not a JSON line: {}", in_name, line_no, e.what()));
    }
    LF_CHECK(j.is_object() && j.contains("text") && j["text"].is_string(),
             "{}:{}: expected an object with a string \"text\"", in_name, line_no);
    texts.push_back(j["text"].get<std::string>());
    lines.push_back(line_no);
    batch_bytes += texts.back().size();
    if (batch_bytes >= (size_t{16} << 20) || texts.size() >= 65536) flush();
  }
  flush();
  o.close();
}

void run_encode(const EncodeArgs& a) {
  const tok::Tokenizer tok = tok::Tokenizer::load(a.tokenizer, a.pattern);
  tok::SpecialPolicy policy = tok::SpecialPolicy::parse(a.allow_special);
  policy.disallowed_as_text = a.ordinary;
  if (a.jsonl)
    encode_jsonl(tok, a, policy);
  else
    encode_plain(tok, a, policy);
}

LMFORGE_SUBCOMMAND("tokenizer", "encode", "Encode text into token ids", [](CLI::App& sub) {
  auto a = std::make_shared<EncodeArgs>();
  sub.add_option("--tokenizer", a->tokenizer, "tokenizer file: .tiktoken or tokenizer.json")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--pattern", a->pattern,
                 "pre-tokenizer of a .tiktoken file: r50k_base, gpt2, cl100k_base, o200k_base "
                 "(default: from the file name)");
  sub.add_option("--threads", a->threads, "encoding threads (0: all cores)")->capture_default_str();
  sub.add_option("--input", a->input, "input file, - for standard input")->capture_default_str();
  sub.add_option("--output", a->output, "output file, - for standard output")->capture_default_str();
  sub.add_option("--allow-special", a->allow_special,
                 "special tokens turned into their ids: all, none, or a comma-separated list; other "
                 "special-token text is an error")
      ->capture_default_str();
  sub.add_flag("--ordinary", a->ordinary,
               "special-token text that is not allowed is encoded as ordinary text instead of an error");
  sub.add_flag("--jsonl", a->jsonl, "input lines are {\"text\": ...}; output lines are {\"ids\": [...]}");
  sub.callback([a] { run_encode(*a); });
});

}  // namespace
}  // namespace lmforge::cli
