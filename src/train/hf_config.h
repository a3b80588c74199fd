// config.json for a checkpoint, in HF transformers' style:
//   * LlamaConfig (model_type "llama") when the architecture is Llama's (ModelConfig::is_llama);
//   * Qwen3Config (model_type "qwen3") for Llama plus QK-norm without MLP biases;
//   * DeepseekV3Config (model_type "deepseek_v3") for a dense model with Multi-head Latent
//     Attention and otherwise Llama's layer (no biases), every layer dense
//     (first_k_dense_replace = n_layers);
//   * otherwise an "lmforge" config carrying every model key, so the file still describes the
//     weights completely.
#pragma once

#include <cstdint>
#include <string>

#include "nn/model_config.h"

namespace lmforge::train {

// eos_token_id: the tokenizer's end-of-text id, or -1 when there is none.
std::string hf_config_json(const nn::ModelConfig& config, int64_t eos_token_id);

}  // namespace lmforge::train
