// Upper limits on the [model] sizes, checked by ModelConfig::resolve() before anything is built
// or allocated. They are far above any model this toolkit trains and low enough that every size
// derived from them (parameter counts, activation and logit bytes, FLOPs) fits int64, so no later
// product can wrap around. docs/TRAINING.md lists them.
#pragma once

#include <cstdint>

namespace lmforge::nn::limits {

inline constexpr int64_t kMaxVocabSize = int64_t(1) << 24;      // token ids (tokenizers allow < 2^31)
inline constexpr int64_t kMaxContextLength = int64_t(1) << 24;
inline constexpr int64_t kMaxDModel = int64_t(1) << 16;
inline constexpr int64_t kMaxLayers = int64_t(1) << 12;
inline constexpr int64_t kMaxHeads = int64_t(1) << 12;
inline constexpr int64_t kMaxHeadDim = int64_t(1) << 12;
inline constexpr int64_t kMaxAttentionWidth = int64_t(1) << 20;  // n_heads · head_dim
inline constexpr int64_t kMaxDFF = int64_t(1) << 18;            // d_ff, d_ff_expert
inline constexpr int64_t kMaxExperts = int64_t(1) << 12;        // routed and shared experts each
inline constexpr int64_t kMaxParameters = int64_t(1) << 40;     // about 1.1 trillion

}  // namespace lmforge::nn::limits
