// `lmforge export`: a checkpoint as an HF transformers model directory, in the per-expert layout
// of the HF Hub checkpoints, for the architecture train/hf_config.h's hf_architecture() picks.
//
//   DIR/model.safetensors        the weights (f32), HF names
//   DIR/config.json              hf_export_config_json()
//   DIR/tokenizer.json           copied from the checkpoint (when it has one)
//   DIR/generation_config.json   bos/eos = the tokenizer's end-of-text id (when it has one)
//
// Tensor names are the checkpoint's (HF Llama / Qwen3 / DeepSeek-V3 names already) except in the
// MoE layers, whose stacked experts (mlp.experts.{gate,up,down}_proj [E, F, C] / [E, C, F]) are
// split into one nn.Linear weight per expert, row e of the stack being expert e:
//   Mixtral:             model.layers.L.block_sparse_moe.gate.weight,
//                        model.layers.L.block_sparse_moe.experts.E.{w1,w3,w2}.weight  (gate, up, down)
//   Qwen3-MoE:           model.layers.L.mlp.gate.weight, model.layers.L.mlp.experts.E.{gate,up,down}_proj.weight
//   DeepSeek-V3:         as Qwen3-MoE, plus mlp.gate.e_score_correction_bias (zeros when the model
//                        has no balancing bias) and mlp.shared_experts.{gate,up,down}_proj.weight
//                        ([0, C] / [C, 0] when n_shared_experts = 0, as HF builds them)
// (transformers 5.x fuses the per-expert tensors into its own stacked layout while loading.)
// MTP modules (DeepSeek-V3 only) stay layers n_layers + k - 1, with DeepSeek-V3's per-module copies
// of the token embedding and the output head added (embed_tokens.weight, shared_head.head.weight)
// as its Hub checkpoint stores them; HF's DeepseekV3ForCausalLM does not read these layers.
//
// The directory is written into a temporary sibling and renamed when complete; an existing
// output directory is an error.
#pragma once

#include <string>

#include "nn/transformer.h"
#include "train/hf_config.h"
#include "train/safetensors.h"

namespace lmforge::train {

// The model's tensors under HF names in the per-expert layout (Error as hf_architecture()).
NamedTensors hf_export_tensors(const nn::Transformer& model);

struct HfExportSummary {
  std::string checkpoint;        // the checkpoint directory read
  HfArchitecture architecture;
  int64_t tensors = 0;           // written to model.safetensors
  bool tokenizer = false;        // tokenizer.json copied
};

// Exports the checkpoint at `path` (a checkpoint, model or run directory, as
// resolve_checkpoint_dir) into the new directory `output`.
HfExportSummary export_hf(const std::string& path, const std::string& output);

}  // namespace lmforge::train
