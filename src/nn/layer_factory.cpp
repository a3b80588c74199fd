#include "nn/layer_factory.h"

#include "nn/mla.h"
#include "nn/moe.h"

namespace lmforge::nn {

std::unique_ptr<SequenceMixer> make_sequence_mixer(const ModelConfig& config, int64_t layer, TensorOptions opt) {
  (void)layer;
  if (config.is_mla()) return std::make_unique<MultiHeadLatentAttention>(config, opt);
  return std::make_unique<Attention>(config, opt);
}

std::unique_ptr<FeedForward> make_feed_forward(const ModelConfig& config, int64_t layer, TensorOptions opt) {
  if (config.is_moe_layer(layer)) return std::make_unique<MoE>(config, opt);
  return std::make_unique<MLP>(config, opt);
}

}  // namespace lmforge::nn
