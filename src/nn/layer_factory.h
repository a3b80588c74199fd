// The parts of layer i, chosen from the model config: the one place where a layer's sequence
// mixer and feed-forward network are picked. A new mixer (Multi-head Latent Attention) or FFN
// (Mixture of Experts) is one case here; "the first k layers dense, the rest MoE" is the
// config's is_moe_layer(i).
#pragma once

#include <memory>

#include "nn/attention.h"
#include "nn/mlp.h"

namespace lmforge::nn {

// Layer `layer`'s (0-based) attention or other sequence mixer.
std::unique_ptr<SequenceMixer> make_sequence_mixer(const ModelConfig& config, int64_t layer, TensorOptions opt);
// Layer `layer`'s feed-forward network: the dense MLP, or a Mixture of Experts where
// config.is_moe_layer(layer).
std::unique_ptr<FeedForward> make_feed_forward(const ModelConfig& config, int64_t layer, TensorOptions opt);

}  // namespace lmforge::nn
