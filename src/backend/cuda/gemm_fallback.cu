// SIMT GEMM for what cuBLAS does not take: fp8 operands (cuBLASLt's fp8 path needs scales and
// the TN layout), and any layout or alignment its heuristics refuse. 32×32 output tiles, a
// 32-deep slice of each operand staged in shared memory, each of the 256 threads computing a
// 4×1 strip, accumulation in f32 (f64 for f64), alpha / beta applied once, rounded once on store.
// It exists for coverage, not speed: the hot paths go through cuBLASLt (gemm_cublas.cpp).
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace lmforge::cuda {

namespace {

constexpr int kTile = 32;

template <class TAB, class TC>
__global__ void gemm_tiled_kernel(GemmParams p) {
  using A = compute_t<TAB>;
  __shared__ A as[kTile][kTile + 1];
  __shared__ A bs[kTile][kTile + 1];
  const int64_t bz = blockIdx.z;
  const TAB* a = static_cast<const TAB*>(p.a) + bz * p.stride_a;
  const TAB* b = static_cast<const TAB*>(p.b) + bz * p.stride_b;
  TC* c = static_cast<TC*>(p.c) + bz * p.stride_c;
  const int tx = threadIdx.x % kTile, ty = threadIdx.x / kTile;  // ty in [0, 8)
  const int64_t i0 = int64_t(blockIdx.y) * kTile, j0 = int64_t(blockIdx.x) * kTile;
  A acc[4] = {A(0), A(0), A(0), A(0)};
  for (int64_t p0 = 0; p0 < p.k; p0 += kTile) {
    for (int r = ty; r < kTile; r += 8) {
      const int64_t i = i0 + r, pa = p0 + tx;  // as[r][tx] = op(A)[i, pa]
      A va = A(0);
      if (i < p.m && pa < p.k) va = load(p.trans_a ? a[pa * p.lda + i] : a[i * p.lda + pa]);
      as[r][tx] = va;
      const int64_t pb = p0 + r, j = j0 + tx;  // bs[r][tx] = op(B)[pb, j]
      A vb = A(0);
      if (pb < p.k && j < p.n) vb = load(p.trans_b ? b[j * p.ldb + pb] : b[pb * p.ldb + j]);
      bs[r][tx] = vb;
    }
    __syncthreads();
#pragma unroll 8
    for (int q = 0; q < kTile; ++q) {
      const A bv = bs[q][tx];
#pragma unroll
      for (int s = 0; s < 4; ++s) acc[s] += as[ty + 8 * s][q] * bv;
    }
    __syncthreads();
  }
  const int64_t j = j0 + tx;
  if (j >= p.n) return;
  for (int s = 0; s < 4; ++s) {
    const int64_t i = i0 + ty + 8 * s;
    if (i >= p.m) continue;
    TC* cp = c + i * p.ldc + j;
    A v = A(p.alpha) * acc[s];
    if (p.beta != 0) v += A(p.beta) * A(load(*cp));
    *cp = store<TC>(v);
  }
}

}  // namespace

void launch_gemm_fallback(const CudaContext& ctx, DType ab_t, DType c_t, const GemmParams& p) {
  if (p.m == 0 || p.n == 0 || p.batch == 0) return;
  LF_ASSERT(p.batch <= 65535, "gemm: batch {} too large for the fallback kernel", p.batch);
  const dim3 grid(unsigned((p.n + kTile - 1) / kTile), unsigned((p.m + kTile - 1) / kTile), unsigned(p.batch));
  dispatch_float(ab_t, "matmul", [&](auto t0) {
    using TAB = decltype(t0);
    if (c_t == ab_t) {
      gemm_tiled_kernel<TAB, TAB><<<grid, 256, 0, ctx.stream>>>(p);
    } else if (c_t == DType::F32) {
      gemm_tiled_kernel<TAB, float><<<grid, 256, 0, ctx.stream>>>(p);
    } else {
      throw_unsupported_dtype(c_t, "matmul output");
    }
  });
  LF_CUDA_CHECK_LAUNCH("gemm_tiled_kernel");
}

}  // namespace lmforge::cuda
