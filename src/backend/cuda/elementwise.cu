// GPU elementwise kernels: unary, binary (with broadcasting by stride-0 operands) and where.
// Twin of backend/cpu/elementwise_cpu.cpp; the formulas below are the CPU's, term for term.
// The op is a kernel argument switched on per element (uniform across the grid, so it costs a
// few instructions), which keeps the instantiations to one per dtype: this file compiles fast.
#include "backend/cuda/device_util.cuh"
#include "backend/cuda/kernels.h"
#include "backend/cuda/math_util.cuh"

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
