// Registry cases for the fused nn ops (ops/nn_ops.h): cross_entropy, rms_norm, layer_norm,
// add_rms_norm, add_layer_norm, rope, swiglu, dropout, attention. Each reference is written from
// the definition with plain loops on host doubles; nothing here calls the kernel under test.
#include <algorithm>
#include <cmath>
#include <limits>

#include "ops/op_registry.h"

namespace lmforge::test {
namespace {

constexpr double kInf = std::numeric_limits<double>::infinity();

Tensor i64_tensor(const std::vector<int64_t>& v, const Shape& shape) { return from_vector<int64_t>(v, shape); }

// ---- cross_entropy ----

Tensor cross_entropy_ref(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& o) {
  const HostTensor x(logits);
  const std::vector<int64_t> t = to_vector<int64_t>(targets);
  const int64_t v = x.shape.back(), n = static_cast<int64_t>(t.size());
  std::vector<double> loss(n, 0.0);
  int64_t counted = 0;
  for (int64_t r = 0; r < n; ++r) {
    if (t[r] == o.ignore_index) continue;
    ++counted;
    double m = -kInf;
    for (int64_t i = 0; i < v; ++i) m = std::max(m, x.v[r * v + i]);
    double s = 0;
    for (int64_t i = 0; i < v; ++i) s += std::exp(x.v[r * v + i] - m);
    const double lse = m + std::log(s);
    double sum_logp = 0;
    for (int64_t i = 0; i < v; ++i) sum_logp += x.v[r * v + i] - lse;
    const double eps = o.label_smoothing;
    loss[r] = -(1 - eps) * (x.v[r * v + t[r]] - lse) - eps / double(v) * sum_logp + o.z_loss * lse * lse;
  }
  using R = CrossEntropyOptions::Reduction;
  if (o.reduction == R::None) {
    HostTensor out(targets.shape());
    out.v = loss;
    return out.tensor();
  }
  double total = 0;
  for (double l : loss) total += l;
  if (o.reduction == R::Mean) total = counted ? total / double(counted) : 0.0;
  return HostTensor(Shape{}, total).tensor();
}

OpCase ce_case(std::string name, Shape logits_shape, std::vector<int64_t> targets, CrossEntropyOptions o,
               bool strided = false, bool i32 = false) {
  OpCase c;
  c.op = "cross_entropy";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList {
    Tensor lg = strided ? rand_f64_strided(g, logits_shape, -3, 3) : rand_f64(g, logits_shape, -3, 3);
    Tensor tg = i64_tensor(targets, Shape(logits_shape.begin(), logits_shape.end() - 1));
    if (i32) tg = cast(tg, DType::I32);
    return {lg, tg};
  };
  c.run = [o](const TensorList& in) { return cross_entropy(in[0], in[1], o); };
  c.reference = [o](const TensorList& in) { return cross_entropy_ref(in[0], in[1], o); };
  return c;
}

using Red = CrossEntropyOptions::Reduction;
LMFORGE_OP_CASE(ce_case("mean", {5, 7}, {0, 6, 3, 3, 1}, {}));
LMFORGE_OP_CASE(ce_case("label smoothing 0.1, sum", {4, 6}, {2, 0, 5, 1},
                        {.label_smoothing = 0.1, .reduction = Red::Sum}));
LMFORGE_OP_CASE(ce_case("z-loss 1e-2 with label smoothing, mean", {3, 9}, {8, 4, 0},
                        {.label_smoothing = 0.2, .z_loss = 1e-2}));
LMFORGE_OP_CASE(ce_case("ignore_index -100 rows excluded from the mean", {6, 5}, {1, -100, 4, -100, 0, 2}, {}));
LMFORGE_OP_CASE(ce_case("custom ignore_index 3, smoothing and z-loss, no reduction", {5, 4}, {3, 0, 3, 2, 1},
                        {.ignore_index = 3, .label_smoothing = 0.05, .z_loss = 0.1, .reduction = Red::None}));
LMFORGE_OP_CASE(ce_case("non-contiguous logits [B, T, V], i32 targets", {2, 3, 6}, {5, 0, 1, 2, 3, 4}, {},
                        /*strided=*/true, /*i32=*/true));
LMFORGE_OP_CASE(ce_case("one row, one class", {1, 1}, {0}, {.z_loss = 0.5}));

// ---- rms_norm / layer_norm ----

Tensor rms_norm_ref(const Tensor& x0, const Tensor& w0, double eps) {
  const HostTensor x(x0);
  const int64_t c = x.shape.back(), n = c ? int64_t(x.v.size()) / c : 0;
  std::vector<double> w(c, 1.0);
  if (w0.defined()) w = HostTensor(w0).v;
  HostTensor y(x.shape);
  for (int64_t r = 0; r < n; ++r) {
    double ss = 0;
    for (int64_t i = 0; i < c; ++i) ss += x.v[r * c + i] * x.v[r * c + i];
    const double s = 1.0 / std::sqrt(ss / double(c) + eps);
    for (int64_t i = 0; i < c; ++i) y.v[r * c + i] = x.v[r * c + i] * s * w[i];
  }
  return y.tensor();
}

Tensor layer_norm_ref(const Tensor& x0, const Tensor& w0, const Tensor& b0, double eps) {
  const HostTensor x(x0);
  const int64_t c = x.shape.back(), n = c ? int64_t(x.v.size()) / c : 0;
  std::vector<double> w(c, 1.0), b(c, 0.0);
  if (w0.defined()) w = HostTensor(w0).v;
  if (b0.defined()) b = HostTensor(b0).v;
  HostTensor y(x.shape);
  for (int64_t r = 0; r < n; ++r) {
    double mu = 0, var = 0;
    for (int64_t i = 0; i < c; ++i) mu += x.v[r * c + i];
    mu /= double(c);
    for (int64_t i = 0; i < c; ++i) var += (x.v[r * c + i] - mu) * (x.v[r * c + i] - mu);
    const double s = 1.0 / std::sqrt(var / double(c) + eps);
    for (int64_t i = 0; i < c; ++i) y.v[r * c + i] = (x.v[r * c + i] - mu) * s * w[i] + b[i];
  }
  return y.tensor();
}

// inputs: x, then weight and bias when present.
OpCase norm_case(bool layer, std::string name, Shape shape, bool weight, bool bias, bool strided, double eps) {
  OpCase c;
  c.op = layer ? "layer_norm" : "rms_norm";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList {
    TensorList in{strided ? rand_f64_strided(g, shape) : rand_f64(g, shape)};
    if (weight) in.push_back(rand_f64(g, {shape.back()}, 0.5, 1.5));
    if (bias) in.push_back(rand_f64(g, {shape.back()}));
    return in;
  };
  auto args = [=](const TensorList& in) {
    Tensor w = weight ? in[1] : Tensor(), b = bias ? in[weight ? 2 : 1] : Tensor();
    return std::make_pair(w, b);
  };
  c.run = [=](const TensorList& in) {
    auto [w, b] = args(in);
    return layer ? layer_norm(in[0], w, b, eps) : rms_norm(in[0], w, eps);
  };
  c.reference = [=](const TensorList& in) {
    auto [w, b] = args(in);
    return layer ? layer_norm_ref(in[0], w, b, eps) : rms_norm_ref(in[0], w, eps);
  };
  return c;
}

LMFORGE_OP_CASE(norm_case(false, "weight", {3, 5}, true, false, false, 1e-6));
LMFORGE_OP_CASE(norm_case(false, "no weight, non-contiguous [2, 3, 4]", {2, 3, 4}, false, false, true, 1e-6));
LMFORGE_OP_CASE(norm_case(false, "size-1 dims [1, 1, 6], large eps", {1, 1, 6}, true, false, false, 0.1));
// C = 1: y = w·x/sqrt(x² + eps), whose input gradient w·eps/(x² + eps)^1.5 is the small difference
// of two large terms; eps 0.1 keeps that cancellation mild enough for the f32 GPU-vs-CPU bound.
LMFORGE_OP_CASE(norm_case(false, "C = 1", {4, 1}, true, false, false, 0.1));
LMFORGE_OP_CASE(norm_case(false, "many rows (several reduction blocks)", {70, 3}, true, false, false, 1e-5));
LMFORGE_OP_CASE(norm_case(true, "weight and bias", {4, 6}, true, true, false, 1e-5));
LMFORGE_OP_CASE(norm_case(true, "weight only, non-contiguous [2, 3, 5]", {2, 3, 5}, true, false, true, 1e-5));
LMFORGE_OP_CASE(norm_case(true, "bias only", {3, 4}, false, true, false, 1e-5));
LMFORGE_OP_CASE(norm_case(true, "no parameters, size-1 dims [3, 1, 4]", {3, 1, 4}, false, false, false, 1e-5));
LMFORGE_OP_CASE(norm_case(true, "many rows (several reduction blocks)", {70, 3}, true, true, false, 1e-5));

// ---- add_rms_norm / add_layer_norm ----

// Which outputs of the fused op the case uses: both (stacked, so the random weights of the
// gradient check weigh each separately), only y (no gradient reaches the sum), or only the sum
// (no gradient reaches y: the parameters get none, so only x and residual are checked).
enum class AddNormUse { Both, NormOnly, SumOnly };

// inputs: x, residual, then weight and bias when present.
OpCase add_norm_case(bool layer, std::string name, Shape shape, bool weight, bool bias, bool strided, AddNormUse use) {
  const double eps = 1e-5;
  OpCase c;
  c.op = layer ? "add_layer_norm" : "add_rms_norm";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList {
    TensorList in{rand_f64(g, shape), strided ? rand_f64_strided(g, shape) : rand_f64(g, shape)};
    if (weight) in.push_back(rand_f64(g, {shape.back()}, 0.5, 1.5));
    if (bias) in.push_back(rand_f64(g, {shape.back()}));
    return in;
  };
  auto params = [=](const TensorList& in) {
    Tensor w = weight ? in[2] : Tensor(), b = bias ? in[weight ? 3 : 2] : Tensor();
    return std::make_pair(w, b);
  };
  auto pick = [=](const Tensor& sum, const Tensor& y) {
    if (use == AddNormUse::NormOnly) return y;
    if (use == AddNormUse::SumOnly) return sum;
    return stack({sum, y}, 0);
  };
  c.run = [=](const TensorList& in) {
    auto [w, b] = params(in);
    const AddNorm r = layer ? add_layer_norm(in[0], in[1], w, b, eps) : add_rms_norm(in[0], in[1], w, eps);
    return pick(r.sum, r.y);
  };
  c.reference = [=](const TensorList& in) {
    auto [w, b] = params(in);
    HostTensor sum(in[0]);
    const HostTensor r(in[1]);
    for (size_t i = 0; i < sum.v.size(); ++i) sum.v[i] += r.v[i];
    const Tensor s = sum.tensor();
    return pick(s, layer ? layer_norm_ref(s, w, b, eps) : rms_norm_ref(s, w, eps));
  };
  if (use == AddNormUse::SumOnly) c.grad_inputs = {0, 1};
  return c;
}

using enum AddNormUse;
LMFORGE_OP_CASE(add_norm_case(false, "both outputs, weight", {3, 5}, true, false, false, Both));
LMFORGE_OP_CASE(add_norm_case(false, "both outputs, no weight, strided residual [2, 3, 4]", {2, 3, 4}, false, false,
                              true, Both));
LMFORGE_OP_CASE(add_norm_case(false, "y only, many rows", {70, 3}, true, false, false, NormOnly));
LMFORGE_OP_CASE(add_norm_case(false, "sum only", {4, 6}, true, false, false, SumOnly));
LMFORGE_OP_CASE(add_norm_case(true, "both outputs, weight and bias", {4, 6}, true, true, false, Both));
LMFORGE_OP_CASE(add_norm_case(true, "both outputs, bias only, strided residual [2, 3, 5]", {2, 3, 5}, false, true,
                              true, Both));
LMFORGE_OP_CASE(add_norm_case(true, "y only, many rows", {70, 3}, true, true, false, NormOnly));
LMFORGE_OP_CASE(add_norm_case(true, "sum only, size-1 dims [3, 1, 4]", {3, 1, 4}, true, true, false, SumOnly));

// ---- rope ----

Tensor rope_ref(const Tensor& x0, const RopeOptions& o) {
  const HostTensor x(x0);
  const int64_t nb = x.shape[0], nt = x.shape[1], nh = x.shape[2], d = x.shape[3], half = d / 2;
  HostTensor y(x.shape);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t t = 0; t < nt; ++t)
      for (int64_t h = 0; h < nh; ++h)
        for (int64_t i = 0; i < half; ++i) {
          const double ang = double(o.position_offset + t) * std::pow(o.theta, -2.0 * double(i) / double(d));
          const int64_t i0 = o.interleaved ? 2 * i : i, i1 = o.interleaved ? 2 * i + 1 : i + half;
          const double a = x({b, t, h, i0}), c = x({b, t, h, i1});
          y({b, t, h, i0}) = a * std::cos(ang) - c * std::sin(ang);
          y({b, t, h, i1}) = c * std::cos(ang) + a * std::sin(ang);
        }
  return y.tensor();
}

enum class Layout { Contiguous, Transposed, HeadSlice };

// A [B, T, H, D] tensor laid out as asked: contiguous; transposed (last dim not contiguous, so the
// op copies); or a slice of a wider head dim (last dim contiguous, other strides not).
Tensor make_bthd(Generator& g, Shape shape, Layout layout) {
  switch (layout) {
    case Layout::Contiguous: return rand_f64(g, shape);
    case Layout::Transposed: return rand_f64_strided(g, shape);
    case Layout::HeadSlice: {
      Shape wide = shape;
      wide[2] += 2;
      return narrow(rand_f64(g, wide), 2, 1, shape[2]);
    }
  }
  return Tensor();
}

OpCase rope_case(std::string name, Shape shape, RopeOptions o, Layout layout = Layout::Contiguous) {
  OpCase c;
  c.op = "rope";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList { return {make_bthd(g, shape, layout)}; };
  c.run = [o](const TensorList& in) { return rope(in[0], o); };
  c.reference = [o](const TensorList& in) { return rope_ref(in[0], o); };
  return c;
}

LMFORGE_OP_CASE(rope_case("half-split", {2, 3, 2, 8}, {}));
LMFORGE_OP_CASE(rope_case("interleaved, position offset 5, theta 500", {1, 4, 3, 6},
                          {.theta = 500, .position_offset = 5, .interleaved = true}));
LMFORGE_OP_CASE(rope_case("half-split, offset 1000 (KV-cache decode)", {2, 1, 2, 4}, {.position_offset = 1000}));
LMFORGE_OP_CASE(rope_case("half-split, transposed input", {2, 5, 3, 4}, {}, Layout::Transposed));
LMFORGE_OP_CASE(rope_case("interleaved, head slice (strided, last dim contiguous)", {2, 3, 2, 6},
                          {.position_offset = 2, .interleaved = true}, Layout::HeadSlice));
LMFORGE_OP_CASE(rope_case("size-1 dims, D = 2", {1, 1, 1, 2}, {.position_offset = 3}));

// ---- swiglu ----

OpCase swiglu_case(std::string name, Shape shape, bool strided) {
  OpCase c;
  c.op = "swiglu";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList {
    return {strided ? rand_f64_strided(g, shape, -4, 4) : rand_f64(g, shape, -4, 4), rand_f64(g, shape)};
  };
  c.run = [](const TensorList& in) { return swiglu(in[0], in[1]); };
  c.reference = [](const TensorList& in) {
    HostTensor g(in[0]), u(in[1]), y(in[0].shape());
    for (size_t i = 0; i < y.v.size(); ++i) y.v[i] = g.v[i] / (1 + std::exp(-g.v[i])) * u.v[i];
    return y.tensor();
  };
  return c;
}

LMFORGE_OP_CASE(swiglu_case("[3, 4]", {3, 4}, false));
LMFORGE_OP_CASE(swiglu_case("non-contiguous gate [2, 3, 5]", {2, 3, 5}, true));
LMFORGE_OP_CASE(swiglu_case("[1, 1]", {1, 1}, false));

// ---- dropout ----
// The mask comes from bernoulli (ops/factory.h, tested on its own) with the same seed; the
// reference applies it with plain loops.

OpCase dropout_case(std::string name, Shape shape, double p, bool training) {
  OpCase c;
  c.op = "dropout";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList { return {rand_f64(g, shape)}; };
  c.run = [=](const TensorList& in) {
    Generator g(42);
    return dropout(in[0], p, training, g);
  };
  c.reference = [=](const TensorList& in) {
    HostTensor x(in[0]);
    if (training && p > 0) {
      Generator g(42);
      const std::vector<double> keep = to_vector<double>(bernoulli(shape, 1 - p, g));
      for (size_t i = 0; i < x.v.size(); ++i) x.v[i] = keep[i] != 0 ? x.v[i] / (1 - p) : 0.0;
    }
    return x.tensor();
  };
  return c;
}

LMFORGE_OP_CASE(dropout_case("p = 0.3, bernoulli mask from the same seed", {4, 25}, 0.3, true));
LMFORGE_OP_CASE(dropout_case("p = 0 is the identity", {3, 4}, 0.0, true));
LMFORGE_OP_CASE(dropout_case("evaluation (training = false) is the identity", {3, 4}, 0.5, false));
LMFORGE_OP_CASE(dropout_case("p = 1 drops everything", {2, 3}, 1.0, true));

// ---- attention ----

// Value of a mask of any broadcastable shape at [b, h, t, s] (right-aligned, size-1 dims repeat).
double mask_at(const HostTensor& m, int64_t b, int64_t h, int64_t t, int64_t s) {
  const int64_t idx[4] = {b, h, t, s};
  const int64_t nd = static_cast<int64_t>(m.shape.size());
  int64_t off = 0;
  for (int64_t i = 0; i < nd; ++i) {
    const int64_t full = 4 - nd + i;
    off = off * m.shape[i] + (m.shape[i] == 1 ? 0 : idx[full]);
  }
  return m.v[off];
}

Tensor attention_ref(const Tensor& q0, const Tensor& k0, const Tensor& v0, const Tensor& mask0,
                     const AttentionOptions& o) {
  const HostTensor q(q0), k(k0), v(v0);
  const int64_t nb = q.shape[0], nt = q.shape[1], nh = q.shape[2], d = q.shape[3];
  const int64_t ns = k.shape[1], nhkv = k.shape[2], dv = v.shape[3];
  const double scale = o.scale != 0 ? o.scale : 1.0 / std::sqrt(double(d));
  const bool has_mask = mask0.defined();
  const HostTensor m = has_mask ? HostTensor(mask0) : HostTensor(Shape{1});
  HostTensor out({nb, nt, nh, dv});
  std::vector<double> sc(ns);
  for (int64_t b = 0; b < nb; ++b)
    for (int64_t h = 0; h < nh; ++h) {
      const int64_t hk = h / (nh / nhkv);
      for (int64_t t = 0; t < nt; ++t) {
        double mx = -kInf;
        for (int64_t s = 0; s < ns; ++s) {
          double dot = 0;
          for (int64_t p = 0; p < d; ++p) dot += q({b, t, h, p}) * k({b, s, hk, p});
          sc[s] = scale * dot + (has_mask ? mask_at(m, b, h, t, s) : 0.0);
          if (o.causal && s > t + (ns - nt)) sc[s] = -kInf;
          mx = std::max(mx, sc[s]);
        }
        if (mx == -kInf) continue;  // sees no key: output 0
        double z = 0;
        for (int64_t s = 0; s < ns; ++s) z += std::exp(sc[s] - mx);
        for (int64_t s = 0; s < ns; ++s) {
          const double p = std::exp(sc[s] - mx) / z;
          for (int64_t e = 0; e < dv; ++e) out({b, t, h, e}) += p * v({b, s, hk, e});
        }
      }
    }
  return out.tensor();
}

struct AttnShape {
  int64_t b, t, s, h, hkv, d, dv;
};

// inputs: q, k, v (and the mask when mask_shape is non-empty).
OpCase attention_case(std::string name, AttnShape sh, AttentionOptions o, Layout layout = Layout::Contiguous,
                      Shape mask_shape = {}, double mask_hole_fraction = 0.0) {
  OpCase c;
  c.op = "attention";
  c.name = std::move(name);
  c.inputs = [=](Generator& g) -> TensorList {
    TensorList in{make_bthd(g, {sh.b, sh.t, sh.h, sh.d}, layout), make_bthd(g, {sh.b, sh.s, sh.hkv, sh.d}, layout),
                  make_bthd(g, {sh.b, sh.s, sh.hkv, sh.dv}, layout)};
    if (!mask_shape.empty()) {
      // Random additive values, with -inf holes where a uniform draw falls below the fraction.
      HostTensor m(rand_f64(g, mask_shape, -1, 1)), u(rand_f64(g, mask_shape, 0, 1));
      for (size_t i = 0; i < m.v.size(); ++i)
        if (u.v[i] < mask_hole_fraction) m.v[i] = -kInf;
      in.push_back(m.tensor());
    }
    return in;
  };
  const bool masked = !mask_shape.empty();
  c.run = [=](const TensorList& in) { return attention(in[0], in[1], in[2], o, masked ? in[3] : Tensor()); };
  c.reference = [=](const TensorList& in) {
    return attention_ref(in[0], in[1], in[2], masked ? in[3] : Tensor(), o);
  };
  c.grad_inputs = {0, 1, 2};  // the mask is a constant
  return c;
}

LMFORGE_OP_CASE(attention_case("MHA, not causal", {2, 3, 3, 2, 2, 4, 4}, {.causal = false}));
LMFORGE_OP_CASE(attention_case("GQA 4:2, causal, D = 3, Dv = 2", {1, 5, 5, 4, 2, 3, 2}, {}));
LMFORGE_OP_CASE(attention_case("MQA 3:1, causal with S > T (KV cache)", {2, 2, 5, 3, 1, 4, 3}, {}));
LMFORGE_OP_CASE(attention_case("causal with S < T: early queries see no key", {1, 4, 2, 2, 1, 2, 2}, {}));
LMFORGE_OP_CASE(attention_case("extra mask [T, S] with -inf holes, not causal, scale 0.7", {2, 4, 6, 2, 1, 3, 3},
                               {.scale = 0.7, .causal = false}, Layout::Contiguous, {4, 6}, 0.3));
LMFORGE_OP_CASE(attention_case("mask [B, 1, T, S] plus causal, GQA", {2, 3, 4, 4, 2, 2, 3}, {},
                               Layout::Contiguous, {2, 1, 3, 4}, 0.2));
LMFORGE_OP_CASE(attention_case("transposed q/k/v (head dim not contiguous)", {1, 3, 4, 2, 2, 4, 3}, {},
                               Layout::Transposed));
LMFORGE_OP_CASE(attention_case("head-sliced q/k/v (strided, last dim contiguous), GQA", {2, 3, 3, 4, 2, 2, 2}, {},
                               Layout::HeadSlice));
LMFORGE_OP_CASE(attention_case("size-1 dims: one query, one key", {1, 1, 1, 1, 1, 1, 1}, {}));
// Up to 8 queries take the decoding kernel (keys in chunks of 512, merged afterwards).
LMFORGE_OP_CASE(attention_case("decoding: T = 2 against S = 600 (two key chunks), MQA 2:1", {1, 2, 600, 2, 1, 2, 2}, {}));
LMFORGE_OP_CASE([] {
  OpCase c = attention_case("decoding: T = 3 against S = 1100 (three key chunks), GQA 6:2, batch 2",
                            {2, 3, 1100, 6, 2, 8, 5}, {});
  c.check_gradient = false;  // 40k inputs; the S = 600 case checks the gradient of this path
  return c;
}());
LMFORGE_OP_CASE(attention_case("decoding, not causal: T = 8, S = 530, MHA", {1, 8, 530, 2, 2, 3, 2}, {.causal = false}));
LMFORGE_OP_CASE(attention_case("several tiles: T = 70, S = 133, causal, GQA", {1, 70, 133, 2, 1, 3, 2}, {}));
LMFORGE_OP_CASE(attention_case("several tiles, not causal, with mask", {1, 66, 70, 1, 1, 2, 2}, {.causal = false},
                               Layout::Contiguous, {66, 70}, 0.1));

}  // namespace
}  // namespace lmforge::test
