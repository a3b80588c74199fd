// GPU attention for decoding: a few query rows (T <= kDecodeMaxRows, no mask) against a long KV
// cache, split over the keys (FlashDecoding) so that the whole GPU streams the cache. Twin of
// attention_decode_impl in backend/cpu/attention_cpu.cpp, with the contract of attention.cu.
//
// The tiled kernels run one block per (b, query head, query tile): a decode step (T = 1) gives
// them H blocks, each reading its head's whole cache in sequence, so at a long context a handful
// of SMs stream the cache while the rest idle. Here the work is
//   pass 1, one block per (b, kv head, chunk of `chunk` keys): the query rows of the group
//     (the T positions × the H / Hkv query heads that share the kv head, so each cached key and
//     value row is read once per group: GQA, MQA and MLA's absorbed form read less), scores of
//     a tile of Bc keys against every row, an online softmax and O += P·V, all in shared memory;
//     it writes a partial (max m, sum l, unnormalised O) per row;
//   pass 2, one block per (b, kv head, row): the partials merged in chunk order into out and lse.
// The chunking depends on S, Hkv and the GPU only, never on B: a row's result is the same
// whatever else is in the batch. key_len (device int32 [B], or null for S): keys [0, key_len[b])
// exist for batch row b and the queries are its last T positions (causal offset key_len[b] - T),
// so a captured CUDA graph can decode at a position it reads from device memory.
#include <algorithm>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/scratch.h"

namespace lmforge::cuda {

namespace {

constexpr int kDecodeThreads = 128;

struct DecodeShape {
  int rows = 0, bc = 0, chunk = 0, n_chunks = 0;
  size_t smem = 0;
};

// Shared memory of pass 1 in compute elements: q rows, a K tile, a V tile, the scores, the output
// rows, and per row m, l and the rescaling factor.
size_t decode_smem(int rows, int bc, int d, int dv, size_t es) {
  return es * (size_t(rows) * (d + 1) + size_t(bc) * (d + 1) + size_t(bc) * (dv + 1) + size_t(rows) * bc +
               size_t(rows) * dv + 3 * size_t(rows));
}

__device__ __forceinline__ int64_t keys_of(const AttnParams& p, const int32_t* key_len, int64_t b) {
  if (!key_len) return p.ns;
  const int64_t n = key_len[b];
  return n < 0 ? 0 : (n > p.ns ? p.ns : n);
}

template <class T>
__global__ void __launch_bounds__(kDecodeThreads)
    attention_decode_kernel(AttnParams p, const int32_t* key_len, int rows, int bc, int chunk,
                            compute_t<T>* part) {
  using A = compute_t<T>;
  extern __shared__ unsigned char smem_raw[];
  A* smem = reinterpret_cast<A*>(smem_raw);
  const int d = int(p.d), dv = int(p.dv_dim);
  const int ldq = d + 1, ldk = d + 1, ldv = dv + 1;
  A* qs = smem;                    // [rows][d + 1], scaled
  A* ks = qs + rows * ldq;         // [bc][d + 1]
  A* vs = ks + bc * ldk;           // [bc][dv + 1]
  A* ss = vs + bc * ldv;           // [rows][bc]: scores, then probabilities
  A* os = ss + rows * bc;          // [rows][dv]
  A* ms = os + rows * dv;          // [rows]
  A* ls = ms + rows;               // [rows]
  A* alpha = ls + rows;            // [rows]

  const int64_t c = blockIdx.x, hk = blockIdx.y, b = blockIdx.z;
  const int64_t n_chunks = gridDim.x, group = p.nh / p.nhkv;
  const int64_t len = keys_of(p, key_len, b);
  const int64_t c0 = c * chunk, c1 = min(len, c0 + int64_t(chunk));
  const A scale = A(p.scale);

  for (int e = threadIdx.x; e < rows * d; e += blockDim.x) {
    const int r = e / d, i = e - r * d;
    const int64_t t = r / group, h = hk * group + r % group;
    const T* qrow = static_cast<const T*>(p.q.base) + b * p.q.s0 + t * p.q.s1 + h * p.q.s2;
    qs[r * ldq + i] = A(load(qrow[i])) * scale;
  }
  for (int e = threadIdx.x; e < rows * dv; e += blockDim.x) os[(e / dv) * dv + e % dv] = A(0);
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    ms[r] = -m_inf<A>();
    ls[r] = A(0);
  }
  __syncthreads();

  const T* kbase = static_cast<const T*>(p.k.base) + b * p.k.s0 + hk * p.k.s2;
  const T* vbase = static_cast<const T*>(p.v.base) + b * p.v.s0 + hk * p.v.s2;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
  for (int64_t s0 = c0; s0 < c1; s0 += bc) {
    const int n = int(min(int64_t(bc), c1 - s0));
    for (int e = threadIdx.x; e < n * d; e += blockDim.x) {
      const int j = e / d, i = e - j * d;
      ks[j * ldk + i] = A(load(kbase[(s0 + j) * p.k.s1 + i]));
    }
    for (int e = threadIdx.x; e < n * dv; e += blockDim.x) {
      const int j = e / dv, i = e - j * dv;
      vs[j * ldv + i] = A(load(vbase[(s0 + j) * p.v.s1 + i]));
    }
    __syncthreads();
    // Scores: thread (r, j) for key s0 + j; query t sees keys s < t + (len - T) + 1.
    for (int e = threadIdx.x; e < rows * bc; e += blockDim.x) {
      const int r = e / bc, j = e - r * bc;
      A acc = 0;
      if (j < n) {
        const A* qr = qs + r * ldq;
        const A* kr = ks + j * ldk;
        for (int i = 0; i < d; ++i) acc += qr[i] * kr[i];
      }
      const int64_t t = r / group;
      const bool seen = j < n && (!p.causal || s0 + j < t + (len - p.nt) + 1);
      ss[r * bc + j] = seen ? acc : -m_inf<A>();
    }
    __syncthreads();
    // Online softmax, one warp per row.
    for (int r = warp; r < rows; r += n_warps) {
      A tile_max = -m_inf<A>();
      for (int j = lane; j < bc; j += 32) tile_max = fmax(tile_max, ss[r * bc + j]);
      tile_max = warp_max(tile_max);
      const A m_old = ms[r], m_new = fmax(m_old, tile_max);
      A sum = 0;
      for (int j = lane; j < bc; j += 32) {
        const A sv = ss[r * bc + j];
        const A pv = sv == -m_inf<A>() ? A(0) : m_exp(sv - m_new);
        ss[r * bc + j] = pv;
        sum += pv;
      }
      sum = warp_sum(sum);
      if (lane == 0) {
        const A a = m_old == -m_inf<A>() ? A(0) : m_exp(m_old - m_new);
        alpha[r] = a;
        ls[r] = a * ls[r] + sum;
        ms[r] = m_new;
      }
    }
    __syncthreads();
    // O = α·O + P·V; thread (r, col) owns its output entry.
    for (int e = threadIdx.x; e < rows * dv; e += blockDim.x) {
      const int r = e / dv, col = e - r * dv;
      const A* pr = ss + r * bc;
      A acc = 0;
      for (int j = 0; j < n; ++j) acc += pr[j] * vs[j * ldv + col];
      os[r * dv + col] = alpha[r] * os[r * dv + col] + acc;
    }
    __syncthreads();
  }
  // Partial of (item, row): m, l, O[dv].
  A* out = part + ((b * p.nhkv + hk) * n_chunks + c) * int64_t(rows) * (dv + 2);
  for (int r = threadIdx.x; r < rows; r += blockDim.x) {
    out[r * (dv + 2)] = ms[r];
    out[r * (dv + 2) + 1] = ls[r];
  }
  for (int e = threadIdx.x; e < rows * dv; e += blockDim.x) {
    const int r = e / dv, col = e - r * dv;
    out[r * (dv + 2) + 2 + col] = os[r * dv + col];
  }
}

// Pass 2: one block per (row, kv head, b), the chunks merged in order.
template <class T>
__global__ void __launch_bounds__(kDecodeThreads)
    attention_decode_merge_kernel(AttnParams p, int rows, int n_chunks, const compute_t<T>* part) {
  using A = compute_t<T>;
  const int64_t r = blockIdx.x, hk = blockIdx.y, b = blockIdx.z, group = p.nh / p.nhkv;
  const int dv = int(p.dv_dim);
  const int64_t stride = int64_t(rows) * (dv + 2);
  const A* first = part + (b * p.nhkv + hk) * n_chunks * stride + r * (dv + 2);
  A mx = -m_inf<A>();
  for (int c = 0; c < n_chunks; ++c) mx = fmax(mx, first[c * stride]);
  A total = 0;
  if (mx != -m_inf<A>())
    for (int c = 0; c < n_chunks; ++c) {
      const A m = first[c * stride];
      if (m != -m_inf<A>()) total += m_exp(m - mx) * first[c * stride + 1];
    }
  const int64_t t = r / group, h = hk * group + r % group;
  const A inv = total == A(0) ? A(0) : A(1) / total;
  T* orow = static_cast<T*>(const_cast<void*>(p.out.base)) + b * p.out.s0 + t * p.out.s1 + h * p.out.s2;
  for (int col = threadIdx.x; col < dv; col += blockDim.x) {
    A acc = 0;
    if (mx != -m_inf<A>())
      for (int c = 0; c < n_chunks; ++c) {
        const A m = first[c * stride];
        if (m != -m_inf<A>()) acc += m_exp(m - mx) * first[c * stride + 2 + col];
      }
    orow[col] = store<T>(acc * inv);
  }
  if (threadIdx.x == 0 && p.lse)
    static_cast<A*>(p.lse)[(b * p.nh + h) * p.nt + t] = total == A(0) ? -m_inf<A>() : mx + m_log(total);
}

// Keys per block: the largest of 512..64 that still gives every SM two blocks at this S and Hkv
// (the batch size plays no part, so neither does it in a row's result).
int pick_chunk(const CudaContext& ctx, int64_t ns, int64_t nhkv) {
  int chunk = 512;
  while (chunk > 64 && ((ns + chunk - 1) / chunk) * nhkv < 2 * int64_t(std::max(ctx.sm_count, 1))) chunk /= 2;
  return chunk;
}

bool decode_shape(const CudaContext& ctx, const AttnParams& p, size_t es, DecodeShape& s) {
  if (p.mask || p.nt > kAttentionDecodeMaxRows || p.nt < 1 || p.nhkv < 1) return false;
  const int64_t rows = p.nt * (p.nh / p.nhkv);
  if (rows > kAttentionDecodeMaxRowsPerGroup) return false;
  s.rows = int(rows);
  for (int bc = 32; bc >= 8; bc /= 2) {
    s.smem = decode_smem(s.rows, bc, int(p.d), int(p.dv_dim), es);
    // Small tiles keep several blocks per SM; large head dims (MLA's absorbed 512 + 64) take
    // whatever fits in one block's opt-in shared memory.
    if (s.smem <= ctx.smem_per_block_optin) {
      s.bc = bc;
      break;
    }
  }
  if (!s.bc) return false;
  s.chunk = pick_chunk(ctx, p.ns, p.nhkv);
  s.n_chunks = int(std::max<int64_t>((p.ns + s.chunk - 1) / s.chunk, 1));
  return true;
}

}  // namespace

bool launch_attention_decode(const CudaContext& ctx, DType t, const AttnParams& p, const int32_t* key_len) {
  bool done = false;
  dispatch_nn(t, "attention", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    DecodeShape s;
    if (!decode_shape(ctx, p, sizeof(A), s)) return;
    done = true;
    if (p.nb * p.nh * p.nt == 0) return;
    Scratch part(ctx.device, size_t(p.nb * p.nhkv) * s.n_chunks * s.rows * (p.dv_dim + 2) * sizeof(A));
    LF_CUDA_CHECK(cudaFuncSetAttribute(attention_decode_kernel<T>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                       int(s.smem)));
    const dim3 grid1(unsigned(s.n_chunks), unsigned(p.nhkv), unsigned(p.nb));
    attention_decode_kernel<T><<<grid1, kDecodeThreads, s.smem, ctx.stream>>>(p, key_len, s.rows, s.bc, s.chunk,
                                                                              part.get<A>());
    LF_CUDA_CHECK_LAUNCH("attention_decode_kernel");
    const dim3 grid2(unsigned(s.rows), unsigned(p.nhkv), unsigned(p.nb));
    attention_decode_merge_kernel<T><<<grid2, kDecodeThreads, 0, ctx.stream>>>(p, s.rows, s.n_chunks, part.get<A>());
    LF_CUDA_CHECK_LAUNCH("attention_decode_merge_kernel");
  });
  return done;
}

}  // namespace lmforge::cuda
