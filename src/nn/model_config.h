// The model configuration: the `[model]` section of a run's TOML config. One spelling per
// hyperparameter everywhere (config key = field name = --set key = metrics key).
//
// Each field is declared twice, side by side in this file: the struct member (type and default)
// and its line in visit_fields() (key and help). Everything else that lists the keys — the TOML
// reader and --set (train/config.cpp), the resolved config a run prints, the HF-style config.json
// of a non-HF architecture, the check that a checkpoint matches its config — iterates
// visit_fields(). A new key touches this file, resolve() when it has constraints, and
// parameter_breakdown() when it changes the parameter count.
//
// resolve() fills the derived defaults (n_kv_heads, head_dim, d_ff) and rejects
// invalid combinations before anything is built, naming the offending key ("model.n_heads").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace lmforge::nn {

enum class NormKind { RmsNorm, LayerNorm };
enum class NormPosition { Pre, Post };
enum class FfnKind { SwiGLU, GELU };
enum class PositionKind { Rope, Learned };
enum class InitKind { Xavier, Normal, Scaled };
// The sequence mixer of every layer (nn/layer_factory.h).
enum class AttentionKind {
  MHA,  // q, k, v projections (n_kv_heads: MHA, GQA or MQA); nn/attention.h
  MLA,  // Multi-head Latent Attention (DeepSeek-V2/V3): keys and values from a cached latent; nn/mla.h
};
// How a Mixture-of-Experts layer assigns tokens to experts (nn/moe.h).
enum class RouterKind {
  SoftmaxTopK,   // token choice: softmax over all experts, the top_k kept (Switch, Mixtral, Qwen-MoE)
  SigmoidTopK,   // token choice: sigmoid affinities, the top_k normalised among the chosen (DeepSeek-V3)
  ExpertChoice,  // each expert takes its top-c tokens of the batch (Zhou et al. 2022)
};

struct ModelConfig {
  int64_t vocab_size = 4096;
  int64_t context_length = 256;
  int64_t d_model = 256;
  int64_t n_layers = 4;
  int64_t n_heads = 4;
  int64_t n_kv_heads = 0;   // 0: = n_heads (MHA); 1: MQA; between: GQA
  int64_t head_dim = 0;     // 0: d_model / n_heads
  int64_t d_ff = 0;         // 0: SwiGLU 8/3·d_model rounded up to a multiple of 64; GELU 4·d_model
  NormKind norm = NormKind::RmsNorm;
  NormPosition norm_position = NormPosition::Pre;
  FfnKind ffn = FfnKind::SwiGLU;
  PositionKind position = PositionKind::Rope;
  double rope_theta = 10000.0;
  bool bias = false;        // biases on every linear layer (and on LayerNorm)
  bool qk_norm = false;     // RMSNorm over each query and key head vector before RoPE
  double z_loss = 0.0;      // coefficient of logsumexp(logits)² added to the loss
  bool tied_embeddings = true;
  double dropout = 0.0;     // on the embeddings and on each residual branch, training only
  InitKind init = InitKind::Scaled;   // scaled: residual output projections × 1/sqrt(2·n_layers)
  double init_std = 0.02;
  double norm_eps = 1e-5;

  // Multi-head Latent Attention (nn/mla.h), used with attention = mla; every size must then be
  // set (> 0) except q_lora_rank, and all must stay 0 with attention = mha.
  AttentionKind attention = AttentionKind::MHA;
  int64_t q_lora_rank = 0;       // 0: q = q_proj(x); else q_b_proj(norm(q_a_proj(x))) through this rank
  int64_t kv_lora_rank = 0;      // width of the cached latent that keys and values are made from
  int64_t qk_nope_head_dim = 0;  // per head, the part of q and k without position (from the latent)
  int64_t qk_rope_head_dim = 0;  // per head, the RoPE part of q; one RoPE key shared by all heads
  int64_t v_head_dim = 0;        // per head, the value width

  // Mixture of Experts (nn/moe.h): n_experts > 0 replaces the FFN of the layers moe_layers
  // selects by n_experts routed experts (each an FFN of kind `ffn` and width d_ff_expert) plus
  // n_shared_experts always-active ones: y = Σ_{i∈top-k} g_i·E_i(x) + Σ_s S_s(x).
  int64_t n_experts = 0;         // 0: dense
  std::string moe_layers = "all";  // "all" | "every:K" (layers K-1, 2K-1, ...) | "after:N" (the first N dense)
  int64_t d_ff_expert = 0;       // each expert's hidden width; must be set (> 0) with n_experts
  int64_t n_shared_experts = 0;
  int64_t top_k = 2;             // experts per token (token choice); expert choice: the average
  RouterKind router = RouterKind::SoftmaxTopK;
  bool normalize_gates = true;   // softmax_topk: renormalise the chosen gates to sum to 1
  double capacity_factor = 0.0;  // 0: dropless; else each expert takes ≤ cf·tokens·top_k/n_experts
  double balance_loss = 0.0;     // α of the Switch loss α·N·Σ f_i·P_i
  int64_t n_expert_groups = 1;   // devices an expert-parallel run would use (device balance loss)
  double device_balance_loss = 0.0;  // β of the device-level balance loss over expert groups
  double comm_balance_loss = 0.0;    // γ of the communication balance loss over expert groups
  double router_z_loss = 0.0;    // coefficient of logsumexp(router logits)²
  double bias_update_rate = 0.0; // auxiliary-loss-free balancing: per-expert bias step γ (0: off)

  // Multi-token prediction (nn/mtp.h, DeepSeek-V3): mtp_depth > 0 adds that many sequential
  // modules, module k predicting the token k + 1 ahead; their mean cross-entropy, weighted by
  // mtp_weight, joins the training loss. Inference and evaluation read the main model only;
  // self-speculative decoding (infer/speculative.h) drafts with the modules.
  int64_t mtp_depth = 0;     // 0: off
  double mtp_weight = 0.3;   // λ of λ/D · Σ_k CE_k

  // Calls f(key, field, help) for every field above, in declaration order (config files list
  // them in this order). Works on a const config too.
  template <class F>
  void visit_fields(F&& f) { visit(*this, f); }
  template <class F>
  void visit_fields(F&& f) const { visit(*this, f); }

  // Fills the 0 defaults above and checks every combination; throws Error naming the key.
  void resolve();
  int64_t kv_heads() const { return n_kv_heads; }  // after resolve()
  // True when layer `layer` (0-based) has a Mixture-of-Experts FFN.
  bool is_moe_layer(int64_t layer) const;
  int64_t moe_layer_count() const;
  bool is_mla() const { return attention == AttentionKind::MLA; }
  // Parameters of the model this config builds (after resolve()), embeddings included.
  int64_t parameter_count() const;
  // True when the architecture is exactly HF Llama's (RMSNorm, pre-norm, SwiGLU, RoPE, no
  // QK-norm, dense), so the exported weights load as LlamaForCausalLM.
  bool is_llama() const;

 private:
  template <class C, class F>
  static void visit(C& c, F& f) {
    f("vocab_size", c.vocab_size, "vocabulary size; every token id must be below it");
    f("context_length", c.context_length, "longest sequence the model handles");
    f("d_model", c.d_model, "width of the residual stream");
    f("n_layers", c.n_layers, "number of Transformer blocks");
    f("n_heads", c.n_heads, "query heads");
    f("n_kv_heads", c.n_kv_heads, "key/value heads: n_heads = MHA, 1 = MQA, a divisor = GQA (0: n_heads)");
    f("head_dim", c.head_dim, "dimension of each head (0: d_model / n_heads)");
    f("d_ff", c.d_ff, "hidden width of the MLP (0: 8/3·d_model rounded up to 64 for swiglu, 4·d_model for gelu)");
    f("norm", c.norm, "rmsnorm | layernorm");
    f("norm_position", c.norm_position, "pre | post");
    f("ffn", c.ffn, "swiglu | gelu");
    f("position", c.position, "rope | learned");
    f("rope_theta", c.rope_theta, "RoPE base");
    f("bias", c.bias, "biases on linear layers and LayerNorm");
    f("qk_norm", c.qk_norm, "RMSNorm on query and key heads");
    f("z_loss", c.z_loss, "coefficient of the logsumexp² penalty");
    f("tied_embeddings", c.tied_embeddings, "share the token embedding with the output projection");
    f("dropout", c.dropout, "dropout probability on embeddings and residual branches");
    f("init", c.init, "xavier | normal | scaled");
    f("init_std", c.init_std, "standard deviation of normal initialisation");
    f("norm_eps", c.norm_eps, "epsilon inside the norms");
    f("attention", c.attention, "mha (with n_kv_heads: MHA, GQA, MQA) | mla (Multi-head Latent Attention)");
    f("q_lora_rank", c.q_lora_rank, "mla: rank of the query compression (0: no compression)");
    f("kv_lora_rank", c.kv_lora_rank, "mla: width of the cached key/value latent");
    f("qk_nope_head_dim", c.qk_nope_head_dim, "mla: per-head query/key dims without RoPE");
    f("qk_rope_head_dim", c.qk_rope_head_dim, "mla: per-head query/key dims with RoPE (even; the key part is shared)");
    f("v_head_dim", c.v_head_dim, "mla: per-head value dims");
    f("n_experts", c.n_experts, "routed experts of a Mixture-of-Experts FFN (0: dense FFN)");
    f("moe_layers", c.moe_layers, "which layers are MoE: \"all\" | \"every:K\" | \"after:N\" (the first N dense)");
    f("d_ff_expert", c.d_ff_expert, "hidden width of each routed and shared expert (required with n_experts); small = fine-grained experts");
    f("n_shared_experts", c.n_shared_experts, "always-active experts of width d_ff_expert");
    f("top_k", c.top_k, "experts per token");
    f("router", c.router, "softmax_topk | sigmoid_topk | expert_choice");
    f("normalize_gates", c.normalize_gates, "softmax_topk: renormalise the chosen gates to sum to 1");
    f("capacity_factor", c.capacity_factor, "expert capacity as a multiple of the even share (0: dropless)");
    f("balance_loss", c.balance_loss, "Switch load-balancing loss coefficient alpha (0: off)");
    f("n_expert_groups", c.n_expert_groups, "expert groups (devices) for the device and communication balance losses");
    f("device_balance_loss", c.device_balance_loss, "device-level balance loss coefficient (0: off)");
    f("comm_balance_loss", c.comm_balance_loss, "communication balance loss coefficient (0: off)");
    f("router_z_loss", c.router_z_loss, "coefficient of logsumexp(router logits)² (0: off)");
    f("bias_update_rate", c.bias_update_rate, "auxiliary-loss-free balancing: per-expert bias step (0: off)");
    f("mtp_depth", c.mtp_depth, "multi-token prediction modules (0: off); module k predicts the token k+1 ahead");
    f("mtp_weight", c.mtp_weight, "weight of the multi-token prediction loss (λ of λ/D · Σ_k CE_k)");
  }
};

// One parameter group of the model (nn::parameter_breakdown): per-layer groups are summed over
// the layers that have them.
struct ParameterGroup {
  std::string name;      // "token embedding", "attention", "mlp", "moe routed experts", ...
  int64_t count = 0;     // parameters
  int64_t active = 0;    // parameters a token's forward reads (routed experts: top_k of n_experts)
  bool matmul = false;   // read by matmuls (the N of 6·N); embeddings and norms are not
};
// The one parameter formula: what `config` (resolved) builds, by group. The Transformer's
// parameter_count() equals the sum (tested).
std::vector<ParameterGroup> parameter_breakdown(const ModelConfig& config);

// Spellings used in configs ("rmsnorm", "pre", "swiglu", "rope", "scaled", "softmax_topk", ...).
std::string_view to_string(NormKind v);
std::string_view to_string(NormPosition v);
std::string_view to_string(FfnKind v);
std::string_view to_string(PositionKind v);
std::string_view to_string(InitKind v);
std::string_view to_string(RouterKind v);
std::string_view to_string(AttentionKind v);
// Each throws Error naming `key` and the accepted spellings.
void parse_enum(std::string_view s, std::string_view key, NormKind& out);
void parse_enum(std::string_view s, std::string_view key, NormPosition& out);
void parse_enum(std::string_view s, std::string_view key, FfnKind& out);
void parse_enum(std::string_view s, std::string_view key, PositionKind& out);
void parse_enum(std::string_view s, std::string_view key, InitKind& out);
void parse_enum(std::string_view s, std::string_view key, RouterKind& out);
void parse_enum(std::string_view s, std::string_view key, AttentionKind& out);

}  // namespace lmforge::nn
