#include "nn/block.h"

#include "autograd/recompute.h"
#include "nn/layer_factory.h"
#include "ops/ops.h"

namespace lmforge::nn {

TransformerBlock::TransformerBlock(const ModelConfig& c, int64_t layer, TensorOptions opt, Generator* dropout_gen,
                                   StepStats* stats)
    : layer_(layer), norm_position_(c.norm_position), dropout_(c.dropout), dropout_gen_(dropout_gen), stats_(stats) {
  // Registration order fixes the parameter order (initialisation and checkpoints): the HF
  // order of a Llama layer.
  self_attn_ = register_module("self_attn", make_sequence_mixer(c, layer, opt));
  mlp_ = register_module("mlp", make_feed_forward(c, layer, opt));
  input_layernorm_ = register_module("input_layernorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
  post_attention_layernorm_ =
      register_module("post_attention_layernorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
}

Tensor TransformerBlock::residual_dropout(const Tensor& x) const {
  if (dropout_ == 0 || !training()) return x;
  return dropout(x, dropout_, true, *dropout_gen_);
}

Tensor TransformerBlock::feed_forward(const Tensor& x, Tensor& aux) const {
  AuxReport report;
  Tensor y = mlp_->forward(x, &report);
  if (const Tensor layer_aux = report.loss_sum(); layer_aux.defined()) aux = aux.defined() ? aux + layer_aux : layer_aux;
  // Statistics of training forwards only, and once per forward: a recomputation in backward
  // repeats a forward whose report was already taken.
  if (stats_ && training() && !is_recomputing()) stats_->add(layer_, report);
  return y;
}

ResidualStream TransformerBlock::forward(const ResidualStream& in, int64_t position_offset,
                                        LayerKVCache* cache) const {
  Tensor aux = in.aux;
  if (norm_position_ == NormPosition::Pre) {
    const AddNorm a = input_layernorm_->forward_add(in.delta, in.residual);
    const Tensor attn = residual_dropout(self_attn_->forward(a.y, position_offset, cache));
    const AddNorm m = post_attention_layernorm_->forward_add(attn, a.sum);
    Tensor delta = residual_dropout(feed_forward(m.y, aux));
    return {.residual = m.sum, .delta = std::move(delta), .aux = aux};
  }
  LF_ASSERT(!in.delta.defined(), "post-norm blocks take a stream without a pending add");
  const Tensor& x = in.residual;
  const Tensor h = input_layernorm_->forward_add(residual_dropout(self_attn_->forward(x, position_offset, cache)), x).y;
  const Tensor f = residual_dropout(feed_forward(h, aux));
  return {.residual = post_attention_layernorm_->forward_add(f, h).y, .delta = Tensor(), .aux = aux};
}

}  // namespace lmforge::nn
