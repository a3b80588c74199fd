// The key/value cache of incremental decoding.
//
// Each sequence mixer (attention layer) decides its own cache layout through make_cache(); the
// standard attention keeps k and v as [B, capacity, Hkv, D] and writes the T new steps of a
// forward call at [length, length + T). A compressed cache (Multi-head Latent Attention) would
// keep its latent in `k` and leave `v` undefined.
//
// The cache is for inference: values are written under NoGradGuard and no gradient flows
// through them.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace lmforge::nn {

struct LayerKVCache {
  Tensor k, v;
};

struct KVCache {
  std::vector<LayerKVCache> layers = {};
  int64_t batch = 0;
  int64_t capacity = 0;  // positions the cache holds
  int64_t length = 0;    // positions written so far (the position of the next step)
};

}  // namespace lmforge::nn
