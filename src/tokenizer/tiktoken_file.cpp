// .tiktoken rank files: one line per token, "<base64 of the bytes> <rank>", ranks are ids.
// The format holds no split pattern and no special tokens: both come from the named encoding
// (known_encodings.h), given explicitly or read off the file name.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstring>
#include <filesystem>

#include "core/error.h"
#include "tokenizer/base64.h"
#include "tokenizer/huge_pages.h"
#include "core/file_util.h"
#include "tokenizer/known_encodings.h"
#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::tok {
namespace {

const KnownEncoding* encoding_from_file_name(const std::string& path) {
  std::string stem = std::filesystem::path(path).filename().string();
  if (stem.size() > 9 && stem.ends_with(".tiktoken")) stem.resize(stem.size() - 9);
  for (std::string_view name : {"r50k_base", "cl100k_base", "o200k_base", "gpt2"}) {
    if (!stem.starts_with(name)) continue;
    if (stem.size() == name.size() || !std::isalnum(static_cast<unsigned char>(stem[name.size()])))
      return find_known_encoding(name);
  }
  return nullptr;
}

}  // namespace

Tokenizer Tokenizer::load_tiktoken(const std::string& path, std::string_view pattern_name) {
  const KnownEncoding* enc = nullptr;
  if (!pattern_name.empty()) {
    enc = find_known_encoding(pattern_name);
    LF_CHECK(enc != nullptr, "unknown pattern name '{}' for {} (known: {})", pattern_name, path,
             known_encoding_names());
  } else {
    enc = encoding_from_file_name(path);
    LF_CHECK(enc != nullptr,
             "{}: a .tiktoken file holds no split pattern and its name does not say which encoding it is; "
             "name one with --pattern (known: {})",
             path, known_encoding_names());
  }
  const std::string data = read_file(path, "tokenizer file");
  // One pass over the lines, decoding straight into each token's string (short tokens need no
  // allocation). Duplicate ranks are caught here; duplicate bytes by build(), which finds them
  // while filling its token map anyway and names the lines from spec.token_lines.
  TokenizerSpec spec;
  const size_t n_lines = static_cast<size_t>(std::count(data.begin(), data.end(), '\n')) + 1;
  detail::reserve_huge(spec.tokens, n_lines);
  detail::reserve_huge(spec.token_lines, n_lines);
  std::vector<uint32_t> rank_line;  // by rank: the line that gave it, 0 for none yet
  rank_line.reserve(n_lines + 1024);
  size_t line_no = 0, start = 0;
  while (start < data.size()) {
    const char* nl = static_cast<const char*>(std::memchr(data.data() + start, '\n', data.size() - start));
    const size_t end = nl ? static_cast<size_t>(nl - data.data()) : data.size();
    std::string_view line(data.data() + start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    LF_CHECK(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos,
             "{}:{}: expected '<base64 token> <rank>', got '{}'", path, line_no, line.substr(0, 80));
    std::string bytes;
    LF_CHECK(base64_decode_into(line.substr(0, sp), bytes) && !bytes.empty(),
             "{}:{}: '{}' is not valid base64 of a non-empty token", path, line_no,
             line.substr(0, std::min<size_t>(sp, 80)));
    const std::string_view num = line.substr(sp + 1);
    uint64_t rank = 0;
    const auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), rank);
    LF_CHECK(ec == std::errc() && ptr == num.data() + num.size() && rank < (uint64_t{1} << 31),
             "{}:{}: rank '{}' is not a number below 2^31", path, line_no, num.substr(0, 40));
    // The bound build() applies, checked here so that a stray rank cannot size rank_line.
    LF_CHECK(rank < 8 * n_lines + 1024, "{}:{}: rank {} is far beyond the number of lines ({})", path, line_no,
             rank, n_lines);
    if (rank >= rank_line.size()) rank_line.resize(rank + 1, 0);
    LF_CHECK(rank_line[rank] == 0, "{}:{}: rank {} was already given on line {}", path, line_no, rank,
             rank_line[rank]);
    rank_line[rank] = static_cast<uint32_t>(line_no);
    spec.tokens.emplace_back(std::move(bytes), static_cast<uint32_t>(rank));
    spec.token_lines.push_back(line_no);
  }
  LF_CHECK(!spec.tokens.empty(), "{}: no tokens (an empty .tiktoken file)", path);

  for (const auto& [text, id] : enc->special_tokens) spec.specials.push_back({std::string(text), id});
  spec.pretokenizer = Pretokenizer::named(enc->name);
  spec.source = path;
  return build(std::move(spec));
}

void Tokenizer::save_tiktoken(const std::string& path) const {
  const detail::Model& m = *m_;
  std::string out;
  out.reserve(m.n_ordinary * 16);
  for (uint32_t id = 0; id < m.kind_by_id.size(); ++id) {
    if (m.kind_by_id[id] != detail::IdKind::Ordinary) continue;
    out += base64_encode(m.bytes_by_id[id]);
    out += ' ';
    out += std::to_string(id);
    out += '\n';
  }
  write_file_atomic(path, out);
}

Tokenizer Tokenizer::load(const std::string& path, std::string_view pattern_name) {
  const std::string ext = std::filesystem::path(path).extension().string();
  bool json = ext == ".json";
  if (!json && ext != ".tiktoken") {
    // Decide by content: a JSON object starts with '{'.
    const std::string data = read_file(path, "tokenizer file");
    const size_t first = data.find_first_not_of(" \t\r\n");
    json = first != std::string::npos && data[first] == '{';
  }
  if (!json) return load_tiktoken(path, pattern_name);
  Tokenizer t = load_tokenizer_json(path);
  if (pattern_name.empty()) return t;
  // Replace the pre-tokenizer, keeping everything else.
  auto m = std::make_shared<detail::Model>(t.model());
  m->pretokenizer = Pretokenizer::named(pattern_name);
  return Tokenizer(std::move(m));
}

}  // namespace lmforge::tok
