// Philox4x32-10, the counter-based random number generator of Salmon, Moraes, Dror and Shaw,
// "Parallel random numbers: as easy as 1, 2, 3" (SC 2011), as Random123 and cuRAND define it:
// a keyed bijection of a 128-bit counter. The same (counter, key) gives the same four words on
// the CPU and in a CUDA kernel, so any element of a random stream can be computed on its own,
// in any order and on any number of threads. core/random_kernels.h defines how the library maps
// (seed, offset, element index) onto counters and keys.
//
// Checked against Random123's known-answer vectors (tests/core/random_test.cpp).
#pragma once

#include <cstdint>

#include "core/dtype.h"  // LF_HOST_DEVICE

namespace lmforge {

struct uint4x32 {
  uint32_t v[4];
};
struct uint2x32 {
  uint32_t v[2];
};

namespace philox_detail {

inline constexpr uint32_t kM0 = 0xD2511F53u;  // round multipliers
inline constexpr uint32_t kM1 = 0xCD9E8D57u;
inline constexpr uint32_t kW0 = 0x9E3779B9u;  // Weyl key increments (golden ratio, sqrt(3) - 1)
inline constexpr uint32_t kW1 = 0xBB67AE85u;

inline LF_HOST_DEVICE uint4x32 single_round(uint4x32 c, uint2x32 k) {
  const uint64_t p0 = uint64_t(kM0) * c.v[0];
  const uint64_t p1 = uint64_t(kM1) * c.v[2];
  const uint32_t hi0 = uint32_t(p0 >> 32), lo0 = uint32_t(p0);
  const uint32_t hi1 = uint32_t(p1 >> 32), lo1 = uint32_t(p1);
  return uint4x32{{hi1 ^ c.v[1] ^ k.v[0], lo1, hi0 ^ c.v[3] ^ k.v[1], lo0}};
}

}  // namespace philox_detail

// Ten rounds; the key is bumped by (W0, W1) before each round after the first.
inline LF_HOST_DEVICE uint4x32 philox4x32_10(uint4x32 counter, uint2x32 key) {
  counter = philox_detail::single_round(counter, key);
#if defined(__CUDA_ARCH__)
#pragma unroll
#endif
  for (int r = 1; r < 10; ++r) {
    key.v[0] += philox_detail::kW0;
    key.v[1] += philox_detail::kW1;
    counter = philox_detail::single_round(counter, key);
  }
  return counter;
}

}  // namespace lmforge
