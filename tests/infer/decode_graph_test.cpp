// Decoding with positions in device memory (nn::KVCache::positions, infer/decode_graph.h), on the
// CPU: the three ops it rests on against their host-position forms — RoPE at per-row positions,
// rows written at per-row positions, attention over a fixed-capacity cache cut at per-row key
// lengths — and whole decodes (MHA, GQA, MLA) whose logits equal the host-position decode's.
// tests/cuda/decode_graph_test.cpp runs the same on the GPU with the recorded CUDA graph.
#include <gtest/gtest.h>

#include <algorithm>

#include "infer/decode_graph.h"
#include "infer/generate.h"
#include "nn/model_test_util.h"

namespace lmforge::infer {
namespace {

Tensor i32(std::vector<int32_t> v) { return from_vector<int32_t>(v, {int64_t(v.size())}); }

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_vector<double>(a), y = to_vector<double>(b);
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

TEST(DevicePositions, RopeAtPerRowPositionsEqualsRopeAtEachOffset) {
  NoGradGuard no_grad;
  Generator g(3);
  for (bool interleaved : {false, true}) {
    const Tensor x = randn({3, 2, 4, 8}, g, DType::F64);
    const std::vector<int32_t> pos = {0, 17, 5};
    const Tensor out = rope(x, {.theta = 10000.0, .interleaved = interleaved, .positions = i32(pos)});
    for (int64_t b = 0; b < 3; ++b) {
      const Tensor ref = rope(x.narrow(0, b, 1), {.theta = 10000.0, .position_offset = pos[size_t(b)],
                                                  .interleaved = interleaved});
      EXPECT_EQ(max_abs_diff(out.narrow(0, b, 1), ref), 0.0) << "row " << b << " interleaved " << interleaved;
    }
  }
}

TEST(DevicePositions, RopeWithPositionsHasTheInverseRotationAsGradient) {
  Generator g(4);
  Tensor x = randn({2, 3, 2, 6}, g, DType::F64);
  x.set_requires_grad(true);
  const Tensor pos = i32({4, 9});
  const Tensor w = randn({2, 3, 2, 6}, g, DType::F64);
  sum(rope(x, {.positions = pos}) * w).backward();
  // The rotation is orthogonal: the gradient of <rope(x), w> is the inverse rotation of w, which
  // rotating back by rope gives w again.
  EXPECT_LT(max_abs_diff(rope(x.grad(), {.positions = pos}), w), 1e-12);
}

TEST(DevicePositions, CopyRowsAtWritesEachRowAtItsPositionAndSkipsRowsOutside) {
  NoGradGuard no_grad;
  Tensor dst = zeros({2, 5, 3}, DType::F32);
  const Tensor src = arange(2 * 2 * 3, DType::F32).view({2, 2, 3}) + 1.0;
  copy_rows_at_(dst, src, i32({1, 4}));  // row 1's second step would land at 5: not written
  const std::vector<float> d = to_vector<float>(dst);
  std::vector<float> want(30, 0.0f);
  for (int c = 0; c < 3; ++c) {
    want[size_t(1 * 3 + c)] = float(1 + c);
    want[size_t(2 * 3 + c)] = float(4 + c);
    want[size_t(15 + 4 * 3 + c)] = float(7 + c);
  }
  EXPECT_EQ(d, want);
  // A strided destination (the latent part of an MLA cache row) and a dtype conversion.
  Tensor rows = zeros({1, 4, 5}, DType::F64);
  copy_rows_at_(rows.narrow(2, 1, 3), from_vector<float>({1, 2, 3}, {1, 1, 3}), i32({2}));
  EXPECT_EQ(to_vector<double>(rows.narrow(1, 2, 1)), (std::vector<double>{0, 1, 2, 3, 0}));
  EXPECT_THROW(copy_rows_at_(dst, src, from_vector<int64_t>({0, 0}, {2})), Error);  // positions must be i32
}

TEST(DevicePositions, AttentionCutAtKeyLengthsEqualsAttentionOverTheWrittenKeys) {
  NoGradGuard no_grad;
  Generator g(5);
  const int64_t b = 3, cap = 40, h = 4, hkv = 2, d = 8;
  for (int64_t t : {1, 3}) {
    const Tensor q = randn({b, t, h, d}, g, DType::F64);
    const Tensor k = randn({b, cap, hkv, d}, g, DType::F64), v = randn({b, cap, hkv, d}, g, DType::F64);
    const std::vector<int32_t> lengths = {5, 40, 23};
    const Tensor out = attention(q, k, v, {.causal = true, .key_lengths = i32(lengths)});
    for (int64_t r = 0; r < b; ++r) {
      const int64_t n = lengths[size_t(r)];
      const Tensor ref = attention(q.narrow(0, r, 1), k.narrow(0, r, 1).narrow(1, 0, n),
                                   v.narrow(0, r, 1).narrow(1, 0, n), {.causal = true});
      EXPECT_EQ(max_abs_diff(out.narrow(0, r, 1), ref), 0.0) << "row " << r << " T " << t;
    }
  }
  // Inference only.
  Tensor q = randn({1, 1, 2, 4}, g, DType::F64);
  q.set_requires_grad(true);
  const Tensor k = randn({1, 6, 2, 4}, g, DType::F64);
  GradModeGuard grad(true);
  EXPECT_THROW(attention(q, k, k, {.key_lengths = i32({3})}), Error);
}

// Decoding a prompt then `steps` tokens with device positions (DecodeGraph, which runs every
// step directly on the CPU) gives the host-position decode's logits.
void expect_device_positions_decode_like_host(const nn::ModelConfig& c, const std::string& label) {
  SCOPED_TRACE(label);
  auto m = test::make_model(c, DType::F64, 9);
  m->set_training(false);
  NoGradGuard no_grad;
  const std::vector<int64_t> prompt = {1, 4, 2, 7, 3};
  const std::vector<int64_t> tokens = {5, 0, 9, 2, 6, 1, 8};
  const Tensor prompt_ids = from_vector<int64_t>(prompt, {1, int64_t(prompt.size())});
  nn::KVCache host = m->make_cache(1, c.context_length), dev = m->make_cache(1, c.context_length);
  m->forward(prompt_ids, &host);
  m->forward(prompt_ids, &dev);
  DecodeGraph decoder(*m, dev);
  EXPECT_FALSE(decoder.replaying());
  for (int64_t tok : tokens) {
    const Tensor want = m->forward(from_vector<int64_t>({tok}, {1, 1}), &host);
    const int64_t step[1] = {tok};
    const Tensor got = decoder.step(step);
    EXPECT_LT(max_abs_diff(got, want), 1e-12) << "position " << host.length - 1;
    EXPECT_EQ(dev.length, host.length);
  }
  const int64_t bad[1] = {c.vocab_size};
  EXPECT_THROW(decoder.step(bad), Error);
}

TEST(DevicePositions, DecodeEqualsHostPositionDecode) {
  nn::ModelConfig c = test::tiny_config();
  c.context_length = 16;
  expect_device_positions_decode_like_host(c, "mha");
  c.n_kv_heads = 1;
  c.qk_norm = true;
  expect_device_positions_decode_like_host(c, "mqa, qk-norm");
  nn::ModelConfig mla = test::tiny_config();
  mla.context_length = 16;
  mla.attention = nn::AttentionKind::MLA;
  mla.kv_lora_rank = 6, mla.q_lora_rank = 5, mla.qk_nope_head_dim = 4, mla.qk_rope_head_dim = 2, mla.v_head_dim = 3;
  expect_device_positions_decode_like_host(mla, "mla");
}

TEST(DevicePositions, LearnedPositionsRefuseDevicePositions) {
  nn::ModelConfig c = test::tiny_config();
  c.position = nn::PositionKind::Learned;
  auto m = test::make_model(c, DType::F32, 9);
  NoGradGuard no_grad;
  nn::KVCache cache = m->make_cache(1, c.context_length);
  cache.positions = i32({0});
  EXPECT_THROW(m->forward(from_vector<int64_t>({1}, {1, 1}), &cache), Error);
}

// generate() decodes through DecodeGraph (device positions on the CPU): its greedy tokens are
// those of a plain loop over host-position steps.
TEST(DevicePositions, GenerateEqualsAHostPositionGreedyLoop) {
  nn::ModelConfig c = test::tiny_config();
  c.context_length = 24;
  c.n_kv_heads = 1;
  auto m = test::make_model(c, DType::F32, 13);
  m->set_training(false);
  const std::vector<uint32_t> prompt = {3, 1, 4};
  const GenerateOptions o{.max_new_tokens = 15, .sampling = {.temperature = 0}, .seed = 4};
  const std::vector<uint32_t> got = generate(*m, prompt, o);
  NoGradGuard no_grad;
  nn::KVCache cache = m->make_cache(1, c.context_length);
  std::vector<int64_t> ids(prompt.begin(), prompt.end());
  Tensor logits = m->forward(from_vector<int64_t>(ids, {1, int64_t(ids.size())}), &cache);
  std::vector<uint32_t> want;
  for (int i = 0; i < 15; ++i) {
    const std::vector<float> last = to_vector<float>(logits.narrow(1, logits.size(1) - 1, 1));
    const auto next = uint32_t(std::max_element(last.begin(), last.end()) - last.begin());
    want.push_back(next);
    logits = m->forward(from_vector<int64_t>({int64_t(next)}, {1, 1}), &cache);
  }
  EXPECT_EQ(got, want);
}

}  // namespace
}  // namespace lmforge::infer
