// One Transformer layer: a sequence mixer and a feed-forward network, each a residual branch.
//
//   pre-norm  (GPT-2, Llama):          x = x + drop(attn(norm1(x)));  x = x + drop(mlp(norm2(x)))
//   post-norm (the original Transformer): x = norm1(x + drop(attn(x))); x = norm2(x + drop(mlp(x)))
//
// HF names: self_attn, mlp, input_layernorm (norm1), post_attention_layernorm (norm2).
// The mixer and the feed-forward are held through their interfaces (nn/attention.h, nn/mlp.h);
// make_block() picks them from the config, which is where MoE or MLA layers plug in.
#pragma once

#include "core/random_kernels.h"
#include "nn/attention.h"
#include "nn/mlp.h"

namespace lmforge::nn {

class TransformerBlock : public Module {
 public:
  // `dropout_gen` (owned by the model) draws the dropout masks; it must outlive the block.
  TransformerBlock(const ModelConfig& config, TensorOptions opt, Generator* dropout_gen);
  // x [B, T, C] -> [B, T, C]
  Tensor forward(const Tensor& x, int64_t position_offset, LayerKVCache* cache) const;
  const SequenceMixer& mixer() const { return *self_attn_; }

 private:
  Tensor residual_dropout(const Tensor& x) const;

  NormPosition norm_position_;
  double dropout_;
  Generator* dropout_gen_;
  Norm* input_layernorm_;
  SequenceMixer* self_attn_;
  Norm* post_attention_layernorm_;
  FeedForward* mlp_;
};

}  // namespace lmforge::nn
