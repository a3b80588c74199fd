// Attention forward and backward on the GPU: milliseconds and TFLOP/s for causal bf16 attention
// at T = 2048 (B = 4, H = 16, head dim 64 and 128), the shapes of docs/BENCHMARKS.md "## CUDA";
// with --models also at the attention shapes of the two benchmark models' training steps
// (gpt2-124m: B 64, T 1024, H 12; llama-336m: B 16, T 2048, H 16; head dim 64).
//
//   bench_cuda_attention [--iters N] [--models]
//
// FLOPs as FlashAttention counts them: forward 4·B·H·T²·D, halved for causal; backward 2.5×
// forward (forward+backward: the sum of the two times, 3.5× forward). Timing: the stream is
// synchronised around N back-to-back calls after a warm-up.
#include <cstdio>
#include <exception>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "bench_timing.h"
#include "ops/ops.h"

using namespace lmforge;
using bench::time_ms;

int main(int argc, char** argv) {
  const int iters = bench::iters_flag(argc, argv, 10);
  try {
    const Device dev = Device::cuda(0);
    Backend& be = backend_for(dev);
    Generator gen(1);
    bool models = false;
    for (int i = 1; i < argc; ++i) models = models || std::string(argv[i]) == "--models";
    struct Shape {
      const char* name;
      int64_t B, T, H, D;
    };
    std::vector<Shape> shapes{{"", 4, 2048, 16, 64}, {"", 4, 2048, 16, 128}};
    if (models) shapes.insert(shapes.end(), {{"gpt2-124m ", 64, 1024, 12, 64}, {"llama-336m ", 16, 2048, 16, 64}});
    std::printf("| head dim | pass | ms | TFLOP/s |\n|---|---|---|---|\n");
    for (const auto& [name, B, T, H, D] : shapes) {
      Tensor q = randn({B, T, H, D}, gen, DType::BF16, dev), k = randn({B, T, H, D}, gen, DType::BF16, dev);
      Tensor v = randn({B, T, H, D}, gen, DType::BF16, dev), dout = randn({B, T, H, D}, gen, DType::BF16, dev);
      Tensor out = Tensor::empty({B, T, H, D}, DType::BF16, dev), lse = Tensor::empty({B, H, T}, DType::F32, dev);
      Tensor dq = empty_like(q), dk = empty_like(k), dv = empty_like(v);
      const AttentionArgs args{.scale = 0.0, .causal = true};
      const double fwd_flops = 4.0 * B * H * double(T) * T * D / 2;
      const double f = time_ms(be, iters, [&] { be.attention_forward(q, k, v, Tensor(), args, out, lse); });
      const double b = time_ms(be, iters, [&] {
        be.attention_backward(q, k, v, Tensor(), out, lse, dout, args, dq, dk, dv);
      });
      std::printf("| %s%lld | forward | %.3f | %.1f |\n", name, (long long)D, f, fwd_flops / (f * 1e9));
      std::printf("| %s%lld | backward | %.3f | %.1f |\n", name, (long long)D, b, 2.5 * fwd_flops / (b * 1e9));
      std::printf("| %s%lld | forward+backward | %.3f | %.1f |\n", name, (long long)D, f + b,
                  3.5 * fwd_flops / ((f + b) * 1e9));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_attention: %s\n", e.what());
    return 1;
  }
  return 0;
}
