#include "train/hf_config.h"

#include <nlohmann/json.hpp>

namespace lmforge::train {

std::string hf_config_json(const nn::ModelConfig& c, int64_t eos_token_id) {
  nlohmann::ordered_json j;
  const bool qwen3 = c.qk_norm && !c.bias && c.norm == nn::NormKind::RmsNorm &&
                     c.norm_position == nn::NormPosition::Pre && c.ffn == nn::FfnKind::SwiGLU &&
                     c.position == nn::PositionKind::Rope && c.n_experts == 0 && !c.is_mla();
  // DeepSeek-V3's layer is Llama's with MLA for the attention; its MoE layers are left to the
  // "lmforge" config (their expert tensors are stored stacked here, one tensor per expert there).
  const bool deepseek_v3 = c.is_mla() && !c.bias && c.norm == nn::NormKind::RmsNorm &&
                           c.norm_position == nn::NormPosition::Pre && c.ffn == nn::FfnKind::SwiGLU &&
                           c.n_experts == 0;
  if (deepseek_v3) {
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
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["initializer_range"] = c.init_std;
    j["torch_dtype"] = "float32";
    j["use_cache"] = true;
  } else if (c.is_llama() || qwen3) {
    j["architectures"] = {qwen3 ? "Qwen3ForCausalLM" : "LlamaForCausalLM"};
    j["model_type"] = qwen3 ? "qwen3" : "llama";
    j["vocab_size"] = c.vocab_size;
    j["hidden_size"] = c.d_model;
    j["intermediate_size"] = c.d_ff;
    j["num_hidden_layers"] = c.n_layers;
    j["num_attention_heads"] = c.n_heads;
    j["num_key_value_heads"] = c.n_kv_heads;
    j["head_dim"] = c.head_dim;
    j["max_position_embeddings"] = c.context_length;
    j["hidden_act"] = "silu";
    j["rms_norm_eps"] = c.norm_eps;
    j["rope_theta"] = c.rope_theta;
    j["rope_scaling"] = nullptr;
    j["attention_bias"] = c.bias;
    if (!qwen3) j["mlp_bias"] = c.bias;
    j["attention_dropout"] = 0.0;
    j["tie_word_embeddings"] = c.tied_embeddings;
    j["initializer_range"] = c.init_std;
    j["torch_dtype"] = "float32";
    j["use_cache"] = true;
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
  if (eos_token_id >= 0) {
    j["bos_token_id"] = eos_token_id;
    j["eos_token_id"] = eos_token_id;
  }
  return j.dump(2) + "\n";
}

}  // namespace lmforge::train
