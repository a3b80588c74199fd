// Backend::gemm_quantized on the GPU (backend/cuda/gemm_quantized.cu) against its CPU twin
// (backend/cpu/gemm_quantized_cpu.cpp, itself checked against an f64 loop in
// tests/ops/quantized_matmul_test.cpp): int8 and fp8 e4m3 weights with one scale per output
// channel or per group of 128 inputs, bf16 weights without scales, f32 / bf16 / f16 activations,
// K that is not a whole number of 16-byte chunks or of the warp's 32 lanes, M across the decode
// pass (<= 8 rows) and several prefill passes. Then batch invariance, which the contract promises
// bit for bit: a row alone, in a batch of 7 and in a batch of 64 gives the same bits (so do
// activations read element by element rather than in 16-byte loads), and a quantized model's
// batched greedy / sampled generation on the GPU equals one request at a time.
//
// (The op registry cannot carry these cases: it casts every floating input, an fp8 weight and
// the f32 scales included, to each compute dtype, and its f64 forward mode has no f64 kernel.)
#include <fmt/format.h>

#include "cuda_test_util.h"
#include "infer/batch_generate.h"
#include "infer/quantize.h"
#include "nn/model_test_util.h"
#include "ops/quantized_matmul.h"

namespace lmforge {
namespace {
using namespace cuda_test;
using infer::QuantFormat;

struct WeightCase {
  QuantFormat format;
  int64_t group_size;  // 0: one scale per output channel
  int64_t k;
};

std::string describe(const WeightCase& w) {
  return fmt::format("{} group {} k {}", infer::to_string(w.format), w.group_size, w.k);
}

// The quantized weight on both devices (quantized once on the CPU, copied as is).
struct QuantPair {
  QuantizedWeight cpu, gpu;
};
QuantPair quantized_pair(Generator& g, int64_t n, const WeightCase& c) {
  const Tensor w = randn({n, c.k}, g, DType::F32, Device::cpu(), 0, 0.5);
  QuantizedWeight q = infer::quantize_weight(w, {.format = c.format, .group_size = c.group_size});
  QuantizedWeight d{.data = q.data.to(gpu()), .scale = q.scale.defined() ? q.scale.to(gpu()) : Tensor(),
                    .group_size = q.group_size};
  return {std::move(q), std::move(d)};
}

// out = x · dequant(w)ᵀ (+ bias) through the backend kernel, into a NaN-poisoned output.
Tensor run_kernel(const Tensor& x, const QuantizedWeight& w, const Tensor& bias) {
  Tensor out = poisoned({x.size(0), w.out_features()}, x.dtype(), x.device());
  backend_for(x.device())
      .gemm_quantized({.x = x, .weight = w.data, .scale = w.scale, .bias = bias, .out = out, .group_size = w.group_size});
  return out;
}

// Both devices form the same f32 products (the dequantised weight w·s is one f32 rounding on
// either side) and differ only in the order of the K-term f32 sum (16 strided lanes on the CPU,
// 32 lanes of 16-byte chunks on the GPU): relative errors of a few f32 ulps times √K, far below
// 1e-5 for K <= 1000. Rounded to bf16 / f16, a sum that sits near a rounding boundary may land
// one ulp apart (2^-8 / 2^-11 relative) on the few such elements.
double kernel_tol(DType x_dtype) {
  switch (x_dtype) {
    case DType::F32: return 1e-5;
    case DType::BF16: return 8e-3;
    default: return 1e-3;  // f16
  }
}

const std::vector<WeightCase>& weight_cases() {
  static const std::vector<WeightCase> v{
      {QuantFormat::Int8, 0, 1000},  // 62.5 chunks: a partial last chunk
      {QuantFormat::Int8, 0, 13},    // under one chunk, not 16-byte aligned: element loads
      {QuantFormat::Int8, 128, 384},  // 24 chunks: lanes 24..31 idle; three scale groups
      {QuantFormat::Int8, 128, 1152},  // 72 chunks: more than one unrolled step per lane
      {QuantFormat::Int8, 8, 200},     // groups smaller than a chunk: a scale per element
      {QuantFormat::Fp8, 0, 1000},
      {QuantFormat::Fp8, 128, 384},
      {QuantFormat::BF16, 0, 200},  // 25 chunks of 8, no scales
      {QuantFormat::F16, 0, 77},    // 154 bytes per row: element loads
  };
  return v;
}

TEST(CudaGemmQuantized, MatchesTheCpuTwin) {
  LF_REQUIRE_GPU();
  const int64_t n = 70;  // not a multiple of the 8 warps of a block
  Generator g(11);
  for (const WeightCase& wc : weight_cases()) {
    const QuantPair w = quantized_pair(g, n, wc);
    ASSERT_TRUE(gpu_be().supports(Kernel::gemm_quantized, w.gpu.data.dtype())) << describe(wc);
    for (DType xt : {DType::F32, DType::BF16, DType::F16}) {
      const Pair bias = random_pair(g, {n}, xt, -1, 1);
      for (int64_t m : {1, 3, 8, 64, 300}) {
        const Pair x = random_pair(g, {m, wc.k}, xt, -1, 1);
        for (bool with_bias : {false, true}) {
          const std::string label = fmt::format("{} x {} m {} bias {}", describe(wc), dtype_name(xt), m, with_bias);
          const Tensor want = run_kernel(x.cpu, w.cpu, with_bias ? bias.cpu : Tensor());
          const Tensor got = run_kernel(x.gpu, w.gpu, with_bias ? bias.gpu : Tensor());
          ASSERT_EQ(got.dtype(), xt) << label;
          EXPECT_TRUE(close(got, want, kernel_tol(xt))) << label;
        }
      }
    }
  }
}

TEST(CudaGemmQuantized, LinearQuantizedRunsTheKernelOnTheGpu) {
  // The op with a leading batch dimension and a bias in another dtype (cast by the op), against
  // the same op on the CPU.
  LF_REQUIRE_GPU();
  Generator g(4);
  const QuantPair w = quantized_pair(g, 96, {QuantFormat::Int8, 128, 256});
  const Pair x = random_pair(g, {2, 5, 256}, DType::BF16, -1, 1);
  const Pair b = random_pair(g, {96}, DType::F32, -1, 1);
  const Tensor want = linear_quantized(x.cpu, w.cpu, b.cpu), got = linear_quantized(x.gpu, w.gpu, b.gpu);
  ASSERT_EQ(got.shape(), (Shape{2, 5, 96}));
  EXPECT_TRUE(close(got, want, kernel_tol(DType::BF16)));
}

TEST(CudaGemmQuantized, EachRowIsIndependentOfTheBatch) {
  // Row r computed alone, inside a batch of 7 and inside a batch of 64 (where it falls in
  // another 8-row pass than when alone): the same bits, for every weight format and activation
  // dtype, with and without bias.
  LF_REQUIRE_GPU();
  const int64_t n = 70;
  Generator g(21);
  for (const WeightCase& wc : weight_cases()) {
    const QuantizedWeight w = quantized_pair(g, n, wc).gpu;
    for (DType xt : {DType::F32, DType::BF16, DType::F16}) {
      // x on its own 16-byte aligned allocation, and the same values one element past the start
      // of another (off the 16-byte grid: the kernel's element loads instead of 16-byte ones).
      const Tensor flat = random_host(g, {64 * wc.k + 1}, xt, -1, 1);
      const Tensor x = contiguous(flat.narrow(0, 1, 64 * wc.k)).view({64, wc.k}).to(gpu());
      const Tensor x_shifted = flat.to(gpu()).narrow(0, 1, 64 * wc.k).view({64, wc.k});
      const Tensor bias = random_host(g, {n}, xt, -1, 1).to(gpu());
      for (bool with_bias : {false, true}) {
        const std::string label = fmt::format("{} x {} bias {}", describe(wc), dtype_name(xt), with_bias);
        const Tensor b = with_bias ? bias : Tensor();
        const Tensor all = run_kernel(x, w, b), seven = run_kernel(x.narrow(0, 0, 7), w, b);
        for (int64_t r : {0, 5, 13, 63}) {
          const Tensor alone = run_kernel(x.narrow(0, r, 1), w, b);
          EXPECT_TRUE(bit_equal(alone, all.narrow(0, r, 1))) << label << ": row " << r << " in 64";
          if (r < 7) {
            EXPECT_TRUE(bit_equal(alone, seven.narrow(0, r, 1))) << label << ": row " << r << " in 7";
          }
        }
        EXPECT_TRUE(bit_equal(run_kernel(x_shifted, w, b), all)) << label << ": x off the 16-byte grid";
        // A window of rows starting mid-pass: rows 9..20 as rows 0..11 of their own call.
        EXPECT_TRUE(bit_equal(run_kernel(x.narrow(0, 9, 12), w, b), all.narrow(0, 9, 12))) << label;
      }
    }
  }
}

// Llama-style (RoPE, SwiGLU, GQA), wide enough that greedy decoding has no near-ties.
nn::ModelConfig llama_config() {
  nn::ModelConfig c = test::tiny_config();
  c.vocab_size = 37;
  c.context_length = 40;
  c.d_model = 32;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 64;
  c.init_std = 0.5;
  return c;
}

std::vector<infer::GenerationRequest> mixed_requests(int64_t vocab) {
  std::vector<infer::GenerationRequest> rs;
  for (uint32_t i = 0; i < 7; ++i) {
    infer::GenerationRequest r{.max_new_tokens = 6 + i * 3};
    for (uint32_t p = 0; p < 1 + (i * 5) % 13; ++p) r.prompt.push_back((p * 7 + i * 5 + 3) % uint32_t(vocab));
    if (i % 2) r.sampling = {.temperature = 0.9, .top_k = 10, .top_p = 0.95};
    else r.sampling = {.temperature = 0};
    r.seed = 100 + i;
    rs.push_back(std::move(r));
  }
  return rs;
}

TEST(CudaGemmQuantized, QuantizedModelBatchedGenerationEqualsOneAtATime) {
  // Every Linear of the model runs through the GPU kernel; batched decoding (several requests'
  // rows in one product) must choose exactly the tokens each request gets alone.
  LF_REQUIRE_GPU();
  const nn::ModelConfig c = llama_config();
  for (QuantFormat format : {QuantFormat::Int8, QuantFormat::Fp8}) {
    SCOPED_TRACE(infer::to_string(format));
    auto model = std::make_unique<nn::Transformer>(c, nn::TensorOptions{.device = gpu()});
    Generator init(7);
    model->init_parameters(init);
    infer::quantize_model(*model, {.format = format});
    const auto rs = mixed_requests(c.vocab_size);
    std::vector<std::vector<uint32_t>> alone;
    for (const auto& r : rs) alone.push_back(infer::generate_batch(*model, {r}, {.max_slots = 1, .prefill_chunk = 4})[0]);
    for (const infer::BatchOptions o : {infer::BatchOptions{.max_slots = 4, .prefill_chunk = 4},
                                        infer::BatchOptions{.max_slots = 8, .prefill_chunk = 4, .max_prefill_slots = 3}}) {
      const auto batched = infer::generate_batch(*model, rs, o);
      ASSERT_EQ(batched.size(), rs.size());
      for (size_t i = 0; i < rs.size(); ++i) {
        EXPECT_EQ(batched[i], alone[i]) << "request " << i << " with " << o.max_slots << " slots";
        EXPECT_EQ(int64_t(batched[i].size()), rs[i].max_new_tokens) << i;
      }
    }
  }
}

}  // namespace
}  // namespace lmforge
