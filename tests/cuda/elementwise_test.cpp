// unary, binary (broadcast and strided operands, in place) and where against the CPU twins.
#include "cuda_test_util.h"

namespace lmforge {
namespace {
using namespace cuda_test;

const std::vector<DType> kArith{DType::F64, DType::F32, DType::BF16, DType::F16, DType::F8E4M3, DType::F8E5M2,
                                DType::I32, DType::I64};

// Integer results are computed in double on both sides; transcendental functions then differ in
// the last bits, which a truncation to an integer can turn into 1. Compare with a tolerance.
double tol_arith(DType t) { return is_integral(t) ? 1e-6 : tol_for(t); }

TEST(CudaElementwise, UnaryEveryOpEveryDtype) {
  LF_REQUIRE_GPU();
  Generator g(31);
  for (int op_i = 0; op_i <= int(UnaryOp::Clamp); ++op_i) {
    const UnaryOp op = UnaryOp(op_i);
    for (DType t : kArith) {
      SCOPED_TRACE(fmt::format("op {} dtype {}", op_i, dtype_name(t)));
      const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt ||
                            op == UnaryOp::PowScalar;
      const double lo = positive ? 0.1 : -4, hi = 4;
      const double alpha = op == UnaryOp::Clamp ? -1.0 : (op == UnaryOp::PowScalar ? 1.5 : 2.0);
      const double beta = op == UnaryOp::Clamp ? 1.5 : -1.0;
      if (is_integral(t) && op != UnaryOp::Neg && op != UnaryOp::Abs && op != UnaryOp::Square &&
          op != UnaryOp::Relu && op != UnaryOp::Affine && op != UnaryOp::Clamp)
        continue;  // truncation makes these ill-conditioned for integers
      Pair x = random_pair(g, {37, 29}, t, lo, hi * (is_integral(t) ? 25 : 1));
      // Contiguous.
      Pair out = poisoned_pair(x.cpu.shape(), t);
      cpu_be().unary(op, x.cpu, out.cpu, alpha, beta);
      gpu_be().unary(op, x.gpu, out.gpu, alpha, beta);
      EXPECT_TRUE(close(out.gpu, out.cpu, tol_arith(t)));
      // Transposed input into a strided output.
      Pair xt = view(x, [](const Tensor& a) { return transpose(a, 0, 1); });
      Pair ob = poisoned_pair({29, 74}, t);
      Pair ov = view(ob, [](const Tensor& a) { return slice(a, 1, 0, 74, 2); });
      cpu_be().unary(op, xt.cpu, ov.cpu, alpha, beta);
      gpu_be().unary(op, xt.gpu, ov.gpu, alpha, beta);
      EXPECT_TRUE(close(ob.gpu, ob.cpu, tol_arith(t)));
    }
  }
}

TEST(CudaElementwise, UnaryKeepsNanAndInf) {
  LF_REQUIRE_GPU();
  Tensor h = from_vector<double>({std::nan(""), INFINITY, -INFINITY, 0.0, -0.0, 1.0}, {6});
  Pair x = on_both(h.to(DType::F32));
  for (UnaryOp op : {UnaryOp::Exp, UnaryOp::Tanh, UnaryOp::Sigmoid, UnaryOp::Relu, UnaryOp::Clamp, UnaryOp::Abs}) {
    Pair out = poisoned_pair({6}, DType::F32);
    cpu_be().unary(op, x.cpu, out.cpu, -1.0, 1.0);
    gpu_be().unary(op, x.gpu, out.gpu, -1.0, 1.0);
    EXPECT_TRUE(close(out.gpu, out.cpu, 1e-6)) << int(op);
  }
}

TEST(CudaElementwise, BinaryEveryOpWithBroadcasting) {
  LF_REQUIRE_GPU();
  Generator g(32);
  for (int op_i = 0; op_i <= int(BinaryOp::ReluBackward); ++op_i) {
    const BinaryOp op = BinaryOp(op_i);
    const bool cmp = op >= BinaryOp::Eq && op <= BinaryOp::Ge;
    for (DType t : kArith) {
      SCOPED_TRACE(fmt::format("op {} dtype {}", op_i, dtype_name(t)));
      if (is_integral(t) && (op == BinaryOp::Pow || op > BinaryOp::Ge)) continue;
      const double lo = op == BinaryOp::Pow ? 0.2 : -3, hi = 3;
      const double scale = is_integral(t) ? 10 : 1;
      Pair a = random_pair(g, {5, 1, 31}, t, lo * scale, hi * scale);
      Pair b = random_pair(g, {6, 1}, t, (op == BinaryOp::Div ? 0.5 : lo) * scale, hi * scale);
      if (cmp) {
        // Make some elements equal so Eq / Le / Ge see ties.
        b = view(a, [](const Tensor& x) { return narrow(x, 0, 0, 1); });
      }
      const Shape shape = cmp ? Shape{5, 1, 31} : Shape{5, 6, 31};
      Pair ab = view(a, [&](const Tensor& x) { return expand(x, shape); });
      Pair bb = view(b, [&](const Tensor& x) { return expand(x, shape); });
      const DType ot = cmp ? DType::Bool : t;
      Pair out = poisoned_pair(shape, ot);
      cpu_be().binary(op, ab.cpu, bb.cpu, out.cpu);
      gpu_be().binary(op, ab.gpu, bb.gpu, out.gpu);
      if (cmp) EXPECT_TRUE(bit_equal(out.gpu, out.cpu));
      else EXPECT_TRUE(close(out.gpu, out.cpu, tol_arith(t)));
    }
  }
}

TEST(CudaElementwise, BinaryInPlace) {
  LF_REQUIRE_GPU();
  Generator g(33);
  Pair a = random_pair(g, {300, 70}, DType::BF16);
  Pair b = random_pair(g, {300, 70}, DType::BF16);
  cpu_be().binary(BinaryOp::Add, a.cpu, b.cpu, a.cpu);
  gpu_be().binary(BinaryOp::Add, a.gpu, b.gpu, a.gpu);
  EXPECT_TRUE(bit_equal(a.gpu, a.cpu));  // one f32 add, rounded once: exact on both
}

TEST(CudaElementwise, WhereWithBroadcastCondition) {
  LF_REQUIRE_GPU();
  Generator g(34);
  for (DType t : {DType::F32, DType::BF16, DType::I64, DType::F64, DType::U8}) {
    Pair cond = on_both(bernoulli({4, 1, 9}, 0.5, g));
    Pair a = random_pair(g, {4, 7, 9}, t, -50, 50);
    Pair b = random_pair(g, {1, 9}, t, -50, 50);
    Pair cb = view(cond, [](const Tensor& x) { return expand(x, {4, 7, 9}); });
    Pair bb = view(b, [](const Tensor& x) { return expand(x, {4, 7, 9}); });
    Pair out = poisoned_pair({4, 7, 9}, t);
    cpu_be().where(cb.cpu, a.cpu, bb.cpu, out.cpu);
    gpu_be().where(cb.gpu, a.gpu, bb.gpu, out.gpu);
    EXPECT_TRUE(bit_equal(out.gpu, out.cpu)) << dtype_name(t);
  }
}

// The vector path (f32 / bf16 / f16, 16-byte aligned operands walking whole vectors) against the
// CPU and against the element-at-a-time path on the same values: each operand is also placed one
// element off its allocation's alignment, which takes the strided kernel. Both paths evaluate the
// same expression, so they agree bit for bit for every op; ops without a transcendental function
// are exact, so they also match the CPU bit for bit. Sizes: whole vectors, whole vectors plus a
// tail, only a tail.
bool exact_unary(UnaryOp op) {
  return op == UnaryOp::Neg || op == UnaryOp::Abs || op == UnaryOp::Square || op == UnaryOp::Relu ||
         op == UnaryOp::Sqrt || op == UnaryOp::Clamp;
}
bool exact_binary(BinaryOp op) {
  return op == BinaryOp::Add || op == BinaryOp::Sub || op == BinaryOp::Mul || op == BinaryOp::Div ||
         op == BinaryOp::Maximum || op == BinaryOp::Minimum || op == BinaryOp::ReluBackward;
}

// The same values at element 0 (aligned) and element 1 (misaligned) of two buffers.
struct Placed {
  Pair aligned, misaligned;
};
Placed place(const Tensor& host) {
  const int64_t n = host.numel();
  Tensor b0 = Tensor::empty({n + 1}, host.dtype(), Device::cpu()), b1 = Tensor::empty({n + 1}, host.dtype(), Device::cpu());
  cpu_be().copy(host, narrow(b0, 0, 0, n));
  cpu_be().copy(host, narrow(b1, 0, 1, n));
  return {view(on_both(b0), [&](const Tensor& x) { return narrow(x, 0, 0, n); }),
          view(on_both(b1), [&](const Tensor& x) { return narrow(x, 0, 1, n); })};
}
Placed placed_poison(int64_t n, DType t) {
  Pair b0 = poisoned_pair({n + 1}, t), b1 = poisoned_pair({n + 1}, t);
  return {view(b0, [&](const Tensor& x) { return narrow(x, 0, 0, n); }),
          view(b1, [&](const Tensor& x) { return narrow(x, 0, 1, n); })};
}

TEST(CudaElementwise, VectorPathMatchesCpuAndStridedPath) {
  LF_REQUIRE_GPU();
  Generator g(36);
  for (DType t : {DType::F32, DType::BF16, DType::F16}) {
    for (int64_t n : {int64_t(4096), int64_t(4096 + 5), int64_t(3)}) {
      for (int op_i = 0; op_i <= int(UnaryOp::Clamp); ++op_i) {
        const UnaryOp op = UnaryOp(op_i);
        SCOPED_TRACE(fmt::format("unary {} {} n {}", op_i, dtype_name(t), n));
        const bool positive = op == UnaryOp::Log || op == UnaryOp::Sqrt || op == UnaryOp::Rsqrt ||
                              op == UnaryOp::PowScalar;
        const double alpha = op == UnaryOp::Clamp ? -1.0 : (op == UnaryOp::PowScalar ? 1.5 : 2.0);
        const double beta = op == UnaryOp::Clamp ? 1.5 : -1.0;
        Placed x = place(random_host(g, {n}, t, positive ? 0.1 : -4, 4));
        Placed out = placed_poison(n, t);
        cpu_be().unary(op, x.aligned.cpu, out.aligned.cpu, alpha, beta);
        gpu_be().unary(op, x.aligned.gpu, out.aligned.gpu, alpha, beta);
        gpu_be().unary(op, x.misaligned.gpu, out.misaligned.gpu, alpha, beta);
        EXPECT_TRUE(bit_equal(out.aligned.gpu, out.misaligned.gpu));
        if (exact_unary(op)) EXPECT_TRUE(bit_equal(out.aligned.gpu, out.aligned.cpu));
        else EXPECT_TRUE(close(out.aligned.gpu, out.aligned.cpu, tol_for(t)));
      }
      for (int op_i = 0; op_i <= int(BinaryOp::ReluBackward); ++op_i) {
        const BinaryOp op = BinaryOp(op_i);
        if (op >= BinaryOp::Eq && op <= BinaryOp::Ge) continue;  // bool output: strided path only
        SCOPED_TRACE(fmt::format("binary {} {} n {}", op_i, dtype_name(t), n));
        Placed a = place(random_host(g, {n}, t, op == BinaryOp::Pow ? 0.2 : -3, 3));
        Placed b = place(random_host(g, {n}, t, op == BinaryOp::Div ? 0.5 : -3, 3));
        Placed out = placed_poison(n, t);
        cpu_be().binary(op, a.aligned.cpu, b.aligned.cpu, out.aligned.cpu);
        gpu_be().binary(op, a.aligned.gpu, b.aligned.gpu, out.aligned.gpu);
        gpu_be().binary(op, a.misaligned.gpu, b.misaligned.gpu, out.misaligned.gpu);
        EXPECT_TRUE(bit_equal(out.aligned.gpu, out.misaligned.gpu));
        if (exact_binary(op)) EXPECT_TRUE(bit_equal(out.aligned.gpu, out.aligned.cpu));
        else EXPECT_TRUE(close(out.aligned.gpu, out.aligned.cpu, tol_for(t)));
      }
    }
  }
}

// Rows of whole vectors: a bias broadcast along rows (vector path), and a row length that is not
// a multiple of the vector width (strided path).
TEST(CudaElementwise, BiasAlongRows) {
  LF_REQUIRE_GPU();
  Generator g(37);
  for (DType t : {DType::F32, DType::BF16}) {
    for (int64_t c : {int64_t(768), int64_t(7)}) {
      SCOPED_TRACE(fmt::format("{} c {}", dtype_name(t), c));
      Pair x = random_pair(g, {65, c}, t);
      Pair bias = random_pair(g, {c}, t);
      Pair bb = view(bias, [&](const Tensor& v) { return expand(v, {65, c}); });
      for (BinaryOp op : {BinaryOp::Add, BinaryOp::GeluTanhBackward}) {
        Pair out = poisoned_pair({65, c}, t);
        cpu_be().binary(op, x.cpu, bb.cpu, out.cpu);
        gpu_be().binary(op, x.gpu, bb.gpu, out.gpu);
        if (op == BinaryOp::Add) EXPECT_TRUE(bit_equal(out.gpu, out.cpu));
        else EXPECT_TRUE(close(out.gpu, out.cpu, tol_for(t)));
      }
    }
  }
}

// Copies: the mixed-precision casts (contiguous, with and without a tail; misaligned) and a
// same-dtype copy of a column slice (rows of whole vectors), bit for bit.
TEST(CudaElementwise, VectorCopies) {
  LF_REQUIRE_GPU();
  Generator g(38);
  const std::pair<DType, DType> casts[] = {{DType::F32, DType::BF16}, {DType::BF16, DType::F32},
                                           {DType::F32, DType::F16},  {DType::F16, DType::F32},
                                           {DType::F64, DType::F32},  {DType::F32, DType::F64}};
  for (auto [st, dt] : casts) {
    for (int64_t n : {int64_t(4096), int64_t(4096 + 3), int64_t(5)}) {
      SCOPED_TRACE(fmt::format("{} -> {} n {}", dtype_name(st), dtype_name(dt), n));
      Placed x = place(random_host(g, {n}, st, -1e3, 1e3));
      Placed out = placed_poison(n, dt);
      cpu_be().copy(x.aligned.cpu, out.aligned.cpu);
      gpu_be().copy(x.aligned.gpu, out.aligned.gpu);
      gpu_be().copy(x.misaligned.gpu, out.misaligned.gpu);
      EXPECT_TRUE(bit_equal(out.aligned.gpu, out.aligned.cpu));
      EXPECT_TRUE(bit_equal(out.misaligned.gpu, out.aligned.cpu));
    }
  }
  for (DType t : {DType::BF16, DType::F32}) {
    Pair qkv = random_pair(g, {33, 3 * 64}, t);
    Pair k = view(qkv, [](const Tensor& x) { return narrow(x, 1, 64, 64); });
    Pair out = poisoned_pair({33, 64}, t);
    cpu_be().copy(k.cpu, out.cpu);
    gpu_be().copy(k.gpu, out.gpu);
    EXPECT_TRUE(bit_equal(out.gpu, out.cpu)) << dtype_name(t);
  }
}

TEST(CudaElementwise, LargeTensorsAreDeterministic) {
  LF_REQUIRE_GPU();
  Generator g(35);
  Pair a = random_pair(g, {1 << 22}, DType::F32);
  Tensor o1 = poisoned({1 << 22}, DType::F32, gpu()), o2 = poisoned({1 << 22}, DType::F32, gpu());
  gpu_be().unary(UnaryOp::GeluTanh, a.gpu, o1);
  gpu_be().unary(UnaryOp::GeluTanh, a.gpu, o2);
  EXPECT_TRUE(bit_equal(o1, o2));
  Tensor ref = poisoned({1 << 22}, DType::F32, Device::cpu());
  cpu_be().unary(UnaryOp::GeluTanh, a.cpu, ref);
  EXPECT_TRUE(close(o1, ref, 1e-6));
}

}  // namespace
}  // namespace lmforge
