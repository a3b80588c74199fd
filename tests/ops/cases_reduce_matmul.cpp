// Registry cases for reductions, softmax family, cumsum, sort/topk and matmul.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "ops/op_registry.h"

namespace lmforge::test {
namespace {

// Reference reduction over the last dim of a [rows, n] view of a contiguous host tensor.
// f maps a row to `width` values (width 0: one value, the dim dropped; -1: the row's length).
template <class F>
Tensor rows_ref(const Tensor& x, F f, int64_t width = 0) {
  HostTensor X(x);
  const int64_t n = X.shape.back(), rows = n ? static_cast<int64_t>(X.v.size()) / n : 0;
  Shape out_shape(X.shape.begin(), X.shape.end() - 1);
  if (width != 0) out_shape.push_back(width < 0 ? n : width);
  HostTensor out(out_shape);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<double> row(X.v.begin() + r * n, X.v.begin() + (r + 1) * n);
    std::vector<double> res = f(row);
    std::copy(res.begin(), res.end(), out.v.begin() + r * static_cast<int64_t>(res.size()));
  }
  return out.tensor();
}

std::vector<double> one(double v) { return {v}; }

LMFORGE_OP_CASE({.op = "sum", .name = "all dims",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 4})}; },
                 .run = [](const TensorList& in) { return sum(in[0]); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]);
                   return scalar_tensor(std::accumulate(x.v.begin(), x.v.end(), 0.0), DType::F64);
                 }});
LMFORGE_OP_CASE({.op = "sum", .name = "middle dim keepdim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3, 4})}; },
                 .run = [](const TensorList& in) { return sum(in[0], {1}, -1); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({2, 1, 4});
                   for (int64_t a = 0; a < 2; ++a)
                     for (int64_t b = 0; b < 3; ++b)
                       for (int64_t c = 0; c < 4; ++c) out({a, 0, c}) += x({a, b, c});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "sum", .name = "non-adjacent dims 0 and 2",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3, 4})}; },
                 .run = [](const TensorList& in) { return sum(in[0], {0, 2}); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({3});
                   for (int64_t a = 0; a < 2; ++a)
                     for (int64_t b = 0; b < 3; ++b)
                       for (int64_t c = 0; c < 4; ++c) out.v[b] += x({a, b, c});
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "sum", .name = "size-0 dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 0})}; },
                 .run = [](const TensorList& in) { return sum(in[0], {1}); },
                 .reference = [](const TensorList&) { return zeros({3}, DType::F64); }});
LMFORGE_OP_CASE({.op = "mean", .name = "last dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 5})}; },
                 .run = [](const TensorList& in) { return mean(in[0], {-1}); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) {
                     return one(std::accumulate(r.begin(), r.end(), 0.0) / r.size());
                   });
                 }});
LMFORGE_OP_CASE({.op = "amax", .name = "last dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {4, 5})}; },
                 .run = [](const TensorList& in) { return amax(in[0], {-1}); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) { return one(*std::max_element(r.begin(), r.end())); });
                 }});
LMFORGE_OP_CASE({.op = "amin", .name = "first dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {5, 3})}; },
                 .run = [](const TensorList& in) { return amin(in[0], {0}); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(transpose(in[0], 0, 1).contiguous(), [](const std::vector<double>& r) {
                     return one(*std::min_element(r.begin(), r.end()));
                   });
                 }});
LMFORGE_OP_CASE({.op = "max", .name = "values along dim 1",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 6})}; },
                 .run = [](const TensorList& in) { return max(in[0], 1).first; },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) { return one(*std::max_element(r.begin(), r.end())); });
                 }});
LMFORGE_OP_CASE({.op = "var", .name = "unbiased, last dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 6})}; },
                 .run = [](const TensorList& in) { return var(in[0], {-1}); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) {
                     double m = std::accumulate(r.begin(), r.end(), 0.0) / r.size(), s = 0;
                     for (double v : r) s += (v - m) * (v - m);
                     return one(s / (r.size() - 1));
                   });
                 }});
LMFORGE_OP_CASE({.op = "softmax", .name = "last dim, strided",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {4, 7}, -3, 3)}; },
                 .run = [](const TensorList& in) { return softmax(in[0], -1); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) {
                     double mx = *std::max_element(r.begin(), r.end()), s = 0;
                     std::vector<double> o(r.size());
                     for (size_t i = 0; i < r.size(); ++i) s += o[i] = std::exp(r[i] - mx);
                     for (double& v : o) v /= s;
                     return o;
                   }, -1);
                 }});
LMFORGE_OP_CASE({.op = "softmax", .name = "dim 0",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {5, 3}, -3, 3)}; },
                 .run = [](const TensorList& in) { return softmax(in[0], 0); },
                 .reference = [](const TensorList& in) {
                   Tensor t = rows_ref(transpose(in[0], 0, 1).contiguous(), [](const std::vector<double>& r) {
                     double mx = *std::max_element(r.begin(), r.end()), s = 0;
                     std::vector<double> o(r.size());
                     for (size_t i = 0; i < r.size(); ++i) s += o[i] = std::exp(r[i] - mx);
                     for (double& v : o) v /= s;
                     return o;
                   }, -1);
                   return transpose(t, 0, 1).contiguous();
                 }});
LMFORGE_OP_CASE({.op = "log_softmax", .name = "last dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 2, 6}, -3, 3)}; },
                 .run = [](const TensorList& in) { return log_softmax(in[0], -1); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) {
                     double mx = *std::max_element(r.begin(), r.end()), s = 0;
                     for (double v : r) s += std::exp(v - mx);
                     std::vector<double> o(r.size());
                     for (size_t i = 0; i < r.size(); ++i) o[i] = r[i] - mx - std::log(s);
                     return o;
                   }, -1);
                 }});
LMFORGE_OP_CASE({.op = "logsumexp", .name = "last dim",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {4, 5}, -3, 3)}; },
                 .run = [](const TensorList& in) { return logsumexp(in[0], -1); },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](const std::vector<double>& r) {
                     double s = 0;
                     for (double v : r) s += std::exp(v);
                     return one(std::log(s));
                   });
                 }});
LMFORGE_OP_CASE({.op = "cumsum", .name = "dim 1 of 3-d",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 5, 3})}; },
                 .run = [](const TensorList& in) { return cumsum(in[0], 1); },
                 .reference = [](const TensorList& in) {
                   HostTensor x(in[0]), out({2, 5, 3});
                   for (int64_t a = 0; a < 2; ++a)
                     for (int64_t c = 0; c < 3; ++c) {
                       double s = 0;
                       for (int64_t b = 0; b < 5; ++b) out({a, b, c}) = s += x({a, b, c});
                     }
                   return out.tensor();
                 }});
LMFORGE_OP_CASE({.op = "topk", .name = "k=3 largest, values",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {4, 7})}; },
                 .run = [](const TensorList& in) { return topk(in[0], 3, -1).first; },
                 .reference = [](const TensorList& in) {
                   return rows_ref(in[0], [](std::vector<double> r) {
                     std::sort(r.begin(), r.end(), std::greater<>());
                     return std::vector<double>(r.begin(), r.begin() + 3);
                   }, 3);
                 }});
LMFORGE_OP_CASE({.op = "sort", .name = "ascending along dim 0",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {6, 3})}; },
                 .run = [](const TensorList& in) { return sort(in[0], 0).first; },
                 .reference = [](const TensorList& in) {
                   Tensor t = rows_ref(transpose(in[0], 0, 1).contiguous(), [](std::vector<double> r) {
                     std::sort(r.begin(), r.end());
                     return r;
                   }, -1);
                   return transpose(t, 0, 1).contiguous();
                 }});

// ---- matmul ----
Tensor ref_matmul(const Tensor& a, const Tensor& b) {
  // a [..., m, k] and b [..., k, n] with equal (already broadcast) batch dims.
  HostTensor A(a.contiguous()), B(b.contiguous());
  const int64_t m = a.size(-2), k = a.size(-1), n = b.size(-1);
  const int64_t batch = a.numel() / std::max<int64_t>(m * k, 1);
  Shape s(a.shape().begin(), a.shape().end() - 1);
  s.push_back(n);
  HostTensor out(s);
  for (int64_t bi = 0; bi < batch; ++bi)
    for (int64_t i = 0; i < m; ++i)
      for (int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (int64_t p = 0; p < k; ++p) acc += A.v[(bi * m + i) * k + p] * B.v[(bi * k + p) * n + j];
        out.v[(bi * m + i) * n + j] = acc;
      }
  return out.tensor();
}

LMFORGE_OP_CASE({.op = "matmul", .name = "2-d",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {3, 4}), rand_f64(g, {4, 5})}; },
                 .run = [](const TensorList& in) { return matmul(in[0], in[1]); },
                 .reference = [](const TensorList& in) { return ref_matmul(in[0], in[1]); }});
LMFORGE_OP_CASE({.op = "matmul", .name = "transposed operands",
                 .inputs = [](Generator& g) { return TensorList{rand_f64_strided(g, {3, 4}), rand_f64_strided(g, {4, 5})}; },
                 .run = [](const TensorList& in) { return matmul(in[0], in[1]); },
                 .reference = [](const TensorList& in) { return ref_matmul(in[0], in[1]); }});
LMFORGE_OP_CASE({.op = "matmul", .name = "broadcast batch dims",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 1, 3, 4}), rand_f64_strided(g, {3, 4, 2})}; },
                 .run = [](const TensorList& in) { return matmul(in[0], in[1]); },
                 .reference = [](const TensorList& in) {
                   return ref_matmul(in[0].expand({2, 3, 3, 4}), in[1].expand({2, 3, 4, 2}));
                 }});
LMFORGE_OP_CASE({.op = "matmul", .name = "3-d @ 2-d (folded rows), 1-d operands",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3, 4}), rand_f64(g, {4, 5}), rand_f64(g, {5})}; },
                 .run = [](const TensorList& in) { return matmul(matmul(in[0], in[1]), in[2]); },
                 .reference = [](const TensorList& in) {
                   Tensor t = ref_matmul(in[0], in[1].expand({2, 4, 5}));
                   return ref_matmul(t, in[2].reshape({5, 1}).expand({2, 5, 1})).reshape({2, 3});
                 }});
LMFORGE_OP_CASE({.op = "matmul", .name = "k = 0 and m = 1",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {1, 0}), rand_f64(g, {0, 3})}; },
                 .run = [](const TensorList& in) { return matmul(in[0], in[1]); },
                 .reference = [](const TensorList&) { return zeros({1, 3}, DType::F64); },
                 .check_gradient = false});
LMFORGE_OP_CASE({.op = "linear", .name = "with bias, 3-d input",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3, 4}), rand_f64(g, {5, 4}), rand_f64(g, {5})}; },
                 .run = [](const TensorList& in) { return linear(in[0], in[1], in[2]); },
                 .reference = [](const TensorList& in) {
                   Tensor y = ref_matmul(in[0], transpose(in[1], 0, 1).contiguous().expand({2, 4, 5}));
                   HostTensor Y(y), B(in[2]);
                   for (size_t i = 0; i < Y.v.size(); ++i) Y.v[i] += B.v[i % 5];
                   return Y.tensor();
                 }});

LMFORGE_OP_CASE({.op = "linear", .name = "with bias, transposed 2-d input (fused bias epilogue on a strided x)",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {4, 3}), rand_f64(g, {5, 4}), rand_f64(g, {5})}; },
                 .run = [](const TensorList& in) { return linear(transpose(in[0], 0, 1), in[1], in[2]); },
                 .reference = [](const TensorList& in) {
                   HostTensor X(in[0]), W(in[1]), B(in[2]), Y(Shape{3, 5});
                   for (int64_t i = 0; i < 3; ++i)
                     for (int64_t j = 0; j < 5; ++j) {
                       double acc = B.v[j];
                       for (int64_t p = 0; p < 4; ++p) acc += X.v[p * 3 + i] * W.v[j * 4 + p];
                       Y.v[i * 5 + j] = acc;
                     }
                   return Y.tensor();
                 }});

// tanh-GELU of x·wᵀ + b, written out.
Tensor ref_linear_gelu(const TensorList& in, bool bias) {
  HostTensor X(in[0]), W(in[1]);
  const int64_t n = in[1].size(0), k = in[1].size(1), rows = in[0].numel() / k;
  Shape shape = in[0].shape();
  shape.back() = n;
  HostTensor Y(shape);
  for (int64_t i = 0; i < rows; ++i)
    for (int64_t j = 0; j < n; ++j) {
      double z = bias ? HostTensor(in[2]).v[j] : 0.0;
      for (int64_t p = 0; p < k; ++p) z += X.v[i * k + p] * W.v[j * k + p];
      Y.v[i * n + j] = 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
    }
  return Y.tensor();
}

LMFORGE_OP_CASE({.op = "linear_gelu", .name = "with bias, 3-d input",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {2, 3, 4}), rand_f64(g, {6, 4}), rand_f64(g, {6})}; },
                 .run = [](const TensorList& in) { return linear_gelu(in[0], in[1], in[2]); },
                 .reference = [](const TensorList& in) { return ref_linear_gelu(in, true); }});
LMFORGE_OP_CASE({.op = "linear_gelu", .name = "no bias, 2-d input",
                 .inputs = [](Generator& g) { return TensorList{rand_f64(g, {5, 3}), rand_f64(g, {2, 3})}; },
                 .run = [](const TensorList& in) { return linear_gelu(in[0], in[1]); },
                 .reference = [](const TensorList& in) { return ref_linear_gelu(in, false); }});

// (tanh-GELU of x·w_upᵀ + b_up)·w_downᵀ + b_down, written out; in = {x, w_up, b_up, w_down, b_down}
// or {x, w_up, w_down} without biases.
Tensor ref_gelu_mlp(const TensorList& in, bool bias) {
  const Tensor& x = in[0];
  const Tensor& wu = in[1];
  const Tensor& wd = in[bias ? 3 : 2];
  HostTensor X(x), WU(wu), WD(wd);
  const int64_t c = wu.size(1), f = wu.size(0), n = wd.size(0), rows = x.numel() / c;
  Shape shape = x.shape();
  shape.back() = n;
  HostTensor Y(shape);
  std::vector<double> act(static_cast<size_t>(f));
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t j = 0; j < f; ++j) {
      double z = bias ? HostTensor(in[2]).v[j] : 0.0;
      for (int64_t p = 0; p < c; ++p) z += X.v[i * c + p] * WU.v[j * c + p];
      act[j] = 0.5 * z * (1 + std::tanh(std::sqrt(2 / M_PI) * (z + 0.044715 * z * z * z)));
    }
    for (int64_t o = 0; o < n; ++o) {
      double y = bias ? HostTensor(in[4]).v[o] : 0.0;
      for (int64_t j = 0; j < f; ++j) y += act[j] * WD.v[o * f + j];
      Y.v[i * n + o] = y;
    }
  }
  return Y.tensor();
}

LMFORGE_OP_CASE({.op = "gelu_mlp", .name = "with biases, 3-d input",
                 .inputs = [](Generator& g) {
                   return TensorList{rand_f64(g, {2, 3, 4}), rand_f64(g, {6, 4}), rand_f64(g, {6}), rand_f64(g, {5, 6}),
                                     rand_f64(g, {5})};
                 },
                 .run = [](const TensorList& in) { return gelu_mlp(in[0], in[1], in[2], in[3], in[4]); },
                 .reference = [](const TensorList& in) { return ref_gelu_mlp(in, true); }});
LMFORGE_OP_CASE({.op = "gelu_mlp", .name = "no biases, 2-d input",
                 .inputs = [](Generator& g) {
                   return TensorList{rand_f64(g, {5, 3}), rand_f64(g, {4, 3}), rand_f64(g, {2, 4})};
                 },
                 .run = [](const TensorList& in) { return gelu_mlp(in[0], in[1], Tensor(), in[2], Tensor()); },
                 .reference = [](const TensorList& in) { return ref_gelu_mlp(in, false); }});

}  // namespace
}  // namespace lmforge::test
