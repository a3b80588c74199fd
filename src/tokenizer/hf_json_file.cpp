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
//
// Reading is one pass of a JsonCursor over the file (no DOM): model.vocab and model.merges, the
// bulk of it (200,000 keys and 450,000 merges for o200k_base), become flat arrays of views into
// the file, the vocab keys also an open-addressing index; only the small values (pre_tokenizer,
// added_tokens, the scalar model keys, ...) go through nlohmann::json, parsed from their text.
// Every check of the content runs after that pass, in one fixed order: a file gets the same
// error whatever the order of its keys, and a syntax error or a repeated key anywhere comes
// before any of them.
#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <bit>
#include <cstdlib>
#include <deque>
#include <numeric>
#include <optional>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "tokenizer/byte_unicode.h"
#include "core/file_util.h"
#include "tokenizer/huge_pages.h"
#include "tokenizer/json_cursor.h"
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

// The bytes of a (byte-level) vocab key.
std::string bytes_of_key(std::string_view key, const std::string& path) {
  uint32_t bad = 0;
  auto bytes = byte_level_to_bytes(key, &bad);
  LF_CHECK(bytes.has_value() && !bytes->empty(),
           "{}: model.vocab['{}']: '{}' holds U+{:04X}, which is not a byte-level (GPT-2) character; only byte-level "
           "BPE is supported", path, key, key, bad);
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

// One model.vocab entry as read: its key (byte-level text, a view into the file, or into
// FirstPass::decoded where the key had escapes) and its value.
struct VocabEntry {
  std::string_view key;
  uint64_t id = 0;     // the value, when is_id
  bool is_id = false;  // the value is a non-negative integer (anything else is an error, found later)
};

using detail::kNoId;

// model.vocab key -> entry: open addressing with linear probing over the keys' text. A slot
// holds the key's first 8 bytes, its length and 24 bits of its hash (as TokenMap's slots do), so
// a lookup of a key of up to 8 bytes, or a miss, reads the slot and nothing else. The table is
// megabytes for a big vocabulary, so every lookup and insert is a cache miss unless its slot was
// prefetched: the callers hash a batch of keys ahead and prefetch their slots.
class VocabIndex {
 public:
  explicit VocabIndex(const std::vector<VocabEntry>& entries) : entries_(entries) { rehash(1024); }
  static uint64_t hash(std::string_view key) { return detail::piece_hash(key.data(), key.size()); }
  uint32_t find(std::string_view key) const { return find(key, hash(key)); }
  uint32_t find(std::string_view key, uint64_t hash) const {
    const uint64_t head = detail::head_word(key.data(), key.size());
    const uint32_t meta = meta_of(key.size(), hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.meta == meta && sl.head == head && (key.size() <= 8 || entries_[sl.entry].key == key)) return sl.entry;
      if (sl.meta == 0) return kNoId;
    }
  }
  void prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }
  // Adds entries[from, to) in order; returns the first entry whose key an earlier entry has (the
  // later one, which is not added), else kNoId.
  uint32_t insert(uint32_t from, uint32_t to) {
    if (2 * (size_ + (to - from)) > slots_.size()) rehash(std::bit_ceil(2 * (size_ + (to - from))));
    constexpr uint32_t kAhead = 16;
    hashes_.resize(to - from);
    for (uint32_t e = from; e < to; ++e) hashes_[e - from] = hash(entries_[e].key);
    for (uint32_t e = from; e < to; ++e) {
      if (e + kAhead < to) prefetch(hashes_[e + kAhead - from]);
      const std::string_view key = entries_[e].key;
      if (find(key, hashes_[e - from]) != kNoId) return e;
      place(hashes_[e - from], e);
      ++size_;
    }
    return kNoId;
  }

 private:
  struct Slot {
    uint64_t head = 0;
    uint32_t meta = 0;  // 0: empty
    uint32_t entry = kNoId;
  };
  // Length (saturated at 255) and hash bits; never 0.
  static uint32_t meta_of(size_t n, uint64_t hash) {
    return static_cast<uint32_t>(n < 255 ? n : 255) | static_cast<uint32_t>(hash >> 40) << 8 | 1;
  }
  void place(uint64_t hash, uint32_t entry) {
    size_t i = hash & mask_;
    while (slots_[i].meta != 0) i = (i + 1) & mask_;
    const std::string_view key = entries_[entry].key;
    slots_[i] = {detail::head_word(key.data(), key.size()), meta_of(key.size(), hash), entry};
  }
  void rehash(size_t capacity) {
    std::vector<Slot> old = std::move(slots_);
    detail::assign_huge(slots_, capacity, Slot{});
    mask_ = capacity - 1;
    for (const Slot& sl : old)
      if (sl.meta != 0) place(hash(entries_[sl.entry].key), sl.entry);
  }
  const std::vector<VocabEntry>& entries_;
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  size_t size_ = 0;
  std::vector<uint64_t> hashes_;  // insert()'s batch
};

// One model.merges element as read.
struct MergeEntry {
  enum class Form : uint8_t { Joined, Pair, Other };  // "a b", ["a", "b"], anything else
  Form form = Form::Other;
  std::string_view first{}, second{};  // Joined: the whole string in `first`; Pair: a and b
};

// What one pass over the file collects. The big parts (model.vocab, model.merges) are read
// straight off the text; the small ones become nlohmann::json values. Nothing is judged here
// beyond JSON syntax and repeated keys, so that, as when the whole file was parsed first, a
// syntax error or repeated key anywhere is reported before any check of the content.
struct FirstPass {
  FirstPass() = default;
  FirstPass(const FirstPass&) = delete;  // `index` refers to `vocab`
  FirstPass& operator=(const FirstPass&) = delete;

  bool top_is_object = false;
  std::optional<json> normalizer, pre_tokenizer, added_tokens;
  bool model_is_object = false;
  json model = json::object();  // model's keys other than vocab and merges
  bool vocab_is_object = false;
  std::vector<VocabEntry> vocab;
  VocabIndex index{vocab};
  bool merges_is_array = false;
  std::vector<MergeEntry> merges;
  std::deque<std::string> decoded;  // the strings that had escapes, which views point into
  std::string scratch;

  // `s` kept alive: a view into the file as it is, or a copy of the decoded string.
  std::string_view keep(std::string_view s) {
    return s.data() == scratch.data() ? std::string_view(decoded.emplace_back(s)) : s;
  }
};

// The small values go through nlohmann::json, which the cursor has already checked them for.
json parse_span(const JsonCursor& c, std::string_view data, std::string_view span) {
  try {
    return json::parse(span);
  } catch (const json::parse_error& e) {
    c.fail(static_cast<size_t>(span.data() - data.data()) + (e.byte > 0 ? e.byte - 1 : 0), e.what());
  } catch (const json::exception& e) {  // a number it cannot hold (out_of_range)
    c.fail(static_cast<size_t>(span.data() - data.data()), e.what());
  }
}

void read_vocab(JsonCursor& c, FirstPass& p) {
  // Repeated keys are looked for once the whole vocab is read (in one prefetched batch); an
  // error met while reading it comes after a repeated key before it, as it would in order.
  auto index_keys = [&] {
    if (const uint32_t again = p.index.insert(0, static_cast<uint32_t>(p.vocab.size())); again != kNoId)
      c.duplicate_key(p.vocab[again].key, "vocab");
  };
  try {
    c.begin_object();
    bool first = true;
    std::string_view key;
    while (c.next_key(first, key, p.scratch)) {
      p.vocab.push_back({.key = p.keep(key)});
      c.expect_colon();
      const char v = c.peek();
      if (v >= '0' && v <= '9')
        p.vocab.back().is_id = c.read_number(p.vocab.back().id);
      else
        c.skip_value();
    }
  } catch (const Error&) {
    index_keys();
    throw;
  }
  index_keys();
}

void read_merges(JsonCursor& c, FirstPass& p) {
  c.begin_array();
  bool first = true;
  while (c.next_element(first)) {
    const char v = c.peek();
    if (v == '"') {
      p.merges.push_back({.form = MergeEntry::Form::Joined, .first = p.keep(c.read_string(p.scratch))});
      continue;
    }
    if (v == '[') {
      // ["a", "b"] read on the spot; any other array is read again as a whole.
      const size_t at = c.offset();
      c.begin_array();
      bool in_first = true;
      MergeEntry m{.form = MergeEntry::Form::Pair};
      if (c.next_element(in_first) && c.peek() == '"') {
        m.first = p.keep(c.read_string(p.scratch));
        if (c.next_element(in_first) && c.peek() == '"') {
          m.second = p.keep(c.read_string(p.scratch));
          if (!c.next_element(in_first)) {
            p.merges.push_back(m);
            continue;
          }
        }
      }
      c.rewind(at);
    }
    c.skip_value();
    p.merges.push_back({.form = MergeEntry::Form::Other});
  }
}

void read_model(JsonCursor& c, std::string_view data, FirstPass& p) {
  c.begin_object();
  std::unordered_set<std::string> seen;
  bool first = true;
  std::string_view key;
  while (c.next_key(first, key, p.scratch)) {
    if (!seen.emplace(key).second) c.duplicate_key(key, "model");
    c.expect_colon();
    if (key == "vocab" && c.peek() == '{') {
      p.vocab_is_object = true;
      read_vocab(c, p);
    } else if (key == "merges" && c.peek() == '[') {
      p.merges_is_array = true;
      read_merges(c, p);
    } else {
      std::string name(key);
      p.model[name] = parse_span(c, data, c.skip_value());
    }
  }
}

void read_file_structure(std::string_view data, const std::string& path, FirstPass& p) {
  // Room for all the vocab entries and merges a real file of this size holds (one takes at
  // least 5 bytes of it, as "a":0, or "a b",), so that they are never copied as they grow:
  // address space only, each page gets memory once written.
  detail::reserve_huge(p.vocab, data.size() / 5 + 1);
  detail::reserve_huge(p.merges, data.size() / 5 + 1);
  JsonCursor c(data, path);
  if (c.peek() != '{') {
    c.skip_value();
    c.expect_end();
    return;
  }
  p.top_is_object = true;
  c.begin_object();
  std::unordered_set<std::string> seen;
  bool first = true;
  std::string_view key;
  while (c.next_key(first, key, p.scratch)) {
    if (!seen.emplace(key).second) c.duplicate_key(key, "");
    c.expect_colon();
    if (key == "model" && c.peek() == '{') {
      p.model_is_object = true;
      read_model(c, data, p);
    } else if (key == "normalizer") {
      p.normalizer = parse_span(c, data, c.skip_value());
    } else if (key == "pre_tokenizer") {
      p.pre_tokenizer = parse_span(c, data, c.skip_value());
    } else if (key == "added_tokens") {
      p.added_tokens = parse_span(c, data, c.skip_value());
    } else {
      c.skip_value();
    }
  }
  c.expect_end();
}

// Throws the error about model.vocab's values that a walk over the entries in key order (the
// order of a JSON object held as a sorted map) meets first: a value that is not a token id, or
// an id given to two keys. Called only where there is one.
[[noreturn]] void throw_vocab_id_error(const std::vector<VocabEntry>& vocab, const std::string& path) {
  std::vector<uint32_t> order(vocab.size());
  std::iota(order.begin(), order.end(), 0u);
  std::sort(order.begin(), order.end(), [&](uint32_t a, uint32_t b) { return vocab[a].key < vocab[b].key; });
  std::unordered_map<uint64_t, std::string_view> key_of_id;
  for (const uint32_t i : order) {
    const VocabEntry& e = vocab[i];
    LF_CHECK(e.is_id && e.id < (uint64_t{1} << 31), "{}: model.vocab['{}'] must be a token id (a non-negative "
             "integer)", path, e.key);
    auto [it, fresh] = key_of_id.emplace(e.id, e.key);
    LF_CHECK(fresh, "{}: model.vocab: id {} is given to both '{}' and '{}'", path, e.id, it->second, e.key);
  }
  LF_ASSERT(false, "no bad id in model.vocab");
  std::abort();
}

// (id, vocab entry) for every entry, by id; throws the first bad value or repeated id.
std::vector<std::pair<uint32_t, uint32_t>> entries_by_id(const std::vector<VocabEntry>& vocab,
                                                         const std::string& path) {
  uint64_t max_id = 0;
  for (const VocabEntry& e : vocab) {
    if (!e.is_id || e.id >= (uint64_t{1} << 31)) throw_vocab_id_error(vocab, path);
    max_id = std::max(max_id, e.id);
  }
  std::vector<std::pair<uint32_t, uint32_t>> by_id;
  by_id.reserve(vocab.size());
  if (max_id < 8 * vocab.size() + 1024) {
    // Dense ids (every file that loads): one slot per id.
    std::vector<uint32_t> entry_of_id(max_id + 1, kNoId);
    for (uint32_t i = 0; i < vocab.size(); ++i) {
      uint32_t& slot = entry_of_id[vocab[i].id];
      if (slot != kNoId) throw_vocab_id_error(vocab, path);
      slot = i;
    }
    for (uint32_t id = 0; id <= max_id; ++id)
      if (entry_of_id[id] != kNoId) by_id.emplace_back(id, entry_of_id[id]);
  } else {
    for (uint32_t i = 0; i < vocab.size(); ++i) by_id.emplace_back(static_cast<uint32_t>(vocab[i].id), i);
    std::sort(by_id.begin(), by_id.end());
    for (size_t k = 1; k < by_id.size(); ++k)
      if (by_id[k].first == by_id[k - 1].first) throw_vocab_id_error(vocab, path);
  }
  return by_id;
}

}  // namespace

Tokenizer Tokenizer::load_tokenizer_json(const std::string& path) {
  const std::string data = read_file(path, "tokenizer file");
  FirstPass p;
  read_file_structure(data, path, p);
  LF_CHECK(p.top_is_object, "{}: expected a JSON object (a tokenizer.json)", path);

  if (const auto& n = p.normalizer; n && !n->is_null()) {
    const bool empty_sequence = n->is_object() && n->value("type", "") == "Sequence" &&
                                n->contains("normalizers") && (*n)["normalizers"].empty();
    LF_CHECK(empty_sequence, "{}: normalizer: normalizers are not supported (type '{}')", path,
             n->is_object() ? n->value("type", "?") : "?");
  }

  PreTokenizerConfig pre;
  if (p.pre_tokenizer && !p.pre_tokenizer->is_null()) read_pretokenizer(*p.pre_tokenizer, path, "pre_tokenizer", true, pre);
  LF_CHECK(pre.byte_level, "{}: pre_tokenizer has no ByteLevel step; only byte-level BPE is supported", path);

  LF_CHECK(p.model_is_object, "{}: missing key 'model'", path);
  const json& model = p.model;
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

  LF_CHECK(p.vocab_is_object, "{}: model.vocab must be an object", path);
  const std::vector<VocabEntry>& vocab = p.vocab;
  const std::vector<std::pair<uint32_t, uint32_t>> by_id = entries_by_id(vocab, path);
  auto entry_with_id = [&](uint64_t id) {
    auto it = std::lower_bound(by_id.begin(), by_id.end(), std::pair<uint32_t, uint32_t>(id, 0));
    return it != by_id.end() && it->first == id ? it->second : kNoId;
  };

  // Added tokens are specials; one that is also a vocab entry (same id, same text) leaves the
  // ordinary vocabulary, as HF never lets the model see its text.
  std::vector<uint8_t> moved(vocab.size(), 0);  // by vocab entry
  if (const auto& added = p.added_tokens; added && !added->is_null()) {
    LF_CHECK(added->is_array(), "{}: added_tokens must be an array", path);
    for (size_t i = 0; i < added->size(); ++i) {
      const json& a = (*added)[i];
      const std::string where = fmt::format("added_tokens[{}]", i);
      LF_CHECK(a.is_object() && a.contains("id") && a["id"].is_number_unsigned() && a.contains("content") &&
                   a["content"].is_string(),
               "{}: {} must have an integer 'id' and a string 'content'", path, where);
      // Read as 64 bits: get<uint32_t>() would wrap 2^32 + 5 around to 5.
      LF_CHECK(a["id"].get<uint64_t>() < (uint64_t{1} << 31), "{}: {}: id {} is not below 2^31", path, where,
               a["id"].get<uint64_t>());
      // A tokenizer.json numbers its added tokens itself, so they are held to the density bound
      // of ordinary ids (unlike the fixed special ids of the known .tiktoken encodings).
      const uint64_t n_ids = vocab.size() + added->size();
      LF_CHECK(a["id"].get<uint64_t>() < 8 * n_ids + 1024, "{}: {}: id {} is far beyond the number of tokens ({}); "
               "ids must be (nearly) dense", path, where, a["id"].get<uint64_t>(), n_ids);
      SpecialToken s{a["content"].get<std::string>(), a["id"].get<uint32_t>()};
      if (const uint32_t k = entry_with_id(s.id); k != kNoId) {
        // The vocab entry may spell the text literally (HF's lookup) or in byte-level form.
        const auto bytes = byte_level_to_bytes(vocab[k].key);
        LF_CHECK(vocab[k].key == s.text || (bytes && *bytes == s.text),
                 "{}: {}: id {} is also model.vocab['{}'], a different token", path, where, s.id, vocab[k].key);
        moved[k] = 1;
      }
      spec.specials.push_back(std::move(s));
    }
  }

  // WordLevel's unknown token is a vocab entry that HF never produces from text: a special token
  // here, whether or not added_tokens lists it.
  if (word_level && std::none_of(spec.specials.begin(), spec.specials.end(),
                                 [&](const SpecialToken& s) { return s.text == unk_token; })) {
    const uint32_t k = p.index.find(unk_token);
    LF_CHECK(k != kNoId, "{}: model.unk_token '{}' is not in model.vocab", path, unk_token);
    spec.specials.push_back({unk_token, static_cast<uint32_t>(vocab[k].id)});
    moved[k] = 1;
  }

  detail::reserve_huge(spec.tokens, by_id.size());
  for (const auto& [id, k] : by_id)  // by id: the order build() wants
    if (!moved[k]) spec.tokens.emplace_back(bytes_of_key(vocab[k].key, path), id);

  if (word_level) return build(std::move(spec));
  LF_CHECK(p.merges_is_array, "{}: model.merges must be an array", path);
  spec.merges.reserve(p.merges.size());
  // By vocab entry: its id, or kNoId for one that moved to the special tokens (a merge with one
  // is dropped). Small enough to stay in cache, unlike the entries.
  std::vector<uint32_t> ordinary_id(vocab.size());
  for (size_t k = 0; k < vocab.size(); ++k) ordinary_id[k] = moved[k] ? kNoId : static_cast<uint32_t>(vocab[k].id);
  // Each merge needs three lookups (its parts and their concatenation), each a cache miss in a
  // big index; they are hashed and their slots prefetched kAhead merges before they are made.
  struct Lookup {
    bool well_formed = false;  // "a b" with one space, or ["a", "b"]
    std::string_view a, b;
    std::string joined;        // a + b
    uint64_t hash_a = 0, hash_b = 0, hash_joined = 0;
  };
  constexpr size_t kAhead = 8;
  std::array<Lookup, kAhead> ahead;
  auto prepare = [&](size_t i) {
    Lookup& q = ahead[i % kAhead];
    const MergeEntry& e = p.merges[i];
    q.well_formed = false;
    if (e.form == MergeEntry::Form::Joined) {
      const size_t sp = e.first.find(' ');
      if (sp == std::string_view::npos || e.first.find(' ', sp + 1) != std::string_view::npos) return;
      q.a = e.first.substr(0, sp);
      q.b = e.first.substr(sp + 1);
    } else if (e.form == MergeEntry::Form::Pair) {
      q.a = e.first;
      q.b = e.second;
    } else {
      return;
    }
    q.well_formed = true;
    q.joined.assign(q.a).append(q.b);
    q.hash_a = VocabIndex::hash(q.a);
    q.hash_b = VocabIndex::hash(q.b);
    q.hash_joined = VocabIndex::hash(q.joined);
    p.index.prefetch(q.hash_a);
    p.index.prefetch(q.hash_b);
    p.index.prefetch(q.hash_joined);
  };
  auto make = [&](size_t i, const Lookup& q) {
    if (!q.well_formed) {
      const MergeEntry& e = p.merges[i];
      LF_CHECK(e.form != MergeEntry::Form::Joined,
               "{}: model.merges[{}]: '{}' is not two tokens separated by one space", path, i, e.first);
      throw Error(fmt::format("{}: model.merges[{}] must be \"a b\" or [\"a\", \"b\"]", path, i));
    }
    const uint32_t ia = p.index.find(q.a, q.hash_a), ib = p.index.find(q.b, q.hash_b);
    LF_CHECK(ia != kNoId, "{}: model.merges[{}]: '{}' is not in model.vocab", path, i, q.a);
    LF_CHECK(ib != kNoId, "{}: model.merges[{}]: '{}' is not in model.vocab", path, i, q.b);
    if (ordinary_id[ia] == kNoId || ordinary_id[ib] == kNoId) return;
    const uint32_t ir = p.index.find(q.joined, q.hash_joined);
    LF_CHECK(ir != kNoId, "{}: model.merges[{}]: '{}' + '{}' = '{}' is not in model.vocab", path, i, q.a, q.b,
             q.joined);
    if (ordinary_id[ir] == kNoId) return;
    spec.merges.emplace_back(ordinary_id[ia], ordinary_id[ib]);
  };
  const size_t n_merges = p.merges.size();
  for (size_t i = 0; i < std::min(kAhead, n_merges); ++i) prepare(i);
  for (size_t i = 0; i < n_merges; ++i) {
    make(i, ahead[i % kAhead]);
    if (i + kAhead < n_merges) prepare(i + kAhead);
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
