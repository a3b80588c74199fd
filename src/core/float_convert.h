// Conversions between f32 and the low-precision storage types of core/dtype.h (bf16, f16, fp8
// e4m3, fp8 e5m2). Header-only and `LF_HOST_DEVICE`: the CPU backend and the CUDA kernels include
// the same code, so both round identically. Everything works on the integer bit patterns (no
// floating-point arithmetic on the rounding path), so flush-to-zero modes and FMA contraction on
// either side cannot change a result.
//
// Formats (S = sign, E = exponent bits, M = mantissa bits):
//   bf16  S.8.7   bias 127  IEEE-like: subnormals, ±Inf, NaN         max 3.3895314e38
//   f16   S.5.10  bias 15   IEEE binary16                             max 65504
//   e4m3  S.4.3   bias 7    OCP FP8 "E4M3FN": no Inf; NaN = S.1111.111 max 448
//   e5m2  S.5.2   bias 15   OCP FP8 E5M2: IEEE-like, ±Inf = S.11111.00 max 57344
//
// Narrowing (float_to_*_bits), all formats:
//   * round to nearest, ties to even, subnormal results included (values at or below half the
//     smallest subnormal round to ±0, exactly half rounds to even = ±0);
//   * the sign of zero is kept;
//   * NaN -> the format's all-ones pattern with the input's sign: bf16/f16 0x7FFF / 0xFFFF, fp8
//     0x7F / 0xFF (a quiet NaN in every format). This is CUDA's canonical NaN (its conversions
//     return 0x7FFF / 0x7F for every NaN); we keep the sign, so a negative NaN differs from CUDA's
//     result in the sign bit only. Compare NaN by class, never by bits, across backends.
//   * overflow, bf16 and f16 (IEEE): a finite value that rounds, with unbounded exponent, to more
//     than the largest finite value (|x| >= max + half an ulp of max) becomes ±Inf; ±Inf stays ±Inf.
//   * overflow, e4m3 AND e5m2: SATURATE to ±max (448 / 57344), and ±Inf -> ±max too. This is
//     exactly CUDA's `__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3 / __NV_E5M2)` and the
//     hardware `cvt.rn.satfinite.{e4m3,e5m2}x2.f32` (sm_89+), the only f32->fp8 instruction the
//     GPU has, so the CUDA backend may use either the intrinsic or these functions. fp8 tensors are
//     used with a scale factor, where a saturated value is a smaller error than an Inf that poisons
//     the whole reduction. Consequence: e5m2 +Inf (0x7C) decodes to +Inf but re-encodes as 57344.
//
// Widening (*_bits_to_float) is exact for every finite and infinite pattern (f32 holds every value
// of these formats, subnormals included); a NaN pattern decodes to a quiet f32 NaN with the same
// sign (and the payload's leading bits).
#pragma once

#include <cstdint>

#include "core/dtype.h"

namespace lmforge {

namespace float_convert_detail {

inline LF_HOST_DEVICE uint32_t float_bits(float x) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(x);
#else
  return __builtin_bit_cast(uint32_t, x);
#endif
}

inline LF_HOST_DEVICE float bits_float(uint32_t u) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(u);
#else
  return __builtin_bit_cast(float, u);
#endif
}

// f32 -> a format with kExp exponent bits and kMan mantissa bits (bias 2^(kExp-1) - 1) whose
// smallest subnormal is an f32 normal number: f16, e4m3, e5m2 (not bf16), so every input that does
// not round to zero has the implicit leading bit. kOverflowCode is the magnitude pattern that every result at or above it is
// clamped to: the Inf pattern for IEEE overflow, the max-finite pattern for saturation.
template <int kExp, int kMan, uint32_t kOverflowCode>
inline LF_HOST_DEVICE uint32_t narrow_from_float(float x) {
  constexpr int kBias = (1 << (kExp - 1)) - 1;
  constexpr uint32_t kSignBit = 1u << (kExp + kMan);
  constexpr uint32_t kNanCode = kSignBit - 1;  // all ones below the sign
  constexpr int kShift = 23 - kMan;            // f32 mantissa bits dropped for a normal result
  // Smallest normal of the target, as f32 bits: 2^(1 - bias).
  constexpr uint32_t kMinNormalBits = uint32_t(127 + 1 - kBias) << 23;
  // Half the smallest subnormal, 2^(1 - bias - kMan - 1): at or below it the result is ±0.
  constexpr uint32_t kHalfMinSubnormalBits = uint32_t(127 - kBias - kMan) << 23;

  const uint32_t u = float_bits(x);
  const uint32_t sign = (u >> 31) ? kSignBit : 0u;
  const uint32_t a = u & 0x7FFFFFFFu;
  if (a > 0x7F800000u) return sign | kNanCode;

  uint32_t r;
  if (a >= kMinNormalBits) {
    // Rebias the exponent in place, then round the dropped bits to nearest even; a carry out of
    // the mantissa correctly bumps the exponent. Inf and huge values land above kOverflowCode.
    const uint32_t rebased = a - (uint32_t(127 - kBias) << 23);
    const uint32_t lsb = (rebased >> kShift) & 1u;
    r = (rebased + ((1u << (kShift - 1)) - 1u) + lsb) >> kShift;
    if (r > kOverflowCode) r = kOverflowCode;
  } else if (a <= kHalfMinSubnormalBits) {
    r = 0;
  } else {
    // Subnormal result: the value in units of the smallest subnormal is m * 2^(e - 151 + bias +
    // kMan), with m the 24-bit significand. The bounds above keep the shift within [kShift+1, 24].
    const uint32_t e = a >> 23;
    const uint32_t m = (a & 0x7FFFFFu) | 0x800000u;
    const uint32_t shift = uint32_t(151 - kBias - kMan) - e;
    const uint32_t half = 1u << (shift - 1);
    const uint32_t rem = m & ((1u << shift) - 1u);
    r = m >> shift;
    if (rem > half || (rem == half && (r & 1u))) ++r;  // may carry into the smallest normal: fine
  }
  return sign | r;
}

// A format with kExp exponent bits and kMan mantissa bits -> f32 (exact). kIeeeSpecials: the top
// exponent holds Inf (mantissa 0) and NaN (otherwise); else (e4m3) only the all-ones pattern is NaN
// and the rest of the top exponent holds ordinary values.
template <int kExp, int kMan, bool kIeeeSpecials>
inline LF_HOST_DEVICE float widen_to_float(uint32_t b) {
  constexpr int kBias = (1 << (kExp - 1)) - 1;
  constexpr uint32_t kExpMax = (1u << kExp) - 1u;
  constexpr uint32_t kManMask = (1u << kMan) - 1u;
  const uint32_t sign = ((b >> (kExp + kMan)) & 1u) << 31;
  const uint32_t e = (b >> kMan) & kExpMax;
  const uint32_t m = b & kManMask;
  if (e == kExpMax && (kIeeeSpecials || m == kManMask)) {
    if (kIeeeSpecials && m == 0) return bits_float(sign | 0x7F800000u);
    return bits_float(sign | 0x7FC00000u | (m << (23 - kMan)));
  }
  if (e == 0) {
    // ±0 or subnormal: m * 2^(1 - bias - kMan). Both factors are exact f32 values and the product
    // is an f32 normal number, so the multiplication is exact (also under flush-to-zero).
    const float unit = bits_float(uint32_t(127 + 1 - kBias - kMan) << 23);
    return bits_float(sign | float_bits(float(m) * unit));
  }
  return bits_float(sign | ((e + uint32_t(127 - kBias)) << 23) | (m << (23 - kMan)));
}

}  // namespace float_convert_detail

// ---- bf16: the upper half of an f32 ----

inline LF_HOST_DEVICE uint16_t float_to_bf16_bits(float x) {
  const uint32_t u = float_convert_detail::float_bits(x);
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) return uint16_t((u >> 16 & 0x8000u) | 0x7FFFu);
  // Round to nearest even on the low 16 bits. Same exponent range as f32, so subnormals need no
  // special case and a carry out of the largest finite value gives exactly Inf (0x7F80).
  return uint16_t((u + 0x7FFFu + ((u >> 16) & 1u)) >> 16);
}

inline LF_HOST_DEVICE float bf16_bits_to_float(uint16_t b) {
  uint32_t u = uint32_t(b) << 16;
  if ((u & 0x7FFFFFFFu) > 0x7F800000u) u |= 0x00400000u;  // NaN: make it quiet
  return float_convert_detail::bits_float(u);
}

// ---- f16 (IEEE binary16): overflow to Inf ----

inline LF_HOST_DEVICE uint16_t float_to_f16_bits(float x) {
  return uint16_t(float_convert_detail::narrow_from_float<5, 10, 0x7C00u>(x));
}

inline LF_HOST_DEVICE float f16_bits_to_float(uint16_t b) {
  return float_convert_detail::widen_to_float<5, 10, true>(b);
}

// ---- fp8 e4m3 (E4M3FN): saturating ----

inline LF_HOST_DEVICE uint8_t float_to_e4m3_bits(float x) {
  return uint8_t(float_convert_detail::narrow_from_float<4, 3, 0x7Eu>(x));
}

inline LF_HOST_DEVICE float e4m3_bits_to_float(uint8_t b) {
  return float_convert_detail::widen_to_float<4, 3, false>(b);
}

// ---- fp8 e5m2: saturating (see the header comment) ----

inline LF_HOST_DEVICE uint8_t float_to_e5m2_bits(float x) {
  return uint8_t(float_convert_detail::narrow_from_float<5, 2, 0x7Bu>(x));
}

inline LF_HOST_DEVICE float e5m2_bits_to_float(uint8_t b) {
  return float_convert_detail::widen_to_float<5, 2, true>(b);
}

// ---- typed wrappers, for code templated on the element type ----

inline LF_HOST_DEVICE float to_float(bf16 x) { return bf16_bits_to_float(x.bits); }
inline LF_HOST_DEVICE float to_float(f16 x) { return f16_bits_to_float(x.bits); }
inline LF_HOST_DEVICE float to_float(f8e4m3 x) { return e4m3_bits_to_float(x.bits); }
inline LF_HOST_DEVICE float to_float(f8e5m2 x) { return e5m2_bits_to_float(x.bits); }
inline LF_HOST_DEVICE float to_float(float x) { return x; }

template <class T> LF_HOST_DEVICE T from_float(float x);
template <> inline LF_HOST_DEVICE bf16 from_float<bf16>(float x) { return bf16{float_to_bf16_bits(x)}; }
template <> inline LF_HOST_DEVICE f16 from_float<f16>(float x) { return f16{float_to_f16_bits(x)}; }
template <> inline LF_HOST_DEVICE f8e4m3 from_float<f8e4m3>(float x) { return f8e4m3{float_to_e4m3_bits(x)}; }
template <> inline LF_HOST_DEVICE f8e5m2 from_float<f8e5m2>(float x) { return f8e5m2{float_to_e5m2_bits(x)}; }
template <> inline LF_HOST_DEVICE float from_float<float>(float x) { return x; }
template <> inline LF_HOST_DEVICE double from_float<double>(float x) { return double(x); }

}  // namespace lmforge
