// The fused ops: cross-entropy, RMSNorm / LayerNorm, RoPE, SwiGLU and AdamW, forward and backward,
// against the CPU twins; determinism of every accumulating backward (attention: attention_test.cpp).
#include <tuple>

#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

// Rows [n, v] of a flat buffer of n·v + 1 elements, starting at element 0 or 1 (contiguous either
// way; one element off the allocation's 16-byte alignment when offset).
Tensor view_as_rows(const Tensor& flat, bool offset, int64_t n, int64_t v) {
  return view(narrow(flat, 0, offset ? 1 : 0, n * v), {n, v});
}

TEST(CudaNN, CrossEntropyForwardBackward) {
  LF_REQUIRE_GPU();
  Generator g(71);
  struct Case {
    int64_t n, v;
    CrossEntropyArgs args;
  };
  for (const Case& c : {Case{64, 50257, {}}, Case{33, 1000, {.label_smoothing = 0.1, .z_loss = 1e-4}},
                        Case{5, 7, {.ignore_index = 3}}, Case{1, 128000, {.z_loss = 1e-3}}}) {
    for (DType t : nn_dtypes()) {
      SCOPED_TRACE(fmt::format("{}x{} {}", c.n, c.v, dtype_name(t)));
      Pair logits = random_pair(g, {c.n, c.v}, t, -8, 8);
      Tensor tg = random_index_host(g, {c.n}, c.v);
      if (c.args.ignore_index >= 0) {
        auto v = to_vector<int64_t>(tg);
        v[0] = c.args.ignore_index;
        tg = from_vector<int64_t>(v, {c.n});
      }
      Pair targets = on_both(tg);
      const DType st = stat_dtype(t);
      Pair loss = poisoned_pair({c.n}, st), lse = poisoned_pair({c.n}, st);
      cpu_be().cross_entropy_forward(logits.cpu, targets.cpu, c.args, loss.cpu, lse.cpu);
      gpu_be().cross_entropy_forward(logits.gpu, targets.gpu, c.args, loss.gpu, lse.gpu);
      EXPECT_TRUE(close(loss.gpu, loss.cpu, t == DType::F64 ? 1e-12 : 1e-5));
      EXPECT_TRUE(close(lse.gpu, lse.cpu, t == DType::F64 ? 1e-12 : 1e-5));
      Pair dloss = random_pair(g, {c.n}, st, 0.5, 1.5);
      Pair dl = poisoned_pair({c.n, c.v}, t);
      cpu_be().cross_entropy_backward(logits.cpu, targets.cpu, lse.cpu, dloss.cpu, c.args, dl.cpu);
      gpu_be().cross_entropy_backward(logits.gpu, targets.gpu, lse.cpu.to(gpu()), dloss.gpu, c.args, dl.gpu);
      EXPECT_TRUE(close(dl.gpu, dl.cpu, tol_for(t)));
    }
  }
  // A bad target is an Error naming it.
  Tensor logits = full({2, 5}, 0.0, DType::F32, gpu());
  Tensor targets = from_vector<int64_t>({1, 5}, {2}).to(gpu());
  Tensor loss = Tensor::empty({2}, DType::F32, gpu()), lse = Tensor::empty({2}, DType::F32, gpu());
  try {
    gpu_be().cross_entropy_forward(logits, targets, {}, loss, lse);
    FAIL() << "expected an Error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("target 5 at row 1"), std::string::npos) << e.what();
  }
}

// Both row paths of the cross-entropy kernels: 16-byte vectors (V a multiple of the vector width
// and an aligned base: 50304, 32000, 1000) and single elements (50257, 7, and a logits view one
// element off the allocation), with z-loss, label smoothing and ignored rows, and targets on the
// first and last column (the first and last lane of a vector).
TEST(CudaNN, CrossEntropyVectorAndScalarRows) {
  LF_REQUIRE_GPU();
  Generator g(75);
  const CrossEntropyArgs arg_sets[] = {{}, {.label_smoothing = 0.1}, {.z_loss = 1e-4},
                                       {.ignore_index = 5, .label_smoothing = 0.05, .z_loss = 1e-3}};
  int case_i = 0;
  for (int64_t v : {50304, 32000, 1000, 50257, 7}) {
    for (int64_t n : {1, 3, 300}) {
      for (DType t : {DType::BF16, DType::F16, DType::F32}) {
        for (bool offset : {false, true}) {
          if (offset && v != 32000) continue;
          const CrossEntropyArgs& args = arg_sets[case_i++ % 4];
          SCOPED_TRACE(fmt::format("{}x{} {} offset {} eps {} z {}", n, v, dtype_name(t), offset,
                                   args.label_smoothing, args.z_loss));
          Pair buf = random_pair(g, {n * v + 1}, t, -8, 8);
          Pair logits = view(buf, [&](const Tensor& x) { return view_as_rows(x, offset, n, v); });
          std::vector<int64_t> tv = to_vector<int64_t>(random_index_host(g, {n}, v));
          tv[0] = v - 1;
          if (n > 2) tv[2] = 0;
          for (int64_t r = 1; r < n; r += 3) tv[size_t(r)] = args.ignore_index;  // rows 1, 4, ...
          Pair targets = on_both(from_vector<int64_t>(tv, {n}));
          const DType st = stat_dtype(t);
          Pair loss = poisoned_pair({n}, st), lse = poisoned_pair({n}, st);
          cpu_be().cross_entropy_forward(logits.cpu, targets.cpu, args, loss.cpu, lse.cpu);
          gpu_be().cross_entropy_forward(logits.gpu, targets.gpu, args, loss.gpu, lse.gpu);
          EXPECT_TRUE(close(loss.gpu, loss.cpu, 1e-5));
          EXPECT_TRUE(close(lse.gpu, lse.cpu, 1e-5));
          Pair dloss = random_pair(g, {n}, st, 0.5, 1.5);
          Pair dl = poisoned_pair({n, v}, t);
          cpu_be().cross_entropy_backward(logits.cpu, targets.cpu, lse.cpu, dloss.cpu, args, dl.cpu);
          gpu_be().cross_entropy_backward(logits.gpu, targets.gpu, lse.cpu.to(gpu()), dloss.gpu, args, dl.gpu);
          EXPECT_TRUE(close(dl.gpu, dl.cpu, tol_for(t)));
          // Ignored rows: exactly zero.
          std::vector<double> d = host_values(dl.gpu);
          for (int64_t r = 1; r < n; r += 3)
            for (int64_t i = 0; i < v; ++i) ASSERT_EQ(d[size_t(r * v + i)], 0.0) << "row " << r;
        }
      }
    }
  }
}

// dx of a norm over a single feature is the difference of two terms that agree up to eps (the
// normalised value is ±1), so what is left is their rounding, and it differs between compilers
// (contraction into FMA). Such rows are compared at the size of the terms, |w·dy|·rstd.
::testing::AssertionResult close_norm_dx(const Pair& dx, const Pair& dy, const Pair& w, const Pair& rstd,
                                         int64_t c, double tol) {
  if (c != 1) return close(dx.gpu, dx.cpu, tol);
  const auto got = host_values(dx.gpu), want = host_values(dx.cpu), g = host_values(dy.cpu),
             r = host_values(rstd.cpu);
  const auto wv = w.cpu.defined() ? host_values(w.cpu) : std::vector<double>{1.0};
  for (size_t i = 0; i < got.size(); ++i) {
    const double scale = std::abs(wv[0] * g[i] * r[i]);
    if (std::abs(got[i] - want[i]) > tol * scale)
      return ::testing::AssertionFailure() << "row " << i << ": got " << got[i] << ", want " << want[i]
                                           << " (terms of size " << scale << ")";
  }
  return ::testing::AssertionSuccess();
}

TEST(CudaNN, NormsForwardBackward) {
  LF_REQUIRE_GPU();
  Generator g(72);
  for (auto [n, c] : {std::pair<int64_t, int64_t>{64, 768}, {5000, 64}, {3, 4097}, {1, 1}}) {
    for (DType t : nn_dtypes()) {
      for (bool with_w : {true, false}) {
        SCOPED_TRACE(fmt::format("{}x{} {} weight {}", n, c, dtype_name(t), with_w));
        const DType st = stat_dtype(t);
        Pair x = random_pair(g, {n, c}, t, -2, 2);
        // A strided bf16 weight exercises the conversion to the compute type.
        Pair wbase = random_pair(g, {c, 2}, DType::BF16, 0.5, 1.5);
        Pair w = with_w ? view(wbase, [](const Tensor& a) { return select(a, 1, 0); }) : Pair{};
        Pair b = with_w ? random_pair(g, {c}, t, -1, 1) : Pair{};
        Pair dy = random_pair(g, {n, c}, t);
        // RMSNorm
        Pair y = poisoned_pair({n, c}, t), rstd = poisoned_pair({n}, st);
        cpu_be().rms_norm_forward(x.cpu, Tensor(), w.cpu, 1e-5, y.cpu, Tensor(), rstd.cpu);
        gpu_be().rms_norm_forward(x.gpu, Tensor(), w.gpu, 1e-5, y.gpu, Tensor(), rstd.gpu);
        EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
        EXPECT_TRUE(close(rstd.gpu, rstd.cpu, t == DType::F64 ? 1e-12 : 1e-5));
        Pair dx = poisoned_pair({n, c}, t), dw = poisoned_pair({c}, st);
        Tensor dw_cpu = with_w ? dw.cpu : Tensor(), dw_gpu = with_w ? dw.gpu : Tensor();
        cpu_be().rms_norm_backward(x.cpu, w.cpu, rstd.cpu, dy.cpu, Tensor(), dx.cpu, dw_cpu);
        gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx.gpu, dw_gpu);
        EXPECT_TRUE(close_norm_dx(dx, dy, w, rstd, c, tol_for(t)));
        if (with_w) {
          EXPECT_TRUE(close(dw.gpu, dw.cpu, t == DType::F64 ? 1e-12 : 1e-5));
          Tensor dw2 = poisoned({c}, st, gpu());
          gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx.gpu, dw2);
          EXPECT_TRUE(bit_equal(dw2, dw.gpu));
        }
        // LayerNorm
        Pair mean = poisoned_pair({n}, st);
        cpu_be().layer_norm_forward(x.cpu, Tensor(), w.cpu, b.cpu, 1e-5, y.cpu, Tensor(), mean.cpu, rstd.cpu);
        gpu_be().layer_norm_forward(x.gpu, Tensor(), w.gpu, b.gpu, 1e-5, y.gpu, Tensor(), mean.gpu, rstd.gpu);
        EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
        EXPECT_TRUE(close(mean.gpu, mean.cpu, t == DType::F64 ? 1e-12 : 1e-5));
        Pair db = poisoned_pair({c}, st);
        Tensor db_cpu = with_w ? db.cpu : Tensor(), db_gpu = with_w ? db.gpu : Tensor();
        cpu_be().layer_norm_backward(x.cpu, w.cpu, mean.cpu, rstd.cpu, dy.cpu, Tensor(), dx.cpu, dw_cpu, db_cpu);
        gpu_be().layer_norm_backward(x.gpu, w.gpu, mean.cpu.to(gpu()), rstd.cpu.to(gpu()), dy.gpu, Tensor(), dx.gpu,
                                     dw_gpu, db_gpu);
        EXPECT_TRUE(close_norm_dx(dx, dy, w, rstd, c, t == DType::F32 ? 2e-5 : tol_for(t)));
        if (with_w) {
          EXPECT_TRUE(close(dw.gpu, dw.cpu, t == DType::F64 ? 1e-12 : 1e-5));
          EXPECT_TRUE(close(db.gpu, db.cpu, t == DType::F64 ? 1e-12 : 1e-5));
        }
      }
    }
  }
}

TEST(CudaNN, RopeForwardInverseStrided) {
  LF_REQUIRE_GPU();
  Generator g(73);
  // Head dim 64 takes the 16-byte vector kernel in the half-split layout; 20 (half 10) does not.
  for (DType t : nn_dtypes()) {
    for (const auto& [d, interleaved, inverse] : {std::tuple{64, false, false}, std::tuple{64, false, true},
                                                   std::tuple{64, true, false}, std::tuple{64, true, true},
                                                   std::tuple{20, false, false}, std::tuple{20, false, true}}) {
      SCOPED_TRACE(fmt::format("{} d {} interleaved {} inverse {}", dtype_name(t), d, interleaved, inverse));
      // q taken out of a fused [B, T, 3, H, D] projection: strided in B, T and H.
      Pair qkv = random_pair(g, {2, 37, 3, 4, d}, t);
      Pair x = view(qkv, [](const Tensor& a) { return select(a, 2, 1); });
      Pair out = poisoned_pair({2, 37, 4, d}, t);
      cpu_be().rope(x.cpu, out.cpu, 10000.0, 1000, interleaved, inverse);
      gpu_be().rope(x.gpu, out.gpu, 10000.0, 1000, interleaved, inverse);
      EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t)));
      // In place.
      cpu_be().rope(x.cpu, x.cpu, 500000.0, 7, interleaved, inverse);
      gpu_be().rope(x.gpu, x.gpu, 500000.0, 7, interleaved, inverse);
      EXPECT_TRUE(close(qkv.gpu, qkv.cpu, tol_for(t)));
    }
  }
}

TEST(CudaNN, SwiGLUForwardBackward) {
  LF_REQUIRE_GPU();
  Generator g(74);
  // 333·257 elements: 16-byte vectors and a tail of single elements; `shift` 1 starts every
  // operand one element off the 16-byte grid (the scalar kernel alone).
  for (DType t : float_dtypes()) {
    // fp8 has no fused kernel (supports() says so on both backends): ops::swiglu composes it,
    // which the op registry covers.
    if (!gpu_be().supports(Kernel::swiglu_forward, t)) {
      EXPECT_FALSE(cpu_be().supports(Kernel::swiglu_forward, t)) << dtype_name(t);
      continue;
    }
    for (int64_t shift : {0, 1}) {
      SCOPED_TRACE(fmt::format("{} shift {}", dtype_name(t), shift));
      const int64_t n = 333 * 257;
      const auto shifted = [&](const Pair& p) {
        return view(p, [&](const Tensor& a) { return narrow(a, 0, shift, n); });
      };
      const Shape flat{n + 1};
      Pair gate = shifted(random_pair(g, flat, t, -6, 6)), up = shifted(random_pair(g, flat, t));
      Pair dout = shifted(random_pair(g, flat, t));
      Pair out = shifted(poisoned_pair(flat, t)), dg = shifted(poisoned_pair(flat, t));
      Pair du = shifted(poisoned_pair(flat, t));
      cpu_be().swiglu_forward(gate.cpu, up.cpu, out.cpu);
      gpu_be().swiglu_forward(gate.gpu, up.gpu, out.gpu);
      EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t)));
      cpu_be().swiglu_backward(gate.cpu, up.cpu, dout.cpu, dg.cpu, du.cpu);
      gpu_be().swiglu_backward(gate.gpu, up.gpu, dout.gpu, dg.gpu, du.gpu);
      EXPECT_TRUE(close(dg.gpu, dg.cpu, tol_for(t)));
      EXPECT_TRUE(close(du.gpu, du.cpu, tol_for(t)));
    }
  }
}

TEST(CudaNN, AdamW) {
  LF_REQUIRE_GPU();
  Generator g(75);
  const AdamWArgs args{.lr = 1e-3, .beta1 = 0.9, .beta2 = 0.95, .eps = 1e-8, .weight_decay = 0.1,
                       .bias_correction1 = 1 - 0.9 * 0.9, .bias_correction2 = 1 - 0.95 * 0.95, .grad_scale = 0.5};
  for (DType pt : nn_dtypes()) {
    for (DType gt : {pt, DType::F32}) {
      const DType st = stat_dtype(pt);
      Pair p = random_pair(g, {100003}, pt), grad = random_pair(g, {100003}, gt);
      Pair m = random_pair(g, {100003}, st, -0.1, 0.1), v = random_pair(g, {100003}, st, 0, 0.01);
      for (int step = 0; step < 3; ++step) {
        cpu_be().adamw_step(p.cpu, grad.cpu, m.cpu, v.cpu, args);
        gpu_be().adamw_step(p.gpu, grad.gpu, m.gpu, v.gpu, args);
      }
      EXPECT_TRUE(close(p.gpu, p.cpu, pt == DType::F64 ? 1e-12 : tol_for(pt) / 10)) << dtype_name(pt);
      EXPECT_TRUE(close(m.gpu, m.cpu, pt == DType::F64 ? 1e-12 : 1e-6));
      EXPECT_TRUE(close(v.gpu, v.cpu, pt == DType::F64 ? 1e-12 : 1e-6));
    }
  }
}

}  // namespace
}  // namespace lmforge
