// CPU GEMM against narrow weights (Backend::gemm_quantized): int8 or fp8 e4m3 with f32 scales,
// or bf16 / f16 (or dense f32, read in place: the batch-invariant decode path). The weights are dequantised one output row at a time into a K-float scratch
// per thread, right before that row's dot products with every input row; the model is never
// widened to an f32 copy, so an int8 model streams a quarter of the bytes an f32 one does.
//
// Batch invariance: out[m, n] is dot(x[m, :], w(n, :)) summed by dot_fixed_order(), whose order
// depends on K alone; threads split the N output channels, never the K sum. The same row of x
// therefore gives the same bits whatever M is and whatever else shares the call.
#include <algorithm>
#include <vector>

#include "backend/cpu/cpu_backend.h"
#include "backend/cpu/cpu_types.h"
#include "backend/cpu/strided_loop.h"

namespace lmforge {
using namespace cpu;

namespace {

constexpr int kLanes = 16;  // independent partial sums: one AVX-512 or two AVX2 vectors

// Σ_k a[k]·b[k] in a fixed order: lane j sums k ≡ j (mod 16) in increasing k, then the 16
// lanes are added pairwise (j + 8, + 4, + 2, + 1).
inline float dot_fixed_order(const float* a, const float* b, int64_t k) {
  float acc[kLanes] = {};
  int64_t i = 0;
  for (; i + kLanes <= k; i += kLanes)
    for (int j = 0; j < kLanes; ++j) acc[j] += a[i + j] * b[i + j];
  for (int j = 0; i < k; ++i, ++j) acc[j] += a[i] * b[i];
  for (int w = kLanes / 2; w > 0; w /= 2)
    for (int j = 0; j < w; ++j) acc[j] += acc[j + w];
  return acc[0];
}

// Row n of the dequantised weight into `row` [K].
template <class W>
void dequantise_row(const W* w, const float* scale, int64_t groups, int64_t group_size, int64_t k, float* row) {
  if (scale == nullptr) {
    for (int64_t i = 0; i < k; ++i) row[i] = static_cast<float>(load(w[i]));
    return;
  }
  for (int64_t g = 0; g < groups; ++g) {
    const float s = scale[g];
    const W* wg = w + g * group_size;
    float* rg = row + g * group_size;
    for (int64_t i = 0; i < group_size; ++i) rg[i] = static_cast<float>(load(wg[i])) * s;
  }
}

template <class W, class X>
void gemm_quantized_typed(const QuantizedGemmArgs& g) {
  const int64_t m = g.x.size(0), k = g.x.size(1), n = g.weight.size(0);
  const int64_t group_size = g.scale.defined() ? g.group_size : k;
  const int64_t groups = k / group_size;
  // The activations as f32 rows (a copy only when they are bf16 / f16: [M, K] is small).
  std::vector<float> xf;
  const float* x = nullptr;
  if constexpr (std::is_same_v<X, float>) {
    x = g.x.data<float>();
  } else {
    xf.resize(size_t(m * k));
    const X* src = static_cast<const X*>(g.x.data_ptr());
    for (int64_t i = 0; i < m * k; ++i) xf[size_t(i)] = static_cast<float>(load(src[i]));
    x = xf.data();
  }
  const W* w = static_cast<const W*>(g.weight.data_ptr());
  const float* scale = g.scale.defined() ? g.scale.data<float>() : nullptr;
  const X* bias = g.bias.defined() ? static_cast<const X*>(g.bias.data_ptr()) : nullptr;
  X* out = static_cast<X*>(g.out.data_ptr());
  // Rows of W per task: enough work per task to amortise the thread start at small M.
  const int64_t grain = std::max<int64_t>(1, 4096 / std::max<int64_t>(1, m * k / 64));
  parallel_for(n, grain, [&](int64_t b, int64_t e) {
    std::vector<float> row(std::is_same_v<W, float> ? 0 : size_t(k));
    for (int64_t j = b; j < e; ++j) {
      const float* wj = nullptr;
      if constexpr (std::is_same_v<W, float>) {
        wj = w + j * k;  // dense f32: read in place
      } else {
        dequantise_row(w + j * k, scale ? scale + j * groups : nullptr, groups, group_size, k, row.data());
        wj = row.data();
      }
      const float bj = bias ? static_cast<float>(load(bias[j])) : 0.f;
      for (int64_t i = 0; i < m; ++i) out[i * n + j] = store<X>(dot_fixed_order(x + i * k, wj, k) + bj);
    }
  });
}

template <class W>
void dispatch_activation(const QuantizedGemmArgs& g) {
  switch (g.x.dtype()) {
    case DType::F32: return gemm_quantized_typed<W, float>(g);
    case DType::BF16: return gemm_quantized_typed<W, bf16>(g);
    case DType::F16: return gemm_quantized_typed<W, f16>(g);
    default:
      throw Error(fmt::format("gemm_quantized: activations of dtype {} are not supported (f32, bf16, f16)",
                              dtype_name(g.x.dtype())));
  }
}

}  // namespace

void CpuBackend::do_gemm_quantized(const QuantizedGemmArgs& g) {
  LF_ASSERT(g.x.dim() == 2 && g.weight.dim() == 2 && g.out.dim() == 2);
  LF_ASSERT(g.x.is_contiguous() && g.weight.is_contiguous() && g.out.is_contiguous());
  LF_ASSERT(!g.scale.defined() || (g.scale.dtype() == DType::F32 && g.scale.is_contiguous() && g.group_size > 0 &&
                                   g.x.size(1) % g.group_size == 0));
  if (g.x.size(0) == 0 || g.weight.size(0) == 0) return;
  switch (g.weight.dtype()) {
    case DType::F32: return dispatch_activation<float>(g);
    case DType::I8: return dispatch_activation<int8_t>(g);
    case DType::F8E4M3: return dispatch_activation<f8e4m3>(g);
    case DType::BF16: return dispatch_activation<bf16>(g);
    case DType::F16: return dispatch_activation<f16>(g);
    default:
      throw Error(fmt::format("gemm_quantized: weights of dtype {} are not supported (i8, f8e4m3, bf16, f16, f32)",
                              dtype_name(g.weight.dtype())));
  }
}

}  // namespace lmforge
