// The BPE core (internal to the tokenizer): hash tables over the vocabulary and the merge loop.
//
// Merge rule. A piece starts as one token per byte; the adjacent pair with the lowest rank is
// merged, the leftmost on a tie, until no adjacent pair has a rank. A pair's rank comes from
// PairMap, filled in one of two ways (see tokenizer.h, MergeRule):
//  * Ranks (tiktoken): every split of every token t into two tokens (l, r) maps to
//    (rank = t, result = t). That is tiktoken's "rank of the concatenated bytes" exactly, since
//    the parts of a piece are always tokens.
//  * MergeList (HF tokenizer.json): each listed merge (l, r) maps to (rank = its index,
//    result = id of bytes(l) + bytes(r)).
//
// Cost. Pieces up to kShortPiece bytes use a flat loop over a small array (a linear scan per
// merge, like tiktoken: fastest for the short pieces of real text). Longer pieces use a
// doubly linked list and a min-heap of (rank, position) with lazy deletion: O(n log n), so a
// piece of 100,000 identical bytes stays fast (tiktoken issue #195 is the quadratic case).
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <utility>
#include <vector>

namespace lmforge::tok::detail {

constexpr uint32_t kNoId = 0xFFFFFFFFu;
constexpr size_t kShortPiece = 64;

// Throws the Error for text holding byte b when the vocabulary has no token for that byte.
[[noreturn]] void throw_missing_byte(uint8_t b);

inline uint64_t mix64(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

// 64-bit hash of a byte string (wyhash-style: two overlapping loads for short strings).
inline uint64_t piece_hash(const char* s, size_t n) {
  constexpr uint64_t k0 = 0xa0761d6478bd642full, k1 = 0xe7037ed1a0b428dbull, k2 = 0x8ebc6af09c88c6e3ull;
  const auto* p = reinterpret_cast<const uint8_t*>(s);
  auto load64 = [](const uint8_t* q) { uint64_t v; std::memcpy(&v, q, 8); return v; };
  auto load32 = [](const uint8_t* q) { uint32_t v; std::memcpy(&v, q, 4); return uint64_t{v}; };
  uint64_t a, b;
  if (n <= 16) {
    if (n >= 8) {
      a = load64(p);
      b = load64(p + n - 8);
    } else if (n >= 4) {
      a = load32(p);
      b = load32(p + n - 4);
    } else if (n > 0) {
      a = uint64_t{p[0]} << 16 | uint64_t{p[n >> 1]} << 8 | p[n - 1];
      b = 0;
    } else {
      a = b = 0;
    }
    return mix64(a ^ k0 ^ n, b ^ k1);
  }
  uint64_t h = k2 ^ n;
  size_t i = 0;
  for (; i + 16 <= n; i += 16) h = mix64(load64(p + i) ^ k0, load64(p + i + 8) ^ h);
  return mix64(load64(p + n - 16) ^ k1 ^ h, load64(p + n - 8) ^ k2);
}

// First min(n, 8) bytes of s as a little-endian word, zero-padded; never reads past s + n.
inline uint64_t head_word(const char* s, size_t n) {
  const auto* p = reinterpret_cast<const uint8_t*>(s);
  if (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    return v;
  }
  if (n >= 4) {
    uint32_t lo, hi;
    std::memcpy(&lo, p, 4);
    std::memcpy(&hi, p + n - 4, 4);
    return uint64_t{lo} | uint64_t{hi} << ((n - 4) * 8);
  }
  uint64_t v = 0;
  for (size_t i = 0; i < n; ++i) v |= uint64_t{p[i]} << (8 * i);
  return v;
}

// Byte string -> id over the ordinary tokens; open addressing, linear probing. A slot holds
// the token's first 8 bytes, its length and 24 bits of its hash, so the common lookups (tokens
// of up to 8 bytes, and misses) touch one cache line and nothing else.
class TokenMap {
 public:
  // Fills the map with the ids whose is_ordinary[id] is set. Returns two ids with the same bytes
  // (the one inserted first, then the other) if there are any, else {kNoId, kNoId}; the map is
  // then incomplete.
  std::pair<uint32_t, uint32_t> build(const std::vector<std::string>& bytes_by_id,
                                      const std::vector<uint8_t>& is_ordinary);
  uint32_t find(const char* s, size_t n, uint64_t hash) const {
    const uint64_t head = head_word(s, n);
    const uint32_t meta = meta_of(n, hash);
    for (size_t i = hash & mask_;; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      // The length in meta saturates at 255: longer tokens check their exact length first, so
      // rest_equal never reads past a shorter token.
      if (sl.meta == meta && sl.head == head &&
          (n <= 8 || ((n < 255 || lengths_[sl.id] == n) && rest_equal(arena_.data() + offsets_[sl.id], s, n))))
        return sl.id;
      if (sl.id == kNoId) return kNoId;
    }
  }
  uint32_t find(const std::string& s) const { return find(s.data(), s.size(), piece_hash(s.data(), s.size())); }
  // Starts loading the slot a later find(.., hash) will read first.
  void prefetch(uint64_t hash) const { __builtin_prefetch(&slots_[hash & mask_]); }

 private:
  // Bytes [8, n) of a token and of s, both n > 8 bytes long, are equal. Up to 16 bytes (most
  // tokens) that is one 8-byte load each, not a call to memcmp.
  static bool rest_equal(const char* token, const char* s, size_t n) {
    if (n <= 16) {
      uint64_t a, b;
      std::memcpy(&a, token + n - 8, 8);
      std::memcpy(&b, s + n - 8, 8);
      return a == b;
    }
    return std::memcmp(token + 8, s + 8, n - 8) == 0;
  }
  // Length (saturated at 255) and hash bits; never 0, which marks an empty slot.
  static uint32_t meta_of(size_t n, uint64_t hash) {
    return static_cast<uint32_t>(n < 255 ? n : 255) | static_cast<uint32_t>(hash >> 40) << 8;
  }
  struct Slot {
    uint64_t head = 0;
    uint32_t meta = 0;
    uint32_t id = kNoId;
  };
  std::vector<Slot> slots_{1};
  size_t mask_ = 0;
  std::vector<uint64_t> offsets_;  // per id, into arena_
  std::vector<uint32_t> lengths_;  // per id, the token's length in bytes
  std::string arena_;
};

// (left id, right id) -> (rank, result id).
class PairMap {
 public:
  struct Value {
    uint32_t rank;
    uint32_t result;
  };
  PairMap() { grow(); }
  void reserve(size_t n);
  // Inserts or overwrites.
  void insert(uint32_t left, uint32_t right, Value v);
  // Builds the negative filter; call after the last insert (find() works without it).
  void build_filter();
  const Value* find(uint32_t left, uint32_t right) const {
    const uint64_t key = uint64_t{left} << 32 | right;
    // Most lookups during BPE are for pairs that are not merges; the filter (~8 bits per pair,
    // small enough to stay in L2) answers most of them without touching the big table.
    if (!filter_.empty()) {
      const uint64_t bit = (key * 0xD6E8FEB86659FD93ull) >> filter_shift_;
      if (!(filter_[bit >> 6] >> (bit & 63) & 1)) return nullptr;
    }
    for (size_t i = slot_of(key);; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.key == key) return &sl.value;
      if (sl.key == kEmpty) return nullptr;
    }
  }
  size_t size() const { return size_; }
  // Starts loading the slot an insert(left, right, ..) or find(left, right) will probe first;
  // a hint only (a grow() in between makes it useless, never wrong).
  void prefetch(uint32_t left, uint32_t right) const {
    __builtin_prefetch(&slots_[slot_of(uint64_t{left} << 32 | right)]);
  }
  // Every entry, as (left, right, value), in no particular order.
  template <class F>
  void for_each(F&& f) const {
    for (const Slot& sl : slots_)
      if (sl.key != kEmpty) f(static_cast<uint32_t>(sl.key >> 32), static_cast<uint32_t>(sl.key), sl.value);
  }
  size_t memory_bytes() const { return slots_.size() * sizeof(Slot) + filter_.size() * 8; }

 private:
  static constexpr uint64_t kEmpty = ~uint64_t{0};
  struct Slot {
    uint64_t key = kEmpty;
    Value value{};
  };
  size_t slot_of(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }
  void grow();
  void rehash(size_t capacity);  // moves every entry into a fresh table of `capacity` slots
  std::vector<Slot> slots_;
  size_t mask_ = 0;
  int shift_ = 58;
  size_t size_ = 0;
  std::vector<uint64_t> filter_;  // one bit per hash of a present key
  int filter_shift_ = 64;
};

struct BpeTables {
  const uint32_t* byte_id;  // 256 entries; kNoId for a byte with no token
  const PairMap* pairs;
};

// Appends the ids of the BPE merge of piece[0, n) (n >= 1) to out. Throws Error if a byte of the
// piece has no token.
void bpe_merge(const BpeTables& t, const char* piece, size_t n, std::vector<uint32_t>& out);

}  // namespace lmforge::tok::detail
