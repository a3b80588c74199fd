// The key/value cache of incremental decoding.
//
// Each sequence mixer (attention layer) decides its own cache layout through make_cache(); the
// standard attention keeps k and v as [B, capacity, Hkv, D] and writes the T new steps of a
// forward call at [length, length + T). Multi-head Latent Attention (nn/mla.h) keeps a compressed
// cache: k is [B, capacity, kv_lora_rank + qk_rope_head_dim], each position's latent followed by
// its RoPE'd shared key, and v is a view of k's last qk_rope_head_dim columns (the RoPE key), so
// both are defined and a view that narrows both (one slot) narrows them alike. Its bytes are k's.
//
// A slotted cache (SlotRows below) keeps sequences of different lengths in one buffer, so they
// can be decoded in one batch.
//
// The cache is for inference: values are written under NoGradGuard and no gradient flows
// through them.
#pragma once

#include <vector>

#include "core/tensor.h"

namespace lmforge::nn {

// Slotted decoding (infer/batch_generate.h): the cache holds one sequence per slot (its batch
// index), each at its own length, and row r of a forward's input continues the sequence of slot
// slots[r] at position positions[r]. The mixer then writes and reads each row's own slot, and
// the position offset passed to it is ignored.
struct SlotRows {
  std::vector<int64_t> slots;
  std::vector<int64_t> positions;
};

struct LayerKVCache {
  Tensor k, v;
  const SlotRows* slot_rows = nullptr;  // set for slotted decoding, else null
  // Device positions (KVCache::positions, set by the model for each forward): i32 [B] on the
  // cache's device, row b's new steps written at positions[b] + t and its keys [0, key_lengths[b]),
  // key_lengths = positions + T. The mixer then ignores the position offset it is given.
  Tensor positions = {}, key_lengths = {};
  // Bytes the layer's cache holds: k's, plus v's unless v is a view into k (MLA).
  int64_t nbytes() const { return int64_t(k.nbytes()) + (v.shares_storage(k) ? 0 : int64_t(v.nbytes())); }
};

struct KVCache {
  std::vector<LayerKVCache> layers = {};
  int64_t batch = 0;
  int64_t capacity = 0;  // positions the cache holds
  int64_t length = 0;    // positions written so far (the position of the next step)
  // Undefined, or i32 [B] on the model's device: each row's position for the next forward, read
  // by the kernels from device memory, so one captured CUDA graph of a decode step can be replayed
  // at every position (infer/decode_graph.h). The forward then neither reads nor advances
  // `length`: whoever sets the positions keeps both.
  Tensor positions = {};
};

}  // namespace lmforge::nn
