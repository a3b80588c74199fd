#include "accounting/accounting.h"

#include "ops/ops.h"

namespace lmforge::accounting {

namespace {
int64_t q_dim(const nn::ModelConfig& c) { return c.n_heads * c.head_dim; }
int64_t kv_dim(const nn::ModelConfig& c) { return c.n_kv_heads * c.head_dim; }
int64_t ffn_mats(const nn::ModelConfig& c) { return c.ffn == nn::FfnKind::SwiGLU ? 3 : 2; }
// Widths of the attention's per-token tensors: the query/key head dims summed over the query
// heads and the value head dims likewise (MHA: both H·hd; MLA: H·(nope + rope) and H·v_head_dim).
int64_t qk_width(const nn::ModelConfig& c) {
  return c.is_mla() ? c.n_heads * (c.qk_nope_head_dim + c.qk_rope_head_dim) : q_dim(c);
}
int64_t v_width(const nn::ModelConfig& c) { return c.is_mla() ? c.n_heads * c.v_head_dim : q_dim(c); }
// Weights of one layer's attention matmuls (MLA: nn::parameter_breakdown's formula).
int64_t attention_matmul_weights(const nn::ModelConfig& c) {
  for (const auto& g : nn::parameter_breakdown(c))
    if (g.name == "attention") return g.count / c.n_layers;
  return 0;
}
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
  // Each attention weight is read by one matmul per token (MLA's too: the training forward
  // expands the latent with kv_b_proj once per token).
  const double qkvo = 2.0 * double(attention_matmul_weights(c));
  const double scores = 2.0 * T * double(qk_width(c) + v_width(c));  // Q·Kᵀ and P·V, per query token
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
  if (c.mtp_depth > 0) {
    // Multi-token prediction (nn/mtp.h): module k runs one block (MoE where is_moe_layer(n_layers
    // + k - 1)), eh_proj [2C -> C] and the shared output head over T - k of the window's T
    // positions, so per token of the window it counts (T - k) / T.
    const double expert = 2.0 * ffn_mats(c) * d * double(c.d_ff_expert);
    const double routed = c.router == nn::RouterKind::ExpertChoice ? c.capacity_factor * double(c.top_k) : double(c.top_k);
    const double moe = 2.0 * d * double(c.n_experts) + (routed + double(c.n_shared_experts)) * expert;
    double proj = 0, blocks = 0, heads = 0;
    for (int64_t k = 1; k <= c.mtp_depth; ++k) {
      const double share = std::max(0.0, T - double(k)) / T;
      proj += share * 2.0 * 2 * d * d;
      blocks += share * (qkvo + scores + (c.is_moe_layer(c.n_layers + k - 1) ? moe : mlp));
      heads += share * head;
    }
    f.forward_per_token.push_back({"mtp projections", int64_t(proj)});
    f.forward_per_token.push_back({"mtp blocks", int64_t(blocks)});
    f.forward_per_token.push_back({"mtp output head", int64_t(heads)});
  }
  for (const auto& comp : f.forward_per_token) f.forward_per_token_total += double(comp.count);
  f.backward_per_token_total = 2 * f.forward_per_token_total;
  f.training_per_token = f.forward_per_token_total + f.backward_per_token_total;
  const ParameterCount p = count_parameters(c);
  // 12·L·H·hd·T, with MLA's different q/k and value head dims: 6·L·T·H·(qk + v).
  f.six_n_plus_attention = 6.0 * double(p.active_matmul) + 6.0 * L * double(qk_width(c) + v_width(c)) * T;
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
    // MLA keeps q, the expanded k, v and the output (2·H·qk + 2·H·v) and its latents: the
    // kv_a_proj_with_mqa output and the normalised latent (2·r + rope), the query latent and its
    // norm (2·q_lora_rank).
    const int64_t attention_elements = c.is_mla() ? 2 * qk_width(c) + 2 * v_width(c) + 2 * c.kv_lora_rank +
                                               c.qk_rope_head_dim + 2 * c.q_lora_rank
                                         : 2 * q_dim(c) + 2 * kv_dim(c);
    const int64_t per_token = 2 * d + attention_elements + 2 * d + (c.ffn == nn::FfnKind::SwiGLU ? 3 : 2) * F;
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
    // Each multi-token prediction module keeps a block's activations, its input side (the two
    // norms' outputs, their concatenation [2C] and the projection: 5·C per token) and its own
    // logits (at most T positions each).
    if (c.mtp_depth > 0)
      m.by_kind.push_back({fmt::format("multi-token prediction modules ({})", dtype_name(opt.compute_dtype)),
                           c.mtp_depth * (block + BT * 5 * d * ab + logits)});
  } else {
    m.by_kind.push_back({fmt::format("logits ({})", dtype_name(opt.compute_dtype)), BT * c.vocab_size * ab});
  }
  for (const auto& comp : m.by_kind) m.total += comp.count;
  return m;
}

KVCacheSize kv_cache_size(const nn::ModelConfig& config, DType dtype) {
  const nn::ModelConfig c = resolved(config);
  const int64_t elements = c.is_mla() ? c.kv_lora_rank + c.qk_rope_head_dim : 2 * kv_dim(c);
  KVCacheSize s;
  if (c.is_mla()) {
    s.layout = fmt::format("MLA: latent {} + RoPE key {}", c.kv_lora_rank, c.qk_rope_head_dim);
  } else {
    const char* kind = c.n_kv_heads == c.n_heads ? "MHA" : c.n_kv_heads == 1 ? "MQA" : "GQA";
    s.layout = fmt::format("{}: keys and values, 2 × {} heads × {}", kind, c.n_kv_heads, c.head_dim);
  }
  s.bytes_per_token_per_layer = elements * int64_t(dtype_size(dtype));
  s.bytes_per_token = s.bytes_per_token_per_layer * c.n_layers;
  s.bytes_per_token_speculative = s.bytes_per_token_per_layer * (c.n_layers + c.mtp_depth);
  return s;
}

KVCacheFit kv_cache_fit(const nn::ModelConfig& config, DType dtype, int64_t memory_bytes) {
  const nn::ModelConfig c = resolved(config);
  LF_CHECK(memory_bytes > 0, "kv_cache_fit: memory must be > 0 bytes, got {}", memory_bytes);
  const KVCacheSize s = kv_cache_size(c, dtype);
  KVCacheFit f;
  f.weight_bytes = count_parameters(c).total * int64_t(dtype_size(dtype));
  f.cache_bytes = std::max<int64_t>(0, memory_bytes - f.weight_bytes);
  f.tokens = f.cache_bytes / s.bytes_per_token;
  f.full_context_sequences = f.tokens / c.context_length;
  return f;
}

std::string format_kv_cache_report(const nn::ModelConfig& config, DType dtype, int64_t memory_bytes) {
  const nn::ModelConfig c = resolved(config);
  const KVCacheSize s = kv_cache_size(c, dtype);
  std::string out = fmt::format("KV cache ({}, {}): {} per token per layer, {} per token ({} layers), {} per "
                                "sequence of {} tokens\n",
                                s.layout, dtype_name(dtype), human_bytes(double(s.bytes_per_token_per_layer)),
                                human_bytes(double(s.bytes_per_token)), c.n_layers,
                                human_bytes(double(s.bytes_per_token) * double(c.context_length)), c.context_length);
  if (c.mtp_depth > 0)
    out += fmt::format("  with --speculative, the {} MTP module(s) cache too: {} per token ({} layers)\n", c.mtp_depth,
                       human_bytes(double(s.bytes_per_token_speculative)), c.n_layers + c.mtp_depth);
  if (memory_bytes > 0) {
    const KVCacheFit f = kv_cache_fit(c, dtype, memory_bytes);
    out += fmt::format("  in {}: weights {} ({}), cache {}: {} tokens = {} sequences of the full context {}\n",
                       human_bytes(double(memory_bytes)), human_bytes(double(f.weight_bytes)), dtype_name(dtype),
                       human_bytes(double(f.cache_bytes)), f.tokens, f.full_context_sequences, c.context_length);
  }
  return out;
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
    // The blocks' forward runs twice (everything but the output projection and the MTP modules).
    double blocks = f.forward_per_token_total;
    for (const auto& comp : f.forward_per_token)
      if (comp.name == "lm_head" || comp.name.starts_with("mtp ")) blocks -= double(comp.count);  // not recomputed
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
