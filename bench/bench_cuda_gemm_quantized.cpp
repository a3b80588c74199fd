// Decode GEMVs against narrow weights on the GPU (Backend::gemm_quantized, W8A16): the linear
// layers of a llama-336m-like model (d_model 1024, d_ff 2816, vocab 32000; the llama rows of
// bench_cuda_gemm, gate and up each 1024 -> 2816) at M = 1 and 8 rows of bf16 activations, with
// int8 weights (one f32 scale per output channel, or per group of 128 inputs) and fp8 e4m3
// weights, side by side with the bf16 GEMM of the same shape through cuBLAS (Backend::gemm,
// what the matmul op runs).
//
// Each row prints the kernel alone (outputs preallocated, Backend calls) and the op
// (linear_quantized / linear, allocation and dispatch included), the bytes the kernel must move
// at least (weights, scales, activations in, outputs out) and the bandwidth that makes. At these
// sizes decode is memory-bound: int8 weights halve the bytes of bf16 ones, so the ratio to
// aim at is about 2x the cuBLAS time at the largest shapes.
//
//   bench_cuda_gemm_quantized [--iters N]
#include <cstdio>
#include <exception>
#include <string>

#include "backend/backend.h"
#include "bench_timing.h"
#include "infer/quantize.h"
#include "ops/ops.h"
#include "ops/quantized_matmul.h"

using namespace lmforge;
using bench::time_ms;

namespace {

struct Layer {
  const char* name;
  int64_t in, out;
};

constexpr Layer kLayers[] = {
    {"qkv", 1024, 1536},   {"o_proj", 1024, 1024}, {"gate|up", 1024, 2816},
    {"down", 2816, 1024},  {"lm_head", 1024, 32000},
};

struct Format {
  const char* name;
  infer::QuantFormat format;
  int64_t group_size;
};

constexpr Format kFormats[] = {
    {"int8 per channel", infer::QuantFormat::Int8, 0},
    {"int8 group 128", infer::QuantFormat::Int8, 128},
    {"fp8 e4m3 per channel", infer::QuantFormat::Fp8, 0},
};

void print_row(const Layer& l, int64_t m, const char* weights, double kernel_ms, double op_ms, double bytes,
               double bf16_kernel_ms) {
  std::printf("| %s | %lld | %lld -> %lld | %s | %.2f | %.2f | %.2f | %.0f | %.2fx |\n", l.name, (long long)m,
              (long long)l.in, (long long)l.out, weights, kernel_ms * 1e3, op_ms * 1e3, bytes / 1e6,
              bytes / (kernel_ms * 1e6), bf16_kernel_ms / kernel_ms);
}

}  // namespace

int main(int argc, char** argv) {
  const int iters = bench::iters_flag(argc, argv, 200);
  try {
    const Device dev = Device::cuda(0);
    Backend& be = backend_for(dev);
    Generator gen(5);
    NoGradGuard no_grad;
    std::printf(
        "| layer | M | in -> out | weights | kernel us | op us | MB moved | kernel GB/s | speed vs bf16 cuBLAS |\n"
        "|---|---|---|---|---|---|---|---|---|\n");
    for (const Layer& l : kLayers) {
      const Tensor w32 = randn({l.out, l.in}, gen, DType::F32, Device::cpu(), 0, 0.02);
      const Tensor w = w32.to(DType::BF16).to(dev);
      for (int64_t m : {1, 8}) {
        const Tensor x = randn({m, l.in}, gen, DType::BF16, dev);
        const Tensor out = Tensor::empty({m, l.out}, DType::BF16, dev);
        const double act_bytes = 2.0 * double(m) * double(l.in + l.out);
        // y = x · wᵀ: the same product linear() asks of cuBLAS.
        const GemmArgs gemm{.a = x, .b = w, .c = out, .trans_b = true, .m = m, .n = l.out, .k = l.in,
                            .lda = l.in, .ldb = l.in, .ldc = l.out};
        const double bf16_kernel = time_ms(be, iters, [&] { be.gemm(gemm); });
        const double bf16_op = time_ms(be, iters, [&] { linear(x, w); });
        print_row(l, m, "bf16 (cuBLAS)", bf16_kernel, bf16_op, 2.0 * double(l.in * l.out) + act_bytes, bf16_kernel);
        for (const Format& f : kFormats) {
          const QuantizedWeight q = infer::quantize_weight(w32, {.format = f.format, .group_size = f.group_size});
          const QuantizedWeight qd{.data = q.data.to(dev), .scale = q.scale.to(dev), .group_size = q.group_size};
          const QuantizedGemmArgs args{.x = x, .weight = qd.data, .scale = qd.scale, .out = out,
                                       .group_size = qd.group_size};
          const double kernel = time_ms(be, iters, [&] { be.gemm_quantized(args); });
          const double op = time_ms(be, iters, [&] { linear_quantized(x, qd); });
          print_row(l, m, f.name, kernel, op, double(qd.nbytes()) + act_bytes, bf16_kernel);
        }
      }
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_gemm_quantized: %s\n", e.what());
    return 1;
  }
  return 0;
}
