// GPU elementwise kernels: unary, binary (with broadcasting by stride-0 operands) and where.
// Twin of backend/cpu/elementwise_cpu.cpp; the formulas below are the CPU's, term for term.
//
// Two paths per op family, one kernel per dtype each (the op is a kernel argument):
//   - vector: f32 / bf16 / f16 unary and arithmetic binary ops whose operands are all 16-byte
//     aligned and walk whole 16-byte vectors (vec_util.cuh group_layout: contiguous, with a tail
//     done element by element, or rows of whole vectors, e.g. a bias broadcast along rows). The
//     op is turned into a template constant once per thread, so each op's loop is straight-line
//     code over the elements of several vectors, whose loads are all issued first. This is the
//     training case, where these kernels are bound by memory bandwidth.
//   - strided: everything else, one element per thread and step, the op switched on per element
//     (uniform across the grid, so it costs a few instructions).
// Both evaluate apply_unary / apply_binary on the same loaded values and round with the same
// store, so they produce the same bits.
#include <type_traits>

#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"
#include "backend/cuda/vec_util.cuh"

namespace lmforge::cuda {

namespace {

constexpr double kSqrt1_2 = 0.70710678118654752440;

template <class A>
__device__ __forceinline__ A gelu_erf(A x) { return A(0.5) * x * (A(1) + m_erf(x * A(kSqrt1_2))); }
template <class A>
__device__ __forceinline__ A gelu_tanh(A x) {
  const A k = A(0.7978845608028654);  // sqrt(2/pi)
  return A(0.5) * x * (A(1) + m_tanh(k * (x + A(0.044715) * x * x * x)));
}

template <class A>
__device__ __forceinline__ A apply_unary(UnaryOp op, A x, A alpha, A beta) {
  switch (op) {
    case UnaryOp::Neg: return -x;
    case UnaryOp::Exp: return m_exp(x);
    case UnaryOp::Log: return m_log(x);
    case UnaryOp::Sqrt: return m_sqrt(x);
    case UnaryOp::Rsqrt: return A(1) / m_sqrt(x);
    case UnaryOp::Abs: return m_abs(x);
    case UnaryOp::Square: return x * x;
    case UnaryOp::Tanh: return m_tanh(x);
    case UnaryOp::Sigmoid: return m_sigmoid(x);
    case UnaryOp::Silu: return x * m_sigmoid(x);
    case UnaryOp::Relu: return x > A(0) ? x : A(0);
    case UnaryOp::GeluErf: return gelu_erf(x);
    case UnaryOp::GeluTanh: return gelu_tanh(x);
    case UnaryOp::Affine: return alpha * x + beta;
    case UnaryOp::PowScalar: return m_pow(x, alpha);
    case UnaryOp::Clamp: {
      if (m_isnan(x)) return x;
      const A lo = x < alpha ? alpha : x;  // std::max(x, alpha)
      return beta < lo ? beta : lo;        // std::min(lo, beta)
    }
  }
  return x;
}

template <class A>
__device__ __forceinline__ A apply_binary(BinaryOp op, A a, A b) {
  switch (op) {
    case BinaryOp::Add: return a + b;
    case BinaryOp::Sub: return a - b;
    case BinaryOp::Mul: return a * b;
    case BinaryOp::Div: return a / b;
    case BinaryOp::Pow: return m_pow(a, b);
    case BinaryOp::Maximum: return (m_isnan(a) || a > b) ? a : b;
    case BinaryOp::Minimum: return (m_isnan(a) || a < b) ? a : b;
    case BinaryOp::Eq: return A(a == b);
    case BinaryOp::Ne: return A(a != b);
    case BinaryOp::Lt: return A(a < b);
    case BinaryOp::Le: return A(a <= b);
    case BinaryOp::Gt: return A(a > b);
    case BinaryOp::Ge: return A(a >= b);
    case BinaryOp::SiluBackward: {
      const A s = m_sigmoid(a);
      return b * s * (A(1) + a * (A(1) - s));
    }
    case BinaryOp::GeluErfBackward: {
      const A cdf = A(0.5) * (A(1) + m_erf(a * A(kSqrt1_2)));
      const A pdf = m_exp(A(-0.5) * a * a) * A(0.3989422804014327);  // 1/sqrt(2 pi)
      return b * (cdf + a * pdf);
    }
    case BinaryOp::GeluTanhBackward: {
      const A k = A(0.7978845608028654), c = A(0.044715);
      const A inner = k * (a + c * a * a * a);
      const A t = m_tanh(inner);
      return b * (A(0.5) * (A(1) + t) + A(0.5) * a * (A(1) - t * t) * k * (A(1) + A(3) * c * a * a));
    }
    case BinaryOp::SigmoidBackward: return b * a * (A(1) - a);
    case BinaryOp::TanhBackward: return b * (A(1) - a * a);
    case BinaryOp::ReluBackward: return a > A(0) ? b : A(0);
  }
  return a;
}

template <class T>
__global__ void unary_kernel(UnaryOp op, const T* x, T* out, Layout<2> L, double alpha_d,
                             double beta_d) {
  using A = compute_t<T>;
  const A alpha = A(alpha_d), beta = A(beta_d);
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[2];
    L.offsets(i, off);
    out[off[1]] = store<T>(apply_unary(op, load(x[off[0]]), alpha, beta));
  }
}

template <class T, class O>
__global__ void binary_kernel(BinaryOp op, const T* a, const T* b, O* out,
                              Layout<3> L) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[3];
    L.offsets(i, off);
    out[off[2]] = store<O>(apply_binary(op, load(a[off[0]]), load(b[off[1]])));
  }
}

// ---- vector path ----

// 16-byte vectors per thread and step: enough loads in flight to cover memory latency at the
// occupancy these kernels reach.
constexpr int kVecPerThread = 2;

template <class T>
inline constexpr bool kVectorised = std::is_same_v<T, float> || std::is_same_v<T, bf16> || std::is_same_v<T, f16>;

// Calls f(std::integral_constant<int, op>) for the runtime op in [First, Last].
template <int First, int Last, class E, class F>
__device__ __forceinline__ void with_op(E op, F&& f) {
  if constexpr (First <= Last) {
    if (int(op) == First) f(std::integral_constant<int, First>{});
    else with_op<First + 1, Last>(op, f);
  }
}

// Runs f(in, out) over every group of V (N - 1 inputs, one output; offsets in vectors of T),
// then the tail elements of a contiguous layout through g(element index).
template <class T, int N, class F, class G>
__device__ __forceinline__ void vec_loop(const Layout<N>& V, int64_t tail, const T* const (&in)[N - 1], T* out, F f,
                                         G g) {
  constexpr int W = kVecWidth<T>, U = kVecPerThread;
  Vec<T> x[U][N - 1];
  for_each_group<U, N>(
      V,
      [&](int u, const int64_t(&off)[N]) {
#pragma unroll
        for (int k = 0; k < N - 1; ++k) x[u][k] = load_vec(in[k] + off[k] * W);
      },
      [&](int u, const int64_t(&off)[N]) {
        Vec<T> y;
#pragma unroll
        for (int e = 0; e < W; ++e) y.v[e] = f(x[u], e);
        store_vec(out + off[N - 1] * W, y);
      });
  if (blockIdx.x == 0 && threadIdx.x < tail) g(V.numel * W + threadIdx.x);
}

template <class T>
__global__ void unary_vec_kernel(UnaryOp op, const T* x, T* out, Layout<2> V, int64_t tail, double alpha_d,
                                 double beta_d) {
  using A = compute_t<T>;
  const A alpha = A(alpha_d), beta = A(beta_d);
  const T* const in[1] = {x};
  with_op<0, int(UnaryOp::Clamp)>(op, [&](auto c) {
    constexpr UnaryOp kOp = UnaryOp(decltype(c)::value);
    vec_loop<T, 2>(
        V, tail, in, out, [&](const Vec<T>(&v)[1], int e) { return apply_unary(kOp, v[0].v[e], alpha, beta); },
        [&](int64_t i) { out[i] = store<T>(apply_unary(kOp, load(x[i]), alpha, beta)); });
  });
}

// Arithmetic ops only: a comparison writes bool, not T.
template <class T>
__global__ void binary_vec_kernel(BinaryOp op, const T* a, const T* b, T* out, Layout<3> V, int64_t tail) {
  const T* const in[2] = {a, b};
  auto run = [&](auto c) {
    constexpr BinaryOp kOp = BinaryOp(decltype(c)::value);
    vec_loop<T, 3>(
        V, tail, in, out, [&](const Vec<T>(&v)[2], int e) { return apply_binary(kOp, v[0].v[e], v[1].v[e]); },
        [&](int64_t i) { out[i] = store<T>(apply_binary(kOp, load(a[i]), load(b[i]))); });
  };
  with_op<int(BinaryOp::Add), int(BinaryOp::Minimum)>(op, run);
  with_op<int(BinaryOp::SiluBackward), int(BinaryOp::ReluBackward)>(op, run);
}

template <class E>
__global__ void where_kernel(const bool* cond, const E* a, const E* b,
                             E* out, Layout<4> L) {
  const int64_t step = int64_t(gridDim.x) * blockDim.x;
  for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < L.numel; i += step) {
    int64_t off[4];
    L.offsets(i, off);
    out[off[3]] = cond[off[0]] ? a[off[1]] : b[off[2]];
  }
}

// Value types of elementwise arithmetic: the floats plus i32 / i64 (computed in double).
template <class F>
void dispatch_arith(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::I64: f(int64_t{}); return;
    case DType::I32: f(int32_t{}); return;
    default: dispatch_float(t, op, f);
  }
}

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }

}  // namespace

void launch_unary(const CudaContext& ctx, UnaryOp op, DType t, const void* x, void* out, const Layout<2>& L,
                  double alpha, double beta) {
  if (L.numel == 0) return;
  dispatch_arith(t, "unary", [&](auto t0) {
    using T = decltype(t0);
    if constexpr (kVectorised<T>) {
      Layout<2> V;
      int64_t tail = 0;
      if (group_layout<2>(L, {x, out}, kVecWidth<T>, V, tail)) {
        unary_vec_kernel<T><<<grid_for(ctx, V.numel, kThreads, kVecPerThread), kThreads, 0, ctx.stream>>>(
            op, static_cast<const T*>(x), static_cast<T*>(out), V, tail, alpha, beta);
        return;
      }
    }
    unary_kernel<T><<<grid_for(ctx, L.numel), kThreads, 0, ctx.stream>>>(op, static_cast<const T*>(x),
                                                                         static_cast<T*>(out), L, alpha, beta);
  });
  LF_CUDA_CHECK_LAUNCH("unary_kernel");
}

void launch_binary(const CudaContext& ctx, BinaryOp op, DType t, const void* a, const void* b, void* out,
                   const Layout<3>& L) {
  if (L.numel == 0) return;
  const bool cmp = is_comparison(op);
  dispatch_arith(t, "binary", [&](auto t0) {
    using T = decltype(t0);
    if constexpr (kVectorised<T>) {
      Layout<3> V;
      int64_t tail = 0;
      if (!cmp && group_layout<3>(L, {a, b, out}, kVecWidth<T>, V, tail)) {
        binary_vec_kernel<T><<<grid_for(ctx, V.numel, kThreads, kVecPerThread), kThreads, 0, ctx.stream>>>(
            op, static_cast<const T*>(a), static_cast<const T*>(b), static_cast<T*>(out), V, tail);
        return;
      }
    }
    const unsigned grid = grid_for(ctx, L.numel);
    if (cmp)
      binary_kernel<T, bool><<<grid, kThreads, 0, ctx.stream>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                                static_cast<bool*>(out), L);
    else
      binary_kernel<T, T><<<grid, kThreads, 0, ctx.stream>>>(op, static_cast<const T*>(a), static_cast<const T*>(b),
                                                             static_cast<T*>(out), L);
  });
  LF_CUDA_CHECK_LAUNCH("binary_kernel");
}

void launch_where(const CudaContext& ctx, DType t, const void* cond, const void* a, const void* b, void* out,
                  const Layout<4>& L) {
  if (L.numel == 0) return;
  const unsigned grid = grid_for(ctx, L.numel);
  const bool* c = static_cast<const bool*>(cond);
  switch (dtype_size(t)) {
    case 1: where_kernel<uint8_t><<<grid, kThreads, 0, ctx.stream>>>(c, static_cast<const uint8_t*>(a), static_cast<const uint8_t*>(b), static_cast<uint8_t*>(out), L); break;
    case 2: where_kernel<uint16_t><<<grid, kThreads, 0, ctx.stream>>>(c, static_cast<const uint16_t*>(a), static_cast<const uint16_t*>(b), static_cast<uint16_t*>(out), L); break;
    case 4: where_kernel<uint32_t><<<grid, kThreads, 0, ctx.stream>>>(c, static_cast<const uint32_t*>(a), static_cast<const uint32_t*>(b), static_cast<uint32_t*>(out), L); break;
    default: where_kernel<uint64_t><<<grid, kThreads, 0, ctx.stream>>>(c, static_cast<const uint64_t*>(a), static_cast<const uint64_t*>(b), static_cast<uint64_t*>(out), L); break;
  }
  LF_CUDA_CHECK_LAUNCH("where_kernel");
}

}  // namespace lmforge::cuda
