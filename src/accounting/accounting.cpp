#include "accounting/accounting.h"

#include <chrono>

#include "backend/backend.h"
#include "ops/ops.h"

namespace lmforge::accounting {

namespace {
int64_t q_dim(const nn::ModelConfig& c) { return c.n_heads * c.head_dim; }
int64_t kv_dim(const nn::ModelConfig& c) { return c.n_kv_heads * c.head_dim; }
int64_t ffn_mats(const nn::ModelConfig& c) { return c.ffn == nn::FfnKind::SwiGLU ? 3 : 2; }
int64_t norm_params(const nn::ModelConfig& c, int64_t dim) {
  return dim * (c.norm == nn::NormKind::LayerNorm && c.bias ? 2 : 1);
}
nn::ModelConfig resolved(nn::ModelConfig c) {
  c.resolve();
  return c;
}
}  // namespace

ParameterCount count_parameters(const nn::ModelConfig& config) {
  const nn::ModelConfig c = resolved(config);
  const int64_t d = c.d_model, L = c.n_layers;
  const int64_t attn_w = d * q_dim(c) + 2 * d * kv_dim(c) + q_dim(c) * d;
  const int64_t attn_b = c.bias ? q_dim(c) + 2 * kv_dim(c) + d : 0;
  const int64_t qk_norm = c.qk_norm ? 2 * c.head_dim : 0;
  const int64_t mlp_w = ffn_mats(c) * d * c.d_ff;
  const int64_t mlp_b = c.bias ? (ffn_mats(c) - 1) * c.d_ff + d : 0;
  const int64_t block_norms = 2 * norm_params(c, d);
  const int64_t final_norm = c.norm_position == nn::NormPosition::Pre ? norm_params(c, d) : 0;
  ParameterCount p;
  p.components.push_back({"token embedding", c.vocab_size * d});
  if (c.position == nn::PositionKind::Learned) p.components.push_back({"position embedding", c.context_length * d});
  p.components.push_back({"attention", L * (attn_w + attn_b + qk_norm)});
  p.components.push_back({"mlp", L * (mlp_w + mlp_b)});
  p.components.push_back({"norms", L * block_norms + final_norm});
  if (!c.tied_embeddings) p.components.push_back({"lm_head", c.vocab_size * d});
  for (const auto& comp : p.components) p.total += comp.count;
  p.matmul = L * (attn_w + mlp_w) + c.vocab_size * d;
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
  f.forward_per_token = {{"attention projections", int64_t(L * qkvo)},
                         {"attention scores and values", int64_t(L * scores)},
                         {"mlp", int64_t(L * mlp)},
                         {"lm_head", int64_t(head)}};
  for (const auto& comp : f.forward_per_token) f.forward_per_token_total += double(comp.count);
  f.backward_per_token_total = 2 * f.forward_per_token_total;
  f.training_per_token = f.forward_per_token_total + f.backward_per_token_total;
  const ParameterCount p = count_parameters(c);
  f.six_n_plus_attention = 6.0 * double(p.matmul) + 12.0 * L * q_dim(c) * T;
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
    const int64_t block = BT * (per_token * ab + stats + qk_norm);
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

double measure_matmul_peak(Device device, DType dtype) {
  NoGradGuard no_grad;
  Generator gen(0);
  const int64_t n = device.is_cpu() ? 1024 : 8192;
  Tensor a = rand({n, n}, gen, dtype, device), b = rand({n, n}, gen, dtype, device);
  Tensor c = matmul(a, b);  // warm-up
  backend_for(device).synchronize();
  double best = 0;
  for (int rep = 0; rep < 3; ++rep) {
    const int iters = device.is_cpu() ? 2 : 10;
    auto t0 = std::chrono::steady_clock::now();
    for (int i = 0; i < iters; ++i) c = matmul(a, b);
    backend_for(device).synchronize();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    best = std::max(best, 2.0 * double(n) * n * n * iters / s);
  }
  return best;
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
