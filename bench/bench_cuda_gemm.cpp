// bf16 GEMMs of the training benchmarks' linear layers on the GPU, as the model runs them:
// forward y = x·Wᵀ (linear), input gradient dx = dy·W and weight gradient dW = dyᵀ·x (matmul on
// views), for every projection of the gpt2 (rows 64·1024) and llama (rows 16·2048) shapes of
// bench_train_gpu; for gpt2 also the forward with the bias (and tanh-GELU) in the epilogue. Prints ms and TFLOP/s per GEMM; bench/torch_gemm_shapes.py runs the same
// products through PyTorch for the side-by-side numbers.
//
//   bench_cuda_gemm [--iters N]
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>
#include <vector>

#include "backend/backend.h"
#include "bench_timing.h"
#include "ops/ops.h"

using namespace lmforge;
using bench::time_ms;

namespace {

struct Shape3 {
  const char* model;
  const char* layer;
  int64_t rows, in, out;
};

constexpr Shape3 kShapes[] = {
    {"gpt2", "qkv", 65536, 768, 2304},     {"gpt2", "o_proj", 65536, 768, 768},
    {"gpt2", "up", 65536, 768, 3072},      {"gpt2", "down", 65536, 3072, 768},
    {"gpt2", "lm_head", 65536, 768, 50304}, {"llama", "qkv", 32768, 1024, 1536},
    {"llama", "o_proj", 32768, 1024, 1024}, {"llama", "gate|up", 32768, 1024, 2816},
    {"llama", "down", 32768, 2816, 1024},  {"llama", "lm_head", 32768, 1024, 32000},
};

}  // namespace

int main(int argc, char** argv) {
  const int iters = bench::iters_flag(argc, argv, 20);
  try {
    const Device dev = Device::cuda(0);
    Backend& be = backend_for(dev);
    Generator gen(5);
    NoGradGuard no_grad;
    std::printf("| model | layer | rows x in -> out | pass | ms | TFLOP/s |\n|---|---|---|---|---|---|\n");
    for (const Shape3& s : kShapes) {
      const Tensor x = randn({s.rows, s.in}, gen, DType::BF16, dev), w = randn({s.out, s.in}, gen, DType::BF16, dev);
      const Tensor dy = randn({s.rows, s.out}, gen, DType::BF16, dev);
      const double flops = 2.0 * double(s.rows) * double(s.in) * double(s.out);
      const double f = time_ms(be, iters, [&] { linear(x, w); });
      const double d = time_ms(be, iters, [&] { matmul(dy, w); });
      const double g = time_ms(be, iters, [&] { matmul(transpose(dy, 0, 1), x); });
      std::vector<std::pair<const char*, double>> passes{{"forward", f}, {"input grad", d}, {"weight grad", g}};
      if (std::strcmp(s.model, "gpt2") == 0) {
        const Tensor b = randn({s.out}, gen, DType::BF16, dev);
        passes.push_back({"forward + bias", time_ms(be, iters, [&] { linear(x, w, b); })});
        if (std::strcmp(s.layer, "up") == 0)
          passes.push_back({"forward + bias + gelu", time_ms(be, iters, [&] { linear_gelu(x, w, b); })});
      }
      for (auto [pass, ms] : passes)
        std::printf("| %s | %s | %lld x %lld -> %lld | %s | %.3f | %.1f |\n", s.model, s.layer, (long long)s.rows,
                    (long long)s.in, (long long)s.out, pass, ms, flops / (ms * 1e9));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_gemm: %s\n", e.what());
    return 1;
  }
  return 0;
}
