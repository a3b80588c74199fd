// core/float_convert.h against references written separately from it:
//  * a decoder from the format definition, sign * 2^(e - bias) * (1 + m / 2^M) with std::ldexp in
//    f64, over every bit pattern of every format;
//  * an encoder that searches the sorted table of all representable values for the nearest one
//    (ties to the even pattern), with the overflow rule of the format, over random f32 values;
//  * exact midpoints between every pair of neighbouring values and their f32 neighbours;
//  * in CUDA builds, CUDA's own host-side conversions (cuda_fp16.h, cuda_bf16.h, cuda_fp8.h).
#include "core/float_convert.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <vector>

#if defined(LMFORGE_WITH_CUDA) && __has_include(<cuda_fp8.h>)
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_fp8.h>
#define LMFORGE_TEST_CUDA_HOST_CONVERSIONS 1
#endif

namespace lmforge {
namespace {

struct Format {
  const char* name;
  int exp_bits, man_bits;
  bool ieee_specials;  // top exponent = Inf / NaN; else only the all-ones pattern is NaN (e4m3)
  bool saturates;      // overflow and Inf go to the largest finite value
  uint32_t (*encode)(float);
  float (*decode)(uint32_t);

  int total_bits() const { return 1 + exp_bits + man_bits; }
  uint32_t n_patterns() const { return 1u << total_bits(); }
  uint32_t sign_bit() const { return 1u << (exp_bits + man_bits); }
  int bias() const { return (1 << (exp_bits - 1)) - 1; }
  uint32_t nan_pattern() const { return sign_bit() - 1; }
  uint32_t inf_pattern() const { return ((1u << exp_bits) - 1) << man_bits; }  // IEEE formats only
  uint32_t max_pattern() const { return ieee_specials ? inf_pattern() - 1 : nan_pattern() - 1; }
};

const Format kFormats[] = {
    {"bf16", 8, 7, true, false, [](float x) -> uint32_t { return float_to_bf16_bits(x); },
     [](uint32_t b) { return bf16_bits_to_float(uint16_t(b)); }},
    {"f16", 5, 10, true, false, [](float x) -> uint32_t { return float_to_f16_bits(x); },
     [](uint32_t b) { return f16_bits_to_float(uint16_t(b)); }},
    {"e4m3", 4, 3, false, true, [](float x) -> uint32_t { return float_to_e4m3_bits(x); },
     [](uint32_t b) { return e4m3_bits_to_float(uint8_t(b)); }},
    {"e5m2", 5, 2, true, true, [](float x) -> uint32_t { return float_to_e5m2_bits(x); },
     [](uint32_t b) { return e5m2_bits_to_float(uint8_t(b)); }},
};

// ---- reference decoder, straight from the format definition ----
double ref_decode(const Format& f, uint32_t bits) {
  const bool neg = (bits & f.sign_bit()) != 0;
  const uint32_t e = (bits >> f.man_bits) & ((1u << f.exp_bits) - 1);
  const uint32_t m = bits & ((1u << f.man_bits) - 1);
  const uint32_t e_max = (1u << f.exp_bits) - 1;
  double mag;
  if (f.ieee_specials && e == e_max) {
    if (m != 0) return std::numeric_limits<double>::quiet_NaN();
    mag = std::numeric_limits<double>::infinity();
  } else if (!f.ieee_specials && e == e_max && m == (1u << f.man_bits) - 1) {
    return std::numeric_limits<double>::quiet_NaN();
  } else if (e == 0) {
    mag = std::ldexp(double(m), 1 - f.bias() - f.man_bits);  // subnormal: 0.m * 2^(1 - bias)
  } else {
    mag = std::ldexp(1.0 + std::ldexp(double(m), -f.man_bits), int(e) - f.bias());
  }
  return neg ? -mag : mag;
}

bool ref_is_nan(const Format& f, uint32_t bits) { return std::isnan(ref_decode(f, bits)); }

uint32_t float_bits(float x) { return std::bit_cast<uint32_t>(x); }

// ---- reference encoder: nearest entry of the value table, ties to the even pattern ----
struct RefEncoder {
  const Format* f;
  std::vector<std::pair<double, uint32_t>> table;  // non-negative finite values, ascending

  explicit RefEncoder(const Format& fmt) : f(&fmt) {
    for (uint32_t b = 0; b < f->sign_bit(); ++b) {
      const double v = ref_decode(*f, b);
      if (std::isfinite(v)) table.push_back({v, b});
    }
    std::sort(table.begin(), table.end());
    if (!f->saturates) {
      // IEEE overflow: rounding with an unbounded exponent; the first value past the largest
      // finite one (max + 1 ulp, a power of two) stands for Inf, and its pattern is even.
      const double max = table.back().first;
      const double ulp = std::ldexp(1.0, std::ilogb(max) - f->man_bits);
      table.push_back({max + ulp, f->inf_pattern()});
    }
  }

  uint32_t operator()(float x) const {
    const uint32_t sign = std::signbit(x) ? f->sign_bit() : 0u;
    if (std::isnan(x)) return sign | f->nan_pattern();
    const double a = std::fabs(double(x));
    if (f->saturates && a >= table.back().first) return sign | table.back().second;
    if (!f->saturates && a >= table.back().first) return sign | f->inf_pattern();
    auto hi = std::lower_bound(table.begin(), table.end(), std::make_pair(a, 0u));
    if (hi->first == a) return sign | hi->second;
    auto lo = hi - 1;
    const double dlo = a - lo->first, dhi = hi->first - a;
    uint32_t pick;
    if (dlo < dhi) pick = lo->second;
    else if (dhi < dlo) pick = hi->second;
    else pick = (lo->second & 1u) == 0 ? lo->second : hi->second;
    return sign | pick;
  }
};

// ---- decoding ----

TEST(FloatConvert, DecodeEveryPatternMatchesReference) {
  for (const Format& f : kFormats) {
    for (uint32_t b = 0; b < f.n_patterns(); ++b) {
      const double want = ref_decode(f, b);
      const float got = f.decode(b);
      if (std::isnan(want)) {
        ASSERT_TRUE(std::isnan(got)) << f.name << " pattern " << b;
        ASSERT_EQ(std::signbit(got), (b & f.sign_bit()) != 0) << f.name << " NaN sign, pattern " << b;
        ASSERT_NE(float_bits(got) & 0x00400000u, 0u) << f.name << " decoded NaN must be quiet, pattern " << b;
      } else {
        ASSERT_EQ(double(got), want) << f.name << " pattern " << b;
        ASSERT_EQ(std::signbit(got), (b & f.sign_bit()) != 0) << f.name << " sign (incl. -0), pattern " << b;
      }
    }
  }
}

TEST(FloatConvert, FormatLandmarks) {
  EXPECT_EQ(e4m3_bits_to_float(0x7E), 448.0f);
  EXPECT_EQ(e4m3_bits_to_float(0x01), std::ldexp(1.0f, -9));
  EXPECT_EQ(e4m3_bits_to_float(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3_bits_to_float(0x78), 256.0f);  // top exponent holds ordinary values in E4M3FN
  EXPECT_TRUE(std::isnan(e4m3_bits_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_bits_to_float(0xFF)));
  EXPECT_EQ(e5m2_bits_to_float(0x7B), 57344.0f);
  EXPECT_EQ(e5m2_bits_to_float(0x7C), std::numeric_limits<float>::infinity());
  EXPECT_EQ(e5m2_bits_to_float(0x01), std::ldexp(1.0f, -16));
  EXPECT_EQ(f16_bits_to_float(0x7BFF), 65504.0f);
  EXPECT_EQ(f16_bits_to_float(0x0001), std::ldexp(1.0f, -24));
  EXPECT_EQ(bf16_bits_to_float(0x7F7F), std::bit_cast<float>(0x7F7F0000u));
  EXPECT_EQ(bf16_bits_to_float(0x0001), std::ldexp(1.0f, -133));
  EXPECT_EQ(float_bits(f16_bits_to_float(0x8000)), 0x80000000u);
}

// ---- encoding ----

TEST(FloatConvert, EveryPatternRoundTrips) {
  for (const Format& f : kFormats) {
    for (uint32_t b = 0; b < f.n_patterns(); ++b) {
      if (ref_is_nan(f, b)) continue;
      const float v = f.decode(b);
      const uint32_t back = f.encode(v);
      if (f.saturates && std::isinf(v)) {
        // e5m2 ±Inf saturates to ±max by design (see the header).
        ASSERT_EQ(back, (b & f.sign_bit()) | f.max_pattern()) << f.name << " pattern " << b;
        continue;
      }
      ASSERT_EQ(back, b) << f.name << " pattern " << b;
      ASSERT_EQ(float_bits(f.decode(back)), float_bits(v)) << f.name << " pattern " << b;
    }
  }
}

TEST(FloatConvert, MidpointsRoundToEvenAndNeighboursToNearest) {
  for (const Format& f : kFormats) {
    // Consecutive non-negative finite patterns are consecutive values, 0 included.
    for (uint32_t p = 0; p < f.max_pattern(); ++p) {
      const double lo = ref_decode(f, p), hi = ref_decode(f, p + 1);
      const double mid = 0.5 * (lo + hi);
      const float midf = float(mid);
      ASSERT_EQ(double(midf), mid) << f.name << ": midpoint not exact in f32";
      const uint32_t even = (p & 1u) == 0 ? p : p + 1;
      const float above = std::nextafter(midf, std::numeric_limits<float>::infinity());
      const float below = std::nextafter(midf, 0.0f);
      for (const uint32_t sign : {0u, f.sign_bit()}) {
        const float s = sign ? -1.0f : 1.0f;
        ASSERT_EQ(f.encode(s * midf), sign | even) << f.name << " midpoint after pattern " << p;
        ASSERT_EQ(f.encode(s * above), sign | (p + 1)) << f.name << " just above midpoint after " << p;
        ASSERT_EQ(f.encode(s * below), sign | p) << f.name << " just below midpoint after " << p;
      }
    }
  }
}

TEST(FloatConvert, OverflowBoundary) {
  // Largest finite value, the value half an ulp above it, and its f32 neighbours.
  for (const Format& f : kFormats) {
    const double max = ref_decode(f, f.max_pattern());
    const double ulp = std::ldexp(1.0, std::ilogb(max) - f.man_bits);
    const float edge = float(max + 0.5 * ulp);
    ASSERT_EQ(double(edge), max + 0.5 * ulp);
    const float below = std::nextafter(edge, 0.0f);
    const float inf = std::numeric_limits<float>::infinity();
    const uint32_t overflow = f.saturates ? f.max_pattern() : f.inf_pattern();
    for (const uint32_t sign : {0u, f.sign_bit()}) {
      const float s = sign ? -1.0f : 1.0f;
      EXPECT_EQ(f.encode(s * float(max)), sign | f.max_pattern()) << f.name;
      EXPECT_EQ(f.encode(s * below), sign | f.max_pattern()) << f.name;
      // The midpoint ties to even: the Inf pattern is even, the max pattern odd, so IEEE formats
      // overflow here; saturating formats stay at max.
      EXPECT_EQ(f.encode(s * edge), sign | overflow) << f.name;
      EXPECT_EQ(f.encode(s * float(2 * max)), sign | overflow) << f.name;
      EXPECT_EQ(f.encode(s * std::numeric_limits<float>::max()), sign | overflow) << f.name;
      EXPECT_EQ(f.encode(s * inf), sign | overflow) << f.name;
    }
  }
  // Spelled out for the formats whose behaviour people look up.
  EXPECT_EQ(float_to_e4m3_bits(448.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3_bits(464.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3_bits(1e9f), 0x7E);
  EXPECT_EQ(float_to_e4m3_bits(-std::numeric_limits<float>::infinity()), 0xFE);
  EXPECT_EQ(float_to_e5m2_bits(61440.0f), 0x7B);
  EXPECT_EQ(float_to_e5m2_bits(std::numeric_limits<float>::infinity()), 0x7B);
  EXPECT_EQ(float_to_e5m2_bits(-std::numeric_limits<float>::infinity()), 0xFB);
  EXPECT_EQ(float_to_f16_bits(65519.996f), 0x7BFF);
  EXPECT_EQ(float_to_f16_bits(65520.0f), 0x7C00);
  EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x7F7F7FFFu)), 0x7F7F);
  EXPECT_EQ(float_to_bf16_bits(std::bit_cast<float>(0x7F7F8000u)), 0x7F80);
  EXPECT_EQ(float_to_bf16_bits(-std::numeric_limits<float>::infinity()), 0xFF80);
}

TEST(FloatConvert, NanZeroAndUnderflow) {
  const uint32_t nans[] = {0x7FC00000u, 0x7F800001u /* signalling */, 0x7FFFFFFFu, 0x7FA00000u,
                           0xFFC00000u, 0xFF800001u, 0xFFFFFFFFu};
  for (const Format& f : kFormats) {
    for (const uint32_t n : nans) {
      const uint32_t want = ((n >> 31) ? f.sign_bit() : 0u) | f.nan_pattern();
      EXPECT_EQ(f.encode(std::bit_cast<float>(n)), want) << f.name << " NaN " << std::hex << n;
      EXPECT_TRUE(std::isnan(f.decode(f.encode(std::bit_cast<float>(n))))) << f.name;
    }
    EXPECT_EQ(f.encode(0.0f), 0u) << f.name;
    EXPECT_EQ(f.encode(-0.0f), f.sign_bit()) << f.name;
    // Half the smallest subnormal ties to even (zero); anything above rounds up to it.
    const double min_sub = ref_decode(f, 1);
    const float half = float(0.5 * min_sub);
    EXPECT_EQ(f.encode(half), 0u) << f.name;
    EXPECT_EQ(f.encode(-half), f.sign_bit()) << f.name;
    EXPECT_EQ(f.encode(std::nextafter(half, 1.0f)), 1u) << f.name;
    EXPECT_EQ(f.encode(std::numeric_limits<float>::denorm_min()), 0u) << f.name;
    EXPECT_EQ(f.encode(-std::numeric_limits<float>::denorm_min()), f.sign_bit()) << f.name;
  }
  // bf16 keeps f32's subnormals: the smallest f32 subnormal is far below bf16's smallest (2^-133).
  EXPECT_EQ(float_to_bf16_bits(std::ldexp(1.0f, -133)), 0x0001);
  EXPECT_EQ(float_to_bf16_bits(std::ldexp(3.0f, -134)), 0x0002);  // 1.5 units: tie to even
  EXPECT_EQ(float_to_bf16_bits(std::ldexp(5.0f, -134)), 0x0002);  // 2.5 units: tie to even
}

TEST(FloatConvert, RandomF32MatchesSearchReference) {
  std::mt19937_64 gen(20240607);
  for (const Format& f : kFormats) {
    const RefEncoder ref(f);
    const double min_sub = ref_decode(f, 1);
    const double max = ref_decode(f, f.max_pattern());
    std::uniform_real_distribution<double> log_mag(std::log2(min_sub) - 3, std::log2(max) + 2);
    int64_t checked = 0;
    for (int i = 0; i < 1'000'000; ++i) {
      // Half uniform over all f32 bit patterns (every exponent, NaNs, Inf), half log-uniform over
      // the format's own range, where the rounding is interesting.
      float x;
      if (i % 2 == 0) {
        x = std::bit_cast<float>(uint32_t(gen()));
      } else {
        x = float(std::exp2(log_mag(gen)));
        if (gen() & 1) x = -x;
      }
      ASSERT_EQ(f.encode(x), ref(x)) << f.name << " x=" << x << " bits=0x" << std::hex << float_bits(x);
      ++checked;
    }
    EXPECT_EQ(checked, 1'000'000);
  }
}

TEST(FloatConvert, TypedWrappers) {
  EXPECT_EQ(to_float(bf16{0x3F80}), 1.0f);
  EXPECT_EQ(to_float(f16{0x3C00}), 1.0f);
  EXPECT_EQ(to_float(f8e4m3{0x38}), 1.0f);
  EXPECT_EQ(to_float(f8e5m2{0x3C}), 1.0f);
  EXPECT_EQ(from_float<bf16>(-2.0f).bits, 0xC000);
  EXPECT_EQ(from_float<f16>(-2.0f).bits, 0xC000);
  EXPECT_EQ(from_float<f8e4m3>(-2.0f).bits, 0xC0);
  EXPECT_EQ(from_float<f8e5m2>(-2.0f).bits, 0xC0);
  EXPECT_EQ(from_float<float>(0.1f), 0.1f);
  EXPECT_EQ(from_float<double>(0.1f), double(0.1f));
  EXPECT_EQ(to_float(from_float<bf16>(3.14159f)), 3.140625f);
}

#if defined(LMFORGE_TEST_CUDA_HOST_CONVERSIONS)
// CUDA's host implementations: the same bits for every non-NaN input; for NaN CUDA returns its
// canonical positive NaN and we keep the sign.
TEST(FloatConvert, MatchesCudaHostConversions) {
  std::mt19937 gen(7);
  for (int i = 0; i < 4'000'000; ++i) {
    const uint32_t u = i < 65536 ? uint32_t(i) << 16 : uint32_t(gen());
    const float x = std::bit_cast<float>(u);
    const uint32_t s = u >> 31;
    const __nv_bfloat16 b = __float2bfloat16_rn(x);
    const __half h = __float2half_rn(x);
    const uint16_t cb = std::bit_cast<uint16_t>(b), ch = std::bit_cast<uint16_t>(h);
    const uint8_t c4 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3);
    const uint8_t c5 = __nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E5M2);
    const bool nan = std::isnan(x);
    ASSERT_EQ(float_to_bf16_bits(x), nan ? uint16_t(cb | s << 15) : cb) << std::hex << u;
    ASSERT_EQ(float_to_f16_bits(x), nan ? uint16_t(ch | s << 15) : ch) << std::hex << u;
    ASSERT_EQ(float_to_e4m3_bits(x), nan ? uint8_t(c4 | s << 7) : c4) << std::hex << u;
    ASSERT_EQ(float_to_e5m2_bits(x), nan ? uint8_t(c5 | s << 7) : c5) << std::hex << u;
  }
}
#endif

}  // namespace
}  // namespace lmforge
