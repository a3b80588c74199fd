// The memory-bound kernels of a training step on the GPU, at the shapes of the gpt2-124m
// (64 × 1024, C 768) and llama-336m (16 × 2048, C 1024, F 2816) benchmarks: microseconds per call
// on the device, microseconds the host spends per call, and the bandwidth achieved on the bytes
// each call must move (inputs read once, outputs written once).
//
//   bench_cuda_memory_ops [--iters N]
//
// Device time: the stream synchronised around N back-to-back calls after a warm-up. Host time:
// the same N calls queued without waiting, divided by N (if the host is slower than the device,
// a training step is launch bound there).
#include <chrono>
#include <cstdio>
#include <exception>
#include <functional>

#include "backend/backend.h"
#include "bench_timing.h"
#include "ops/ops.h"

using namespace lmforge;
using bench::time_ms;

namespace {

struct Case {
  const char *model;
  const char *name;
  double bytes;  // moved per call
  std::function<void()> call;
};

double host_us(Backend& be, int iters, const std::function<void()>& f) {
  be.synchronize();
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < iters; ++i) f();
  const double us = std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count();
  be.synchronize();
  return us / iters;
}

}  // namespace

int main(int argc, char **argv) {
  const int iters = bench::iters_flag(argc, argv, 20);
  try {
    const Device dev = Device::cuda(0);
    Backend& be = backend_for(dev);
    Generator gen(1);
    const DType bf = DType::BF16, f32 = DType::F32;
    std::vector<Case> cases;

    // gpt2: N = 65536 rows of C = 768, MLP width 3072, f32 embeddings.
    const int64_t gn = 64 * 1024, gc = 768, gf = 3072;
    Tensor gx = randn({gn, gc}, gen, bf, dev), gdy = randn({gn, gc}, gen, bf, dev), gy = empty_like(gx);
    Tensor gdx = empty_like(gx), gw = randn({gc}, gen, f32, dev), gb = randn({gc}, gen, f32, dev);
    Tensor gmean = Tensor::empty({gn}, f32, dev), grstd = Tensor::empty({gn}, f32, dev);
    Tensor gdw = Tensor::empty({gc}, f32, dev), gdb = Tensor::empty({gc}, f32, dev);
    Tensor gh = randn({gn, gf}, gen, bf, dev), gdh = randn({gn, gf}, gen, bf, dev), gdh2 = empty_like(gh);
    Tensor tok = randn({64, 1024, gc}, gen, f32, dev), pos = randn({1024, gc}, gen, f32, dev);
    Tensor emb = Tensor::empty({64, 1024, gc}, f32, dev);
    const double a = 2.0 * gn * gc;  // bytes of one bf16 [N, C]
    cases.push_back(
        {"gpt2", "layer_norm forward", 2 * a, [&] { be.layer_norm_forward(gx, Tensor(), gw, gb, 1e-5, gy, Tensor(), gmean, grstd); }});
    cases.push_back({"gpt2", "add + layer_norm forward", 4 * a,
                     [&] { be.layer_norm_forward(gx, gdy, gw, gb, 1e-5, gy, gdx, gmean, grstd); }});
    cases.push_back({"gpt2", "layer_norm backward", 3 * a,
                     [&] { be.layer_norm_backward(gx, gw, gmean, grstd, gdy, Tensor(), gdx, gdw, gdb); }});
    cases.push_back({"gpt2", "layer_norm backward + residual gradient", 4 * a,
                     [&] { be.layer_norm_backward(gx, gw, gmean, grstd, gdy, gy, gdx, gdw, gdb); }});
    cases.push_back({"gpt2", "add [N, C]", 3 * a, [&] { be.binary(BinaryOp::Add, gx, gdy, gy); }});
    cases.push_back({"gpt2", "gelu_tanh backward [N, 4C]", 3 * 2.0 * gn * gf,
                     [&] { be.binary(BinaryOp::GeluTanhBackward, gh, gdh, gdh2); }});
    cases.push_back({"gpt2", "add f32 [B, T, C] + [T, C]", 2 * 4.0 * gn * gc, [&] {
                       be.binary(BinaryOp::Add, tok, pos.expand({64, 1024, gc}), emb);
                     }});

    // llama: N = 32768 rows of C = 1024, 16 query and 4 key/value heads of 64,
    // F = 2816.
    const int64_t ln = 16 * 2048, lc = 1024, lf = 2816;
    Tensor lx = randn({ln, lc}, gen, bf, dev), ldy = randn({ln, lc}, gen, bf, dev), ly = empty_like(lx);
    Tensor ldx = empty_like(lx), lw = randn({lc}, gen, f32, dev), lrstd = Tensor::empty({ln}, f32, dev);
    Tensor ldw = Tensor::empty({lc}, f32, dev);
    Tensor gate = randn({ln, lf}, gen, bf, dev), up = randn({ln, lf}, gen, bf, dev), act = empty_like(gate);
    Tensor dgate = empty_like(gate), dup = empty_like(gate);
    Tensor qkv = randn({16, 2048, lc + 2 * 256}, gen, bf, dev);
    Tensor q = qkv.narrow(-1, 0, lc).view({16, 2048, 16, 64}), qr = Tensor::empty({16, 2048, 16, 64}, bf, dev);
    const double b = 2.0 * ln * lc, h = 2.0 * ln * lf;
    cases.push_back({"llama", "rms_norm forward", 2 * b, [&] { be.rms_norm_forward(lx, Tensor(), lw, 1e-5, ly, Tensor(), lrstd); }});
    cases.push_back({"llama", "add + rms_norm forward", 4 * b,
                     [&] { be.rms_norm_forward(lx, ldy, lw, 1e-5, ly, ldx, lrstd); }});
    cases.push_back({"llama", "rms_norm backward", 3 * b, [&] { be.rms_norm_backward(lx, lw, lrstd, ldy, Tensor(), ldx, ldw); }});
    cases.push_back({"llama", "rms_norm backward + residual gradient", 4 * b,
                     [&] { be.rms_norm_backward(lx, lw, lrstd, ldy, ly, ldx, ldw); }});
    cases.push_back({"llama", "add [N, C]", 3 * b, [&] { be.binary(BinaryOp::Add, lx, ldy, ly); }});
    cases.push_back(
        {"llama", "rope q (strided view of qkv)", 2 * b, [&] { be.rope(q, qr, 10000.0, 0, false, false); }});
    cases.push_back({"llama", "swiglu forward", 3 * h, [&] { be.swiglu_forward(gate, up, act); }});
    cases.push_back({"llama", "swiglu backward", 5 * h, [&] { be.swiglu_backward(gate, up, act, dgate, dup); }});

    std::printf(
        "| model | kernel | device us | host us | GB/s "
        "|\n|---|---|---|---|---|\n");
    for (const Case& c : cases) {
      const double us = 1e3 * time_ms(be, iters, c.call);
      const double hus = host_us(be, iters, c.call);
      std::printf("| %s | %s | %.1f | %.1f | %.0f |\n", c.model, c.name, us, hus, c.bytes / (us * 1e3));
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_cuda_memory_ops: %s\n", e.what());
    return 1;
  }
  return 0;
}
