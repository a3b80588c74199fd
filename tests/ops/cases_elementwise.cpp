// Registry cases for elementwise ops, with plain-loop references on host doubles.
#include <cmath>

#include "core/float_convert.h"
#include "ops/op_registry.h"

namespace lmforge::test {
namespace {

// Reference for a broadcasting binary op, computed index by index.
Tensor ref_binary(const Tensor& a, const Tensor& b, double (*f)(double, double)) {
  Shape shape = broadcast_shapes(a.shape(), b.shape());
  HostTensor A(a), B(b), out(shape);
  const int64_t nd = static_cast<int64_t>(shape.size());
  for (int64_t i = 0; i < shape_numel(shape); ++i) {
    int64_t rem = i, oa = 0, ob = 0, sa = 1, sb = 1;
    for (int64_t d = nd - 1; d >= 0; --d) {
      const int64_t idx = rem % shape[d];
      rem /= shape[d];
      const int64_t da = d - (nd - static_cast<int64_t>(A.shape.size()));
      const int64_t db = d - (nd - static_cast<int64_t>(B.shape.size()));
      if (da >= 0) { oa += (A.shape[da] == 1 ? 0 : idx) * sa; sa *= A.shape[da]; }
      if (db >= 0) { ob += (B.shape[db] == 1 ? 0 : idx) * sb; sb *= B.shape[db]; }
    }
    out.v[i] = f(A.v[oa], B.v[ob]);
  }
  return out.tensor();
}

Tensor ref_unary(const Tensor& x, double (*f)(double)) {
  HostTensor X(x);
  for (double& v : X.v) v = f(v);
  return X.tensor();
}

#define BINARY_CASES(OPNAME, FN, LO, HI, REF)                                                                   \
  LMFORGE_OP_CASE({.op = OPNAME, .name = "same shape",                                                         \
                   .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 4}, LO, HI), rand_f64(g, {3, 4}, LO, HI)}; }, \
                   .run = [](const TensorList& in) { return FN(in[0], in[1]); },                               \
                   .reference = [](const TensorList& in) { return ref_binary(in[0], in[1], REF); }});         \
  LMFORGE_OP_CASE({.op = OPNAME, .name = "broadcast, strided",                                                 \
                   .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {2, 3, 4}, LO, HI), rand_f64(g, {3, 1}, LO, HI)}; }, \
                   .run = [](const TensorList& in) { return FN(in[0], in[1]); },                               \
                   .reference = [](const TensorList& in) { return ref_binary(in[0], in[1], REF); }});         \
  LMFORGE_OP_CASE({.op = OPNAME, .name = "size-0 and size-1 dims",                                             \
                   .inputs = [](Generator& g) { return TensorList{rand_f64(g, {0, 1, 3}, LO, HI), rand_f64(g, {1, 5, 1}, LO, HI)}; }, \
                   .run = [](const TensorList& in) { return FN(in[0], in[1]); },                               \
                   .reference = [](const TensorList& in) { return ref_binary(in[0], in[1], REF); }});

Tensor add_f(const Tensor& a, const Tensor& b) { return add(a, b); }
Tensor sub_f(const Tensor& a, const Tensor& b) { return sub(a, b); }
Tensor mul_f(const Tensor& a, const Tensor& b) { return mul(a, b); }
Tensor div_f(const Tensor& a, const Tensor& b) { return div(a, b); }
Tensor pow_f(const Tensor& a, const Tensor& b) { return pow(a, b); }
Tensor max_f(const Tensor& a, const Tensor& b) { return maximum(a, b); }
Tensor min_f(const Tensor& a, const Tensor& b) { return minimum(a, b); }

BINARY_CASES("add", add_f, -1, 1, [](double a, double b) { return a + b; })
BINARY_CASES("sub", sub_f, -1, 1, [](double a, double b) { return a - b; })
BINARY_CASES("mul", mul_f, -1, 1, [](double a, double b) { return a * b; })
BINARY_CASES("div", div_f, 0.5, 2, [](double a, double b) { return a / b; })
BINARY_CASES("pow", pow_f, 0.5, 2, [](double a, double b) { return std::pow(a, b); })
BINARY_CASES("maximum", max_f, -1, 1, [](double a, double b) { return a > b ? a : b; })
BINARY_CASES("minimum", min_f, -1, 1, [](double a, double b) { return a < b ? a : b; })

#define UNARY_CASE(OPNAME, EXPR, LO, HI, REF)                                                                   \
  LMFORGE_OP_CASE({.op = OPNAME, .name = "strided",                                                            \
                   .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 5}, LO, HI)}; },     \
                   .run = [](const TensorList& in) { const Tensor& x = in[0]; return EXPR; },                  \
                   .reference = [](const TensorList& in) { return ref_unary(in[0], REF); }});                 \
  LMFORGE_OP_CASE({.op = OPNAME, .name = "size-1 and 0-d",                                                     \
                   .inputs = [](Generator& g) { return TensorList{rand_f64(g, {1, 1, 4}, LO, HI)}; },          \
                   .run = [](const TensorList& in) { const Tensor& x = in[0]; return EXPR; },                  \
                   .reference = [](const TensorList& in) { return ref_unary(in[0], REF); }});

UNARY_CASE("neg", neg(x), -1, 1, [](double v) { return -v; })
UNARY_CASE("exp", exp(x), -2, 2, [](double v) { return std::exp(v); })
UNARY_CASE("log", log(x), 0.2, 3, [](double v) { return std::log(v); })
UNARY_CASE("sqrt", sqrt(x), 0.2, 3, [](double v) { return std::sqrt(v); })
UNARY_CASE("rsqrt", rsqrt(x), 0.2, 3, [](double v) { return 1 / std::sqrt(v); })
UNARY_CASE("abs", abs(x), 0.1, 1, [](double v) { return std::abs(v); })
UNARY_CASE("square", square(x), -2, 2, [](double v) { return v * v; })
UNARY_CASE("tanh", tanh(x), -2, 2, [](double v) { return std::tanh(v); })
UNARY_CASE("sigmoid", sigmoid(x), -3, 3, [](double v) { return 1 / (1 + std::exp(-v)); })
UNARY_CASE("silu", silu(x), -3, 3, [](double v) { return v / (1 + std::exp(-v)); })
UNARY_CASE("relu", relu(x), 0.1, 1, [](double v) { return v > 0 ? v : 0.0; })
UNARY_CASE("gelu", gelu(x), -3, 3, [](double v) { return 0.5 * v * (1 + std::erf(v / std::sqrt(2.0))); })
UNARY_CASE("gelu_tanh", gelu(x, GeluApprox::Tanh), -3, 3, [](double v) {
  return 0.5 * v * (1 + std::tanh(std::sqrt(2 / M_PI) * (v + 0.044715 * v * v * v)));
})
UNARY_CASE("pow_scalar", pow(x, 2.5), 0.2, 2, [](double v) { return std::pow(v, 2.5); })
UNARY_CASE("clamp", clamp(x, -0.5, 0.5), -1, 1, [](double v) { return std::min(std::max(v, -0.5), 0.5); })
LMFORGE_OP_CASE({.op = "cast", .name = "f64 -> f32 -> f64 (gradient through float rounding: wide FD step)",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 5})}; },
                 .run = [](const TensorList& in) { return cast(cast(in[0], DType::F32), DType::F64); },
                 .reference = [](const TensorList& in) { return ref_unary(in[0], [](double v) { return double(float(v)); }); },
                 .gradient_tol = 1e-4, .fd_eps = 1e-2});
LMFORGE_OP_CASE({.op = "cast", .name = "f64 -> bf16 -> f64",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {4, 3})}; },
                 .run = [](const TensorList& in) { return cast(cast(in[0], DType::BF16), DType::F64); },
                 .reference = [](const TensorList& in) {
                   return ref_unary(in[0], [](double v) { return double(bf16_bits_to_float(float_to_bf16_bits(float(v)))); });
                 },
                 .check_gradient = false});
// abs/relu/clamp are not differentiable at 0 and at the bounds: the inputs avoid those points
// (abs and relu sample (0.1, 1); clamp's bounds are hit with probability 0).

LMFORGE_OP_CASE({.op = "relu", .name = "negative and positive",
                 .inputs = [](Generator& g) { return TensorList{add(rand_f64(g, {4, 4}, 0.1, 1), -0.55)}; },
                 .run = [](const TensorList& in) { return relu(in[0]); },
                 .reference = [](const TensorList& in) { return ref_unary(in[0], [](double v) { return v > 0 ? v : 0.0; }); }});

LMFORGE_OP_CASE({.op = "where", .name = "broadcast condition",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 1}), rand_f64(g, {3, 4}), rand_f64(g, {4})}; },
                 .run = [](const TensorList& in) { return where(gt(in[0], zeros({}, in[0].dtype(), in[0].device())), in[1], in[2]); },
                 .reference = [](const TensorList& in) {
                   HostTensor c(in[0]), a(in[1]), b(in[2]), out({3, 4});
                   for (int64_t i = 0; i < 3; ++i)
                     for (int64_t j = 0; j < 4; ++j) out({i, j}) = c({i, 0}) > 0 ? a({i, j}) : b.v[j];
                   return out.tensor();
                 },
                 .grad_inputs = {1, 2}});

LMFORGE_OP_CASE({.op = "masked_fill", .name = "mask from comparison",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {4, 3}), rand_f64(g, {4, 3})}; },
                 .run = [](const TensorList& in) { return masked_fill(in[0], gt(in[1], zeros({}, in[1].dtype(), in[1].device())), -7.5); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), m(in[1]);
                   for (size_t i = 0; i < x.v.size(); ++i) if (m.v[i] > 0) x.v[i] = -7.5;
                   return x.tensor();
                 },
                 .grad_inputs = {0}});

}  // namespace
}  // namespace lmforge::test
