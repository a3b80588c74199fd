// The HF transformers export (train/hf_export.h, train/hf_config.h): for each target
// architecture the tensor names and shapes, the per-expert tensors against the rows of the
// stacked ones, the config.json keys, and the refusals naming the model key without an HF
// equivalent. As an independent reference, every MoE layer is recomputed by a plain per-expert
// loop that reads only the exported tensors and config.json, with the router rules of the HF
// class config.json names (Mixtral: softmax, renormalised over the chosen; Qwen3-MoE: softmax,
// norm_topk_prob; DeepSeek-V3: sigmoid, top-k by score + e_score_correction_bias, normalised
// among the chosen, × routed_scaling_factor, plus the shared experts), and compared with the
// model's own layer. Last, `export_hf` on a trained run directory.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <numeric>

#include "core/file_util.h"
#include "nn/model_test_util.h"
#include "train/checkpoint.h"
#include "train/hf_export.h"
#include "train/train_test_util.h"
#include "train/trainer.h"

namespace lmforge::train {
namespace {

namespace fs = std::filesystem;
using nn::ModelConfig;
using nn::RouterKind;
using Json = nlohmann::json;

// 3 layers, d_model 8, vocab 11.
ModelConfig base_config() {
  ModelConfig c = test::tiny_config();
  c.n_layers = 3;
  return c;
}

ModelConfig mixtral_config() {
  ModelConfig c = base_config();
  c.n_kv_heads = 1;  // GQA
  c.n_experts = 4, c.d_ff_expert = 6, c.top_k = 2;
  c.router = RouterKind::SoftmaxTopK;
  c.tied_embeddings = false;
  c.resolve();
  return c;
}

ModelConfig qwen3_moe_config() {
  ModelConfig c = base_config();
  c.qk_norm = true;
  c.head_dim = 6;  // not d_model / n_heads
  c.n_experts = 5, c.d_ff_expert = 4, c.top_k = 3;
  c.moe_layers = "every:2";  // layer 1 only
  c.normalize_gates = false;
  c.resolve();
  return c;
}

ModelConfig deepseek_v3_config(int64_t mtp_depth, int64_t shared) {
  ModelConfig c = base_config();
  c.attention = nn::AttentionKind::MLA;
  c.q_lora_rank = 6, c.kv_lora_rank = 5, c.qk_nope_head_dim = 3, c.qk_rope_head_dim = 2, c.v_head_dim = 4;
  c.n_experts = 4, c.d_ff_expert = 6, c.top_k = 2, c.n_shared_experts = shared;
  c.router = RouterKind::SigmoidTopK;
  c.moe_layers = "after:1";
  c.bias_update_rate = 0.01;
  c.mtp_depth = mtp_depth;
  c.resolve();
  return c;
}

// An f64 model with every parameter drawn from N(0, 0.5²) and, where the router keeps a
// balancing bias, that bias from N(0, 0.3²): far from zero, so it changes choices.
std::unique_ptr<nn::Transformer> make_model(const ModelConfig& c, uint64_t seed) {
  auto m = test::make_model(c, DType::F64, seed);
  Generator g(seed + 100);
  NoGradGuard ng;
  for (auto& p : m->named_parameters()) normal_(p.tensor, g, 0.0, 0.5);
  for (auto [name, b] : m->named_buffers())
    if (name.ends_with("e_score_correction_bias")) normal_(b, g, 0.0, 0.3);
  return m;
}

std::map<std::string, Tensor> by_name(const NamedTensors& t) {
  std::map<std::string, Tensor> m;
  for (const auto& [name, x] : t) {
    EXPECT_FALSE(m.count(name)) << name << " exported twice";
    m[name] = x;
  }
  return m;
}

std::vector<double> values(const Tensor& t) { return to_vector<double>(cast(contiguous(t), DType::F64)); }

// The model's tensors (parameters and buffers) by name.
std::map<std::string, Tensor> model_tensors(const nn::Transformer& m) {
  std::map<std::string, Tensor> out;
  for (const auto& p : m.named_parameters()) out[p.name] = p.tensor;
  for (const auto& [name, b] : m.named_buffers()) out[name] = b;
  return out;
}

// Every exported tensor equals `expected` (name -> tensor) and nothing else is exported.
void expect_exactly(const std::map<std::string, Tensor>& exported, const std::map<std::string, Tensor>& expected) {
  for (const auto& [name, t] : expected) {
    auto it = exported.find(name);
    if (it == exported.end()) {
      ADD_FAILURE() << name << " is missing from the export";
      continue;
    }
    EXPECT_EQ(it->second.shape(), t.shape()) << name;
    if (it->second.shape() == t.shape()) {
      EXPECT_EQ(values(it->second), values(t)) << name;
    }
  }
  for (const auto& [name, t] : exported) EXPECT_TRUE(expected.count(name)) << name << " is exported but not expected";
}

// The checkpoint's tensors outside the MoE layers, which the export keeps as they are.
std::map<std::string, Tensor> kept_tensors(const nn::Transformer& m) {
  std::map<std::string, Tensor> out;
  const ModelConfig& c = m.config();
  for (const auto& [name, t] : model_tensors(m)) {
    bool moe = false;
    for (int64_t l = 0; l < c.n_layers + c.mtp_depth; ++l)
      moe |= c.is_moe_layer(l) && name.starts_with(fmt::format("model.layers.{}.mlp.", l));
    if (!moe) out[name] = t;
  }
  return out;
}

TEST(HfExport, MixtralSplitsTheExpertsIntoW1W3W2) {
  const ModelConfig c = mixtral_config();
  auto m = make_model(c, 1);
  EXPECT_EQ(hf_architecture(c), HfArchitecture::Mixtral);
  const auto all = model_tensors(*m);
  auto expected = kept_tensors(*m);
  for (int64_t l = 0; l < c.n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    expected[p + "block_sparse_moe.gate.weight"] = all.at(p + "mlp.gate.weight");
    for (int64_t e = 0; e < c.n_experts; ++e) {
      const std::string q = fmt::format("{}block_sparse_moe.experts.{}.", p, e);
      expected[q + "w1.weight"] = select(all.at(p + "mlp.experts.gate_proj"), 0, e);
      expected[q + "w3.weight"] = select(all.at(p + "mlp.experts.up_proj"), 0, e);
      expected[q + "w2.weight"] = select(all.at(p + "mlp.experts.down_proj"), 0, e);
    }
  }
  const auto exported = by_name(hf_export_tensors(*m));
  expect_exactly(exported, expected);
  EXPECT_EQ(exported.at("model.layers.2.block_sparse_moe.experts.3.w1.weight").shape(), (Shape{6, 8}));
  EXPECT_EQ(exported.at("model.layers.2.block_sparse_moe.experts.3.w2.weight").shape(), (Shape{8, 6}));
  EXPECT_TRUE(exported.count("lm_head.weight"));  // untied

  const Json j = Json::parse(hf_export_config_json(c, 3));
  EXPECT_EQ(j.at("architectures"), Json::array({"MixtralForCausalLM"}));
  EXPECT_EQ(j.at("model_type"), "mixtral");
  EXPECT_EQ(j.at("num_local_experts"), 4);
  EXPECT_EQ(j.at("num_experts_per_tok"), 2);
  EXPECT_EQ(j.at("intermediate_size"), 6);
  EXPECT_EQ(j.at("num_key_value_heads"), 1);
  EXPECT_EQ(j.at("head_dim"), 4);
  EXPECT_EQ(j.at("sliding_window"), nullptr);
  EXPECT_EQ(j.at("tie_word_embeddings"), false);
  EXPECT_EQ(j.at("eos_token_id"), 3);
}

TEST(HfExport, Qwen3MoeKeepsDenseLayersAndListsThem) {
  ModelConfig c = qwen3_moe_config();
  auto m = make_model(c, 2);
  EXPECT_EQ(hf_architecture(c), HfArchitecture::Qwen3Moe);
  const auto all = model_tensors(*m);
  auto expected = kept_tensors(*m);
  const std::string p = "model.layers.1.mlp.";
  expected[p + "gate.weight"] = all.at(p + "gate.weight");
  for (int64_t e = 0; e < c.n_experts; ++e)
    for (const char* w : {"gate_proj", "up_proj", "down_proj"})
      expected[fmt::format("{}experts.{}.{}.weight", p, e, w)] = select(all.at(p + "experts." + w), 0, e);
  const auto exported = by_name(hf_export_tensors(*m));
  expect_exactly(exported, expected);
  EXPECT_TRUE(exported.count("model.layers.0.mlp.gate_proj.weight"));  // dense layers 0 and 2
  EXPECT_TRUE(exported.count("model.layers.1.self_attn.q_norm.weight"));

  Json j = Json::parse(hf_export_config_json(c, -1));
  EXPECT_EQ(j.at("architectures"), Json::array({"Qwen3MoeForCausalLM"}));
  EXPECT_EQ(j.at("model_type"), "qwen3_moe");
  EXPECT_EQ(j.at("num_experts"), 5);
  EXPECT_EQ(j.at("num_experts_per_tok"), 3);
  EXPECT_EQ(j.at("moe_intermediate_size"), 4);
  EXPECT_EQ(j.at("intermediate_size"), 16);
  EXPECT_EQ(j.at("head_dim"), 6);
  EXPECT_EQ(j.at("norm_topk_prob"), false);
  EXPECT_EQ(j.at("decoder_sparse_step"), 2);
  EXPECT_EQ(j.at("mlp_only_layers"), Json::array());
  EXPECT_FALSE(j.contains("eos_token_id"));

  // "after:N": every layer a MoE candidate (step 1), the first N listed dense.
  c.moe_layers = "after:2", c.n_layers = 4, c.normalize_gates = true;
  c.resolve();
  j = Json::parse(hf_export_config_json(c, -1));
  EXPECT_EQ(j.at("decoder_sparse_step"), 1);
  EXPECT_EQ(j.at("mlp_only_layers"), Json::array({0, 1}));
  EXPECT_EQ(j.at("norm_topk_prob"), true);
}

TEST(HfExport, DeepseekV3HasTheBiasSharedExpertsAndMtpLayers) {
  const ModelConfig c = deepseek_v3_config(/*mtp_depth=*/1, /*shared=*/2);
  auto m = make_model(c, 3);
  EXPECT_EQ(hf_architecture(c), HfArchitecture::DeepseekV3);
  const auto all = model_tensors(*m);
  auto expected = kept_tensors(*m);
  for (int64_t l : {1, 2, 3}) {  // layer 0 dense; 3 is the MTP module, MoE under "after:1"
    const std::string p = fmt::format("model.layers.{}.mlp.", l);
    for (const char* w : {"gate.weight", "gate.e_score_correction_bias", "shared_experts.gate_proj.weight",
                          "shared_experts.up_proj.weight", "shared_experts.down_proj.weight"})
      expected[p + w] = all.at(p + w);
    for (int64_t e = 0; e < c.n_experts; ++e)
      for (const char* w : {"gate_proj", "up_proj", "down_proj"})
        expected[fmt::format("{}experts.{}.{}.weight", p, e, w)] = select(all.at(p + "experts." + w), 0, e);
  }
  expected["model.layers.3.embed_tokens.weight"] = all.at("model.embed_tokens.weight");
  expected["model.layers.3.shared_head.head.weight"] = all.at("model.embed_tokens.weight");  // tied
  const auto exported = by_name(hf_export_tensors(*m));
  expect_exactly(exported, expected);
  EXPECT_TRUE(exported.count("model.layers.3.eh_proj.weight"));
  EXPECT_TRUE(exported.count("model.layers.0.mlp.gate_proj.weight"));
  EXPECT_EQ(exported.at("model.layers.1.mlp.shared_experts.up_proj.weight").shape(), (Shape{12, 8}));

  const Json j = Json::parse(hf_export_config_json(c, -1));
  EXPECT_EQ(j.at("architectures"), Json::array({"DeepseekV3ForCausalLM"}));
  EXPECT_EQ(j.at("num_hidden_layers"), 3);
  EXPECT_EQ(j.at("first_k_dense_replace"), 1);
  EXPECT_EQ(j.at("n_routed_experts"), 4);
  EXPECT_EQ(j.at("n_shared_experts"), 2);
  EXPECT_EQ(j.at("num_experts_per_tok"), 2);
  EXPECT_EQ(j.at("moe_intermediate_size"), 6);
  EXPECT_EQ(j.at("intermediate_size"), 16);
  EXPECT_EQ(j.at("n_group"), 1);
  EXPECT_EQ(j.at("topk_group"), 1);
  EXPECT_EQ(j.at("routed_scaling_factor"), 1.0);
  EXPECT_EQ(j.at("norm_topk_prob"), true);
  EXPECT_EQ(j.at("num_nextn_predict_layers"), 1);
  EXPECT_EQ(j.at("q_lora_rank"), 6);
}

TEST(HfExport, DeepseekV3WithoutBiasOrSharedExpertsExportsHfsDefaults) {
  ModelConfig c = deepseek_v3_config(0, 0);
  c.bias_update_rate = 0;
  c.moe_layers = "all";
  c.resolve();
  auto m = make_model(c, 4);
  const auto exported = by_name(hf_export_tensors(*m));
  for (int64_t l = 0; l < 3; ++l) {
    const std::string p = fmt::format("model.layers.{}.mlp.", l);
    EXPECT_EQ(values(exported.at(p + "gate.e_score_correction_bias")), std::vector<double>(4, 0.0));
    EXPECT_EQ(exported.at(p + "shared_experts.gate_proj.weight").shape(), (Shape{0, 8}));
    EXPECT_EQ(exported.at(p + "shared_experts.down_proj.weight").shape(), (Shape{8, 0}));
  }
  const Json j = Json::parse(hf_export_config_json(c, -1));
  EXPECT_EQ(j.at("first_k_dense_replace"), 0);
  EXPECT_EQ(j.at("n_shared_experts"), 0);
  EXPECT_FALSE(j.contains("num_nextn_predict_layers"));
}

TEST(HfExport, DenseModelsExportAsTheirCheckpointsDo) {
  ModelConfig llama = base_config();
  llama.resolve();
  auto m = make_model(llama, 5);
  EXPECT_EQ(hf_architecture(llama), HfArchitecture::Llama);
  expect_exactly(by_name(hf_export_tensors(*m)), model_tensors(*m));
  EXPECT_EQ(Json::parse(hf_export_config_json(llama, 2)), Json::parse(hf_config_json(llama, 2)));

  ModelConfig qwen3 = base_config();
  qwen3.qk_norm = true;
  qwen3.resolve();
  EXPECT_EQ(hf_architecture(qwen3), HfArchitecture::Qwen3);
  EXPECT_EQ(Json::parse(hf_export_config_json(qwen3, -1)), Json::parse(hf_config_json(qwen3, -1)));

  // Dense MLA: the checkpoint's DeepSeek-V3 config; with MTP modules those layers count as
  // dense too and are announced.
  ModelConfig mla = deepseek_v3_config(0, 0);
  mla.n_experts = 0, mla.d_ff_expert = 0, mla.bias_update_rate = 0, mla.moe_layers = "all";
  mla.resolve();
  EXPECT_EQ(Json::parse(hf_export_config_json(mla, -1)), Json::parse(hf_config_json(mla, -1)));
  mla.mtp_depth = 2;
  const Json j = Json::parse(hf_export_config_json(mla, -1));
  EXPECT_EQ(j.at("first_k_dense_replace"), 5);
  EXPECT_EQ(j.at("num_nextn_predict_layers"), 2);
}

// ---- the plain-loop reference of a MoE layer, from the export alone ----

double silu(double v) { return v / (1.0 + std::exp(-v)); }

// w [rows, cols] row-major times x [cols].
std::vector<double> matvec(const std::vector<double>& w, const std::vector<double>& x) {
  const size_t cols = x.size(), rows = w.size() / cols;
  std::vector<double> y(rows, 0.0);
  for (size_t r = 0; r < rows; ++r)
    for (size_t k = 0; k < cols; ++k) y[r] += w[r * cols + k] * x[k];
  return y;
}

// down(silu(gate·x) ⊙ up·x): an HF SwiGLU MLP.
std::vector<double> swiglu_mlp(const std::vector<double>& gate, const std::vector<double>& up,
                               const std::vector<double>& down, const std::vector<double>& x) {
  std::vector<double> h = matvec(gate, x);
  const std::vector<double> u = matvec(up, x);
  for (size_t i = 0; i < h.size(); ++i) h[i] = silu(h[i]) * u[i];
  return h.empty() ? std::vector<double>(x.size(), 0.0) : matvec(down, h);
}

// Layer `layer`'s MoE output for tokens x [N][C], reading the exported tensors and config.json
// the way HF's MixtralSparseMoeBlock, Qwen3MoeSparseMoeBlock and DeepseekV3MoE do.
std::vector<std::vector<double>> hf_moe_reference(const Json& cfg, const std::map<std::string, Tensor>& w,
                                                  int64_t layer, const std::vector<std::vector<double>>& x) {
  const std::string arch = cfg.at("architectures")[0];
  const bool mixtral = arch == "MixtralForCausalLM", deepseek = arch == "DeepseekV3ForCausalLM";
  const std::string p = fmt::format("model.layers.{}.{}", layer, mixtral ? "block_sparse_moe." : "mlp.");
  const int64_t n_experts = mixtral ? cfg.at("num_local_experts").get<int64_t>()
                            : deepseek ? cfg.at("n_routed_experts").get<int64_t>()
                                       : cfg.at("num_experts").get<int64_t>();
  const int64_t k = cfg.at("num_experts_per_tok");
  const bool normalise = mixtral || cfg.at("norm_topk_prob").get<bool>();
  const double scale = deepseek ? cfg.at("routed_scaling_factor").get<double>() : 1.0;
  const std::vector<double> router = values(w.at(p + "gate.weight"));
  const std::vector<double> bias =
      deepseek ? values(w.at(p + "gate.e_score_correction_bias")) : std::vector<double>(size_t(n_experts), 0.0);
  const auto expert = [&](int64_t e, const char* which) {
    static const std::map<std::string, std::string> mixtral_names = {
        {"gate_proj", "w1"}, {"up_proj", "w3"}, {"down_proj", "w2"}};
    return values(w.at(mixtral ? fmt::format("{}experts.{}.{}.weight", p, e, mixtral_names.at(which))
                               : fmt::format("{}experts.{}.{}.weight", p, e, which)));
  };
  std::vector<std::vector<double>> y;
  for (const auto& xt : x) {
    const std::vector<double> logits = matvec(router, xt);
    std::vector<double> score(logits.size());
    if (deepseek) {
      for (size_t e = 0; e < score.size(); ++e) score[e] = 1.0 / (1.0 + std::exp(-logits[e]));
    } else {
      const double mx = *std::max_element(logits.begin(), logits.end());
      double z = 0;
      for (size_t e = 0; e < score.size(); ++e) z += std::exp(logits[e] - mx);
      for (size_t e = 0; e < score.size(); ++e) score[e] = std::exp(logits[e] - mx) / z;
    }
    std::vector<int64_t> order(static_cast<size_t>(n_experts));
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(),
              [&](int64_t a, int64_t b) { return score[a] + bias[a] > score[b] + bias[b]; });
    double total = 0;
    for (int64_t i = 0; i < k; ++i) total += score[order[i]];
    std::vector<double> yt(xt.size(), 0.0);
    for (int64_t i = 0; i < k; ++i) {
      const int64_t e = order[i];
      const double g = (normalise ? score[e] / total : score[e]) * scale;
      const auto out = swiglu_mlp(expert(e, "gate_proj"), expert(e, "up_proj"), expert(e, "down_proj"), xt);
      for (size_t c = 0; c < yt.size(); ++c) yt[c] += g * out[c];
    }
    if (deepseek) {
      const std::string s = p + "shared_experts.";
      const auto out = swiglu_mlp(values(w.at(s + "gate_proj.weight")), values(w.at(s + "up_proj.weight")),
                                  values(w.at(s + "down_proj.weight")), xt);
      for (size_t c = 0; c < yt.size(); ++c) yt[c] += out[c];
    }
    y.push_back(yt);
  }
  return y;
}

// Every MoE layer of `c` (MTP modules' included) against hf_moe_reference.
void expect_moe_layers_match_reference(const ModelConfig& c, uint64_t seed) {
  auto m = make_model(c, seed);
  m->set_training(false);
  const auto exported = by_name(hf_export_tensors(*m));
  const Json cfg = Json::parse(hf_export_config_json(c, -1));
  Generator g(seed + 7);
  const int64_t n = 12;
  const Tensor x = randn({1, n, c.d_model}, g, DType::F64);
  const std::vector<double> xv = values(x);
  std::vector<std::vector<double>> tokens;
  for (int64_t t = 0; t < n; ++t) tokens.emplace_back(xv.begin() + t * c.d_model, xv.begin() + (t + 1) * c.d_model);
  int64_t checked = 0;
  for (int64_t l = 0; l < c.n_layers + c.mtp_depth; ++l) {
    if (!c.is_moe_layer(l)) continue;
    const nn::TransformerBlock& block =
        l < c.n_layers ? *m->layers()[size_t(l)] : *m->mtp_modules()[size_t(l - c.n_layers)];
    const std::vector<double> ours = values(block.ffn().forward(x, nullptr));
    const auto ref = hf_moe_reference(cfg, exported, l, tokens);
    double worst = 0;
    for (int64_t t = 0; t < n; ++t)
      for (int64_t k = 0; k < c.d_model; ++k)
        worst = std::max(worst, std::abs(ours[size_t(t * c.d_model + k)] - ref[size_t(t)][size_t(k)]));
    EXPECT_LT(worst, 1e-12) << cfg.at("architectures")[0] << " layer " << l;
    ++checked;
  }
  EXPECT_GT(checked, 0);
}

TEST(HfExport, MixtralLayersEqualAPerExpertLoopOverTheExport) {
  expect_moe_layers_match_reference(mixtral_config(), 11);
}

TEST(HfExport, Qwen3MoeLayersEqualAPerExpertLoopOverTheExport) {
  expect_moe_layers_match_reference(qwen3_moe_config(), 12);
  ModelConfig c = qwen3_moe_config();
  c.normalize_gates = true;
  c.resolve();
  expect_moe_layers_match_reference(c, 13);
}

TEST(HfExport, DeepseekV3LayersEqualAPerExpertLoopOverTheExport) {
  // The bias (nonzero here) moves the choice but not the gates; the MTP module's layer is MoE.
  expect_moe_layers_match_reference(deepseek_v3_config(1, 1), 14);
  expect_moe_layers_match_reference(deepseek_v3_config(0, 0), 15);
}

// The whole Mixtral forward (HF MixtralForCausalLM: RMSNorm, GQA attention with half-split RoPE,
// the MoE block) in plain loops over the exported tensors and config.json alone, against the
// model's logits.
std::vector<double> rms_norm(const std::vector<double>& x, const std::vector<double>& w, double eps) {
  double ms = 0;
  for (double v : x) ms += v * v;
  const double r = 1.0 / std::sqrt(ms / double(x.size()) + eps);
  std::vector<double> y(x.size());
  for (size_t i = 0; i < x.size(); ++i) y[i] = x[i] * r * w[i];
  return y;
}

std::vector<std::vector<double>> mixtral_logits_reference(const Json& cfg, const std::map<std::string, Tensor>& w,
                                                          const std::vector<int64_t>& ids) {
  const int64_t d = cfg.at("hidden_size"), n_layers = cfg.at("num_hidden_layers"), vocab = cfg.at("vocab_size");
  const int64_t heads = cfg.at("num_attention_heads"), kv_heads = cfg.at("num_key_value_heads");
  const int64_t hd = cfg.at("head_dim");
  const double eps = cfg.at("rms_norm_eps"), theta = cfg.at("rope_theta");
  const size_t t_len = ids.size();
  const std::vector<double> embed = values(w.at("model.embed_tokens.weight"));
  std::vector<std::vector<double>> h;
  for (int64_t id : ids) h.emplace_back(embed.begin() + id * d, embed.begin() + (id + 1) * d);
  // Half-split RoPE of one head vector at position pos (HF rotate_half).
  const auto rope = [&](std::vector<double>& v, size_t off, size_t pos) {
    for (int64_t i = 0; i < hd / 2; ++i) {
      const double f = double(pos) * std::pow(theta, -2.0 * double(i) / double(hd));
      const double a = v[off + i], b = v[off + i + hd / 2];
      v[off + i] = a * std::cos(f) - b * std::sin(f);
      v[off + i + hd / 2] = b * std::cos(f) + a * std::sin(f);
    }
  };
  for (int64_t l = 0; l < n_layers; ++l) {
    const std::string p = fmt::format("model.layers.{}.", l);
    std::vector<std::vector<double>> q, k, v;
    for (size_t t = 0; t < t_len; ++t) {
      const auto x = rms_norm(h[t], values(w.at(p + "input_layernorm.weight")), eps);
      q.push_back(matvec(values(w.at(p + "self_attn.q_proj.weight")), x));
      k.push_back(matvec(values(w.at(p + "self_attn.k_proj.weight")), x));
      v.push_back(matvec(values(w.at(p + "self_attn.v_proj.weight")), x));
      for (int64_t hh = 0; hh < heads; ++hh) rope(q[t], size_t(hh * hd), t);
      for (int64_t hh = 0; hh < kv_heads; ++hh) rope(k[t], size_t(hh * hd), t);
    }
    std::vector<std::vector<double>> moe_in;
    for (size_t t = 0; t < t_len; ++t) {
      std::vector<double> attn(size_t(heads * hd), 0.0);
      for (int64_t hh = 0; hh < heads; ++hh) {
        const size_t qo = size_t(hh * hd), ko = size_t(hh / (heads / kv_heads) * hd);
        std::vector<double> s(t + 1);
        for (size_t u = 0; u <= t; ++u) {
          for (int64_t i = 0; i < hd; ++i) s[u] += q[t][qo + i] * k[u][ko + i];
          s[u] /= std::sqrt(double(hd));
        }
        const double mx = *std::max_element(s.begin(), s.end());
        double z = 0;
        for (double& e : s) z += (e = std::exp(e - mx));
        for (size_t u = 0; u <= t; ++u)
          for (int64_t i = 0; i < hd; ++i) attn[qo + i] += s[u] / z * v[u][ko + i];
      }
      const auto o = matvec(values(w.at(p + "self_attn.o_proj.weight")), attn);
      for (int64_t i = 0; i < d; ++i) h[t][i] += o[i];
      moe_in.push_back(rms_norm(h[t], values(w.at(p + "post_attention_layernorm.weight")), eps));
    }
    const auto moe_out = hf_moe_reference(cfg, w, l, moe_in);
    for (size_t t = 0; t < t_len; ++t)
      for (int64_t i = 0; i < d; ++i) h[t][i] += moe_out[t][i];
  }
  const std::vector<double> head =
      values(w.count("lm_head.weight") ? w.at("lm_head.weight") : w.at("model.embed_tokens.weight"));
  std::vector<std::vector<double>> logits;
  for (size_t t = 0; t < t_len; ++t) {
    logits.push_back(matvec(head, rms_norm(h[t], values(w.at("model.norm.weight")), eps)));
    EXPECT_EQ(int64_t(logits.back().size()), vocab);
  }
  return logits;
}

TEST(HfExport, MixtralLogitsEqualAPlainLoopForwardOverTheExport) {
  for (bool tied : {false, true}) {
    ModelConfig c = mixtral_config();
    c.tied_embeddings = tied;
    c.rope_theta = 500.0;  // positions up to 7 turn the low frequencies noticeably
    c.resolve();
    auto m = make_model(c, 21);
    m->set_training(false);
    const auto exported = by_name(hf_export_tensors(*m));
    const Json cfg = Json::parse(hf_export_config_json(c, -1));
    const Tensor ids = test::random_ids(1, c.context_length, c.vocab_size, 5);
    const std::vector<double> ours = values(m->forward(ids));
    const auto ref = mixtral_logits_reference(cfg, exported, to_vector<int64_t>(ids));
    double worst = 0, scale = 0;
    for (size_t t = 0; t < ref.size(); ++t)
      for (size_t v = 0; v < ref[t].size(); ++v) {
        worst = std::max(worst, std::abs(ours[t * ref[t].size() + v] - ref[t][v]));
        scale = std::max(scale, std::abs(ref[t][v]));
      }
    EXPECT_LT(worst, 1e-10 * std::max(1.0, scale)) << "tied " << tied;
    EXPECT_GT(scale, 0.1);  // the logits are far from zero, so the comparison means something
  }
}

// ---- what has no HF equivalent ----

TEST(HfExport, RefusesWhatNoHfArchitectureComputesNamingTheKey) {
  struct Case {
    const char* key;
    std::function<void(ModelConfig&)> change;
    ModelConfig (*base)();
  };
  const auto mixtral = [] { return mixtral_config(); };
  const auto deepseek = [] { return deepseek_v3_config(0, 1); };
  const auto dense = [] { return base_config(); };
  const Case cases[] = {
      {"model.norm", [](ModelConfig& c) { c.norm = nn::NormKind::LayerNorm; }, dense},
      {"model.norm_position", [](ModelConfig& c) { c.norm_position = nn::NormPosition::Post; }, dense},
      {"model.ffn", [](ModelConfig& c) { c.ffn = nn::FfnKind::GELU; }, dense},
      {"model.position", [](ModelConfig& c) { c.position = nn::PositionKind::Learned; }, dense},
      {"model.mtp_depth", [](ModelConfig& c) { c.mtp_depth = 1; }, dense},
      {"model.router", [](ModelConfig& c) { c.router = RouterKind::ExpertChoice, c.capacity_factor = 1.0; }, mixtral},
      {"model.capacity_factor", [](ModelConfig& c) { c.capacity_factor = 1.25; }, mixtral},
      {"model.bias_update_rate", [](ModelConfig& c) { c.bias_update_rate = 0.01; }, mixtral},
      {"model.router", [](ModelConfig& c) { c.router = RouterKind::SigmoidTopK; }, mixtral},
      {"model.n_shared_experts", [](ModelConfig& c) { c.n_shared_experts = 1; }, mixtral},
      {"model.normalize_gates", [](ModelConfig& c) { c.normalize_gates = false; }, mixtral},
      {"model.moe_layers", [](ModelConfig& c) { c.moe_layers = "after:1"; }, mixtral},
      {"model.router", [](ModelConfig& c) { c.router = RouterKind::SoftmaxTopK, c.bias_update_rate = 0; }, deepseek},
      {"model.moe_layers", [](ModelConfig& c) { c.moe_layers = "every:2"; }, deepseek},
      {"model.capacity_factor", [](ModelConfig& c) { c.capacity_factor = 2.0; }, deepseek},
  };
  for (const Case& k : cases) {
    ModelConfig c = k.base();
    k.change(c);
    c.resolve();
    const std::string e = test::error_of([&] { hf_architecture(c); });
    EXPECT_NE(e.find(k.key), std::string::npos) << k.key << ": " << e;
    EXPECT_NE(e.find("no HF equivalent"), std::string::npos) << e;
    EXPECT_EQ(test::error_of([&] { hf_export_config_json(c, -1); }), e);
  }
}

// ---- export_hf on a trained run ----

class HfExportRun : public test::PatternShardsTest {};

TEST_F(HfExportRun, WritesTheDirectoryFromARunAndRefusesToOverwrite) {
  RunConfig c = run("run");
  c.model.attention = nn::AttentionKind::MLA;
  c.model.kv_lora_rank = 8, c.model.qk_nope_head_dim = 4, c.model.qk_rope_head_dim = 4, c.model.v_head_dim = 4;
  c.model.n_experts = 4, c.model.d_ff_expert = 8, c.model.top_k = 2, c.model.n_shared_experts = 1;
  c.model.router = RouterKind::SigmoidTopK;
  c.model.moe_layers = "after:1";
  c.model.bias_update_rate = 0.01;
  c.model.mtp_depth = 1;
  c.train.steps = 4;
  const TrainSummary s = run_training(c, {.quiet = true});
  const std::string out = root_ + "/export";
  const HfExportSummary e = export_hf(root_ + "/run", out);  // the run directory: its newest checkpoint
  EXPECT_EQ(e.checkpoint, s.last_checkpoint);
  EXPECT_EQ(e.architecture, HfArchitecture::DeepseekV3);
  EXPECT_FALSE(e.tokenizer);

  const LoadedModel loaded = load_checkpoint_model(s.last_checkpoint, Device::cpu(), Precision::F32);
  const NamedTensors expected = hf_export_tensors(*loaded.model);
  SafetensorsFile f(out + "/model.safetensors");
  ASSERT_EQ(f.names().size(), expected.size());
  EXPECT_EQ(e.tensors, int64_t(expected.size()));
  for (const auto& [name, t] : expected) {
    ASSERT_TRUE(f.contains(name)) << name;
    EXPECT_EQ(values(f.get(name)), values(t)) << name;
  }
  // Training moved the balancing bias, and the export carries it.
  const std::vector<double> bias = values(f.get("model.layers.1.mlp.gate.e_score_correction_bias"));
  EXPECT_TRUE(std::any_of(bias.begin(), bias.end(), [](double b) { return b != 0; }));
  EXPECT_EQ(Json::parse(read_file(out + "/config.json")), Json::parse(hf_export_config_json(loaded.config.model, -1)));
  EXPECT_FALSE(fs::exists(out + "/generation_config.json"));  // no tokenizer, no end-of-text id

  const std::string again = test::error_of([&] { export_hf(root_ + "/run", out); });
  EXPECT_NE(again.find("already exists"), std::string::npos) << again;
}

// `lmforge export` itself: the directory, a trailing slash on --output, and an unknown format.
TEST_F(HfExportRun, CommandLineExportsARunAndRefusesAnUnknownFormat) {
  const std::string lmforge = std::string(LMFORGE_BINARY_DIR) + "/lmforge";
  if (!fs::exists(lmforge)) GTEST_SKIP() << lmforge << " is not built";
  RunConfig c = run("run");
  c.model.n_experts = 4, c.model.d_ff_expert = 8, c.model.top_k = 2;
  c.train.steps = 2;
  run_training(c, {.quiet = true});
  const std::string out = root_ + "/mixtral";
  const std::string cmd = fmt::format("{} export {}/run --output {}/ > {}/stdout.txt", lmforge, root_, out, root_);
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  EXPECT_NE(read_file(root_ + "/stdout.txt").find("as MixtralForCausalLM into"), std::string::npos)
      << read_file(root_ + "/stdout.txt");
  EXPECT_EQ(Json::parse(read_file(out + "/config.json")).at("model_type"), "mixtral");
  const SafetensorsFile weights(out + "/model.safetensors");
  EXPECT_TRUE(weights.contains("model.layers.1.block_sparse_moe.experts.3.w2.weight"));
  EXPECT_NE(std::system(fmt::format("{} export {}/run --output {}/other --format gguf 2> {}/stderr.txt", lmforge, root_,
                                    root_, root_).c_str()), 0);
  EXPECT_NE(read_file(root_ + "/stderr.txt").find("--format \"gguf\""), std::string::npos)
      << read_file(root_ + "/stderr.txt");
  EXPECT_FALSE(fs::exists(root_ + "/other"));
}

TEST_F(HfExportRun, ARefusedModelLeavesNoOutput) {
  RunConfig c = run("run");
  c.model.n_experts = 4, c.model.d_ff_expert = 8, c.model.top_k = 2;
  c.model.router = RouterKind::ExpertChoice;
  c.model.capacity_factor = 1.0;
  c.train.steps = 2;
  run_training(c, {.quiet = true});
  const std::string e = test::error_of([&] { export_hf(root_ + "/run", root_ + "/export"); });
  EXPECT_NE(e.find("model.router"), std::string::npos) << e;
  for (const auto& entry : fs::directory_iterator(root_))
    EXPECT_FALSE(entry.path().filename().string().find("export") != std::string::npos) << entry.path();
}

}  // namespace
}  // namespace lmforge::train
