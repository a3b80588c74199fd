// Fused neural-network ops: losses, norms, rotary embedding, SwiGLU, dropout, attention.
// Each keeps the tape short (one node) and has a composite reference in the tests.
#pragma once

#include "core/tensor.h"

namespace lmforge {

class Generator;

struct CrossEntropyOptions {
  int64_t ignore_index = -100;
  double label_smoothing = 0.0;   // eps: target distribution (1-eps)·onehot + eps/V
  double z_loss = 0.0;            // adds z_loss · logsumexp(logits)² per token
  enum class Reduction { Mean, Sum, None } reduction = Reduction::Mean;  // mean over non-ignored
  // When set (Mean or Sum reduction): receives the z-loss part of the returned loss, detached (the
  // rest is the cross-entropy), for logging the two terms apart.
  Tensor* z_loss_part = nullptr;
};
// logits [N, V] (any float dtype; computed in f32), targets [N] i64/i32 -> scalar (or [N]).
Tensor cross_entropy(const Tensor& logits, const Tensor& targets, const CrossEntropyOptions& opt = {});

// x [..., C]; weight [C] or undefined; eps inside the sqrt.
Tensor rms_norm(const Tensor& x, const Tensor& weight, double eps = 1e-6);
Tensor layer_norm(const Tensor& x, const Tensor& weight, const Tensor& bias, double eps = 1e-5);

// A residual add and the norm that reads it, in one kernel each way (the pre-norm residual
// stream): sum = x + residual rounded to their dtype, y = norm(sum). Bit for bit what add() then
// rms_norm() / layer_norm() give on the same backend, gradients included. x and residual share
// shape, dtype and device (no broadcasting). One tape node with both outputs: the gradient that
// reaches x and residual is dsum + the norm's backward of dy (either may be absent).
struct AddNorm {
  Tensor sum;  // x + residual
  Tensor y;    // norm(sum)
};
AddNorm add_rms_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, double eps = 1e-6);
AddNorm add_layer_norm(const Tensor& x, const Tensor& residual, const Tensor& weight, const Tensor& bias,
                       double eps = 1e-5);

struct RopeOptions {
  double theta = 10000.0;
  int64_t position_offset = 0;  // position of the first time step (KV-cache decoding)
  bool interleaved = false;     // pairs (2i, 2i+1) instead of (i, i + D/2) (half-split, Llama/HF)
  // Undefined, or i32 [B] on x's device: row b's step t is at positions[b] + t (position_offset
  // must then be 0), read where the data lives, so a captured CUDA graph rotates at whatever
  // positions the tensor holds when it is replayed.
  Tensor positions = {};
};
// x [B, T, H, D] with D even: rotates each head vector by its position.
Tensor rope(const Tensor& x, const RopeOptions& opt = {});

// silu(gate) * up; gate, up [..., F]. One fused kernel where the backend has it for the dtype
// (Backend::supports), else silu and mul, each rounding to the dtype (fp8).
Tensor swiglu(const Tensor& gate, const Tensor& up);

// Zeroes elements with probability p and scales the rest by 1/(1-p); identity when !training.
Tensor dropout(const Tensor& x, double p, bool training, Generator& gen);

struct AttentionOptions {
  double scale = 0.0;   // 0: 1/sqrt(D)
  bool causal = true;   // query t sees keys s <= t + (S - T)
  // Inference only (no gradient, no mask): undefined, or i32 [B] on q's device. Row b then sees
  // the keys [0, key_lengths[b]) and its queries are the last T positions before that length: a
  // KV cache of fixed capacity read at a length held in device memory (CUDA graph decoding).
  // The GPU takes it for decoding shapes (T <= 8).
  Tensor key_lengths = {};
};
// q [B, T, H, D], k [B, S, Hkv, D], v [B, S, Hkv, Dv] with H a multiple of Hkv (GQA/MQA);
// mask: optional additive mask broadcastable to [B, H, T, S] (e.g. -inf where not allowed);
// returns [B, T, H, Dv]. Memory linear in T·S (tiled online softmax; no T×S buffer).
Tensor attention(const Tensor& q, const Tensor& k, const Tensor& v, const AttentionOptions& opt = {},
                 const Tensor& mask = Tensor());

}  // namespace lmforge
