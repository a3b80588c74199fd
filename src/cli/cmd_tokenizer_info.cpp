// lmforge tokenizer info: what a tokenizer file holds; optionally writes it again as tokenizer.json
// and/or .tiktoken (a conversion between the two formats).
#include <fmt/format.h>

#include "cli/command.h"
#include "cli/tokenizer_io.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::cli {
namespace {

struct InfoArgs {
  std::string tokenizer;
  std::string pattern;
  std::string write_json;
  std::string write_tiktoken;
};

void run_info(const InfoArgs& a) {
  const tok::Tokenizer t = tok::Tokenizer::load(a.tokenizer, a.pattern);
  const size_t used = t.n_ordinary_tokens() + t.special_tokens().size();
  fmt::print("file: {}\n", a.tokenizer);
  fmt::print("vocab_size: {} (max id + 1; {} ids unused)\n", t.vocab_size(), t.vocab_size() - used);
  fmt::print("ordinary tokens: {}\n", t.n_ordinary_tokens());
  fmt::print("merge rule: {}\n", t.merge_rule() == tok::MergeRule::Ranks
                                     ? "ranks (tiktoken: lowest-ranked pair first)"
                                     : "merge list (HF tokenizers: listed merges by priority)");
  fmt::print("merges: {}\n", t.n_merges());
  fmt::print("whole-piece lookup: {}\n", t.whole_piece_lookup() ? "yes" : "no");
  fmt::print("mean token length: {:.3f} bytes\n", t.mean_token_bytes());
  const tok::Pretokenizer& p = t.pretokenizer();
  fmt::print("pre-tokenizer: {}{}\n", p.name(),
             p.uses_scanner() ? " (hand-written scanner)" : p.is_none() ? " (whole text is one piece)" : " (PCRE2)");
  if (!p.pattern().empty()) fmt::print("pattern: {}\n", p.pattern());
  if (t.add_prefix_space()) fmt::print("add_prefix_space: yes\n");
  fmt::print("special tokens: {}\n", t.special_tokens().size());
  for (const auto& s : t.special_tokens()) fmt::print("  {} {}\n", s.id, s.text);
  if (!a.write_json.empty()) {
    t.save_tokenizer_json(a.write_json);
    fmt::print("wrote {}\n", a.write_json);
  }
  if (!a.write_tiktoken.empty()) {
    t.save_tiktoken(a.write_tiktoken);
    fmt::print("wrote {} (ranks only: the format holds no pattern and no special tokens)\n", a.write_tiktoken);
  }
}

LMFORGE_SUBCOMMAND("tokenizer", "info", "Vocabulary size, special tokens, pattern and merges of a tokenizer",
                          [](CLI::App& sub) {
                            auto a = std::make_shared<InfoArgs>();
                            sub.add_option("--tokenizer", a->tokenizer, "tokenizer file: .tiktoken or tokenizer.json")
                                ->required()
                                ->check(CLI::ExistingFile);
                            sub.add_option("--pattern", a->pattern,
                                           "encoding of a .tiktoken file (default: from the file name)");
                            sub.add_option("--write-json", a->write_json,
                                           "also write the tokenizer as an HF tokenizer.json");
                            sub.add_option("--write-tiktoken", a->write_tiktoken,
                                           "also write the tokenizer as a .tiktoken rank file");
                            sub.callback([a] { run_info(*a); });
                          });

}  // namespace
}  // namespace lmforge::cli
