// Seeded random fills on raw buffers, and the generator state that hands out offsets.
//
// Every result is a pure function of (seed, offset, element index): no thread count, chunking or
// call order changes a bit, and the CUDA twin computes the same numbers from the same functions
// (the `rng::` element maps below are LF_HOST_DEVICE and shared).
//
// ---- Stream contract (a change here changes every seeded result the project has produced) ----
//
//   key(seed)          = { lo32(seed), hi32(seed) }
//   block(seed, b)     = philox4x32_10({ lo32(b), hi32(b), 0, 0 }, key(seed))  -> words w[0..3]
//   A request (seed, offset, n) reads blocks offset, offset+1, ..., offset + philox_blocks_used<T>(n)
//   - 1 and no others, so the caller advances its offset by philox_blocks_used<T>(n) (T = the
//   output element type) before the next request. Block indices are 64-bit; a request that would
//   run past block 2^64 - 1 is refused.
//
//   This is cuRAND's Philox4_32_10 stream with subsequence 0: word k of block b is the value
//   curand() returns after curand_init(seed, 0, 4*b + k, &state).
//
//   32-bit elements: float outputs and bernoulli. Element i reads word i%4 of block offset + i/4.
//   64-bit elements: double and int64 outputs. Element i reads block offset + i/2 and the 64-bit
//     x = w[2j] | w[2j+1] << 32, j = i%2.
//   Normals come in Box-Muller pairs (2k, 2k+1) that read the same block:
//     f32: element i, block offset + i/4, j = i%4: radius word w[j & ~1], angle word w[j | 1];
//     f64: element i, block offset + i/2: radius x = w0 | w1 << 32, angle x = w2 | w3 << 32;
//     the even element of a pair takes the cosine, the odd one the sine.
//
//   Per-element maps (rng:: below; w = 32-bit word, x = 64-bit value):
//     uniform f32   lo + (hi-lo) * u,  u = (w >> 8) * 2^-24 in [0, 1)     one fmaf; a result that
//     uniform f64   lo + (hi-lo) * u,  u = (x >> 11) * 2^-53 in [0, 1)    rounds up to hi becomes
//                                                                          the value just below hi
//     normal        Box-Muller in f64: r = sqrt(-2 ln u1), u1 in (0, 1] = (w + 1) 2^-32 (f32) or
//                   ((x >> 11) + 1) 2^-53 (f64); t = 2 pi u2, u2 = w 2^-32 or (x >> 11) 2^-53;
//                   value = fma(std, r * {cos t | sin t}, mean) in f64, rounded once to the output
//                   type. Largest |z|: 6.66 (f32), 8.57 (f64).
//     trunc normal  inverse CDF in f64: u = (w + 1/2) 2^-32 (f32) or ((x >> 12) + 1/2) 2^-52 (f64),
//                   z = Phi^-1(Phi(alpha) + u (Phi(beta) - Phi(alpha))), alpha/beta = the bounds in
//                   standard units; when alpha > 0 the interval is mirrored to (-beta, -alpha) and
//                   z negated, so the CDF is always evaluated where it keeps its precision. Value =
//                   fma(std, z, mean), clamped to [a, b]. The per-request constants
//                   (truncated_normal_setup) are computed once on the host and passed to kernels.
//                   Accurate for bounds within about 37 std of the mean (beyond that Phi underflows
//                   and the result sits on a bound).
//     randint       lo + floor(x * (hi - lo) / 2^64) (multiply-shift on all 64 bits): value k is
//                   drawn with probability within (hi-lo) / 2^64 of uniform (< 2^-32 relative for
//                   ranges up to 2^32); no rejection, so bit-identical on every backend.
//     bernoulli     1 if w < floor(p * 2^32), else 0: P(1) = floor(p 2^32) / 2^32 (resolution 2^-32;
//                   p = 1 gives all ones, p = 0 all zeros).
//     permutation   key_i = x of element i; out = the indices 0..n-1 sorted by (key_i, i): out[k] is
//                   the index of rank k. (A stable radix sort of (key, iota) gives the same.)
//
// Bit-exactness across backends: uniform, randint, bernoulli and permutation use only integer
// arithmetic and correctly rounded IEEE operations (explicit fma, never a contractible a*b+c), so CPU
// and CUDA agree bit for bit. Normal goes through log/cos/sin, and the truncated normal's quantile
// through log in its tails (p < 0.075 or p > 0.925); glibc and CUDA round those differently by an
// ulp of f64 or so. Measured on an H200 against these CPU fills (4M elements each): f32 normal and
// truncated normal 0 values differ; f64 normal 11% differ, by at most 9e-16 * std; f64 truncated
// normal (same host-computed setup) about 1 in 1e5 differ, in the last bits.
//
// Continuation: two requests (n1 elements at offset o, then n2 at o + philox_blocks_used<T>(n1))
// produce exactly the elements of one request of n1 + n2 at o when n1 is a multiple of the
// elements per block (4 for 32-bit elements, 2 for 64-bit); otherwise the second request starts on
// a fresh block. Permutation is a whole-request operation and never continues.
#pragma once

#include <cmath>
#include <cstdint>

#include "core/dtype.h"
#include "core/philox.h"

namespace lmforge {

// ---- Element maps shared with the CUDA twin ----
namespace rng {

inline LF_HOST_DEVICE uint2x32 philox_key(uint64_t seed) {
  return uint2x32{{uint32_t(seed), uint32_t(seed >> 32)}};
}

// The four words of block `block` of the stream `seed`.
inline LF_HOST_DEVICE uint4x32 philox_block(uint64_t seed, uint64_t block) {
  return philox4x32_10(uint4x32{{uint32_t(block), uint32_t(block >> 32), 0u, 0u}}, philox_key(seed));
}

inline LF_HOST_DEVICE uint64_t join64(uint32_t lo, uint32_t hi) { return uint64_t(lo) | (uint64_t(hi) << 32); }

inline constexpr double kTwoPow32Inv = 1.0 / 4294967296.0;          // 2^-32
inline constexpr double kTwoPow52Inv = 1.0 / 4503599627370496.0;    // 2^-52
inline constexpr double kTwoPow53Inv = 1.0 / 9007199254740992.0;    // 2^-53
inline constexpr float kTwoPow24InvF = 1.0f / 16777216.0f;          // 2^-24
inline constexpr double kTwoPi = 6.283185307179586476925286766559;

inline LF_HOST_DEVICE float uniform_f32(uint32_t w, float lo, float hi) {
  const float u = float(w >> 8) * kTwoPow24InvF;  // exact
  const float v = ::fmaf(hi - lo, u, lo);
  return v < hi ? v : ::nextafterf(hi, lo);
}

inline LF_HOST_DEVICE double uniform_f64(uint64_t x, double lo, double hi) {
  const double u = double(x >> 11) * kTwoPow53Inv;  // exact
  const double v = ::fma(hi - lo, u, lo);
  return v < hi ? v : ::nextafter(hi, lo);
}

// Box-Muller, computed in f64. Returns the cosine and sine normals of one pair as standard
// normals (mean 0, std 1); callers apply mean + std * z in f64 and round once.
inline LF_HOST_DEVICE void box_muller(double u_radius, double u_angle, double* z_cos, double* z_sin) {
  const double r = ::sqrt(-2.0 * ::log(u_radius));
  const double t = kTwoPi * u_angle;
  *z_cos = r * ::cos(t);
  *z_sin = r * ::sin(t);
}

inline LF_HOST_DEVICE double radius_uniform_32(uint32_t w) { return (double(w) + 1.0) * kTwoPow32Inv; }
inline LF_HOST_DEVICE double angle_uniform_32(uint32_t w) { return double(w) * kTwoPow32Inv; }
inline LF_HOST_DEVICE double radius_uniform_64(uint64_t x) { return (double(x >> 11) + 1.0) * kTwoPow53Inv; }
inline LF_HOST_DEVICE double angle_uniform_64(uint64_t x) { return double(x >> 11) * kTwoPow53Inv; }
// Open-interval uniforms for the inverse CDF: never 0 or 1.
inline LF_HOST_DEVICE double open_uniform_32(uint32_t w) { return (double(w) + 0.5) * kTwoPow32Inv; }
inline LF_HOST_DEVICE double open_uniform_64(uint64_t x) { return (double(x >> 12) + 0.5) * kTwoPow52Inv; }

// Standard normal CDF, accurate in both tails (erfc keeps relative precision for small results).
inline LF_HOST_DEVICE double normal_cdf(double x) { return 0.5 * ::erfc(-x * 0.70710678118654752440); }

// Math calls are written ::log, ::fma, ... because namespace lmforge also declares Tensor ops
// named log, sqrt, abs, ... which would otherwise hide the C functions here.

// Evaluates c[0] x^(N-1) + ... + c[N-1] by Horner's rule with explicit fma, so the CPU and the
// CUDA compiler evaluate it identically (neither may contract or reorder it differently).
template <int N>
inline LF_HOST_DEVICE double horner_fma(double x, const double (&c)[N]) {
  double p = c[0];
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int i = 1; i < N; ++i) p = ::fma(p, x, c[i]);
  return p;
}

// Standard normal quantile Phi^-1(p): Wichura's AS 241 (PPND16, Applied Statistics 37:477, 1988),
// relative error about 1e-16 on (0, 1); -inf / +inf at p <= 0 / p >= 1, NaN for NaN. The central
// branch (0.075 <= p <= 0.925) uses only fma and division, so it is bit-identical on CPU and GPU;
// the tails also take a log.
inline LF_HOST_DEVICE double normal_quantile(double p) {
  if (!(p == p)) return p;
  if (p <= 0.0) return -HUGE_VAL;
  if (p >= 1.0) return HUGE_VAL;
  const double q = p - 0.5;
  if (::fabs(q) <= 0.425) {
    constexpr double a[8] = {2509.0809287301226727, 33430.575583588128105, 67265.770927008700853,
                             45921.953931549871457, 13731.693765509461125, 1971.5909503065514427,
                             133.14166789178437745, 3.387132872796366608};
    constexpr double b[8] = {5226.495278852854561, 28729.085735721942674, 39307.89580009271061,
                             21213.794301586595867, 5394.1960214247511077, 687.1870074920579083,
                             42.313330701600911252, 1.0};
    const double r = ::fma(-q, q, 0.180625);
    return q * horner_fma(r, a) / horner_fma(r, b);
  }
  double r = ::sqrt(-::log(q < 0.0 ? p : 1.0 - p));
  double val;
  if (r <= 5.0) {
    constexpr double c[8] = {7.7454501427834140764e-4, 0.0227238449892691845833, 0.24178072517745061177,
                             1.27045825245236838258, 3.64784832476320460504, 5.7694972214606914055,
                             4.6303378461565452959, 1.42343711074968357734};
    constexpr double d[8] = {1.05075007164441684324e-9, 5.475938084995344946e-4, 0.0151986665636164571966,
                             0.14810397642748007459, 0.68976733498510000455, 1.6763848301838038494,
                             2.05319162663775882187, 1.0};
    r -= 1.6;
    val = horner_fma(r, c) / horner_fma(r, d);
  } else {
    constexpr double e[8] = {2.01033439929228813265e-7, 2.71155556874348757815e-5, 0.0012426609473880784386,
                             0.026532189526576123093, 0.29656057182850489123, 1.7848265399172913358,
                             5.4637849111641143699, 6.6579046435011037772};
    constexpr double f[8] = {2.04426310338993978564e-15, 1.4215117583164458887e-7, 1.8463183175100546818e-5,
                             7.868691311456132591e-4, 0.0148753612908506148525, 0.13692988092273580531,
                             0.59983220655588793769, 1.0};
    r -= 5.0;
    val = horner_fma(r, e) / horner_fma(r, f);
  }
  return q < 0.0 ? -val : val;
}

// Per-request constants of the truncated normal on [a, b] (absolute bounds, like
// torch.nn.init.trunc_normal_). Computed once per request, on the host, and handed to kernels as
// is: erfc's last bit differs between math libraries (and between a runtime call and a compiler's
// constant folding), so recomputing it on the device would shift every value by an ulp or two.
struct TruncatedNormal {
  double mean, stddev, a, b;
  double cdf_lo, cdf_span;  // Phi at the lower bound of the (possibly mirrored) interval, and the width
  bool mirrored;            // both bounds above the mean: sample (-beta, -alpha) and negate
};

inline LF_HOST_DEVICE TruncatedNormal truncated_normal_setup(double mean, double stddev, double a, double b) {
  double alpha = (a - mean) / stddev, beta = (b - mean) / stddev;
  const bool mirrored = alpha > 0.0;
  if (mirrored) {
    const double t = alpha;
    alpha = -beta;
    beta = -t;
  }
  const double lo = normal_cdf(alpha);
  return TruncatedNormal{mean, stddev, a, b, lo, normal_cdf(beta) - lo, mirrored};
}

inline LF_HOST_DEVICE double truncated_normal_value(double u, const TruncatedNormal& t) {
  double z = normal_quantile(::fma(u, t.cdf_span, t.cdf_lo));
  if (t.mirrored) z = -z;
  const double v = ::fma(t.stddev, z, t.mean);
  return v < t.a ? t.a : (v > t.b ? t.b : v);
}

inline LF_HOST_DEVICE uint64_t mulhi64(uint64_t a, uint64_t b) {
#if defined(__CUDA_ARCH__)
  return __umul64hi(a, b);
#else
  __extension__ typedef unsigned __int128 u128;
  return uint64_t((u128(a) * b) >> 64);
#endif
}

// range = hi - lo as an unsigned 64-bit number (hi > lo).
inline LF_HOST_DEVICE int64_t randint_value(uint64_t x, int64_t lo, uint64_t range) {
  return int64_t(uint64_t(lo) + mulhi64(x, range));
}

// threshold = floor(p * 2^32), in [0, 2^32].
inline LF_HOST_DEVICE uint64_t bernoulli_threshold(double p) {
  return p >= 1.0 ? (uint64_t(1) << 32) : uint64_t(p * 4294967296.0);
}
inline LF_HOST_DEVICE uint8_t bernoulli_value(uint32_t w, uint64_t threshold) { return uint64_t(w) < threshold ? 1 : 0; }

}  // namespace rng

// ---- Offsets ----

// Philox blocks a request of n elements with output element type T reads; advance the offset by
// this much before the next request. 8-byte outputs (double, int64_t: fill_*<double>, fill_randint,
// permutation) take 64 bits per element, 2 elements per block; the rest (float, uint8_t: fill_*<float>,
// fill_bernoulli) take 32 bits per element, 4 per block.
template <class T>
constexpr uint64_t philox_blocks_used(int64_t n) {
  constexpr uint64_t per_block = sizeof(T) == 8 ? 2 : 4;
  return n <= 0 ? 0 : (uint64_t(n) + per_block - 1) / per_block;
}

// ---- Fills (CPU, OpenMP over blocks) ----
// Each writes out[0..n); n >= 0; a null `out` is allowed only for n == 0.

// Uniform on [lo, hi); lo <= hi, both finite, hi - lo finite (lo == hi gives lo).
void fill_uniform(float* out, int64_t n, uint64_t seed, uint64_t offset, float lo, float hi);
void fill_uniform(double* out, int64_t n, uint64_t seed, uint64_t offset, double lo, double hi);

// Normal(mean, stddev^2); stddev >= 0, both finite.
void fill_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev);
void fill_normal(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double stddev);

// Normal(mean, stddev^2) conditioned on [a, b] (absolute values, as torch.nn.init.trunc_normal_);
// stddev > 0, a < b, all finite. Inverse CDF: one uniform per element, no rejection loop.
void fill_truncated_normal(float* out, int64_t n, uint64_t seed, uint64_t offset, float mean, float stddev, float a,
                           float b);
void fill_truncated_normal(double* out, int64_t n, uint64_t seed, uint64_t offset, double mean, double stddev, double a,
                           double b);

// Integers uniform on [lo, hi); lo < hi (any int64 range, including the full one).
void fill_randint(int64_t* out, int64_t n, uint64_t seed, uint64_t offset, int64_t lo, int64_t hi);

// 1 with probability p, else 0; 0 <= p <= 1.
void fill_bernoulli(uint8_t* out, int64_t n, uint64_t seed, uint64_t offset, double p);

// A uniformly random permutation of 0..n-1 (see the contract above). Uses 16 bytes of scratch per
// element.
void permutation(int64_t* out, int64_t n, uint64_t seed, uint64_t offset);

// ---- Generator: the one seed of a run plus the next unused block ----
//
// Typical use:  const uint64_t off = gen.advance(philox_blocks_used<float>(n));
//               fill_normal(w, n, gen.seed(), off, 0.0f, 0.02f);
// The state (seed, offset) is all there is: saving it in a checkpoint and restoring it continues
// every stream exactly. Not thread-safe: one owner hands out offsets.
struct GeneratorState {
  uint64_t seed = 0;
  uint64_t offset = 0;
  bool operator==(const GeneratorState&) const = default;
};

class Generator {
 public:
  explicit Generator(uint64_t seed = 0, uint64_t offset = 0) : state_{seed, offset} {}
  explicit Generator(const GeneratorState& state) : state_(state) {}

  uint64_t seed() const { return state_.seed; }
  uint64_t offset() const { return state_.offset; }

  // Reserves `blocks` blocks and returns the offset where they start (the old offset).
  uint64_t advance(uint64_t blocks);

  GeneratorState state() const { return state_; }
  void set_state(const GeneratorState& state) { state_ = state; }

 private:
  GeneratorState state_;
};

}  // namespace lmforge
