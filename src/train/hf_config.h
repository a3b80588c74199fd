// config.json in HF transformers' style, for two uses.
//
// A checkpoint's config.json (hf_config_json) describes the weights exactly as the checkpoint
// stores them:
//   * LlamaConfig (model_type "llama") when the architecture is Llama's (ModelConfig::is_llama);
//   * Qwen3Config (model_type "qwen3") for Llama plus QK-norm without MLP biases;
//   * DeepseekV3Config (model_type "deepseek_v3") for a dense model with Multi-head Latent
//     Attention and otherwise Llama's layer (no biases), every layer dense
//     (first_k_dense_replace = n_layers);
//   * otherwise an "lmforge" config carrying every model key, so the file still describes the
//     weights completely (a Mixture of Experts among them: a checkpoint stores its experts
//     stacked, one tensor per layer, which no HF class reads).
//
// An export's config.json (hf_export_config_json, written by `lmforge export`,
// train/hf_export.h) describes the per-expert layout of the HF Hub checkpoints, so Mixture-of-
// Experts models get HF classes too. hf_architecture() picks the class from the model config:
//   dense, MHA, no QK-norm        -> LlamaForCausalLM
//   dense, MHA, QK-norm           -> Qwen3ForCausalLM
//   MLA (dense or MoE)            -> DeepseekV3ForCausalLM: sigmoid router (normalised among the
//                                    chosen, e_score_correction_bias for the top-k choice only),
//                                    shared experts, the first layers dense (first_k_dense_replace),
//                                    n_group = topk_group = 1, routed_scaling_factor 1
//   MoE, MHA, QK-norm             -> Qwen3MoeForCausalLM: softmax router, norm_topk_prob =
//                                    normalize_gates, decoder_sparse_step / mlp_only_layers
//   MoE, MHA, no QK-norm          -> MixtralForCausalLM: softmax router renormalised over the
//                                    chosen, every layer MoE
// Anything else throws an Error naming the model key that has no HF equivalent.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "nn/model_config.h"

namespace lmforge::train {

// eos_token_id: the tokenizer's end-of-text id, or -1 when there is none.
std::string hf_config_json(const nn::ModelConfig& config, int64_t eos_token_id);

enum class HfArchitecture { Llama, Qwen3, DeepseekV3, Mixtral, Qwen3Moe };
// The transformers class name: "LlamaForCausalLM", "MixtralForCausalLM", ...
std::string_view hf_class_name(HfArchitecture architecture);

// The HF architecture that computes what `config` (resolved) computes, from the per-expert
// layout of train/hf_export.h; Error naming the first model key that has no equivalent there.
HfArchitecture hf_architecture(const nn::ModelConfig& config);

// config.json of an export (hf_architecture()'s class; Error as hf_architecture()). With
// model.mtp_depth > 0 (DeepSeek-V3 only) it has num_nextn_predict_layers = mtp_depth.
std::string hf_export_config_json(const nn::ModelConfig& config, int64_t eos_token_id);

}  // namespace lmforge::train
