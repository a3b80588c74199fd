#include "train/data_loader.h"

#include <algorithm>
#include <cmath>
#include <filesystem>

#include "core/error.h"
#include "core/random_kernels.h"
#include "core/text_util.h"

namespace lmforge::train {

namespace fs = std::filesystem;

TokenShards TokenShards::open(const std::string& path, std::string_view prefix) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) {
    LF_CHECK(fs::exists(path, ec), "token shards: {} does not exist", path);
    return TokenShards({path});
  }
  std::vector<std::string> files;
  for (const auto& e : fs::directory_iterator(path)) {
    const std::string name = e.path().filename().string();
    if (e.is_regular_file() && name.starts_with(prefix) && name.ends_with(".bin")) files.push_back(name);
  }
  if (prefix == "val_")
    LF_CHECK(!files.empty(), "token shards: no val_*.bin files in {}: write a validation split with `lmforge "
             "tokenize --val-fraction 0.05` (its default writes none), or point data.val_path at validation shards",
             path);
  LF_CHECK(!files.empty(), "token shards: no {}*.bin files in {} (write them with `lmforge tokenize`)", prefix, path);
  std::sort(files.begin(), files.end(), natural_less);
  for (auto& f : files) f = (fs::path(path) / f).string();
  return TokenShards(files);
}

TokenShards::TokenShards(const std::vector<std::string>& files) {
  for (const auto& f : files) shards_.emplace_back(f);
}

std::string TokenShards::describe() const {
  std::string out;
  for (size_t i = 0; i < shards_.size() && i < 3; ++i) out += (i ? ", " : "") + shards_[i].path();
  if (shards_.size() > 3) out += fmt::format(" and {} more", shards_.size() - 3);
  return out;
}

uint64_t TokenShards::total_tokens() const {
  uint64_t n = 0;
  for (const auto& s : shards_) n += s.size();
  return n;
}

void TokenShards::validate_ids(int64_t vocab_size) const {
  for (const auto& s : shards_) s.validate_ids(uint32_t(std::min<int64_t>(vocab_size, UINT32_MAX)));
}

void TokenShards::read(size_t i, uint64_t begin, std::span<int64_t> out) const {
  const auto& s = shards_[i];
  LF_ASSERT(begin + out.size() <= s.size());
  if (s.bytes_per_token() == 2) {
    const uint16_t* p = s.u16().data() + begin;
    for (size_t k = 0; k < out.size(); ++k) out[k] = p[k];
  } else {
    const uint32_t* p = s.u32().data() + begin;
    for (size_t k = 0; k < out.size(); ++k) out[k] = p[k];
  }
}

void TokenShards::count_ids(std::vector<uint64_t>& counts) const {
  auto bump = [&](uint32_t id) {
    if (id >= counts.size()) counts.resize(size_t(id) + 1, 0);
    ++counts[id];
  };
  for (const auto& s : shards_) {
    if (s.bytes_per_token() == 2)
      for (uint16_t id : s.u16()) bump(id);
    else
      for (uint32_t id : s.u32()) bump(id);
  }
}

RandomWindowSampler::RandomWindowSampler(const TokenShards& shards, int64_t seq_len, uint64_t seed)
    : shards_(shards), seq_len_(seq_len), seed_(seed) {
  LF_CHECK(seq_len > 0, "sampler: seq_len must be > 0");
  uint64_t total = 0;
  for (size_t i = 0; i < shards.n_shards(); ++i) {
    const uint64_t n = shards.shard(i).size();
    total += n > uint64_t(seq_len) ? n - uint64_t(seq_len) : 0;
    cumulative_starts_.push_back(total);
  }
  LF_CHECK(total > 0, "training shards ({}, ...) hold no window of seq_len + 1 = {} tokens; use a shorter "
           "train.seq_len or more data", shards.n_shards() ? shards.shard(0).path() : "none", seq_len + 1);
}

std::pair<size_t, uint64_t> RandomWindowSampler::window(uint64_t k) const {
  const uint4x32 w = rng::philox_block(seed_, k);
  const uint64_t x = rng::join64(w.v[0], w.v[1]);
  const uint64_t idx = rng::mulhi64(x, cumulative_starts_.back());  // uniform in [0, total)
  const size_t shard = size_t(std::upper_bound(cumulative_starts_.begin(), cumulative_starts_.end(), idx) -
                              cumulative_starts_.begin());
  const uint64_t before = shard == 0 ? 0 : cumulative_starts_[shard - 1];
  return {shard, idx - before};
}

void RandomWindowSampler::next_batch(int64_t batch, std::span<int64_t> x, std::span<int64_t> y) {
  next_batch_rows(batch, 0, batch, x, y);
}

void RandomWindowSampler::next_batch_rows(int64_t batch, int64_t first_row, int64_t rows, std::span<int64_t> x,
                                          std::span<int64_t> y) {
  const size_t t = size_t(seq_len_);
  LF_ASSERT(first_row >= 0 && rows >= 0 && first_row + rows <= batch);
  LF_ASSERT(x.size() >= size_t(rows) * t && y.size() >= size_t(rows) * t);
  buffer_.resize(t + 1);
  const uint64_t base = position_ + uint64_t(first_row);
  position_ += uint64_t(batch);
  for (int64_t b = 0; b < rows; ++b) {
    const auto [shard, start] = window(base + uint64_t(b));
    shards_.read(shard, start, buffer_);
    std::copy(buffer_.begin(), buffer_.begin() + t, x.begin() + b * t);
    std::copy(buffer_.begin() + 1, buffer_.end(), y.begin() + b * t);
  }
}

ValidationBatches::ValidationBatches(const TokenShards& shards, int64_t seq_len, int64_t batch, int64_t max_batches)
    : shards_(shards), seq_len_(seq_len), batch_(batch), max_batches_(max_batches) {
  LF_CHECK(seq_len > 0 && batch > 0, "validation: seq_len and batch must be > 0");
  for (size_t i = 0; i < shards.n_shards(); ++i) {
    const uint64_t n = shards.shard(i).size();
    for (uint64_t s = 0; s + 1 < n; s += uint64_t(seq_len)) windows_.push_back({i, s});
  }
}

int64_t ValidationBatches::next(std::span<int64_t> x, std::span<int64_t> y) {
  if (max_batches_ > 0 && batches_done_ >= max_batches_) return 0;
  const size_t t = size_t(seq_len_);
  int64_t rows = 0;
  std::vector<int64_t> buf;
  while (rows < batch_ && next_window_ < windows_.size()) {
    const auto [shard, start] = windows_[next_window_++];
    const uint64_t n = std::min<uint64_t>(t + 1, shards_.shard(shard).size() - start);
    buf.resize(n);
    shards_.read(shard, start, buf);
    int64_t* xr = x.data() + rows * t;
    int64_t* yr = y.data() + rows * t;
    for (size_t k = 0; k < t; ++k) {
      xr[k] = k + 1 < n ? buf[k] : (k < n ? buf[k] : 0);
      yr[k] = k + 1 < n ? buf[k + 1] : kIgnoreIndex;
    }
    ++rows;
  }
  if (rows > 0) ++batches_done_;
  return rows;
}

double unigram_entropy(const std::vector<uint64_t>& counts) {
  double total = 0;
  for (uint64_t c : counts) total += double(c);
  if (total == 0) return 0;
  double h = 0;
  for (uint64_t c : counts)
    if (c) {
      const double p = double(c) / total;
      h -= p * std::log(p);
    }
  return h;
}

}  // namespace lmforge::train
