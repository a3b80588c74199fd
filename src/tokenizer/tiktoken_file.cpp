// .tiktoken rank files: one line per token, "<base64 of the bytes> <rank>", ranks are ids.
// The format holds no split pattern and no special tokens: both come from the named encoding
// (known_encodings.h), given explicitly or read off the file name.
#include <algorithm>
#include <cctype>
#include <charconv>
#include <filesystem>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/base64.h"
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

  TokenizerSpec spec;
  spec.tokens.reserve(data.size() / 12);
  std::vector<size_t> line_of;  // per entry of spec.tokens
  size_t line_no = 0, start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string_view line(data.data() + start, end - start);
    start = end + 1;
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty()) continue;
    const size_t sp = line.find(' ');
    LF_CHECK(sp != std::string_view::npos && line.find(' ', sp + 1) == std::string_view::npos,
             "{}:{}: expected '<base64 token> <rank>', got '{}'", path, line_no, line.substr(0, 80));
    auto bytes = base64_decode(line.substr(0, sp));
    LF_CHECK(bytes.has_value() && !bytes->empty(), "{}:{}: '{}' is not valid base64 of a non-empty token", path,
             line_no, line.substr(0, std::min<size_t>(sp, 80)));
    const std::string_view num = line.substr(sp + 1);
    uint64_t rank = 0;
    const auto [ptr, ec] = std::from_chars(num.data(), num.data() + num.size(), rank);
    LF_CHECK(ec == std::errc() && ptr == num.data() + num.size() && rank < (uint64_t{1} << 31),
             "{}:{}: rank '{}' is not a number below 2^31", path, line_no, num.substr(0, 40));
    spec.tokens.emplace_back(std::move(*bytes), static_cast<uint32_t>(rank));
    line_of.push_back(line_no);
  }
  LF_CHECK(!spec.tokens.empty(), "{}: no tokens (an empty .tiktoken file)", path);

  // Name the lines of duplicates here; build() would only know the ids.
  uint32_t max_rank = 0;
  for (const auto& t : spec.tokens) max_rank = std::max(max_rank, t.second);
  LF_CHECK(max_rank < 8 * spec.tokens.size() + 1024, "{}: rank {} is far beyond the number of lines ({})", path,
           max_rank, spec.tokens.size());
  std::vector<size_t> rank_line(max_rank + 1, 0);
  std::unordered_map<std::string_view, size_t> bytes_line;
  bytes_line.reserve(spec.tokens.size());
  for (size_t i = 0; i < spec.tokens.size(); ++i) {
    const auto& [bytes, rank] = spec.tokens[i];
    LF_CHECK(rank_line[rank] == 0, "{}:{}: rank {} was already given on line {}", path, line_of[i], rank,
             rank_line[rank]);
    rank_line[rank] = line_of[i];
    auto [it, fresh] = bytes_line.emplace(bytes, line_of[i]);
    LF_CHECK(fresh, "{}:{}: the token of rank {} was already given on line {}", path, line_of[i], rank, it->second);
  }

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
