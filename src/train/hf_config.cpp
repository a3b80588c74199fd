#include "train/hf_config.h"

#include <nlohmann/json.hpp>

namespace lmforge::train {

std::string hf_config_json(const nn::ModelConfig& c, int64_t eos_token_id) {
  nlohmann::ordered_json j;
  const bool qwen3 = c.qk_norm && !c.bias && c.norm == nn::NormKind::RmsNorm &&
                     c.norm_position == nn::NormPosition::Pre && c.ffn == nn::FfnKind::SwiGLU &&
                     c.position == nn::PositionKind::Rope;
  if (c.is_llama() || qwen3) {
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
    j["vocab_size"] = c.vocab_size;
    j["context_length"] = c.context_length;
    j["d_model"] = c.d_model;
    j["n_layers"] = c.n_layers;
    j["n_heads"] = c.n_heads;
    j["n_kv_heads"] = c.n_kv_heads;
    j["head_dim"] = c.head_dim;
    j["d_ff"] = c.d_ff;
    j["norm"] = nn::to_string(c.norm);
    j["norm_position"] = nn::to_string(c.norm_position);
    j["ffn"] = nn::to_string(c.ffn);
    j["position"] = nn::to_string(c.position);
    j["rope_theta"] = c.rope_theta;
    j["bias"] = c.bias;
    j["qk_norm"] = c.qk_norm;
    j["tied_embeddings"] = c.tied_embeddings;
    j["norm_eps"] = c.norm_eps;
    j["torch_dtype"] = "float32";
  }
  if (eos_token_id >= 0) {
    j["bos_token_id"] = eos_token_id;
    j["eos_token_id"] = eos_token_id;
  }
  return j.dump(2) + "\n";
}

}  // namespace lmforge::train
