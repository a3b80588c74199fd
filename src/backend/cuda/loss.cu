// GPU cross-entropy, forward and backward, fused with label smoothing and z-loss. Twin of
// backend/cpu/loss_cpu.cpp (same formulas):
//   lse  = log Σ_i e^{x_i}
//   loss = -(1-eps)·(x_t - lse) - eps/V·(Σ_i x_i - V·lse) + z·lse²
//   dlogits_i = dloss·(p_i·(1 + 2·z·lse) - eps/V - (1-eps)·[i == t]),  p_i = e^{x_i - lse}
// Rows whose target is ignore_index get loss 0, lse 0 and a zero gradient.
//
// Both kernels are memory-bound (a [N, V] logits read, plus a [N, V] write backward) and run one
// block per row, so the row's target, lse and dloss are read once and no element index is ever
// divided by V. A row is walked in "units": 16-byte vectors (vec_util.cuh) when every row starts
// on a 16-byte boundary (aligned base, V a multiple of the vector width), single elements
// otherwise; each thread takes several units per step so that several loads are in flight.
//
// Forward: one pass over the logits with a running max and a rescaled sum per thread (online
// softmax): per step the max of the step's values first, then one rescale of the running sum and
// one exp per value, instead of a branch and possibly two exps per element. Per-thread results
// merge in a fixed tree (deterministic); nothing of size V is stored. Backward: from the saved
// lse, so no second logits-sized buffer either.
#include <algorithm>
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/vec_util.cuh"

namespace lmforge::cuda {

namespace {

// Threads per row block: enough units per thread to amortise the per-row work, and at most 256 so
// that several rows share an SM and one row's reduction or tail overlaps another's loads.
constexpr int kRowThreads = 256;

// Units per thread and step: two 16-byte vectors, or four scalars.
template <bool kVec>
inline constexpr int kUnitsPerStep = kVec ? 2 : 4;

template <class T, bool kVec>
inline constexpr int kUnitWidth = kVec ? kVecWidth<T> : 1;

// Loads unit j of a row (elements j·W .. j·W + W - 1) into x[0..W).
template <class T, bool kVec>
__device__ __forceinline__ void load_unit(const T* __restrict__ row, int64_t j, compute_t<T>* x) {
  if constexpr (kVec) {
    const Vec<T> u = load_vec(row + j * kVecWidth<T>);
#pragma unroll
    for (int k = 0; k < kVecWidth<T>; ++k) x[k] = u.v[k];
  } else {
    x[0] = load(row[j]);
  }
}

template <class T, bool kVec>
__device__ __forceinline__ void store_unit(T* __restrict__ row, int64_t j, const compute_t<T>* x) {
  if constexpr (kVec) {
    Vec<T> u;
#pragma unroll
    for (int k = 0; k < kVecWidth<T>; ++k) u.v[k] = x[k];
    store_vec(row + j * kVecWidth<T>, u);
  } else {
    row[j] = store<T>(x[0]);
  }
}

template <class A>
struct MaxSum {
  A m, s;
};

template <class A>
__device__ __forceinline__ MaxSum<A> merge_ms(MaxSum<A> a, MaxSum<A> b) {
  const A m = fmax(a.m, b.m);
  if (m == -m_inf<A>()) return {m, A(0)};
  return {m, a.s * m_exp(a.m - m) + b.s * m_exp(b.m - m)};
}

// Adds K values to a running (max, sum of e^{x - max}): the max of the K first (fmax skips NaN,
// which still reaches the sum through its exp), then at most one rescale, then one exp per value.
// While the max is -inf every value so far is -inf and adds nothing (and -inf - -inf is NaN).
template <class A, int K>
__device__ __forceinline__ void absorb(MaxSum<A>& ms, const A (&x)[K]) {
  A mv = x[0];
#pragma unroll
  for (int k = 1; k < K; ++k) mv = fmax(mv, x[k]);
  if (mv > ms.m) {
    ms.s *= m_exp(ms.m - mv);  // m = -inf gives 0
    ms.m = mv;
  }
  if (ms.m == -m_inf<A>()) return;
  A e = 0;
#pragma unroll
  for (int k = 0; k < K; ++k) e += m_exp(x[k] - ms.m);
  ms.s += e;
}

template <class T, class I, bool kVec>
__global__ void __launch_bounds__(kRowThreads) ce_forward_kernel(const T* __restrict__ logits,
                                                                 const I* __restrict__ targets, int64_t n,
                                                                 int64_t v, int64_t ignore_index, double eps_d,
                                                                 double z_d, compute_t<T>* __restrict__ loss,
                                                                 compute_t<T>* __restrict__ lse) {
  using A = compute_t<T>;
  constexpr int W = kUnitWidth<T, kVec>, U = kUnitsPerStep<kVec>;
  __shared__ A sm[32], ss[32], sx[32];
  const A eps = A(eps_d), z = A(z_d);
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
  const int64_t units = v / W;  // exact: the vector path needs V % W == 0
  const int64_t step = int64_t(U) * blockDim.x;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int64_t t = static_cast<int64_t>(targets[row]);
    if (t == ignore_index) {
      if (threadIdx.x == 0) { loss[row] = 0; lse[row] = 0; }
      continue;
    }
    const T* xr = logits + row * v;
    MaxSum<A> ms{-m_inf<A>(), A(0)};
    A sum_x = 0;
    // The sum of the logits only matters with label smoothing; the pass is instantiated both ways.
    auto pass = [&](auto smooth) {
      for (int64_t j0 = threadIdx.x; j0 < units; j0 += step) {
        A x[U * W];
#pragma unroll
        for (int u = 0; u < U; ++u) {
          const int64_t j = j0 + int64_t(u) * blockDim.x;
          if (j < units) {
            load_unit<T, kVec>(xr, j, x + u * W);
            if constexpr (decltype(smooth)::value) {
#pragma unroll
              for (int k = 0; k < W; ++k) sum_x += x[u * W + k];
            }
          } else {
#pragma unroll
            for (int k = 0; k < W; ++k) x[u * W + k] = -m_inf<A>();
          }
        }
        absorb(ms, x);
      }
    };
    if (eps_d != 0) pass(std::true_type{});
    else pass(std::false_type{});
    // Tree merge, fixed order.
    for (int o = 16; o > 0; o >>= 1) {
      MaxSum<A> other{__shfl_down_sync(0xffffffffu, ms.m, o), __shfl_down_sync(0xffffffffu, ms.s, o)};
      const A ox = __shfl_down_sync(0xffffffffu, sum_x, o);
      if (lane + o < 32) { ms = merge_ms(ms, other); sum_x += ox; }
    }
    __syncthreads();
    if (lane == 0) { sm[warp] = ms.m; ss[warp] = ms.s; sx[warp] = sum_x; }
    __syncthreads();
    if (threadIdx.x == 0) {
      for (int w = 1; w < nwarps; ++w) {
        ms = merge_ms(ms, MaxSum<A>{sm[w], ss[w]});
        sum_x += sx[w];
      }
      const A l = ms.m + m_log(ms.s);
      const A logp_t = A(load(xr[t])) - l;
      A out = -(A(1) - eps) * logp_t + z * l * l;
      if (eps_d != 0) out -= eps / A(v) * (sum_x - A(v) * l);
      loss[row] = out;
      lse[row] = l;
    }
  }
}

template <class T, class I, bool kVec>
__global__ void __launch_bounds__(kRowThreads) ce_backward_kernel(const T* __restrict__ logits,
                                                                  const I* __restrict__ targets,
                                                                  const compute_t<T>* __restrict__ lse,
                                                                  const compute_t<T>* __restrict__ dloss, int64_t n,
                                                                  int64_t v, int64_t ignore_index, double eps_d,
                                                                  double z_d, T* __restrict__ dlogits) {
  using A = compute_t<T>;
  constexpr int W = kUnitWidth<T, kVec>, U = kUnitsPerStep<kVec>;
  const A eps = A(eps_d), z = A(z_d);
  const int64_t units = v / W;
  const int64_t step = int64_t(U) * blockDim.x;
  for (int64_t row = blockIdx.x; row < n; row += gridDim.x) {
    const int64_t t = static_cast<int64_t>(targets[row]);
    const T* xr = logits + row * v;
    T* dr = dlogits + row * v;
    if (t == ignore_index) {
      A zero[W];
#pragma unroll
      for (int k = 0; k < W; ++k) zero[k] = A(0);
      for (int64_t j = threadIdx.x; j < units; j += blockDim.x) store_unit<T, kVec>(dr, j, zero);
      continue;
    }
    const A g = dloss[row], l = lse[row];
    const A gp = g * (A(1) + A(2) * z * l), off = g * eps / A(v), hit = g * (A(1) - eps);
    for (int64_t j0 = threadIdx.x; j0 < units; j0 += step) {
      A x[U * W];
      // Every load of the step first, then the math and the stores.
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t j = j0 + int64_t(u) * blockDim.x;
        if (j < units) load_unit<T, kVec>(xr, j, x + u * W);
      }
#pragma unroll
      for (int u = 0; u < U; ++u) {
        const int64_t j = j0 + int64_t(u) * blockDim.x;
        if (j >= units) continue;
        const int64_t rel = t - j * W;  // position of the target inside this unit, if there
#pragma unroll
        for (int k = 0; k < W; ++k) {
          A d = gp * m_exp(x[u * W + k] - l) - off;
          if (k == rel) d -= hit;
          x[u * W + k] = d;
        }
        store_unit<T, kVec>(dr, j, x + u * W);
      }
    }
  }
}

// True when every row of the operands starts on a 16-byte boundary and holds whole vectors.
template <class T>
bool rows_vectorisable(const void* a, const void* b, int64_t v) {
  return aligned16(a) && (b == nullptr || aligned16(b)) && v % kVecWidth<T> == 0;
}

template <class T, bool kVec>
unsigned row_block(int64_t v) {
  return unsigned(std::min(kRowThreads, row_threads(v / kUnitWidth<T, kVec>, kUnitsPerStep<kVec>)));
}

unsigned row_grid(int64_t n) { return unsigned(std::min<int64_t>(n, int64_t(1) << 30)); }

}  // namespace

void launch_cross_entropy_forward(const CudaContext& ctx, DType t, DType it, const void* logits, const void* targets,
                                  int64_t n, int64_t v, const CrossEntropyArgs& args, void* loss, void* lse) {
  if (n == 0) return;
  dispatch_nn(t, "cross_entropy", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    dispatch_index(it, "cross_entropy targets", [&](auto i0) {
      using I = decltype(i0);
      auto go = [&](auto vec) {
        constexpr bool kVec = decltype(vec)::value;
        ce_forward_kernel<T, I, kVec><<<row_grid(n), row_block<T, kVec>(v), 0, ctx.stream>>>(
            static_cast<const T*>(logits), static_cast<const I*>(targets), n, v, args.ignore_index,
            args.label_smoothing, args.z_loss, static_cast<A*>(loss), static_cast<A*>(lse));
      };
      if (rows_vectorisable<T>(logits, nullptr, v)) go(std::true_type{});
      else go(std::false_type{});
    });
  });
  LF_CUDA_CHECK_LAUNCH("ce_forward_kernel");
}

void launch_cross_entropy_backward(const CudaContext& ctx, DType t, DType it, const void* logits, const void* targets,
                                   const void* lse, const void* dloss, int64_t n, int64_t v,
                                   const CrossEntropyArgs& args, void* dlogits) {
  if (n * v == 0) return;
  dispatch_nn(t, "cross_entropy_backward", [&](auto t0) {
    using T = decltype(t0);
    using A = compute_t<T>;
    dispatch_index(it, "cross_entropy targets", [&](auto i0) {
      using I = decltype(i0);
      auto go = [&](auto vec) {
        constexpr bool kVec = decltype(vec)::value;
        ce_backward_kernel<T, I, kVec><<<row_grid(n), row_block<T, kVec>(v), 0, ctx.stream>>>(
            static_cast<const T*>(logits), static_cast<const I*>(targets), static_cast<const A*>(lse),
            static_cast<const A*>(dloss), n, v, args.ignore_index, args.label_smoothing, args.z_loss,
            static_cast<T*>(dlogits));
      };
      if (rows_vectorisable<T>(logits, dlogits, v)) go(std::true_type{});
      else go(std::false_type{});
    });
  });
  LF_CUDA_CHECK_LAUNCH("ce_backward_kernel");
}

}  // namespace lmforge::cuda
