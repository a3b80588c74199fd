// The fused ops: cross-entropy, RMSNorm / LayerNorm, RoPE, SwiGLU, attention and AdamW, forward
// and backward, against the CPU twins; determinism of every accumulating backward.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

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
        cpu_be().rms_norm_forward(x.cpu, w.cpu, 1e-5, y.cpu, rstd.cpu);
        gpu_be().rms_norm_forward(x.gpu, w.gpu, 1e-5, y.gpu, rstd.gpu);
        EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
        EXPECT_TRUE(close(rstd.gpu, rstd.cpu, t == DType::F64 ? 1e-12 : 1e-5));
        Pair dx = poisoned_pair({n, c}, t), dw = poisoned_pair({c}, st);
        Tensor dw_cpu = with_w ? dw.cpu : Tensor(), dw_gpu = with_w ? dw.gpu : Tensor();
        cpu_be().rms_norm_backward(x.cpu, w.cpu, rstd.cpu, dy.cpu, dx.cpu, dw_cpu);
        gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.cpu.to(gpu()), dy.gpu, dx.gpu, dw_gpu);
        EXPECT_TRUE(close(dx.gpu, dx.cpu, tol_for(t)));
        if (with_w) {
          EXPECT_TRUE(close(dw.gpu, dw.cpu, t == DType::F64 ? 1e-12 : 1e-5));
          Tensor dw2 = poisoned({c}, st, gpu());
          gpu_be().rms_norm_backward(x.gpu, w.gpu, rstd.cpu.to(gpu()), dy.gpu, dx.gpu, dw2);
          EXPECT_TRUE(bit_equal(dw2, dw.gpu));
        }
        // LayerNorm
        Pair mean = poisoned_pair({n}, st);
        cpu_be().layer_norm_forward(x.cpu, w.cpu, b.cpu, 1e-5, y.cpu, mean.cpu, rstd.cpu);
        gpu_be().layer_norm_forward(x.gpu, w.gpu, b.gpu, 1e-5, y.gpu, mean.gpu, rstd.gpu);
        EXPECT_TRUE(close(y.gpu, y.cpu, tol_for(t)));
        EXPECT_TRUE(close(mean.gpu, mean.cpu, t == DType::F64 ? 1e-12 : 1e-5));
        Pair db = poisoned_pair({c}, st);
        Tensor db_cpu = with_w ? db.cpu : Tensor(), db_gpu = with_w ? db.gpu : Tensor();
        cpu_be().layer_norm_backward(x.cpu, w.cpu, mean.cpu, rstd.cpu, dy.cpu, dx.cpu, dw_cpu, db_cpu);
        gpu_be().layer_norm_backward(x.gpu, w.gpu, mean.cpu.to(gpu()), rstd.cpu.to(gpu()), dy.gpu, dx.gpu, dw_gpu,
                                     db_gpu);
        EXPECT_TRUE(close(dx.gpu, dx.cpu, t == DType::F32 ? 2e-5 : tol_for(t)));
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
  for (DType t : nn_dtypes()) {
    for (bool interleaved : {false, true}) {
      for (bool inverse : {false, true}) {
        SCOPED_TRACE(fmt::format("{} interleaved {} inverse {}", dtype_name(t), interleaved, inverse));
        // q taken out of a fused [B, T, 3, H, D] projection: strided in B, T and H.
        Pair qkv = random_pair(g, {2, 37, 3, 4, 64}, t);
        Pair x = view(qkv, [](const Tensor& a) { return select(a, 2, 1); });
        Pair out = poisoned_pair({2, 37, 4, 64}, t);
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
}

TEST(CudaNN, SwiGLUForwardBackward) {
  LF_REQUIRE_GPU();
  Generator g(74);
  for (DType t : float_dtypes()) {
    Pair gate = random_pair(g, {333, 257}, t, -6, 6), up = random_pair(g, {333, 257}, t), dout = random_pair(g, {333, 257}, t);
    Pair out = poisoned_pair({333, 257}, t), dg = poisoned_pair({333, 257}, t), du = poisoned_pair({333, 257}, t);
    cpu_be().swiglu_forward(gate.cpu, up.cpu, out.cpu);
    gpu_be().swiglu_forward(gate.gpu, up.gpu, out.gpu);
    EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t))) << dtype_name(t);
    cpu_be().swiglu_backward(gate.cpu, up.cpu, dout.cpu, dg.cpu, du.cpu);
    gpu_be().swiglu_backward(gate.gpu, up.gpu, dout.gpu, dg.gpu, du.gpu);
    EXPECT_TRUE(close(dg.gpu, dg.cpu, tol_for(t))) << dtype_name(t);
    EXPECT_TRUE(close(du.gpu, du.cpu, tol_for(t))) << dtype_name(t);
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

struct AttnCase {
  int64_t b, t, s, h, hkv, d, dv;
  bool causal, mask, strided;
};

TEST(CudaNN, AttentionForwardBackward) {
  LF_REQUIRE_GPU();
  Generator g(76);
  const AttnCase cases[] = {
      {2, 100, 100, 4, 4, 64, 64, true, false, false},   // MHA causal
      {1, 77, 77, 8, 2, 128, 128, true, false, true},    // GQA, strided q/k/v (fused projection)
      {2, 5, 40, 4, 1, 32, 16, true, true, false},       // MQA, decode-like causal offset, mask, Dv != D
      {1, 65, 130, 2, 2, 48, 48, false, true, false},    // not causal, mask
      {1, 40, 20, 2, 1, 16, 16, true, false, false},     // T > S: the first queries see no key
      {1, 33, 33, 1, 1, 256, 256, true, false, false},   // large head dim
  };
  for (const AttnCase& c : cases) {
    for (DType t : nn_dtypes()) {
      SCOPED_TRACE(fmt::format("B{} T{} S{} H{} Hkv{} D{} Dv{} causal{} mask{} strided{} {}", c.b, c.t, c.s, c.h,
                               c.hkv, c.d, c.dv, c.causal, c.mask, c.strided, dtype_name(t)));
      const DType st = stat_dtype(t);
      Pair q, k, v;
      if (c.strided) {
        // One [B, T, H + 2·Hkv, D] buffer, sliced along heads (D == Dv here).
        Pair qkv = random_pair(g, {c.b, c.t, c.h + 2 * c.hkv, c.d}, t);
        q = view(qkv, [&](const Tensor& a) { return narrow(a, 2, 0, c.h); });
        k = view(qkv, [&](const Tensor& a) { return narrow(a, 2, c.h, c.hkv); });
        v = view(qkv, [&](const Tensor& a) { return narrow(a, 2, c.h + c.hkv, c.hkv); });
      } else {
        q = random_pair(g, {c.b, c.t, c.h, c.d}, t);
        k = random_pair(g, {c.b, c.s, c.hkv, c.d}, t);
        v = random_pair(g, {c.b, c.s, c.hkv, c.dv}, t);
      }
      Pair mask;
      if (c.mask) {
        // [1, H, T, S] broadcast over B, with some -inf entries.
        Tensor mh = random_host(g, {1, c.h, c.t, c.s}, st, -1, 1);
        auto mv = to_vector<double>(mh);
        for (size_t i = 0; i < mv.size(); i += 7) mv[i] = -INFINITY;
        mh = from_vector<double>(mv, mh.shape()).to(st);
        Pair m1 = on_both(mh);
        mask = view(m1, [&](const Tensor& a) { return expand(a, {c.b, c.h, c.t, c.s}); });
      }
      const AttentionArgs args{.scale = 0.0, .causal = c.causal};
      Pair out = poisoned_pair({c.b, c.t, c.h, c.dv}, t), lse = poisoned_pair({c.b, c.h, c.t}, st);
      cpu_be().attention_forward(q.cpu, k.cpu, v.cpu, mask.cpu, args, out.cpu, lse.cpu);
      gpu_be().attention_forward(q.gpu, k.gpu, v.gpu, mask.gpu, args, out.gpu, lse.gpu);
      EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t)));
      EXPECT_TRUE(close(lse.gpu, lse.cpu, t == DType::F64 ? 1e-12 : 1e-5));

      Pair dout = random_pair(g, {c.b, c.t, c.h, c.dv}, t);
      Pair dq = poisoned_pair(q.cpu.shape(), t), dk = poisoned_pair(k.cpu.shape(), t),
           dv = poisoned_pair(v.cpu.shape(), t);
      // The same forward results on both sides.
      Tensor out_g = out.cpu.to(gpu()), lse_g = lse.cpu.to(gpu());
      cpu_be().attention_backward(q.cpu, k.cpu, v.cpu, mask.cpu, out.cpu, lse.cpu, dout.cpu, args, dq.cpu, dk.cpu,
                                  dv.cpu);
      gpu_be().attention_backward(q.gpu, k.gpu, v.gpu, mask.gpu, out_g, lse_g, dout.gpu, args, dq.gpu, dk.gpu,
                                  dv.gpu);
      const double tb = t == DType::F64 ? 1e-11 : (t == DType::F32 ? 1e-5 : tol_for(t));
      EXPECT_TRUE(close(dq.gpu, dq.cpu, tb));
      EXPECT_TRUE(close(dk.gpu, dk.cpu, tb));
      EXPECT_TRUE(close(dv.gpu, dv.cpu, tb));
      // Determinism.
      Pair dq2 = poisoned_pair(q.cpu.shape(), t), dk2 = poisoned_pair(k.cpu.shape(), t),
           dv2 = poisoned_pair(v.cpu.shape(), t);
      gpu_be().attention_backward(q.gpu, k.gpu, v.gpu, mask.gpu, out_g, lse_g, dout.gpu, args, dq2.gpu, dk2.gpu,
                                  dv2.gpu);
      EXPECT_TRUE(bit_equal(dq2.gpu, dq.gpu));
      EXPECT_TRUE(bit_equal(dk2.gpu, dk.gpu));
      EXPECT_TRUE(bit_equal(dv2.gpu, dv.gpu));
    }
  }
}

}  // namespace
}  // namespace lmforge
