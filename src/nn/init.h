// Weight initialisation (model.init):
//
//   normal  every matrix ~ N(0, init_std²) truncated at ±3·init_std
//   scaled  as normal, but residual output projections (o_proj, down_proj) use
//           init_std / sqrt(2·n_layers) (GPT-2), so the residual stream's variance does not grow
//           with depth
//   xavier  matrices ~ U(-a, a), a = sqrt(6 / (fan_in + fan_out)) (Glorot & Bengio)
//
// Embeddings are N(0, init_std²) truncated at ±3·init_std under every scheme; norm gains are
// one and biases zero. Parameters are drawn in named_parameters() order from one generator, so
// one seed gives one model on every backend.
#pragma once

#include "core/random_kernels.h"
#include "nn/model_config.h"
#include "nn/module.h"

namespace lmforge::nn {

void init_parameters(const Module& module, const ModelConfig& config, Generator& gen);

}  // namespace lmforge::nn
