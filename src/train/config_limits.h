// Upper limits on the [train], [optim], [eval] and [checkpoint] sizes, checked by
// RunConfig::validate() (and `lmforge account --batch`) before anything is allocated; the
// [model] ones are in nn/model_limits.h. Products of sizes are checked without overflowing
// (core/checked_math.h), so a product that would wrap around in int64 is an error naming the
// keys and the limit, never a zero that slips past later checks. docs/TRAINING.md lists them.
#pragma once

#include <cstdint>

namespace lmforge::train::limits {

inline constexpr int64_t kMaxSteps = int64_t(1) << 40;                // train.steps, warmup, decay
inline constexpr int64_t kMaxMicroBatchSize = int64_t(1) << 20;       // sequences per forward
inline constexpr int64_t kMaxTokensPerMicroBatch = int64_t(1) << 24;  // micro_batch_size · seq_len
inline constexpr int64_t kMaxBatchTokens = int64_t(1) << 40;          // train.batch_tokens
inline constexpr int64_t kMaxKeepLast = int64_t(1) << 20;             // checkpoint.keep_last

}  // namespace lmforge::train::limits
