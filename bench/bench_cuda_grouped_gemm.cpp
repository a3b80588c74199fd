// The expert GEMMs of a Mixture-of-Experts layer on the GPU (Backend::grouped_gemm, one launch,
// segment bounds read on the device) against the two ways to do the same work without it:
//   * one cuBLAS GEMM over all M rows with one weight matrix: the same FLOPs with no grouping,
//     the speed to aim for;
//   * one cuBLAS GEMM per expert on views of the rows, the bounds read on the host first (what a
//     MoE layer costs without a grouped kernel; the read waits for the GPU).
// Shapes: 16k tokens × top-2 = 32768 rows over E experts, d_model 1024, d_ff per expert 2816 (8
// experts) or 704 (32 fine-grained experts), the expert sizes balanced or skewed (the largest 4×
// the smallest). Passes: up (x·Wᵀ, 1024 → d_ff), down (d_ff → 1024), the input gradient of up
// (dy·W) and its weight gradient (dyᵀ·x per expert). bf16, f32 accumulation.
//
//   bench_cuda_grouped_gemm [--iters N]
#include <cstdio>
#include <exception>
#include <functional>
#include <vector>

#include "backend/backend.h"
#include "bench_timing.h"
#include "ops/ops.h"

using namespace lmforge;
using bench::time_ms;

namespace {

struct MoeShape {
  const char* name;
  int64_t experts, d_model, d_ff;
  bool skewed;
};

constexpr int64_t kRows = 32768;
constexpr MoeShape kShapes[] = {
    {"8 experts, balanced", 8, 1024, 2816, false},
    {"8 experts, skewed", 8, 1024, 2816, true},
    {"32 experts, balanced", 32, 1024, 704, false},
    {"32 experts, skewed", 32, 1024, 704, true},
};

// Segment ends of `rows` rows over `experts`: equal, or sizes rising linearly from 1 to 4 parts.
std::vector<int64_t> segment_ends(int64_t rows, int64_t experts, bool skewed) {
  std::vector<double> weight(size_t(experts), 1.0);
  if (skewed)
    for (int64_t e = 0; e < experts; ++e) weight[size_t(e)] = 1.0 + 3.0 * double(e) / double(experts - 1);
  double total = 0;
  for (double w : weight) total += w;
  std::vector<int64_t> ends;
  double at = 0;
  for (int64_t e = 0; e < experts; ++e) {
    at += weight[size_t(e)];
    ends.push_back(e + 1 == experts ? rows : int64_t(double(rows) * at / total));
  }
  return ends;
}

// out[rows of segment e] = a[rows of e] · op(w[e]) with one matmul per segment, the ends read on the host.
void per_expert_loop(const Tensor& a, const Tensor& w, const Tensor& ends_dev, bool trans_b, const Tensor& out) {
  const std::vector<int64_t> ends = to_vector<int64_t>(ends_dev);  // waits for the GPU
  int64_t start = 0;
  for (size_t e = 0; e < ends.size(); ++e) {
    const int64_t n = ends[e] - start;
    if (n > 0) {
      const Tensor we = select(w, 0, int64_t(e));
      Tensor dst = narrow(out, 0, start, n);
      copy_(dst, matmul(narrow(a, 0, start, n), trans_b ? transpose(we, 0, 1) : we));
    }
    start = ends[e];
  }
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = bench::iters_flag(argc, argv, 20);
  try {
    const Device dev = Device::cuda(0);
    Backend& be = backend_for(dev);
    Generator gen(5);
    NoGradGuard no_grad;
    std::printf("| shape | pass | rows x in -> out | grouped ms | TFLOP/s | one GEMM ms | per-expert loop ms |\n"
                "|---|---|---|---|---|---|---|\n");
    for (const MoeShape& s : kShapes) {
      const int64_t e = s.experts, d = s.d_model, f = s.d_ff;
      const Tensor ends = from_vector<int64_t>(segment_ends(kRows, e, s.skewed), {e}).to(dev);
      const Tensor x = randn({kRows, d}, gen, DType::BF16, dev), h = randn({kRows, f}, gen, DType::BF16, dev);
      const Tensor w_up = randn({e, f, d}, gen, DType::BF16, dev), w_down = randn({e, d, f}, gen, DType::BF16, dev);
      const Tensor y_up = Tensor::empty({kRows, f}, DType::BF16, dev), y_down = Tensor::empty({kRows, d}, DType::BF16, dev);
      const Tensor dx = Tensor::empty({kRows, d}, DType::BF16, dev), dw = Tensor::empty({e, f, d}, DType::BF16, dev);
      const Tensor w_one_up = select(w_up, 0, 0), w_one_down = select(w_down, 0, 0);
      const double flops = 2.0 * double(kRows) * double(d) * double(f);
      struct Pass {
        const char* name;
        int64_t in, out;
        GroupedGemmArgs args;
        std::function<void()> one_gemm, loop;
      };
      const std::vector<Pass> passes{
          {"up: x·Wᵀ", d, f, {.a = x, .b = w_up, .ends = ends, .c = y_up, .trans_b = true, .weight_grad = false},
           [&] { linear(x, w_one_up); }, [&] { per_expert_loop(x, w_up, ends, true, y_up); }},
          {"down: h·Wᵀ", f, d, {.a = h, .b = w_down, .ends = ends, .c = y_down, .trans_b = true, .weight_grad = false},
           [&] { linear(h, w_one_down); }, [&] { per_expert_loop(h, w_down, ends, true, y_down); }},
          {"up input grad: dy·W", f, d, {.a = h, .b = w_up, .ends = ends, .c = dx, .trans_b = false, .weight_grad = false},
           [&] { matmul(h, w_one_up); }, [&] { per_expert_loop(h, w_up, ends, false, dx); }},
          {"up weight grad: dyᵀ·x", f, d, {.a = h, .b = x, .ends = ends, .c = dw, .trans_b = false, .weight_grad = true},
           [&] { matmul(transpose(h, 0, 1), x); }, {}},
      };
      for (const Pass& p : passes) {
        const double grouped = time_ms(be, iters, [&] { be.grouped_gemm(p.args); });
        const double one = time_ms(be, iters, p.one_gemm);
        char loop[32] = "-";
        if (p.loop) std::snprintf(loop, sizeof loop, "%.3f", time_ms(be, iters, p.loop));
        std::printf("| %s | %s | %lld x %lld -> %lld | %.3f | %.1f | %.3f | %s |\n", s.name, p.name, (long long)kRows,
                    (long long)p.in, (long long)p.out, grouped,
                    flops / (grouped * 1e9), one, loop);
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_grouped_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
