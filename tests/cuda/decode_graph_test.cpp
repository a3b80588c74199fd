// Decoding on the GPU with positions in device memory and the recorded CUDA graph
// (infer/decode_graph.h): RoPE at per-row positions and rows written at per-row positions against
// their CPU twins; whole decodes (MHA with QK-norm, GQA, MLA, MoE) whose replayed graph gives the
// bits of the same steps run directly, and the CPU model's logits within the dtype's tolerance;
// generate's tokens with and without the graph; self-speculative decoding equal to plain greedy
// decoding token for token on the GPU.
#include "cuda_test_util.h"
#include "infer/decode_graph.h"
#include "infer/generate.h"
#include "infer/speculative.h"
#include "nn/transformer.h"

namespace lmforge {
namespace {
using namespace cuda_test;

TEST(CudaDecodeGraph, RopeAtPositionsMatchesCpu) {
  LF_REQUIRE_GPU();
  NoGradGuard no_grad;
  Generator g(81);
  for (DType t : nn_dtypes())
    for (bool interleaved : {false, true}) {
      SCOPED_TRACE(fmt::format("{} interleaved {}", dtype_name(t), interleaved));
      const Pair x = random_pair(g, {3, 2, 4, 64}, t);
      const Tensor pos = from_vector<int32_t>({0, 4095, 77}, {3});
      const RopeOptions o{.theta = 500000.0, .interleaved = interleaved, .positions = pos};
      RopeOptions og = o;
      og.positions = pos.to(gpu());
      EXPECT_TRUE(close(rope(x.gpu, og), rope(x.cpu, o), tol_for(t)));
    }
}

TEST(CudaDecodeGraph, CopyRowsAtMatchesCpu) {
  LF_REQUIRE_GPU();
  NoGradGuard no_grad;
  Generator g(82);
  for (DType t : {DType::F32, DType::BF16}) {
    const Pair src = random_pair(g, {2, 3, 5, 8}, t);
    const Tensor pos = from_vector<int32_t>({4, 8}, {2});  // row 1's last step is past the end
    Tensor dc = zeros({2, 10, 5, 8}, t), dg = zeros({2, 10, 5, 8}, t, gpu());
    copy_rows_at_(dc, src.cpu, pos);
    copy_rows_at_(dg, src.gpu, pos.to(gpu()));
    EXPECT_TRUE(bit_equal(dg, dc));
    // The latent columns of an MLA cache row: a strided destination, 2-byte rows.
    Tensor rc = zeros({1, 6, 7}, t), rg = zeros({1, 6, 7}, t, gpu());
    const Pair lat = random_pair(g, {1, 2, 5}, t);
    const Tensor p1 = from_vector<int32_t>({3}, {1});
    copy_rows_at_(rc.narrow(2, 1, 5), lat.cpu, p1);
    copy_rows_at_(rg.narrow(2, 1, 5), lat.gpu, p1.to(gpu()));
    EXPECT_TRUE(bit_equal(rg, rc));
  }
}

nn::ModelConfig small_config() {
  nn::ModelConfig c;
  c.vocab_size = 97;
  c.context_length = 96;
  c.d_model = 64;
  c.n_layers = 2;
  c.n_heads = 4;
  c.n_kv_heads = 2;
  c.d_ff = 96;
  c.qk_norm = true;
  c.init_std = 0.1;
  return c;
}

std::unique_ptr<nn::Transformer> model_on(const nn::ModelConfig& c, Device d, DType compute) {
  auto m = std::make_unique<nn::Transformer>(c, nn::TensorOptions{.device = d});
  Generator g(21);
  m->init_parameters(g);  // the same numbers on both devices (the Philox twins)
  if (compute != DType::F32) m->set_compute_dtype(compute);
  m->set_training(false);
  return m;
}

// Prefill, then `steps` tokens through a replayed graph and through direct steps (bits equal),
// and on the CPU (within the dtype's tolerance).
void expect_graph_decode(const nn::ModelConfig& c, DType compute, const std::string& label) {
  SCOPED_TRACE(label);
  NoGradGuard no_grad;
  auto gm = model_on(c, gpu(), compute);
  auto cm = model_on(c, Device::cpu(), compute);
  const std::vector<int64_t> prompt = {5, 17, 3, 60, 2, 9, 44, 1, 70, 12, 13};
  const Tensor ids = from_vector<int64_t>(prompt, {1, int64_t(prompt.size())});
  nn::KVCache cg = gm->make_cache(1, c.context_length), cd = gm->make_cache(1, c.context_length),
              cc = cm->make_cache(1, c.context_length);
  gm->forward(ids.to(gpu()), &cg);
  gm->forward(ids.to(gpu()), &cd);
  cm->forward(ids, &cc);
  infer::DecodeGraph graph(*gm, cg, true);
  // The same device-position steps run directly (no graph).
  Tensor pos = zeros({1}, DType::I32, gpu());
  const double tol = compute == DType::F32 ? 2e-4 : 5e-2;
  for (int i = 0; i < 40; ++i) {
    const int64_t tok[1] = {int64_t((i * 37 + 11) % c.vocab_size)};
    const Tensor lg = graph.step(tok).to(Device::cpu());
    copy_(pos, from_vector<int32_t>({int32_t(cd.length)}, {1}));
    cd.positions = pos;
    const Tensor ld = gm->forward(from_vector<int64_t>({tok[0]}, {1, 1}, gpu()), &cd).to(Device::cpu());
    ++cd.length;
    const Tensor lc = cm->forward(from_vector<int64_t>({tok[0]}, {1, 1}), &cc);
    if (i == 0) EXPECT_TRUE(graph.replaying()) << graph.reason();
    EXPECT_TRUE(bit_equal(lg, ld)) << "step " << i;
    EXPECT_TRUE(close(lg.to(DType::F32), lc.to(DType::F32), tol)) << "step " << i;
  }
  EXPECT_EQ(cg.length, cc.length);
}

TEST(CudaDecodeGraph, ReplayedStepsEqualDirectStepsAndTheCpu) {
  LF_REQUIRE_GPU();
  nn::ModelConfig c = small_config();
  expect_graph_decode(c, DType::F32, "gqa, qk-norm, f32");
  expect_graph_decode(c, DType::BF16, "gqa, qk-norm, bf16");
  nn::ModelConfig mla = small_config();
  mla.attention = nn::AttentionKind::MLA;
  mla.kv_lora_rank = 32, mla.q_lora_rank = 24, mla.qk_nope_head_dim = 16, mla.qk_rope_head_dim = 8,
  mla.v_head_dim = 16;
  expect_graph_decode(mla, DType::F32, "mla, f32");
  expect_graph_decode(mla, DType::BF16, "mla, bf16");
  nn::ModelConfig moe = small_config();
  moe.n_experts = 4, moe.d_ff_expert = 32, moe.top_k = 2, moe.n_shared_experts = 1;
  expect_graph_decode(moe, DType::BF16, "moe, bf16");
}

TEST(CudaDecodeGraph, GenerateGivesTheSameTokensWithAndWithoutTheGraph) {
  LF_REQUIRE_GPU();
  // f32: without the graph the steps run the tiled attention kernels, with it the split-KV one.
  auto m = model_on(small_config(), gpu(), DType::F32);
  const std::vector<uint32_t> prompt = {3, 1, 4, 1, 5};
  infer::GenerateOptions o{.max_new_tokens = 60, .sampling = {.temperature = 0.9, .top_k = 20}, .seed = 6};
  o.cuda_graph = true;
  const std::vector<uint32_t> with = infer::generate(*m, prompt, o);
  o.cuda_graph = false;
  EXPECT_EQ(infer::generate(*m, prompt, o), with);
  EXPECT_EQ(with.size(), 60u);
}

TEST(CudaDecodeGraph, SpeculativeGreedyEqualsPlainGreedyOnTheGpu) {
  LF_REQUIRE_GPU();
  for (int64_t depth : {1, 2}) {
    // f32: the verification forward runs products of several rows where plain decoding runs one,
    // so in bf16 (cuBLAS picks other kernels by row count) a near-tie between the top two logits
    // could round apart; in f32 the margins of these models are far above that.
    for (DType compute : {DType::F32}) {
      nn::ModelConfig c = small_config();
      c.mtp_depth = depth;
      auto m = model_on(c, gpu(), compute);
      for (const std::vector<uint32_t>& prompt :
           {std::vector<uint32_t>{7}, std::vector<uint32_t>{1, 2, 3, 4, 5, 6}, std::vector<uint32_t>(40, 11)}) {
        const infer::GenerateOptions o{.max_new_tokens = 45, .sampling = {.temperature = 0}, .seed = 1};
        const std::vector<uint32_t> plain = infer::generate(*m, prompt, o);
        infer::SpeculativeStats s;
        const std::vector<uint32_t> spec = infer::generate_speculative(*m, prompt, o, nullptr, &s);
        EXPECT_EQ(spec, plain) << "depth " << depth << " " << dtype_name(compute) << " prompt " << prompt.size();
        EXPECT_GT(s.rounds, 0);
      }
    }
  }
}

}  // namespace
}  // namespace lmforge
