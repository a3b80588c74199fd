// Tensor-core attention for bf16 / f16 with head dim 64 or 128 (D == Dv), forward and backward:
// the fast path of attention.cu (same contract, same CPU twin backend/cpu/attention_cpu.cpp), taken
// by the backend when there is no mask and q/k/v/out/dout/dq/dk/dv have 16-byte aligned bases and
// strides (cuda_backend_nn.cpp decides; everything else runs the general kernel).
//
// Building blocks (sm_80+ PTX, used on sm_90):
//   mma.sync.m16n8k16 with f32 accumulators; ldmatrix (.trans where the shared-memory tile is the
//   transpose of the operand the instruction wants); cp.async global→shared, double-buffered;
//   shared tiles of W = 64 or 128 elements per row stored in 16-byte chunks whose index is XORed
//   with (row & 7), so the 8 row addresses of an ldmatrix hit 8 different bank groups.
//   Each warp owns MT tiles of 16 rows of the output tile (MT = 2 at head dim 64, 1 at 128, where
//   the accumulators of 32 rows would not fit the registers): every B fragment read from shared
//   memory feeds the MMAs of all MT tiles. Three warp-level products cover every step:
//     gemm_ss:   C[16×N] += A·Bᵀ, A rows and B rows in shared memory (dO·Vᵀ, K·Qᵀ, V·dOᵀ, Q·Kᵀ in dQ);
//     gemm_rs_t: the same with A in registers (the forward's Q, loaded once);
//     gemm_rs:   C[16×N] += A·B, A in registers (P or dS, as bf16/f16), B rows = k in shared memory.
//
// Forward (FlashAttention-2): one CTA per (query tile, head, batch), the longest causal tiles
// launched first. Per key tile: S = Q·Kᵀ; scores pre-scaled by scale·log2(e) so the softmax uses
// one ex2.approx per score; running row max / sum in registers; O = α·O + P·V. Causal tiles above
// the diagonal are never visited and only tiles crossing the diagonal (or the end of the keys) are
// masked.
//
// Backward, deterministic (no atomics; every output element written by one thread):
//   Δ = rowsum(dO∘O) (attention.cu's kernel);
//   dK/dV: one CTA per (key tile, kv head, batch); its warps own 16·MT keys and walk the group's query
//     heads and query tiles in a fixed order: Sᵀ = K·Qᵀ, Pᵀ = exp2(Sᵀ·c − lse·log2e), dPᵀ = V·dOᵀ,
//     dSᵀ = Pᵀ∘(dPᵀ − Δ), dV += Pᵀ·dO, dK += dSᵀ·Q;
//   dQ: one CTA per (query tile, head, batch) over the key tiles: S, P, dP, dS again, dQ += dS·K.
//   7 tile products instead of the 5 of an atomic-dQ backward: 1.4× its matrix FLOPs.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/attention_tile.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

using namespace attn;

// c[16×8] += a[16×16]·b[16×8], f32 accumulators.
template <bool BF16>
__device__ __forceinline__ void mma16816(float (&c)[4], const uint32_t (&a)[4], uint32_t b0, uint32_t b1) {
  if constexpr (BF16) {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  } else {
    asm(
        "mma.sync.aligned.m16n8k16.row.col.f32.f16.f16.f32 {%0, %1, %2, %3}, {%4, %5, %6, %7}, {%8, %9}, "
        "{%0, %1, %2, %3};\n"
        : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
        : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b0), "r"(b1));
  }
}

// Warp-level products over MT row tiles of 16: a B fragment loaded from shared memory feeds the
// MMAs of all MT tiles, so more rows per warp means fewer shared-memory reads per MMA (the
// kernels are bound by shared-memory bandwidth at MT = 1).

// c[m][16×N] += A_m·Bᵀ over k columns [16·kk, 16·kk + 16): A fragments a[m], B = rows [0, N) of sb (K wide).
template <bool BF16, int MT, int N, int K>
__device__ __forceinline__ void mma_bt_step(float (&c)[MT][N / 8][4], const uint32_t (&a)[MT][4], const uint16_t* sb,
                                            int kk) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int nn = 0; nn < N / 16; ++nn) {
    uint32_t b[4];
    ldmatrix_x4(b, sb + swz<K>(nn * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 16 + ((lane >> 3) & 1) * 8));
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      mma16816<BF16>(c[m][2 * nn], a[m], b[0], b[1]);
      mma16816<BF16>(c[m][2 * nn + 1], a[m], b[2], b[3]);
    }
  }
}

// c[m][16×N] += A_m·Bᵀ: A_m = rows [a0 + 16m, a0 + 16m + 16) of sa, B = rows [0, N) of sb, both K wide.
template <bool BF16, int MT, int N, int K>
__device__ __forceinline__ void gemm_ss(float (&c)[MT][N / 8][4], const uint16_t* sa, int a0, const uint16_t* sb) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t a[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m) ldmatrix_x4(a[m], sa + swz<K>(a0 + 16 * m + (lane & 15), kk * 16 + (lane >> 4) * 8));
    mma_bt_step<BF16, MT, N, K>(c, a, sb, kk);
  }
}


// c[m][16×N] += A_m·Bᵀ: A_m[16×K] in registers, B = rows [0, N) of sb (K wide).
template <bool BF16, int MT, int N, int K>
__device__ __forceinline__ void gemm_rs_t(float (&c)[MT][N / 8][4], const uint32_t (&a)[MT][K / 16][4],
                                          const uint16_t* sb) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
    uint32_t ak[MT][4];
#pragma unroll
    for (int m = 0; m < MT; ++m)
#pragma unroll
      for (int i = 0; i < 4; ++i) ak[m][i] = a[m][kk][i];
    mma_bt_step<BF16, MT, N, K>(c, ak, sb, kk);
  }
}

// c[m][16×N] += A_m·B: A_m[16×K] in registers (K/16 fragments), B = rows [0, K) of sb, N == W wide.
template <bool BF16, int MT, int N, int K>
__device__ __forceinline__ void gemm_rs(float (&c)[MT][N / 8][4], const uint32_t (&a)[MT][K / 16][4],
                                        const uint16_t* sb) {
  const int lane = threadIdx.x & 31;
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) {
#pragma unroll
    for (int nn = 0; nn < N / 16; ++nn) {
      uint32_t b[4];
      ldmatrix_x4_trans(b, sb + swz<N>(kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8, nn * 16 + (lane >> 4) * 8));
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        mma16816<BF16>(c[m][2 * nn], a[m][kk], b[0], b[1]);
        mma16816<BF16>(c[m][2 * nn + 1], a[m][kk], b[2], b[3]);
      }
    }
  }
}


// ---- forward ----
template <int D>
struct FwdTiles {
  // 4 warps. Head dim 64: each warp owns 32 query rows (two MMA row tiles share every K and V
  // fragment), 128-row tiles, two CTAs an SM. Head dim 128: 16 rows a warp (the accumulators of
  // 32 rows would not fit the registers), 64-row tiles, two CTAs an SM.
  static constexpr int kMt = D == 64 ? 2 : 1;
  static constexpr int kWarps = 4, kBr = 16 * kMt * kWarps, kBc = 64, kThreads = kWarps * 32;
  static constexpr int kCtasPerSm = 2;
  static constexpr size_t kSmem = sizeof(uint16_t) * (size_t(kBr) * D + 4 * size_t(kBc) * D);
};

template <bool BF16, int D>
__global__ void __launch_bounds__(FwdTiles<D>::kThreads, FwdTiles<D>::kCtasPerSm)
    attention_mma_forward_kernel(AttnParams p) {
  using Cfg = FwdTiles<D>;
  constexpr int Br = Cfg::kBr, Bc = Cfg::kBc, NT = Cfg::kThreads, MT = Cfg::kMt;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* ks = qs + Br * D;  // [2][Bc·D]
  uint16_t* vs = ks + 2 * Bc * D;

  const int64_t h = blockIdx.x % p.nh, b = blockIdx.x / p.nh;
  const int64_t tile = gridDim.y - 1 - blockIdx.y;  // the longest causal rows first
  const int64_t t0 = tile * Br, hk = h / (p.nh / p.nhkv), offset = p.ns - p.nt;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tq = lane & 3;
  const float sl2 = float(p.scale) * kLog2e;

  const uint16_t* qg = head_ptr(p.q, b, h);
  const uint16_t* kg = head_ptr(p.k, b, hk);
  const uint16_t* vg = head_ptr(p.v, b, hk);
  load_tile<Br, D, NT>(qs, qg + t0 * p.q.s1, p.q.s1, int(min(int64_t(Br), p.nt - t0)));
  const int64_t kend = visible_keys(p, t0, Br);
  const int ntiles = int((kend + Bc - 1) / Bc);
  if (ntiles > 0) {
    load_tile<Bc, D, NT>(ks, kg, p.k.s1, int(min(int64_t(Bc), p.ns)));
    load_tile<Bc, D, NT>(vs, vg, p.v.s1, int(min(int64_t(Bc), p.ns)));
  }
  cp_async_commit();

  float o[MT][D / 8][4];
  zero(o);
  float m[MT][2], l[MT][2];
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) m[mt][0] = m[mt][1] = -INFINITY, l[mt][0] = l[mt][1] = 0.f;
  const int r0 = warp * 16 * MT;       // the warp's first row in the tile
  const int64_t row0 = t0 + r0 + gid;  // this thread's rows: row0 + 16·mt + 8·r
  uint32_t qa[MT][D / 16][4];          // the warp's Q rows, loaded once the first tiles have landed

  for (int j = 0; j < ntiles; ++j) {
    const int buf = j & 1;
    const int64_t s0 = int64_t(j) * Bc;
    if (j + 1 < ntiles) {
      const int64_t s1 = s0 + Bc;
      load_tile<Bc, D, NT>(ks + (buf ^ 1) * Bc * D, kg + s1 * p.k.s1, p.k.s1, int(min(int64_t(Bc), p.ns - s1)));
      load_tile<Bc, D, NT>(vs + (buf ^ 1) * Bc * D, vg + s1 * p.v.s1, p.v.s1, int(min(int64_t(Bc), p.ns - s1)));
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();

    if (j == 0) load_a_fragments<MT, D>(qa, qs, r0);
    float s[MT][Bc / 8][4];
    zero(s);
    gemm_rs_t<BF16, MT, Bc, D>(s, qa, ks + buf * Bc * D);

    // Only tiles that cross the diagonal or the end of the keys are masked.
    if (s0 + Bc > p.ns || (p.causal && s0 + Bc - 1 > t0 + offset)) {
#pragma unroll
      for (int mt = 0; mt < MT; ++mt)
#pragma unroll
        for (int jj = 0; jj < Bc / 8; ++jj)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int64_t key = s0 + jj * 8 + 2 * tq + (e & 1), row = row0 + 16 * mt + 8 * (e >> 1);
            if (key >= p.ns || (p.causal && key > row + offset)) s[mt][jj][e] = -INFINITY;
          }
    }

    // Online softmax on rows gid and gid + 8 of each row tile (four threads share a row).
#pragma unroll
    for (int mt = 0; mt < MT; ++mt) {
      float alpha[2];
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        float mx = m[mt][r];
#pragma unroll
        for (int jj = 0; jj < Bc / 8; ++jj) mx = fmaxf(mx, fmaxf(s[mt][jj][2 * r], s[mt][jj][2 * r + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        const float ref = mx == -INFINITY ? 0.f : mx * sl2;
        alpha[r] = fast_exp2(m[mt][r] * sl2 - ref);
        m[mt][r] = mx;
        float sum = 0.f;
#pragma unroll
        for (int jj = 0; jj < Bc / 8; ++jj) {
          s[mt][jj][2 * r] = fast_exp2(fmaf(s[mt][jj][2 * r], sl2, -ref));
          s[mt][jj][2 * r + 1] = fast_exp2(fmaf(s[mt][jj][2 * r + 1], sl2, -ref));
          sum += s[mt][jj][2 * r] + s[mt][jj][2 * r + 1];
        }
        l[mt][r] = l[mt][r] * alpha[r] + sum;
      }
#pragma unroll
      for (int jj = 0; jj < D / 8; ++jj) {
        o[mt][jj][0] *= alpha[0];
        o[mt][jj][1] *= alpha[0];
        o[mt][jj][2] *= alpha[1];
        o[mt][jj][3] *= alpha[1];
      }
    }
    uint32_t pa[MT][Bc / 16][4];
    to_a_fragments<BF16, MT, Bc>(pa, s);
    gemm_rs<BF16, MT, D, Bc>(o, pa, vs + buf * Bc * D);
    __syncthreads();  // the buffer is refilled by the next-but-one iteration
  }
  cp_async_wait<0>();

  float* lse = static_cast<float*>(p.lse) + (b * p.nh + h) * p.nt;
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    float inv[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float lr = l[mt][r];
      lr += __shfl_xor_sync(0xffffffffu, lr, 1);
      lr += __shfl_xor_sync(0xffffffffu, lr, 2);
      inv[r] = lr == 0.f ? 0.f : 1.f / lr;
      const int64_t row = row0 + 16 * mt + 8 * r;
      if (tq == 0 && row < p.nt) lse[row] = lr == 0.f ? -INFINITY : m[mt][r] * float(p.scale) + logf(lr);
    }
    store_rows<BF16, D>(o[mt], head_ptr_mut(p.out, b, h), p.out.s1, t0, r0 + 16 * mt, p.nt, inv);
  }
}

// ---- backward: dK, dV ----
template <int D>
struct DkvTiles {
  // 4 warps, two CTAs an SM. Head dim 64: each warp owns 32 keys (two row tiles share every Q and
  // dO fragment), 128-key tiles, 32 queries a step. Head dim 128: 16 keys a warp, 64-key tiles,
  // 32 queries a step.
  static constexpr int kMt = D == 64 ? 2 : 1;
  static constexpr int kWarps = 4, kBc = 16 * kMt * kWarps, kBr = 32, kThreads = kWarps * 32;
  static constexpr size_t kSmem =
      sizeof(uint16_t) * (2 * size_t(kBc) * D + 4 * size_t(kBr) * D) + sizeof(float) * 4 * kBr;
};

template <bool BF16, int D>
__global__ void __launch_bounds__(DkvTiles<D>::kThreads, 2) attention_mma_dkv_kernel(AttnParams p, const float* delta) {
  using Cfg = DkvTiles<D>;
  constexpr int Br = Cfg::kBr, Bc = Cfg::kBc, NT = Cfg::kThreads, MT = Cfg::kMt;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* ks = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* vs = ks + Bc * D;
  uint16_t* qs = vs + Bc * D;      // [2][Br·D]
  uint16_t* gs = qs + 2 * Br * D;  // dO, [2][Br·D]
  float* lses = reinterpret_cast<float*>(gs + 2 * Br * D);  // [2][Br]
  float* dls = lses + 2 * Br;                                // Δ, [2][Br]

  const int64_t hk = blockIdx.x % p.nhkv, b = blockIdx.x / p.nhkv;
  const int64_t s0 = int64_t(blockIdx.y) * Bc, group = p.nh / p.nhkv, offset = p.ns - p.nt;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tq = lane & 3;
  const float sl2 = float(p.scale) * kLog2e;

  load_tile<Bc, D, NT>(ks, head_ptr(p.k, b, hk) + s0 * p.k.s1, p.k.s1, int(min(int64_t(Bc), p.ns - s0)));
  load_tile<Bc, D, NT>(vs, head_ptr(p.v, b, hk) + s0 * p.v.s1, p.v.s1, int(min(int64_t(Bc), p.ns - s0)));
  // Causal: queries before t_first see no key of this tile.
  int64_t t_first = p.causal ? s0 - offset : 0;
  t_first = t_first < 0 ? 0 : (t_first / Br) * Br;
  const int64_t nqt = t_first < p.nt ? (p.nt - t_first + Br - 1) / Br : 0;
  const int64_t iters = nqt * group;
  auto issue = [&](int64_t it, int buf) {
    const int64_t h = hk * group + it / nqt, t0 = t_first + (it % nqt) * Br;
    const int rows = int(min(int64_t(Br), p.nt - t0));
    load_tile<Br, D, NT>(qs + buf * Br * D, head_ptr(p.q, b, h) + t0 * p.q.s1, p.q.s1, rows);
    load_tile<Br, D, NT>(gs + buf * Br * D, head_ptr(p.dout, b, h) + t0 * p.dout.s1, p.dout.s1, rows);
    const int64_t stats = (b * p.nh + h) * p.nt + t0;
    load_row_stats(lses + buf * Br, dls + buf * Br, static_cast<const float*>(p.lse) + stats, delta + stats, rows, Br);
  };
  if (iters > 0) issue(0, 0);
  cp_async_commit();

  float dk[MT][D / 8][4], dv[MT][D / 8][4];
  zero(dk);
  zero(dv);
  const int r0 = warp * 16 * MT;       // the warp's first key in the tile
  const int64_t key0 = s0 + r0 + gid;  // this thread's keys: key0 + 16·mt + 8·(e >> 1)

  for (int64_t it = 0; it < iters; ++it) {
    const int buf = int(it & 1);
    if (it + 1 < iters) {
      issue(it + 1, buf ^ 1);
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const int64_t t0 = t_first + (it % nqt) * Br;
    const uint16_t* q = qs + buf * Br * D;
    const uint16_t* g = gs + buf * Br * D;
    const float* lse = lses + buf * Br;
    const float* dl = dls + buf * Br;

    float st[MT][Br / 8][4];  // Sᵀ: keys × queries
    zero(st);
    gemm_ss<BF16, MT, Br, D>(st, ks, r0, q);
    const bool masked = p.causal && s0 + Bc - 1 > t0 + offset;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int jj = 0; jj < Br / 8; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int col = jj * 8 + 2 * tq + (e & 1);
          const int64_t key = key0 + 16 * mt + 8 * (e >> 1);
          const float x = masked && key > t0 + col + offset ? -INFINITY : st[mt][jj][e];
          st[mt][jj][e] = fast_exp2(fmaf(x, sl2, -lse_log2(lse[col])));
        }
    float dpt[MT][Br / 8][4];
    zero(dpt);
    gemm_ss<BF16, MT, Br, D>(dpt, vs, r0, g);
    uint32_t pa[MT][Br / 16][4];
    to_a_fragments<BF16, MT, Br>(pa, st);
    gemm_rs<BF16, MT, D, Br>(dv, pa, g);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int jj = 0; jj < Br / 8; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e)
          dpt[mt][jj][e] = st[mt][jj][e] * (dpt[mt][jj][e] - dl[jj * 8 + 2 * tq + (e & 1)]);
    to_a_fragments<BF16, MT, Br>(pa, dpt);
    gemm_rs<BF16, MT, D, Br>(dk, pa, q);
    __syncthreads();
  }
  cp_async_wait<0>();
  const float one[2] = {1.f, 1.f}, sc[2] = {float(p.scale), float(p.scale)};
#pragma unroll
  for (int mt = 0; mt < MT; ++mt) {
    store_rows<BF16, D>(dk[mt], head_ptr_mut(p.dk, b, hk), p.dk.s1, s0, r0 + 16 * mt, p.ns, sc);
    store_rows<BF16, D>(dv[mt], head_ptr_mut(p.dv, b, hk), p.dv.s1, s0, r0 + 16 * mt, p.ns, one);
  }
}

// ---- backward: dQ ----
template <int D>
struct DqTiles {
  // As the forward: head dim 64 gives each of the 4 warps 32 query rows (128-row tiles), head
  // dim 128 16 rows (64-row tiles); 64 keys a step, two CTAs an SM.
  static constexpr int kMt = D == 64 ? 2 : 1;
  static constexpr int kWarps = 4, kBr = 16 * kMt * kWarps, kBc = 64, kThreads = kWarps * 32;
  static constexpr size_t kSmem = sizeof(uint16_t) * (2 * size_t(kBr) * D + 4 * size_t(kBc) * D);
};

template <bool BF16, int D>
__global__ void __launch_bounds__(DqTiles<D>::kThreads, 2) attention_mma_dq_kernel(AttnParams p, const float* delta) {
  using Cfg = DqTiles<D>;
  constexpr int Br = Cfg::kBr, Bc = Cfg::kBc, NT = Cfg::kThreads, MT = Cfg::kMt;
  extern __shared__ __align__(16) unsigned char smem_raw[];
  uint16_t* qs = reinterpret_cast<uint16_t*>(smem_raw);
  uint16_t* gs = qs + Br * D;
  uint16_t* ks = gs + Br * D;  // [2][Bc·D]
  uint16_t* vs = ks + 2 * Bc * D;

  const int64_t h = blockIdx.x % p.nh, b = blockIdx.x / p.nh;
  const int64_t tile = gridDim.y - 1 - blockIdx.y;
  const int64_t t0 = tile * Br, hk = h / (p.nh / p.nhkv), offset = p.ns - p.nt;
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, gid = lane >> 2, tq = lane & 3;
  const float sl2 = float(p.scale) * kLog2e;

  const uint16_t* kg = head_ptr(p.k, b, hk);
  const uint16_t* vg = head_ptr(p.v, b, hk);
  const int rows = int(min(int64_t(Br), p.nt - t0));
  load_tile<Br, D, NT>(qs, head_ptr(p.q, b, h) + t0 * p.q.s1, p.q.s1, rows);
  load_tile<Br, D, NT>(gs, head_ptr(p.dout, b, h) + t0 * p.dout.s1, p.dout.s1, rows);
  const int64_t kend = visible_keys(p, t0, Br);
  const int ntiles = int((kend + Bc - 1) / Bc);
  if (ntiles > 0) {
    load_tile<Bc, D, NT>(ks, kg, p.k.s1, int(min(int64_t(Bc), p.ns)));
    load_tile<Bc, D, NT>(vs, vg, p.v.s1, int(min(int64_t(Bc), p.ns)));
  }
  cp_async_commit();

  const int r0 = warp * 16 * MT;
  const int64_t row0 = t0 + r0 + gid;  // this thread's rows: row0 + 16·mt + 8·r
  float lse2[MT][2], dl[MT][2];
  {
    const float* lse = static_cast<const float*>(p.lse) + (b * p.nh + h) * p.nt;
    const float* dd = delta + (b * p.nh + h) * p.nt;
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int r = 0; r < 2; ++r) {
        const int64_t row = row0 + 16 * mt + 8 * r;
        lse2[mt][r] = lse_log2(row < p.nt ? lse[row] : -INFINITY);
        dl[mt][r] = row < p.nt ? dd[row] : 0.f;
      }
  }
  float dq[MT][D / 8][4];
  zero(dq);

  for (int j = 0; j < ntiles; ++j) {
    const int buf = j & 1;
    const int64_t s0 = int64_t(j) * Bc;
    if (j + 1 < ntiles) {
      const int64_t s1 = s0 + Bc;
      load_tile<Bc, D, NT>(ks + (buf ^ 1) * Bc * D, kg + s1 * p.k.s1, p.k.s1, int(min(int64_t(Bc), p.ns - s1)));
      load_tile<Bc, D, NT>(vs + (buf ^ 1) * Bc * D, vg + s1 * p.v.s1, p.v.s1, int(min(int64_t(Bc), p.ns - s1)));
      cp_async_commit();
      cp_async_wait<1>();
    } else {
      cp_async_wait<0>();
    }
    __syncthreads();
    const uint16_t* k = ks + buf * Bc * D;

    float s[MT][Bc / 8][4];
    zero(s);
    gemm_ss<BF16, MT, Bc, D>(s, qs, r0, k);
    const bool masked = s0 + Bc > p.ns || (p.causal && s0 + Bc - 1 > t0 + offset);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int jj = 0; jj < Bc / 8; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e) {
          const int64_t key = s0 + jj * 8 + 2 * tq + (e & 1), row = row0 + 16 * mt + 8 * (e >> 1);
          const bool out = masked && (key >= p.ns || (p.causal && key > row + offset));
          s[mt][jj][e] = fast_exp2(fmaf(out ? -INFINITY : s[mt][jj][e], sl2, -lse2[mt][e >> 1]));
        }
    float dp[MT][Bc / 8][4];
    zero(dp);
    gemm_ss<BF16, MT, Bc, D>(dp, gs, r0, vs + buf * Bc * D);
#pragma unroll
    for (int mt = 0; mt < MT; ++mt)
#pragma unroll
      for (int jj = 0; jj < Bc / 8; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[mt][jj][e] = s[mt][jj][e] * (dp[mt][jj][e] - dl[mt][e >> 1]);
    uint32_t da[MT][Bc / 16][4];
    to_a_fragments<BF16, MT, Bc>(da, dp);
    gemm_rs<BF16, MT, D, Bc>(dq, da, k);
    __syncthreads();
  }
  cp_async_wait<0>();
  const float sc[2] = {float(p.scale), float(p.scale)};
#pragma unroll
  for (int mt = 0; mt < MT; ++mt)
    store_rows<BF16, D>(dq[mt], head_ptr_mut(p.dq, b, h), p.dq.s1, t0, r0 + 16 * mt, p.nt, sc);
}

// ---- launchers ----
template <class F>
void dispatch_mma(DType t, int64_t d, const char* op, F&& f) {
  LF_CHECK(d == 64 || d == 128, "{}: the tensor-core kernel takes head dim 64 or 128, got {}", op, d);
  if (t == DType::BF16) {
    if (d == 64) f(std::true_type{}, std::integral_constant<int, 64>{});
    else f(std::true_type{}, std::integral_constant<int, 128>{});
  } else if (t == DType::F16) {
    if (d == 64) f(std::false_type{}, std::integral_constant<int, 64>{});
    else f(std::false_type{}, std::integral_constant<int, 128>{});
  } else {
    throw_unsupported_dtype(t, op);
  }
}

template <class K>
void set_smem(K kernel, size_t bytes) {
  LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

unsigned tiles_of(int64_t n, int tile) { return unsigned((n + tile - 1) / tile); }

}  // namespace

void launch_attention_mma_forward(const CudaContext& ctx, DType t, const AttnParams& p) {
  if (ctx.wgmma_attention && p.d == 64) return launch_attention_wgmma_forward(ctx, t, p);
  if (p.nb * p.nh * p.nt == 0) return;
  dispatch_mma(t, p.d, "attention (tensor cores)", [&](auto bf, auto dc) {
    constexpr bool BF16 = decltype(bf)::value;
    constexpr int D = decltype(dc)::value;
    using Cfg = FwdTiles<D>;
    auto kernel = attention_mma_forward_kernel<BF16, D>;
    set_smem(kernel, Cfg::kSmem);
    const dim3 grid(unsigned(p.nb * p.nh), tiles_of(p.nt, Cfg::kBr));
    kernel<<<grid, Cfg::kThreads, Cfg::kSmem, ctx.stream>>>(p);
  });
  LF_CUDA_CHECK_LAUNCH("attention_mma_forward_kernel");
}

void launch_attention_mma_backward(const CudaContext& ctx, DType t, const AttnParams& p) {
  if (ctx.wgmma_attention && p.d == 64) return launch_attention_wgmma_backward(ctx, t, p);
  Scratch delta(ctx.device, size_t(p.nb * p.nh * p.nt) * sizeof(float));
  if (p.nb * p.nh * p.nt > 0) launch_attention_delta(ctx, t, p, delta.get<float>());
  dispatch_mma(t, p.d, "attention_backward (tensor cores)", [&](auto bf, auto dc) {
    constexpr bool BF16 = decltype(bf)::value;
    constexpr int D = decltype(dc)::value;
    if (p.nb * p.nh * p.nt > 0) {
      using Cfg = DqTiles<D>;
      auto kernel = attention_mma_dq_kernel<BF16, D>;
      set_smem(kernel, Cfg::kSmem);
      const dim3 grid(unsigned(p.nb * p.nh), tiles_of(p.nt, Cfg::kBr));
      kernel<<<grid, Cfg::kThreads, Cfg::kSmem, ctx.stream>>>(p, delta.get<float>());
      LF_CUDA_CHECK_LAUNCH("attention_mma_dq_kernel");
    }
    if (p.nb * p.nhkv * p.ns > 0) {
      using Cfg = DkvTiles<D>;
      auto kernel = attention_mma_dkv_kernel<BF16, D>;
      set_smem(kernel, Cfg::kSmem);
      const dim3 grid(unsigned(p.nb * p.nhkv), tiles_of(p.ns, Cfg::kBc));
      kernel<<<grid, Cfg::kThreads, Cfg::kSmem, ctx.stream>>>(p, delta.get<float>());
      LF_CUDA_CHECK_LAUNCH("attention_mma_dkv_kernel");
    }
  });
}

}  // namespace lmforge::cuda
