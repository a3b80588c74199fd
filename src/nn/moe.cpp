#include "nn/moe.h"

#include <cmath>

#include "autograd/grad_mode.h"
#include "ops/ops.h"

namespace lmforge::nn {

namespace {

// The routed experts' weights, stacked: expert e is row e of each.
class StackedExperts : public Module {
 public:
  StackedExperts(const ModelConfig& c, TensorOptions opt) {
    const int64_t e = c.n_experts, f = c.d_ff_expert, d = c.d_model;
    const auto make = [&](const Shape& shape) { return Tensor::empty(shape, opt.dtype, opt.device); };
    if (c.ffn == FfnKind::SwiGLU) gate_proj = register_parameter("gate_proj", make({e, f, d}), ParamKind::Matrix);
    up_proj = register_parameter("up_proj", make({e, f, d}), ParamKind::Matrix);
    down_proj = register_parameter("down_proj", make({e, d, f}), ParamKind::ResidualMatrix);
  }
  Tensor gate_proj, up_proj, down_proj;
};

// Capacity of each expert: ceil(cf · assignments / E), at least 1.
int64_t expert_capacity(double capacity_factor, int64_t assignments, int64_t n_experts) {
  const double c = std::ceil(capacity_factor * double(assignments) / double(n_experts));
  return std::max<int64_t>(1, int64_t(std::min(c, 9.0e15)));
}

// sign(x) as f32: 1, 0 or -1.
Tensor sign_of(const Tensor& x) {
  const Tensor zero = zeros({}, x.dtype(), x.device());
  return cast(gt(x, zero), DType::F32) - cast(lt(x, zero), DType::F32);
}

}  // namespace

// ---- router ----

Router::Router(const ModelConfig& c, TensorOptions opt)
    : n_experts_(c.n_experts), top_k_(c.top_k), kind_(c.router), normalize_gates_(c.normalize_gates),
      capacity_factor_(c.capacity_factor), bias_update_rate_(c.bias_update_rate) {
  weight_ = register_parameter("weight", Tensor::empty({c.n_experts, c.d_model}, opt.dtype, opt.device),
                               ParamKind::Matrix);
  if (c.bias_update_rate > 0)
    bias_ = register_buffer("e_score_correction_bias", zeros({c.n_experts}, DType::F32, opt.device));
}

Routing Router::route(const Tensor& x) const {
  LF_CHECK(x.dim() == 2 && x.size(1) == weight_.size(1), "MoE router: tokens must be [N, {}], got shape {}",
           weight_.size(1), shape_str(x.shape()));
  const int64_t n = x.size(0), e = n_experts_;
  const Device dev = x.device();
  Routing r;
  // Routing decisions in f32 whatever the compute dtype (they are discrete and sensitive).
  const DType rd = weight_.dtype() == DType::F64 ? DType::F64 : DType::F32;
  r.logits = linear(cast(x, rd), cast(weight_, rd));  // [N, E]
  if (kind_ == RouterKind::SigmoidTopK) {
    const Tensor s = sigmoid(r.logits);
    r.probs = s / sum(s, {1}, true);
  } else {
    r.probs = softmax(r.logits, 1);
  }

  if (kind_ == RouterKind::ExpertChoice) {
    const int64_t c = std::min(n, expert_capacity(capacity_factor_, n * top_k_, e));
    const Tensor by_expert = transpose(r.probs, 0, 1);  // [E, N]
    Tensor idx;
    {
      NoGradGuard no_grad;
      idx = topk(by_expert.detach(), c, 1).second;  // [E, c]: experts are already in order
    }
    r.gate = gather(by_expert, 1, idx).reshape({e * c});
    r.token = contiguous(idx).reshape({e * c});
    r.ends = arange(e, DType::I64, dev, double(c), double(c));
    r.chosen = full({e}, double(c), DType::F32, dev);
    r.dropped = zeros({}, DType::F32, dev);
    return r;
  }

  // Token choice: the top_k experts of each token by score (+ the balancing bias, which moves
  // the choice but not the gate).
  const Tensor scores = kind_ == RouterKind::SigmoidTopK ? sigmoid(r.logits) : r.probs;
  const int64_t k = top_k_, m = n * k;
  {
    NoGradGuard no_grad;
    Tensor select_by = scores.detach();
    if (bias_.defined()) select_by = select_by + cast(bias_, select_by.dtype());
    r.choice = topk(select_by, k, 1).second;  // [N, k] i64
  }
  Tensor g = gather(scores, 1, r.choice);  // [N, k]
  if (kind_ == RouterKind::SigmoidTopK || normalize_gates_) g = g / sum(g, {1}, true);
  const Tensor gate_flat = g.reshape({m});
  Tensor order;
  {
    NoGradGuard no_grad;
    const Tensor expert_flat = r.choice.reshape({m});  // [M]
    const Tensor token_flat = contiguous(expand(arange(n, DType::I64, dev).reshape({n, 1}), {n, k})).reshape({m});
    const Tensor onehot =
        cast(eq(expert_flat.reshape({m, 1}), arange(e, DType::I64, dev).reshape({1, e})), DType::F32);  // [M, E]
    r.chosen = sum(onehot, {0});  // [E]
    Tensor key = cast(expert_flat, DType::F32), kept = r.chosen;
    if (capacity_factor_ > 0) {
      // Position of each assignment among its expert's, in token order; beyond capacity:
      // dropped, sorted after every expert (key E) and outside every segment.
      const double cap = double(expert_capacity(capacity_factor_, m, e));
      const Tensor position = sum(cumsum(onehot, 0) * onehot, {1}) + (-1.0);  // [M]
      const Tensor keep = lt(position, full({}, cap, DType::F32, dev));
      key = where(keep, key, full({}, double(e), DType::F32, dev));
      kept = sum(onehot * cast(keep, DType::F32).reshape({m, 1}), {0});
    }
    r.dropped = sum(r.chosen) - sum(kept);
    order = argsort(key, 0);  // stable: token order within an expert
    r.token = index_select(token_flat, 0, order);
    r.ends = cast(cumsum(kept, 0), DType::I64);
  }
  r.gate = index_select(gate_flat, 0, order);  // differentiable: the gates in segment order
  return r;
}

void Router::update_bias(const Tensor& load) {
  if (!bias_.defined() || bias_update_rate_ <= 0) return;
  NoGradGuard no_grad;
  const Tensor l = cast(load, DType::F32);
  const Tensor mean_load = sum(l) * (1.0 / double(n_experts_));
  Tensor b = bias_;
  add_(b, sign_of(mean_load - l), bias_update_rate_);
}

// ---- the layer ----

namespace {
ModelConfig shared_mlp_config(const ModelConfig& c) {
  ModelConfig s = c;
  s.d_ff = c.n_shared_experts * c.d_ff_expert;
  return s;
}
}  // namespace

MoE::MoE(const ModelConfig& c, TensorOptions opt) : config_(c), n_experts_(c.n_experts), kind_(c.ffn) {
  LF_CHECK(c.n_experts > 0 && c.d_ff_expert > 0, "MoE: the config must be resolved with model.n_experts > 0");
  gate_ = register_module("gate", std::make_unique<Router>(c, opt));
  auto experts = std::make_unique<StackedExperts>(c, opt);
  w_gate_ = experts->gate_proj;
  w_up_ = experts->up_proj;
  w_down_ = experts->down_proj;
  experts_ = register_module("experts", std::move(experts));
  if (c.n_shared_experts > 0) shared_ = register_module("shared_experts", std::make_unique<MLP>(shared_mlp_config(c), opt));
}

Routing MoE::route_and_report(const Tensor& x2, AuxReport* report) const {
  Routing r = gate_->route(x2);
  if (!report) return r;
  const ModelConfig& c = config_;
  const int64_t n = x2.size(0), e = n_experts_;
  const bool token_choice = c.router != RouterKind::ExpertChoice;
  if (token_choice && (c.balance_loss > 0 || c.device_balance_loss > 0 || c.comm_balance_loss > 0)) {
    const Tensor p = mean(r.probs, {0});                                      // P_i [E], differentiable
    const Tensor f = cast(r.chosen, p.dtype()) * (1.0 / double(n * c.top_k));  // f_i [E], sums to 1
    if (c.balance_loss > 0) report->add_loss("moe_balance", sum(f * p) * (c.balance_loss * double(e)));
    const int64_t groups = c.n_expert_groups, per = e / groups;
    const Tensor p_group = sum(p.reshape({groups, per}), {1});  // Σ_{i∈d} P_i
    if (c.device_balance_loss > 0) {
      const Tensor f_group = mean(f.reshape({groups, per}), {1}) * double(e);
      report->add_loss("moe_device_balance", sum(f_group * p_group) * c.device_balance_loss);
    }
    if (c.comm_balance_loss > 0) {
      Tensor sent;  // [D]: tokens that send at least one copy to group d
      {
        NoGradGuard no_grad;
        const Tensor group_of = cast(r.choice, DType::F32) * (1.0 / double(per));  // [N, k], floor below
        const Tensor lo = arange(groups, DType::F32, x2.device()).reshape({1, 1, groups});
        const Tensor g3 = group_of.reshape({n, c.top_k, 1});
        const Tensor in_group = cast(ge(g3, lo), DType::F32) * cast(lt(g3, lo + 1.0), DType::F32);  // [N, k, D]
        sent = sum(amax(in_group, {1}), {0});  // [D]
      }
      const double m_dev = double(std::min(c.top_k, groups));
      const Tensor f_comm = cast(sent, p.dtype()) * (double(groups) / (m_dev * double(n)));
      report->add_loss("moe_comm_balance", sum(f_comm * p_group) * c.comm_balance_loss);
    }
  }
  if (c.router_z_loss > 0) {
    const Tensor lse = logsumexp(r.logits, 1);
    report->add_loss("router_z", mean(lse * lse) * c.router_z_loss);
  }
  report->add_stat("moe.tokens_per_expert", r.chosen);
  report->add_stat("moe.dropped_tokens", r.dropped);
  if (gate_->bias().defined()) report->add_stat("moe.expert_bias", gate_->bias(), /*summed=*/false);
  return r;
}

Tensor MoE::shared_output(const Tensor& x2) const { return shared_ ? shared_->forward(x2, nullptr) : Tensor(); }

Tensor MoE::forward(const Tensor& x, AuxReport* report) const {
  const int64_t c = x.size(-1);
  LF_CHECK(c == config_.d_model, "MoE: input has {} features, the layer {}", c, config_.d_model);
  const Tensor x2 = x.reshape({-1, c});  // [N, C]
  const int64_t n = x2.size(0);
  const Routing r = route_and_report(x2, report);
  const int64_t m = r.token.size(0);
  const Tensor xs = index_select(x2, 0, r.token);  // [M, C], grouped by expert
  Tensor h;
  if (kind_ == FfnKind::SwiGLU) {
    h = swiglu(grouped_matmul(xs, experts_->compute_copy(w_gate_), r.ends),
               grouped_matmul(xs, experts_->compute_copy(w_up_), r.ends));
  } else {
    h = gelu(grouped_matmul(xs, experts_->compute_copy(w_up_), r.ends), GeluApprox::Tanh);
  }
  const Tensor ys = grouped_matmul(h, experts_->compute_copy(w_down_), r.ends) * cast(r.gate, xs.dtype()).reshape({m, 1});
  const Tensor index = contiguous(expand(r.token.reshape({m, 1}), {m, c}));
  Tensor y = scatter_add(zeros({n, c}, ys.dtype(), ys.device()), 0, index, ys);
  if (shared_) y = y + shared_output(x2);
  return y.reshape(x.shape());
}

Tensor MoE::forward_reference(const Tensor& x, AuxReport* report) const {
  const int64_t c = x.size(-1);
  const Tensor x2 = x.reshape({-1, c});
  const int64_t n = x2.size(0);
  const Routing r = route_and_report(x2, report);
  const std::vector<int64_t> ends = to_vector<int64_t>(r.ends);
  Tensor y = zeros({n, c}, x2.dtype(), x2.device());
  int64_t start = 0;
  for (int64_t e = 0; e < n_experts_; ++e) {
    const int64_t count = ends[size_t(e)] - start;
    if (count > 0) {
      const Tensor tokens = narrow(r.token, 0, start, count);
      const Tensor xe = index_select(x2, 0, tokens);
      const Tensor up = linear(xe, select(experts_->compute_copy(w_up_), 0, e));
      const Tensor hidden = kind_ == FfnKind::SwiGLU
                                ? swiglu(linear(xe, select(experts_->compute_copy(w_gate_), 0, e)), up)
                                : gelu(up, GeluApprox::Tanh);
      const Tensor ye = linear(hidden, select(experts_->compute_copy(w_down_), 0, e)) *
                        cast(narrow(r.gate, 0, start, count), xe.dtype()).reshape({count, 1});
      y = scatter_add(y, 0, contiguous(expand(tokens.reshape({count, 1}), {count, c})), ye);
    }
    start = ends[size_t(e)];
  }
  if (shared_) y = y + shared_output(x2);
  return y.reshape(x.shape());
}

void MoE::after_optimizer_step(const StepStats& stats, int64_t layer) {
  const Tensor load = stats.get(fmt::format("layers.{}.moe.tokens_per_expert", layer));
  if (load.defined()) gate_->update_bias(load);
}

}  // namespace lmforge::nn
