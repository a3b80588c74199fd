#include "tokenizer/bpe_trainer.h"

#include <algorithm>
#include <chrono>
#include <cstring>
#include <unordered_map>
#include <unordered_set>

#include "core/error.h"
#include "core/progress.h"

namespace lmforge::tok {

bool pair_bytes_less(const std::string& la, const std::string& ra, const std::string& lb, const std::string& rb) {
  // std::string::compare is char_traits<char>::compare, which orders bytes as unsigned char.
  const int c = la.compare(lb);
  if (c != 0) return c < 0;
  return ra.compare(rb) < 0;
}

namespace {

inline uint64_t pair_key(uint32_t left, uint32_t right) { return (static_cast<uint64_t>(left) << 32) | right; }
inline uint32_t key_left(uint64_t key) { return static_cast<uint32_t>(key >> 32); }
inline uint32_t key_right(uint64_t key) { return static_cast<uint32_t>(key); }

// Open addressing (linear probing, backward-shift deletion) from a pair key to a slot index.
class PairMap {
 public:
  static constexpr uint32_t kEmpty = 0xffffffffu;

  PairMap() { rebuild(1024); }

  uint32_t find(uint64_t key) const {
    for (size_t i = home(key);; i = (i + 1) & mask_) {
      if (entries_[i].slot == kEmpty) return kEmpty;
      if (entries_[i].key == key) return entries_[i].slot;
    }
  }

  // Returns the slot for key, inserting `fresh` when the key is absent (*inserted says which).
  uint32_t find_or_insert(uint64_t key, uint32_t fresh, bool* inserted) {
    size_t i = home(key);
    for (;; i = (i + 1) & mask_) {
      if (entries_[i].slot == kEmpty) break;
      if (entries_[i].key == key) {
        *inserted = false;
        return entries_[i].slot;
      }
    }
    *inserted = true;
    entries_[i] = Entry{key, fresh};
    if (++size_ * 8 > entries_.size() * 5) rebuild(entries_.size() * 2);  // load factor <= 0.625
    return fresh;
  }

  void erase(uint64_t key) {
    size_t i = home(key);
    for (;; i = (i + 1) & mask_) {
      if (entries_[i].slot == kEmpty) return;
      if (entries_[i].key == key) break;
    }
    // Backward shift: move later entries of the probe run into the hole when their home allows.
    size_t j = i;
    for (;;) {
      j = (j + 1) & mask_;
      if (entries_[j].slot == kEmpty) break;
      const size_t h = home(entries_[j].key);
      const bool movable = (i <= j) ? (h <= i || h > j) : (h <= i && h > j);
      if (movable) {
        entries_[i] = entries_[j];
        i = j;
      }
    }
    entries_[i].slot = kEmpty;
    --size_;
  }

  size_t memory_bytes() const { return entries_.capacity() * sizeof(Entry); }

 private:
  struct Entry {
    uint64_t key;
    uint32_t slot;
  };
  size_t home(uint64_t key) const { return static_cast<size_t>((key * 0x9E3779B97F4A7C15ull) >> shift_); }

  void rebuild(size_t n) {
    std::vector<Entry> old = std::move(entries_);
    entries_.assign(n, Entry{0, kEmpty});
    mask_ = n - 1;
    shift_ = 64 - __builtin_ctzll(n);
    for (const Entry& e : old) {
      if (e.slot == kEmpty) continue;
      size_t i = home(e.key);
      while (entries_[i].slot != kEmpty) i = (i + 1) & mask_;
      entries_[i] = e;
    }
  }

  std::vector<Entry> entries_;
  size_t mask_ = 0;
  int shift_ = 0;
  size_t size_ = 0;
};

struct HeapEntry {
  uint64_t count;
  uint32_t left;
  uint32_t right;
};

class MergeLearner {
 public:
  MergeLearner(const PieceCounts& pieces, const MergeOptions& options) : options_(options) {
    model_.tokens.reserve(256 + options.n_new_tokens);
    for (int b = 0; b < 256; ++b) {
      model_.tokens.emplace_back(1, static_cast<char>(b));
      token_ids_.emplace(model_.tokens.back(), static_cast<uint32_t>(b));
    }
    build_words(pieces);
    build_pairs();
  }

  BpeModel run() {
    ProgressBar bar({.label = "merging", .total = options_.n_new_tokens, .unit = ProgressUnit::Count,
                     .enabled = options_.progress && ProgressOptions::stderr_is_terminal()});
    size_t n_new = 0;
    while (n_new < options_.n_new_tokens && !heap_.empty()) {
      std::pop_heap(heap_.begin(), heap_.end(), heap_less_);
      const HeapEntry e = heap_.back();
      heap_.pop_back();
      const uint32_t slot = pairs_.find(pair_key(e.left, e.right));
      const uint64_t current = slot == PairMap::kEmpty ? 0 : static_cast<uint64_t>(slots_[slot].count);
      if (current != e.count) {
        // A stale upper bound. When the count fell, requeue it; when it rose, a newer entry
        // with the higher count is already queued.
        if (current > 0 && current < e.count) push(e.left, e.right, current);
        continue;
      }
      if (merge(e.left, e.right, slot, e.count)) ++n_new;
      bar.set(n_new);
    }
    bar.finish();
    for (size_t w = 0; w < freq_.size(); ++w) model_.output_tokens += freq_[w] * len_[w];
    model_.output_tokens += single_symbol_tokens_;
    return std::move(model_);
  }

 private:
  struct PairSlot {
    int64_t count = 0;
    std::vector<uint32_t> words;  // may hold words that no longer contain the pair
  };

  void build_words(const PieceCounts& pieces) {
    size_t n_words = 0, n_symbols = 0;
    for (size_t i = 0; i < pieces.size(); ++i) {
      const size_t n = pieces.piece(i).size();
      model_.input_bytes += pieces.count(i) * n;
      if (n >= 2) {
        ++n_words;
        n_symbols += n;
      } else {
        single_symbol_tokens_ += pieces.count(i) * n;
      }
    }
    LF_CHECK(n_words < 0xffffffffu, "too many distinct pieces ({}) for the trainer", n_words);
    sym_.reserve(n_symbols);
    start_.reserve(n_words);
    len_.reserve(n_words);
    freq_.reserve(n_words);
    for (size_t i = 0; i < pieces.size(); ++i) {
      const std::string_view p = pieces.piece(i);
      if (p.size() < 2) continue;
      start_.push_back(sym_.size());
      len_.push_back(static_cast<uint32_t>(p.size()));
      freq_.push_back(pieces.count(i));
      for (const char c : p) sym_.push_back(static_cast<unsigned char>(c));
    }
    word_stamp_.assign(freq_.size(), 0);
  }

  // Initial pairs are byte pairs: count them and size their postings in dense arrays first.
  void build_pairs() {
    std::vector<int64_t> counts(65536, 0);
    std::vector<uint32_t> n_postings(65536, 0);
    std::vector<uint32_t> last_word(65536, 0xffffffffu);
    for (uint32_t w = 0; w < freq_.size(); ++w) {
      const uint32_t* s = &sym_[start_[w]];
      for (uint32_t i = 0; i + 1 < len_[w]; ++i) {
        const uint32_t k = s[i] << 8 | s[i + 1];
        counts[k] += static_cast<int64_t>(freq_[w]);
        if (last_word[k] != w) {
          last_word[k] = w;
          ++n_postings[k];
        }
      }
    }
    std::vector<uint32_t> slot_of(65536, PairMap::kEmpty);
    for (uint32_t k = 0; k < 65536; ++k) {
      if (counts[k] == 0) continue;
      bool inserted = false;
      const uint32_t slot = new_slot();
      pairs_.find_or_insert(pair_key(k >> 8, k & 255), slot, &inserted);
      slots_[slot].count = counts[k];
      slots_[slot].words.reserve(n_postings[k]);
      slot_of[k] = slot;
      heap_.push_back(HeapEntry{static_cast<uint64_t>(counts[k]), k >> 8, k & 255});
    }
    for (uint32_t w = 0; w < freq_.size(); ++w) {
      const uint32_t* s = &sym_[start_[w]];
      for (uint32_t i = 0; i + 1 < len_[w]; ++i) {
        std::vector<uint32_t>& post = slots_[slot_of[s[i] << 8 | s[i + 1]]].words;
        if (post.empty() || post.back() != w) post.push_back(w);
      }
    }
    std::make_heap(heap_.begin(), heap_.end(), heap_less_);
  }

  uint32_t new_slot() {
    if (!free_slots_.empty()) {
      const uint32_t s = free_slots_.back();
      free_slots_.pop_back();
      return s;
    }
    slots_.emplace_back();
    slot_stamp_.push_back(0);
    slot_rose_.push_back(0);
    return static_cast<uint32_t>(slots_.size() - 1);
  }

  void push(uint32_t left, uint32_t right, uint64_t count) {
    heap_.push_back(HeapEntry{count, left, right});
    std::push_heap(heap_.begin(), heap_.end(), heap_less_);
  }

  // Adds delta to the pair's count; a positive delta also records word w in its postings.
  void change(uint32_t left, uint32_t right, int64_t delta, uint32_t w) {
    const uint64_t key = pair_key(left, right);
    uint32_t slot = pairs_.find(key);
    if (slot == PairMap::kEmpty) {
      bool inserted = false;
      slot = new_slot();
      pairs_.find_or_insert(key, slot, &inserted);
    }
    PairSlot& ps = slots_[slot];
    ps.count += delta;
    if (slot_stamp_[slot] != stamp_) {
      slot_stamp_[slot] = stamp_;
      slot_rose_[slot] = 0;
      touched_.push_back(key);
    }
    if (delta > 0) {
      slot_rose_[slot] = 1;
      if (ps.words.empty() || ps.words.back() != w) ps.words.push_back(w);
    }
  }

  // Merges every occurrence of (a, b); returns whether a new token id was created.
  bool merge(uint32_t a, uint32_t b, uint32_t slot, uint64_t count) {
    std::string bytes = model_.tokens[a] + model_.tokens[b];
    uint32_t z;
    bool is_new = false;
    if (auto it = token_ids_.find(bytes); it != token_ids_.end()) {
      z = it->second;
    } else {
      z = static_cast<uint32_t>(model_.tokens.size());
      model_.tokens.push_back(bytes);
      token_ids_.emplace(std::move(bytes), z);
      is_new = true;
    }
    model_.merges.push_back(BpeMerge{a, b, z, count});

    const std::vector<uint32_t> postings = std::move(slots_[slot].words);
    slots_[slot].words = {};
    ++stamp_;
    touched_.clear();
    for (const uint32_t w : postings) {
      if (word_stamp_[w] == stamp_) continue;
      word_stamp_[w] = stamp_;
      uint32_t* s = &sym_[start_[w]];
      const uint32_t n = len_[w];
      const auto f = static_cast<int64_t>(freq_[w]);
      uint32_t j = 0;
      for (uint32_t i = 0; i < n;) {
        if (i + 1 < n && s[i] == a && s[i + 1] == b) {
          change(a, b, -f, w);
          if (j > 0) {
            change(s[j - 1], a, -f, w);
            change(s[j - 1], z, f, w);
          }
          if (i + 2 < n) {
            change(b, s[i + 2], -f, w);
            change(z, s[i + 2], f, w);
          }
          s[j++] = z;
          i += 2;
        } else {
          s[j++] = s[i++];
        }
      }
      len_[w] = j;
    }
    // Queue the pairs whose count rose; drop the pairs that are gone.
    for (const uint64_t key : touched_) {
      const uint32_t ts = pairs_.find(key);
      const int64_t c = slots_[ts].count;
      LF_ASSERT(c >= 0, "negative pair count");
      if (c == 0) {
        pairs_.erase(key);
        slots_[ts] = PairSlot{};
        free_slots_.push_back(ts);
      } else if (slot_rose_[ts]) {
        push(key_left(key), key_right(key), static_cast<uint64_t>(c));
      }
    }
    LF_ASSERT(pairs_.find(pair_key(a, b)) == PairMap::kEmpty, "merged pair still counted");
    return is_new;
  }

  const MergeOptions& options_;
  BpeModel model_;
  std::unordered_map<std::string, uint32_t> token_ids_;
  uint64_t single_symbol_tokens_ = 0;

  // Words: symbols of word w are sym_[start_[w] .. start_[w] + len_[w]).
  std::vector<uint32_t> sym_;
  std::vector<uint64_t> start_;
  std::vector<uint32_t> len_;
  std::vector<uint64_t> freq_;
  std::vector<uint32_t> word_stamp_;

  PairMap pairs_;
  std::vector<PairSlot> slots_;
  std::vector<uint32_t> free_slots_;
  std::vector<uint32_t> slot_stamp_;
  std::vector<uint8_t> slot_rose_;
  std::vector<uint64_t> touched_;
  uint32_t stamp_ = 0;

  // Max-heap order: count, then the tie rule (the greater byte-string pair wins).
  struct HeapLess {
    const std::vector<std::string>* tokens;
    bool operator()(const HeapEntry& x, const HeapEntry& y) const {
      if (x.count != y.count) return x.count < y.count;
      const auto& t = *tokens;
      return pair_bytes_less(t[x.left], t[x.right], t[y.left], t[y.right]);
    }
  };
  HeapLess heap_less_{&model_.tokens};
  std::vector<HeapEntry> heap_;
};

}  // namespace

BpeModel learn_merges(const PieceCounts& pieces, const MergeOptions& options) {
  MergeLearner learner(pieces, options);
  return learner.run();
}

void check_trainer_options(const TrainerOptions& options) {
  const size_t k = options.special_tokens.size();
  LF_CHECK(options.vocab_size >= min_vocab_size(k),
           "vocab size {} is too small: the minimum is {} (256 byte tokens + {} special token{})",
           options.vocab_size, min_vocab_size(k), k, k == 1 ? "" : "s");
  LF_CHECK(options.vocab_size <= 0xffffffffull, "vocab size {} does not fit 32-bit ids", options.vocab_size);
  std::unordered_set<std::string> seen;
  for (const std::string& s : options.special_tokens) {
    LF_CHECK(!s.empty(), "a special token must not be empty");
    LF_CHECK(seen.insert(s).second, "special token {} is given twice", s);
  }
  LF_CHECK(options.n_threads >= 1, "threads must be at least 1 (got {})", options.n_threads);
}

BpeModel train_bpe(const std::vector<std::string>& paths, const SplitFn& split, const TrainerOptions& options,
                   TrainerReport* report) {
  check_trainer_options(options);
  LF_CHECK(!paths.empty(), "no training files given");
  CountOptions count = options.count;
  count.n_threads = options.n_threads;
  count.special_tokens = options.special_tokens;
  count.progress = options.progress;
  TrainerReport r;
  PieceCounts pieces = count_pieces_in_files(paths, split, count, &r.count);
  r.distinct_pieces = pieces.size();

  const auto t0 = std::chrono::steady_clock::now();
  BpeModel model = learn_merges(
      pieces, {.n_new_tokens = options.vocab_size - min_vocab_size(options.special_tokens.size()),
               .progress = options.progress});
  r.merge_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  r.n_merges = model.merges.size();
  r.n_new_tokens = model.tokens.size() - 256;
  r.merges_per_second = r.merge_seconds > 0 ? static_cast<double>(r.n_merges) / r.merge_seconds : 0.0;
  r.bytes_per_token = model.bytes_per_token();
  if (report != nullptr) *report = r;
  return model;
}

}  // namespace lmforge::tok
