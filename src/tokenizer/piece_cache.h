// A per-thread cache of BPE results for short pieces (internal to the tokenizer).
//
// Most pieces of real text are single tokens and never reach the cache (the vocabulary lookup
// answers them); the cache holds the rest — words and numbers that BPE splits — keyed by the
// piece's bytes. It is direct-mapped (a colliding piece overwrites the old entry), with 64-byte
// entries holding up to kMaxBytes bytes and kMaxIds ids; longer results are not cached.
//
// Thread safety: each thread has its own caches (thread_local), one per tokenizer model it has
// used recently (the last four, keyed by the model's serial number, which is never reused), so
// encode() needs no lock and a cache never outlives its thread.
#pragma once

#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

namespace lmforge::tok::detail {

class PieceCache {
 public:
  static constexpr size_t kMaxBytes = 22;
  static constexpr size_t kMaxIds = 8;
  static constexpr size_t kEntries = size_t{1} << 15;  // 2 MiB

  PieceCache() : entries_(kEntries) {}

  // Appends the cached ids of piece s[0, n) to out and returns true, or returns false.
  bool lookup(const char* s, size_t n, uint64_t hash, std::vector<uint32_t>& out) const {
    const Entry& e = entries_[hash & (kEntries - 1)];
    if (e.hash != hash || e.len != n || std::memcmp(e.bytes, s, n) != 0) return false;
    out.insert(out.end(), e.ids, e.ids + e.n_ids);
    return true;
  }

  void prefetch(uint64_t hash) const { __builtin_prefetch(&entries_[hash & (kEntries - 1)]); }

  void store(const char* s, size_t n, uint64_t hash, const uint32_t* ids, size_t k) {
    if (n > kMaxBytes || k > kMaxIds) return;
    Entry& e = entries_[hash & (kEntries - 1)];
    e.hash = hash;
    e.len = static_cast<uint8_t>(n);
    e.n_ids = static_cast<uint8_t>(k);
    std::memcpy(e.bytes, s, n);
    std::memcpy(e.ids, ids, k * sizeof(uint32_t));
  }

 private:
  struct alignas(64) Entry {
    uint64_t hash = 0;
    uint8_t len = 0xFF;  // never equal to a cacheable length: the entry is empty
    uint8_t n_ids = 0;
    char bytes[kMaxBytes];
    uint32_t ids[kMaxIds];
  };
  static_assert(sizeof(Entry) == 64);
  std::vector<Entry> entries_;
};

// This thread's cache for the model with the given serial number.
PieceCache& thread_piece_cache(uint64_t model_serial);

}  // namespace lmforge::tok::detail
