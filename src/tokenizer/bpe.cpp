#include "tokenizer/bpe.h"

#include <algorithm>
#include <bit>

#include "core/error.h"
#include "tokenizer/huge_pages.h"

namespace lmforge::tok::detail {

std::pair<uint32_t, uint32_t> TokenMap::build(const std::vector<std::string>& bytes_by_id,
                                              const std::vector<uint8_t>& is_ordinary) {
  size_t n = 0, total = 0;
  for (size_t id = 0; id < bytes_by_id.size(); ++id)
    if (is_ordinary[id]) {
      ++n;
      total += bytes_by_id[id].size();
    }
  const size_t cap = std::bit_ceil(std::max<size_t>(16, n * 2));
  assign_huge(slots_, cap, Slot{});
  mask_ = cap - 1;
  assign_huge(offsets_, bytes_by_id.size(), uint64_t{0});
  lengths_.assign(bytes_by_id.size(), 0);
  arena_.clear();
  arena_.reserve(total);
  // Copy and hash sequentially first, so that the slot of the token kAhead ids on can be
  // prefetched while one is placed: each placement is a cache miss in a table of megabytes.
  std::vector<uint64_t> hashes;
  assign_huge(hashes, bytes_by_id.size(), uint64_t{0});
  for (size_t id = 0; id < bytes_by_id.size(); ++id) {
    if (!is_ordinary[id]) continue;
    const std::string& b = bytes_by_id[id];
    offsets_[id] = arena_.size();
    lengths_[id] = static_cast<uint32_t>(b.size());
    arena_ += b;
    hashes[id] = piece_hash(b.data(), b.size());
  }
  constexpr size_t kAhead = 16;
  for (size_t id = 0; id < bytes_by_id.size(); ++id) {
    if (id + kAhead < bytes_by_id.size()) __builtin_prefetch(&slots_[hashes[id + kAhead] & mask_], 1);
    if (!is_ordinary[id]) continue;
    const std::string& b = bytes_by_id[id];
    const uint64_t h = hashes[id], head = head_word(b.data(), b.size());
    const uint32_t meta = meta_of(b.size(), h);
    size_t i = h & mask_;
    for (; slots_[i].id != kNoId; i = (i + 1) & mask_) {
      const Slot& sl = slots_[i];
      if (sl.meta == meta && sl.head == head && bytes_by_id[sl.id] == b) return {sl.id, static_cast<uint32_t>(id)};
    }
    slots_[i] = Slot{head, meta, static_cast<uint32_t>(id)};
  }
  return {kNoId, kNoId};
}

void PairMap::reserve(size_t n) {
  // One rehash to the final capacity (grow() doubles from the current one).
  if (slots_.size() < 2 * n) rehash(std::bit_ceil(std::max<size_t>(64, 2 * n)));
}

void PairMap::grow() { rehash(std::max<size_t>(64, slots_.size() * 2)); }

void PairMap::rehash(size_t cap) {
  std::vector<Slot> old = std::move(slots_);
  assign_huge(slots_, cap, Slot{});
  mask_ = cap - 1;
  shift_ = 64 - std::countr_zero(cap);
  for (const Slot& sl : old) {
    if (sl.key == kEmpty) continue;
    size_t i = slot_of(sl.key);
    while (slots_[i].key != kEmpty) i = (i + 1) & mask_;
    slots_[i] = sl;
  }
}

void PairMap::build_filter() {
  const size_t bits = std::bit_ceil(std::max<size_t>(512, size_ * 8));
  assign_huge(filter_, bits / 64, uint64_t{0});
  filter_shift_ = 64 - std::countr_zero(bits);
  for (const Slot& sl : slots_) {
    if (sl.key == kEmpty) continue;
    const uint64_t bit = (sl.key * 0xD6E8FEB86659FD93ull) >> filter_shift_;
    filter_[bit >> 6] |= uint64_t{1} << (bit & 63);
  }
}

void PairMap::insert(uint32_t left, uint32_t right, Value v) {
  filter_.clear();  // stale until build_filter()
  if (2 * (size_ + 1) > slots_.size()) grow();
  const uint64_t key = uint64_t{left} << 32 | right;
  size_t i = slot_of(key);
  while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
  if (slots_[i].key == kEmpty) ++size_;
  slots_[i] = Slot{key, v};
}

void throw_missing_byte(uint8_t b) {
  throw Error(fmt::format("byte 0x{:02X} has no token in this vocabulary, so text holding it cannot be encoded", b));
}

namespace {

constexpr uint32_t kNoRank = 0xFFFFFFFFu;

// The flat loop: arrays of parts and of the ranks of adjacent pairs, a linear scan for the
// minimum per merge.
void merge_short(const BpeTables& t, const uint8_t* p, size_t n, std::vector<uint32_t>& out) {
  uint32_t ids[kShortPiece];
  uint32_t ranks[kShortPiece];
  uint32_t results[kShortPiece];
  for (size_t i = 0; i < n; ++i) {
    ids[i] = t.byte_id[p[i]];
    if (ids[i] == kNoId) throw_missing_byte(p[i]);
  }
  auto pair_at = [&](size_t i) {
    const PairMap::Value* v = t.pairs->find(ids[i], ids[i + 1]);
    ranks[i] = v ? v->rank : kNoRank;
    results[i] = v ? v->result : kNoId;
  };
  size_t m = n;
  for (size_t i = 0; i + 1 < m; ++i) pair_at(i);
  while (m > 1) {
    size_t best = 0;
    uint32_t best_rank = ranks[0];
    for (size_t i = 1; i + 1 < m; ++i)
      if (ranks[i] < best_rank) {
        best_rank = ranks[i];
        best = i;
      }
    if (best_rank == kNoRank) break;
    ids[best] = results[best];
    // Drop part best+1 and pair best+1 (pairs after it shift down by one).
    for (size_t i = best + 1; i + 1 < m; ++i) ids[i] = ids[i + 1];
    for (size_t i = best + 1; i + 2 < m; ++i) {
      ranks[i] = ranks[i + 1];
      results[i] = results[i + 1];
    }
    --m;
    if (best > 0) pair_at(best - 1);
    if (best + 1 < m) pair_at(best);
  }
  out.insert(out.end(), ids, ids + m);
}

// The heap: parts are nodes of a doubly linked list indexed by their first byte; candidate
// merges are (rank, node) entries, checked when popped (lazy deletion). Popping the smallest
// (rank, node) is "lowest rank, leftmost on a tie", since nodes keep their left-to-right order.
void merge_long(const BpeTables& t, const uint8_t* p, size_t n, std::vector<uint32_t>& out) {
  struct Node {
    uint32_t id;
    uint32_t prev;  // kNone at the start
    uint32_t next;  // kNone at the end
  };
  struct Candidate {
    uint32_t rank;
    uint32_t pos;
    uint32_t result;
    bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : pos > o.pos; }
  };
  constexpr uint32_t kNone = 0xFFFFFFFFu;
  LF_CHECK(n < kNone, "a pre-tokenized piece of {} bytes is too long to encode (limit 4 GiB)", n);
  std::vector<Node> nodes(n);
  for (size_t i = 0; i < n; ++i) {
    const uint32_t id = t.byte_id[p[i]];
    if (id == kNoId) throw_missing_byte(p[i]);
    nodes[i] = Node{id, i == 0 ? kNone : static_cast<uint32_t>(i - 1), i + 1 == n ? kNone : static_cast<uint32_t>(i + 1)};
  }
  std::vector<Candidate> heap;
  heap.reserve(n);
  auto push = [&](uint32_t pos) {
    const uint32_t next = nodes[pos].next;
    if (next == kNone) return;
    if (const PairMap::Value* v = t.pairs->find(nodes[pos].id, nodes[next].id)) {
      heap.push_back(Candidate{v->rank, pos, v->result});
      std::push_heap(heap.begin(), heap.end(), std::greater<>{});
    }
  };
  for (uint32_t i = 0; i + 1 < n; ++i) push(i);
  while (!heap.empty()) {
    std::pop_heap(heap.begin(), heap.end(), std::greater<>{});
    const Candidate c = heap.back();
    heap.pop_back();
    Node& left = nodes[c.pos];
    if (left.id == kNoId || left.next == kNone) continue;  // merged away, or now last
    // Still the same pair? (Its neighbours may have changed since it was pushed.)
    const PairMap::Value* v = t.pairs->find(left.id, nodes[left.next].id);
    // (Like HF tokenizers, the check is on the result id; with Ranks it also fixes the rank.)
    if (v == nullptr || v->result != c.result) continue;
    const uint32_t gone = left.next;
    left.id = c.result;
    left.next = nodes[gone].next;
    if (left.next != kNone) nodes[left.next].prev = c.pos;
    nodes[gone].id = kNoId;
    if (left.prev != kNone) push(left.prev);
    push(c.pos);
  }
  for (uint32_t i = 0; i != kNone; i = nodes[i].next) out.push_back(nodes[i].id);
}

}  // namespace

void bpe_merge(const BpeTables& t, const char* piece, size_t n, std::vector<uint32_t>& out) {
  const auto* p = reinterpret_cast<const uint8_t*>(piece);
  if (n <= kShortPiece)
    merge_short(t, p, n, out);
  else
    merge_long(t, p, n, out);
}

}  // namespace lmforge::tok::detail
