#include "train/hf_config.h"

#include <algorithm>
#include <nlohmann/json.hpp>
#include <vector>

#include "core/error.h"

namespace lmforge::train {

namespace {

using Json = nlohmann::ordered_json;

// The attention and shape keys of the decoders whose attention is Llama's (Llama, Qwen3,
// Mixtral, Qwen3-MoE).
void llama_attention_keys(Json& j, const nn::ModelConfig& c) {
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["num_hidden_layers"] = c.n_layers;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_kv_heads;
  j["head_dim"] = c.head_dim;
  j["max_position_embeddings"] = c.context_length;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;
  j["attention_dropout"] = 0.0;
}

// The keys every exported config ends with.
void closing_keys(Json& j, const nn::ModelConfig& c) {
  j["tie_word_embeddings"] = c.tied_embeddings;
  j["initializer_range"] = c.init_std;
  j["torch_dtype"] = "float32";
  j["use_cache"] = true;
}

// LlamaConfig's keys, or Qwen3Config's (the same without mlp_bias).
void llama_keys(Json& j, const nn::ModelConfig& c, bool qwen3) {
  j["architectures"] = {qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM"};
  j["model_type"] = qwen3 ? "qwen3" : "llama";
  llama_attention_keys(j, c);
  j["intermediate_size"] = c.d_ff;
  j["attention_bias"] = c.bias;
  if (!qwen3) j["mlp_bias"] = c.bias;
  closing_keys(j, c);
}

// DeepseekV3Config's keys for a dense model (every layer dense); the export fills in the experts.
void deepseek_v3_keys(Json& j, const nn::ModelConfig& c) {
  j["architectures"] = {"DeepseekV3ForCausalLM"};
  j["model_type"] = "deepseek_v3";
  j["vocab_size"] = c.vocab_size;
  j["hidden_size"] = c.d_model;
  j["intermediate_size"] = c.d_ff;
  j["num_hidden_layers"] = c.n_layers;
  j["first_k_dense_replace"] = c.n_layers;  // every layer dense
  j["n_routed_experts"] = 1;                // unused while every layer is dense; must be a valid size
  j["n_shared_experts"] = 0;
  j["num_experts_per_tok"] = 1;
  j["moe_intermediate_size"] = c.d_ff;
  j["n_group"] = 1;
  j["topk_group"] = 1;
  j["routed_scaling_factor"] = 1.0;
  j["norm_topk_prob"] = true;
  j["num_attention_heads"] = c.n_heads;
  j["num_key_value_heads"] = c.n_heads;
  if (c.q_lora_rank > 0)
    j["q_lora_rank"] = c.q_lora_rank;
  else
    j["q_lora_rank"] = nullptr;  // q_proj
  j["kv_lora_rank"] = c.kv_lora_rank;
  j["qk_nope_head_dim"] = c.qk_nope_head_dim;
  j["qk_rope_head_dim"] = c.qk_rope_head_dim;
  j["v_head_dim"] = c.v_head_dim;
  j["max_position_embeddings"] = c.context_length;
  j["hidden_act"] = "silu";
  j["rms_norm_eps"] = c.norm_eps;
  j["rope_theta"] = c.rope_theta;
  j["rope_scaling"] = nullptr;   // no YaRN: the softmax scale is the plain 1/sqrt(qk head dim)
  j["rope_interleave"] = true;   // pairs (2i, 2i + 1), as nn/mla.h rotates them
  j["attention_bias"] = false;
  j["attention_dropout"] = 0.0;
  closing_keys(j, c);
}

// The index of the first MoE layer, counting the MTP modules' layers after the main ones
// (n_layers + mtp_depth when there is none).
int64_t first_moe_layer(const nn::ModelConfig& c) {
  const int64_t total = c.n_layers + c.mtp_depth;
  for (int64_t i = 0; i < total; ++i)
    if (c.is_moe_layer(i)) return i;
  return total;
}

void mixtral_keys(Json& j, const nn::ModelConfig& c) {
  j["architectures"] = {"MixtralForCausalLM"};
  j["model_type"] = "mixtral";
  llama_attention_keys(j, c);
  j["sliding_window"] = nullptr;  // full causal attention in every layer
  j["intermediate_size"] = c.d_ff_expert;  // each expert's width: Mixtral has no dense FFN
  j["num_local_experts"] = c.n_experts;
  j["num_experts_per_tok"] = c.top_k;
  j["router_jitter_noise"] = 0.0;
  j["output_router_logits"] = false;
  closing_keys(j, c);
}

void qwen3_moe_keys(Json& j, const nn::ModelConfig& c) {
  j["architectures"] = {"Qwen3MoeForCausalLM"};
  j["model_type"] = "qwen3_moe";
  llama_attention_keys(j, c);
  j["sliding_window"] = nullptr;
  j["use_sliding_window"] = false;
  j["attention_bias"] = false;
  j["intermediate_size"] = c.d_ff;  // the dense layers'
  j["moe_intermediate_size"] = c.d_ff_expert;
  j["num_experts"] = c.n_experts;
  j["num_experts_per_tok"] = c.top_k;
  j["norm_topk_prob"] = c.normalize_gates;
  // HF: layer i is MoE when (i + 1) % decoder_sparse_step == 0 and i is not in mlp_only_layers.
  // "every:K" is decoder_sparse_step K; every other selection is step 1 with its dense layers
  // listed, which reproduces any selection exactly.
  int64_t step = 1;
  if (c.moe_layers.starts_with("every:")) step = std::stoll(c.moe_layers.substr(6));
  std::vector<int64_t> mlp_only;
  for (int64_t i = 0; i < c.n_layers; ++i)
    if ((i + 1) % step == 0 && !c.is_moe_layer(i)) mlp_only.push_back(i);
  for (int64_t i = 0; i < c.n_layers; ++i)
    LF_ASSERT(c.is_moe_layer(i) == ((i + 1) % step == 0 && !std::count(mlp_only.begin(), mlp_only.end(), i)),
              "Qwen3-MoE layer selection differs at layer {}", i);
  j["decoder_sparse_step"] = step;
  j["mlp_only_layers"] = mlp_only;
  j["output_router_logits"] = false;
  closing_keys(j, c);
}

// The experts and the MTP modules on top of deepseek_v3_keys().
void deepseek_v3_export_keys(Json& j, const nn::ModelConfig& c) {
  deepseek_v3_keys(j, c);
  // HF DeepSeek-V3: layer i is MoE when i >= first_k_dense_replace; the MTP layers continue the
  // numbering, so a dense model with MTP modules counts those as dense too.
  j["first_k_dense_replace"] = first_moe_layer(c);
  if (c.n_experts > 0) {
    j["n_routed_experts"] = c.n_experts;
    j["n_shared_experts"] = c.n_shared_experts;
    j["num_experts_per_tok"] = c.top_k;
    j["moe_intermediate_size"] = c.d_ff_expert;
    // What DeepSeek-V3's own code reads (HF's class computes the same without them).
    j["scoring_func"] = "sigmoid";
    j["topk_method"] = "noaux_tc";
  }
  if (c.mtp_depth > 0) j["num_nextn_predict_layers"] = c.mtp_depth;
}

std::string with_token_ids(Json& j, int64_t eos_token_id) {
  if (eos_token_id >= 0) {
    j["bos_token_id"] = eos_token_id;
    j["eos_token_id"] = eos_token_id;
  }
  return j.dump(2) + "\n";
}

}  // namespace

std::string hf_config_json(const nn::ModelConfig& c, int64_t eos_token_id) {
  Json j;
  const bool qwen3 = c.qk_norm && !c.bias && c.norm == nn::NormKind::RmsNorm &&
                     c.norm_position == nn::NormPosition::Pre && c.ffn == nn::FfnKind::SwiGLU &&
                     c.position == nn::PositionKind::Rope && c.n_experts == 0 && !c.is_mla();
  // DeepSeek-V3's layer is Llama's with MLA for the attention; its MoE layers are left to the
  // "lmforge" config (their expert tensors are stored stacked here, one tensor per expert there:
  // `lmforge export` writes that layout).
  const bool deepseek_v3 = c.is_mla() && !c.bias && c.norm == nn::NormKind::RmsNorm &&
                           c.norm_position == nn::NormPosition::Pre && c.ffn == nn::FfnKind::SwiGLU &&
                           c.n_experts == 0;
  if (deepseek_v3) {
    deepseek_v3_keys(j, c);
  } else if (c.is_llama() || qwen3) {
    llama_keys(j, c, qwen3);
  } else {
    j["architectures"] = {"LmforgeForCausalLM"};
    j["model_type"] = "lmforge";
    // Every [model] key under its config name (nn/model_config.h), enums as their spellings.
    c.visit_fields([&]<class T>(std::string_view name, const T& value, std::string_view) {
      if constexpr (std::is_same_v<T, int64_t> || std::is_same_v<T, double> || std::is_same_v<T, bool> ||
                    std::is_same_v<T, std::string>)
        j[std::string(name)] = value;
      else
        j[std::string(name)] = std::string(nn::to_string(value));
    });
    j["torch_dtype"] = "float32";
  }
  return with_token_ids(j, eos_token_id);
}

std::string_view hf_class_name(HfArchitecture a) {
  switch (a) {
    case HfArchitecture::Llama: return "LlamaForCausalLM";
    case HfArchitecture::Qwen3: return "Qwen3ForCausalLM";
    case HfArchitecture::DeepseekV3: return "DeepseekV3ForCausalLM";
    case HfArchitecture::Mixtral: return "MixtralForCausalLM";
    case HfArchitecture::Qwen3Moe: return "Qwen3MoeForCausalLM";
  }
  LF_ASSERT(false, "unknown HF architecture {}", int(a));
  return "";
}

HfArchitecture hf_architecture(const nn::ModelConfig& c) {
  using nn::RouterKind;
  // Every architecture exported is a pre-norm RMSNorm SwiGLU RoPE decoder.
  LF_CHECK(c.norm == nn::NormKind::RmsNorm, "HF export: model.norm = \"layernorm\" has no HF equivalent here (Llama, "
           "Qwen3, Mixtral, Qwen3-MoE and DeepSeek-V3 use RMSNorm)");
  LF_CHECK(c.norm_position == nn::NormPosition::Pre, "HF export: model.norm_position = \"post\" has no HF equivalent "
           "here (Llama, Qwen3, Mixtral, Qwen3-MoE and DeepSeek-V3 are pre-norm)");
  LF_CHECK(c.ffn == nn::FfnKind::SwiGLU, "HF export: model.ffn = \"gelu\" has no HF equivalent here (Llama, Qwen3, "
           "Mixtral, Qwen3-MoE and DeepSeek-V3 use SwiGLU)");
  LF_CHECK(c.position == nn::PositionKind::Rope, "HF export: model.position = \"learned\" has no HF equivalent here "
           "(Llama, Qwen3, Mixtral, Qwen3-MoE and DeepSeek-V3 use RoPE)");
  if (c.n_experts > 0) {
    LF_CHECK(c.router != RouterKind::ExpertChoice, "HF export: model.router = \"expert_choice\" has no HF "
             "equivalent (HF MoE models route by token choice: softmax_topk or, with MLA, sigmoid_topk)");
    LF_CHECK(c.capacity_factor == 0, "HF export: model.capacity_factor = {} has no HF equivalent (HF MoE models "
             "are dropless; set it to 0)", c.capacity_factor);
  }
  if (c.is_mla()) {
    LF_CHECK(!c.bias, "HF export: model.bias = true with model.attention = \"mla\" has no HF equivalent "
             "(DeepSeek-V3's MLP has no biases)");
    if (c.n_experts > 0) {
      LF_CHECK(c.router == RouterKind::SigmoidTopK, "HF export: model.router = \"{}\" with model.attention = \"mla\" "
               "has no HF equivalent (DeepSeek-V3 routes by sigmoid_topk)", nn::to_string(c.router));
      LF_CHECK(c.n_experts >= 2, "HF export: model.n_experts = 1 has no HF equivalent (DeepSeek-V3's router needs "
               "at least 2 experts)");
      const int64_t first = first_moe_layer(c);
      for (int64_t i = first; i < c.n_layers + c.mtp_depth; ++i)
        LF_CHECK(c.is_moe_layer(i), "HF export: model.moe_layers = \"{}\" has no HF equivalent with model.attention = "
                 "\"mla\" (DeepSeek-V3's layers are MoE from first_k_dense_replace on, the MTP modules' included; "
                 "use \"all\" or \"after:N\"); layer {} is dense", c.moe_layers, i);
    }
    return HfArchitecture::DeepseekV3;
  }
  LF_CHECK(c.mtp_depth == 0, "HF export: model.mtp_depth = {} with model.attention = \"mha\" has no HF equivalent "
           "(DeepSeek-V3, which stores multi-token prediction modules, has MLA only)", c.mtp_depth);
  if (c.n_experts == 0) {
    if (!c.qk_norm) return HfArchitecture::Llama;
    LF_CHECK(!c.bias, "HF export: model.bias = true with model.qk_norm = true has no HF equivalent (Qwen3's MLP has "
             "no biases)");
    return HfArchitecture::Qwen3;
  }
  LF_CHECK(c.router != RouterKind::SigmoidTopK, "HF export: model.router = \"sigmoid_topk\" with model.attention = "
           "\"mha\" has no HF equivalent (DeepSeek-V3, the HF model with a sigmoid router, has MLA only)");
  LF_CHECK(c.bias_update_rate == 0, "HF export: model.bias_update_rate = {} with model.router = \"softmax_topk\" has "
           "no HF equivalent (Mixtral and Qwen3-MoE have no expert bias; DeepSeek-V3 has, with sigmoid_topk and MLA)",
           c.bias_update_rate);
  LF_CHECK(c.n_shared_experts == 0, "HF export: model.n_shared_experts = {} with model.attention = \"mha\" has no "
           "HF equivalent (Mixtral and Qwen3-MoE have no shared experts; DeepSeek-V3 has, with MLA)",
           c.n_shared_experts);
  if (c.qk_norm) return HfArchitecture::Qwen3Moe;
  LF_CHECK(c.normalize_gates, "HF export: model.normalize_gates = false without model.qk_norm has no HF equivalent "
           "(Mixtral always renormalises the chosen gates; Qwen3-MoE, with model.qk_norm = true, has norm_topk_prob)");
  LF_CHECK(c.moe_layer_count() == c.n_layers, "HF export: model.moe_layers = \"{}\" without model.qk_norm has no HF "
           "equivalent (every layer of Mixtral is MoE; Qwen3-MoE, with model.qk_norm = true, has dense layers)",
           c.moe_layers);
  return HfArchitecture::Mixtral;
}

std::string hf_export_config_json(const nn::ModelConfig& c, int64_t eos_token_id) {
  Json j;
  switch (hf_architecture(c)) {
    case HfArchitecture::Llama: llama_keys(j, c, false); break;
    case HfArchitecture::Qwen3: llama_keys(j, c, true); break;
    case HfArchitecture::DeepseekV3: deepseek_v3_export_keys(j, c); break;
    case HfArchitecture::Mixtral: mixtral_keys(j, c); break;
    case HfArchitecture::Qwen3Moe: qwen3_moe_keys(j, c); break;
  }
  return with_token_ids(j, eos_token_id);
}

}  // namespace lmforge::train
