#include "nn/mtp.h"

#include "ops/ops.h"

namespace lmforge::nn {

MtpModule::MtpModule(const ModelConfig& c, int64_t depth, TensorOptions opt, Generator* dropout_gen, StepStats* stats)
    : TransformerBlock(c, c.n_layers + depth - 1, opt, dropout_gen, stats), depth_(depth) {
  LF_ASSERT(depth >= 1 && depth <= c.mtp_depth, "MTP depth {} outside [1, {}]", depth, c.mtp_depth);
  // Registered after the block's parts: the block's parameters keep a plain layer's order.
  enorm_ = register_module("enorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
  hnorm_ = register_module("hnorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
  eh_proj_ = register_module("eh_proj", std::make_unique<Linear>(2 * c.d_model, c.d_model, c.bias, ParamKind::Matrix, opt));
  auto* shared_head = register_module("shared_head", std::make_unique<ModuleGroup>());
  shared_head_norm_ = shared_head->add("norm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
}

MtpModule::Output MtpModule::forward(const Tensor& previous, const Tensor& embeddings, int64_t position_offset,
                                     LayerKVCache* cache, const Tensor& aux) const {
  LF_CHECK(previous.shape() == embeddings.shape(),
           "MTP module {}: the previous hidden states have shape {} but the embeddings {}", depth_,
           shape_str(previous.shape()), shape_str(embeddings.shape()));
  const Tensor x = eh_proj_->forward(cat({enorm_->forward(embeddings), hnorm_->forward(previous)}, -1));
  const ResidualStream s = TransformerBlock::forward({.residual = x, .delta = Tensor(), .aux = aux}, position_offset, cache);
  // The block's pending residual add runs inside the output norm (post-norm blocks leave none).
  const AddNorm out = shared_head_norm_->forward_add(s.delta, s.residual);
  return {.hidden = out.sum, .head_input = out.y, .aux = s.aux};
}

}  // namespace lmforge::nn
