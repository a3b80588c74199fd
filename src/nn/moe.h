// Mixture of Experts: a feed-forward network of many experts, each token processed by a few.
//
//   x [B, T, C] -> tokens [N, C]        (N = B·T)
//   router (mlp.gate): logits r = x·Wgᵀ [N, E] in f32, then
//     softmax_topk:  p = softmax(r); each token takes its top_k experts by p (+ bias, below);
//                    gates g = p of the chosen, renormalised to sum to 1 when normalize_gates
//     sigmoid_topk:  s = sigmoid(r); top_k by s (+ bias); g = s of the chosen / their sum
//                    (DeepSeek-V3)
//     expert_choice: p = softmax(r); each expert takes its top-c tokens by p,
//                    c = ceil(capacity_factor·N·top_k / E) (at most N); g = p of the pair.
//                    Every expert gets exactly c tokens; a token may get none or several.
//   capacity (token choice, capacity_factor > 0): expert e keeps at most ceil(cf·N·top_k / E)
//     assignments, earlier tokens first; the rest are dropped (the token's other experts and the
//     residual carry it) and counted.
//   experts: the kept (token, expert) pairs sorted by expert (stable: token order within an
//     expert), gathered into contiguous segments, and each expert's FFN run as grouped products
//     (ops/grouped_matmul.h) over its segment: SwiGLU down(silu(gate·x) ⊙ up·x) or GELU.
//   y[t] = Σ_{(t,e) kept} g·E_e(x_t) + shared(x_t)    (combine: a deterministic scatter-add)
//   shared experts (mlp.shared_experts): n_shared_experts always-active experts of width
//     d_ff_expert, run as one MLP of width n_shared_experts·d_ff_expert.
//
// Balancing (token choice; each switch is a coefficient, 0 = off), with f_i = the fraction of the
// N·top_k assignments the router chose for expert i, P_i = the mean over tokens of the router
// probabilities (sigmoid: affinities normalised over all experts), D = n_expert_groups:
//   balance_loss α (Switch):              α·E·Σ_i f_i·P_i                      ("moe_balance")
//   device_balance_loss β (DeepSeek-V2):  β·Σ_d (E·mean_{i∈d} f_i)·(Σ_{i∈d} P_i)  ("moe_device_balance")
//   comm_balance_loss γ (DeepSeek-V2):    γ·Σ_d (D/(M·N)·#tokens sent to group d)·(Σ_{i∈d} P_i),
//                                         M = min(top_k, D)                      ("moe_comm_balance")
//   router_z_loss:                        z·mean_t logsumexp(r_t)²             ("router_z")
//   bias_update_rate γ (auxiliary-loss-free, DeepSeek-V3): a per-expert bias b (the buffer
//     mlp.gate.e_score_correction_bias) is added to the scores for the top-k choice only; after
//     each optimizer step b_i += γ·sign(mean load − load_i) over the step's assignments. b is
//     saved with the weights.
// The losses join the objective through nn/aux_report.h; statistics per layer: tokens_per_expert
// [E] (assignments chosen), dropped_tokens, and the bias.
//
// Parameter names (HF Qwen3-MoE / DeepSeek-V3 layout where they have one): mlp.gate.weight [E, C],
// mlp.experts.{gate,up}_proj [E, F, C], mlp.experts.down_proj [E, C, F] (stacked: expert e is
// row e), mlp.shared_experts.{gate,up,down}_proj.weight.
#pragma once

#include "nn/mlp.h"

namespace lmforge::nn {

// The router's decision for one batch of tokens: the kept assignments sorted by expert.
struct Routing {
  Tensor token;     // [M] i64: the token of each assignment, grouped by expert; dropped ones last
  Tensor gate;      // [M]: the assignment's gate in the router dtype (f32; f64 in an f64 model), differentiable
  Tensor ends;      // [E] i64: cumulative segment ends (expert e owns [ends[e-1], ends[e]))
  Tensor chosen;    // [E] f32: assignments the router chose per expert (before capacity drops)
  Tensor dropped;   // scalar f32: assignments dropped by the capacity limit
  Tensor logits;    // [N, E] f32 router logits (differentiable)
  Tensor probs;     // [N, E] f32: softmax probabilities or normalised sigmoid affinities
  Tensor choice;    // [N, top_k] i64 experts each token chose (token choice only)
};

class Router : public Module {
 public:
  Router(const ModelConfig& config, TensorOptions opt);
  // x [N, C] (any float dtype) -> the routing of its N tokens.
  Routing route(const Tensor& x) const;
  const Tensor& weight() const { return weight_; }
  // The auxiliary-loss-free balancing bias [E] f32 (zeros unless bias_update_rate > 0).
  const Tensor& bias() const { return bias_; }
  // b += γ·sign(mean − load) for a step's chosen-assignment counts `load` [E].
  void update_bias(const Tensor& load);

 private:
  int64_t n_experts_, top_k_;
  RouterKind kind_;
  bool normalize_gates_;
  double capacity_factor_, bias_update_rate_;
  Tensor weight_, bias_;
};

class MoE : public FeedForward {
 public:
  MoE(const ModelConfig& config, TensorOptions opt);
  // x [..., C] -> [..., C] through the grouped path; report gets the losses and statistics.
  Tensor forward(const Tensor& x, AuxReport* report) const override;
  // The same output from a plain loop over the experts (one gather and three matmuls each):
  // the reference the grouped path is tested against. Same routing, same report.
  Tensor forward_reference(const Tensor& x, AuxReport* report) const;
  void after_optimizer_step(const StepStats& stats, int64_t layer) override;

  const Router& router() const { return *gate_; }
  int64_t n_experts() const { return n_experts_; }
  // Stacked expert weights: gate [E, F, C] (SwiGLU only, else undefined), up [E, F, C], down [E, C, F].
  const Tensor& expert_gate_proj() const { return w_gate_; }
  const Tensor& expert_up_proj() const { return w_up_; }
  const Tensor& expert_down_proj() const { return w_down_; }
  const MLP* shared_experts() const { return shared_; }

 private:
  // Routes x2 [N, C] and reports the balancing losses and statistics.
  Routing route_and_report(const Tensor& x2, AuxReport* report) const;
  Tensor shared_output(const Tensor& x2) const;

  const ModelConfig config_;
  int64_t n_experts_;
  FfnKind kind_;
  Router* gate_;
  Module* experts_;
  Tensor w_gate_, w_up_, w_down_;
  MLP* shared_ = nullptr;
};

}  // namespace lmforge::nn
