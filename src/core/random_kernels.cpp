// CPU fills for core/random_kernels.h. Each loop runs over Philox blocks (statically scheduled);
// an element's value depends only on its own block, so the thread count never changes a result.
#include "core/random_kernels.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>
#include <vector>

#include <omp.h>

namespace lmforge {
namespace {

// Below these sizes the fork/join costs more than it saves.
constexpr int64_t kMinBlocksForThreads = 2048;
constexpr int64_t kMinElementsForParallelSort = int64_t(1) << 16;

// Checks the request and returns the number of blocks it reads.
template <class T>
int64_t check_request(const char* op, const T* out, int64_t n, uint64_t offset) {
  LF_CHECK(n >= 0, "{}: element count must be >= 0, got {}", op, n);
  LF_CHECK(out != nullptr || n == 0, "{}: null output buffer for {} elements", op, n);
  const uint64_t blocks = philox_blocks_used<T>(n);
  LF_CHECK(blocks == 0 || offset <= std::numeric_limits<uint64_t>::max() - (blocks - 1),
           "{}: offset {} + {} blocks runs past the end of the Philox counter space", op, offset, blocks);
  return int64_t(blocks);
}

// Calls body(block_words, first_element) for every block of the request; first_element is the
// index of the block's first element (block k holds elements [k * per_block, (k+1) * per_block)).
template <int kPerBlock, class Body>
void for_each_block(int64_t n_blocks, uint64_t seed, uint64_t offset, Body&& body) {
#pragma omp parallel for schedule(static) if (n_blocks >= kMinBlocksForThreads)
  for (int64_t k = 0; k < n_blocks; ++k) {
    body(rng::philox_block(seed, offset + uint64_t(k)), k * kPerBlock);
  }
}

template <class T>
void check_finite(const char* op, const char* name, T v) {
  LF_CHECK(std::isfinite(v), "{}: {} must be finite, got {}", op, name, v);
}

}  // namespace

void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi) {
  const int64_t blocks = check_request("fill_uniform", out, n, offset);
  check_finite("fill_uniform", "lo", lo);
  check_finite("fill_uniform", "hi", hi);
  LF_CHECK(lo <= hi && std::isfinite(hi - lo), "fill_uniform: need lo <= hi with a finite hi - lo, got [{}, {})",
           lo, hi);
  for_each_block<4>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    const int count = int(std::min<int64_t>(4, n - first));
    for (int j = 0; j < count; ++j) out[first + j] = rng::uniform_f32(w.v[j], lo, hi);
  });
}

void fill_uniform(double* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi) {
  const int64_t blocks = check_request("fill_uniform", out, n, offset);
  check_finite("fill_uniform", "lo", lo);
  check_finite("fill_uniform", "hi", hi);
  LF_CHECK(lo <= hi && std::isfinite(hi - lo), "fill_uniform: need lo <= hi with a finite hi - lo, got [{}, {})",
           lo, hi);
  for_each_block<2>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    out[first] = rng::uniform_f64(rng::join64(w.v[0], w.v[1]), lo, hi);
    if (first + 1 < n) out[first + 1] = rng::uniform_f64(rng::join64(w.v[2], w.v[3]), lo, hi);
  });
}

void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev) {
  const int64_t blocks = check_request("fill_normal", out, n, offset);
  check_finite("fill_normal", "mean", mean);
  check_finite("fill_normal", "std", stddev);
  LF_CHECK(stddev >= 0.0f, "fill_normal: std must be >= 0, got {}", stddev);
  const double m = mean, s = stddev;
  for_each_block<4>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    for (int pair = 0; pair < 2; ++pair) {
      const int64_t i = first + 2 * pair;
      if (i >= n) break;
      double zc, zs;
      rng::box_muller(rng::radius_uniform_32(w.v[2 * pair]), rng::angle_uniform_32(w.v[2 * pair + 1]), &zc, &zs);
      out[i] = float(std::fma(s, zc, m));
      if (i + 1 < n) out[i + 1] = float(std::fma(s, zs, m));
    }
  });
}

void fill_normal(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double stddev) {
  const int64_t blocks = check_request("fill_normal", out, n, offset);
  check_finite("fill_normal", "mean", mean);
  check_finite("fill_normal", "std", stddev);
  LF_CHECK(stddev >= 0.0, "fill_normal: std must be >= 0, got {}", stddev);
  for_each_block<2>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    double zc, zs;
    rng::box_muller(rng::radius_uniform_64(rng::join64(w.v[0], w.v[1])),
                    rng::angle_uniform_64(rng::join64(w.v[2], w.v[3])), &zc, &zs);
    out[first] = std::fma(stddev, zc, mean);
    if (first + 1 < n) out[first + 1] = std::fma(stddev, zs, mean);
  });
}

namespace {
template <class T>
void check_truncated_normal(T mean, T stddev, T a, T b) {
  const char* op = "fill_truncated_normal";
  check_finite(op, "mean", mean);
  check_finite(op, "std", stddev);
  check_finite(op, "a", a);
  check_finite(op, "b", b);
  LF_CHECK(stddev > T(0), "{}: std must be > 0, got {}", op, stddev);
  LF_CHECK(a < b, "{}: need a < b (absolute bounds), got [{}, {}]", op, a, b);
}
}  // namespace

void fill_truncated_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev, float a,
                           float b) {
  const int64_t blocks = check_request("fill_truncated_normal", out, n, offset);
  check_truncated_normal(mean, stddev, a, b);
  const rng::TruncatedNormal t = rng::truncated_normal_setup(mean, stddev, a, b);
  for_each_block<4>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    const int count = int(std::min<int64_t>(4, n - first));
    for (int j = 0; j < count; ++j) {
      const float v = float(rng::truncated_normal_value(rng::open_uniform_32(w.v[j]), t));
      out[first + j] = std::clamp(v, a, b);
    }
  });
}

void fill_truncated_normal(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double stddev, double a,
                           double b) {
  const int64_t blocks = check_request("fill_truncated_normal", out, n, offset);
  check_truncated_normal(mean, stddev, a, b);
  const rng::TruncatedNormal t = rng::truncated_normal_setup(mean, stddev, a, b);
  for_each_block<2>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    out[first] = rng::truncated_normal_value(rng::open_uniform_64(rng::join64(w.v[0], w.v[1])), t);
    if (first + 1 < n) out[first + 1] = rng::truncated_normal_value(rng::open_uniform_64(rng::join64(w.v[2], w.v[3])), t);
  });
}

void fill_randint(int64_t* out, int64_t n, uint64_t seed, uint64_t offset, int64_t lo, int64_t hi) {
  const int64_t blocks = check_request("fill_randint", out, n, offset);
  LF_CHECK(lo < hi, "fill_randint: need lo < hi, got [{}, {})", lo, hi);
  const uint64_t range = uint64_t(hi) - uint64_t(lo);
  for_each_block<2>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    out[first] = rng::randint_value(rng::join64(w.v[0], w.v[1]), lo, range);
    if (first + 1 < n) out[first + 1] = rng::randint_value(rng::join64(w.v[2], w.v[3]), lo, range);
  });
}

void fill_bernoulli(uint8_t* out, int64_t n, uint64_t seed, uint64_t offset, double p) {
  const int64_t blocks = check_request("fill_bernoulli", out, n, offset);
  LF_CHECK(p >= 0.0 && p <= 1.0, "fill_bernoulli: p must be in [0, 1], got {}", p);
  const uint64_t threshold = rng::bernoulli_threshold(p);
  for_each_block<4>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    const int count = int(std::min<int64_t>(4, n - first));
    for (int j = 0; j < count; ++j) out[first + j] = rng::bernoulli_value(w.v[j], threshold);
  });
}

void permutation(int64_t* out, int64_t n, uint64_t seed, uint64_t offset) {
  const int64_t blocks = check_request("permutation", out, n, offset);
  // (random key, index) pairs: a total order, so the sorted result is the same however the sort
  // is split across threads.
  using Entry = std::pair<uint64_t, int64_t>;
  std::vector<Entry> entries(static_cast<size_t>(n));
  for_each_block<2>(blocks, seed, offset, [&](const uint4x32& w, int64_t first) {
    entries[size_t(first)] = {rng::join64(w.v[0], w.v[1]), first};
    if (first + 1 < n) entries[size_t(first + 1)] = {rng::join64(w.v[2], w.v[3]), first + 1};
  });

  // Sort `chunks` slices in parallel, then merge neighbours pairwise.
  int chunks = 1;
  if (n >= kMinElementsForParallelSort) {
    while (chunks < omp_get_max_threads() && chunks < 64) chunks *= 2;
  }
  auto bound = [&](int c) { return entries.begin() + (n * c) / chunks; };
#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int c = 0; c < chunks; ++c) std::sort(bound(c), bound(c + 1));
  for (int width = 1; width < chunks; width *= 2) {
#pragma omp parallel for schedule(static) if (chunks / (2 * width) > 1)
    for (int c = 0; c < chunks; c += 2 * width) std::inplace_merge(bound(c), bound(c + width), bound(c + 2 * width));
  }
  for (int64_t k = 0; k < n; ++k) out[k] = entries[size_t(k)].second;
}

uint64_t Generator::advance(uint64_t blocks) {
  LF_CHECK(blocks <= std::numeric_limits<uint64_t>::max() - state_.offset,
           "Generator: advancing offset {} by {} blocks runs past the end of the Philox counter space", state_.offset,
           blocks);
  const uint64_t old = state_.offset;
  state_.offset += blocks;
  return old;
}

}  // namespace lmforge
