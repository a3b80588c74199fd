// Building a tokenizer: validating a TokenizerSpec and filling the lookup tables.
#include <algorithm>
#include <array>
#include <atomic>
#include <bit>
#include <iterator>
#include <thread>
#include <unordered_map>

#include "core/error.h"
#include "tokenizer/huge_pages.h"
#include "tokenizer/model.h"

namespace lmforge::tok {

using detail::IdKind;
using detail::kNoId;

namespace {

std::atomic<uint64_t> g_next_serial{1};

std::string printable(std::string_view bytes) {
  std::string out;
  for (unsigned char c : bytes) {
    if (c >= 0x20 && c < 0x7F && c != '\\')
      out += static_cast<char>(c);
    else
      out += fmt::format("\\x{:02x}", c);
  }
  return out;
}

// MergeRule::Ranks: every split of every token t into two tokens (l, r) becomes the pair
// (l, r) -> (rank t, result t). The splits are the bulk of loading a big vocabulary (1.2 million
// for o200k_base, each two token-map lookups that miss the cache), so they are hashed and their
// slots prefetched a batch ahead of the lookups, on several threads for a big vocabulary; the
// pairs found are then inserted in id order.
void build_rank_pairs(detail::Model& m, const std::vector<uint8_t>& ordinary) {
  struct Pair {
    uint32_t left, right, id;
  };
  const size_t n_ids = ordinary.size();
  // Most splits have a part that is not a token (63% for o200k_base). A one-hash Bloom filter of
  // the tokens' hashes, small enough for L2 (16 bits per token), rejects most of those before
  // their token-map lookup, which would miss the cache.
  const size_t filter_bits = std::bit_ceil(std::max<size_t>(1024, 16 * m.n_ordinary));
  const int filter_shift = 64 - std::countr_zero(filter_bits);
  std::vector<uint64_t> filter(filter_bits / 64, 0);
  auto filter_bit = [&](uint64_t hash) { return (hash * 0x9E3779B97F4A7C15ull) >> filter_shift; };
  for (size_t id = 0; id < n_ids; ++id) {
    if (!ordinary[id]) continue;
    const std::string& b = m.bytes_by_id[id];
    const uint64_t bit = filter_bit(detail::piece_hash(b.data(), b.size()));
    filter[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
  auto maybe_token = [&](uint64_t hash) {
    const uint64_t bit = filter_bit(hash);
    return (filter[bit >> 6] >> (bit & 63) & 1) != 0;
  };
  auto find_pairs = [&](size_t lo, size_t hi, std::vector<Pair>& out) {
    detail::reserve_huge(out, (hi - lo) * 5 / 2);  // o200k_base: 2.2 pairs per token
    struct Split {
      uint32_t id, k;
      uint64_t left_hash, right_hash;
    };
    constexpr size_t kBatch = 32;
    Split batch[kBatch + detail::kShortPiece];  // a token adds its splits whole
    size_t n = 0;
    auto resolve = [&] {
      for (size_t i = 0; i < n; ++i) {
        const std::string& b = m.bytes_by_id[batch[i].id];
        const size_t k = batch[i].k;
        const uint32_t l = m.tokens.find(b.data(), k, batch[i].left_hash);
        if (l == kNoId) continue;
        const uint32_t r = m.tokens.find(b.data() + k, b.size() - k, batch[i].right_hash);
        if (r != kNoId) out.push_back({l, r, batch[i].id});
      }
      n = 0;
    };
    for (size_t id = lo; id < hi; ++id) {
      if (!ordinary[id]) continue;
      const std::string& b = m.bytes_by_id[id];
      for (size_t k = 1; k < b.size(); ++k) {
        const uint64_t hl = detail::piece_hash(b.data(), k);
        if (!maybe_token(hl)) continue;
        const uint64_t hr = detail::piece_hash(b.data() + k, b.size() - k);
        if (!maybe_token(hr)) continue;
        m.tokens.prefetch(hl);
        m.tokens.prefetch(hr);
        batch[n++] = {static_cast<uint32_t>(id), static_cast<uint32_t>(k), hl, hr};
        if (n == std::size(batch)) resolve();
      }
      if (n >= kBatch) resolve();
    }
    resolve();
  };
  size_t total_bytes = 0;
  for (size_t id = 0; id < n_ids; ++id)
    if (ordinary[id]) total_bytes += m.bytes_by_id[id].size();
  // A thread per 256 KiB of token bytes, up to four: r50k_base gets one, cl100k and o200k two or more.
  const unsigned hw = std::max(1u, std::thread::hardware_concurrency());
  const size_t n_threads = std::clamp<size_t>(total_bytes / (size_t{256} << 10), 1, std::min(hw, 4u));
  std::vector<std::vector<Pair>> found(n_threads);
  std::vector<std::thread> threads;
  for (size_t t = 1; t < n_threads; ++t)
    threads.emplace_back(find_pairs, n_ids * t / n_threads, n_ids * (t + 1) / n_threads, std::ref(found[t]));
  find_pairs(0, n_ids / n_threads, found[0]);
  for (auto& th : threads) th.join();

  size_t n_pairs = 0;
  for (const auto& f : found) n_pairs += f.size();
  m.pairs.reserve(n_pairs);
  constexpr size_t kAhead = 16;
  for (const auto& f : found) {
    for (size_t i = 0; i < f.size(); ++i) {
      if (i + kAhead < f.size()) m.pairs.prefetch(f[i + kAhead].left, f[i + kAhead].right);
      m.pairs.insert(f[i].left, f[i].right, {f[i].id, f[i].id});
    }
  }
}

}  // namespace

Tokenizer Tokenizer::build(TokenizerSpec spec) {
  auto m = std::make_shared<detail::Model>();
  const std::string& src = spec.source.empty() ? (spec.source = "tokenizer") : spec.source;
  m->source = spec.source;
  if (!spec.unknown_token.empty()) {
    // Piece-level: whole pieces or the unknown token, never merges (nor the pairs that Ranks
    // derives from the tokens' spellings).
    LF_CHECK(spec.merges.empty(), "{}: a piece-level tokenizer (with an unknown token) has no merges", src);
    spec.rule = MergeRule::MergeList;
  }
  m->rule = spec.rule;
  m->whole_piece_lookup = spec.rule == MergeRule::Ranks || spec.whole_piece_lookup;
  m->add_prefix_space = spec.add_prefix_space;
  m->pretokenizer = spec.pretokenizer;

  // Ids: dense enough to index, distinct across ordinary and special tokens.
  const size_t n_ids = spec.tokens.size() + spec.specials.size();
  LF_CHECK(spec.tokens.size() > 0 || spec.specials.size() > 0, "{}: the vocabulary is empty", src);
  uint64_t max_id = 0;
  for (const auto& [bytes, id] : spec.tokens) max_id = std::max<uint64_t>(max_id, id);
  for (const auto& s : spec.specials) max_id = std::max<uint64_t>(max_id, s.id);
  LF_CHECK(max_id < (uint64_t{1} << 31) && max_id < std::max<uint64_t>(uint64_t{1} << 20, 8 * n_ids),
           "{}: token id {} is far beyond the number of tokens ({}); ids must be (nearly) dense", src, max_id, n_ids);
  // Ordinary ids are held to the bound the .tiktoken reader uses: a stray id (a corrupted or
  // mistyped file) must not make a 512-token vocabulary look like one of 188190 ids. Special ids
  // of the known encodings sit past large gaps (r50k's <|endoftext|> is 50256 whatever the file
  // holds), so they keep the looser bound above.
  uint64_t max_ordinary = 0;
  for (const auto& [bytes, id] : spec.tokens) max_ordinary = std::max<uint64_t>(max_ordinary, id);
  LF_CHECK(spec.tokens.empty() || max_ordinary < 8 * spec.tokens.size() + 1024,
           "{}: token id {} is far beyond the number of ordinary tokens ({}); ids must be (nearly) dense", src,
           max_ordinary, spec.tokens.size());
  detail::reserve_huge(m->bytes_by_id, max_id + 1);
  m->bytes_by_id.resize(max_id + 1);
  m->kind_by_id.assign(max_id + 1, IdKind::Absent);
  for (auto& [bytes, id] : spec.tokens) {
    LF_CHECK(!bytes.empty(), "{}: token id {} has no bytes", src, id);
    LF_CHECK(m->kind_by_id[id] == IdKind::Absent, "{}: token id {} is given twice", src, id);
    m->kind_by_id[id] = IdKind::Ordinary;
    m->bytes_by_id[id] = std::move(bytes);
  }
  m->n_ordinary = spec.tokens.size();
  std::sort(spec.specials.begin(), spec.specials.end(), [](const auto& a, const auto& b) { return a.id < b.id; });
  for (const auto& s : spec.specials) {
    LF_CHECK(!s.text.empty(), "{}: special token id {} has empty text", src, s.id);
    LF_CHECK(m->kind_by_id[s.id] == IdKind::Absent, "{}: special token '{}' has id {}, which is already taken by {}",
             src, s.text, s.id,
             m->kind_by_id[s.id] == IdKind::Special ? "another special token" : "an ordinary token");
    m->kind_by_id[s.id] = IdKind::Special;
    m->bytes_by_id[s.id] = s.text;
  }
  {
    std::unordered_map<std::string_view, uint32_t> seen;
    for (const auto& s : spec.specials) {
      auto [it, fresh] = seen.emplace(s.text, s.id);
      LF_CHECK(fresh, "{}: special token '{}' is given twice (ids {} and {})", src, s.text, it->second, s.id);
    }
  }
  m->specials = spec.specials;
  std::vector<std::string> special_texts;
  for (const auto& s : m->specials) special_texts.push_back(s.text);
  m->matcher = detail::SpecialMatcher(std::move(special_texts));

  // Ordinary tokens: byte string -> id, then check that no two share their bytes.
  std::vector<uint8_t> ordinary(m->kind_by_id.size());
  for (size_t id = 0; id < ordinary.size(); ++id) ordinary[id] = m->kind_by_id[id] == IdKind::Ordinary;
  if (const auto [first, again] = m->tokens.build(m->bytes_by_id, ordinary); first != kNoId) {
    const std::string shown = printable(m->bytes_by_id[first]);
    size_t line_first = 0, line_again = 0;
    for (size_t i = 0; i < spec.token_lines.size() && i < spec.tokens.size(); ++i) {
      if (spec.tokens[i].second == first) line_first = spec.token_lines[i];
      if (spec.tokens[i].second == again) line_again = spec.token_lines[i];
    }
    if (line_first != 0 && line_again != 0)
      throw Error(fmt::format("{}:{}: token {} has the bytes '{}' of token {}, given on line {}", src,
                              std::max(line_first, line_again), line_first < line_again ? again : first, shown,
                              line_first < line_again ? first : again, std::min(line_first, line_again)));
    throw Error(fmt::format("{}: tokens {} and {} have the same bytes '{}'", src, std::min(first, again),
                            std::max(first, again), shown));
  }
  bool all_single = true;
  for (size_t id = 0; id < ordinary.size(); ++id)
    if (ordinary[id] && m->bytes_by_id[id].size() != 1) all_single = false;
  for (int b = 0; b < 256; ++b) {
    const char c = static_cast<char>(b);
    m->byte_id[b] = m->tokens.find(&c, 1, detail::piece_hash(&c, 1));
  }

  // Pair table.
  if (spec.rule == MergeRule::Ranks) {
    build_rank_pairs(*m, ordinary);
  } else {
    LF_CHECK(spec.merges.size() < kNoId, "{}: too many merges", src);
    m->pairs.reserve(spec.merges.size());
    // Each merge is a token-map lookup of the joined bytes and a pair-map insert, both cache
    // misses in tables of megabytes: the joined bytes are hashed and both slots prefetched
    // kAhead merges before they are used.
    auto both_ordinary = [&](uint32_t l, uint32_t r) {
      return l < ordinary.size() && ordinary[l] && r < ordinary.size() && ordinary[r];
    };
    struct Joined {
      std::string bytes;  // bytes(l) + bytes(r)
      uint64_t hash = 0;
    };
    constexpr size_t kAhead = 8;
    std::array<Joined, kAhead> ahead;
    auto prepare = [&](size_t i) {
      const auto [l, r] = spec.merges[i];
      if (!both_ordinary(l, r)) return;
      Joined& j = ahead[i % kAhead];
      j.bytes.assign(m->bytes_by_id[l]).append(m->bytes_by_id[r]);
      j.hash = detail::piece_hash(j.bytes.data(), j.bytes.size());
      m->tokens.prefetch(j.hash);
      m->pairs.prefetch(l, r);
    };
    const size_t n_merges = spec.merges.size();
    for (size_t i = 0; i < std::min(kAhead, n_merges); ++i) prepare(i);
    for (size_t i = 0; i < n_merges; ++i) {
      if (i + 2 * kAhead < n_merges) {  // the strings prepare() will join, one step earlier
        const auto [l, r] = spec.merges[i + 2 * kAhead];
        if (both_ordinary(l, r)) {
          __builtin_prefetch(&m->bytes_by_id[l]);
          __builtin_prefetch(&m->bytes_by_id[r]);
        }
      }
      const auto [l, r] = spec.merges[i];
      LF_CHECK(both_ordinary(l, r), "{}: merge {} joins ids {} and {}, which are not both ordinary tokens", src, i,
               l, r);
      const Joined& j = ahead[i % kAhead];
      const uint32_t result = m->tokens.find(j.bytes.data(), j.bytes.size(), j.hash);
      LF_CHECK(result != kNoId, "{}: merge {} ('{}' + '{}') makes '{}', which is not in the vocabulary", src, i,
               printable(m->bytes_by_id[l]), printable(m->bytes_by_id[r]), printable(j.bytes));
      m->pairs.insert(l, r, {static_cast<uint32_t>(i), result});  // a repeated pair: the later wins, as in HF
      if (i + kAhead < n_merges) prepare(i + kAhead);
    }
    m->merge_list = std::move(spec.merges);
  }
  m->pairs.build_filter();
  if (!spec.unknown_token.empty()) {
    const auto unk = std::find_if(m->specials.begin(), m->specials.end(),
                                  [&](const SpecialToken& s) { return s.text == spec.unknown_token; });
    LF_CHECK(unk != m->specials.end(), "{}: the unknown token '{}' is not one of the special tokens", src,
             spec.unknown_token);
    m->unknown_id = unk->id;
  }
  // A piece-level tokenizer looks pieces up whole even when every token is one byte.
  m->bytes_only = all_single && m->pairs.size() == 0 && m->unknown_id == kNoId;
  m->serial = g_next_serial.fetch_add(1);
  return Tokenizer(std::move(m));
}

Tokenizer Tokenizer::from_ranks(std::vector<std::string> token_bytes_by_rank, std::vector<SpecialToken> specials,
                                Pretokenizer pretokenizer) {
  TokenizerSpec spec;
  spec.tokens.reserve(token_bytes_by_rank.size());
  for (size_t i = 0; i < token_bytes_by_rank.size(); ++i)
    spec.tokens.emplace_back(std::move(token_bytes_by_rank[i]), static_cast<uint32_t>(i));
  spec.specials = std::move(specials);
  spec.pretokenizer = std::move(pretokenizer);
  spec.source = "ranks";
  return build(std::move(spec));
}

Tokenizer Tokenizer::from_merges(std::vector<std::string> token_bytes_by_rank, std::vector<std::string> specials,
                                 Pretokenizer pretokenizer) {
  std::vector<SpecialToken> sp;
  const auto first = static_cast<uint32_t>(token_bytes_by_rank.size());
  for (size_t i = 0; i < specials.size(); ++i) sp.push_back({std::move(specials[i]), first + static_cast<uint32_t>(i)});
  return from_ranks(std::move(token_bytes_by_rank), std::move(sp), std::move(pretokenizer));
}

Tokenizer Tokenizer::byte_level(std::vector<std::string> specials) {
  std::vector<std::string> bytes;
  for (int b = 0; b < 256; ++b) bytes.emplace_back(1, static_cast<char>(b));
  return from_merges(std::move(bytes), std::move(specials), Pretokenizer::none());
}

// For Ranks: for each token (by rank) of two or more bytes, run BPE on its own bytes with only
// the lower ranks; the last two parts are its merge. Tokens that end in three or more parts
// (unreachable by merging) get none; whole-piece lookup still produces them.
std::vector<std::pair<uint32_t, uint32_t>> Tokenizer::merges() const {
  const detail::Model& m = *m_;
  if (m.rule == MergeRule::MergeList) return m.merge_list;
  std::vector<std::pair<uint32_t, uint32_t>> out;
  std::vector<uint32_t> parts;
  for (uint32_t id = 0; id < m.kind_by_id.size(); ++id) {
    if (m.kind_by_id[id] != IdKind::Ordinary || m.bytes_by_id[id].size() < 2) continue;
    const std::string& b = m.bytes_by_id[id];
    parts.clear();
    for (unsigned char c : b) parts.push_back(m.byte_id[c]);
    if (std::find(parts.begin(), parts.end(), kNoId) != parts.end()) continue;
    while (parts.size() > 2) {
      uint32_t best_rank = kNoId;
      size_t best = 0;
      for (size_t i = 0; i + 1 < parts.size(); ++i) {
        const auto* v = m.pairs.find(parts[i], parts[i + 1]);
        if (v && v->rank < id && v->rank < best_rank) {
          best_rank = v->rank;
          best = i;
        }
      }
      if (best_rank == kNoId) break;
      parts[best] = m.pairs.find(parts[best], parts[best + 1])->result;
      parts.erase(parts.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    if (parts.size() == 2) out.emplace_back(parts[0], parts[1]);
  }
  return out;
}

}  // namespace lmforge::tok
