#include "optim/adamw.h"

#include <cmath>
#include <unordered_map>

#include "backend/backend.h"
#include "ops/ops.h"
#include "optim/clip.h"

namespace lmforge::optim {

namespace {
bool kind_decays(nn::ParamKind kind, const AdamWOptions& o) {
  switch (kind) {
    case nn::ParamKind::Matrix:
    case nn::ParamKind::ResidualMatrix: return true;
    case nn::ParamKind::Norm: return o.decay_norms;
    case nn::ParamKind::Bias: return o.decay_biases;
    case nn::ParamKind::Embedding: return o.decay_embeddings;
  }
  return true;
}
}  // namespace

AdamW::AdamW(const std::vector<nn::NamedParameter>& params, AdamWOptions options) : options_(options) {
  LF_CHECK(options.beta1 >= 0 && options.beta1 < 1, "optim.beta1 must be in [0, 1), got {}", options.beta1);
  LF_CHECK(options.beta2 >= 0 && options.beta2 < 1, "optim.beta2 must be in [0, 1), got {}", options.beta2);
  LF_CHECK(options.eps > 0, "optim.eps must be > 0, got {}", options.eps);
  LF_CHECK(options.weight_decay >= 0, "optim.weight_decay must be >= 0, got {}", options.weight_decay);
  for (const auto& p : params) {
    const DType state_dtype = p.tensor.dtype() == DType::F64 ? DType::F64 : DType::F32;
    slots_.push_back({p.name, p.tensor, zeros(p.tensor.shape(), state_dtype, p.tensor.device()),
                      zeros(p.tensor.shape(), state_dtype, p.tensor.device()),
                      kind_decays(p.kind, options) ? options.weight_decay : 0.0, p.compute_copy});
  }
}

bool AdamW::decays(const std::string& name) const {
  for (const auto& s : slots_)
    if (s.name == name) return s.weight_decay > 0;
  return false;
}

void AdamW::step(double lr, double grad_scale) { step(lr, grad_scale, DeviceClip{}); }

void AdamW::cancel_step() {
  LF_CHECK(step_ > 0, "AdamW::cancel_step without a step");
  --step_;
}

void AdamW::step(double lr, double grad_scale, const DeviceClip& clip) {
  NoGradGuard no_grad;
  ++step_;
  const double bc1 = 1.0 - std::pow(options_.beta1, double(step_));
  const double bc2 = 1.0 - std::pow(options_.beta2, double(step_));
  std::vector<AdamWTensor> tensors;
  std::vector<Slot*> updated;
  for (auto& s : slots_) {
    Tensor g = s.param.grad();
    if (!g.defined()) continue;
    if (!g.is_contiguous()) g = contiguous(g);
    // A compute copy in use is written by the update itself; one not made yet is left for the
    // next forward pass to create.
    Tensor copy;
    if (s.compute_copy && s.compute_copy->tensor.defined() && s.compute_copy->tensor.dtype() != s.param.dtype() &&
        s.compute_copy->tensor.shape() == s.param.shape())
      copy = s.compute_copy->tensor;
    tensors.push_back({.param = s.param, .grad = g, .exp_avg = s.exp_avg, .exp_avg_sq = s.exp_avg_sq,
                       .weight_decay = s.weight_decay, .compute_copy = copy});
    updated.push_back(&s);
  }
  if (tensors.empty()) return;
  const AdamWArgs args{.lr = lr, .beta1 = options_.beta1, .beta2 = options_.beta2, .eps = options_.eps,
                       .weight_decay = 0, .bias_correction1 = bc1, .bias_correction2 = bc2,
                       .grad_scale = grad_scale,
                       .device_grad_scale = clip.norm_squared.defined()
                                                ? clip_step_scale_on_device(clip.norm_squared, grad_scale, clip.max_norm)
                                                : Tensor()};
  backend_for(tensors[0].param).adamw_multi_step(tensors, args);
  for (size_t i = 0; i < tensors.size(); ++i) {
    tensors[i].param.bump_version();
    if (tensors[i].compute_copy.defined()) {
      tensors[i].compute_copy.bump_version();
      updated[i]->compute_copy->mark_fresh(tensors[i].param);
    }
  }
}

std::vector<std::pair<std::string, Tensor>> AdamW::state_tensors() const {
  std::vector<std::pair<std::string, Tensor>> out;
  for (const auto& s : slots_) {
    out.push_back({s.name + ".exp_avg", s.exp_avg});
    out.push_back({s.name + ".exp_avg_sq", s.exp_avg_sq});
  }
  return out;
}

void AdamW::load_state(const std::vector<std::pair<std::string, Tensor>>& tensors, int64_t step,
                       const std::string& source) {
  NoGradGuard no_grad;
  std::unordered_map<std::string, const Tensor*> by_name;
  for (const auto& [name, t] : tensors) by_name[name] = &t;
  for (auto& s : slots_) {
    for (Tensor* dst : {&s.exp_avg, &s.exp_avg_sq}) {
      const std::string name = s.name + (dst == &s.exp_avg ? ".exp_avg" : ".exp_avg_sq");
      auto it = by_name.find(name);
      LF_CHECK(it != by_name.end(), "{}: optimizer state '{}' is missing", source, name);
      LF_CHECK(it->second->shape() == dst->shape(), "{}: optimizer state '{}' has shape {}, expected {}", source,
               name, shape_str(it->second->shape()), shape_str(dst->shape()));
      copy_(*dst, *it->second);
    }
  }
  LF_CHECK(by_name.size() == 2 * slots_.size(), "{}: {} optimizer tensors, expected {} (the model differs)", source,
           by_name.size(), 2 * slots_.size());
  step_ = step;
}

}  // namespace lmforge::optim
