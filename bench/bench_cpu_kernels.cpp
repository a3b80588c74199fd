// CPU kernel benchmark (docs/BENCHMARKS.md, "CPU kernels").
//
//   1. Memory-bound fused kernels — rms_norm, softmax, cross_entropy forward, f32 — in GB/s of
//      compulsory traffic (each input read once, each output written once), next to the copy
//      bandwidth of this machine measured here (memcpy of a buffer far larger than the caches,
//      counted as read + write). Each kernel is timed twice: the backend call on preallocated
//      outputs (the kernel itself) and the op (ops/nn_ops.h, reduce.h), which also allocates
//      its outputs. A last column times the kernel on one thread on a small L2-resident shape
//      in CPU time: its compute rate in elements per core-second, which other load on the
//      machine does not distort.
//   2. GEMM in GFLOP/s (2·M·N·K per product) through our matmul op against cblas_sgemm called
//      directly on the same buffers: the difference is our overhead.
//
// Each figure is the median of several timed runs after a warm-up. Run with OMP_NUM_THREADS set
// (OpenBLAS is asked for the same number of threads).
#include <cblas.h>
#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <functional>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "core/random_kernels.h"
#include "ops/ops.h"

namespace {

using namespace lmforge;

double cpu_seconds_now() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return double(ts.tv_sec) + double(ts.tv_nsec) * 1e-9;
}

// CPU time of `reps` calls on one thread, per call: unlike wall time it does not count time lost
// to other processes on a shared machine (nor OpenMP threads spinning at barriers).
double cpu_seconds_per_call(const std::function<void()>& f, int reps) {
  const int prev = omp_get_max_threads();
  omp_set_num_threads(1);
  f();
  const double a = cpu_seconds_now();
  for (int i = 0; i < reps; ++i) f();
  const double t = (cpu_seconds_now() - a) / reps;
  omp_set_num_threads(prev);
  return t;
}

double median_seconds(const std::function<void()>& f, int reps) {
  f();  // warm-up: first touch, caches, thread pools
  std::vector<double> t;
  for (int i = 0; i < reps; ++i) {
    const auto a = std::chrono::steady_clock::now();
    f();
    const auto b = std::chrono::steady_clock::now();
    t.push_back(std::chrono::duration<double>(b - a).count());
  }
  std::sort(t.begin(), t.end());
  return t[t.size() / 2];
}

const char* env_or(const char* name, const char* fallback) {
  const char* v = std::getenv(name);
  return v ? v : fallback;
}

}  // namespace

int main() {
  using namespace lmforge;
  NoGradGuard no_grad;
  const int threads = omp_get_max_threads();
  openblas_set_num_threads(threads);
  std::printf("lmforge CPU kernel benchmark\n");
  std::printf("OMP threads: %d   OMP_NUM_THREADS=%s   OPENBLAS_CORETYPE=%s   OPENBLAS_L2_SIZE=%s\n", threads,
              env_or("OMP_NUM_THREADS", "(unset)"), env_or("OPENBLAS_CORETYPE", "(unset)"),
              env_or("OPENBLAS_L2_SIZE", "(unset)"));
  std::printf("OpenBLAS: core %s, config %s\n", openblas_get_corename(), openblas_get_config());
  // Other work on the machine depresses the wall-clock figures; the load says how much there was.
  if (FILE* f = std::fopen("/proc/loadavg", "r")) {
    char buf[128] = {0};
    if (std::fgets(buf, sizeof buf, f)) std::printf("load average at start: %s", buf);
    std::fclose(f);
  }
  std::printf("\n");

  // ---- copy bandwidth ----
  const size_t copy_bytes = size_t(512) << 20;
  std::vector<char> src(copy_bytes, 1), dst(copy_bytes, 0);
  const double t_copy = median_seconds(
      [&] {
#pragma omp parallel
        {
          const int nt = omp_get_num_threads(), id = omp_get_thread_num();
          const size_t b = copy_bytes * id / nt, e = copy_bytes * (id + 1) / nt;
          std::memcpy(dst.data() + b, src.data() + b, e - b);
        }
      },
      7);
  const double copy_gbs = 2.0 * double(copy_bytes) / t_copy / 1e9;
  std::printf("copy bandwidth (parallel memcpy of 512 MiB, read + write): %.1f GB/s\n\n", copy_gbs);
  src = {};
  dst = {};

  // ---- memory-bound fused kernels ----
  Generator gen(1);
  Backend& be = backend_for(Device::cpu());
  std::printf("| kernel (f32) | shape | bytes moved | kernel GB/s | %% of copy | op GB/s | in-cache Gelem/core-s |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  // small(): the same kernel on [64, n_small], timed in CPU time.
  auto row = [&](const char* name, const std::string& shape, double bytes, const std::function<void()>& kernel,
                 const std::function<void()>& op, double small_elems, const std::function<void()>& small) {
    const double tk = median_seconds(kernel, 9), to = median_seconds(op, 9), ts = cpu_seconds_per_call(small, 200);
    std::printf("| %s | %s | %.0f MiB | %.1f | %.0f%% | %.1f | %.2f |\n", name, shape.c_str(), bytes / (1 << 20),
                bytes / tk / 1e9, 100.0 * bytes / tk / 1e9 / copy_gbs, bytes / to / 1e9, small_elems / ts / 1e9);
  };
  const int64_t rs = 64, cs = 4096;  // the in-cache shape: 1 MiB of f32
  {
    const int64_t n = 8192, c = 4096;
    Tensor x = randn({n, c}, gen), w = randn({c}, gen);
    Tensor y = Tensor::empty({n, c}), rstd = Tensor::empty({n});
    Tensor xs = randn({rs, cs}, gen), ws = randn({cs}, gen), ys = Tensor::empty({rs, cs}), rstds = Tensor::empty({rs});
    row("rms_norm forward", "[8192, 4096]", 2.0 * n * c * 4, [&] { be.rms_norm_forward(x, Tensor(), w, 1e-6, y, Tensor(), rstd); },
        [&] { (void)rms_norm(x, w); }, double(rs * cs), [&] { be.rms_norm_forward(xs, Tensor(), ws, 1e-6, ys, Tensor(), rstds); });
  }
  {
    const int64_t n = 2048, v = 16384;
    Tensor x = randn({n, v}, gen), y = Tensor::empty({n, v});
    Tensor xs = randn({rs, cs}, gen), ys = Tensor::empty({rs, cs});
    row("softmax forward", "[2048, 16384]", 2.0 * n * v * 4, [&] { be.softmax_forward(x, y, false); },
        [&] { (void)softmax(x, -1); }, double(rs * cs), [&] { be.softmax_forward(xs, ys, false); });
  }
  {
    const int64_t n = 1024, v = 50304;
    Tensor logits = randn({n, v}, gen), targets = randint({n}, 0, v, gen);
    Tensor loss = Tensor::empty({n}), lse = Tensor::empty({n});
    Tensor ls = randn({rs, cs}, gen), ts = randint({rs}, 0, cs, gen), losss = Tensor::empty({rs}), lses = Tensor::empty({rs});
    const CrossEntropyArgs args{.label_smoothing = 0.1, .z_loss = 1e-4};
    row("cross_entropy forward (smoothing, z-loss)", "[1024, 50304]", double(n) * v * 4,
        [&] { be.cross_entropy_forward(logits, targets, args, loss, lse); },
        [&] { (void)cross_entropy(logits, targets, {.label_smoothing = 0.1, .z_loss = 1e-4}); }, double(rs * cs),
        [&] { be.cross_entropy_forward(ls, ts, args, losss, lses); });
  }

  // ---- GEMM ----
  std::printf("\n| GEMM (f32) | matmul op GFLOP/s | cblas_sgemm GFLOP/s | op / cblas |\n");
  std::printf("|---|---|---|---|\n");
  auto gemm_row = [&](int64_t m, int64_t n, int64_t k, bool trans_b) {
    Tensor a = randn({m, k}, gen);
    Tensor b = trans_b ? randn({n, k}, gen) : randn({k, n}, gen);
    Tensor bop = trans_b ? b.transpose(0, 1) : b;
    Tensor c = Tensor::empty({m, n});
    const int reps = m >= 2048 ? 5 : 11;
    const double flop = 2.0 * m * n * k;
    const double t_op = median_seconds([&] { (void)matmul(a, bop); }, reps);
    const double t_blas = median_seconds(
        [&] {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, trans_b ? CblasTrans : CblasNoTrans, m, n, k, 1.0f,
                      a.data<float>(), k, b.data<float>(), trans_b ? k : n, 0.0f, c.data<float>(), n);
        },
        reps);
    char label[64];
    std::snprintf(label, sizeof label, "%lldx%lldx%lld%s", (long long)m, (long long)n, (long long)k,
                  trans_b ? ", B transposed" : "");
    std::printf("| %s | %.1f | %.1f | %.2f |\n", label, flop / t_op / 1e9, flop / t_blas / 1e9, t_blas / t_op);
  };
  gemm_row(512, 512, 512, false);
  gemm_row(1024, 1024, 1024, false);
  gemm_row(2048, 2048, 2048, false);
  gemm_row(1024, 1024, 1024, true);
  gemm_row(2048, 2048, 2048, true);

  // ---- attention (compute-bound; for scale next to the GEMM rows) ----
  // FLOPs as FlashAttention counts them: forward 4·B·H·T·S·D (halved when causal), backward 2.5×
  // forward. Our backward recomputes the scores in both of its passes, so it does 3.5× the
  // forward's products; the figure below is the conventional one, comparable across
  // implementations.
  std::printf("\n| attention (f32, B=1, H=8, D=64) | forward GFLOP/s | backward GFLOP/s |\n|---|---|---|\n");
  for (bool causal : {false, true}) {
    const int64_t t = 2048, h = 8, d = 64;
    Tensor q = randn({1, t, h, d}, gen), k = randn({1, t, h, d}, gen), v = randn({1, t, h, d}, gen);
    Tensor go = randn({1, t, h, d}, gen);
    Tensor out = Tensor::empty({1, t, h, d}), lse = Tensor::empty({1, h, t});
    Tensor dq = Tensor::empty({1, t, h, d}), dk = Tensor::empty({1, t, h, d}), dv = Tensor::empty({1, t, h, d});
    const AttentionArgs args{.causal = causal};
    const double flop = 4.0 * t * t * h * d * (causal ? 0.5 : 1.0);
    const double tf = median_seconds([&] { be.attention_forward(q, k, v, Tensor(), args, out, lse); }, 5);
    const double tb = median_seconds(
        [&] { be.attention_backward(q, k, v, Tensor(), out, lse, go, args, dq, dk, dv); }, 5);
    std::printf("| T = S = 2048, %s | %.1f | %.1f |\n", causal ? "causal" : "not causal", flop / tf / 1e9,
                2.5 * flop / tb / 1e9);
  }
  return 0;
}
