// HF tokenizers `tokenizer.json`: byte-level BPE, and WordLevel over byte-level pieces (the
// piece-level tokenizers of `tokenizer train --kind char|word`).
//
// Read: model (type BPE: vocab, merges as "a b" strings or ["a", "b"] arrays, ignore_merges;
// type WordLevel: vocab and unk_token, which becomes the unknown token and a special token),
// pre_tokenizer (ByteLevel, with or without its GPT-2 regex; Split with a Regex or String
// pattern and behaviour Isolated; a Sequence of those with at most one splitting step),
// added_tokens (all become special tokens: HF cuts every added token out of the text before
// the model runs). normalizer must be null; post_processor and decoder are ignored (encode
// never adds tokens around the text; decoding is by bytes). Anything else is rejected naming
// the file and the key.
//
// Written: a piece-level tokenizer as WordLevel with the same pre-tokenizer and decoder as below
// (its vocab keys are the byte-level form of each piece, which is what ByteLevel hands the
// model). Otherwise the same layout as HF's own converters (Split(Regex, Isolated) + ByteLevel without
// regex; for MergeRule::Ranks one merge per token, as Tokenizer::merges() derives, with
// ignore_merges true), which HF tokenizers loads and encodes with the same ids. Special tokens
// are listed in added_tokens AND in model.vocab under their literal text (as GPT-2's file has
// <|endoftext|>): HF ignores the "id" of an added token that is not in the vocab and numbers it
// from the vocab size on, which would change every special id after a gap (cl100k, o200k).
#include <nlohmann/json.hpp>

#include <algorithm>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "core/file_util.h"
#include "tokenizer/model.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace lmforge::tok {
namespace {

using json = nlohmann::json;

struct PreTokenizerConfig {
  Pretokenizer split;  // none() unless a splitting step was seen
  bool have_split = false;
  bool byte_level = false;
  bool add_prefix_space = false;
};

bool get_bool(const json& obj, const char* key, bool dflt, const std::string& path, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return dflt;
  LF_CHECK(it->is_boolean(), "{}: {}.{} must be true or false", path, where, key);
  return it->get<bool>();
}

std::string get_string(const json& obj, const char* key, const std::string& path, const std::string& where) {
  auto it = obj.find(key);
  if (it == obj.end() || it->is_null()) return {};
  LF_CHECK(it->is_string(), "{}: {}.{} must be a string", path, where, key);
  return it->get<std::string>();
}

void set_split(PreTokenizerConfig& c, Pretokenizer p, const std::string& path, const std::string& where) {
  LF_CHECK(!c.have_split, "{}: {}: a second splitting pre-tokenizer is not supported (one regex split at most)",
           path, where);
  c.split = std::move(p);
  c.have_split = true;
}

void read_pretokenizer(const json& p, const std::string& path, const std::string& where, bool first,
                       PreTokenizerConfig& c) {
  LF_CHECK(p.is_object(), "{}: {} must be an object", path, where);
  const std::string type = get_string(p, "type", path, where);
  if (type == "Sequence") {
    auto it = p.find("pretokenizers");
    LF_CHECK(it != p.end() && it->is_array(), "{}: {}.pretokenizers must be an array", path, where);
    for (size_t i = 0; i < it->size(); ++i)
      read_pretokenizer((*it)[i], path, fmt::format("{}.pretokenizers[{}]", where, i), first && i == 0, c);
    return;
  }
  if (type == "ByteLevel") {
    c.byte_level = true;
    const bool prefix = get_bool(p, "add_prefix_space", false, path, where);
    // HF adds the space to every split made so far: only the first step sees whole segments.
    LF_CHECK(!prefix || first, "{}: {}: ByteLevel with add_prefix_space after another pre-tokenizer is not supported",
             path, where);
    c.add_prefix_space = prefix;
    if (get_bool(p, "use_regex", true, path, where)) set_split(c, Pretokenizer::named("r50k_base"), path, where);
    return;
  }
  if (type == "Split") {
    const std::string behavior = get_string(p, "behavior", path, where);
    LF_CHECK(behavior == "Isolated", "{}: {}.behavior '{}' is not supported (only Isolated)", path, where, behavior);
    LF_CHECK(!get_bool(p, "invert", false, path, where), "{}: {}.invert = true is not supported", path, where);
    auto it = p.find("pattern");
    LF_CHECK(it != p.end() && it->is_object(), "{}: {}.pattern must be an object", path, where);
    if (it->contains("Regex") && (*it)["Regex"].is_string()) {
      set_split(c, Pretokenizer::regex((*it)["Regex"].get<std::string>()), path, where);
    } else if (it->contains("String") && (*it)["String"].is_string()) {
      std::string quoted;
      for (char ch : (*it)["String"].get<std::string>()) {
        if (std::string_view("\\^$.|?*+()[]{}").find(ch) != std::string_view::npos) quoted += '\\';
        quoted += ch;
      }
      set_split(c, Pretokenizer::pcre2(quoted), path, where);
    } else {
      throw Error(fmt::format("{}: {}.pattern must hold a \"Regex\" or \"String\"", path, where));
    }
    return;
  }
  throw Error(fmt::format("{}: {}: pre-tokenizer type '{}' is not supported (ByteLevel, Split, Sequence)", path,
                          where, type));
}

std::string bytes_of_key(const std::string& key, const std::string& path, const std::string& where) {
  uint32_t bad = 0;
  auto bytes = byte_level_to_bytes(key, &bad);
  LF_CHECK(bytes.has_value() && !bytes->empty(),
           "{}: {}: '{}' holds U+{:04X}, which is not a byte-level (GPT-2) character; only byte-level BPE is supported",
           path, where, key, bad);
  return std::move(*bytes);
}

void append_json_string(std::string& o, std::string_view s) {
  o += '"';
  for (unsigned char c : s) {
    if (c == '"' || c == '\\') {
      o += '\\';
      o += static_cast<char>(c);
    } else if (c < 0x20) {
      o += fmt::format("\\u{:04x}", c);
    } else {
      o += static_cast<char>(c);
    }
  }
  o += '"';
}

}  // namespace

Tokenizer Tokenizer::load_tokenizer_json(const std::string& path) {
  const std::string data = read_file(path, "tokenizer file");
  json j;
  // JSON parsers keep the last of two equal keys in an object; a tokenizer.json that spells a
  // token twice would silently lose one id. Every object's keys are checked while parsing.
  struct Scope {
    std::string name;  // the key this object or array is the value of ("" at the top)
    std::unordered_set<std::string> keys;
  };
  std::vector<Scope> scopes;
  std::string last_key;
  const json::parser_callback_t reject_duplicate_keys = [&](int, json::parse_event_t event, json& parsed) {
    switch (event) {
      case json::parse_event_t::object_start:
      case json::parse_event_t::array_start:
        scopes.push_back({scopes.empty() ? std::string() : last_key, {}});
        break;
      case json::parse_event_t::object_end:
      case json::parse_event_t::array_end:
        scopes.pop_back();
        break;
      case json::parse_event_t::key:
        last_key = parsed.get<std::string>();
        LF_CHECK(scopes.back().keys.insert(last_key).second, "{}: key '{}' appears twice in {}; one of them would be "
                 "dropped", path, last_key, scopes.back().name.empty() ? "the top-level object" :
                 fmt::format("'{}'", scopes.back().name));
        break;
      case json::parse_event_t::value:
        break;
    }
    return true;
  };
  try {
    j = json::parse(data, reject_duplicate_keys);
  } catch (const json::parse_error& e) {
    const size_t at = std::min<size_t>(e.byte > 0 ? e.byte - 1 : 0, data.size());
    const size_t line = 1 + static_cast<size_t>(std::count(data.begin(), data.begin() + at, '\n'));
    const size_t line_start = data.rfind('\n', at == 0 ? 0 : at - 1);
    const size_t col = at - (line_start == std::string::npos ? 0 : line_start + 1) + 1;
    throw Error(fmt::format("{}:{}:{}: not valid JSON: {}", path, line, col, e.what()));
  }
  LF_CHECK(j.is_object(), "{}: expected a JSON object (a tokenizer.json)", path);

  if (auto it = j.find("normalizer"); it != j.end() && !it->is_null()) {
    const bool empty_sequence = it->is_object() && it->value("type", "") == "Sequence" &&
                                it->contains("normalizers") && (*it)["normalizers"].empty();
    LF_CHECK(empty_sequence, "{}: normalizer: normalizers are not supported (type '{}')", path,
             it->is_object() ? it->value("type", "?") : "?");
  }

  PreTokenizerConfig pre;
  if (auto it = j.find("pre_tokenizer"); it != j.end() && !it->is_null())
    read_pretokenizer(*it, path, "pre_tokenizer", true, pre);
  LF_CHECK(pre.byte_level, "{}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported", path);

  auto mit = j.find("model");
  LF_CHECK(mit != j.end() && mit->is_object(), "{}: missing key 'model'", path);
  const json& model = *mit;
  const std::string type = get_string(model, "type", path, "model");
  const bool word_level = type == "WordLevel";
  LF_CHECK(type.empty() || type == "BPE" || word_level, "{}: model.type '{}' is not supported (BPE or WordLevel)",
           path, type);
  LF_CHECK(!get_bool(model, "byte_fallback", false, path, "model"), "{}: model.byte_fallback is not supported", path);
  LF_CHECK(get_string(model, "continuing_subword_prefix", path, "model").empty(),
           "{}: model.continuing_subword_prefix is not supported", path);
  LF_CHECK(get_string(model, "end_of_word_suffix", path, "model").empty(),
           "{}: model.end_of_word_suffix is not supported", path);
  if (auto it = model.find("dropout"); it != model.end() && !it->is_null())
    LF_CHECK(it->is_number() && it->get<double>() == 0.0, "{}: model.dropout is not supported", path);

  TokenizerSpec spec;
  spec.rule = MergeRule::MergeList;
  spec.whole_piece_lookup = get_bool(model, "ignore_merges", false, path, "model");
  spec.pretokenizer = pre.split;
  spec.add_prefix_space = pre.add_prefix_space;
  spec.source = path;

  std::string unk_token;
  if (word_level) {
    unk_token = get_string(model, "unk_token", path, "model");
    LF_CHECK(!unk_token.empty(), "{}: model.unk_token must name the unknown token of a WordLevel model", path);
    spec.unknown_token = unk_token;
  }

  auto vit = model.find("vocab");
  LF_CHECK(vit != model.end() && vit->is_object(), "{}: model.vocab must be an object", path);
  std::unordered_map<std::string, uint32_t> id_of_key;
  id_of_key.reserve(vit->size());
  std::unordered_map<uint32_t, std::string> key_of_id;
  for (const auto& [key, val] : vit->items()) {
    LF_CHECK(val.is_number_unsigned() && val.get<uint64_t>() < (uint64_t{1} << 31),
             "{}: model.vocab['{}'] must be a token id (a non-negative integer)", path, key);
    const auto id = val.get<uint32_t>();
    auto [it, fresh] = key_of_id.emplace(id, key);
    LF_CHECK(fresh, "{}: model.vocab: id {} is given to both '{}' and '{}'", path, id, it->second, key);
    id_of_key.emplace(key, id);
  }

  // Added tokens are specials; one that is also a vocab entry (same id, same text) leaves the
  // ordinary vocabulary, as HF never lets the model see its text.
  std::unordered_set<uint32_t> moved;
  if (auto ait = j.find("added_tokens"); ait != j.end() && !ait->is_null()) {
    LF_CHECK(ait->is_array(), "{}: added_tokens must be an array", path);
    for (size_t i = 0; i < ait->size(); ++i) {
      const json& a = (*ait)[i];
      const std::string where = fmt::format("added_tokens[{}]", i);
      LF_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_unsigned() && a.contains("content") &&
                   a["content"].is_string(),
               "{}: {} must have an integer 'id' and a string 'content'", path, where);
      // Read as 64 bits: get<uint32_t>() would wrap 2^32 + 5 around to 5.
      LF_CHECK(a["id"].get<uint64_t>() < (uint64_t{1} << 31), "{}: {}: id {} is not below 2^31", path, where,
               a["id"].get<uint64_t>());
      // A tokenizer.json numbers its added tokens itself, so they are held to the density bound
      // of ordinary ids (unlike the fixed special ids of the known .tiktoken encodings).
      const uint64_t n_ids = vit->size() + ait->size();
      LF_CHECK(a["id"].get<uint64_t>() < 8 * n_ids + 1024, "{}: {}: id {} is far beyond the number of tokens ({}); "
               "ids must be (nearly) dense", path, where, a["id"].get<uint64_t>(), n_ids);
      SpecialToken s{a["content"].get<std::string>(), a["id"].get<uint32_t>()};
      if (auto kit = key_of_id.find(s.id); kit != key_of_id.end()) {
        // The vocab entry may spell the text literally (HF's lookup) or in byte-level form.
        const auto bytes = byte_level_to_bytes(kit->second);
        LF_CHECK(kit->second == s.text || (bytes && *bytes == s.text),
                 "{}: {}: id {} is also model.vocab['{}'], a different token", path, where, s.id, kit->second);
        moved.insert(s.id);
      }
      spec.specials.push_back(std::move(s));
    }
  }

  // WordLevel's unknown token is a vocab entry that HF never produces from text: a special token
  // here, whether or not added_tokens lists it.
  if (word_level && std::none_of(spec.specials.begin(), spec.specials.end(),
                                 [&](const SpecialToken& s) { return s.text == unk_token; })) {
    auto uit = id_of_key.find(unk_token);
    LF_CHECK(uit != id_of_key.end(), "{}: model.unk_token '{}' is not in model.vocab", path, unk_token);
    spec.specials.push_back({unk_token, uit->second});
    moved.insert(uit->second);
  }

  std::unordered_map<uint32_t, std::string> bytes_of_id;
  bytes_of_id.reserve(key_of_id.size());
  spec.tokens.reserve(key_of_id.size());
  for (const auto& [id, key] : key_of_id) {
    if (moved.count(id)) continue;
    std::string bytes = bytes_of_key(key, path, fmt::format("model.vocab['{}']", key));
    bytes_of_id.emplace(id, bytes);
    spec.tokens.emplace_back(std::move(bytes), id);
  }
  std::sort(spec.tokens.begin(), spec.tokens.end(), [](const auto& a, const auto& b) { return a.second < b.second; });

  if (word_level) return build(std::move(spec));
  auto mg = model.find("merges");
  LF_CHECK(mg != model.end() && mg->is_array(), "{}: model.merges must be an array", path);
  spec.merges.reserve(mg->size());
  for (size_t i = 0; i < mg->size(); ++i) {
    const json& e = (*mg)[i];
    std::string a, b;
    if (e.is_string()) {
      const std::string s = e.get<std::string>();
      const size_t sp = s.find(' ');
      LF_CHECK(sp != std::string::npos && s.find(' ', sp + 1) == std::string::npos,
               "{}: model.merges[{}]: '{}' is not two tokens separated by one space", path, i, s);
      a = s.substr(0, sp);
      b = s.substr(sp + 1);
    } else {
      LF_CHECK(e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string(),
               "{}: model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", path, i);
      a = e[0].get<std::string>();
      b = e[1].get<std::string>();
    }
    auto ia = id_of_key.find(a), ib = id_of_key.find(b);
    LF_CHECK(ia != id_of_key.end(), "{}: model.merges[{}]: '{}' is not in model.vocab", path, i, a);
    LF_CHECK(ib != id_of_key.end(), "{}: model.merges[{}]: '{}' is not in model.vocab", path, i, b);
    if (moved.count(ia->second) || moved.count(ib->second)) continue;
    auto ir = id_of_key.find(a + b);
    LF_CHECK(ir != id_of_key.end(), "{}: model.merges[{}]: '{}' + '{}' = '{}' is not in model.vocab", path, i, a, b,
             a + b);
    if (moved.count(ir->second)) continue;
    spec.merges.emplace_back(ia->second, ib->second);
  }
  return build(std::move(spec));
}

void Tokenizer::save_tokenizer_json(const std::string& path) const {
  const detail::Model& m = *m_;
  const Pretokenizer& pre = m.pretokenizer;
  std::string o;
  o.reserve(m.n_ordinary * 40 + 4096);
  o += R"({"version":"1.0","truncation":null,"padding":null,"added_tokens":[)";
  for (size_t i = 0; i < m.specials.size(); ++i) {
    const SpecialToken& s = m.specials[i];
    LF_CHECK(unicode::utf8_first_invalid(s.text.data(), s.text.size()) == s.text.size(),
             "cannot write {}: special token id {} is not valid UTF-8 text", path, s.id);
    if (i) o += ',';
    o += fmt::format(R"({{"id":{},"content":)", s.id);
    append_json_string(o, s.text);
    o += R"(,"single_word":false,"lstrip":false,"rstrip":false,"normalized":false,"special":true})";
  }
  o += R"(],"normalizer":null,"pre_tokenizer":)";
  const std::string prefix = m.add_prefix_space ? "true" : "false";
  if (pre.is_none() || (m.add_prefix_space && pre.name() == "r50k_base")) {
    o += R"({"type":"ByteLevel","add_prefix_space":)" + prefix + R"(,"trim_offsets":true,"use_regex":)" +
         (pre.is_none() ? "false" : "true") + "}";
  } else {
    LF_CHECK(!m.add_prefix_space,
             "cannot write {}: add_prefix_space with a split pattern other than GPT-2's has no tokenizer.json form",
             path);
    o += R"({"type":"Sequence","pretokenizers":[{"type":"Split","pattern":{"Regex":)";
    append_json_string(o, pre.pattern());
    o += R"(},"behavior":"Isolated","invert":false},)";
    o += R"({"type":"ByteLevel","add_prefix_space":false,"trim_offsets":true,"use_regex":false}]})";
  }
  o += R"(,"post_processor":null,"decoder":{"type":"ByteLevel","add_prefix_space":true,"trim_offsets":true,)";
  const bool word_level = m.unknown_id != detail::kNoId;
  if (word_level) {
    o += R"("use_regex":true},"model":{"type":"WordLevel","unk_token":)";
    append_json_string(o, m.bytes_by_id[m.unknown_id]);
  } else {
    o += R"("use_regex":true},"model":{"type":"BPE","dropout":null,"unk_token":null,"continuing_subword_prefix":null,)";
    o += R"("end_of_word_suffix":null,"fuse_unk":false,"byte_fallback":false,"ignore_merges":)";
    o += m.whole_piece_lookup ? "true" : "false";
  }
  o += R"(,"vocab":{)";
  bool first = true;
  for (uint32_t id = 0; id < m.kind_by_id.size(); ++id) {
    if (m.kind_by_id[id] == detail::IdKind::Absent) continue;
    const bool special = m.kind_by_id[id] == detail::IdKind::Special;
    const std::string key = special ? m.bytes_by_id[id] : bytes_to_byte_level(m.bytes_by_id[id]);
    if (special) {
      const auto bytes = byte_level_to_bytes(key);
      const auto clash = bytes ? m.tokens.find(*bytes) : detail::kNoId;
      LF_CHECK(clash == detail::kNoId, "cannot write {}: special token '{}' has the spelling of ordinary token {}",
               path, key, clash);
    }
    if (!first) o += ',';
    first = false;
    append_json_string(o, key);
    o += ':';
    o += std::to_string(id);
  }
  if (word_level) {
    o += "}}}\n";
    write_file_atomic(path, o);
    return;
  }
  o += R"(},"merges":[)";
  first = true;
  for (const auto& [l, r] : merges()) {
    if (!first) o += ',';
    first = false;
    o += '[';
    append_json_string(o, bytes_to_byte_level(m.bytes_by_id[l]));
    o += ',';
    append_json_string(o, bytes_to_byte_level(m.bytes_by_id[r]));
    o += ']';
  }
  o += "]}}\n";
  write_file_atomic(path, o);
}

}  // namespace lmforge::tok
