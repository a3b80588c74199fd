// Building blocks shared by the tensor-core attention kernels (attention_mma.cu on sm_80+ PTX,
// attention_wgmma.cu on Hopper): asynchronous global→shared copies, ldmatrix, the swizzled shared
// tiles, fragment conversions and the per-row statistics of the backward pass.
//
// Shared tiles hold W = 64 or 128 elements a row in 16-byte chunks whose index is XORed with
// (row & 7): the 8 row addresses of an ldmatrix hit 8 different bank groups, and a 64-wide tile
// whose base is 1024-byte aligned is exactly the 128-byte-swizzled layout wgmma reads.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

#include "backend/cuda/kernels.h"

namespace lmforge::cuda::attn {

constexpr float kLog2e = 1.4426950408889634f;

// ---- PTX wrappers ----
__device__ __forceinline__ uint32_t smem_addr(const void* p) {
  return static_cast<uint32_t>(__cvta_generic_to_shared(p));
}

// 16 bytes global → shared; bytes = 0 writes zeros (rows past the end of the sequence).
__device__ __forceinline__ void cp_async16(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.cg.shared.global [%0], [%1], 16, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
// 4 bytes global → shared (.ca: the only cp.async that copies fewer than 16); bytes = 0 writes zeros.
__device__ __forceinline__ void cp_async4(void* dst, const void* src, int bytes) {
  asm volatile("cp.async.ca.shared.global [%0], [%1], 4, %2;\n" ::"r"(smem_addr(dst)), "l"(src), "r"(bytes));
}
__device__ __forceinline__ void cp_async_commit() { asm volatile("cp.async.commit_group;\n" ::); }
template <int N>
__device__ __forceinline__ void cp_async_wait() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void ldmatrix_x4(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}
__device__ __forceinline__ void ldmatrix_x4_trans(uint32_t (&r)[4], const void* p) {
  asm volatile("ldmatrix.sync.aligned.m8n8.x4.trans.shared.b16 {%0, %1, %2, %3}, [%4];\n"
               : "=r"(r[0]), "=r"(r[1]), "=r"(r[2]), "=r"(r[3])
               : "r"(smem_addr(p)));
}

// 2^x in one MUFU instruction (exp2f adds a denormal range fix-up the softmax does not need);
// 2^-inf = 0.
__device__ __forceinline__ float fast_exp2(float x) {
  float y;
  asm("ex2.approx.ftz.f32 %0, %1;\n" : "=f"(y) : "f"(x));
  return y;
}

// Two floats as a packed pair of the element type, x in the low half (the lower column).
template <bool BF16>
__device__ __forceinline__ uint32_t pack2(float x, float y) {
  if constexpr (BF16) {
    __nv_bfloat162 v = __floats2bfloat162_rn(x, y);
    return *reinterpret_cast<uint32_t*>(&v);
  } else {
    __half2 v = __floats2half2_rn(x, y);
    return *reinterpret_cast<uint32_t*>(&v);
  }
}

// ---- shared tiles: W elements a row, 16-byte chunks swizzled by (row & 7) ----
template <int W>
__device__ __forceinline__ int swz(int row, int col) {
  static_assert(W >= 64 && W % 64 == 0, "the swizzle needs at least 8 chunks a row");
  return row * W + ((((col >> 3) ^ row) & 7) | ((col >> 3) & ~7)) * 8 + (col & 7);
}

// Rows [0, ROWS) of a tile whose row 0 is at g (row stride `stride` elements); rows >= valid are zeros.
// Thread t copies chunk t % (W/8) of rows t / (W/8) + k·P, P = NT / (W/8) rows a pass: with P a
// multiple of 8 every row it copies has the same swizzle phase, so its shared and global addresses
// step by constants and each copy costs an add, a compare and the cp.async.
template <int ROWS, int W, int NT>
__device__ __forceinline__ void load_tile(uint16_t* s, const uint16_t* g, int64_t stride, int valid) {
  constexpr int kChunks = W / 8, kPass = NT / kChunks;
  static_assert(NT % kChunks == 0 && kPass % 8 == 0 && ROWS % kPass == 0, "tile rows must split into whole passes");
  const int r0 = int(threadIdx.x % NT) / kChunks, c = (int(threadIdx.x) % kChunks) * 8;
  uint16_t* sp = s + swz<W>(r0, c);
  const uint16_t* gp = g + r0 * stride + c;
#pragma unroll
  for (int k = 0; k < ROWS / kPass; ++k) {
    const bool ok = r0 + k * kPass < valid;
    cp_async16(sp + k * kPass * W, ok ? gp + k * kPass * stride : g, ok ? 16 : 0);
  }
}

// The A fragments of rows [a0 + 16m, a0 + 16m + 16) of sa (K wide), for products that reuse them.
template <int MT, int K>
__device__ __forceinline__ void load_a_fragments(uint32_t (&a)[MT][K / 16][4], const uint16_t* sa, int a0) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk)
      ldmatrix_x4(a[m][kk], sa + swz<K>(a0 + 16 * m + (lane & 15), kk * 16 + (lane >> 4) * 8));
}

// Accumulator fragments of 16×K products as the A fragments of the next product.
template <bool BF16, int MT, int K>
__device__ __forceinline__ void to_a_fragments(uint32_t (&a)[MT][K / 16][4], const float (&c)[MT][K / 8][4]) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int kk = 0; kk < K / 16; ++kk) {
      a[m][kk][0] = pack2<BF16>(c[m][2 * kk][0], c[m][2 * kk][1]);
      a[m][kk][1] = pack2<BF16>(c[m][2 * kk][2], c[m][2 * kk][3]);
      a[m][kk][2] = pack2<BF16>(c[m][2 * kk + 1][0], c[m][2 * kk + 1][1]);
      a[m][kk][3] = pack2<BF16>(c[m][2 * kk + 1][2], c[m][2 * kk + 1][3]);
    }
}

template <int MT, int N>
__device__ __forceinline__ void zero(float (&c)[MT][N][4]) {
#pragma unroll
  for (int m = 0; m < MT; ++m)
#pragma unroll
    for (int j = 0; j < N; ++j) c[m][j][0] = c[m][j][1] = c[m][j][2] = c[m][j][3] = 0.f;
}

__device__ __forceinline__ const uint16_t* head_ptr(const AttnOperand& op, int64_t b, int64_t h) {
  return static_cast<const uint16_t*>(op.base) + b * op.s0 + h * op.s2;
}
__device__ __forceinline__ uint16_t* head_ptr_mut(const AttnOperand& op, int64_t b, int64_t h) {
  return static_cast<uint16_t*>(const_cast<void*>(op.base)) + b * op.s0 + h * op.s2;
}

// Writes the accumulator fragments of rows [r0, r0+16) (times `scale`) to rows i0 + r of an operand.
template <bool BF16, int N>
__device__ __forceinline__ void store_rows(const float (&c)[N / 8][4], uint16_t* g, int64_t stride, int64_t i0,
                                           int r0, int64_t rows, const float (&scale)[2]) {
  const int lane = threadIdx.x & 31, gid = lane >> 2, t = lane & 3;
#pragma unroll
  for (int half = 0; half < 2; ++half) {
    const int64_t row = i0 + r0 + gid + 8 * half;
    if (row >= rows) continue;
    uint16_t* dst = g + row * stride + 2 * t;
#pragma unroll
    for (int j = 0; j < N / 8; ++j)
      *reinterpret_cast<uint32_t*>(dst + 8 * j) =
          pack2<BF16>(c[j][2 * half] * scale[half], c[j][2 * half + 1] * scale[half]);
  }
}

// The key range [0, end) some query of [t0, t0 + rows) sees.
__device__ __forceinline__ int64_t visible_keys(const AttnParams& p, int64_t t0, int rows) {
  if (!p.causal) return p.ns;
  const int64_t e = t0 + rows + (p.ns - p.nt);
  return e < 0 ? 0 : (e > p.ns ? p.ns : e);
}

// lse and Δ of n rows from lse_g / dl_g, copied asynchronously with the Q and dO tiles (a plain
// load would stall the CTA at its next barrier). Rows >= valid read 0: their q and dO are zero
// too, so P = 1 there meets dO = 0 and dS = 0, and they add nothing.
__device__ __forceinline__ void load_row_stats(float* lse, float* dl, const float* lse_g, const float* dl_g, int valid,
                                               int n) {
  for (int i = threadIdx.x; i < n; i += blockDim.x) {
    const bool ok = i < valid;
    cp_async4(lse + i, ok ? lse_g + i : lse_g, ok ? 4 : 0);
    cp_async4(dl + i, ok ? dl_g + i : dl_g, ok ? 4 : 0);
  }
}

// lse·log2(e), with +inf for a query that sees no key (lse = -inf), so that P = 2^(s - that) = 0.
__device__ __forceinline__ float lse_log2(float lse) { return lse == -INFINITY ? INFINITY : lse * kLog2e; }

}  // namespace lmforge::cuda::attn
