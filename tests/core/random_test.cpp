// core/philox.h and core/random_kernels.h: Random123's known answers, the stream contract
// (recomputed here from its text, straight from philox4x32_10), thread-count independence,
// offsets, statistics against analytic moments, and argument checks.
#include "core/philox.h"
#include "core/random_kernels.h"

#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <limits>
#include <numbers>
#include <numeric>
#include <vector>

namespace lmforge {
namespace {

// ---- Philox4x32-10 known answers (Random123, examples/kat_vectors: "philox4x32 10" lines) ----

struct Kat {
  uint4x32 ctr;
  uint2x32 key;
  uint4x32 want;
};

TEST(Philox, KnownAnswerVectors) {
  const Kat kats[] = {
      {{{0, 0, 0, 0}}, {{0, 0}}, {{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}}},
      {{{0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}},
       {{0xffffffff, 0xffffffff}},
       {{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}}},
      {{{0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}},
       {{0xa4093822, 0x299f31d0}},
       {{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}}},
  };
  for (const Kat& k : kats) {
    const uint4x32 got = philox4x32_10(k.ctr, k.key);
    for (int j = 0; j < 4; ++j) EXPECT_EQ(got.v[j], k.want.v[j]) << "word " << j;
  }
}

TEST(Philox, NeighbouringCountersAndKeysDiffer) {
  // Avalanche sanity: flipping one counter or key bit changes about half the 128 output bits.
  const uint4x32 base = philox4x32_10({{1, 2, 3, 4}}, {{5, 6}});
  for (int bit = 0; bit < 128 + 64; ++bit) {
    uint4x32 c{{1, 2, 3, 4}};
    uint2x32 k{{5, 6}};
    if (bit < 128) c.v[bit / 32] ^= 1u << (bit % 32);
    else k.v[(bit - 128) / 32] ^= 1u << (bit % 32);
    const uint4x32 o = philox4x32_10(c, k);
    int flipped = 0;
    for (int j = 0; j < 4; ++j) flipped += std::popcount(o.v[j] ^ base.v[j]);
    EXPECT_GT(flipped, 32) << "bit " << bit;
    EXPECT_LT(flipped, 96) << "bit " << bit;
  }
}

// ---- the stream contract, restated from the header comment ----

uint4x32 ref_block(uint64_t seed, uint64_t b) {
  return philox4x32_10({{uint32_t(b & 0xffffffffu), uint32_t(b >> 32), 0u, 0u}},
                       {{uint32_t(seed & 0xffffffffu), uint32_t(seed >> 32)}});
}
uint32_t ref_word32(uint64_t seed, uint64_t offset, int64_t i) { return ref_block(seed, offset + uint64_t(i / 4)).v[i % 4]; }
uint64_t ref_word64(uint64_t seed, uint64_t offset, int64_t i) {
  const uint4x32 w = ref_block(seed, offset + uint64_t(i / 2));
  const int j = int(i % 2);
  return uint64_t(w.v[2 * j]) | uint64_t(w.v[2 * j + 1]) << 32;
}

// A seed and an offset whose high words are non-zero and whose requests cross the carry from the
// low counter word into the high one.
constexpr uint64_t kSeed = 0x9E3779B97F4A7C15ull;
constexpr uint64_t kOffset = 0x00000001FFFFFF00ull;

// The first 64 elements, every 997th after them, and the last.
std::vector<int64_t> sample_indices(int64_t n) {
  std::vector<int64_t> idx;
  for (int64_t i = 0; i < std::min<int64_t>(n, 64); ++i) idx.push_back(i);
  for (int64_t i = 64; i < n; i += 997) idx.push_back(i);
  idx.push_back(n - 1);
  return idx;
}

TEST(Random, StreamKnownAnswerFromPhiloxVector) {
  // seed 0, offset 0: block 0 is Philox(counter 0, key 0) = the first known-answer vector.
  const uint32_t w[4] = {0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8};
  float u[4];
  fill_uniform(u, 4, 0, 0, 0.0f, 1.0f);
  for (int j = 0; j < 4; ++j) EXPECT_EQ(u[j], float(w[j] >> 8) / 16777216.0f) << j;

  int64_t r[2];
  fill_randint(r, 2, 0, 0, 0, int64_t(1) << 32);  // multiply-shift by 2^32 = the high word
  EXPECT_EQ(r[0], 0xe169c58d);
  EXPECT_EQ(r[1], 0x9b00dbd8);

  uint8_t b[4];
  fill_bernoulli(b, 4, 0, 0, 0.5);  // 1 iff word < 2^31
  EXPECT_EQ(b[0], 1);
  EXPECT_EQ(b[1], 0);
  EXPECT_EQ(b[2], 0);
  EXPECT_EQ(b[3], 0);

  int64_t p[2];
  permutation(p, 2, 0, 0);  // keys 0xe169c58d6627e8d5 > 0x9b00dbd8bc57ac4c
  EXPECT_EQ(p[0], 1);
  EXPECT_EQ(p[1], 0);

  float z[2];
  fill_normal(z, 2, 0, 0, 0.0f, 1.0f);
  const long double two32 = 4294967296.0L;
  const long double r0 = std::sqrt(-2.0L * std::log((w[0] + 1.0L) / two32));
  const long double t0 = 2.0L * 3.14159265358979323846264338327950288L * (w[1] / two32);
  EXPECT_NEAR(z[0], double(r0 * std::cos(t0)), 1e-6);
  EXPECT_NEAR(z[1], double(r0 * std::sin(t0)), 1e-6);
}

TEST(Random, BlocksUsed) {
  EXPECT_EQ(philox_blocks_used<float>(0), 0u);
  EXPECT_EQ(philox_blocks_used<float>(1), 1u);
  EXPECT_EQ(philox_blocks_used<float>(4), 1u);
  EXPECT_EQ(philox_blocks_used<float>(5), 2u);
  EXPECT_EQ(philox_blocks_used<uint8_t>(9), 3u);
  EXPECT_EQ(philox_blocks_used<double>(5), 3u);
  EXPECT_EQ(philox_blocks_used<int64_t>(4), 2u);
  EXPECT_EQ(philox_blocks_used<float>(-3), 0u);
}

TEST(Random, UniformFollowsContract) {
  const int64_t n = 10001;
  std::vector<float> f(n);
  std::vector<double> d(n);
  fill_uniform(f.data(), n, kSeed, kOffset, -3.0f, 5.0f);
  fill_uniform(d.data(), n, kSeed, kOffset, -3.0, 5.0);
  for (const int64_t i : sample_indices(n)) {
    const double uf = double(ref_word32(kSeed, kOffset, i) >> 8) * 0x1p-24;
    EXPECT_EQ(f[i], std::fma(8.0f, float(uf), -3.0f)) << i;
    const double ud = double(ref_word64(kSeed, kOffset, i) >> 11) * 0x1p-53;
    EXPECT_EQ(d[i], std::fma(8.0, ud, -3.0)) << i;
  }
}

TEST(Random, NormalFollowsContract) {
  const int64_t n = 10003;
  const float mean = 0.25f, sd = 1.5f;
  std::vector<float> f(n);
  std::vector<double> d(n);
  fill_normal(f.data(), n, kSeed, kOffset, mean, sd);
  fill_normal(d.data(), n, kSeed, kOffset, double(mean), double(sd));
  const long double two_pi = 2.0L * 3.14159265358979323846264338327950288L;
  for (const int64_t i : sample_indices(n)) {
    // f32: pair (2k, 2k+1) of block offset + i/4; radius word even, angle word odd.
    const int64_t pair_first = i - (i % 2);
    const long double u1 = (ref_word32(kSeed, kOffset, pair_first) + 1.0L) * 0x1p-32L;
    const long double u2 = ref_word32(kSeed, kOffset, pair_first + 1) * 0x1p-32L;
    const long double r = std::sqrt(-2.0L * std::log(u1));
    const long double z = i % 2 == 0 ? r * std::cos(two_pi * u2) : r * std::sin(two_pi * u2);
    const double want_f = double(mean + sd * z);
    EXPECT_NEAR(f[i], want_f, 2e-7 * (1.0 + std::fabs(want_f))) << i;
    // f64: one pair per block; radius from words 0-1, angle from words 2-3.
    const uint4x32 w = ref_block(kSeed, kOffset + uint64_t(i / 2));
    const uint64_t x1 = uint64_t(w.v[0]) | uint64_t(w.v[1]) << 32, x2 = uint64_t(w.v[2]) | uint64_t(w.v[3]) << 32;
    const long double v1 = ((x1 >> 11) + 1.0L) * 0x1p-53L, v2 = (x2 >> 11) * 0x1p-53L;
    const long double rr = std::sqrt(-2.0L * std::log(v1));
    const long double zz = i % 2 == 0 ? rr * std::cos(two_pi * v2) : rr * std::sin(two_pi * v2);
    EXPECT_NEAR(d[i], double(mean + sd * zz), 1e-13) << i;
  }
}

// Inverse of the standard normal CDF by bisection on erfc: slow, but shares nothing with AS 241.
double ref_quantile(double p) {
  double lo = -40, hi = 40;
  for (int it = 0; it < 200; ++it) {
    const double mid = 0.5 * (lo + hi);
    (0.5 * std::erfc(-mid / std::sqrt(2.0)) < p ? lo : hi) = mid;
  }
  return 0.5 * (lo + hi);
}

TEST(Random, TruncatedNormalFollowsContract) {
  const int64_t n = 5001;
  std::vector<float> f(n);
  std::vector<double> d(n);
  const double mean = 0.1, sd = 0.7, a = -1.0, b = 1.3;  // straddles the mean: not mirrored
  fill_truncated_normal(f.data(), n, kSeed, kOffset, float(mean), float(sd), float(a), float(b));
  fill_truncated_normal(d.data(), n, kSeed, kOffset, mean, sd, a, b);
  auto phi = [](double x) { return 0.5 * std::erfc(-x / std::sqrt(2.0)); };
  const double mf = float(mean), sf = float(sd), af = float(a), bf = float(b);
  for (const int64_t i : sample_indices(n)) {
    const double uf = (ref_word32(kSeed, kOffset, i) + 0.5) * 0x1p-32;
    const double pa = phi((af - mf) / sf), pb = phi((bf - mf) / sf);
    EXPECT_NEAR(f[i], mf + sf * ref_quantile(pa + uf * (pb - pa)), 1e-6) << i;
    const double ud = double((ref_word64(kSeed, kOffset, i) >> 12) + 0.5) * 0x1p-52;
    const double qa = phi((a - mean) / sd), qb = phi((b - mean) / sd);
    EXPECT_NEAR(d[i], mean + sd * ref_quantile(qa + ud * (qb - qa)), 1e-12) << i;
  }
}

TEST(Random, RandintAndBernoulliFollowContract) {
  const int64_t n = 9999;
  std::vector<int64_t> r(n);
  std::vector<uint8_t> b(n);
  fill_randint(r.data(), n, kSeed, kOffset, -1000, 777);
  fill_bernoulli(b.data(), n, kSeed, kOffset, 0.3);
  const uint64_t threshold = uint64_t(0.3 * 4294967296.0);
  for (const int64_t i : sample_indices(n)) {
    const unsigned __int128 prod = (unsigned __int128)ref_word64(kSeed, kOffset, i) * 1777u;
    EXPECT_EQ(r[i], -1000 + int64_t(prod >> 64)) << i;
    EXPECT_EQ(b[i], ref_word32(kSeed, kOffset, i) < threshold ? 1 : 0) << i;
  }
}

TEST(Random, PermutationFollowsContract) {
  const int64_t n = 1000;
  std::vector<int64_t> p(n);
  permutation(p.data(), n, kSeed, kOffset);
  std::vector<std::pair<uint64_t, int64_t>> keyed;
  for (int64_t i = 0; i < n; ++i) keyed.push_back({ref_word64(kSeed, kOffset, i), i});
  std::sort(keyed.begin(), keyed.end());
  for (int64_t k = 0; k < n; ++k) ASSERT_EQ(p[k], keyed[k].second) << k;
}

// ---- thread-count independence ----

class ThreadCount {
 public:
  explicit ThreadCount(int n) : saved_(omp_get_max_threads()) { omp_set_num_threads(n); }
  ~ThreadCount() { omp_set_num_threads(saved_); }

 private:
  int saved_;
};

template <class T, class Fill>
std::vector<T> run_with_threads(int threads, int64_t n, Fill fill) {
  ThreadCount tc(threads);
  std::vector<T> v(n);
  fill(v.data(), n);
  return v;
}

template <class T, class Fill>
void expect_thread_independent(const char* what, int64_t n, Fill fill) {
  const std::vector<T> one = run_with_threads<T>(1, n, fill);
  for (const int threads : {2, 3}) {
    const std::vector<T> many = run_with_threads<T>(threads, n, fill);
    EXPECT_EQ(std::memcmp(one.data(), many.data(), size_t(n) * sizeof(T)), 0) << what << " threads=" << threads;
  }
}

TEST(Random, IdenticalForAnyThreadCount) {
  const int64_t n = 300'007;  // well past the size where the loops fork, and not a block multiple
  expect_thread_independent<float>("uniform f32", n, [](float* o, int64_t k) { fill_uniform(o, k, 1, 2, -1.f, 1.f); });
  expect_thread_independent<double>("uniform f64", n, [](double* o, int64_t k) { fill_uniform(o, k, 1, 2, -1., 1.); });
  expect_thread_independent<float>("normal f32", n, [](float* o, int64_t k) { fill_normal(o, k, 1, 2, 0.f, 1.f); });
  expect_thread_independent<double>("normal f64", n, [](double* o, int64_t k) { fill_normal(o, k, 1, 2, 0., 1.); });
  expect_thread_independent<float>("trunc f32", n,
                                   [](float* o, int64_t k) { fill_truncated_normal(o, k, 1, 2, 0.f, 1.f, -2.f, 2.f); });
  expect_thread_independent<double>("trunc f64", n,
                                    [](double* o, int64_t k) { fill_truncated_normal(o, k, 1, 2, 0., 1., -2., 2.); });
  expect_thread_independent<int64_t>("randint", n, [](int64_t* o, int64_t k) { fill_randint(o, k, 1, 2, -5, 100); });
  expect_thread_independent<uint8_t>("bernoulli", n, [](uint8_t* o, int64_t k) { fill_bernoulli(o, k, 1, 2, 0.1); });
  expect_thread_independent<int64_t>("permutation", n, [](int64_t* o, int64_t k) { permutation(o, k, 1, 2); });
}

// ---- offsets: requests that continue each other equal one big request ----

template <class T, class Fill>
void expect_continuation(const char* what, int64_t per_block, Fill fill) {
  const int64_t n1 = 40 * per_block, n2 = 1001;
  std::vector<T> whole(n1 + n2), first(n1), second(n2);
  fill(whole.data(), n1 + n2, kOffset);
  fill(first.data(), n1, kOffset);
  fill(second.data(), n2, kOffset + philox_blocks_used<T>(n1));
  EXPECT_EQ(std::memcmp(whole.data(), first.data(), size_t(n1) * sizeof(T)), 0) << what;
  EXPECT_EQ(std::memcmp(whole.data() + n1, second.data(), size_t(n2) * sizeof(T)), 0) << what;
  // A shorter request is a prefix of a longer one (partial last block included).
  std::vector<T> prefix(7);
  fill(prefix.data(), 7, kOffset);
  EXPECT_EQ(std::memcmp(whole.data(), prefix.data(), 7 * sizeof(T)), 0) << what;
}

TEST(Random, ContinuationEqualsOneRequest) {
  expect_continuation<float>("uniform f32", 4, [](float* o, int64_t k, uint64_t off) { fill_uniform(o, k, kSeed, off, 0.f, 1.f); });
  expect_continuation<double>("uniform f64", 2, [](double* o, int64_t k, uint64_t off) { fill_uniform(o, k, kSeed, off, 0., 1.); });
  expect_continuation<float>("normal f32", 4, [](float* o, int64_t k, uint64_t off) { fill_normal(o, k, kSeed, off, 1.f, 2.f); });
  expect_continuation<double>("normal f64", 2, [](double* o, int64_t k, uint64_t off) { fill_normal(o, k, kSeed, off, 1., 2.); });
  expect_continuation<float>("trunc f32", 4, [](float* o, int64_t k, uint64_t off) {
    fill_truncated_normal(o, k, kSeed, off, 0.f, 1.f, -1.f, 3.f);
  });
  expect_continuation<double>("trunc f64", 2, [](double* o, int64_t k, uint64_t off) {
    fill_truncated_normal(o, k, kSeed, off, 0., 1., -1., 3.);
  });
  expect_continuation<int64_t>("randint", 2, [](int64_t* o, int64_t k, uint64_t off) { fill_randint(o, k, kSeed, off, 0, 9); });
  expect_continuation<uint8_t>("bernoulli", 4, [](uint8_t* o, int64_t k, uint64_t off) { fill_bernoulli(o, k, kSeed, off, 0.5); });
}

TEST(Random, SeedsAndOffsetsGiveDifferentStreams) {
  std::vector<float> a(64), b(64), c(64);
  fill_uniform(a.data(), 64, 1, 0, 0.f, 1.f);
  fill_uniform(b.data(), 64, 2, 0, 0.f, 1.f);
  fill_uniform(c.data(), 64, 1ull << 32, 0, 0.f, 1.f);  // high seed word matters
  EXPECT_NE(a, b);
  EXPECT_NE(a, c);
  // Shifting the offset by one block shifts the f32 stream by four elements.
  std::vector<float> s(60);
  fill_uniform(s.data(), 60, 1, 1, 0.f, 1.f);
  EXPECT_TRUE(std::equal(s.begin(), s.end(), a.begin() + 4));
}

// ---- statistics ----

struct Moments {
  double mean, var;
};
template <class T>
Moments moments(const std::vector<T>& v) {
  double s = 0;
  for (const T x : v) s += double(x);
  const double m = s / double(v.size());
  double q = 0;
  for (const T x : v) q += (double(x) - m) * (double(x) - m);
  return {m, q / double(v.size() - 1)};
}

TEST(Random, NormalMoments) {
  const int64_t n = 1'000'000;
  std::vector<float> f(n);
  std::vector<double> d(n);
  fill_normal(f.data(), n, 42, 0, 2.0f, 3.0f);
  fill_normal(d.data(), n, 43, 0, -1.0, 0.5);
  const Moments mf = moments(f), md = moments(d);
  // 6 standard errors: mean se = sd/sqrt(n), variance se = var*sqrt(2/n).
  EXPECT_NEAR(mf.mean, 2.0, 6 * 3.0 / 1000.0);
  EXPECT_NEAR(mf.var, 9.0, 6 * 9.0 * std::sqrt(2.0 / n));
  EXPECT_NEAR(md.mean, -1.0, 6 * 0.5 / 1000.0);
  EXPECT_NEAR(md.var, 0.25, 6 * 0.25 * std::sqrt(2.0 / n));
  // Shape: the fraction beyond 2 standard deviations is 2 (1 - Phi(2)) = 0.0455003.
  int64_t tail = 0;
  for (const float x : f) tail += std::fabs(x - 2.0f) > 6.0f;
  const double p = 0.04550026389635842;
  EXPECT_NEAR(double(tail) / n, p, 6 * std::sqrt(p * (1 - p) / n));
  // std 0 gives the mean exactly.
  std::vector<float> z(9);
  fill_normal(z.data(), 9, 1, 0, 1.25f, 0.0f);
  for (const float x : z) EXPECT_EQ(x, 1.25f);
}

TEST(Random, UniformRangeAndMoments) {
  const int64_t n = 1'000'000;
  std::vector<float> f(n);
  fill_uniform(f.data(), n, 5, 0, -2.0f, 6.0f);
  EXPECT_GE(*std::min_element(f.begin(), f.end()), -2.0f);
  EXPECT_LT(*std::max_element(f.begin(), f.end()), 6.0f);
  const Moments m = moments(f);
  EXPECT_NEAR(m.mean, 2.0, 6 * std::sqrt(64.0 / 12 / n));
  EXPECT_NEAR(m.var, 64.0 / 12, 6 * 64.0 / 12 * std::sqrt(0.8 / n));  // uniform: excess kurtosis -1.2
  // A range one ulp wide: lo + span * u rounds up to hi for half the draws; hi is never returned.
  const float lo = 1.0f, hi = std::nextafter(1.0f, 2.0f);
  std::vector<float> g(1000);
  fill_uniform(g.data(), 1000, 5, 0, lo, hi);
  for (const float x : g) EXPECT_EQ(x, lo);
  std::vector<double> h(1000);
  fill_uniform(h.data(), 1000, 5, 0, 1.0, std::nextafter(1.0, 2.0));
  for (const double x : h) EXPECT_EQ(x, 1.0);
}

// Moments of Normal(mean, sd^2) truncated to [a, b].
Moments truncated_moments(double mean, double sd, double a, double b) {
  const double al = (a - mean) / sd, be = (b - mean) / sd;
  auto pdf = [](double x) { return std::exp(-0.5 * x * x) / std::sqrt(2 * std::numbers::pi); };
  // Z by erfc on the side where it keeps its digits.
  const double z = al > 0 ? 0.5 * std::erfc(al / std::sqrt(2.0)) - 0.5 * std::erfc(be / std::sqrt(2.0))
                          : 0.5 * std::erfc(-be / std::sqrt(2.0)) - 0.5 * std::erfc(-al / std::sqrt(2.0));
  const double d1 = (pdf(al) - pdf(be)) / z;
  const double d2 = (al * pdf(al) - be * pdf(be)) / z;
  return {mean + sd * d1, sd * sd * (1 + d2 - d1 * d1)};
}

TEST(Random, TruncatedNormalBoundsAndMoments) {
  struct Case {
    double mean, sd, a, b;
  };
  const Case cases[] = {
      {0.0, 1.0, -2.0, 2.0},     // torch.nn.init.trunc_normal_ defaults
      {0.0, 0.02, -0.04, 0.04},  // the usual weight init
      {0.5, 2.0, -1.0, 3.0},     // asymmetric
      {0.0, 1.0, 2.0, 3.0},      // above the mean: mirrored
      {0.0, 1.0, -3.0, -2.0},    // below the mean
      {0.0, 1.0, 6.0, 12.0},     // deep upper tail
      {0.0, 1.0, 9.0, 12.0},     // Phi(9) rounds to 1 in f64: only the mirroring keeps this right
      {1.0, 1.0, -30.0, 1.5},    // very wide lower side
  };
  const int64_t n = 1'000'000;
  for (const Case& c : cases) {
    std::vector<double> d(n);
    fill_truncated_normal(d.data(), n, 11, 0, c.mean, c.sd, c.a, c.b);
    std::vector<float> f(n);
    fill_truncated_normal(f.data(), n, 12, 0, float(c.mean), float(c.sd), float(c.a), float(c.b));
    const Moments want = truncated_moments(c.mean, c.sd, c.a, c.b);
    const Moments md = moments(d), mf = moments(f);
    const double se_mean = std::sqrt(want.var / n), se_var = want.var * std::sqrt(2.0 / n);
    SCOPED_TRACE(testing::Message() << "N(" << c.mean << ", " << c.sd << "^2) on [" << c.a << ", " << c.b << "]");
    EXPECT_NEAR(md.mean, want.mean, 6 * se_mean);
    EXPECT_NEAR(md.var, want.var, 6 * se_var);
    EXPECT_NEAR(mf.mean, want.mean, 6 * se_mean + 1e-7 * std::fabs(want.mean));
    EXPECT_NEAR(mf.var, want.var, 6 * se_var + 1e-6 * want.var);
    EXPECT_GE(*std::min_element(d.begin(), d.end()), c.a);
    EXPECT_LE(*std::max_element(d.begin(), d.end()), c.b);
    EXPECT_GE(*std::min_element(f.begin(), f.end()), float(c.a));
    EXPECT_LE(*std::max_element(f.begin(), f.end()), float(c.b));
  }
}

TEST(Random, NormalQuantileAccuracy) {
  // Against the bisection reference, over the centre and both tails.
  for (double p = 1e-300; p < 0.5; p *= 3.7) {
    const double q = rng::normal_quantile(p), want = ref_quantile(p);
    EXPECT_NEAR(q, want, 1e-13 * std::fabs(want) + 1e-15) << p;
    // Upper tail at 1 - p, whose complement is exact in f64 (1 - p rounds to 1 below ~1e-16).
    const double upper = 1.0 - p;
    if (upper < 1.0) {
      const double want_upper = -ref_quantile(1.0 - upper);
      EXPECT_NEAR(rng::normal_quantile(upper), want_upper, 1e-13 * std::fabs(want_upper) + 1e-15) << p;
    }
  }
  for (double p = 0.01; p < 1; p += 0.01) EXPECT_NEAR(rng::normal_quantile(p), ref_quantile(p), 1e-14) << p;
  EXPECT_NEAR(rng::normal_quantile(0.975), 1.959963984540054, 1e-15);
  EXPECT_EQ(rng::normal_quantile(0.5), 0.0);
  EXPECT_EQ(rng::normal_quantile(0.0), -std::numeric_limits<double>::infinity());
  EXPECT_EQ(rng::normal_quantile(1.0), std::numeric_limits<double>::infinity());
}

TEST(Random, BernoulliRate) {
  const int64_t n = 1'000'000;
  std::vector<uint8_t> b(n);
  for (const double p : {0.0, 1e-3, 0.1, 0.5, 0.9, 1.0}) {
    fill_bernoulli(b.data(), n, 3, 0, p);
    int64_t ones = 0;
    for (const uint8_t x : b) {
      ASSERT_LE(x, 1);
      ones += x;
    }
    if (p == 0.0) EXPECT_EQ(ones, 0);
    else if (p == 1.0) EXPECT_EQ(ones, n);
    else EXPECT_NEAR(double(ones) / n, p, 6 * std::sqrt(p * (1 - p) / n)) << p;
  }
}

TEST(Random, RandintCoversRangeUniformly) {
  const int64_t n = 1'000'000;
  std::vector<int64_t> r(n);
  fill_randint(r.data(), n, 9, 0, -3, 7);
  std::vector<int64_t> count(10, 0);
  for (const int64_t x : r) {
    ASSERT_GE(x, -3);
    ASSERT_LT(x, 7);
    count[size_t(x + 3)]++;
  }
  for (const int64_t c : count) EXPECT_NEAR(double(c) / n, 0.1, 6 * std::sqrt(0.09 / n));
  // Single-value range, and the full int64 range (hi - lo does not fit in int64).
  fill_randint(r.data(), 100, 9, 0, 5, 6);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(r[i], 5);
  const int64_t lo = std::numeric_limits<int64_t>::min(), hi = std::numeric_limits<int64_t>::max();
  fill_randint(r.data(), n, 9, 0, lo, hi);
  int64_t negative = 0;
  for (int64_t i = 0; i < n; ++i) negative += r[i] < 0;
  EXPECT_NEAR(double(negative) / n, 0.5, 6 * std::sqrt(0.25 / n));
}

TEST(Random, PermutationIsAPermutationAndUniform) {
  for (const int64_t n : {0, 1, 2, 17, 100'000}) {
    std::vector<int64_t> p(static_cast<size_t>(n));
    permutation(p.data(), n, 77, 5);
    std::vector<int64_t> sorted = p;
    std::sort(sorted.begin(), sorted.end());
    std::vector<int64_t> iota(static_cast<size_t>(n));
    std::iota(iota.begin(), iota.end(), 0);
    EXPECT_EQ(sorted, iota) << n;
  }
  // Where index 0 lands in a permutation of 5, over many offsets: uniform over the 5 positions.
  const int trials = 50'000;
  std::vector<int64_t> where(5, 0);
  int64_t p[5];
  for (int t = 0; t < trials; ++t) {
    permutation(p, 5, 123, uint64_t(t) * philox_blocks_used<int64_t>(5));
    where[size_t(std::find(p, p + 5, 0) - p)]++;
  }
  for (const int64_t c : where) EXPECT_NEAR(double(c) / trials, 0.2, 6 * std::sqrt(0.16 / trials));
}

// ---- generator ----

TEST(Random, GeneratorAdvanceAndRestore) {
  Generator g(1234);
  EXPECT_EQ(g.seed(), 1234u);
  EXPECT_EQ(g.offset(), 0u);
  EXPECT_EQ(g.advance(philox_blocks_used<float>(10)), 0u);
  EXPECT_EQ(g.advance(5), 3u);
  EXPECT_EQ(g.offset(), 8u);
  const GeneratorState saved = g.state();

  std::vector<float> a(100), b(100);
  fill_normal(a.data(), 100, g.seed(), g.advance(philox_blocks_used<float>(100)), 0.f, 1.f);
  Generator restored(saved);
  EXPECT_EQ(restored.state(), saved);
  fill_normal(b.data(), 100, restored.seed(), restored.advance(philox_blocks_used<float>(100)), 0.f, 1.f);
  EXPECT_EQ(a, b);
  EXPECT_EQ(restored.state(), g.state());

  Generator other;
  other.set_state(saved);
  EXPECT_EQ(other.offset(), 8u);

  Generator full(1, std::numeric_limits<uint64_t>::max() - 2);
  EXPECT_EQ(full.advance(2), std::numeric_limits<uint64_t>::max() - 2);
  EXPECT_THROW(full.advance(2), Error);
}

// ---- argument checks ----

TEST(Random, RejectsBadArguments) {
  float f[4];
  double d[4];
  int64_t i[4];
  uint8_t b[4];
  const float inf = std::numeric_limits<float>::infinity();
  EXPECT_THROW(fill_uniform(f, -1, 0, 0, 0.f, 1.f), Error);
  EXPECT_THROW(fill_uniform(static_cast<float*>(nullptr), 4, 0, 0, 0.f, 1.f), Error);
  EXPECT_NO_THROW(fill_uniform(static_cast<float*>(nullptr), 0, 0, 0, 0.f, 1.f));
  EXPECT_THROW(fill_uniform(f, 4, 0, 0, 1.f, 0.f), Error);
  EXPECT_THROW(fill_uniform(f, 4, 0, 0, -3e38f, 3e38f), Error);  // hi - lo overflows
  EXPECT_THROW(fill_uniform(d, 4, 0, 0, 0., double(inf)), Error);
  EXPECT_THROW(fill_normal(f, 4, 0, 0, 0.f, -1.f), Error);
  EXPECT_THROW(fill_normal(d, 4, 0, 0, std::nan(""), 1.), Error);
  EXPECT_THROW(fill_truncated_normal(f, 4, 0, 0, 0.f, 0.f, -1.f, 1.f), Error);
  EXPECT_THROW(fill_truncated_normal(d, 4, 0, 0, 0., 1., 1., 1.), Error);
  EXPECT_THROW(fill_truncated_normal(d, 4, 0, 0, 0., 1., 1., -1.), Error);
  EXPECT_THROW(fill_randint(i, 4, 0, 0, 3, 3), Error);
  EXPECT_THROW(fill_bernoulli(b, 4, 0, 0, 1.5), Error);
  EXPECT_THROW(fill_bernoulli(b, 4, 0, 0, std::nan("")), Error);
  EXPECT_THROW(permutation(i, -2, 0, 0), Error);
  // The last block of the counter space is usable; one past it is not.
  EXPECT_NO_THROW(fill_uniform(f, 4, 0, std::numeric_limits<uint64_t>::max(), 0.f, 1.f));
  EXPECT_THROW(fill_uniform(f, 5, 0, std::numeric_limits<uint64_t>::max(), 0.f, 1.f), Error);
}

}  // namespace
}  // namespace lmforge
