// Hopper warp-group matrix multiply (wgmma, sm_90a): shared-memory descriptors, the fences and
// group waits around the asynchronous products, and the products themselves (wgmma_mma.cuh,
// generated). Only files built for sm_90a include this (CMakeLists.txt lists them).
//
// A warp group is 4 consecutive warps (128 threads) issuing one m64nNk16 product together: warp
// w of the group owns rows [16w, 16w + 16) of the 64-row A and D tiles, in the register layout
// of mma.m16n8k16 (so the A fragments of attention_tile.cuh and its accumulator conversions
// carry over unchanged).
//
// Shared operands are 64-element (128-byte) rows, 16-byte chunks XORed with (row & 7), 8-row
// groups 1024 bytes apart, tile bases 1024-byte aligned: the 128-byte-swizzle layout. The same
// tile serves as a K-major operand (rows = M or N, k along the row) and as an MN-major one (rows =
// k, N along the row); only the descriptor differs.
#pragma once

#include <cstdint>

#include "backend/cuda/attention_tile.cuh"
#include "backend/cuda/wgmma_mma.cuh"

namespace lmforge::cuda::wgmma {

// The 64-bit matrix descriptor: start address, leading and stride byte offsets (all in 16-byte
// units), 128-byte swizzle.
__device__ __forceinline__ uint64_t sw128_desc(const void* smem, uint32_t leading_bytes, uint32_t stride_bytes) {
  const uint64_t addr = attn::smem_addr(smem);
  return ((addr & 0x3FFFF) >> 4) | (uint64_t((leading_bytes & 0x3FFFF) >> 4) << 16) |
         (uint64_t((stride_bytes & 0x3FFFF) >> 4) << 32) | (uint64_t(1) << 62);
}

// Descriptors of a tile of 64-element rows, made once per tile base; the products step them by
// whole 16-byte units (no carry leaves the 14-bit address field: shared memory ends below 256 KiB).
//   K-major (rows = M or N, k along the row): k columns [16kk, 16kk + 16) start 32 bytes on
//     within each swizzled row (the swizzle applies to the absolute address, so the slice stays
//     consistent): desc + kKMajorStep·kk.
//   MN-major (rows = k, N = 64 along the row, one swizzle atom wide, so the leading offset, the
//     stride between 64-wide column blocks, is unused): rows [16kk, 16kk + 16) start 2048 bytes
//     on: desc + kMnMajorStep·kk.
constexpr uint64_t kKMajorStep = 32 >> 4, kMnMajorStep = (16 * 128) >> 4;
__device__ __forceinline__ uint64_t desc_k_major(const uint16_t* tile) { return sw128_desc(tile, 16, 1024); }
__device__ __forceinline__ uint64_t desc_mn_major(const uint16_t* tile) { return sw128_desc(tile, 8192, 1024); }
// The descriptor of the same layout `bytes` further on (the next buffer of a double-buffered tile).
__device__ __forceinline__ uint64_t desc_advance(uint64_t desc, uint32_t bytes) { return desc + (bytes >> 4); }

// Orders earlier register writes (accumulators, A fragments) before the next products.
__device__ __forceinline__ void fence() { asm volatile("wgmma.fence.sync.aligned;\n" ::: "memory"); }
__device__ __forceinline__ void commit() { asm volatile("wgmma.commit_group.sync.aligned;\n" ::: "memory"); }
// Waits until at most N committed groups of this warp group are still running.
template <int N>
__device__ __forceinline__ void wait() {
  asm volatile("wgmma.wait_group.sync.aligned %0;\n" ::"n"(N) : "memory");
}
// Keeps the compiler from moving reads or writes of an accumulator across a wait.
template <int N>
__device__ __forceinline__ void fence_operand(float (&d)[N][4]) {
#pragma unroll
  for (int i = 0; i < N; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) asm volatile("" : "+f"(d[i][j])::"memory");
}
// Makes this thread's generic-proxy shared-memory writes (cp.async) visible to wgmma's reads,
// which go through the async proxy; the barrier that follows publishes them to the warp group.
__device__ __forceinline__ void fence_proxy_async() { asm volatile("fence.proxy.async.shared::cta;\n" ::: "memory"); }

}  // namespace lmforge::cuda::wgmma
