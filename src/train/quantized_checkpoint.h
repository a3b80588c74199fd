// Quantized inference checkpoints (written by `lmforge quantize`; docs/FORMATS.md):
//
//   model.safetensors   every tensor a plain checkpoint has, except that each quantized Linear
//                       weight "<layer>.weight" is stored narrow (I8, F8_E4M3, BF16 or F16) and,
//                       for I8 / F8_E4M3, its f32 scales "<layer>.weight_scale" [out, in / group]
//                       sit beside it; metadata "lmforge.quantization" (int8 | fp8 | bf16 | f16)
//                       and "lmforge.group_size" (0: one scale per output channel)
//   quantization.json   the same two facts plus the source checkpoint, for people; its presence
//                       marks the directory as an inference checkpoint (no optimizer state)
//   config.json, config.toml, tokenizer.json   copied from the source checkpoint
//
// Loading (load_checkpoint_model, train/checkpoint.h, does it for any directory with
// quantization.json) checks every tensor's dtype and shape, and that scales are present and shaped
// for the group size, with an Error naming the file and tensor.
#pragma once

#include <string>

#include "nn/transformer.h"

namespace lmforge::train {

inline constexpr const char* kQuantizationFile = "quantization.json";

// Writes `model` (its Linear weights quantized, infer/quantize.h) as an inference checkpoint in
// out_dir, copying config and tokenizer from source_dir. Atomic: a temporary directory renamed.
void save_quantized_checkpoint(const nn::Transformer& model, const std::string& format, int64_t group_size,
                               const std::string& source_dir, const std::string& out_dir);

// Loads model.safetensors of an inference checkpoint into `model` (built from the checkpoint's
// config, f32 parameters): plain tensors are copied, quantized ones installed in their Linear.
void load_quantized_model_weights(nn::Transformer& model, const std::string& path);

}  // namespace lmforge::train
