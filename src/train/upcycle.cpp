#include "train/upcycle.h"

#include <map>

#include "ops/ops.h"
#include "train/config.h"

namespace lmforge::train {

namespace {

// `c` with every Mixture-of-Experts key at its default: the dense model it grows from.
nn::ModelConfig without_moe(nn::ModelConfig c) {
  const nn::ModelConfig d;
  c.n_experts = d.n_experts, c.moe_layers = d.moe_layers, c.d_ff_expert = d.d_ff_expert;
  c.n_shared_experts = d.n_shared_experts, c.top_k = d.top_k, c.router = d.router;
  c.normalize_gates = d.normalize_gates, c.capacity_factor = d.capacity_factor, c.balance_loss = d.balance_loss;
  c.n_expert_groups = d.n_expert_groups, c.device_balance_loss = d.device_balance_loss;
  c.comm_balance_loss = d.comm_balance_loss, c.router_z_loss = d.router_z_loss;
  c.bias_update_rate = d.bias_update_rate;
  return c;
}

}  // namespace

std::unique_ptr<nn::Transformer> upcycle(const nn::Transformer& dense, const nn::ModelConfig& moe_config,
                                         Generator& router_gen, double router_std) {
  nn::ModelConfig moe = moe_config;
  moe.resolve();
  const nn::ModelConfig& dc = dense.config();
  LF_CHECK(dc.n_experts == 0, "upcycle: the checkpoint is already a Mixture of Experts (model.n_experts = {})",
           dc.n_experts);
  LF_CHECK(moe.n_experts > 0, "upcycle: the target config has no experts; set model.n_experts > 0");
  // The dense checkpoint is the "checkpoint", the MoE target the "config".
  const std::string diff = model_difference(without_moe(dc), without_moe(moe));
  LF_CHECK(diff.empty(), "upcycle: the dense checkpoint and the MoE config disagree on {} (they must match on "
           "every key but the Mixture-of-Experts ones)", diff);
  LF_CHECK(dc.d_ff % moe.d_ff_expert == 0, "upcycle: model.d_ff_expert ({}) must divide the dense model.d_ff ({}) "
           "so that each expert starts as a slice of the dense FFN", moe.d_ff_expert, dc.d_ff);
  const int64_t slices = dc.d_ff / moe.d_ff_expert, f = moe.d_ff_expert;

  auto out = std::make_unique<nn::Transformer>(moe, dense.options());
  NoGradGuard no_grad;
  std::map<std::string, Tensor> src;
  for (const auto& p : dense.named_parameters()) src.emplace(p.name, p.tensor);
  for (auto& p : out->named_parameters()) {
    Tensor& dst = p.tensor;
    if (const auto it = src.find(p.name); it != src.end()) {
      LF_CHECK(it->second.shape() == dst.shape(), "upcycle: tensor '{}' has shape {} in the dense model but {} in "
               "the MoE model", p.name, shape_str(it->second.shape()), shape_str(dst.shape()));
      copy_(dst, it->second);
      dst.bump_version();
      continue;
    }
    // model.layers.{i}.mlp.<part>
    const size_t at = p.name.find(".mlp.");
    LF_CHECK(at != std::string::npos, "upcycle: tensor '{}' of the MoE model has no dense counterpart", p.name);
    const std::string mlp = p.name.substr(0, at + 5), part = p.name.substr(at + 5);
    const auto dense_weight = [&](const std::string& proj) {
      const auto it = src.find(mlp + proj + ".weight");
      LF_CHECK(it != src.end(), "upcycle: the dense checkpoint has no {}{}.weight", mlp, proj);
      return it->second;
    };
    if (part == "gate.weight") {
      if (slices == 1) normal_(dst, router_gen, 0.0, router_std);
      else fill_(dst, 0.0);
    } else if (part == "experts.gate_proj" || part == "experts.up_proj") {
      const Tensor w = dense_weight(part == "experts.gate_proj" ? "gate_proj" : "up_proj");  // [F, C]
      for (int64_t e = 0; e < moe.n_experts; ++e) {
        Tensor row = select(dst, 0, e);
        copy_(row, narrow(w, 0, (e % slices) * f, f));
      }
    } else if (part == "experts.down_proj") {
      const Tensor w = dense_weight("down_proj");  // [C, F]
      for (int64_t e = 0; e < moe.n_experts; ++e) {
        Tensor row = select(dst, 0, e);
        copy_(row, mul(narrow(w, 1, (e % slices) * f, f), double(slices)));
      }
    } else if (part.starts_with("shared_experts.")) {
      if (part == "shared_experts.down_proj.weight") fill_(dst, 0.0);
      else {
        // Gate and up projections of the shared experts: the first slices of the dense FFN
        // (their output is zeroed by the down projection until training moves it).
        const Tensor w = dense_weight(part == "shared_experts.gate_proj.weight" ? "gate_proj" : "up_proj");
        for (int64_t r = 0; r < dst.size(0); r += std::min(dst.size(0) - r, w.size(0))) {
          Tensor rows = narrow(dst, 0, r, std::min(dst.size(0) - r, w.size(0)));
          copy_(rows, narrow(w, 0, 0, rows.size(0)));
        }
      }
    } else {
      LF_CHECK(false, "upcycle: tensor '{}' of the MoE model has no dense counterpart", p.name);
    }
    dst.bump_version();
  }
  return out;
}

}  // namespace lmforge::train
