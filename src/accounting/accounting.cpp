#include "accounting/accounting.h"

#include "ops/ops.h"

namespace lmforge::accounting {

namespace {
int64_t q_dim(const nn::ModelConfig& c) { return c.n_heads * c.head_dim; }
int64_t kv_dim(const nn::ModelConfig& c) { return c.n_kv_heads * c.head_dim; }
int64_t ffn_mats(const nn::ModelConfig& c) { return c.ffn == nn::FfnKind::SwiGLU ? 3 : 2; }
nn::ModelConfig resolved(nn::ModelConfig c) {
  c.resolve();
  return c;
}
}  // namespace

ParameterCount count_parameters(const nn::ModelConfig& config) {
  const nn::ModelConfig c = resolved(config);
  ParameterCount p;
  for (const auto& g : nn::parameter_breakdown(c)) {
    p.components.push_back({g.name, g.count});
    p.total += g.count;
    p.active += g.active;
    if (g.matmul) p.matmul += g.count, p.active_matmul += g.active;
  }
  // The output projection reads the token embedding when tied: its matmul counts in 6·N.
  if (c.tied_embeddings) p.matmul += c.vocab_size * c.d_model, p.active_matmul += c.vocab_size * c.d_model;
  return p;
}

FlopCount count_flops(const nn::ModelConfig& config, int64_t seq_len) {
  const nn::ModelConfig c = resolved(config);
  const double d = double(c.d_model), L = double(c.n_layers), T = double(seq_len);
  FlopCount f;
  const double qkvo = 2.0 * (d * q_dim(c) + 2 * d * kv_dim(c) + q_dim(c) * d);
  const double scores = 2.0 * T * q_dim(c) * 2;  // Q·Kᵀ and P·V, per query token
  const double mlp = 2.0 * ffn_mats(c) * d * c.d_ff;
  const double head = 2.0 * d * c.vocab_size;
  const double moe_layers = double(c.moe_layer_count()), dense_layers = L - moe_layers;
  f.forward_per_token = {{"attention projections", int64_t(L * qkvo)},
                         {"attention scores and values", int64_t(L * scores)}};
  if (dense_layers > 0) f.forward_per_token.push_back({"mlp", int64_t(dense_layers * mlp)});
  if (moe_layers > 0) {
    // Active FLOPs: the router, top_k routed experts (expert choice: capacity_factor·top_k on
    // average) and the shared experts per token.
    const double expert = 2.0 * ffn_mats(c) * d * double(c.d_ff_expert);
    const double routed = c.router == nn::RouterKind::ExpertChoice ? c.capacity_factor * double(c.top_k) : double(c.top_k);
    f.forward_per_token.push_back({"moe router", int64_t(moe_layers * 2.0 * d * double(c.n_experts))});
    f.forward_per_token.push_back({"moe routed experts (active)", int64_t(moe_layers * routed * expert)});
    if (c.n_shared_experts > 0)
      f.forward_per_token.push_back({"moe shared experts", int64_t(moe_layers * double(c.n_shared_experts) * expert)});
  }
  f.forward_per_token.push_back({"lm_head", int64_t(head)});
  for (const auto& comp : f.forward_per_token) f.forward_per_token_total += double(comp.count);
  f.backward_per_token_total = 2 * f.forward_per_token_total;
  f.training_per_token = f.forward_per_token_total + f.backward_per_token_total;
  const ParameterCount p = count_parameters(c);
  f.six_n_plus_attention = 6.0 * double(p.active_matmul) + 12.0 * L * q_dim(c) * T;
  return f;
}

MemoryEstimate estimate_memory(const nn::ModelConfig& config, const MemoryOptions& opt) {
  const nn::ModelConfig c = resolved(config);
  const int64_t T = opt.seq_len > 0 ? opt.seq_len : c.context_length;
  const int64_t BT = opt.micro_batch_size * T;
  const int64_t n = count_parameters(c).total;
  const int64_t pb = int64_t(dtype_size(opt.param_dtype)), ab = int64_t(dtype_size(opt.compute_dtype));
  const bool mixed = opt.compute_dtype != opt.param_dtype;
  MemoryEstimate m;
  m.by_kind.push_back({fmt::format("parameters ({})", dtype_name(opt.param_dtype)), n * pb});
  if (mixed) m.by_kind.push_back({fmt::format("compute copy ({})", dtype_name(opt.compute_dtype)), n * ab});
  if (opt.training) {
    m.by_kind.push_back({"gradients (f32)", n * 4});
    m.by_kind.push_back({"optimizer states (AdamW m, v in f32)", 2 * n * 4});
    // Tensors each block keeps for backward, per token (elements): the block input and the
    // attention-norm output (C each), q, k, v after RoPE and the attention output (2·H·hd +
    // 2·Hkv·hd), the residual and the MLP-norm output (2·C), the MLP's hidden activations
    // (gate, up and their product: 3·F for SwiGLU; pre- and post-activation: 2·F for GELU);
    // plus per-row statistics in f32 (norm rstd ×2, attention log-sum-exp per head).
    const int64_t d = c.d_model, F = c.d_ff;
    const int64_t per_token = 2 * d + 2 * q_dim(c) + 2 * kv_dim(c) + 2 * d + (c.ffn == nn::FfnKind::SwiGLU ? 3 : 2) * F;
    const int64_t stats = (2 + c.n_heads) * 4;
    const int64_t qk_norm = c.qk_norm ? (q_dim(c) + kv_dim(c)) * ab : 0;
    int64_t block = BT * (per_token * ab + stats + qk_norm);
    if (c.moe_layer_count() > 0) {
      // A MoE layer keeps, instead of the MLP's hidden activations: the router logits and
      // probabilities (2·E f32), and per token copy (top_k of them) the gathered input, the
      // experts' hidden activations and the weighted output (2·C + 3·F_expert for SwiGLU), plus
      // the shared experts' hidden activations. The layers are averaged over the model.
      const int64_t fe = c.d_ff_expert, mats = c.ffn == nn::FfnKind::SwiGLU ? 3 : 2;
      const double copies = c.router == nn::RouterKind::ExpertChoice ? c.capacity_factor * double(c.top_k) : double(c.top_k);
      const int64_t moe_per_token = per_token - mats * F + int64_t(copies * double(2 * d + mats * fe)) +
                                    c.n_shared_experts * mats * fe;
      const int64_t moe_block = BT * (moe_per_token * ab + stats + qk_norm + 2 * c.n_experts * 4);
      const int64_t m = c.moe_layer_count();
      block = (block * (c.n_layers - m) + moe_block * m) / c.n_layers;
    }
    const int64_t logits = BT * c.vocab_size * ab;
    // Recomputing blocks keeps each block's input stream (the residual and the pending branch
    // output, C each) and, during backward, one block's activations at a time. Those are made
    // after the logits' gradient has gone (the output projection's backward runs first), so
    // only the part of a block's activations beyond the logits' size adds to the peak.
    const int64_t kept = opt.recompute_blocks ? c.n_layers * BT * 2 * d * ab + std::max<int64_t>(0, block - logits)
                                              : c.n_layers * block;
    m.by_kind.push_back({fmt::format("activations ({}{})", dtype_name(opt.compute_dtype),
                                     opt.recompute_blocks ? ", blocks recomputed in backward" : ""),
                         kept + BT * d * ab * 2});
    // Logits kept for the loss, in the compute dtype (the loss itself is computed in f32 row by
    // row); their gradient is written over them in the backward (ops/nn_ops.cpp cross_entropy).
    m.by_kind.push_back({fmt::format("logits, then their gradient in place ({})", dtype_name(opt.compute_dtype)),
                         logits});
  } else {
    m.by_kind.push_back({fmt::format("logits ({})", dtype_name(opt.compute_dtype)), BT * c.vocab_size * ab});
  }
  for (const auto& comp : m.by_kind) m.total += comp.count;
  return m;
}

std::string human_bytes(double b) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (b >= 1024 && u < 4) { b /= 1024; ++u; }
  return fmt::format("{:.1f} {}", b, units[u]);
}

std::string human_count(double n) {
  const char* units[] = {"", "K", "M", "G", "T", "P", "E"};
  int u = 0;
  while (std::abs(n) >= 1000 && u < 6) { n /= 1000; ++u; }
  return u == 0 ? fmt::format("{:.0f}", n) : fmt::format("{:.2f}{}", n, units[u]);
}

std::string format_report(const nn::ModelConfig& config, const MemoryOptions& opt, int64_t tokens_per_step,
                          int64_t steps, double peak_flops) {
  const nn::ModelConfig c = resolved(config);
  const int64_t T = opt.seq_len > 0 ? opt.seq_len : c.context_length;
  const ParameterCount p = count_parameters(c);
  const FlopCount f = count_flops(c, T);
  const MemoryEstimate m = estimate_memory(c, opt);
  std::string out;
  out += fmt::format("parameters: {} ({} in matmuls)\n", human_count(double(p.total)), human_count(double(p.matmul)));
  if (p.active != p.total)
    out += fmt::format("active per token: {} ({} in matmuls): {} of {} routed experts in {} of {} layers\n",
                       human_count(double(p.active)), human_count(double(p.active_matmul)), c.top_k, c.n_experts,
                       c.moe_layer_count(), c.n_layers);
  for (const auto& comp : p.components) out += fmt::format("  {:<28} {:>12}\n", comp.name, human_count(double(comp.count)));
  out += fmt::format("FLOPs per token (seq_len {}): forward {}, backward {}, training {} (6N + 12·L·H·hd·T = {})\n", T,
                     human_count(f.forward_per_token_total), human_count(f.backward_per_token_total),
                     human_count(f.training_per_token), human_count(f.six_n_plus_attention));
  for (const auto& comp : f.forward_per_token) out += fmt::format("  forward {:<28} {:>12}\n", comp.name, human_count(double(comp.count)));
  double step_flops = f.training_per_token * double(tokens_per_step);
  out += fmt::format("per optimizer step ({} tokens): {}FLOP; whole run ({} steps): {}FLOP\n", tokens_per_step,
                     human_count(step_flops), steps, human_count(step_flops * double(steps)));
  if (opt.recompute_blocks && opt.training) {
    // The blocks' forward runs twice (everything but the output projection).
    double blocks = f.forward_per_token_total;
    for (const auto& comp : f.forward_per_token)
      if (comp.name == "lm_head") blocks -= double(comp.count);
    step_flops += blocks * double(tokens_per_step);
    out += fmt::format("block recomputation adds {}FLOP per token: {}FLOP executed per step\n", human_count(blocks),
                       human_count(step_flops));
  }
  out += fmt::format("memory, micro-batch {} × {} tokens: {} predicted peak\n", opt.micro_batch_size, T, human_bytes(double(m.total)));
  for (const auto& comp : m.by_kind) out += fmt::format("  {:<40} {:>12}\n", comp.name, human_bytes(double(comp.count)));
  if (peak_flops > 0) {
    const double s = step_flops / peak_flops;
    out += fmt::format("at a peak of {}FLOP/s: {:.3f} s per step at 100% MFU, {:.3f} s at 50%; run {:.1f} min at 50%\n",
                       human_count(peak_flops), s, 2 * s, 2 * s * double(steps) / 60.0);
  }
  return out;
}

}  // namespace lmforge::accounting
