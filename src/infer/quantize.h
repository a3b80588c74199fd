// Weight-only quantization of a trained model for inference.
//
// Every Linear weight [out, in] (attention q/k/v/o, MLP gate/up/down, an untied lm_head) becomes a
// QuantizedWeight (ops/quantized_matmul.h); embeddings, norms and biases stay f32 (a tied output
// projection is the token embedding, so it stays f32 too).
//   int8  symmetric, one f32 scale per output channel, or per group of `group_size` inputs:
//         scale = max|w| / 127 over the channel (group), q = round(w / scale) in [-127, 127];
//         |w - q·scale| <= scale / 2.
//   fp8   e4m3 with one f32 scale per output channel (or group): scale = max|w| / 448, the
//         largest e4m3 value; q = e4m3(w / scale) rounded to nearest even: relative error
//         <= 2^-4 for normal values, absolute <= scale · 2^-10 in the subnormal range.
//   bf16, f16   a rounded cast, no scales.
#pragma once

#include <string>

#include "nn/transformer.h"
#include "ops/quantized_matmul.h"

namespace lmforge::infer {

enum class QuantFormat { Int8, Fp8, BF16, F16 };

QuantFormat parse_quant_format(const std::string& s);  // "int8" | "fp8" | "bf16" | "f16"
std::string to_string(QuantFormat f);

struct QuantizeOptions {
  QuantFormat format = QuantFormat::Int8;
  int64_t group_size = 0;  // int8 / fp8: inputs per scale; 0: one scale per output channel
};

// w [out, in] floating (any device; computed on the host) -> its quantized form on w's device.
QuantizedWeight quantize_weight(const Tensor& w, const QuantizeOptions& options);

struct QuantizeStats {
  int64_t layers = 0;        // Linear weights quantized
  int64_t bytes_before = 0;  // of all parameters, before
  int64_t bytes_after = 0;   // of all parameters and quantized weights, after
};

// Replaces every Linear weight of `model` by its quantized form (in place).
QuantizeStats quantize_model(nn::Transformer& model, const QuantizeOptions& options);

}  // namespace lmforge::infer
