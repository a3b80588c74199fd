// The whole model: every architecture switch builds and its gradient matches central finite
// differences in f64; HF parameter names; GQA against MHA; KV-cache decoding against a full
// forward.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/model_test_util.h"

namespace lmforge::nn {
namespace {

std::vector<test::ModelVariant> architecture_variants() {
  return {
      {"llama (rmsnorm, pre, swiglu, rope, tied)", [](ModelConfig&) {}},
      {"layernorm", [](ModelConfig& c) { c.norm = NormKind::LayerNorm; }},
      {"layernorm with biases", [](ModelConfig& c) { c.norm = NormKind::LayerNorm, c.bias = true; }},
      {"post-norm", [](ModelConfig& c) { c.norm_position = NormPosition::Post; }},
      {"gelu", [](ModelConfig& c) { c.ffn = FfnKind::GELU; }},
      {"learned positions", [](ModelConfig& c) { c.position = PositionKind::Learned; }},
      {"biases", [](ModelConfig& c) { c.bias = true; }},
      {"qk-norm", [](ModelConfig& c) { c.qk_norm = true; }},
      {"z-loss", [](ModelConfig& c) { c.z_loss = 0.1; }},
      {"untied", [](ModelConfig& c) { c.tied_embeddings = false; }},
      {"gqa", [](ModelConfig& c) { c.n_heads = 4, c.n_kv_heads = 2; }},
      {"mqa", [](ModelConfig& c) { c.n_heads = 4, c.n_kv_heads = 1; }},
      {"head_dim != d_model / n_heads", [](ModelConfig& c) { c.head_dim = 6; }},
      {"xavier init", [](ModelConfig& c) { c.init = InitKind::Xavier; }},
      {"normal init", [](ModelConfig& c) { c.init = InitKind::Normal; }},
      {"dropout", [](ModelConfig& c) { c.dropout = 0.2; }},
      {"gpt-2 style", [](ModelConfig& c) {
         c.norm = NormKind::LayerNorm, c.ffn = FfnKind::GELU, c.position = PositionKind::Learned, c.bias = true;
       }},
      // Mixture of Experts: the routing is a discrete choice that a perturbation of 1e-6 does not
      // move here; the gates, the balancing losses and the experts are differentiable.
      {"moe softmax top-2, Switch + router z-loss", [](ModelConfig& c) {
         c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.balance_loss = 0.1, c.router_z_loss = 0.01;
       }},
      {"moe sigmoid top-2, shared expert, device + comm balance", [](ModelConfig& c) {
         c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.router = RouterKind::SigmoidTopK, c.n_shared_experts = 1;
         c.n_expert_groups = 2, c.device_balance_loss = 0.1, c.comm_balance_loss = 0.1, c.bias_update_rate = 0.01;
       }},
      {"moe expert choice, gelu, after:1", [](ModelConfig& c) {
         c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.router = RouterKind::ExpertChoice;
         c.capacity_factor = 1.0, c.ffn = FfnKind::GELU, c.moe_layers = "after:1";
       }},
      {"moe capacity 0.5, unnormalised gates", [](ModelConfig& c) {
         c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.capacity_factor = 0.5, c.normalize_gates = false;
       }},
  };
}

TEST(Transformer, EveryArchitectureSwitchPassesAFiniteDifferenceCheck) {
  for (const auto& v : architecture_variants()) {
    ModelConfig c = test::tiny_config();
    v.apply(c);
    // The model's backward against central differences.
    const double worst = test::model_gradient_error(c, v.name, 5);
    std::printf("%-45s worst error %.3g of the tolerance\n", v.name.c_str(), worst);
  }
}

TEST(Transformer, HfLlamaParameterNames) {
  ModelConfig c = test::tiny_config();
  c.tied_embeddings = false;
  Transformer m(c);
  std::vector<std::string> names;
  for (const auto& p : m.named_parameters()) names.push_back(p.name);
  const std::vector<std::string> want = {
      "model.embed_tokens.weight",
      "model.layers.0.self_attn.q_proj.weight", "model.layers.0.self_attn.k_proj.weight",
      "model.layers.0.self_attn.v_proj.weight", "model.layers.0.self_attn.o_proj.weight",
      "model.layers.0.mlp.gate_proj.weight", "model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight",
      "model.layers.0.input_layernorm.weight", "model.layers.0.post_attention_layernorm.weight",
      "model.layers.1.self_attn.q_proj.weight", "model.layers.1.self_attn.k_proj.weight",
      "model.layers.1.self_attn.v_proj.weight", "model.layers.1.self_attn.o_proj.weight",
      "model.layers.1.mlp.gate_proj.weight", "model.layers.1.mlp.up_proj.weight", "model.layers.1.mlp.down_proj.weight",
      "model.layers.1.input_layernorm.weight", "model.layers.1.post_attention_layernorm.weight",
      "model.norm.weight", "lm_head.weight"};
  EXPECT_EQ(names, want);
  EXPECT_EQ(m.named_parameters()[1].tensor.shape(), (Shape{8, 8}));  // [out, in]
}

TEST(Transformer, ImplicitAndExplicitMhaAreIdentical) {
  ModelConfig a = test::tiny_config(), b = test::tiny_config();
  b.n_kv_heads = b.n_heads;
  auto ma = test::make_model(a), mb = test::make_model(b);
  const Tensor x = test::random_ids(2, 6, a.vocab_size, 9);
  EXPECT_EQ(to_vector<float>(ma->forward(x)), to_vector<float>(mb->forward(x)));
}

// A GQA model equals the MHA model whose key/value heads are the GQA heads repeated for each
// query head of their group.
TEST(Transformer, GqaEqualsMhaWithRepeatedKeyValueHeads) {
  for (int64_t kv : {1, 2}) {
    ModelConfig g = test::tiny_config();
    g.n_heads = 4;
    g.n_kv_heads = kv;
    ModelConfig m = g;
    m.n_kv_heads = 4;
    auto gm = test::make_model(g, DType::F64), mm = test::make_model(m, DType::F64, 99);
    auto gp = gm->named_parameters(), mp = mm->named_parameters();
    ASSERT_EQ(gp.size(), mp.size());
    NoGradGuard ng;
    const int64_t d = g.d_model / g.n_heads, group = g.n_heads / kv;
    for (size_t i = 0; i < gp.size(); ++i) {
      ASSERT_EQ(gp[i].name, mp[i].name);
      Tensor src = gp[i].tensor;
      if (gp[i].name.ends_with("k_proj.weight") || gp[i].name.ends_with("v_proj.weight")) {
        // [kv·D, C] -> [kv, 1, D, C] -> [kv, group, D, C] -> [H·D, C]
        src = src.view({kv, 1, d, g.d_model}).expand({kv, group, d, g.d_model}).reshape({4 * d, g.d_model});
      }
      copy_(mp[i].tensor, src);
    }
    const Tensor x = test::random_ids(2, 7, g.vocab_size, 5);
    const std::vector<double> a = to_vector<double>(gm->forward(x)), b = to_vector<double>(mm->forward(x));
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i) ASSERT_NEAR(a[i], b[i], 1e-12) << "kv " << kv << " element " << i;
  }
}

TEST(Transformer, KvCacheDecodingMatchesFullForward) {
  for (auto pos : {PositionKind::Rope, PositionKind::Learned}) {
    for (DType dt : {DType::F64, DType::F32}) {
      ModelConfig c = test::tiny_config();
      c.position = pos;
      c.n_heads = 4;
      c.n_kv_heads = 2;
      c.qk_norm = pos == PositionKind::Rope;
      auto model = test::make_model(c, dt);
      model->set_training(false);
      NoGradGuard ng;
      const Tensor ids = test::random_ids(1, 8, c.vocab_size, 21);
      const std::vector<double> full = to_vector<double>(model->forward(ids));  // [1, 8, V]
      KVCache cache = model->make_cache(1, 8);
      std::vector<double> inc;
      auto append = [&](const Tensor& logits) {
        auto v = to_vector<double>(logits);
        inc.insert(inc.end(), v.begin(), v.end());
      };
      append(model->forward(ids.narrow(1, 0, 3), &cache));  // prefill 3
      for (int64_t t = 3; t < 8; ++t) append(model->forward(ids.narrow(1, t, 1).contiguous(), &cache));
      EXPECT_EQ(cache.length, 8);
      ASSERT_EQ(full.size(), inc.size());
      const double tol = dt == DType::F64 ? 1e-12 : 1e-5;
      for (size_t i = 0; i < full.size(); ++i) ASSERT_NEAR(full[i], inc[i], tol) << "element " << i;
    }
  }
}

TEST(Transformer, RejectsTooLongInput) {
  auto model = test::make_model(test::tiny_config());
  const Tensor ids = test::random_ids(1, 9, 11, 1);
  EXPECT_THROW(model->forward(ids), Error);
}

TEST(Transformer, ScaledInitShrinksResidualProjections) {
  ModelConfig c = test::tiny_config();
  c.d_model = 64;
  c.n_heads = 4;
  c.d_ff = 128;
  c.n_layers = 8;
  c.init_std = 0.02;
  auto m = test::make_model(c);
  auto rms = [](const Tensor& t) { return std::sqrt(sum_of_squares(t) / double(t.numel())); };
  for (const auto& p : m->named_parameters()) {
    if (p.name.ends_with("o_proj.weight") || p.name.ends_with("down_proj.weight")) {
      EXPECT_NEAR(rms(p.tensor), 0.02 / 4.0 * 0.987, 0.0008) << p.name;  // std/sqrt(16), truncated at 3σ
    } else if (p.name.ends_with("q_proj.weight")) {
      EXPECT_NEAR(rms(p.tensor), 0.02 * 0.987, 0.002) << p.name;
    } else if (p.name.ends_with("norm.weight")) {
      EXPECT_EQ(rms(p.tensor), 1.0) << p.name;
    }
  }
}

}  // namespace
}  // namespace lmforge::nn
