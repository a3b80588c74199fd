// Encoding and decoding (the hot path), and the vocabulary accessors.
#include "tokenizer/tokenizer.h"

#include "core/error.h"
#include "tokenizer/model.h"
#include "tokenizer/piece_cache.h"
#include "tokenizer/unicode.h"

namespace lmforge::tok {

using detail::IdKind;
using detail::kNoId;
using detail::Model;

SpecialPolicy SpecialPolicy::parse(std::string_view spec) {
  if (spec == "all") return all();
  if (spec == "none" || spec.empty()) return none();
  std::vector<std::string> names;
  size_t start = 0;
  while (start <= spec.size()) {
    size_t comma = spec.find(',', start);
    if (comma == std::string_view::npos) comma = spec.size();
    if (comma > start) names.emplace_back(spec.substr(start, comma - start));
    start = comma + 1;
  }
  return only(std::move(names));
}

namespace detail {
namespace {

struct PieceEncoder {
  const Model& m;
  PieceCache& cache;
  BpeTables tables;
  std::vector<uint32_t>& out;

  // A piece of two or more bytes, its hash already known.
  inline void multi_byte(const char* s, size_t n, uint64_t h) {
    if (m.whole_piece_lookup) {
      const uint32_t id = m.tokens.find(s, n, h);
      if (id != kNoId) {
        out.push_back(id);
        return;
      }
    }
    if (n <= PieceCache::kMaxBytes && cache.lookup(s, n, h, out)) return;
    const size_t before = out.size();
    bpe_merge(tables, s, n, out);
    cache.store(s, n, h, out.data() + before, out.size() - before);
  }

  inline void single_byte(uint8_t b) {
    const uint32_t id = m.byte_id[b];
    if (id == kNoId) throw_missing_byte(b);
    out.push_back(id);
  }
};

}  // namespace

void encode_ordinary_into(const Model& m, std::string_view text, std::vector<uint32_t>& out) {
  if (text.empty()) return;
  if (m.bytes_only) {
    const size_t base = out.size();
    out.resize(base + text.size());
    for (size_t i = 0; i < text.size(); ++i) {
      const uint32_t id = m.byte_id[static_cast<uint8_t>(text[i])];
      if (id == kNoId) throw_missing_byte(static_cast<uint8_t>(text[i]));
      out[base + i] = id;
    }
    return;
  }
  std::string prefixed;
  if (m.add_prefix_space && text[0] != ' ') {
    prefixed.reserve(text.size() + 1);
    prefixed += ' ';
    prefixed += text;
    text = prefixed;
  }
  if (m.unknown_id != kNoId) {  // piece-level: one id per piece, no merging
    m.pretokenizer.for_each_piece(text, [&](std::string_view piece) {
      const uint32_t id = m.tokens.find(piece.data(), piece.size(), piece_hash(piece.data(), piece.size()));
      out.push_back(id == kNoId ? m.unknown_id : id);
    });
    return;
  }
  PieceEncoder enc{m, thread_piece_cache(m.serial), BpeTables{m.byte_id, &m.pairs}, out};
  // Pieces come in batches from the pre-tokenizer. The vocabulary lookup of each piece is a
  // likely cache miss (the table is megabytes), so the loop is software-pipelined: the hash of
  // piece i + kAhead is computed and its slot prefetched while piece i is encoded.
  constexpr size_t kBatch = 256, kAhead = 8;
  size_t ends[kBatch + 1];
  uint64_t hashes[kBatch];
  const char* data = text.data();
  size_t pos = 0;
  while (pos < text.size()) {
    ends[0] = pos;
    const size_t k = m.pretokenizer.next_pieces(text, pos, ends + 1, kBatch);
    auto start_lookup = [&](size_t i) {
      const size_t n = ends[i + 1] - ends[i];
      if (n < 2) return;
      hashes[i] = piece_hash(data + ends[i], n);
      m.tokens.prefetch(hashes[i]);
    };
    for (size_t i = 0; i < k && i < kAhead; ++i) start_lookup(i);
    for (size_t i = 0; i < k; ++i) {
      if (i + kAhead < k) start_lookup(i + kAhead);
      const size_t n = ends[i + 1] - ends[i];
      if (n == 1)
        enc.single_byte(static_cast<uint8_t>(data[ends[i]]));
      else
        enc.multi_byte(data + ends[i], n, hashes[i]);
    }
    pos = ends[k];
  }
}

void encode_into(const Model& m, std::string_view text, size_t base_offset, std::vector<uint32_t>& out,
                 const SpecialPolicy& policy) {
  if (m.specials.empty()) {
    encode_ordinary_into(m, text, out);
    return;
  }
  // allowed[i] for m.specials[i]
  std::vector<uint8_t> allowed(m.specials.size(), policy.allowed == SpecialPolicy::Allowed::All);
  if (policy.allowed == SpecialPolicy::Allowed::List) {
    for (const std::string& name : policy.list) {
      size_t i = 0;
      while (i < m.specials.size() && m.specials[i].text != name) ++i;
      LF_CHECK(i < m.specials.size(), "'{}' is not a special token of this tokenizer ({})", name, m.source);
      allowed[i] = 1;
    }
  }
  bool any_allowed = false, any_disallowed = false;
  for (uint8_t a : allowed) (a ? any_allowed : any_disallowed) = true;
  if (any_disallowed && !policy.disallowed_as_text) {
    std::vector<uint8_t> disallowed(allowed.size());
    for (size_t i = 0; i < allowed.size(); ++i) disallowed[i] = !allowed[i];
    const auto hit = m.matcher.find(text, 0, &disallowed);
    LF_CHECK(hit.pos == SpecialMatcher::npos,
             "the text holds the special token {} at byte offset {}, which is not allowed; allow it (--allow-special) "
             "or encode it as ordinary text",
             m.specials[hit.index].text, base_offset + hit.pos);
  }
  if (!any_allowed) {
    encode_ordinary_into(m, text, out);
    return;
  }
  size_t start = 0;
  while (true) {
    const auto hit = m.matcher.find(text, start, &allowed);
    if (hit.pos == SpecialMatcher::npos) break;
    encode_ordinary_into(m, text.substr(start, hit.pos - start), out);
    out.push_back(m.specials[hit.index].id);
    start = hit.pos + m.specials[hit.index].text.size();
  }
  encode_ordinary_into(m, text.substr(start), out);
}

}  // namespace detail

std::vector<uint32_t> Tokenizer::encode(std::string_view text, const SpecialPolicy& policy) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 4 + 16);
  detail::encode_into(*m_, text, 0, out, policy);
  return out;
}

std::vector<uint32_t> Tokenizer::encode_ordinary(std::string_view text) const {
  std::vector<uint32_t> out;
  out.reserve(text.size() / 4 + 16);
  detail::encode_ordinary_into(*m_, text, out);
  return out;
}

void Tokenizer::encode_append(std::string_view text, std::vector<uint32_t>& out, const SpecialPolicy& policy) const {
  detail::encode_into(*m_, text, 0, out, policy);
}

void Tokenizer::encode_ordinary_append(std::string_view text, std::vector<uint32_t>& out) const {
  detail::encode_ordinary_into(*m_, text, out);
}

std::string Tokenizer::decode(std::span<const uint32_t> ids, DecodeMode mode) const {
  const Model& m = *m_;
  std::string bytes;
  size_t total = 0;
  for (size_t i = 0; i < ids.size(); ++i) {
    const uint32_t id = ids[i];
    LF_CHECK(id < m.kind_by_id.size() && m.kind_by_id[id] != IdKind::Absent,
             "token id {} (at position {}) is not in the vocabulary of {} (vocab_size {})", id, i, m.source,
             m.kind_by_id.size());
    total += m.bytes_by_id[id].size();
  }
  bytes.reserve(total);
  for (uint32_t id : ids) bytes += m.bytes_by_id[id];
  if (mode == DecodeMode::Bytes) return bytes;
  size_t bad = unicode::utf8_first_invalid(bytes.data(), bytes.size());
  if (bad == bytes.size()) return bytes;
  if (mode == DecodeMode::Strict) {
    size_t pos = 0, k = 0;
    while (k + 1 < ids.size() && pos + m.bytes_by_id[ids[k]].size() <= bad) pos += m.bytes_by_id[ids[k++]].size();
    throw Error(fmt::format("decoded bytes are not valid UTF-8 at byte offset {} (in token id {} at position {}); "
                            "decode in lossy mode (--lossy) to replace invalid bytes with U+FFFD",
                            bad, ids[k], k));
  }
  // Lossy: one U+FFFD per maximal ill-formed subpart.
  std::string out;
  out.reserve(bytes.size() + 16);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  const auto* end = p + bytes.size();
  size_t i = 0;
  while (i < bytes.size()) {
    out.append(bytes, i, bad - i);
    if (bad == bytes.size()) break;
    out += "\xEF\xBF\xBD";
    i = bad + unicode::utf8_invalid_length(p + bad, end);
    bad = i + unicode::utf8_first_invalid(bytes.data() + i, bytes.size() - i);
  }
  return out;
}

size_t Tokenizer::vocab_size() const { return m_->kind_by_id.size(); }
size_t Tokenizer::n_ordinary_tokens() const { return m_->n_ordinary; }
size_t Tokenizer::n_merges() const { return m_->rule == MergeRule::MergeList ? m_->merge_list.size() : merges().size(); }

bool Tokenizer::has_id(uint32_t id) const { return id < m_->kind_by_id.size() && m_->kind_by_id[id] != IdKind::Absent; }
bool Tokenizer::is_special(uint32_t id) const { return id < m_->kind_by_id.size() && m_->kind_by_id[id] == IdKind::Special; }

const std::string& Tokenizer::token_bytes(uint32_t id) const {
  LF_CHECK(has_id(id), "token id {} is not in the vocabulary of {} (vocab_size {})", id, m_->source, vocab_size());
  return m_->bytes_by_id[id];
}

std::optional<uint32_t> Tokenizer::token_id(std::string_view bytes) const {
  const uint32_t id = m_->tokens.find(bytes.data(), bytes.size(), detail::piece_hash(bytes.data(), bytes.size()));
  if (id == kNoId) return std::nullopt;
  return id;
}

std::optional<uint32_t> Tokenizer::special_id(std::string_view text) const {
  for (const auto& s : m_->specials)
    if (s.text == text) return s.id;
  return std::nullopt;
}

uint32_t Tokenizer::eot_id() const {
  const auto id = find_eot_id();
  LF_CHECK(id.has_value(), "{} has no <|endoftext|> special token", m_->source);
  return *id;
}

std::optional<uint32_t> Tokenizer::find_eot_id() const { return special_id("<|endoftext|>"); }

const std::vector<SpecialToken>& Tokenizer::special_tokens() const { return m_->specials; }
std::optional<uint32_t> Tokenizer::unknown_id() const {
  if (m_->unknown_id == kNoId) return std::nullopt;
  return m_->unknown_id;
}
MergeRule Tokenizer::merge_rule() const { return m_->rule; }
bool Tokenizer::whole_piece_lookup() const { return m_->whole_piece_lookup; }
bool Tokenizer::add_prefix_space() const { return m_->add_prefix_space; }
const Pretokenizer& Tokenizer::pretokenizer() const { return m_->pretokenizer; }
const std::string& Tokenizer::source() const { return m_->source; }

double Tokenizer::mean_token_bytes() const {
  size_t total = 0;
  for (size_t id = 0; id < m_->kind_by_id.size(); ++id)
    if (m_->kind_by_id[id] == IdKind::Ordinary) total += m_->bytes_by_id[id].size();
  return m_->n_ordinary ? static_cast<double>(total) / static_cast<double>(m_->n_ordinary) : 0.0;
}

}  // namespace lmforge::tok
