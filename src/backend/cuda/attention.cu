// GPU scaled-dot-product attention, forward and backward: a tiled kernel with an online softmax
// (FlashAttention-2's schedule, Dao 2023) on CUDA cores, so memory stays linear in T and S.
// Twin of backend/cpu/attention_cpu.cpp, with the same contract:
//
//   B batch, T queries, S keys, H query heads, Hkv kv heads (query head h reads kv head
//   h / (H / Hkv): MHA, GQA, MQA), D = q/k head dim, Dv = v head dim.
//   q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv]: last dim contiguous, strides free.
//   mask: none, or additive [B, H, T, S] (compute type) given by strides.
//   causal: query t sees keys s <= t + (S - T). out [B, T, H, Dv]; lse [B, H, T] (compute type).
//   A query that sees no key has output 0, lse = -inf, and contributes nothing to gradients.
//
// Forward, one block per (b, h, tile of Br queries): the scaled Q tile, the K and V tiles of Bc
// keys, the scores and the output accumulator live in shared memory; per key tile
//   S = Q·Kᵀ (+ mask, causal -inf); row max m, α = e^{m_old - m}, P = e^{S - m}, l = α·l + ΣP;
//   O = α·O + P·V;  at the end O /= l, lse = m + log l.
// Backward recomputes P = e^{S - lse} and uses Δ_t = Σ dO_t·O_t:
//   dS = P∘(dO·Vᵀ - Δ);  dq = scale·dS·K;  dk = dSᵀ·(scale·Q);  dv = Pᵀ·dO.
//   Pass 1, one block per (b, h, query tile): dq (each row written by one block).
//   Pass 2, one block per (b, kv head, key tile): dk and dv, summing the query heads of the
//   group and the query tiles in a fixed order. No atomics: deterministic.
// Tile sizes are chosen at run time from D, Dv and the element size so that any head dim up to a
// few hundred fits in shared memory; the kernels are instantiated once per dtype. This is the
// general path; bf16 / f16 with head dim 64 or 128 and no mask run attention_mma.cu instead.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

constexpr int kAttnThreads = 128;

// C[r·ldc + c] = (row_scale ? row_scale[r] : keep) · C + Σ_p opA(r, p)·opB(p, c) for r < M, c < N;
//   opA(r, p) = TA ? a[p·lda + r] : a[r·lda + p];  opB(p, c) = TB ? b[c·ldb + p] : b[p·ldb + c].
// accumulate = false overwrites C. Consecutive threads take consecutive c (conflict-free with the
// padded leading dimensions used below). Ends with a barrier.
template <bool TA, bool TB, class A>
__device__ void block_mm(A* c, int ldc, const A* a, int lda, const A* b, int ldb, int m, int n, int k,
                         bool accumulate, const A* row_scale) {
  for (int e = threadIdx.x; e < m * n; e += blockDim.x) {
    const int r = e / n, col = e - r * n;
    A acc = 0;
    for (int p = 0; p < k; ++p) {
      const A av = TA ? a[p * lda + r] : a[r * lda + p];
      const A bv = TB ? b[col * ldb + p] : b[p * ldb + col];
      acc += av * bv;
    }
    A* cp = c + r * ldc + col;
    if (!accumulate) *cp = acc;
    else if (row_scale) *cp = row_scale[r] * *cp + acc;
    else *cp += acc;
  }
  __syncthreads();
}

// Loads rows [i0, i0 + rows) of head h of batch b of an operand into dst[r·ld + p], times `scale`.
template <class T, class A>
__device__ void load_rows(A* dst, int ld, const AttnOperand& op, int64_t b, int64_t i0, int64_t h, int rows, int w,
                          A scale) {
  const T* base = static_cast<const T*>(op.base) + b * op.s0 + h * op.s2;
  for (int e = threadIdx.x; e < rows * w; e += blockDim.x) {
    const int r = e / w, p = e - r * w;
    dst[r * ld + p] = A(load(base[(i0 + r) * op.s1 + p])) * scale;
  }
}

// Adds the mask and the causal -inf to s[i·lds + j] for queries t0 + i, keys s0 + j.
template <class A>
__device__ void mask_scores(A* s, int lds, const AttnParams& p, int64_t b, int64_t h, int64_t t0, int br, int64_t s0,
                            int bc) {
  const A* mask = static_cast<const A*>(p.mask);
  const int64_t offset = p.ns - p.nt;
  for (int e = threadIdx.x; e < br * bc; e += blockDim.x) {
    const int i = e / bc, j = e - i * bc;
    A v = s[i * lds + j];
    if (mask) v += mask[b * p.mask_sb + h * p.mask_sh + (t0 + i) * p.mask_st + (s0 + j) * p.mask_ss];
    if (p.causal && s0 + j > t0 + i + offset) v = -m_inf<A>();
    s[i * lds + j] = v;
  }
  __syncthreads();
}

// Keys [0, key_end) are visible to some query of the tile [t0, t0 + br).
__device__ __forceinline__ int64_t key_end(const AttnParams& p, int64_t t0, int br) {
  if (!p.causal) return p.ns;
  const int64_t e = t0 + br + (p.ns - p.nt);
  return e < 0 ? 0 : (e > p.ns ? p.ns : e);
}

struct Tiles {
  int br, bc;
};

// ---- forward ----
template <class T>
__global__ void __launch_bounds__(kAttnThreads) attention_forward_kernel(AttnParams p, Tiles tiles) {
  using A = compute_t<T>;
  extern __shared__ unsigned char smem_raw[];
  const int d = int(p.d), dv = int(p.dv_dim), Br = tiles.br, Bc = tiles.bc;
  const int ldq = d + 1, ldk = d + 1, ldv = dv + 1, lds = Bc + 1, ldo = dv + 1;
  A* qs = reinterpret_cast<A*>(smem_raw);
  A* ks = qs + Br * ldq;
  A* vs = ks + Bc * ldk;
  A* ss = vs + Bc * ldv;
  A* os = ss + Br * lds;
  A* row_m = os + Br * ldo;
  A* row_l = row_m + Br;
  A* row_alpha = row_l + Br;

  const int64_t b = blockIdx.z, h = blockIdx.y, t0 = int64_t(blockIdx.x) * Br;
  const int br = int(min(int64_t(Br), p.nt - t0));
  const int64_t hk = h / (p.nh / p.nhkv);
  load_rows<T>(qs, ldq, p.q, b, t0, h, br, d, A(p.scale));
  for (int e = threadIdx.x; e < br * dv; e += blockDim.x) os[(e / dv) * ldo + e % dv] = A(0);
  for (int i = threadIdx.x; i < Br; i += blockDim.x) {
    row_m[i] = -m_inf<A>();
    row_l[i] = A(0);
  }
  __syncthreads();

  const int tpr = blockDim.x / Br;  // threads per row in the softmax step (a power of two <= 32)
  const int64_t kend = key_end(p, t0, br);
  for (int64_t s0 = 0; s0 < kend; s0 += Bc) {
    const int bc = int(min(int64_t(Bc), kend - s0));
    load_rows<T>(ks, ldk, p.k, b, s0, hk, bc, d, A(1));
    load_rows<T>(vs, ldv, p.v, b, s0, hk, bc, dv, A(1));
    __syncthreads();
    block_mm<false, true>(ss, lds, qs, ldq, ks, ldk, br, bc, d, false, (const A*)nullptr);
    mask_scores(ss, lds, p, b, h, t0, br, s0, bc);
    // Online softmax, tpr threads per row.
    {
      const int i = threadIdx.x / tpr, sub = threadIdx.x % tpr;
      A mx = -m_inf<A>();
      if (i < br)
        for (int j = sub; j < bc; j += tpr) mx = fmax(mx, ss[i * lds + j]);
      for (int o = tpr / 2; o > 0; o >>= 1) mx = fmax(mx, __shfl_xor_sync(0xffffffffu, mx, o));
      const A m_old = i < br ? row_m[i] : -m_inf<A>();
      const A m_new = fmax(m_old, mx);
      A sum = 0;
      if (i < br) {
        if (m_new == -m_inf<A>()) {
          for (int j = sub; j < bc; j += tpr) ss[i * lds + j] = A(0);
        } else {
          for (int j = sub; j < bc; j += tpr) {
            const A e = m_exp(ss[i * lds + j] - m_new);
            ss[i * lds + j] = e;
            sum += e;
          }
        }
      }
      for (int o = tpr / 2; o > 0; o >>= 1) sum += __shfl_xor_sync(0xffffffffu, sum, o);
      if (i < br && sub == 0) {
        if (m_new == -m_inf<A>()) {
          row_alpha[i] = A(1);
        } else {
          const A alpha = m_exp(m_old - m_new);
          row_alpha[i] = alpha;
          row_l[i] = row_l[i] * alpha + sum;
          row_m[i] = m_new;
        }
      }
    }
    __syncthreads();
    block_mm<false, false>(os, ldo, ss, lds, vs, ldv, br, dv, bc, true, row_alpha);
  }

  T* out = static_cast<T*>(const_cast<void*>(p.out.base)) + b * p.out.s0 + h * p.out.s2;
  for (int e = threadIdx.x; e < br * dv; e += blockDim.x) {
    const int i = e / dv, c = e - i * dv;
    const A l = row_l[i];
    out[(t0 + i) * p.out.s1 + c] = store<T>(l == A(0) ? A(0) : os[i * ldo + c] * (A(1) / l));
  }
  A* lse = static_cast<A*>(p.lse) + (b * p.nh + h) * p.nt + t0;
  for (int i = threadIdx.x; i < br; i += blockDim.x)
    lse[i] = row_l[i] == A(0) ? -m_inf<A>() : row_m[i] + m_log(row_l[i]);
}

// ---- backward ----
// Δ [B, H, T] = Σ_c dO·O, one warp per row.
template <class T>
__global__ void attention_delta_kernel(AttnParams p, compute_t<T>* __restrict__ delta) {
  using A = compute_t<T>;
  const int64_t rows = p.nb * p.nh * p.nt;
  const int lane = threadIdx.x & 31;
  const int64_t warps = int64_t(gridDim.x) * (blockDim.x / 32);
  for (int64_t r = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32; r < rows; r += warps) {
    const int64_t t = r % p.nt, h = (r / p.nt) % p.nh, b = r / (p.nt * p.nh);
    const T* o = static_cast<const T*>(p.out.base) + b * p.out.s0 + t * p.out.s1 + h * p.out.s2;
    const T* g = static_cast<const T*>(p.dout.base) + b * p.dout.s0 + t * p.dout.s1 + h * p.dout.s2;
    A acc = 0;
    for (int64_t c = lane; c < p.dv_dim; c += 32) acc += A(load(g[c])) * A(load(o[c]));
    acc = warp_sum(acc);
    if (lane == 0) delta[r] = acc;
  }
}

// The same for 2-byte types whose rows are 16-byte aligned, read at full bandwidth: G lanes a row
// (16 bytes a load each), rows in memory order (b, t, h), 32-bit index arithmetic.
template <class T, int G>
__global__ void attention_delta_vec_kernel(AttnParams p, float* __restrict__ delta) {
  static_assert(sizeof(T) == 2 && 32 % G == 0);
  const uint32_t rows = uint32_t(p.nb * p.nt * p.nh), nh = uint32_t(p.nh), nt = uint32_t(p.nt);
  const int sub = threadIdx.x % G, dv = int(p.dv_dim);
  const uint32_t stride = gridDim.x * (blockDim.x / G);
  for (uint32_t r = blockIdx.x * (blockDim.x / G) + threadIdx.x / G; r < rows; r += stride) {
    const uint32_t h = r % nh, bt = r / nh, t = bt % nt, b = bt / nt;
    const T* o = static_cast<const T*>(p.out.base) + b * p.out.s0 + t * p.out.s1 + h * p.out.s2;
    const T* g = static_cast<const T*>(p.dout.base) + b * p.dout.s0 + t * p.dout.s1 + h * p.dout.s2;
    float acc = 0.f;
    for (int c = 8 * sub; c < dv; c += 8 * G) {
      const uint4 ov = *reinterpret_cast<const uint4*>(o + c), gv = *reinterpret_cast<const uint4*>(g + c);
      const T* oe = reinterpret_cast<const T*>(&ov);
      const T* ge = reinterpret_cast<const T*>(&gv);
#pragma unroll
      for (int e = 0; e < 8; ++e) acc += load(ge[e]) * load(oe[e]);
    }
#pragma unroll
    for (int off = G / 2; off > 0; off >>= 1) acc += __shfl_xor_sync(0xffffffffu, acc, off);
    if (sub == 0) delta[(uint64_t(b) * nh + h) * nt + t] = acc;
  }
}

// s[i·lds + j] <- P = e^{s - lse_i} (0 for rows that see no key).
template <class A>
__device__ void probabilities(A* s, int lds, const A* lse, int br, int bc) {
  for (int e = threadIdx.x; e < br * bc; e += blockDim.x) {
    const int i = e / bc, j = e - i * bc;
    const A l = lse[i];
    s[i * lds + j] = l == -m_inf<A>() ? A(0) : m_exp(s[i * lds + j] - l);
  }
  __syncthreads();
}

// dp[i·lds + j] <- P∘(dp - Δ_i)
template <class A>
__device__ void score_grad(A* dp, const A* pr, int lds, const A* delta, int br, int bc) {
  for (int e = threadIdx.x; e < br * bc; e += blockDim.x) {
    const int i = e / bc, j = e - i * bc;
    dp[i * lds + j] = pr[i * lds + j] * (dp[i * lds + j] - delta[i]);
  }
  __syncthreads();
}

template <class T, class A>
__device__ void store_rows(const AttnOperand& op, int64_t b, int64_t i0, int64_t h, const A* src, int ld, int rows,
                           int w, A scale) {
  T* base = static_cast<T*>(const_cast<void*>(op.base)) + b * op.s0 + h * op.s2;
  for (int e = threadIdx.x; e < rows * w; e += blockDim.x) {
    const int r = e / w, c = e - r * w;
    base[(i0 + r) * op.s1 + c] = store<T>(src[r * ld + c] * scale);
  }
}

// Pass 1: dq for one (b, h, query tile).
template <class T>
__global__ void __launch_bounds__(kAttnThreads) attention_dq_kernel(AttnParams p, Tiles tiles,
                                                                     const compute_t<T>* __restrict__ delta) {
  using A = compute_t<T>;
  extern __shared__ unsigned char smem_raw[];
  const int d = int(p.d), dv = int(p.dv_dim), Br = tiles.br, Bc = tiles.bc;
  const int ldq = d + 1, ldg = dv + 1, ldk = d + 1, ldv = dv + 1, lds = Bc + 1;
  A* qs = reinterpret_cast<A*>(smem_raw);
  A* gs = qs + Br * ldq;    // dO
  A* dqs = gs + Br * ldg;   // dq accumulator
  A* ks = dqs + Br * ldq;
  A* vs = ks + Bc * ldk;
  A* ss = vs + Bc * ldv;    // P
  A* dps = ss + Br * lds;   // dP, then dS
  A* row_lse = dps + Br * lds;
  A* row_delta = row_lse + Br;

  const int64_t b = blockIdx.z, h = blockIdx.y, t0 = int64_t(blockIdx.x) * Br;
  const int br = int(min(int64_t(Br), p.nt - t0));
  const int64_t hk = h / (p.nh / p.nhkv);
  load_rows<T>(qs, ldq, p.q, b, t0, h, br, d, A(p.scale));
  load_rows<T>(gs, ldg, p.dout, b, t0, h, br, dv, A(1));
  for (int e = threadIdx.x; e < br * d; e += blockDim.x) dqs[(e / d) * ldq + e % d] = A(0);
  const A* lse = static_cast<const A*>(p.lse) + (b * p.nh + h) * p.nt + t0;
  for (int i = threadIdx.x; i < br; i += blockDim.x) {
    row_lse[i] = lse[i];
    row_delta[i] = delta[(b * p.nh + h) * p.nt + t0 + i];
  }
  __syncthreads();
  const int64_t kend = key_end(p, t0, br);
  for (int64_t s0 = 0; s0 < kend; s0 += Bc) {
    const int bc = int(min(int64_t(Bc), kend - s0));
    load_rows<T>(ks, ldk, p.k, b, s0, hk, bc, d, A(1));
    load_rows<T>(vs, ldv, p.v, b, s0, hk, bc, dv, A(1));
    __syncthreads();
    block_mm<false, true>(ss, lds, qs, ldq, ks, ldk, br, bc, d, false, (const A*)nullptr);
    mask_scores(ss, lds, p, b, h, t0, br, s0, bc);
    probabilities(ss, lds, row_lse, br, bc);
    block_mm<false, true>(dps, lds, gs, ldg, vs, ldv, br, bc, dv, false, (const A*)nullptr);  // dP = dO·Vᵀ
    score_grad(dps, ss, lds, row_delta, br, bc);
    block_mm<false, false>(dqs, ldq, dps, lds, ks, ldk, br, d, bc, true, (const A*)nullptr);  // dQ += dS·K
  }
  store_rows<T>(p.dq, b, t0, h, dqs, ldq, br, d, A(p.scale));
}

// Pass 2: dk, dv for one (b, kv head, key tile).
template <class T>
__global__ void __launch_bounds__(kAttnThreads) attention_dkv_kernel(AttnParams p, Tiles tiles,
                                                                      const compute_t<T>* __restrict__ delta) {
  using A = compute_t<T>;
  extern __shared__ unsigned char smem_raw[];
  const int d = int(p.d), dv = int(p.dv_dim), Br = tiles.br, Bc = tiles.bc;
  const int ldk = d + 1, ldv = dv + 1, ldq = d + 1, ldg = dv + 1, lds = Bc + 1;
  A* ks = reinterpret_cast<A*>(smem_raw);
  A* vs = ks + Bc * ldk;
  A* dks = vs + Bc * ldv;
  A* dvs = dks + Bc * ldk;
  A* qs = dvs + Bc * ldv;
  A* gs = qs + Br * ldq;
  A* ss = gs + Br * ldg;
  A* dps = ss + Br * lds;
  A* row_lse = dps + Br * lds;
  A* row_delta = row_lse + Br;

  const int64_t b = blockIdx.z, hk = blockIdx.y, s0 = int64_t(blockIdx.x) * Bc;
  const int bc = int(min(int64_t(Bc), p.ns - s0));
  const int64_t group = p.nh / p.nhkv;
  load_rows<T>(ks, ldk, p.k, b, s0, hk, bc, d, A(1));
  load_rows<T>(vs, ldv, p.v, b, s0, hk, bc, dv, A(1));
  for (int e = threadIdx.x; e < bc * d; e += blockDim.x) dks[(e / d) * ldk + e % d] = A(0);
  for (int e = threadIdx.x; e < bc * dv; e += blockDim.x) dvs[(e / dv) * ldv + e % dv] = A(0);
  __syncthreads();
  // Causal: only queries t with t + (S - T) >= s0 see a key of this tile.
  int64_t t_first = 0;
  if (p.causal) {
    t_first = s0 - (p.ns - p.nt);
    if (t_first < 0) t_first = 0;
  }
  for (int64_t h = hk * group; h < (hk + 1) * group; ++h) {
    for (int64_t t0 = (t_first / Br) * Br; t0 < p.nt; t0 += Br) {
      const int br = int(min(int64_t(Br), p.nt - t0));
      load_rows<T>(qs, ldq, p.q, b, t0, h, br, d, A(p.scale));
      load_rows<T>(gs, ldg, p.dout, b, t0, h, br, dv, A(1));
      const A* lse = static_cast<const A*>(p.lse) + (b * p.nh + h) * p.nt + t0;
      for (int i = threadIdx.x; i < br; i += blockDim.x) {
        row_lse[i] = lse[i];
        row_delta[i] = delta[(b * p.nh + h) * p.nt + t0 + i];
      }
      __syncthreads();
      block_mm<false, true>(ss, lds, qs, ldq, ks, ldk, br, bc, d, false, (const A*)nullptr);
      mask_scores(ss, lds, p, b, h, t0, br, s0, bc);
      probabilities(ss, lds, row_lse, br, bc);
      block_mm<true, false>(dvs, ldv, ss, lds, gs, ldg, bc, dv, br, true, (const A*)nullptr);   // dV += Pᵀ·dO
      block_mm<false, true>(dps, lds, gs, ldg, vs, ldv, br, bc, dv, false, (const A*)nullptr);  // dP = dO·Vᵀ
      score_grad(dps, ss, lds, row_delta, br, bc);
      block_mm<true, false>(dks, ldk, dps, lds, qs, ldq, bc, d, br, true, (const A*)nullptr);   // dK += dSᵀ·Q
    }
  }
  store_rows<T>(p.dk, b, s0, hk, dks, ldk, bc, d, A(1));
  store_rows<T>(p.dv, b, s0, hk, dvs, ldv, bc, dv, A(1));
}

size_t forward_smem(int br, int bc, int d, int dv, size_t es) {
  return es * (size_t(br) * (d + 1) + size_t(bc) * (d + 1) + size_t(bc) * (dv + 1) + size_t(br) * (bc + 1) +
               size_t(br) * (dv + 1) + 3 * size_t(br));
}
size_t dq_smem(int br, int bc, int d, int dv, size_t es) {
  return es * (2 * size_t(br) * (d + 1) + size_t(br) * (dv + 1) + size_t(bc) * (d + 1) + size_t(bc) * (dv + 1) +
               2 * size_t(br) * (bc + 1) + 2 * size_t(br));
}
size_t dkv_smem(int br, int bc, int d, int dv, size_t es) {
  return es * (2 * size_t(bc) * (d + 1) + 2 * size_t(bc) * (dv + 1) + size_t(br) * (d + 1) + size_t(br) * (dv + 1) +
               2 * size_t(br) * (bc + 1) + 2 * size_t(br));
}

// The largest square tile (32, 16 or 8) whose shared memory fits.
template <class F>
Tiles pick_tiles(const CudaContext& ctx, const AttnParams& p, size_t es, F&& smem_of, size_t& smem) {
  for (int t = 32; t >= 8; t /= 2) {
    smem = smem_of(t, t, int(p.d), int(p.dv_dim), es);
    if (smem <= ctx.smem_per_block_optin) return {t, t};
  }
  throw_unsupported_dtype(DType::F64, "attention (head dim too large for the shared-memory tiles)");
}

}  // namespace

void launch_attention_forward(const CudaContext& ctx, DType t, const AttnParams& p) {
  if (p.nb * p.nh * p.nt == 0) return;
  dispatch_nn(t, "attention", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    size_t smem = 0;
    const Tiles tiles = pick_tiles(ctx, p, sizeof(A), forward_smem, smem);
    LF_CUDA_CHECK(cudaFuncSetAttribute(attention_forward_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(smem)));
    const dim3 grid(unsigned((p.nt + tiles.br - 1) / tiles.br), unsigned(p.nh), unsigned(p.nb));
    attention_forward_kernel<T><<<grid, kAttnThreads, smem, ctx.stream>>>(p, tiles);
  });
  LF_CUDA_CHECK_LAUNCH("attention_forward_kernel");
}

void launch_attention_delta(const CudaContext& ctx, DType t, const AttnParams& p, void* delta) {
  dispatch_nn(t, "attention_backward", [&](auto t0) {
    using T = decltype(t0);
    if constexpr (sizeof(T) == 2) {
      const auto aligned = [](const AttnOperand& op) {
        return reinterpret_cast<uintptr_t>(op.base) % 16 == 0 && op.s0 % 8 == 0 && op.s1 % 8 == 0 && op.s2 % 8 == 0;
      };
      if (p.dv_dim % 8 == 0 && aligned(p.out) && aligned(p.dout) && p.nb * p.nt * p.nh < (int64_t(1) << 31)) {
        const auto launch = [&](auto kernel, int g) {
          kernel<<<grid_for(ctx, p.nb * p.nh * p.nt * g), kThreads, 0, ctx.stream>>>(p, static_cast<float*>(delta));
        };
        if (p.dv_dim <= 32) launch(attention_delta_vec_kernel<T, 4>, 4);
        else if (p.dv_dim <= 64) launch(attention_delta_vec_kernel<T, 8>, 8);
        else launch(attention_delta_vec_kernel<T, 16>, 16);
        return;
      }
    }
    attention_delta_kernel<T><<<grid_for(ctx, p.nb * p.nh * p.nt * 32), kThreads, 0, ctx.stream>>>(
        p, static_cast<compute_t<T>*>(delta));
  });
  LF_CUDA_CHECK_LAUNCH("attention_delta_kernel");
}

void launch_attention_backward(const CudaContext& ctx, DType t, const AttnParams& p) {
  dispatch_nn(t, "attention_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    Scratch delta(ctx.device, size_t(p.nb * p.nh * p.nt) * sizeof(A));
    if (p.nb * p.nh * p.nt > 0) {
      launch_attention_delta(ctx, t, p, delta.get());
      size_t smem = 0;
      const Tiles tiles = pick_tiles(ctx, p, sizeof(A), dq_smem, smem);
      LF_CUDA_CHECK(cudaFuncSetAttribute(attention_dq_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(smem)));
      const dim3 grid(unsigned((p.nt + tiles.br - 1) / tiles.br), unsigned(p.nh), unsigned(p.nb));
      attention_dq_kernel<T><<<grid, kAttnThreads, smem, ctx.stream>>>(p, tiles, delta.get<A>());
      LF_CUDA_CHECK_LAUNCH("attention_dq_kernel");
    }
    if (p.nb * p.nhkv * p.ns > 0) {
      size_t smem = 0;
      const Tiles tiles = pick_tiles(ctx, p, sizeof(A), dkv_smem, smem);
      LF_CUDA_CHECK(cudaFuncSetAttribute(attention_dkv_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         int(smem)));
      const dim3 grid(unsigned((p.ns + tiles.bc - 1) / tiles.bc), unsigned(p.nhkv), unsigned(p.nb));
      attention_dkv_kernel<T><<<grid, kAttnThreads, smem, ctx.stream>>>(p, tiles, delta.get<A>());
      LF_CUDA_CHECK_LAUNCH("attention_dkv_kernel");
    }
  });
}

}  // namespace lmforge::cuda
