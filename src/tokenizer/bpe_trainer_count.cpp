#include "tokenizer/bpe_trainer_count.h"

#include <fcntl.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <exception>
#include <memory>
#include <mutex>
#include <thread>

#include "core/error.h"
#include "core/progress.h"

namespace lmforge::tok {

// ---------------------------------------------------------------------------------------------
// Hashing and the piece map

namespace {

inline uint64_t mix(uint64_t a, uint64_t b) {
  const __uint128_t r = static_cast<__uint128_t>(a) * b;
  return static_cast<uint64_t>(r) ^ static_cast<uint64_t>(r >> 64);
}

constexpr uint64_t kSeed0 = 0xa0761d6478bd642full;
constexpr uint64_t kSeed1 = 0xe7037ed1a0b428dbull;

}  // namespace

uint64_t hash_bytes(std::string_view s) {
  const char* p = s.data();
  size_t n = s.size();
  uint64_t h = kSeed0 ^ (n * kSeed1);
  while (n >= 8) {
    uint64_t v;
    std::memcpy(&v, p, 8);
    h = mix(h ^ v, kSeed1);
    p += 8;
    n -= 8;
  }
  uint64_t v = 0;
  std::memcpy(&v, p, n);
  return mix(h ^ v ^ kSeed0, kSeed1 ^ n);
}

PieceCounts::PieceCounts() : table_(1024, 0), mask_(1023) {}

size_t PieceCounts::find_slot(std::string_view piece, uint64_t h) const {
  const uint64_t tag = h >> 32;
  size_t i = h & mask_;
  for (;;) {
    const uint64_t e = table_[i];
    if (e == 0) return i;
    if ((e >> 32) == tag) {
      const Item& it = items_[(e & 0xffffffffu) - 1];
      if (it.length == piece.size() && std::memcmp(arena_.data() + it.offset, piece.data(), piece.size()) == 0) {
        return i;
      }
    }
    i = (i + 1) & mask_;
  }
}

void PieceCounts::grow() {
  const size_t n = table_.size() * 2;
  table_.assign(n, 0);
  mask_ = n - 1;
  for (size_t k = 0; k < items_.size(); ++k) {
    const uint64_t h = hash_bytes(piece(k));
    size_t i = h & mask_;
    while (table_[i] != 0) i = (i + 1) & mask_;
    table_[i] = (k + 1) | ((h >> 32) << 32);
  }
}

void PieceCounts::add(std::string_view piece, uint64_t count) {
  const uint64_t h = hash_bytes(piece);
  const size_t slot = find_slot(piece, h);
  if (table_[slot] != 0) {
    items_[(table_[slot] & 0xffffffffu) - 1].count += count;
    return;
  }
  LF_ASSERT(items_.size() < 0xfffffffeu, "more than 4 billion distinct pieces");
  const uint64_t offset = arena_.size();
  arena_.insert(arena_.end(), piece.begin(), piece.end());
  items_.push_back(Item{offset, count, static_cast<uint32_t>(piece.size())});
  table_[slot] = items_.size() | ((h >> 32) << 32);
  if (items_.size() * 4 > table_.size() * 3) grow();  // load factor <= 0.75
}

void PieceCounts::merge_from(const PieceCounts& other) {
  for (size_t k = 0; k < other.size(); ++k) add(other.piece(k), other.count(k));
}

std::optional<uint64_t> PieceCounts::find(std::string_view piece) const {
  const size_t slot = find_slot(piece, hash_bytes(piece));
  if (table_[slot] == 0) return std::nullopt;
  return items_[(table_[slot] & 0xffffffffu) - 1].count;
}

uint64_t PieceCounts::total_count() const {
  uint64_t t = 0;
  for (const Item& it : items_) t += it.count;
  return t;
}

size_t PieceCounts::memory_bytes() const {
  return arena_.capacity() + items_.capacity() * sizeof(Item) + table_.capacity() * sizeof(uint64_t);
}

// ---------------------------------------------------------------------------------------------
// Where text may be cut

namespace {

inline bool ascii_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
inline bool ascii_letter(unsigned char c) { return (c | 0x20) >= 'a' && (c | 0x20) <= 'z'; }

// Does an occurrence of a special token start before p and end after it?
bool special_spans(std::string_view text, size_t p, const std::vector<std::string>& specials) {
  for (const std::string& s : specials) {
    if (s.size() < 2) continue;
    const size_t lo = p >= s.size() - 1 ? p - (s.size() - 1) : 0;
    const size_t hi = std::min(text.size(), p + s.size() - 1);
    if (hi <= lo) continue;
    const std::string_view window = text.substr(lo, hi - lo);
    for (size_t at = window.find(s); at != std::string_view::npos; at = window.find(s, at + 1)) {
      if (lo + at < p && lo + at + s.size() > p) return true;
    }
  }
  return false;
}

}  // namespace


bool is_safe_split(std::string_view text, size_t p, const std::vector<std::string>& special_tokens) {
  if (p < 2 || p >= text.size()) return false;
  const auto c2 = static_cast<unsigned char>(text[p - 2]);
  if (text[p - 1] != '\n' || c2 >= 0x80 || ascii_space(c2) || !ascii_letter(static_cast<unsigned char>(text[p]))) {
    return false;
  }
  return special_tokens.empty() || !special_spans(text, p, special_tokens);
}

size_t next_safe_split(std::string_view text, size_t from, const std::vector<std::string>& special_tokens) {
  size_t i = from > 0 ? from - 1 : 0;  // position of the '\n'
  while (i < text.size()) {
    const void* hit = std::memchr(text.data() + i, '\n', text.size() - i);
    if (hit == nullptr) return std::string_view::npos;
    i = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
    if (i + 1 >= from && is_safe_split(text, i + 1, special_tokens)) return i + 1;
    ++i;
  }
  return std::string_view::npos;
}

size_t prev_safe_split(std::string_view text, size_t upto, const std::vector<std::string>& special_tokens) {
  if (text.size() < 3) return std::string_view::npos;
  size_t n = std::min(upto, text.size() - 1);  // the '\n' is at p - 1 <= n - 1
  while (n > 0) {
    const void* hit = memrchr(text.data(), '\n', n);
    if (hit == nullptr) return std::string_view::npos;
    const size_t i = static_cast<size_t>(static_cast<const char*>(hit) - text.data());
    if (is_safe_split(text, i + 1, special_tokens)) return i + 1;
    n = i;
  }
  return std::string_view::npos;
}

uint64_t split_at_special_tokens(std::string_view text, const std::vector<std::string>& special_tokens,
                                 const std::function<void(std::string_view)>& f) {
  if (special_tokens.empty()) {
    if (!text.empty()) f(text);
    return 0;
  }
  // next[k]: next occurrence of special k at or after pos (npos when none is left).
  std::vector<size_t> next(special_tokens.size());
  for (size_t k = 0; k < special_tokens.size(); ++k) {
    next[k] = special_tokens[k].empty() ? std::string_view::npos : text.find(special_tokens[k]);
  }
  uint64_t n = 0;
  size_t pos = 0;
  for (;;) {
    size_t best = std::string_view::npos, best_len = 0;
    for (size_t k = 0; k < special_tokens.size(); ++k) {
      if (next[k] < pos) next[k] = text.find(special_tokens[k], pos);
      if (next[k] < best || (next[k] == best && best != std::string_view::npos && special_tokens[k].size() > best_len)) {
        best = next[k];
        best_len = special_tokens[k].size();
      }
    }
    if (best == std::string_view::npos) break;
    if (best > pos) f(text.substr(pos, best - pos));
    pos = best + best_len;
    ++n;
  }
  if (pos < text.size()) f(text.substr(pos));
  return n;
}

// ---------------------------------------------------------------------------------------------
// The counting engine

namespace {

// Runs fn(thread_index) on n threads (inline when n == 1); rethrows the first exception.
void run_on_threads(int n, const std::function<void(int)>& fn) {
  if (n <= 1) {
    fn(0);
    return;
  }
  std::exception_ptr error;
  std::mutex error_mutex;
  std::vector<std::thread> threads;
  threads.reserve(n);
  for (int t = 0; t < n; ++t) {
    threads.emplace_back([&, t] {
      try {
        fn(t);
      } catch (...) {
        std::lock_guard lock(error_mutex);
        if (!error) error = std::current_exception();
      }
    });
  }
  for (auto& th : threads) th.join();
  if (error) std::rethrow_exception(error);
}

class Counter {
 public:
  Counter(const SplitFn& split, const CountOptions& options, ProgressBar* bar)
      : split_(split), options_(options), bar_(bar), maps_(std::max(1, options.n_threads)) {}

  // Counts one piece of text that starts and ends at a document boundary or a safe split.
  void count_block(std::string_view text) {
    std::vector<std::string_view> chunks;
    size_t start = 0;
    while (start < text.size()) {
      size_t end = text.size();
      if (text.size() - start > options_.chunk_bytes + options_.chunk_bytes / 2) {
        end = next_safe_split(text, start + options_.chunk_bytes, options_.special_tokens);
        if (end == std::string_view::npos) end = text.size();
      }
      chunks.push_back(text.substr(start, end - start));
      start = end;
    }
    std::atomic<size_t> next{0};
    const int n_threads = std::min<int>(static_cast<int>(maps_.size()), static_cast<int>(chunks.size()));
    run_on_threads(n_threads, [&](int t) {
      PieceCounts& map = maps_[t];
      uint64_t pieces = 0, text_bytes = 0;
      const std::function<void(std::string_view)> emit = [&](std::string_view piece) {
        map.add(piece);
        ++pieces;
      };
      uint64_t specials = 0;
      for (size_t c = next.fetch_add(1); c < chunks.size(); c = next.fetch_add(1)) {
        specials += split_at_special_tokens(chunks[c], options_.special_tokens, [&](std::string_view seg) {
          text_bytes += seg.size();
          split_(seg, emit);
        });
        if (bar_ != nullptr) bar_->add(chunks[c].size());
      }
      std::lock_guard lock(stats_mutex_);
      stats_.pieces += pieces;
      stats_.text_bytes += text_bytes;
      stats_.special_tokens += specials;
    });
    stats_.bytes += text.size();
  }

  void count_file(const std::string& path) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    LF_CHECK(fd >= 0, "cannot open training file {}: {}", path, std::strerror(errno));
    std::unique_ptr<int, void (*)(int*)> closer(new int(fd), [](int* p) {
      ::close(*p);
      delete p;
    });
    std::string buf;
    bool eof = false;
    while (!eof || !buf.empty()) {
      if (!eof) {
        const size_t have = buf.size();
        buf.resize(have + options_.block_bytes);
        size_t got = 0;
        while (got < options_.block_bytes) {
          const ssize_t r = ::read(fd, buf.data() + have + got, options_.block_bytes - got);
          LF_CHECK(r >= 0, "cannot read training file {}: {}", path, std::strerror(errno));
          if (r == 0) {
            eof = true;
            break;
          }
          got += static_cast<size_t>(r);
        }
        buf.resize(have + got);
      }
      size_t cut = buf.size();
      if (!eof) {
        cut = prev_safe_split(buf, buf.size() - 1, options_.special_tokens);
        if (cut == std::string_view::npos) {
          if (buf.size() < options_.max_block_bytes) continue;  // read more before cutting
          cut = forced_cut(buf);
          ++stats_.forced_splits;
        }
      }
      count_block(std::string_view(buf).substr(0, cut));
      buf.erase(0, cut);
    }
  }

  PieceCounts finish(CountStats* stats) {
    // Sum the per-thread maps into the largest one.
    size_t largest = 0;
    for (size_t t = 1; t < maps_.size(); ++t) {
      if (maps_[t].size() > maps_[largest].size()) largest = t;
    }
    PieceCounts out = std::move(maps_[largest]);
    for (size_t t = 0; t < maps_.size(); ++t) {
      if (t != largest) {
        out.merge_from(maps_[t]);
        maps_[t] = PieceCounts();
      }
    }
    if (stats != nullptr) *stats = stats_;
    return out;
  }

 private:
  // A cut for text without any safe split: after the last line break, else at the last UTF-8
  // character boundary.
  static size_t forced_cut(std::string_view buf) {
    const void* nl = memrchr(buf.data(), '\n', buf.size() - 1);
    if (nl != nullptr) return static_cast<size_t>(static_cast<const char*>(nl) - buf.data()) + 1;
    size_t p = buf.size() - 1;
    while (p > 0 && (static_cast<unsigned char>(buf[p]) & 0xc0) == 0x80) --p;
    return p > 0 ? p : buf.size();
  }

  const SplitFn& split_;
  const CountOptions& options_;
  ProgressBar* bar_;
  std::vector<PieceCounts> maps_;
  std::mutex stats_mutex_;
  CountStats stats_;
};

}  // namespace

PieceCounts count_pieces_in_files(const std::vector<std::string>& paths, const SplitFn& split,
                                  const CountOptions& options, CountStats* stats) {
  LF_CHECK(options.chunk_bytes > 0 && options.block_bytes > 0, "block and chunk sizes must be positive");
  const auto t0 = std::chrono::steady_clock::now();
  uint64_t total = 0;
  for (const std::string& p : paths) {
    struct stat st {};
    LF_CHECK(::stat(p.c_str(), &st) == 0, "cannot open training file {}: {}", p, std::strerror(errno));
    LF_CHECK(!S_ISDIR(st.st_mode), "training input {} is a directory, not a file", p);
    total += static_cast<uint64_t>(st.st_size);
  }
  ProgressBar bar({.label = "counting", .total = total, .unit = ProgressUnit::Bytes,
                   .enabled = options.progress && ProgressOptions::stderr_is_terminal()});
  Counter counter(split, options, &bar);
  for (const std::string& p : paths) counter.count_file(p);
  bar.finish();
  PieceCounts out = counter.finish(stats);
  if (stats != nullptr) stats->seconds = seconds_since(t0);
  return out;
}

PieceCounts count_pieces_in_text(std::string_view text, const SplitFn& split, const CountOptions& options,
                                 CountStats* stats) {
  LF_CHECK(options.chunk_bytes > 0, "chunk size must be positive");
  const auto t0 = std::chrono::steady_clock::now();
  Counter counter(split, options, nullptr);
  counter.count_block(text);
  PieceCounts out = counter.finish(stats);
  if (stats != nullptr) stats->seconds = seconds_since(t0);
  return out;
}

}  // namespace lmforge::tok
