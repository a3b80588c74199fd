// Tests of the fused nn ops beyond the registry cases (tests/ops/cases_nn.cpp): attention memory
// stays linear in the sequence length, bf16 against f32, results independent of the thread
// count, error messages, fully-masked attention rows, the f32 paths (chunked cross-entropy,
// multi-tile attention, exp_fast) against f64, and the AdamW kernel.
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <limits>
#include <string>

#include "backend/backend.h"
#include "backend/cpu/nn_kernel_util.h"
#include "core/random_kernels.h"
#include "ops/ops.h"
#include "test_util.h"

namespace lmforge {
namespace {

using test::error_of;

constexpr float kInfF = std::numeric_limits<float>::infinity();

#define EXPECT_ERROR_HAS(stmt, text)                                              \
  do {                                                                            \
    const std::string msg_ = error_of([&] { stmt; });                             \
    EXPECT_NE(msg_.find(text), std::string::npos) << "error was: " << msg_;       \
  } while (0)

// max |a - b| / (1 + |b|) over all elements.
double max_rel(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_vector<double>(a), y = to_vector<double>(b);
  EXPECT_EQ(x.size(), y.size());
  double worst = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i)
    worst = std::max(worst, std::abs(x[i] - y[i]) / (1 + std::abs(y[i])));
  return worst;
}

bool all_finite(const Tensor& t) {
  for (double v : to_vector<double>(t))
    if (!std::isfinite(v)) return false;
  return true;
}

bool bitwise_equal(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_vector<double>(a), y = to_vector<double>(b);
  return x.size() == y.size() && std::memcmp(x.data(), y.data(), x.size() * sizeof(double)) == 0;
}

Tensor leaf(const Tensor& t) { return t.detach().set_requires_grad(true); }

// ---- exp_fast ----

TEST(NnKernels, ExpFastAccuracy) {
  double worst = 0;
  for (double x = -87.0; x <= 88.0; x += 1e-3) {
    const float xf = static_cast<float>(x);
    const double want = std::exp(static_cast<double>(xf));
    worst = std::max(worst, std::abs(cpu::exp_fast(xf) - want) / want);
  }
  EXPECT_LT(worst, 2.5e-7);
  EXPECT_EQ(cpu::exp_fast(0.0f), 1.0f);
  EXPECT_EQ(cpu::exp_fast(-kInfF), 0.0f);
  EXPECT_EQ(cpu::exp_fast(-1000.0f), 0.0f);
  EXPECT_EQ(cpu::exp_fast(kInfF), kInfF);
  EXPECT_TRUE(std::isnan(cpu::exp_fast(std::numeric_limits<float>::quiet_NaN())));
}

// ---- attention memory ----

TEST(NnOps, AttentionMemoryIsLinearInSequenceLength) {
  const int64_t t = 4096, d = 64;
  Generator gen(3);
  Tensor q = leaf(randn({1, t, 1, d}, gen)), k = leaf(randn({1, t, 1, d}, gen)), v = leaf(randn({1, t, 1, d}, gen));
  Allocator& alloc = allocator_for(Device::cpu());
  alloc.reset_peak();
  const int64_t base = alloc.stats().bytes_in_use;
  Tensor out = attention(q, k, v);
  sum(out).backward();
  const int64_t peak = alloc.stats().peak_bytes_in_use - base;
  const int64_t quadratic = t * t * int64_t(sizeof(float));  // one [T, S] f32 buffer: 64 MiB
  EXPECT_LT(peak, quadratic / 8) << "peak " << peak << " bytes";
  EXPECT_TRUE(all_finite(out));
  EXPECT_TRUE(all_finite(q.grad()) && all_finite(k.grad()) && all_finite(v.grad()));
}

// ---- bf16 against f32 ----

// Rounds to bf16 and back, so the f32 run sees exactly the bf16 run's inputs.
Tensor bf16_exact(const Tensor& t) { return cast(cast(t, DType::BF16), DType::F32); }

TEST(NnOps, Bf16MatchesF32) {
  Generator gen(11);
  const double tol = 1e-2;
  {
    Tensor x = bf16_exact(randn({6, 40}, gen)), w = bf16_exact(rand({40}, gen, DType::F32, Device::cpu(), 0.5, 1.5));
    Tensor b = bf16_exact(randn({40}, gen));
    EXPECT_LT(max_rel(rms_norm(cast(x, DType::BF16), cast(w, DType::BF16)), rms_norm(x, w)), tol);
    EXPECT_LT(max_rel(layer_norm(cast(x, DType::BF16), cast(w, DType::BF16), cast(b, DType::BF16)),
                      layer_norm(x, w, b)), tol);
    // Backward of rms_norm in bf16 (dweight accumulated in f32).
    Tensor xb = leaf(cast(x, DType::BF16)), wb = leaf(cast(w, DType::BF16)), xf = leaf(x), wf = leaf(w);
    Tensor gy = bf16_exact(randn({6, 40}, gen));
    rms_norm(xb, wb).backward(cast(gy, DType::BF16));
    rms_norm(xf, wf).backward(gy);
    EXPECT_LT(max_rel(xb.grad(), xf.grad()), tol);
    EXPECT_LT(max_rel(wb.grad(), wf.grad()), 2 * tol);  // a sum over 6 rows of bf16 products
  }
  {
    Tensor x = bf16_exact(randn({2, 5, 3, 16}, gen));
    EXPECT_LT(max_rel(rope(cast(x, DType::BF16), {.position_offset = 7}), rope(x, {.position_offset = 7})), tol);
    Tensor g = bf16_exact(randn({4, 33}, gen)), u = bf16_exact(randn({4, 33}, gen));
    EXPECT_LT(max_rel(swiglu(cast(g, DType::BF16), cast(u, DType::BF16)), swiglu(g, u)), tol);
  }
  {
    Tensor q = bf16_exact(randn({2, 9, 4, 16}, gen)), k = bf16_exact(randn({2, 12, 2, 16}, gen));
    Tensor v = bf16_exact(randn({2, 12, 2, 8}, gen));
    Tensor qb = leaf(cast(q, DType::BF16)), kb = leaf(cast(k, DType::BF16)), vb = leaf(cast(v, DType::BF16));
    Tensor qf = leaf(q), kf = leaf(k), vf = leaf(v);
    Tensor ob = attention(qb, kb, vb), of = attention(qf, kf, vf);
    EXPECT_LT(max_rel(ob, of), tol);
    Tensor go = bf16_exact(randn({2, 9, 4, 8}, gen));
    ob.backward(cast(go, DType::BF16));
    of.backward(go);
    EXPECT_LT(max_rel(qb.grad(), qf.grad()), tol);
    EXPECT_LT(max_rel(kb.grad(), kf.grad()), tol);
    EXPECT_LT(max_rel(vb.grad(), vf.grad()), tol);
  }
  {
    Tensor logits = bf16_exact(mul(randn({8, 300}, gen), 3.0));
    Tensor targets = randint({8}, 0, 300, gen);
    const CrossEntropyOptions o{.label_smoothing = 0.1, .z_loss = 1e-3};
    EXPECT_LT(max_rel(cross_entropy(cast(logits, DType::BF16), targets, o), cross_entropy(logits, targets, o)), tol);
  }
}

// ---- thread-count independence ----

struct NormGrads {
  Tensor dx, dw, db;
};

TEST(NnOps, DeterministicAcrossThreadCounts) {
  Generator gen(5);
  const Tensor x = randn({3001, 96}, gen), w = randn({96}, gen), b = randn({96}, gen), gy = randn({3001, 96}, gen);
  const Tensor q = randn({2, 150, 4, 16}, gen), k = randn({2, 170, 2, 16}, gen), v = randn({2, 170, 2, 16}, gen);
  const Tensor go = randn({2, 150, 4, 16}, gen);
  const Tensor logits = randn({64, 5000}, gen), targets = randint({64}, 0, 5000, gen);
  auto run = [&](int threads) {
    const int prev = omp_get_max_threads();
    omp_set_num_threads(threads);
    TensorList out;
    Tensor xr = leaf(x), wr = leaf(w);
    rms_norm(xr, wr).backward(gy);
    out.push_back(xr.grad());
    out.push_back(wr.grad());
    Tensor xl = leaf(x), wl = leaf(w), bl = leaf(b);
    layer_norm(xl, wl, bl).backward(gy);
    out.push_back(xl.grad());
    out.push_back(wl.grad());
    out.push_back(bl.grad());
    Tensor qa = leaf(q), ka = leaf(k), va = leaf(v);
    Tensor o = attention(qa, ka, va);
    o.backward(go);
    out.push_back(o);
    out.push_back(qa.grad());
    out.push_back(ka.grad());
    out.push_back(va.grad());
    Tensor lg = leaf(logits);
    Tensor loss = cross_entropy(lg, targets, {.z_loss = 1e-4});
    loss.backward();
    out.push_back(loss);
    out.push_back(lg.grad());
    omp_set_num_threads(prev);
    return out;
  };
  const TensorList one = run(1), two = run(2);
  const char* names[] = {"rms dx", "rms dweight", "ln dx", "ln dweight", "ln dbias", "attn out", "attn dq",
                         "attn dk", "attn dv", "ce loss", "ce dlogits"};
  for (size_t i = 0; i < one.size(); ++i) EXPECT_TRUE(bitwise_equal(one[i], two[i])) << names[i];
}

// ---- errors ----

TEST(NnOps, ClearErrorsForBadArguments) {
  Generator gen(1);
  EXPECT_ERROR_HAS(rms_norm(randn({3, 4}, gen), randn({5}, gen)),
                   "rms_norm: weight has shape [5] but x's last dim is 4");
  EXPECT_ERROR_HAS(layer_norm(randn({3, 4}, gen), Tensor(), randn({2, 2}, gen)),
                   "layer_norm: bias has shape [2, 2] but x's last dim is 4");
  EXPECT_ERROR_HAS(rope(randn({1, 2, 2, 5}, gen)), "rope: head dim D = 5 must be even");
  EXPECT_ERROR_HAS(rope(randn({2, 2, 4}, gen)), "rope: x must be [B, T, H, D], got shape [2, 2, 4]");
  EXPECT_ERROR_HAS(swiglu(randn({2, 3}, gen), randn({3, 2}, gen)),
                   "swiglu: gate has shape [2, 3] but up has shape [3, 2]");
  EXPECT_ERROR_HAS(attention(randn({1, 2, 3, 4}, gen), randn({1, 2, 2, 4}, gen), randn({1, 2, 2, 4}, gen)),
                   "attention: q has 3 heads, which is not a multiple of k/v's 2 heads");
  EXPECT_ERROR_HAS(attention(randn({1, 2, 2, 4}, gen), randn({1, 2, 2, 8}, gen), randn({1, 2, 2, 4}, gen)),
                   "attention: q has head dim 4 but k has 8");
  EXPECT_ERROR_HAS(attention(randn({1, 2, 2, 4}, gen), randn({1, 3, 2, 4}, gen), randn({1, 3, 2, 4}, gen),
                             {}, randn({2, 2}, gen)),
                   "attention: mask of shape [2, 2] does not broadcast to [B, H, T, S] = [1, 2, 2, 3]");
  const Tensor targets = from_vector<int64_t>(std::vector<int64_t>{0, 1, 9}, {3});
  EXPECT_ERROR_HAS(cross_entropy(randn({3, 5}, gen), targets), "target 9 at row 2 is out of range for 5 classes");
  EXPECT_ERROR_HAS(cross_entropy(randn({3, 5}, gen), from_vector<int64_t>(std::vector<int64_t>{0, 1}, {2})),
                   "cross_entropy: targets have shape [2] but logits of shape [3, 5] need targets of shape [3]");
  EXPECT_ERROR_HAS(cross_entropy(randn({3, 5}, gen), randn({3}, gen)), "cross_entropy: targets must be an i64");
  EXPECT_ERROR_HAS(dropout(randn({3}, gen), 1.5, true, gen), "dropout: p must be in [0, 1], got 1.5");
}

// ---- attention rows that see no key ----

TEST(NnOps, FullyMaskedAttentionRowsGiveZeroAndNoNaN) {
  Generator gen(8);
  const int64_t t = 5, s = 7;
  std::vector<float> m(t * s, 0.0f);
  for (int64_t j = 0; j < s; ++j) m[2 * s + j] = -kInfF;  // query 2 sees nothing
  m[4 * s + 6] = -kInfF;                                    // query 4 loses one key
  const Tensor mask = from_vector<float>(m, {t, s});
  Tensor q = leaf(randn({2, t, 2, 8}, gen)), k = leaf(randn({2, s, 1, 8}, gen)), v = leaf(randn({2, s, 1, 4}, gen));
  Tensor out = attention(q, k, v, {.causal = false}, mask);
  out.backward(randn(out.shape(), gen));
  EXPECT_TRUE(all_finite(out) && all_finite(q.grad()) && all_finite(k.grad()) && all_finite(v.grad()));
  const std::vector<float> o = to_vector<float>(out), dq = to_vector<float>(q.grad());
  for (int64_t b = 0; b < 2; ++b)
    for (int64_t h = 0; h < 2; ++h) {
      for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(o[((b * t + 2) * 2 + h) * 4 + e], 0.0f);
      for (int64_t e = 0; e < 8; ++e) EXPECT_EQ(dq[((b * t + 2) * 2 + h) * 8 + e], 0.0f);
    }
  // Causal with S < T: the first T - S queries see no key.
  Tensor q2 = leaf(randn({1, 6, 1, 4}, gen)), k2 = leaf(randn({1, 2, 1, 4}, gen)), v2 = leaf(randn({1, 2, 1, 4}, gen));
  Tensor out2 = attention(q2, k2, v2);
  sum(out2).backward();
  EXPECT_TRUE(all_finite(out2) && all_finite(q2.grad()) && all_finite(k2.grad()) && all_finite(v2.grad()));
  const std::vector<float> o2 = to_vector<float>(out2);
  for (int64_t i = 0; i < 4 * 4; ++i) EXPECT_EQ(o2[i], 0.0f);
  EXPECT_NE(o2[4 * 4], 0.0f);
}

// ---- f32 paths against f64 ----

TEST(NnOps, CrossEntropyLargeVocabF32MatchesF64) {
  Generator gen(21);
  // V spans several 2048-wide chunks; row 1 has its maximum in the last chunk.
  Tensor logits = mul(randn({4, 50001}, gen, DType::F64), 4.0);
  std::vector<double> lv = to_vector<double>(logits);
  lv[1 * 50001 + 50000] = 40.0;
  logits = from_vector<double>(lv, {4, 50001});
  const Tensor targets = from_vector<int64_t>(std::vector<int64_t>{3, 50000, -100, 20000}, {4});
  const CrossEntropyOptions o{.label_smoothing = 0.1, .z_loss = 1e-4, .reduction = CrossEntropyOptions::Reduction::None};
  Tensor l64 = leaf(logits), l32 = leaf(cast(logits, DType::F32));
  Tensor y64 = cross_entropy(l64, targets, o), y32 = cross_entropy(l32, targets, o);
  EXPECT_LT(max_rel(y32, y64), 2e-6);
  Tensor g = from_vector<double>(std::vector<double>{1.0, -0.5, 2.0, 0.25}, {4});
  y64.backward(g);
  y32.backward(cast(g, DType::F32));
  EXPECT_LT(max_rel(l32.grad(), l64.grad()), 1e-6);
  // The ignored row has a zero gradient.
  const std::vector<double> dg = to_vector<double>(l32.grad());
  for (int64_t i = 0; i < 50001; ++i) ASSERT_EQ(dg[2 * 50001 + i], 0.0);
}

TEST(NnOps, CrossEntropyAllIgnoredMeanIsZero) {
  Generator gen(2);
  Tensor logits = leaf(randn({3, 4}, gen));
  Tensor loss = cross_entropy(logits, from_vector<int64_t>(std::vector<int64_t>{-100, -100, -100}, {3}));
  EXPECT_EQ(loss.item(), 0.0);
  loss.backward();
  for (double v : to_vector<double>(logits.grad())) EXPECT_EQ(v, 0.0);
}

// The logits' gradient overwrites the logits when only the loss holds them; the gradient that
// flows on is the same as when the caller keeps the logits alive (a separate buffer).
TEST(NnOps, CrossEntropyGradientInPlaceOfDeadLogitsIsExact) {
  Generator gen(21);
  const Tensor x0 = randn({6, 8}, gen), w0 = randn({11, 8}, gen);
  const Tensor targets = from_vector<int64_t>(std::vector<int64_t>{3, 0, 10, -100, 7, 3}, {6});
  Tensor grads[2];
  Tensor kept;
  for (int keep = 0; keep < 2; ++keep) {
    Tensor x = x0.detach().set_requires_grad(true);
    Tensor loss;
    {
      Tensor logits = linear(x, w0);
      if (keep) kept = logits;  // a second holder: the op must not overwrite
      loss = cross_entropy(logits, targets, {.label_smoothing = 0.1, .z_loss = 1e-3});
    }
    const Tensor before = keep ? clone(kept.detach()) : Tensor();
    loss.backward();
    grads[keep] = x.grad();
    if (keep) {
      EXPECT_EQ(to_vector<float>(kept), to_vector<float>(before)) << "kept logits were overwritten";
    }
  }
  EXPECT_EQ(to_vector<float>(grads[0]), to_vector<float>(grads[1]));
}

TEST(NnOps, AttentionMultiTileF32MatchesF64) {
  Generator gen(4);
  const Tensor q = randn({2, 150, 4, 32}, gen, DType::F64), k = randn({2, 200, 2, 32}, gen, DType::F64);
  const Tensor v = randn({2, 200, 2, 24}, gen, DType::F64), go = randn({2, 150, 4, 24}, gen, DType::F64);
  for (bool causal : {true, false}) {
    Tensor q64 = leaf(q), k64 = leaf(k), v64 = leaf(v);
    Tensor q32 = leaf(cast(q, DType::F32)), k32 = leaf(cast(k, DType::F32)), v32 = leaf(cast(v, DType::F32));
    Tensor o64 = attention(q64, k64, v64, {.causal = causal}), o32 = attention(q32, k32, v32, {.causal = causal});
    EXPECT_LT(max_rel(o32, o64), 1e-5) << "causal " << causal;
    o64.backward(go);
    o32.backward(cast(go, DType::F32));
    EXPECT_LT(max_rel(q32.grad(), q64.grad()), 1e-4) << "causal " << causal;
    EXPECT_LT(max_rel(k32.grad(), k64.grad()), 1e-4) << "causal " << causal;
    EXPECT_LT(max_rel(v32.grad(), v64.grad()), 1e-4) << "causal " << causal;
  }
}

TEST(NnOps, RmsNormF32ManyRowsMatchesF64) {
  Generator gen(6);
  const Tensor x = randn({5000, 64}, gen, DType::F64), w = randn({64}, gen, DType::F64);
  const Tensor gy = randn({5000, 64}, gen, DType::F64);
  Tensor x64 = leaf(x), w64 = leaf(w), x32 = leaf(cast(x, DType::F32)), w32 = leaf(cast(w, DType::F32));
  Tensor y64 = rms_norm(x64, w64), y32 = rms_norm(x32, w32);
  EXPECT_LT(max_rel(y32, y64), 1e-5);
  y64.backward(gy);
  y32.backward(cast(gy, DType::F32));
  EXPECT_LT(max_rel(x32.grad(), x64.grad()), 1e-5);
  EXPECT_LT(max_rel(w32.grad(), w64.grad()), 1e-4);  // a sum over 5000 rows
}

// ---- AdamW kernel ----

void check_adamw(DType dt, double tol) {
  Generator gen(31);
  const int64_t n = 50000;
  Tensor p = randn({n}, gen, dt), g = randn({n}, gen, dt);
  Tensor m = mul(randn({n}, gen, dt), 0.1), v = mul(rand({n}, gen, dt), 0.01);
  std::vector<double> P = to_vector<double>(p), G = to_vector<double>(g), M = to_vector<double>(m),
                      V = to_vector<double>(v);
  const AdamWArgs a{.lr = 1e-2, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                    .bias_correction1 = 1 - std::pow(0.9, 3), .bias_correction2 = 1 - std::pow(0.95, 3),
                    .grad_scale = 0.5};
  backend_for(p).adamw_step(p, g, m, v, a);
  for (int64_t i = 0; i < n; ++i) {
    const double gi = G[i] * a.grad_scale;
    P[i] -= a.lr * a.weight_decay * P[i];
    M[i] = a.beta1 * M[i] + (1 - a.beta1) * gi;
    V[i] = a.beta2 * V[i] + (1 - a.beta2) * gi * gi;
    P[i] -= a.lr * (M[i] / a.bias_correction1) / (std::sqrt(V[i] / a.bias_correction2) + a.eps);
  }
  EXPECT_LT(max_rel(p, from_vector<double>(P, {n})), tol);
  EXPECT_LT(max_rel(m, from_vector<double>(M, {n})), tol);
  EXPECT_LT(max_rel(v, from_vector<double>(V, {n})), tol);
}

TEST(NnKernels, AdamWStepMatchesReference) {
  check_adamw(DType::F64, 1e-14);
  check_adamw(DType::F32, 1e-6);
}

}  // namespace
}  // namespace lmforge
