// GEMM against narrow weights on the GPU (Backend::gemm_quantized, twin of
// backend/cpu/gemm_quantized_cpu.cpp): out[m, n] = Σ_k x[m, k] · w(n, k) (+ bias[n]) with
// w(n, k) = weight[n, k] · scale[n, k / group_size] for i8 / fp8 e4m3 weights, or the bf16 / f16 /
// f32 weight itself. The weights are dequantised in registers as they stream by; nothing wider
// than the stored weight is ever written.
//
// One warp per output channel n and pass of up to kRowsPerPass rows of x: the weight row is read
// from memory once per pass (decode, M <= 8, is one pass: every weight byte is read once, in
// 16-byte loads), dequantised chunk by chunk, and multiplied into the pass's rows (whose
// activations are read in 16-byte loads too where aligned). Lane l owns the 16-byte chunks l,
// l + 32, l + 64, ... of the row and adds their products into one f32 sum per row in increasing
// k; the 32 lane sums are then added by a fixed butterfly (xor 16, 8, 4, 2, 1).
// That order depends on K and the weight dtype alone, never on M, on the pass a row falls in or on
// the grid: a row's result is bit-identical whatever other rows share the call (batch invariance,
// the deterministic-serving contract). Prefill (M > 8) runs more passes; each re-reads the weight
// row, mostly from L2.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace lmforge::cuda {

namespace {

constexpr int kWarps = 8, kRowsPerPass = 8, kUnroll = 4;

template <class W>
inline constexpr int kChunk = int(16 / sizeof(W));  // weight elements in a 16-byte load

// The kChunk weights at w + k0 as floats times their group's scale: from `raw` (the 16 bytes at
// w + k0, when the whole chunk was loaded at once) or element by element (k0 + i >= k reads 0).
template <class W>
__device__ __forceinline__ void dequantise_chunk(float (&wv)[kChunk<W>], const uint4& raw, bool have_raw, const W* w,
                                                 int64_t k0, int64_t k, const float* scale, int64_t group_size) {
  const W* e = reinterpret_cast<const W*>(&raw);
#pragma unroll
  for (int i = 0; i < kChunk<W>; ++i) wv[i] = have_raw ? float(load(e[i])) : (k0 + i < k ? float(load(w[k0 + i])) : 0.f);
  if (scale == nullptr) return;
  if (group_size % kChunk<W> == 0) {
    // k0 is a multiple of kChunk, so the whole chunk lies in one group: one scale load and one
    // (64-bit, slow) division per chunk instead of per element; the products are the same.
    const float s = scale[k0 / group_size];
#pragma unroll
    for (int i = 0; i < kChunk<W>; ++i) wv[i] *= s;
  } else {
#pragma unroll
    for (int i = 0; i < kChunk<W>; ++i)
      if (k0 + i < k) wv[i] *= scale[(k0 + i) / group_size];
  }
}

// The V activations at xr (row r of x from k0) as floats: in 16-byte loads when `whole` (the
// chunk lies inside K and xr is 16-byte aligned) and V of them fill whole loads, else one by one
// (k0 + i >= k reads 0). At M = 8 the element loads would otherwise outnumber everything else
// the kernel issues; either way the values, and so the sums, are the same.
template <class X, int V>
__device__ __forceinline__ void load_activations(float (&xv)[V], const X* xr, bool whole, int64_t k0, int64_t k) {
  if constexpr ((V * sizeof(X)) % 16 == 0) {
    if (whole) {
      constexpr int kLoads = int(V * sizeof(X) / 16);
      uint4 raw[kLoads];
#pragma unroll
      for (int l = 0; l < kLoads; ++l) raw[l] = __ldg(reinterpret_cast<const uint4*>(xr) + l);
      const X* e = reinterpret_cast<const X*>(raw);
#pragma unroll
      for (int i = 0; i < V; ++i) xv[i] = float(load(e[i]));
      return;
    }
  }
#pragma unroll
  for (int i = 0; i < V; ++i) xv[i] = k0 + i < k ? float(load(xr[i])) : 0.f;
}

template <class X, class W>
__global__ void __launch_bounds__(kWarps * 32, 2) gemm_quantized_kernel(QuantizedGemmParams p, bool vec, bool x_vec) {
  constexpr int V = kChunk<W>;
  const int lane = threadIdx.x & 31;
  const int64_t n = int64_t(blockIdx.x) * kWarps + (threadIdx.x >> 5);
  if (n >= p.n) return;
  const int64_t m0 = int64_t(blockIdx.y) * kRowsPerPass;
  const int rows = int(p.m - m0 < kRowsPerPass ? p.m - m0 : kRowsPerPass);
  const W* w = static_cast<const W*>(p.weight) + n * p.k;
  const float* scale = p.scale ? p.scale + n * (p.k / p.group_size) : nullptr;
  const X* x = static_cast<const X*>(p.x) + m0 * p.k;
  float acc[kRowsPerPass];
#pragma unroll
  for (int r = 0; r < kRowsPerPass; ++r) acc[r] = 0.f;
  const int64_t chunks = (p.k + V - 1) / V;
  // kUnroll chunks' 16-byte loads in flight before their products; the products keep chunk order.
  for (int64_t c0 = lane; c0 < chunks; c0 += 32 * kUnroll) {
    uint4 raw[kUnroll];
    bool have_raw[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + int64_t(u) * 32;
      have_raw[u] = vec && c < chunks && (c + 1) * V <= p.k;
      raw[u] = have_raw[u] ? __ldg(reinterpret_cast<const uint4*>(w + c * V)) : make_uint4(0, 0, 0, 0);
    }
#pragma unroll
    for (int u = 0; u < kUnroll; ++u) {
      const int64_t c = c0 + int64_t(u) * 32;
      if (c >= chunks) break;
      const int64_t k0 = c * V;
      float wv[V];
      dequantise_chunk<W>(wv, raw[u], have_raw[u], w, k0, p.k, scale, p.group_size);
#pragma unroll
      for (int r = 0; r < kRowsPerPass; ++r) {
        if (r < rows) {
          float xv[V];
          load_activations<X, V>(xv, x + int64_t(r) * p.k + k0, x_vec && k0 + V <= p.k, k0, p.k);
#pragma unroll
          for (int i = 0; i < V; ++i)
            if (k0 + i < p.k) acc[r] = __fmaf_rn(wv[i], xv[i], acc[r]);
        }
      }
    }
  }
#pragma unroll
  for (int r = 0; r < kRowsPerPass; ++r) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) acc[r] = __fadd_rn(acc[r], __shfl_xor_sync(0xffffffffu, acc[r], o));
  }
  if (lane == 0) {
    X* out = static_cast<X*>(p.out);
    const float b = p.bias ? float(load(static_cast<const X*>(p.bias)[n])) : 0.f;
#pragma unroll
    for (int r = 0; r < kRowsPerPass; ++r)
      if (r < rows) out[(m0 + r) * p.n + n] = store<X>(__fadd_rn(acc[r], b));
  }
}

template <class X>
void launch_for_weight(const CudaContext& ctx, DType w_t, const QuantizedGemmParams& p) {
  const dim3 grid(unsigned((p.n + kWarps - 1) / kWarps), unsigned((p.m + kRowsPerPass - 1) / kRowsPerPass));
  LF_ASSERT(grid.y <= 65535, "gemm_quantized: {} rows are too many for one launch", p.m);
  auto go = [&](auto w0) {
    using W = decltype(w0);
    // 16-byte loads when every weight row starts on a 16-byte boundary.
    const bool vec = reinterpret_cast<uintptr_t>(p.weight) % 16 == 0 && (p.k * int64_t(sizeof(W))) % 16 == 0;
    // Likewise for the rows of x (a chunk of V weights meets V activations, a whole number of
    // 16-byte loads for every pairing but f32 weights with 16-bit activations).
    const bool x_vec = reinterpret_cast<uintptr_t>(p.x) % 16 == 0 && (p.k * int64_t(sizeof(X))) % 16 == 0;
    gemm_quantized_kernel<X, W><<<grid, kWarps * 32, 0, ctx.stream>>>(p, vec, x_vec);
  };
  switch (w_t) {
    case DType::I8: go(int8_t{}); break;
    case DType::F8E4M3: go(f8e4m3{}); break;
    case DType::BF16: go(bf16{}); break;
    case DType::F16: go(f16{}); break;
    case DType::F32: go(float{}); break;
    default: throw_unsupported_dtype(w_t, "gemm_quantized weight");
  }
  LF_CUDA_CHECK_LAUNCH("gemm_quantized_kernel");
}

}  // namespace

bool gemm_quantized_weight_supported(DType w_t) {
  return w_t == DType::I8 || w_t == DType::F8E4M3 || w_t == DType::BF16 || w_t == DType::F16 || w_t == DType::F32;
}

void launch_gemm_quantized(const CudaContext& ctx, DType x_t, DType w_t, const QuantizedGemmParams& p) {
  if (p.m == 0 || p.n == 0) return;
  switch (x_t) {
    case DType::F32: return launch_for_weight<float>(ctx, w_t, p);
    case DType::BF16: return launch_for_weight<bf16>(ctx, w_t, p);
    case DType::F16: return launch_for_weight<f16>(ctx, w_t, p);
    default: throw_unsupported_dtype(x_t, "gemm_quantized activation");
  }
}

}  // namespace lmforge::cuda
