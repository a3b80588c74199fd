// Elementwise ops with broadcasting, their backward passes side by side.
#include "ops/elementwise.h"

#include <cmath>

#include "autograd/function.h"
#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge {

namespace {

int float_rank(DType t) {
  switch (t) {
    case DType::F64: return 5;
    case DType::F32: return 4;
    case DType::BF16: case DType::F16: return 3;
    case DType::F8E4M3: case DType::F8E5M2: return 2;
    default: return 0;
  }
}

DType result_type(DType a, DType b, const char* op) {
  if (a == b) return a;
  const int ra = float_rank(a), rb = float_rank(b);
  if (ra == 0 && rb == 0) {
    // integers: the wider of the two (i64 wins)
    return (dtype_size(a) >= dtype_size(b)) ? a : b;
  }
  if (ra != rb) return ra > rb ? a : b;
  // bf16 with f16, or the two fp8 kinds: compute in f32.
  return DType::F32;
}

void check_same_device(const Tensor& a, const Tensor& b, const char* op) {
  LF_CHECK(a.device() == b.device(), "{}: operands on different devices ({} and {})", op, a.str(), b.str());
}

// Forward of a binary kernel op with broadcasting; `cmp` outputs bool.
Tensor binary_forward(BinaryOp op, const Tensor& a0, const Tensor& b0, const char* name, bool cmp = false) {
  check_same_device(a0, b0, name);
  const DType dt = result_type(a0.dtype(), b0.dtype(), name);
  Shape shape = broadcast_shapes(a0.shape(), b0.shape(), name);
  Tensor a = cast(a0, dt).detach(), b = cast(b0, dt).detach();
  if (a.shape() != shape) a = expand(a, shape);
  if (b.shape() != shape) b = expand(b, shape);
  Tensor out = Tensor::empty(shape, cmp ? DType::Bool : dt, a0.device());
  backend_for(out).binary(op, a, b, out);
  return out;
}

Tensor unary_forward(UnaryOp op, const Tensor& x, double alpha = 0, double beta = 0) {
  Tensor out = Tensor::empty(x.shape(), x.dtype(), x.device());
  backend_for(x).unary(op, x, out, alpha, beta);
  return out;
}

Tensor float_input(const Tensor& x, const char* op) {
  if (is_floating(x.dtype())) return x;
  return cast(x, DType::F32);
}

// Records a unary op whose gradient is bw(x, y, g).
template <class F>
Tensor unary_op(const char* name, UnaryOp op, const Tensor& x0, F bw, double alpha = 0, double beta = 0) {
  Tensor x = float_input(x0, name);
  Tensor y = unary_forward(op, x, alpha, beta);
  if (any_requires_grad({x}))
    record_op(name, {x}, {y}, [sx = SavedTensor(x), sy = SavedTensor(y), bw](BackwardContext& ctx) -> TensorList {
      return {bw(sx.get(), sy.get(), ctx.grad())};
    });
  return y;
}

Tensor backward_kernel(BinaryOp op, const Tensor& a, const Tensor& g) {
  Tensor gg = cast(g, a.dtype());
  Tensor out = Tensor::empty(a.shape(), a.dtype(), a.device());
  backend_for(a).binary(op, a, gg, out);
  return out;
}

}  // namespace

// ---- binary arithmetic ----

Tensor add(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Add, a, b, "add");
  if (any_requires_grad({a, b}))
    record_op("add", {a, b}, {out}, [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      if (ctx.needs_input_grad(0)) g[0] = cast(sum_to(ctx.grad(), sa), da);
      if (ctx.needs_input_grad(1)) g[1] = cast(sum_to(ctx.grad(), sb), db);
      return g;
    });
  return out;
}

Tensor sub(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Sub, a, b, "sub");
  if (any_requires_grad({a, b}))
    record_op("sub", {a, b}, {out}, [sa = a.shape(), sb = b.shape(), da = a.dtype(), db = b.dtype()](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      if (ctx.needs_input_grad(0)) g[0] = cast(sum_to(ctx.grad(), sa), da);
      if (ctx.needs_input_grad(1)) g[1] = cast(sum_to(neg(ctx.grad()), sb), db);
      return g;
    });
  return out;
}

Tensor mul(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Mul, a, b, "mul");
  if (any_requires_grad({a, b}))
    record_op("mul", {a, b}, {out}, [sa = SavedTensor(a), sb = SavedTensor(b)](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      const Tensor &A = sa.get(), &B = sb.get();
      if (ctx.needs_input_grad(0)) g[0] = cast(sum_to(mul(ctx.grad(), B), A.shape()), A.dtype());
      if (ctx.needs_input_grad(1)) g[1] = cast(sum_to(mul(ctx.grad(), A), B.shape()), B.dtype());
      return g;
    });
  return out;
}

Tensor div(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Div, a, b, "div");
  if (any_requires_grad({a, b}))
    record_op("div", {a, b}, {out}, [sa = SavedTensor(a), sb = SavedTensor(b)](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      const Tensor &A = sa.get(), &B = sb.get();
      Tensor ga = div(ctx.grad(), B);
      if (ctx.needs_input_grad(0)) g[0] = cast(sum_to(ga, A.shape()), A.dtype());
      if (ctx.needs_input_grad(1)) g[1] = cast(sum_to(neg(mul(ga, div(A, B))), B.shape()), B.dtype());
      return g;
    });
  return out;
}

Tensor pow(const Tensor& a, const Tensor& b) {
  Tensor out = binary_forward(BinaryOp::Pow, a, b, "pow");
  if (any_requires_grad({a, b}))
    record_op("pow", {a, b}, {out}, [sa = SavedTensor(a), sb = SavedTensor(b), so = SavedTensor(out)](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      const Tensor &A = sa.get(), &B = sb.get(), &Y = so.get();
      // d/da a^b = b a^(b-1); d/db a^b = a^b log a (0 where a == 0, as PyTorch).
      if (ctx.needs_input_grad(0))
        g[0] = cast(sum_to(mul(ctx.grad(), mul(B, pow(A, add(B, -1.0)))), A.shape()), A.dtype());
      if (ctx.needs_input_grad(1)) {
        Tensor la = where(eq(A, zeros_like(A)), zeros_like(A), log(A));
        g[1] = cast(sum_to(mul(ctx.grad(), mul(Y, la)), B.shape()), B.dtype());
      }
      return g;
    });
  return out;
}

namespace {
Tensor minmax(BinaryOp op, const Tensor& a, const Tensor& b, const char* name) {
  Tensor out = binary_forward(op, a, b, name);
  if (any_requires_grad({a, b}))
    record_op(name, {a, b}, {out}, [sa = SavedTensor(a), sb = SavedTensor(b), op](BackwardContext& ctx) -> TensorList {
      TensorList g(2);
      const Tensor &A = sa.get(), &B = sb.get();
      // The gradient goes to the selected operand; ties split it evenly (as torch.maximum).
      Tensor pick_a = op == BinaryOp::Maximum ? gt(A, B) : lt(A, B);
      Tensor tie = eq(A, B);
      Tensor wa = add(cast(pick_a, ctx.grad().dtype()), mul(cast(tie, ctx.grad().dtype()), 0.5));
      Tensor wb = add(mul(wa, -1.0), 1.0);
      if (ctx.needs_input_grad(0)) g[0] = cast(sum_to(mul(ctx.grad(), wa), A.shape()), A.dtype());
      if (ctx.needs_input_grad(1)) g[1] = cast(sum_to(mul(ctx.grad(), wb), B.shape()), B.dtype());
      return g;
    });
  return out;
}
}  // namespace

Tensor maximum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::Maximum, a, b, "maximum"); }
Tensor minimum(const Tensor& a, const Tensor& b) { return minmax(BinaryOp::Minimum, a, b, "minimum"); }

Tensor add(const Tensor& a, double s) {
  return unary_op("add_scalar", UnaryOp::Affine, a, [](const Tensor&, const Tensor&, const Tensor& g) { return g; },
                  1.0, s);
}
Tensor mul(const Tensor& a, double s) {
  return unary_op("mul_scalar", UnaryOp::Affine, a,
                  [s](const Tensor&, const Tensor&, const Tensor& g) { return mul(g, s); }, s, 0.0);
}
Tensor pow(const Tensor& a, double e) {
  return unary_op("pow_scalar", UnaryOp::PowScalar, a,
                  [e](const Tensor& x, const Tensor&, const Tensor& g) { return mul(mul(g, pow(x, e - 1.0)), e); }, e);
}

Tensor eq(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Eq, a, b, "eq", true); }
Tensor ne(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ne, a, b, "ne", true); }
Tensor lt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Lt, a, b, "lt", true); }
Tensor le(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Le, a, b, "le", true); }
Tensor gt(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Gt, a, b, "gt", true); }
Tensor ge(const Tensor& a, const Tensor& b) { return binary_forward(BinaryOp::Ge, a, b, "ge", true); }

// ---- unary ----

Tensor neg(const Tensor& x) {
  return unary_op("neg", UnaryOp::Neg, x, [](const Tensor&, const Tensor&, const Tensor& g) { return neg(g); });
}
Tensor exp(const Tensor& x) {
  return unary_op("exp", UnaryOp::Exp, x, [](const Tensor&, const Tensor& y, const Tensor& g) { return mul(g, y); });
}
Tensor log(const Tensor& x) {
  return unary_op("log", UnaryOp::Log, x, [](const Tensor& x, const Tensor&, const Tensor& g) { return div(g, x); });
}
Tensor sqrt(const Tensor& x) {
  return unary_op("sqrt", UnaryOp::Sqrt, x,
                  [](const Tensor&, const Tensor& y, const Tensor& g) { return div(mul(g, 0.5), y); });
}
Tensor rsqrt(const Tensor& x) {
  // d/dx x^-1/2 = -1/2 x^-3/2 = -1/2 y^3
  return unary_op("rsqrt", UnaryOp::Rsqrt, x, [](const Tensor&, const Tensor& y, const Tensor& g) {
    return mul(mul(g, pow(y, 3.0)), -0.5);
  });
}
Tensor abs(const Tensor& x) {
  return unary_op("abs", UnaryOp::Abs, x, [](const Tensor& x, const Tensor&, const Tensor& g) {
    Tensor sign = sub(cast(gt(x, zeros_like(x)), x.dtype()), cast(lt(x, zeros_like(x)), x.dtype()));
    return mul(g, sign);
  });
}
Tensor square(const Tensor& x) {
  return unary_op("square", UnaryOp::Square, x,
                  [](const Tensor& x, const Tensor&, const Tensor& g) { return mul(mul(g, x), 2.0); });
}
Tensor tanh(const Tensor& x) {
  return unary_op("tanh", UnaryOp::Tanh, x,
                  [](const Tensor&, const Tensor& y, const Tensor& g) { return backward_kernel(BinaryOp::TanhBackward, y, g); });
}
Tensor sigmoid(const Tensor& x) {
  return unary_op("sigmoid", UnaryOp::Sigmoid, x, [](const Tensor&, const Tensor& y, const Tensor& g) {
    return backward_kernel(BinaryOp::SigmoidBackward, y, g);
  });
}
Tensor silu(const Tensor& x) {
  return unary_op("silu", UnaryOp::Silu, x,
                  [](const Tensor& x, const Tensor&, const Tensor& g) { return backward_kernel(BinaryOp::SiluBackward, x, g); });
}
Tensor relu(const Tensor& x) {
  return unary_op("relu", UnaryOp::Relu, x,
                  [](const Tensor& x, const Tensor&, const Tensor& g) { return backward_kernel(BinaryOp::ReluBackward, x, g); });
}
Tensor gelu(const Tensor& x, GeluApprox approx) {
  if (approx == GeluApprox::Tanh)
    return unary_op("gelu_tanh", UnaryOp::GeluTanh, x, [](const Tensor& x, const Tensor&, const Tensor& g) {
      return backward_kernel(BinaryOp::GeluTanhBackward, x, g);
    });
  return unary_op("gelu", UnaryOp::GeluErf, x, [](const Tensor& x, const Tensor&, const Tensor& g) {
    return backward_kernel(BinaryOp::GeluErfBackward, x, g);
  });
}
Tensor clamp(const Tensor& x, double lo, double hi) {
  LF_CHECK(lo <= hi, "clamp: lower bound {} above upper bound {}", lo, hi);
  return unary_op("clamp", UnaryOp::Clamp, x, [lo, hi](const Tensor& x, const Tensor&, const Tensor& g) {
    Tensor inside = cast(mul(cast(ge(x, full_like(x, lo)), x.dtype()), cast(le(x, full_like(x, hi)), x.dtype())), x.dtype());
    return mul(g, inside);
  }, lo, hi);
}

Tensor where(const Tensor& cond0, const Tensor& a0, const Tensor& b0) {
  LF_CHECK(cond0.dtype() == DType::Bool, "where: condition must be bool, got {}", cond0.str());
  check_same_device(a0, b0, "where");
  check_same_device(cond0, a0, "where");
  const DType dt = result_type(a0.dtype(), b0.dtype(), "where");
  Shape shape = broadcast_shapes(broadcast_shapes(cond0.shape(), a0.shape(), "where"), b0.shape(), "where");
  Tensor c = expand(cond0.detach(), shape), a = expand(cast(a0, dt).detach(), shape),
         b = expand(cast(b0, dt).detach(), shape);
  Tensor out = Tensor::empty(shape, dt, a0.device());
  backend_for(out).where(c, a, b, out);
  if (any_requires_grad({a0, b0}))
    record_op("where", {a0, b0}, {out},
              [sc = SavedTensor(cond0), sa = a0.shape(), sb = b0.shape(), da = a0.dtype(), db = b0.dtype()](BackwardContext& ctx) -> TensorList {
                TensorList g(2);
                Tensor z = zeros_like(ctx.grad());
                if (ctx.needs_input_grad(0)) g[0] = cast(sum_to(where(sc.get(), ctx.grad(), z), sa), da);
                if (ctx.needs_input_grad(1)) g[1] = cast(sum_to(where(sc.get(), z, ctx.grad()), sb), db);
                return g;
              });
  return out;
}

Tensor masked_fill(const Tensor& x, const Tensor& mask, double value) {
  return where(mask, full({}, value, x.dtype(), x.device()), x);
}

Tensor cast(const Tensor& x, DType dtype) {
  if (x.dtype() == dtype) return x;
  Tensor out = Tensor::empty(x.shape(), dtype, x.device());
  backend_for(x).copy(x, out);
  if (is_floating(dtype) && any_requires_grad({x})) {
    DType from = x.dtype();
    record_op("cast", {x}, {out}, [from](BackwardContext& ctx) -> TensorList { return {cast(ctx.grad(), from)}; });
  }
  return out;
}

Tensor& add_(Tensor& a, const Tensor& b, double alpha) {
  LF_CHECK(!(GradMode::is_enabled() && a.requires_grad()), "add_: in-place update of {} which requires grad; "
           "do it under NoGradGuard", a.str());
  Shape shape = broadcast_shapes(a.shape(), b.shape(), "add_");
  LF_CHECK(shape == a.shape(), "add_: cannot broadcast {} into {}", b.str(), a.str());
  Tensor bb = expand(cast(b, a.dtype()).detach(), a.shape());
  if (alpha != 1.0) {
    Tensor scaled = Tensor::empty(bb.shape(), bb.dtype(), bb.device());
    backend_for(a).unary(UnaryOp::Affine, bb, scaled, alpha, 0.0);
    bb = scaled;
  }
  backend_for(a).binary(BinaryOp::Add, a, bb, a);
  a.bump_version();
  return a;
}

Tensor& mul_(Tensor& a, double s) {
  LF_CHECK(!(GradMode::is_enabled() && a.requires_grad()), "mul_: in-place update of {} which requires grad; "
           "do it under NoGradGuard", a.str());
  backend_for(a).unary(UnaryOp::Affine, a, a, s, 0.0);
  a.bump_version();
  return a;
}

Tensor operator+(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor operator-(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor operator*(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor operator/(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor operator-(const Tensor& a) { return neg(a); }
Tensor operator*(const Tensor& a, double s) { return mul(a, s); }
Tensor operator*(double s, const Tensor& a) { return mul(a, s); }
Tensor operator+(const Tensor& a, double s) { return add(a, s); }

}  // namespace lmforge
