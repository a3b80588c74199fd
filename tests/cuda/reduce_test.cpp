// reduce, argmax, cumsum, softmax (forward / backward), logsumexp, topk and sort.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

struct Dims {
  int64_t outer, r, inner;
};
// Row reductions, column reductions, a long split reduction, one output of a huge reduction,
// few columns with a long r (split), and size-0 / size-1 extents.
const Dims kDims[] = {{37, 129, 1},  {3, 200000, 1}, {1, 3000001, 1}, {5, 77, 33}, {1, 70000, 3},
                      {2, 5, 1000},  {4, 0, 3},      {1, 1, 1},       {0, 5, 2}};

TEST(CudaReduce, EveryOpMatchesTheCpu) {
  LF_REQUIRE_GPU();
  Generator g(41);
  for (const Dims& d : kDims) {
    for (DType t : {DType::F32, DType::BF16, DType::F64, DType::I32, DType::F16, DType::U8}) {
      if (t == DType::U8 && d.r > 1000) continue;  // f32 sums of large integers: order-dependent rounding
      Pair x = random_pair(g, {d.outer, d.r, d.inner}, t, is_integral(t) ? 0 : -1, is_integral(t) ? 100 : 1);
      for (ReduceOp op : {ReduceOp::Sum, ReduceOp::SumSquares, ReduceOp::Max, ReduceOp::Min}) {
        for (DType ot : {stat_dtype(t), t}) {
          SCOPED_TRACE(fmt::format("[{},{},{}] {} op {} out {}", d.outer, d.r, d.inner, dtype_name(t), int(op),
                                   dtype_name(ot)));
          Pair out = poisoned_pair({d.outer, d.inner}, ot);
          cpu_be().reduce(op, x.cpu, out.cpu, d.outer, d.r, d.inner);
          gpu_be().reduce(op, x.gpu, out.gpu, d.outer, d.r, d.inner);
          if (ot == DType::F32 && is_floating(t)) {
            Tensor ref64 = poisoned({d.outer, d.inner}, DType::F64, Device::cpu());
            cpu_be().reduce(op, x.cpu.to(DType::F64), ref64, d.outer, d.r, d.inner);
            EXPECT_TRUE(close_or_exact(out.gpu, out.cpu, ref64, tol_for(ot)));
          } else {
            EXPECT_TRUE(close(out.gpu, out.cpu, is_integral(ot) ? 1e-9 : tol_for(ot)));
          }
        }
      }
    }
  }
}

TEST(CudaReduce, SumIsDeterministic) {
  LF_REQUIRE_GPU();
  Generator g(42);
  Pair x = random_pair(g, {1, 5000000, 1}, DType::F32);
  Tensor a = poisoned({1, 1}, DType::F32, gpu()), b = poisoned({1, 1}, DType::F32, gpu());
  gpu_be().reduce(ReduceOp::Sum, x.gpu, a, 1, 5000000, 1);
  gpu_be().reduce(ReduceOp::Sum, x.gpu, b, 1, 5000000, 1);
  EXPECT_TRUE(bit_equal(a, b));
  Pair y = random_pair(g, {1, 20000, 768}, DType::BF16);
  Tensor c = poisoned({1, 768}, DType::F32, gpu()), e = poisoned({1, 768}, DType::F32, gpu());
  gpu_be().reduce(ReduceOp::Sum, y.gpu, c, 1, 20000, 768);
  gpu_be().reduce(ReduceOp::Sum, y.gpu, e, 1, 20000, 768);
  EXPECT_TRUE(bit_equal(c, e));
}

TEST(CudaReduce, MaxPropagatesNan) {
  LF_REQUIRE_GPU();
  Tensor h = from_vector<float>({1, 2, NAN, 3, -1, -2, -3, -4}, {2, 4});
  Pair x = on_both(h);
  for (ReduceOp op : {ReduceOp::Max, ReduceOp::Min, ReduceOp::Sum}) {
    Pair out = poisoned_pair({2, 1}, DType::F32);
    cpu_be().reduce(op, x.cpu, out.cpu, 2, 4, 1);
    gpu_be().reduce(op, x.gpu, out.gpu, 2, 4, 1);
    EXPECT_TRUE(close(out.gpu, out.cpu, 0));
  }
}

TEST(CudaReduce, ArgmaxFirstMaximumAndNan) {
  LF_REQUIRE_GPU();
  Generator g(43);
  for (const Dims& d : {Dims{17, 5000, 1}, Dims{3, 300, 40}, Dims{2, 100000, 1}}) {
    for (DType t : {DType::F32, DType::BF16, DType::F8E4M3, DType::F64}) {
      // Coarse values so ties are common: the first maximum must win.
      Pair x = on_both(random_host(g, {d.outer, d.r, d.inner}, DType::F64, -4, 4).to(DType::F8E4M3).to(t));
      Pair out = poisoned_pair({d.outer, d.inner}, DType::I64);
      cpu_be().argmax(x.cpu, out.cpu, d.outer, d.r, d.inner);
      gpu_be().argmax(x.gpu, out.gpu, d.outer, d.r, d.inner);
      EXPECT_TRUE(bit_equal(out.gpu, out.cpu)) << dtype_name(t);
    }
  }
  Pair x = on_both(from_vector<float>({1, NAN, 5, NAN, 7, 7, 2, 1}, {2, 4}));
  Pair out = poisoned_pair({2, 1}, DType::I64);
  cpu_be().argmax(x.cpu, out.cpu, 2, 4, 1);
  gpu_be().argmax(x.gpu, out.gpu, 2, 4, 1);
  EXPECT_TRUE(bit_equal(out.gpu, out.cpu));
}

TEST(CudaReduce, Cumsum) {
  LF_REQUIRE_GPU();
  Generator g(44);
  for (auto [rows, n] : {std::pair<int64_t, int64_t>{33, 100}, {2, 50000}, {1000, 7}, {1, 1}}) {
    for (DType t : {DType::F32, DType::F64, DType::I64, DType::BF16}) {
      Pair x = random_pair(g, {rows, n}, t, is_integral(t) ? -100 : -1, is_integral(t) ? 100 : 1);
      Pair out = poisoned_pair({rows, n}, t);
      cpu_be().cumsum_last(x.cpu, out.cpu);
      gpu_be().cumsum_last(x.gpu, out.gpu);
      const double tol = t == DType::F32 ? 1e-5 : (t == DType::BF16 ? 3e-2 : 1e-12);
      EXPECT_TRUE(close(out.gpu, out.cpu, tol)) << rows << "x" << n << " " << dtype_name(t);
    }
  }
}

TEST(CudaReduce, SoftmaxForwardBackwardLogsumexp) {
  LF_REQUIRE_GPU();
  Generator g(45);
  for (auto [rows, n] : {std::pair<int64_t, int64_t>{64, 1000}, {3, 50257}, {5000, 17}, {2, 1}}) {
    for (DType t : float_dtypes()) {
      for (bool log : {false, true}) {
        SCOPED_TRACE(fmt::format("{}x{} {} log {}", rows, n, dtype_name(t), log));
        Pair x = random_pair(g, {rows, n}, t, -5, 5);
        Pair y = poisoned_pair({rows, n}, t);
        cpu_be().softmax_forward(x.cpu, y.cpu, log);
        gpu_be().softmax_forward(x.gpu, y.gpu, log);
        Tensor y64 = poisoned({rows, n}, DType::F64, Device::cpu());
        cpu_be().softmax_forward(x.cpu.to(DType::F64), y64, log);
        EXPECT_TRUE(close_or_exact(y.gpu, y.cpu, y64, tol_for(t)));
        Pair dy = random_pair(g, {rows, n}, t);
        Pair dx = poisoned_pair({rows, n}, t);
        cpu_be().softmax_backward(y.cpu, dy.cpu, dx.cpu, log);
        gpu_be().softmax_backward(y.cpu.to(gpu()), dy.gpu, dx.gpu, log);  // same y on both
        EXPECT_TRUE(close(dx.gpu, dx.cpu, is_low_precision(t) ? 3 * tol_for(t) : tol_for(t)));
      }
      Pair x = random_pair(g, {rows, n}, t, -5, 5);
      Pair out = poisoned_pair({rows}, t);
      cpu_be().logsumexp_last(x.cpu, out.cpu);
      gpu_be().logsumexp_last(x.gpu, out.gpu);
      EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t)));
    }
  }
  // Fully masked rows.
  Pair x = on_both(full({2, 8}, -INFINITY, DType::F32));
  Pair y = poisoned_pair({2, 8}, DType::F32), l = poisoned_pair({2}, DType::F32);
  cpu_be().softmax_forward(x.cpu, y.cpu, false);
  gpu_be().softmax_forward(x.gpu, y.gpu, false);
  EXPECT_TRUE(close(y.gpu, y.cpu, 0));
  cpu_be().logsumexp_last(x.cpu, l.cpu);
  gpu_be().logsumexp_last(x.gpu, l.gpu);
  EXPECT_TRUE(close(l.gpu, l.cpu, 0));
}

TEST(CudaReduce, TopkAndSortTiesLowerIndexFirst) {
  LF_REQUIRE_GPU();
  Generator g(46);
  for (auto [rows, n] : {std::pair<int64_t, int64_t>{50, 64}, {7, 1000}, {3, 20000}, {2, 50257}, {9, 1}}) {
    for (DType t : {DType::F32, DType::BF16, DType::I64, DType::F64, DType::F8E5M2}) {
      // Few distinct values (so ties everywhere), plus NaN and -0 / +0 in float rows.
      Tensor h = random_host(g, {rows, n}, DType::F64, -3, 3).to(DType::F8E5M2).to(DType::F64);
      if (is_floating(t) && n > 4) {
        auto v = to_vector<double>(h);
        v[1] = std::nan("");
        v[2] = -0.0;
        v[3] = 0.0;
        if (rows > 1) v[n + 2] = std::nan("");
        h = from_vector<double>(v, {rows, n});
      }
      Pair x = on_both(h.to(t));
      for (bool desc : {false, true}) {
        SCOPED_TRACE(fmt::format("{}x{} {} desc {}", rows, n, dtype_name(t), desc));
        Pair v = poisoned_pair({rows, n}, t), i = poisoned_pair({rows, n}, DType::I64);
        cpu_be().sort_last(x.cpu, desc, v.cpu, i.cpu);
        gpu_be().sort_last(x.gpu, desc, v.gpu, i.gpu);
        EXPECT_TRUE(bit_equal(i.gpu, i.cpu));
        EXPECT_TRUE(bit_equal(v.gpu, v.cpu));
        const int64_t k = std::min<int64_t>(n, 5);
        Pair tv = poisoned_pair({rows, k}, t), ti = poisoned_pair({rows, k}, DType::I64);
        cpu_be().topk_last(x.cpu, k, desc, tv.cpu, ti.cpu);
        gpu_be().topk_last(x.gpu, k, desc, tv.gpu, ti.gpu);
        EXPECT_TRUE(bit_equal(ti.gpu, ti.cpu));
        EXPECT_TRUE(bit_equal(tv.gpu, tv.cpu));
      }
    }
  }
}

}  // namespace
}  // namespace lmforge
