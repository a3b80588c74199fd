// Grouped GEMM over row segments (Backend::grouped_gemm, backend/backend.h) in one launch, with
// the segment bounds read on the device: the host never waits for `ends`.
//
// Tile scheduling. Products (c[m] = a[m]·op(b[g])): a segment of r rows needs ceil(r / BM) row
// tiles, and so do the rows after the last segment (written 0), so the G + 1 runs of row tiles
// number at most ceil(M / BM) + G. The grid has that many row-tile slots (x) times the column tiles
// (y); each CTA's first warp scans the clamped ends 32 groups at a time (prefix max of the ends,
// then a prefix sum of the tile counts, with warp shuffles) to find the segment and the row tile
// of its slot, and CTAs whose slot lies past the last tile exit. Weight gradients (c[g] = a_gᵀ·b_g)
// have one CTA per (P tile, Q tile, group) that reduces over its segment's rows.
//
// Two kernels share the scheduler:
//  * tensor cores (bf16 / f16, every row length a multiple of 8 elements and 16-byte aligned
//    bases): 128×128 output tiles, 8 warps of 64×32, k slices of 64 staged by cp.async through a
//    3-stage ring of shared tiles (16-byte chunks XOR-swizzled by row, attention_tile.cuh), ldmatrix
//    (.trans for an operand whose k is not its contiguous dimension), mma.sync.m16n8k16 with f32
//    accumulators, rounded once on store;
//  * SIMT (f64, f32, fp8, odd sizes): 32×32 tiles, the fallback GEMM's scheme.
// Each output element is summed over k in ascending slices, the same whatever the segment sizes.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <algorithm>

#include "backend/cuda/attention_tile.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"

namespace lmforge::cuda {

namespace {

using attn::cp_async16;
using attn::cp_async_commit;
using attn::cp_async_wait;
using attn::ldmatrix_x4;
using attn::ldmatrix_x4_trans;
using attn::swz;

// ---- the scheduler ----

// The work of one CTA, relative to the operands' bases: A's m index (rows of the output tile) runs
// over [m0, m0 + BM) below m_lim, the reduction over [0, k_len); a_off / b_off / c_off are element
// offsets of the group's or segment's part of a, b and c. valid = false: nothing to do.
struct Job {
  int64_t a_off, b_off, c_off, m0, m_lim, k_len;
  bool valid;
};

__device__ __forceinline__ int64_t raw_end(const GroupedGemmParams& p, int64_t g) {
  return p.ends_i64 ? static_cast<const int64_t*>(p.ends)[g] : int64_t(static_cast<const int32_t*>(p.ends)[g]);
}

__device__ __forceinline__ int64_t warp_prefix_max(int64_t v, int lane) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int64_t u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v = max(v, u);
  }
  return v;
}
__device__ __forceinline__ int64_t warp_prefix_sum(int64_t v, int lane) {
#pragma unroll
  for (int o = 1; o < 32; o <<= 1) {
    const int64_t u = __shfl_up_sync(0xffffffffu, v, o);
    if (lane >= o) v += u;
  }
  return v;
}

// Run by a whole warp. The segment bounds are the clamped ends e_g = min(M, max(0, ends[0..g])):
// valid ends are their own clamp, and a bad one cannot send a CTA outside the operands.
//  Products: the segment and row tile of row-tile slot `slot` (tiles of BM rows).
//  Weight gradients: the bounds of segment `group`.
template <int BM>
__device__ Job find_job(const GroupedGemmParams& p, int64_t slot, int64_t group, int64_t m0) {
  const int lane = threadIdx.x & 31;
  int64_t running = 0, tiles_before = 0, seg_start = 0, seg_end = 0;
  Job job{};
  job.valid = false;
  const int64_t last = p.weight_grad ? group + 1 : p.groups;
  for (int64_t base = 0; base < last; base += 32) {
    const int64_t g = base + lane;
    int64_t e = g < last ? raw_end(p, g) : 0;
    e = min(max(warp_prefix_max(max(e, int64_t(0)), lane), running), p.rows);
    int64_t start = __shfl_up_sync(0xffffffffu, e, 1);
    if (lane == 0) start = running;
    if (p.weight_grad) {
      if (g == group) {
        seg_start = start;
        seg_end = e;
      }
    } else {
      const int64_t tiles = g < last ? (e - start + BM - 1) / BM : 0;
      const int64_t incl = warp_prefix_sum(tiles, lane), before = tiles_before + incl - tiles;
      if (g < last && slot >= before && slot < before + tiles) {
        const int64_t r0 = start + (slot - before) * BM;
        job = {r0 * p.k, g * p.n * p.k, r0 * p.n, 0, e - r0, p.k, true};
      }
      tiles_before += __shfl_sync(0xffffffffu, incl, 31);
    }
    running = __shfl_sync(0xffffffffu, e, 31);
  }
  if (p.weight_grad) {
    // Only the lane that saw the group holds its bounds.
    const int src = int(group % 32);
    seg_start = __shfl_sync(0xffffffffu, seg_start, src);
    seg_end = __shfl_sync(0xffffffffu, seg_end, src);
    return {seg_start * p.k, seg_start * p.n, group * p.k * p.n, m0, p.k, seg_end - seg_start, true};
  }
  // The lane that found the slot holds the job; the rows after the last segment come last.
  const unsigned found = __ballot_sync(0xffffffffu, job.valid);
  if (found) {
    const int src = __ffs(found) - 1;
    job.a_off = __shfl_sync(0xffffffffu, job.a_off, src);
    job.b_off = __shfl_sync(0xffffffffu, job.b_off, src);
    job.c_off = __shfl_sync(0xffffffffu, job.c_off, src);
    job.m_lim = __shfl_sync(0xffffffffu, job.m_lim, src);
    job.m0 = 0;
    job.k_len = p.k;
    job.valid = true;
    return job;
  }
  const int64_t tail = (p.rows - running + BM - 1) / BM;
  if (slot >= tiles_before && slot < tiles_before + tail) {
    const int64_t r0 = running + (slot - tiles_before) * BM;
    return {0, 0, r0 * p.n, 0, p.rows - r0, 0, true};  // no reduction: the tile is written 0
  }
  return job;
}

// The CTA's job, found by warp 0 and shared through shared memory.
template <int BM>
__device__ Job cta_job(const GroupedGemmParams& p) {
  __shared__ Job job;
  if (threadIdx.x < 32) {
    const Job j = p.weight_grad ? find_job<BM>(p, 0, blockIdx.z, int64_t(blockIdx.x) * BM)
                                : find_job<BM>(p, blockIdx.x, 0, 0);
    if (threadIdx.x == 0) job = j;
  }
  __syncthreads();
  return job;
}

// ---- tensor-core kernel ----

constexpr int kBM = 128, kBN = 128, kBK = 64, kStages = 3, kMmaThreads = 256;
constexpr int kTileElems = kBM * kBK;  // = kBK * kBN: one operand's tile of one stage
constexpr size_t kMmaSmem = size_t(kStages) * 2 * kTileElems * sizeof(uint16_t);

// Stored rows [r0, r0 + ROWS) (those >= r_lim zero) and columns [c0, c0 + W) (chunks at or past
// c_lim zero; c_lim a multiple of 8) of a row-major matrix at g with row stride ld, into a swizzled
// shared tile.
template <int ROWS, int W>
__device__ __forceinline__ void load_box(uint16_t* s, const uint16_t* g, int64_t ld, int64_t r0, int64_t r_lim,
                                         int64_t c0, int64_t c_lim) {
  constexpr int kChunks = W / 8, kTotal = ROWS * kChunks;
  static_assert(kTotal % kMmaThreads == 0, "whole chunks per thread");
#pragma unroll
  for (int i = 0; i < kTotal / kMmaThreads; ++i) {
    const int idx = int(threadIdx.x) + i * kMmaThreads, r = idx / kChunks, c = (idx % kChunks) * 8;
    const int64_t gr = r0 + r, gc = c0 + c;
    const bool ok = gr < r_lim && gc < c_lim;
    cp_async16(s + swz<W>(r, c), ok ? g + gr * ld + gc : g, ok ? 16 : 0);
  }
}

template <bool BF16>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (BF16) {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm volatile(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// A_K: A is stored [m][k] (k contiguous), else [k][m]; B_K: B stored [n][k], else [k][n].
// Shared tiles: [m][k] and [n][k] are 128 rows × 64; [k][m] and [k][n] are 64 rows × 128.
template <bool BF16, bool A_K, bool B_K>
__global__ void __launch_bounds__(kMmaThreads, 1) grouped_gemm_mma_kernel(GroupedGemmParams p) {
  extern __shared__ __align__(1024) uint16_t smem[];
  const Job job = cta_job<kBM>(p);
  if (!job.valid) return;
  const uint16_t* a = static_cast<const uint16_t*>(p.a) + job.a_off;
  const uint16_t* b = static_cast<const uint16_t*>(p.b) + job.b_off;
  uint16_t* c = static_cast<uint16_t*>(p.c) + job.c_off;
  const int64_t lda = p.k, ldb = B_K ? p.k : p.n, ldc = p.n;
  const int64_t m0 = job.m0, n0 = int64_t(blockIdx.y) * kBN, k_len = job.k_len;
  uint16_t* sa = smem;
  uint16_t* sb = smem + kStages * kTileElems;

  auto load_stage = [&](int stage, int64_t k0) {
    uint16_t* ta = sa + stage * kTileElems;
    uint16_t* tb = sb + stage * kTileElems;
    if constexpr (A_K) load_box<kBM, kBK>(ta, a, lda, m0, job.m_lim, k0, k_len);
    else load_box<kBK, kBM>(ta, a, lda, k0, k_len, m0, job.m_lim);
    if constexpr (B_K) load_box<kBN, kBK>(tb, b, ldb, n0, p.n, k0, k_len);
    else load_box<kBK, kBN>(tb, b, ldb, k0, k_len, n0, p.n);
  };

  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int wm = (warp & 1) * 64, wn = (warp >> 1) * 32, q = lane >> 3;
  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) acc[i][j][0] = acc[i][j][1] = acc[i][j][2] = acc[i][j][3] = 0.f;

  const int64_t nk = (k_len + kBK - 1) / kBK;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < nk) load_stage(s, int64_t(s) * kBK);
    cp_async_commit();
  }
  for (int64_t kb = 0; kb < nk; ++kb) {
    cp_async_wait<kStages - 2>();
    __syncthreads();  // slice kb is in shared memory, and every warp is done with slice kb - 1's stage
    if (kb + kStages - 1 < nk) load_stage(int((kb + kStages - 1) % kStages), (kb + kStages - 1) * kBK);
    cp_async_commit();
    const uint16_t* ta = sa + int(kb % kStages) * kTileElems;
    const uint16_t* tb = sb + int(kb % kStages) * kTileElems;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[4][4], bf[4][2];
#pragma unroll
      for (int mt = 0; mt < 4; ++mt) {
        if constexpr (A_K)
          ldmatrix_x4(af[mt], ta + swz<kBK>(wm + mt * 16 + (lane & 15), kk * 16 + (lane >> 4) * 8));
        else
          ldmatrix_x4_trans(af[mt], ta + swz<kBM>(kk * 16 + (q >> 1) * 8 + (lane & 7), wm + mt * 16 + (q & 1) * 8));
      }
#pragma unroll
      for (int np = 0; np < 2; ++np) {
        uint32_t r[4];
        if constexpr (B_K)
          ldmatrix_x4(r, tb + swz<kBK>(wn + np * 16 + (q >> 1) * 8 + (lane & 7), kk * 16 + (q & 1) * 8));
        else
          ldmatrix_x4_trans(r, tb + swz<kBN>(kk * 16 + (q & 1) * 8 + (lane & 7), wn + np * 16 + (q >> 1) * 8));
        bf[2 * np][0] = r[0];
        bf[2 * np][1] = r[1];
        bf[2 * np + 1][0] = r[2];
        bf[2 * np + 1][1] = r[3];
      }
#pragma unroll
      for (int mt = 0; mt < 4; ++mt)
#pragma unroll
        for (int nt = 0; nt < 4; ++nt) mma16816<BF16>(acc[mt][nt], af[mt], bf[nt][0], bf[nt][1]);
    }
  }
  cp_async_wait<0>();

  // Rows m0 + wm + 16·mt + lane/4 (+8), columns n0 + wn + 8·nt + 2·(lane%4) (+1): p.n is a
  // multiple of 8, so a pair is inside or outside together.
  const int gid = lane >> 2, t4 = lane & 3;
#pragma unroll
  for (int mt = 0; mt < 4; ++mt)
#pragma unroll
    for (int half = 0; half < 2; ++half) {
      const int64_t m = m0 + wm + mt * 16 + gid + 8 * half;
      if (m >= job.m_lim) continue;
#pragma unroll
      for (int nt = 0; nt < 4; ++nt) {
        const int64_t n = n0 + wn + nt * 8 + 2 * t4;
        if (n >= p.n) continue;
        *reinterpret_cast<uint32_t*>(c + m * ldc + n) =
            attn::pack2<BF16>(acc[mt][nt][2 * half], acc[mt][nt][2 * half + 1]);
      }
    }
}

// ---- SIMT kernel ----

constexpr int kSimtTile = 32;

template <class T, bool A_K, bool B_K>
__global__ void grouped_gemm_simt_kernel(GroupedGemmParams p) {
  using A = compute_t<T>;
  __shared__ A as[kSimtTile][kSimtTile + 1];
  __shared__ A bs[kSimtTile][kSimtTile + 1];
  const Job job = cta_job<kSimtTile>(p);
  if (!job.valid) return;
  const T* a = static_cast<const T*>(p.a) + job.a_off;
  const T* b = static_cast<const T*>(p.b) + job.b_off;
  T* c = static_cast<T*>(p.c) + job.c_off;
  const int64_t lda = p.k, ldb = B_K ? p.k : p.n, ldc = p.n;
  const int tx = threadIdx.x % kSimtTile, ty = threadIdx.x / kSimtTile;  // ty in [0, 8)
  const int64_t m0 = job.m0, n0 = int64_t(blockIdx.y) * kSimtTile;
  A acc[4] = {A(0), A(0), A(0), A(0)};
  for (int64_t k0 = 0; k0 < job.k_len; k0 += kSimtTile) {
    for (int r = ty; r < kSimtTile; r += 8) {
      const int64_t i = m0 + r, ka = k0 + tx;  // as[r][tx] = A(i, ka)
      A va = A(0);
      if (i < job.m_lim && ka < job.k_len) va = load(A_K ? a[i * lda + ka] : a[ka * lda + i]);
      as[r][tx] = va;
      const int64_t kb = k0 + r, j = n0 + tx;  // bs[r][tx] = B(kb, j)
      A vb = A(0);
      if (kb < job.k_len && j < p.n) vb = load(B_K ? b[j * ldb + kb] : b[kb * ldb + j]);
      bs[r][tx] = vb;
    }
    __syncthreads();
#pragma unroll 8
    for (int kk = 0; kk < kSimtTile; ++kk) {
      const A bv = bs[kk][tx];
#pragma unroll
      for (int s = 0; s < 4; ++s) acc[s] += as[ty + 8 * s][kk] * bv;
    }
    __syncthreads();
  }
  const int64_t j = n0 + tx;
  if (j >= p.n) return;
  for (int s = 0; s < 4; ++s) {
    const int64_t i = m0 + ty + 8 * s;
    if (i < job.m_lim) c[i * ldc + j] = store<T>(acc[s]);
  }
}

// The tensor-core path takes bf16 / f16 whose rows are whole 16-byte chunks.
bool mma_eligible(DType t, const GroupedGemmParams& p) {
  if (t != DType::BF16 && t != DType::F16) return false;
  if (p.k % 8 != 0 || p.n % 8 != 0) return false;
  for (const void* ptr : {p.a, p.b, static_cast<const void*>(p.c)})
    if (reinterpret_cast<uintptr_t>(ptr) % 16 != 0) return false;
  return true;
}

template <class KernelFn>
void launch(const CudaContext& ctx, KernelFn kernel, dim3 grid, int threads, size_t smem, const GroupedGemmParams& p) {
  if (smem > 48 * 1024)
    LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
  kernel<<<grid, threads, smem, ctx.stream>>>(p);
  LF_CUDA_CHECK_LAUNCH("grouped_gemm");
}

// The grid: row-tile slots × column tiles (products), or P tiles × Q tiles × groups.
dim3 grid_for_tiles(const GroupedGemmParams& p, int bm, int bn) {
  const int64_t cols = (p.n + bn - 1) / bn;
  if (p.weight_grad) return dim3(unsigned((p.k + bm - 1) / bm), unsigned(cols), unsigned(p.groups));
  return dim3(unsigned((p.rows + bm - 1) / bm + p.groups), unsigned(cols), 1);
}

}  // namespace

void launch_grouped_gemm(const CudaContext& ctx, DType t, const GroupedGemmParams& p) {
  if (p.n == 0 || (p.weight_grad ? (p.k == 0 || p.groups == 0) : p.rows == 0)) return;
  LF_ASSERT(!p.weight_grad || p.groups <= 65535, "grouped_gemm: {} groups are too many for one launch", p.groups);
  // (A_K, B_K): products with b[g]ᵀ read both operands k-contiguous; with b[g], B is [k][n]; weight
  // gradients reduce over rows, so both operands are [k][·].
  const bool a_k = !p.weight_grad, b_k = !p.weight_grad && p.trans_b;
  if (mma_eligible(t, p)) {
    const dim3 grid = grid_for_tiles(p, kBM, kBN);
    auto go = [&](auto is_bf16) {
      constexpr bool B = decltype(is_bf16)::value;
      if (a_k && b_k) launch(ctx, grouped_gemm_mma_kernel<B, true, true>, grid, kMmaThreads, kMmaSmem, p);
      else if (a_k) launch(ctx, grouped_gemm_mma_kernel<B, true, false>, grid, kMmaThreads, kMmaSmem, p);
      else launch(ctx, grouped_gemm_mma_kernel<B, false, false>, grid, kMmaThreads, kMmaSmem, p);
    };
    if (t == DType::BF16) go(std::true_type{});
    else go(std::false_type{});
    return;
  }
  const dim3 grid = grid_for_tiles(p, kSimtTile, kSimtTile);
  dispatch_float(t, "grouped_matmul", [&](auto t0) {
    using T = decltype(t0);
    if (a_k && b_k) launch(ctx, grouped_gemm_simt_kernel<T, true, true>, grid, 256, 0, p);
    else if (a_k) launch(ctx, grouped_gemm_simt_kernel<T, true, false>, grid, 256, 0, p);
    else launch(ctx, grouped_gemm_simt_kernel<T, false, false>, grid, 256, 0, p);
  });
}

}  // namespace lmforge::cuda
