// Training and validation batches over memory-mapped token shards (data/shard.h).
//
// A training sample is a window of seq_len + 1 consecutive tokens inside one shard: inputs are
// its first seq_len tokens, targets the last seq_len. RandomWindowSampler draws window starts
// uniformly over every valid start of every shard; window k of a run is a pure function of
// (seed, k) — Philox block k of the seed's stream — so the sampler's whole state is k, which a
// checkpoint stores and a resumed run restores exactly.
//
// ValidationBatches walks the validation shards in order in windows of seq_len targets, each
// shard from its start; the last window of a shard is padded (inputs with 0, targets with -100,
// which the loss ignores), so every token but a shard's first is predicted exactly once.
//
// Batches are host buffers of i64 ids, row-major [B, T].
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "data/shard.h"

namespace lmforge::train {

inline constexpr int64_t kIgnoreIndex = -100;

class TokenShards {
 public:
  // `path` is a shard file, or a directory whose files named <prefix>*.bin are taken in name
  // order (natural order: train_2 before train_10). Error naming the path when there are none.
  static TokenShards open(const std::string& path, std::string_view prefix);
  explicit TokenShards(const std::vector<std::string>& files);

  size_t n_shards() const { return shards_.size(); }
  const data::ShardReader& shard(size_t i) const { return shards_[i]; }
  uint64_t total_tokens() const;
  // The shards' paths for messages ("a.bin, b.bin, c.bin and 4 more").
  std::string describe() const;
  // Every id must be below vocab_size: Error naming the file, position and id otherwise.
  void validate_ids(int64_t vocab_size) const;
  // Copies ids [begin, begin + out.size()) of shard i as i64.
  void read(size_t i, uint64_t begin, std::span<int64_t> out) const;
  // Adds the count of every id to counts (sized to at least the largest id + 1).
  void count_ids(std::vector<uint64_t>& counts) const;

 private:
  std::vector<data::ShardReader> shards_;
};

class RandomWindowSampler {
 public:
  RandomWindowSampler(const TokenShards& shards, int64_t seq_len, uint64_t seed);
  // Fills x, y (each batch · seq_len) with the next `batch` windows.
  void next_batch(int64_t batch, std::span<int64_t> x, std::span<int64_t> y);
  // Data parallel: advances past the next `batch` windows (the global micro-batch) and fills x, y
  // (each rows · seq_len) with windows [first_row, first_row + rows) of them only, so that the
  // ranks of a run together see exactly the windows one process would.
  void next_batch_rows(int64_t batch, int64_t first_row, int64_t rows, std::span<int64_t> x, std::span<int64_t> y);
  // Windows drawn so far (the sampler's state).
  uint64_t position() const { return position_; }
  void set_position(uint64_t p) { position_ = p; }
  uint64_t seed() const { return seed_; }
  // The (shard, start) of window k.
  std::pair<size_t, uint64_t> window(uint64_t k) const;

 private:
  const TokenShards& shards_;
  int64_t seq_len_;
  uint64_t seed_;
  uint64_t position_ = 0;
  std::vector<uint64_t> cumulative_starts_;  // valid starts in shards [0, i]
  std::vector<int64_t> buffer_;
};

class ValidationBatches {
 public:
  // max_batches = 0: every window.
  ValidationBatches(const TokenShards& shards, int64_t seq_len, int64_t batch, int64_t max_batches = 0);
  // Fills up to `batch` rows of x, y (each batch · seq_len); returns the rows filled, 0 at the end.
  int64_t next(std::span<int64_t> x, std::span<int64_t> y);
  void reset() { next_window_ = 0, batches_done_ = 0; }
  int64_t n_windows() const { return static_cast<int64_t>(windows_.size()); }
  const TokenShards& shards() const { return shards_; }

 private:
  const TokenShards& shards_;
  int64_t seq_len_, batch_, max_batches_;
  std::vector<std::pair<size_t, uint64_t>> windows_;  // (shard, start)
  size_t next_window_ = 0;
  int64_t batches_done_ = 0;
};

// Unigram entropy in nats per token of the ids in `counts` (-Σ p ln p).
double unigram_entropy(const std::vector<uint64_t>& counts);

}  // namespace lmforge::train
