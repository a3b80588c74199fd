// Tensor-core attention on Hopper (sm_90a: wgmma) for bf16 / f16 with head dim 64 (D == Dv),
// forward and backward: the same contract, numerics and tiling order as attention_mma.cu (whose
// file comment describes the algorithm), with every tile product a warp-group wgmma instead of
// per-warp mma.sync. The launchers in attention_mma.cu call these on compute capability 9.0 for
// head dim 64; this file is built for sm_90a alone (CMakeLists.txt).
//
// What wgmma changes: one instruction multiplies a 64-row A tile (register fragments: the
// forward's Q and P, the backward's P and dS; or a shared tile: the backward's Q, dO, K and V) by a
// B tile the tensor cores read straight from the swizzled shared tile, with no ldmatrix and no B
// registers; products run asynchronously while the warps compute the softmax of the previous one.
// A warp group (4 warps) owns 64 rows. A dK/dV CTA is one group, three CTAs an SM; a forward CTA
// is two groups (128 queries) sharing each K/V tile, two CTAs an SM, and so is a dQ CTA up to
// T = 1024 (three one-group CTAs beyond; see the launchers):
//   forward:  S = Q·Kᵀ (B = K, K-major), O = α·O + P·V (B = V, MN-major);
//   dK / dV:  Sᵀ = K·Qᵀ and dPᵀ = V·dOᵀ (B = Q, dO, K-major) run together; dV += Pᵀ·dO and
//             dK += dSᵀ·Q (B = dO, Q, MN-major) start as soon as Pᵀ, then dSᵀ, are ready;
//   dQ:       S = Q·Kᵀ and dP = dO·Vᵀ together, then dQ += dS·K (B = K, MN-major).
// Deterministic as the sm_80 kernels: no atomics, a fixed order of every sum.
#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "backend/cuda/attention_tile.cuh"
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/scratch.h"
#include "backend/cuda/wgmma.cuh"

namespace lmforge::cuda {

namespace {

using namespace attn;

constexpr int kD = 64;                           // head dim
constexpr int kWgRows = 64;                      // rows of A (and D) a warp group owns
constexpr size_t kSmemAlign = 1024;              // the 128-byte swizzle pattern repeats every 1024 bytes

// The dynamic shared memory, its start rounded up to the swizzle period.
__device__ __forceinline__ uint16_t* aligned_smem(unsigned char* raw) {
  const uintptr_t a = reinterpret_cast<uintptr_t>(raw);
  return reinterpret_cast<uint16_t*>((a + kSmemAlign - 1) & ~uintptr_t(kSmemAlign - 1));
}

struct WarpGroupLane {
  int warp, lane, gid, tq;  // warp within the group; lane; row group (lane / 4); lane % 4
  __device__ WarpGroupLane() : warp(threadIdx.x >> 5), lane(threadIdx.x & 31), gid(lane >> 2), tq(lane & 3) {}
  // The warp's first row in the tile.
  __device__ int row0() const { return 16 * warp; }
};

// A 64-bit index difference as an int, clamped far beyond any tile (for the per-element masks).
__device__ __forceinline__ int clamp_int(int64_t x) {
  return int(x < -(int64_t(1) << 30) ? -(int64_t(1) << 30) : (x > (int64_t(1) << 30) ? (int64_t(1) << 30) : x));
}

// Masks the scores of one warp's 16 rows × N keys tile: key kl (0-based in the tile) of row
// 8·(e >> 1) + gid is out when kl >= kvalid (past the end of the keys) or kl - 8·(e >> 1) > diag
// (above the causal diagonal). Bitwise logic so the warp does not diverge before the next
// warp-group instruction.
template <int N>
__device__ __forceinline__ void mask_scores(float (&s)[N / 8][4], int tq, int kvalid, int diag) {
#pragma unroll
  for (int jj = 0; jj < N / 8; ++jj)
#pragma unroll
    for (int e = 0; e < 4; ++e) {
      const int kl = jj * 8 + 2 * tq + (e & 1);
      s[jj][e] = (kl >= kvalid) | (kl - 8 * (e >> 1) > diag) ? -INFINITY : s[jj][e];
    }
}

// ---- the three products, each one commit group ----
// d = A·Bᵀ over the head dim: A (64 rows) and B (N rows) K-major shared tiles.
template <bool BF16, int N>
__device__ __forceinline__ void product_ss(float (&d)[N / 8][4], uint64_t a_desc, uint64_t b_desc) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk)
    wgmma::wgmma_ss<BF16, N, 0>(d, a_desc + wgmma::kKMajorStep * kk, b_desc + wgmma::kKMajorStep * kk, kk);
  wgmma::commit();
}
// The same with A as register fragments (the forward's Q).
template <bool BF16, int N>
__device__ __forceinline__ void product_rs(float (&d)[N / 8][4], const uint32_t (&a)[kD / 16][4], uint64_t b_desc) {
#pragma unroll
  for (int kk = 0; kk < kD / 16; ++kk) wgmma::wgmma_rs<BF16, N, 0>(d, a[kk], b_desc + wgmma::kKMajorStep * kk, kk);
  wgmma::commit();
}
// d += A·B: A [64 × K] register fragments (P or dS), B the MN-major shared tile of K rows × head dim.
template <bool BF16, int K>
__device__ __forceinline__ void accumulate_mn(float (&d)[kD / 8][4], const uint32_t (&a)[K / 16][4], uint64_t b_desc) {
#pragma unroll
  for (int kk = 0; kk < K / 16; ++kk) wgmma::wgmma_rs<BF16, kD, 1>(d, a[kk], b_desc + wgmma::kMnMajorStep * kk, 1);
  wgmma::commit();
}

// ---- forward ----
// One warp group (64 query rows) a CTA; BC keys a step. The products of consecutive steps overlap
// the softmax: step j issues S_j = Q·K_jᵀ and O += P_{j-1}·V_{j-1}, waits for S_j only, computes
// P_j while the tensor cores run P_{j-1}·V_{j-1}, then rescales O. K and V have STAGES buffers
// each; the copies of the step STAGES - 1 ahead start right after the products are issued (their
// buffers' last readers, S_{j-1} and P_{j-2}·V_{j-2}, completed in the previous step).
// NWG warp groups a CTA (NWG·64 query rows) share each K and V tile: the tiles cross from L2 once
// for all of them. The CTA walks the key tiles its last group sees; an earlier group's tiles past
// its diagonal are masked whole (P = 0, α = 1): the products stay outside any branch that
// depends on the warp group, which would make ptxas serialize them.
// STAGES buffers of K and V: with three, the copies run two steps ahead (K_{j+2}, V_{j+1}).
template <int BC, int NWG, int STAGES>
struct WgFwdTiles {
  static constexpr int kBr = kWgRows * NWG, kBc = BC, kThreads = 128 * NWG;
  // K/V tiles are copied by the first kLoadThreads threads (a pass must cover whole rows).
  static constexpr int kLoadThreads = NWG == 3 ? 256 : kThreads;
  static constexpr size_t kSmem = kSmemAlign + 2 * (size_t(kBr) * kD + 2 * STAGES * size_t(kBc) * kD);
};

template <bool BF16, int BC, int NWG, int CTAS, int STAGES>
__global__ void __launch_bounds__(128 * NWG, CTAS) attention_wgmma_forward_kernel(AttnParams p) {
  static_assert(STAGES == 2 || STAGES == 3);
  using Cfg = WgFwdTiles<BC, NWG, STAGES>;
  constexpr int Br = Cfg::kBr, Bc = Cfg::kBc, NT = Cfg::kThreads, NL = Cfg::kLoadThreads;
  constexpr int kAhead = STAGES - 1;  // how many steps ahead the K copies run
  extern __shared__ unsigned char smem_raw[];
  uint16_t* qs = aligned_smem(smem_raw);
  uint16_t* ks = qs + Br * kD;  // [STAGES][Bc·D]
  uint16_t* vs = ks + STAGES * Bc * kD;

  const int64_t h = blockIdx.x % p.nh, b = blockIdx.x / p.nh;
  const int64_t tile = gridDim.y - 1 - blockIdx.y;  // the longest causal rows first
  const int64_t t0 = tile * Br, hk = h / (p.nh / p.nhkv), offset = p.ns - p.nt;
  const WarpGroupLane w;
  const float sl2 = float(p.scale) * kLog2e;

  // Everything the steps use, as locals: lambdas capturing the kernel parameters by reference
  // would reload them from memory at every step.
  const uint16_t* kg = head_ptr(p.k, b, hk);
  const uint16_t* vg = head_ptr(p.v, b, hk);
  const int64_t k_s1 = p.k.s1, v_s1 = p.v.s1, ns = p.ns;
  const bool causal = p.causal;
  const int ntiles = int((visible_keys(p, t0, Br) + Bc - 1) / Bc);
  const int64_t wg_first = t0 + kWgRows * (int(threadIdx.x) / 128);  // the warp group's first query
  const bool loader = NL == NT || int(threadIdx.x) < NL;
  auto load_k = [&](int j) {
    if (loader)
      load_tile<Bc, kD, NL>(ks + (j % STAGES) * Bc * kD, kg + int64_t(j) * Bc * k_s1, k_s1,
                            int(min(int64_t(Bc), ns - int64_t(j) * Bc)));
  };
  auto load_v = [&](int j) {
    if (loader)
      load_tile<Bc, kD, NL>(vs + (j % STAGES) * Bc * kD, vg + int64_t(j) * Bc * v_s1, v_s1,
                            int(min(int64_t(Bc), ns - int64_t(j) * Bc)));
  };
  constexpr uint32_t kKvBytes = Bc * kD * 2;
  const uint64_t k_desc = wgmma::desc_k_major(ks), v_desc = wgmma::desc_mn_major(vs);
  load_tile<Br, kD, NT>(qs, head_ptr(p.q, b, h) + t0 * p.q.s1, p.q.s1, int(min(int64_t(Br), p.nt - t0)));
  if (ntiles > 0) load_k(0);
  cp_async_commit();

  float o[1][kD / 8][4];
  zero(o);
  float m[2] = {-INFINITY, -INFINITY}, l[2] = {0.f, 0.f};
  const int r0 = w.row0();
  const int64_t row0 = t0 + r0 + w.gid;  // this thread's rows: row0, row0 + 8

  // Masks and exponentiates S_j in place (P_j), updates the running max and sum; returns α.
  auto softmax = [&](float (&s)[Bc / 8][4], int j, float (&alpha)[2]) {
    const int64_t s0 = int64_t(j) * Bc;
    if (s0 + Bc > ns || (causal && s0 + Bc - 1 > wg_first + offset))
      mask_scores<Bc>(s, w.tq, clamp_int(ns - s0), causal ? clamp_int(row0 + offset - s0) : (1 << 30));
    // Row max and sum over 8 independent partial chains (one long fmax / add chain would leave
    // the issue slots waiting on its latency).
    float ref[2];
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float part[8];
#pragma unroll
      for (int i = 0; i < 8; ++i) part[i] = s[(i >> 1) % (Bc / 8)][2 * r + (i & 1)];
#pragma unroll
      for (int jj = 4; jj < Bc / 8; ++jj) {
        part[2 * (jj & 3)] = fmaxf(part[2 * (jj & 3)], s[jj][2 * r]);
        part[2 * (jj & 3) + 1] = fmaxf(part[2 * (jj & 3) + 1], s[jj][2 * r + 1]);
      }
      float mx = fmaxf(fmaxf(fmaxf(part[0], part[1]), fmaxf(part[2], part[3])),
                       fmaxf(fmaxf(part[4], part[5]), fmaxf(part[6], part[7])));
      mx = fmaxf(mx, m[r]);
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
      mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
      ref[r] = mx == -INFINITY ? 0.f : mx * sl2;
      alpha[r] = fast_exp2(m[r] * sl2 - ref[r]);
      m[r] = mx;
    }
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      float part[8] = {0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f, 0.f};
#pragma unroll
      for (int jj = 0; jj < Bc / 8; ++jj) {
        s[jj][2 * r] = fast_exp2(fmaf(s[jj][2 * r], sl2, -ref[r]));
        s[jj][2 * r + 1] = fast_exp2(fmaf(s[jj][2 * r + 1], sl2, -ref[r]));
        part[2 * (jj & 3)] += s[jj][2 * r];
        part[2 * (jj & 3) + 1] += s[jj][2 * r + 1];
      }
      l[r] = l[r] * alpha[r] + (((part[0] + part[1]) + (part[2] + part[3])) + ((part[4] + part[5]) + (part[6] + part[7])));
    }
  };

  if (ntiles > 0) {
    cp_async_wait<0>();
    wgmma::fence_proxy_async();
    __syncthreads();
    uint32_t qa[1][kD / 16][4];
    load_a_fragments<1, kD>(qa, qs, r0);
    if (ntiles > 1) load_k(1);
    load_v(0);
    cp_async_commit();
    if constexpr (STAGES == 3) {
      if (ntiles > 2) load_k(2);
      if (ntiles > 1) load_v(1);
      cp_async_commit();
    }

    float s[1][Bc / 8][4];
    float alpha[2];
    uint32_t pa[1][Bc / 16][4];
    wgmma::fence();
    product_rs<BF16, Bc>(s[0], qa[0], k_desc);
    wgmma::wait<0>();
    wgmma::fence_operand(s[0]);
    softmax(s[0], 0, alpha);
    to_a_fragments<BF16, 1, Bc>(pa, s);

    int kb = 1 % STAGES, vb = 0;  // the buffers of K_j and V_{j-1}
    for (int j = 1; j < ntiles; ++j) {
      cp_async_wait<kAhead - 1>();  // K_j, V_{j-1} (the copies of the next step may still run)
      wgmma::fence_proxy_async();
      __syncthreads();
      const uint64_t kt = wgmma::desc_advance(k_desc, kb * kKvBytes);
      const uint64_t vt = wgmma::desc_advance(v_desc, vb * kKvBytes);
      wgmma::fence();
      product_rs<BF16, Bc>(s[0], qa[0], kt);
      accumulate_mn<BF16, Bc>(o[0], pa[0], vt);
      // The copies go out while the products run: K_{j+A} (A = STAGES - 1 steps ahead) replaces
      // K_{j-1} (S_{j-1} is done) and V_{j+A-1} replaces V_{j-2} (P_{j-2}·V_{j-2} is done);
      // neither buffer is read by this step.
      if (j + kAhead < ntiles) load_k(j + kAhead);
      if (j + kAhead - 1 < ntiles) load_v(j + kAhead - 1);
      cp_async_commit();
      kb = kb + 1 == STAGES ? 0 : kb + 1;
      vb = vb + 1 == STAGES ? 0 : vb + 1;
      wgmma::wait<1>();  // S_j is ready; P_{j-1}·V_{j-1} may still run
      wgmma::fence_operand(s[0]);
      softmax(s[0], j, alpha);
      wgmma::wait<0>();
      wgmma::fence_operand(o[0]);
#pragma unroll
      for (int jj = 0; jj < kD / 8; ++jj) {
        o[0][jj][0] *= alpha[0];
        o[0][jj][1] *= alpha[0];
        o[0][jj][2] *= alpha[1];
        o[0][jj][3] *= alpha[1];
      }
      to_a_fragments<BF16, 1, Bc>(pa, s);
    }
    cp_async_wait<kAhead - 1>();  // V of the last step
    wgmma::fence_proxy_async();
    __syncthreads();
    const uint64_t vt = wgmma::desc_advance(v_desc, ((ntiles - 1) % STAGES) * kKvBytes);
    wgmma::fence();
    accumulate_mn<BF16, Bc>(o[0], pa[0], vt);
    wgmma::wait<0>();
    wgmma::fence_operand(o[0]);
  }
  cp_async_wait<0>();

  float* lse = static_cast<float*>(p.lse) + (b * p.nh + h) * p.nt;
  float inv[2];
#pragma unroll
  for (int r = 0; r < 2; ++r) {
    float lr = l[r];
    lr += __shfl_xor_sync(0xffffffffu, lr, 1);
    lr += __shfl_xor_sync(0xffffffffu, lr, 2);
    inv[r] = lr == 0.f ? 0.f : 1.f / lr;
    const int64_t row = row0 + 8 * r;
    if (w.tq == 0 && row < p.nt) lse[row] = lr == 0.f ? -INFINITY : m[r] * float(p.scale) + logf(lr);
  }
  store_rows<BF16, kD>(o[0], head_ptr_mut(p.out, b, h), p.out.s1, t0, r0, p.nt, inv);
}

// ---- backward: dK, dV ----
// One warp group (64 keys) a CTA walks the group's query heads and BR-query tiles. Step i issues
// Sᵀ_i = K·Q_iᵀ and dPᵀ_i = V·dO_iᵀ without waiting for dK/dV of step i-1; dV += Pᵀ·dO starts once
// Pᵀ is ready and runs while dSᵀ is formed. Q, dO, lse and Δ have STAGES buffers; the copy of step
// i + STAGES - 1 starts once Sᵀ_i is done (then the products of step i-1, its buffers' readers,
// are too).
// NWG warp groups a CTA (NWG·64 keys) share each Q / dO tile; a later group's query tiles before
// its first key are masked whole (P = 0, so they add nothing), as in the forward.
template <int BR, int NWG, int STAGES>
struct WgDkvTiles {
  static constexpr int kBc = kWgRows * NWG, kBr = BR, kThreads = 128 * NWG;
  static constexpr size_t kSmem = kSmemAlign + 2 * (2 * size_t(kBc) * kD + 2 * STAGES * size_t(kBr) * kD) +
                                  sizeof(float) * 2 * STAGES * kBr;
};

template <bool BF16, int BR, int NWG, int CTAS, int STAGES>
__global__ void __launch_bounds__(128 * NWG, CTAS) attention_wgmma_dkv_kernel(AttnParams p, const float* delta) {
  static_assert(STAGES == 2 || STAGES == 3);
  using Cfg = WgDkvTiles<BR, NWG, STAGES>;
  constexpr int Br = Cfg::kBr, Bc = Cfg::kBc, NT = Cfg::kThreads;
  constexpr int kAhead = STAGES - 1;  // how many steps ahead the copies run
  extern __shared__ unsigned char smem_raw[];
  uint16_t* ks = aligned_smem(smem_raw);
  uint16_t* vs = ks + Bc * kD;
  uint16_t* qs = vs + Bc * kD;           // [STAGES][Br·D]
  uint16_t* gs = qs + STAGES * Br * kD;  // dO, [STAGES][Br·D]
  float* lses = reinterpret_cast<float*>(gs + STAGES * Br * kD);  // [STAGES][Br]
  float* dls = lses + STAGES * Br;                                 // Δ, [STAGES][Br]

  const int64_t hk = blockIdx.x % p.nhkv, b = blockIdx.x / p.nhkv;
  const int64_t s0 = int64_t(blockIdx.y) * Bc, group = p.nh / p.nhkv, offset = p.ns - p.nt;
  const WarpGroupLane w;
  const float sl2 = float(p.scale) * kLog2e;

  load_tile<Bc, kD, NT>(ks, head_ptr(p.k, b, hk) + s0 * p.k.s1, p.k.s1, int(min(int64_t(Bc), p.ns - s0)));
  load_tile<Bc, kD, NT>(vs, head_ptr(p.v, b, hk) + s0 * p.v.s1, p.v.s1, int(min(int64_t(Bc), p.ns - s0)));
  // Causal: queries before t_first see no key of this tile.
  const int64_t nt = p.nt;
  int64_t t_first = p.causal ? s0 - offset : 0;
  t_first = t_first < 0 ? 0 : (t_first / Br) * Br;
  const int nqt = t_first < nt ? int((nt - t_first + Br - 1) / Br) : 0;
  const int iters = nqt * int(group);
  // The steps walk (query head, query tile) in order; the copy cursor runs one step ahead of the
  // compute cursor. Strides and bases are locals (a lambda capturing the kernel parameters by
  // reference would reload them at every step) and no step divides.
  const int64_t q_s1 = p.q.s1, q_s2 = p.q.s2, g_s1 = p.dout.s1, g_s2 = p.dout.s2;
  const uint16_t* q_first = head_ptr(p.q, b, hk * group) + t_first * q_s1;
  const uint16_t* g_first = head_ptr(p.dout, b, hk * group) + t_first * g_s1;
  const float* lse_first = static_cast<const float*>(p.lse) + (b * p.nh + hk * group) * nt + t_first;
  const float* dl_first = delta + (b * p.nh + hk * group) * nt + t_first;
  int copy_head = 0, copy_tile = 0;
  auto issue = [&](int buf) {
    const int64_t t0 = t_first + int64_t(copy_tile) * Br;
    const int rows = int(min(int64_t(Br), nt - t0));
    const int64_t dt = int64_t(copy_tile) * Br;
    load_tile<Br, kD, NT>(qs + buf * Br * kD, q_first + copy_head * q_s2 + dt * q_s1, q_s1, rows);
    load_tile<Br, kD, NT>(gs + buf * Br * kD, g_first + copy_head * g_s2 + dt * g_s1, g_s1, rows);
    load_row_stats(lses + buf * Br, dls + buf * Br, lse_first + copy_head * nt + dt,
                   dl_first + copy_head * nt + dt, rows, Br);
    if (++copy_tile == nqt) copy_tile = 0, ++copy_head;
  };
  if (iters > 0) issue(0);
  cp_async_commit();
  if constexpr (STAGES == 3) {
    if (iters > 1) issue(1);
    cp_async_commit();
  }

  float dk[1][kD / 8][4], dv[1][kD / 8][4];
  zero(dk);
  zero(dv);
  const int r0 = w.row0();
  const int wg = int(threadIdx.x) / 128;
  const int64_t key0 = s0 + r0 + w.gid;                  // this thread's keys: key0, key0 + 8
  const int64_t wg_last = s0 + kWgRows * (wg + 1) - 1;  // the warp group's last key
  const bool causal = p.causal;

  if (iters > 0) {
    cp_async_wait<kAhead - 1>();
    wgmma::fence_proxy_async();
    __syncthreads();
    float st[1][Br / 8][4], dpt[1][Br / 8][4];  // Sᵀ, dPᵀ: keys × queries
    uint32_t pa[1][Br / 16][4], da[1][Br / 16][4];

    constexpr uint32_t kQBytes = Br * kD * 2;
    // A: this warp group's 64 keys of the K and V tiles (whole swizzle periods in).
    const uint64_t k_desc = wgmma::desc_k_major(ks + wg * kWgRows * kD);
    const uint64_t v_desc = wgmma::desc_k_major(vs + wg * kWgRows * kD);
    const uint64_t qk_desc = wgmma::desc_k_major(qs), gk_desc = wgmma::desc_k_major(gs);
    const uint64_t qm_desc = wgmma::desc_mn_major(qs), gm_desc = wgmma::desc_mn_major(gs);
    int tile_in_head = 0;  // the compute cursor's query tile
    int buf = 0;  // it % STAGES
    for (int it = 0; it < iters; ++it, buf = buf + 1 == STAGES ? 0 : buf + 1) {
      if (it > 0) {
        cp_async_wait<kAhead - 1>();  // step it's tiles (the next step's copies may still run)
        wgmma::fence_proxy_async();
        __syncthreads();
      }
      const int64_t t0 = t_first + int64_t(tile_in_head) * Br;
      if (++tile_in_head == nqt) tile_in_head = 0;
      const float* lse = lses + buf * Br;
      const float* dl = dls + buf * Br;
      const uint64_t qk = wgmma::desc_advance(qk_desc, buf * kQBytes), gk = wgmma::desc_advance(gk_desc, buf * kQBytes);
      const uint64_t qm = wgmma::desc_advance(qm_desc, buf * kQBytes), gm = wgmma::desc_advance(gm_desc, buf * kQBytes);

      wgmma::fence();
      product_ss<BF16, Br>(st[0], k_desc, qk);
      product_ss<BF16, Br>(dpt[0], v_desc, gk);
      wgmma::wait<1>();  // Sᵀ_i is ready (and dK, dV of step i-1); dPᵀ_i may still run
      wgmma::fence_operand(st[0]);
      // Step it + kAhead's tiles replace step it - 1's, whose products are all done now.
      if (it + kAhead < iters) issue(buf + kAhead >= STAGES ? buf + kAhead - STAGES : buf + kAhead);
      cp_async_commit();

      if (causal && wg_last > t0 + offset) {
        // Query column c of key row k is out when k > t0 + c + offset.
        const int diag = clamp_int(key0 - t0 - offset);
#pragma unroll
        for (int jj = 0; jj < Br / 8; ++jj)
#pragma unroll
          for (int e = 0; e < 4; ++e) {
            const int col = jj * 8 + 2 * w.tq + (e & 1);
            st[0][jj][e] = diag + 8 * (e >> 1) > col ? -INFINITY : st[0][jj][e];
          }
      }
#pragma unroll
      for (int jj = 0; jj < Br / 8; ++jj) {
        const float2 lc = *reinterpret_cast<const float2*>(lse + jj * 8 + 2 * w.tq);  // this thread's two queries
        const float c0 = lse_log2(lc.x), c1 = lse_log2(lc.y);
        st[0][jj][0] = fast_exp2(fmaf(st[0][jj][0], sl2, -c0));
        st[0][jj][1] = fast_exp2(fmaf(st[0][jj][1], sl2, -c1));
        st[0][jj][2] = fast_exp2(fmaf(st[0][jj][2], sl2, -c0));
        st[0][jj][3] = fast_exp2(fmaf(st[0][jj][3], sl2, -c1));
      }
      to_a_fragments<BF16, 1, Br>(pa, st);
      wgmma::fence();
      accumulate_mn<BF16, Br>(dv[0], pa[0], gm);
      wgmma::wait<1>();  // dPᵀ_i is ready; dV may still run
      wgmma::fence_operand(dpt[0]);
#pragma unroll
      for (int jj = 0; jj < Br / 8; ++jj) {
        const float2 dc = *reinterpret_cast<const float2*>(dl + jj * 8 + 2 * w.tq);
        dpt[0][jj][0] = st[0][jj][0] * (dpt[0][jj][0] - dc.x);
        dpt[0][jj][1] = st[0][jj][1] * (dpt[0][jj][1] - dc.y);
        dpt[0][jj][2] = st[0][jj][2] * (dpt[0][jj][2] - dc.x);
        dpt[0][jj][3] = st[0][jj][3] * (dpt[0][jj][3] - dc.y);
      }
      to_a_fragments<BF16, 1, Br>(da, dpt);
      wgmma::fence();
      accumulate_mn<BF16, Br>(dk[0], da[0], qm);
    }
    wgmma::wait<0>();
    wgmma::fence_operand(dk[0]);
    wgmma::fence_operand(dv[0]);
  }
  cp_async_wait<0>();
  const float one[2] = {1.f, 1.f}, sc[2] = {float(p.scale), float(p.scale)};
  store_rows<BF16, kD>(dk[0], head_ptr_mut(p.dk, b, hk), p.dk.s1, s0, r0, p.ns, sc);
  store_rows<BF16, kD>(dv[0], head_ptr_mut(p.dv, b, hk), p.dv.s1, s0, r0, p.ns, one);
}

// ---- backward: dQ ----
// One warp group (64 query rows) a CTA over BC-key tiles. Step j issues S_j = Q·K_jᵀ and
// dP_j = dO·V_jᵀ (dQ of step j-1 may still run), forms P_j while dP_j runs, then issues
// dQ += dS_j·K_j. K and V have STAGES buffers; the copy of step j + STAGES - 1 starts once S_j is
// done (then step j-1's products, its buffers' readers, are too).
// NWG warp groups a CTA (NWG·64 queries) share each K / V tile, with the forward's masking.
template <int BC, int NWG, int STAGES>
struct WgDqTiles {
  static constexpr int kBr = kWgRows * NWG, kBc = BC, kThreads = 128 * NWG;
  static constexpr size_t kSmem = kSmemAlign + 2 * (2 * size_t(kBr) * kD + 2 * STAGES * size_t(kBc) * kD);
};

template <bool BF16, int BC, int NWG, int CTAS, int STAGES>
__global__ void __launch_bounds__(128 * NWG, CTAS) attention_wgmma_dq_kernel(AttnParams p, const float* delta) {
  static_assert(STAGES == 2 || STAGES == 3);
  using Cfg = WgDqTiles<BC, NWG, STAGES>;
  constexpr int Br = Cfg::kBr, Bc = Cfg::kBc, NT = Cfg::kThreads;
  constexpr int kAhead = STAGES - 1;  // how many steps ahead the K/V copies run
  extern __shared__ unsigned char smem_raw[];
  uint16_t* qs = aligned_smem(smem_raw);
  uint16_t* gs = qs + Br * kD;
  uint16_t* ks = gs + Br * kD;  // [STAGES][Bc·D]
  uint16_t* vs = ks + STAGES * Bc * kD;

  const int64_t h = blockIdx.x % p.nh, b = blockIdx.x / p.nh;
  const int64_t tile = gridDim.y - 1 - blockIdx.y;
  const int64_t t0 = tile * Br, hk = h / (p.nh / p.nhkv), offset = p.ns - p.nt;
  const WarpGroupLane w;
  const float sl2 = float(p.scale) * kLog2e;

  const uint16_t* kg = head_ptr(p.k, b, hk);
  const uint16_t* vg = head_ptr(p.v, b, hk);
  const int64_t k_s1 = p.k.s1, v_s1 = p.v.s1, ns = p.ns;  // locals: see the forward
  const bool causal = p.causal;
  const int rows = int(min(int64_t(Br), p.nt - t0));
  const int64_t kend = visible_keys(p, t0, Br);
  const int ntiles = int((kend + Bc - 1) / Bc);
  auto load_kv = [&](int j) {
    const int64_t s1 = int64_t(j) * Bc;
    const int valid = int(min(int64_t(Bc), ns - s1));
    load_tile<Bc, kD, NT>(ks + (j % STAGES) * Bc * kD, kg + s1 * k_s1, k_s1, valid);
    load_tile<Bc, kD, NT>(vs + (j % STAGES) * Bc * kD, vg + s1 * v_s1, v_s1, valid);
  };
  load_tile<Br, kD, NT>(qs, head_ptr(p.q, b, h) + t0 * p.q.s1, p.q.s1, rows);
  load_tile<Br, kD, NT>(gs, head_ptr(p.dout, b, h) + t0 * p.dout.s1, p.dout.s1, rows);
  if (ntiles > 0) load_kv(0);
  cp_async_commit();
  if constexpr (STAGES == 3) {
    if (ntiles > 1) load_kv(1);
    cp_async_commit();
  }

  const int r0 = w.row0();
  const int64_t row0 = t0 + r0 + w.gid;  // this thread's rows: row0, row0 + 8
  float lse2[2], dl[2];
  {
    const float* lse = static_cast<const float*>(p.lse) + (b * p.nh + h) * p.nt;
    const float* dd = delta + (b * p.nh + h) * p.nt;
#pragma unroll
    for (int r = 0; r < 2; ++r) {
      const int64_t row = row0 + 8 * r;
      lse2[r] = lse_log2(row < p.nt ? lse[row] : -INFINITY);
      dl[r] = row < p.nt ? dd[row] : 0.f;
    }
  }
  float dq[1][kD / 8][4];
  zero(dq);

  if (ntiles > 0) {
    cp_async_wait<kAhead - 1>();
    wgmma::fence_proxy_async();
    __syncthreads();
    float s[1][Bc / 8][4], dp[1][Bc / 8][4];
    uint32_t da[1][Bc / 16][4];
    constexpr uint32_t kKvBytes = Bc * kD * 2;
    // A: this warp group's 64 rows of the Q and dO tiles.
    const int wg = int(threadIdx.x) / 128;
    const int64_t wg_first = t0 + kWgRows * wg;
    const uint64_t q_desc = wgmma::desc_k_major(qs + wg * kWgRows * kD);
    const uint64_t g_desc = wgmma::desc_k_major(gs + wg * kWgRows * kD);
    const uint64_t kk_desc = wgmma::desc_k_major(ks), km_desc = wgmma::desc_mn_major(ks);
    const uint64_t v_desc = wgmma::desc_k_major(vs);

    int buf = 0;  // j % STAGES
    for (int j = 0; j < ntiles; ++j, buf = buf + 1 == STAGES ? 0 : buf + 1) {
      if (j > 0) {
        cp_async_wait<kAhead - 1>();  // K_j, V_j (the next step's copies may still run)
        wgmma::fence_proxy_async();
        __syncthreads();
      }
      const int64_t s0 = int64_t(j) * Bc;
      const uint64_t kt = wgmma::desc_advance(kk_desc, buf * kKvBytes);
      const uint64_t km = wgmma::desc_advance(km_desc, buf * kKvBytes);
      const uint64_t vt = wgmma::desc_advance(v_desc, buf * kKvBytes);
      wgmma::fence();
      product_ss<BF16, Bc>(s[0], q_desc, kt);
      product_ss<BF16, Bc>(dp[0], g_desc, vt);
      wgmma::wait<1>();  // S_j is ready (and dQ of step j-1); dP_j may still run
      wgmma::fence_operand(s[0]);
      // K/V of step j + kAhead replace step j - 1's, whose products are all done now.
      if (j + kAhead < ntiles) load_kv(j + kAhead);
      cp_async_commit();

      if (s0 + Bc > ns || (causal && s0 + Bc - 1 > wg_first + offset))
        mask_scores<Bc>(s[0], w.tq, clamp_int(ns - s0), causal ? clamp_int(row0 + offset - s0) : (1 << 30));
#pragma unroll
      for (int jj = 0; jj < Bc / 8; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e) s[0][jj][e] = fast_exp2(fmaf(s[0][jj][e], sl2, -lse2[e >> 1]));
      wgmma::wait<0>();
      wgmma::fence_operand(dp[0]);
#pragma unroll
      for (int jj = 0; jj < Bc / 8; ++jj)
#pragma unroll
        for (int e = 0; e < 4; ++e) dp[0][jj][e] = s[0][jj][e] * (dp[0][jj][e] - dl[e >> 1]);
      to_a_fragments<BF16, 1, Bc>(da, dp);
      wgmma::fence();
      accumulate_mn<BF16, Bc>(dq[0], da[0], km);
    }
    wgmma::wait<0>();
    wgmma::fence_operand(dq[0]);
  }
  cp_async_wait<0>();
  const float sc[2] = {float(p.scale), float(p.scale)};
  store_rows<BF16, kD>(dq[0], head_ptr_mut(p.dq, b, h), p.dq.s1, t0, r0, p.nt, sc);
}

// ---- launchers ----
// Tiles and pipelines, measured on an H200 (docs/CUDA.md "The Hopper kernel"):
//   forward: 64 keys a step, two warp groups (128 queries) a CTA sharing each K/V tile, two CTAs
//     an SM, K/V copied two steps ahead (three buffers);
//   dK/dV: 64 keys × 64 queries, one warp group a CTA, three CTAs an SM, one step ahead;
//   dQ: 64 queries × 64 keys; up to T = 1024 two warp groups a CTA sharing K/V, two CTAs an SM,
//     two steps ahead; beyond it one group a CTA, three CTAs an SM, one step ahead (at T = 2048
//     the single group's occupancy won, and a third buffer there was slower).
constexpr int kFwdBc = 64, kFwdGroups = 2, kFwdCtasPerSm = 2, kFwdStages = 3;
constexpr int kDkvBr = 64, kDqBc = 64, kCtasPerSm = 3;
constexpr int64_t kDqSharedMaxT = 1024;

template <class F>
void dispatch_type(DType t, const char* op, F&& f) {
  if (t == DType::BF16) f(std::true_type{});
  else if (t == DType::F16) f(std::false_type{});
  else throw_unsupported_dtype(t, op);
}

template <class K>
void set_smem(K kernel, size_t bytes) {
  LF_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
}

unsigned tiles_of(int64_t n, int tile) { return unsigned((n + tile - 1) / tile); }

// A kernel with the tile configuration Cfg (threads, dynamic shared memory) on `grid`.
template <class Cfg, class K, class... A>
void launch_tiled(const CudaContext& ctx, K kernel, dim3 grid, A... args) {
  set_smem(kernel, Cfg::kSmem);
  kernel<<<grid, Cfg::kThreads, Cfg::kSmem, ctx.stream>>>(args...);
}

template <bool BF16, int BC, int NWG, int CTAS, int STAGES>
void launch_fwd(const CudaContext& ctx, const AttnParams& p) {
  using Cfg = WgFwdTiles<BC, NWG, STAGES>;
  launch_tiled<Cfg>(ctx, attention_wgmma_forward_kernel<BF16, BC, NWG, CTAS, STAGES>,
                    dim3(unsigned(p.nb * p.nh), tiles_of(p.nt, Cfg::kBr)), p);
}
template <bool BF16, int BC, int NWG, int CTAS, int STAGES>
void launch_dq(const CudaContext& ctx, const AttnParams& p, const float* delta) {
  using Cfg = WgDqTiles<BC, NWG, STAGES>;
  launch_tiled<Cfg>(ctx, attention_wgmma_dq_kernel<BF16, BC, NWG, CTAS, STAGES>,
                    dim3(unsigned(p.nb * p.nh), tiles_of(p.nt, Cfg::kBr)), p, delta);
}
template <bool BF16, int BR, int NWG, int CTAS, int STAGES>
void launch_dkv(const CudaContext& ctx, const AttnParams& p, const float* delta) {
  using Cfg = WgDkvTiles<BR, NWG, STAGES>;
  launch_tiled<Cfg>(ctx, attention_wgmma_dkv_kernel<BF16, BR, NWG, CTAS, STAGES>,
                    dim3(unsigned(p.nb * p.nhkv), tiles_of(p.ns, Cfg::kBc)), p, delta);
}

}  // namespace

void launch_attention_wgmma_forward(const CudaContext& ctx, DType t, const AttnParams& p) {
  LF_CHECK(p.d == kD && p.dv_dim == kD, "attention (wgmma): head dim 64 only, got {}", p.d);
  if (p.nb * p.nh * p.nt == 0) return;
  dispatch_type(t, "attention (wgmma)", [&](auto bf) {
    launch_fwd<decltype(bf)::value, kFwdBc, kFwdGroups, kFwdCtasPerSm, kFwdStages>(ctx, p);
  });
  LF_CUDA_CHECK_LAUNCH("attention_wgmma_forward_kernel");
}

void launch_attention_wgmma_backward(const CudaContext& ctx, DType t, const AttnParams& p) {
  LF_CHECK(p.d == kD && p.dv_dim == kD, "attention_backward (wgmma): head dim 64 only, got {}", p.d);
  Scratch delta(ctx.device, size_t(p.nb * p.nh * p.nt) * sizeof(float));
  if (p.nb * p.nh * p.nt > 0) launch_attention_delta(ctx, t, p, delta.get<float>());
  dispatch_type(t, "attention_backward (wgmma)", [&](auto bf) {
    constexpr bool BF16 = decltype(bf)::value;
    if (p.nb * p.nh * p.nt > 0) {
      if (p.nt <= kDqSharedMaxT) launch_dq<BF16, kDqBc, 2, 2, 3>(ctx, p, delta.get<float>());
      else launch_dq<BF16, kDqBc, 1, kCtasPerSm, 2>(ctx, p, delta.get<float>());
      LF_CUDA_CHECK_LAUNCH("attention_wgmma_dq_kernel");
    }
    if (p.nb * p.nhkv * p.ns > 0) {
      launch_dkv<BF16, kDkvBr, 1, kCtasPerSm, 2>(ctx, p, delta.get<float>());
      LF_CUDA_CHECK_LAUNCH("attention_wgmma_dkv_kernel");
    }
  });
}

}  // namespace lmforge::cuda
