// CPU elementwise kernels. The op is a template parameter of the inner loop, so there is no
// per-element dispatch; contiguous rows take a unit-stride loop the compiler vectorises.
#include <cmath>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_types.h"
#include "backend/cpu/nn_kernel_util.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

template <class A>
inline A gelu_erf(A x) { return A(0.5) * x * (A(1) + std::erf(x * A(M_SQRT1_2))); }
// tanh-GELU: 0.5·x·(1 + tanh(u)) with u = sqrt(2/pi)·(x + 0.044715·x³). Since
// 1 + tanh(u) = 2·sigmoid(2u), this is x·sigmoid(2u) exactly, which needs one exp (vectorised,
// exp_fast) instead of libm's scalar tanh, and has no cancellation for negative x.
template <class A>
[[gnu::always_inline]] inline A gelu_tanh(A x) {
  const A k = A(0.7978845608028654);  // sqrt(2/pi)
  const A u = k * (x + A(0.044715) * x * x * x);
  return x * sigmoid_fast(A(2) * u);
}
template <class A>
inline A sigmoid_of(A x) { return sigmoid_fast(x); }

// always_inline: the op bodies must inline into the row loops so those vectorise.
template <UnaryOp Op, class A>
[[gnu::always_inline]] inline A apply_unary(A x, A alpha, A beta) {
  if constexpr (Op == UnaryOp::Neg) return -x;
  else if constexpr (Op == UnaryOp::Exp) return std::exp(x);
  else if constexpr (Op == UnaryOp::Log) return std::log(x);
  else if constexpr (Op == UnaryOp::Sqrt) return std::sqrt(x);
  else if constexpr (Op == UnaryOp::Rsqrt) return A(1) / std::sqrt(x);
  else if constexpr (Op == UnaryOp::Abs) return std::abs(x);
  else if constexpr (Op == UnaryOp::Square) return x * x;
  else if constexpr (Op == UnaryOp::Tanh) return std::tanh(x);
  else if constexpr (Op == UnaryOp::Sigmoid) return sigmoid_of(x);
  else if constexpr (Op == UnaryOp::Silu) return x * sigmoid_of(x);
  else if constexpr (Op == UnaryOp::Relu) return x > A(0) ? x : A(0);
  else if constexpr (Op == UnaryOp::GeluErf) return gelu_erf(x);
  else if constexpr (Op == UnaryOp::GeluTanh) return gelu_tanh(x);
  else if constexpr (Op == UnaryOp::Affine) return alpha * x + beta;
  else if constexpr (Op == UnaryOp::PowScalar) return std::pow(x, alpha);
  else if constexpr (Op == UnaryOp::Clamp) return std::isnan(x) ? x : std::min(std::max(x, alpha), beta);
}

template <BinaryOp Op, class A>
[[gnu::always_inline]] inline A apply_binary(A a, A b) {
  if constexpr (Op == BinaryOp::Add) return a + b;
  else if constexpr (Op == BinaryOp::Sub) return a - b;
  else if constexpr (Op == BinaryOp::Mul) return a * b;
  else if constexpr (Op == BinaryOp::Div) return a / b;
  else if constexpr (Op == BinaryOp::Pow) return std::pow(a, b);
  else if constexpr (Op == BinaryOp::Maximum) return (std::isnan(a) || a > b) ? a : b;
  else if constexpr (Op == BinaryOp::Minimum) return (std::isnan(a) || a < b) ? a : b;
  else if constexpr (Op == BinaryOp::SiluBackward) {
    A s = sigmoid_of(a);
    return b * s * (A(1) + a * (A(1) - s));
  } else if constexpr (Op == BinaryOp::GeluErfBackward) {
    const A cdf = A(0.5) * (A(1) + std::erf(a * A(M_SQRT1_2)));
    const A pdf = std::exp(A(-0.5) * a * a) * A(0.3989422804014327);  // 1/sqrt(2 pi)
    return b * (cdf + a * pdf);
  } else if constexpr (Op == BinaryOp::GeluTanhBackward) {
    // d/dx x·s(2u) = s + x·s·(1 - s)·2u',  s = sigmoid(2u), u' = k·(1 + 3c·x²)
    const A k = A(0.7978845608028654), c = A(0.044715);
    const A s = sigmoid_fast(A(2) * k * (a + c * a * a * a));
    return b * (s + a * s * (A(1) - s) * A(2) * k * (A(1) + A(3) * c * a * a));
  } else if constexpr (Op == BinaryOp::SigmoidBackward) return b * a * (A(1) - a);
  else if constexpr (Op == BinaryOp::TanhBackward) return b * (A(1) - a * a);
  else if constexpr (Op == BinaryOp::ReluBackward) return a > A(0) ? b : A(0);
  else if constexpr (Op == BinaryOp::Eq) return A(a == b);
  else if constexpr (Op == BinaryOp::Ne) return A(a != b);
  else if constexpr (Op == BinaryOp::Lt) return A(a < b);
  else if constexpr (Op == BinaryOp::Le) return A(a <= b);
  else if constexpr (Op == BinaryOp::Gt) return A(a > b);
  else if constexpr (Op == BinaryOp::Ge) return A(a >= b);
}

template <UnaryOp Op, class T, class O>
void run_unary(const Tensor& x, const Tensor& out, double alpha_d, double beta_d) {
  using A = compute_t<T>;
  const A alpha = A(alpha_d), beta = A(beta_d);
  const T* xs = static_cast<const T*>(x.data_ptr());
  O* os = static_cast<O*>(out.data_ptr());
  for_each_row<2>(out.shape(), {x.strides(), out.strides()},
                  [&](const std::array<int64_t, 2>& off, int64_t n, const std::array<int64_t, 2>& st) {
                    const T* xp = xs + off[0];
                    O* op = os + off[1];
                    if (st[0] == 1 && st[1] == 1) {
                      for (int64_t i = 0; i < n; ++i) op[i] = store<O>(apply_unary<Op>(load(xp[i]), alpha, beta));
                    } else {
                      for (int64_t i = 0; i < n; ++i)
                        op[i * st[1]] = store<O>(apply_unary<Op>(load(xp[i * st[0]]), alpha, beta));
                    }
                  });
}

template <BinaryOp Op, class T, class O>
void run_binary(const Tensor& a, const Tensor& b, const Tensor& out) {
  using A = compute_t<T>;
  const T* as = static_cast<const T*>(a.data_ptr());
  const T* bs = static_cast<const T*>(b.data_ptr());
  O* os = static_cast<O*>(out.data_ptr());
  for_each_row<3>(out.shape(), {a.strides(), b.strides(), out.strides()},
                  [&](const std::array<int64_t, 3>& off, int64_t n, const std::array<int64_t, 3>& st) {
                    const T* ap = as + off[0];
                    const T* bp = bs + off[1];
                    O* op = os + off[2];
                    if (st[0] == 1 && st[1] == 1 && st[2] == 1) {
                      for (int64_t i = 0; i < n; ++i) op[i] = store<O>(apply_binary<Op>(load(ap[i]), load(bp[i])));
                    } else if (st[0] == 1 && st[1] == 0 && st[2] == 1) {
                      const A bv = load(bp[0]);
                      for (int64_t i = 0; i < n; ++i) op[i] = store<O>(apply_binary<Op>(load(ap[i]), bv));
                    } else if (st[0] == 0 && st[1] == 1 && st[2] == 1) {
                      const A av = load(ap[0]);
                      for (int64_t i = 0; i < n; ++i) op[i] = store<O>(apply_binary<Op>(av, load(bp[i])));
                    } else {
                      for (int64_t i = 0; i < n; ++i)
                        op[i * st[2]] = store<O>(apply_binary<Op>(load(ap[i * st[0]]), load(bp[i * st[1]])));
                    }
                  });
}

// Value types allowed in elementwise arithmetic: floats plus i32/i64 (computed in double).
template <class F>
void dispatch_arith(DType t, const char* op, F&& f) {
  switch (t) {
    case DType::I64: f(int64_t{}); return;
    case DType::I32: f(int32_t{}); return;
    default: dispatch_float(t, op, f);
  }
}

template <class F, size_t... I>
void unary_table(UnaryOp op, F&& f, std::index_sequence<I...>) {
  ((static_cast<size_t>(op) == I ? (f(std::integral_constant<UnaryOp, static_cast<UnaryOp>(I)>{}), 0) : 0), ...);
}
template <class F, size_t... I>
void binary_table(BinaryOp op, F&& f, std::index_sequence<I...>) {
  ((static_cast<size_t>(op) == I ? (f(std::integral_constant<BinaryOp, static_cast<BinaryOp>(I)>{}), 0) : 0), ...);
}

bool is_comparison(BinaryOp op) { return op >= BinaryOp::Eq && op <= BinaryOp::Ge; }

}  // namespace

void CpuBackend::do_unary(UnaryOp op, const Tensor& x, const Tensor& out, double alpha, double beta) {
  dispatch_arith(x.dtype(), "unary", [&](auto t0) {
    using T = decltype(t0);
    unary_table(op, [&](auto opc) { run_unary<decltype(opc)::value, T, T>(x, out, alpha, beta); },
                std::make_index_sequence<static_cast<size_t>(UnaryOp::Clamp) + 1>{});
  });
}

void CpuBackend::do_binary(BinaryOp op, const Tensor& a, const Tensor& b, const Tensor& out) {
  const bool cmp = is_comparison(op);
  dispatch_arith(a.dtype(), "binary", [&](auto t0) {
    using T = decltype(t0);
    binary_table(op, [&](auto opc) {
      if (cmp) run_binary<decltype(opc)::value, T, bool>(a, b, out);
      else run_binary<decltype(opc)::value, T, T>(a, b, out);
    }, std::make_index_sequence<static_cast<size_t>(BinaryOp::ReluBackward) + 1>{});
  });
}

void CpuBackend::do_where(const Tensor& cond, const Tensor& a, const Tensor& b, const Tensor& out) {
  dispatch_dtype(out.dtype(), [&](auto t0) {
    using T = decltype(t0);
    const bool* cs = static_cast<const bool*>(cond.data_ptr());
    const T* as = static_cast<const T*>(a.data_ptr());
    const T* bs = static_cast<const T*>(b.data_ptr());
    T* os = static_cast<T*>(out.data_ptr());
    for_each_row<4>(out.shape(), {cond.strides(), a.strides(), b.strides(), out.strides()},
                    [&](const std::array<int64_t, 4>& off, int64_t n, const std::array<int64_t, 4>& st) {
                      for (int64_t i = 0; i < n; ++i)
                        os[off[3] + i * st[3]] =
                            cs[off[0] + i * st[0]] ? as[off[1] + i * st[1]] : bs[off[2] + i * st[2]];
                    });
  });
}

}  // namespace lmforge
