// One Transformer layer: a sequence mixer and a feed-forward network, each a residual branch.
//
//   pre-norm  (GPT-2, Llama):          x = x + drop(attn(norm1(x)));  x = x + drop(mlp(norm2(x)))
//   post-norm (the original Transformer): x = norm1(x + drop(attn(x))); x = norm2(x + drop(mlp(x)))
//
// Every residual add that a norm reads runs inside the norm's kernels (Norm::forward_add). In the
// pre-norm stream the add after the feed-forward is read by the next layer's norm1 (or the model's
// final norm), so a block takes and returns the stream with that add still pending. Given `in`:
//   h = in.residual + in.delta,  a = norm1(h)           (one fused add + norm; no delta: norm only)
//   h' = h + drop(attn(a)),      m = norm2(h')          (one fused add + norm)
// and returns {h', drop(mlp(m))} for the next norm to add. Post-norm blocks add and normalise
// inside (norm(x + delta) fused) and return no pending add.
//
// The mixer and the feed-forward network come from nn/layer_factory.h for this layer's index
// (attention or MLA; a dense MLP or a Mixture of Experts). Auxiliary losses the branches report
// (nn/aux_report.h) are added to the stream's `aux` sum; their statistics go to the model's
// StepStats.
//
// HF names: self_attn, mlp, input_layernorm (norm1), post_attention_layernorm (norm2).
#pragma once

#include "core/random_kernels.h"
#include "nn/attention.h"
#include "nn/aux_report.h"
#include "nn/mlp.h"

namespace lmforge::nn {

// The residual stream between blocks, residual + delta, with the add left for the next norm to
// fuse. delta undefined: the stream is residual itself. Tensors [B, T, C]. aux: the sum of the
// auxiliary losses of the blocks so far (an f32 scalar), undefined while there are none.
struct ResidualStream {
  Tensor residual;
  Tensor delta;
  Tensor aux{};
};

class TransformerBlock : public Module {
 public:
  // `dropout_gen` (owned by the model) draws the dropout masks and `stats` (owned by the model,
  // may be null) receives the branches' statistics; both must outlive the block.
  TransformerBlock(const ModelConfig& config, int64_t layer, TensorOptions opt, Generator* dropout_gen,
                   StepStats* stats);
  // The stream after this layer; position_offset and cache as SequenceMixer::forward.
  ResidualStream forward(const ResidualStream& in, int64_t position_offset, LayerKVCache* cache) const;
  int64_t layer() const { return layer_; }
  const SequenceMixer& mixer() const { return *self_attn_; }
  FeedForward& ffn() { return *mlp_; }
  const FeedForward& ffn() const { return *mlp_; }

 private:
  Tensor residual_dropout(const Tensor& x) const;
  // The feed-forward branch; its report's losses are added to `aux`.
  Tensor feed_forward(const Tensor& x, Tensor& aux) const;

  int64_t layer_;
  NormPosition norm_position_;
  double dropout_;
  Generator* dropout_gen_;
  StepStats* stats_;
  Norm* input_layernorm_;
  SequenceMixer* self_attn_;
  Norm* post_attention_layernorm_;
  FeedForward* mlp_;
};

}  // namespace lmforge::nn
