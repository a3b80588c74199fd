#include "nn/block.h"

#include "ops/ops.h"

namespace lmforge::nn {

TransformerBlock::TransformerBlock(const ModelConfig& c, TensorOptions opt, Generator* dropout_gen)
    : norm_position_(c.norm_position), dropout_(c.dropout), dropout_gen_(dropout_gen) {
  // Registration order fixes the parameter order (initialisation and checkpoints): the HF
  // order of a Llama layer.
  self_attn_ = register_module("self_attn", std::make_unique<Attention>(c, opt));
  mlp_ = register_module("mlp", std::make_unique<MLP>(c, opt));
  input_layernorm_ = register_module("input_layernorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
  post_attention_layernorm_ =
      register_module("post_attention_layernorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
}

Tensor TransformerBlock::residual_dropout(const Tensor& x) const {
  if (dropout_ == 0 || !training()) return x;
  return dropout(x, dropout_, true, *dropout_gen_);
}

ResidualStream TransformerBlock::forward(const ResidualStream& in, int64_t position_offset,
                                        LayerKVCache* cache) const {
  if (norm_position_ == NormPosition::Pre) {
    const AddNorm a = input_layernorm_->forward_add(in.delta, in.residual);
    const Tensor attn = residual_dropout(self_attn_->forward(a.y, position_offset, cache));
    const AddNorm m = post_attention_layernorm_->forward_add(attn, a.sum);
    return {.residual = m.sum, .delta = residual_dropout(mlp_->forward(m.y))};
  }
  LF_ASSERT(!in.delta.defined(), "post-norm blocks take a stream without a pending add");
  const Tensor& x = in.residual;
  const Tensor h = input_layernorm_->forward_add(residual_dropout(self_attn_->forward(x, position_offset, cache)), x).y;
  return {.residual = post_attention_layernorm_->forward_add(residual_dropout(mlp_->forward(h)), h).y,
          .delta = Tensor()};
}

}  // namespace lmforge::nn
