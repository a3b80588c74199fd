#include "nn/model_config.h"

#include <array>
#include <cmath>
#include <utility>

#include "core/checked_math.h"
#include "core/enum_names.h"
#include "core/error.h"
#include "nn/model_limits.h"

namespace lmforge::nn {

namespace {

constexpr EnumNames<NormKind, 2> kNorm{{{NormKind::RmsNorm, "rmsnorm"}, {NormKind::LayerNorm, "layernorm"}}};
constexpr EnumNames<NormPosition, 2> kNormPos{{{NormPosition::Pre, "pre"}, {NormPosition::Post, "post"}}};
constexpr EnumNames<FfnKind, 2> kFfn{{{FfnKind::SwiGLU, "swiglu"}, {FfnKind::GELU, "gelu"}}};
constexpr EnumNames<PositionKind, 2> kPos{{{PositionKind::Rope, "rope"}, {PositionKind::Learned, "learned"}}};
constexpr EnumNames<InitKind, 3> kInit{{{InitKind::Xavier, "xavier"}, {InitKind::Normal, "normal"},
                                    {InitKind::Scaled, "scaled"}}};
constexpr EnumNames<RouterKind, 3> kRouter{{{RouterKind::SoftmaxTopK, "softmax_topk"},
                                        {RouterKind::SigmoidTopK, "sigmoid_topk"},
                                        {RouterKind::ExpertChoice, "expert_choice"}}};
constexpr EnumNames<AttentionKind, 2> kAttention{{{AttentionKind::MHA, "mha"}, {AttentionKind::MLA, "mla"}}};

}  // namespace

std::string_view to_string(NormKind v) { return enum_name(kNorm, v); }
std::string_view to_string(NormPosition v) { return enum_name(kNormPos, v); }
std::string_view to_string(FfnKind v) { return enum_name(kFfn, v); }
std::string_view to_string(PositionKind v) { return enum_name(kPos, v); }
std::string_view to_string(InitKind v) { return enum_name(kInit, v); }
std::string_view to_string(RouterKind v) { return enum_name(kRouter, v); }
std::string_view to_string(AttentionKind v) { return enum_name(kAttention, v); }
void parse_enum(std::string_view s, std::string_view key, NormKind& out) { out = parse_enum_name(kNorm, s, key); }
void parse_enum(std::string_view s, std::string_view key, NormPosition& out) { out = parse_enum_name(kNormPos, s, key); }
void parse_enum(std::string_view s, std::string_view key, FfnKind& out) { out = parse_enum_name(kFfn, s, key); }
void parse_enum(std::string_view s, std::string_view key, PositionKind& out) { out = parse_enum_name(kPos, s, key); }
void parse_enum(std::string_view s, std::string_view key, InitKind& out) { out = parse_enum_name(kInit, s, key); }
void parse_enum(std::string_view s, std::string_view key, RouterKind& out) { out = parse_enum_name(kRouter, s, key); }
void parse_enum(std::string_view s, std::string_view key, AttentionKind& out) {
  out = parse_enum_name(kAttention, s, key);
}

namespace {

// moe_layers parsed: every layer i with (i + 1) % every == 0 and i >= first, or an Error naming
// the key.
struct MoeLayerRule {
  int64_t every = 1;
  int64_t first = 0;
};

MoeLayerRule parse_moe_layers(const std::string& s) {
  const auto number = [&](std::string_view digits) {
    int64_t v = 0;
    LF_CHECK(!digits.empty() && digits.size() <= 9, "model.moe_layers: \"{}\" is not \"all\", \"every:K\" or "
             "\"after:N\"", s);
    for (char ch : digits) {
      LF_CHECK(ch >= '0' && ch <= '9', "model.moe_layers: \"{}\" is not \"all\", \"every:K\" or \"after:N\"", s);
      v = v * 10 + (ch - '0');
    }
    return v;
  };
  const std::string_view v = s;
  if (v == "all") return {};
  if (v.starts_with("every:")) {
    const int64_t k = number(v.substr(6));
    LF_CHECK(k >= 1, "model.moe_layers: \"{}\": K must be >= 1", s);
    return {.every = k, .first = 0};
  }
  if (v.starts_with("after:")) return {.every = 1, .first = number(v.substr(6))};
  throw Error(fmt::format("model.moe_layers: \"{}\" is not \"all\", \"every:K\" or \"after:N\"", s));
}

// The Multi-head Latent Attention keys (nn/mla.h): with attention = mla every size but
// q_lora_rank is required; with mha none may be set, so a forgotten `attention = "mla"` is not
// silently a different model.
void resolve_mla(ModelConfig& c) {
  const std::pair<const char*, int64_t> sizes[] = {{"model.q_lora_rank", c.q_lora_rank},
                                                   {"model.kv_lora_rank", c.kv_lora_rank},
                                                   {"model.qk_nope_head_dim", c.qk_nope_head_dim},
                                                   {"model.qk_rope_head_dim", c.qk_rope_head_dim},
                                                   {"model.v_head_dim", c.v_head_dim}};
  if (!c.is_mla()) {
    for (const auto& [key, v] : sizes)
      LF_CHECK(v == 0, "{} = {} applies to model.attention = \"mla\" only (model.attention is \"mha\")", key, v);
    return;
  }
  for (const auto& [key, v] : sizes) {
    LF_CHECK(v >= 0, "{} must be >= 0, got {}", key, v);
    check_size_limit(key, v, limits::kMaxHeadDim);
  }
  // DeepSeek-V3's sizes, for the messages: the latent 4 heads wide, the RoPE part half a head.
  LF_CHECK(c.kv_lora_rank > 0, "model.kv_lora_rank must be > 0 with model.attention = \"mla\" (the width of the "
           "cached latent; DeepSeek-V3 uses 512 with 128-dim heads)");
  LF_CHECK(c.qk_nope_head_dim > 0, "model.qk_nope_head_dim must be > 0 with model.attention = \"mla\" (the "
           "per-head query/key dims that come from the latent; DeepSeek-V3 uses 128)");
  LF_CHECK(c.qk_rope_head_dim > 0 && c.qk_rope_head_dim % 2 == 0, "model.qk_rope_head_dim must be even and > 0 "
           "with model.attention = \"mla\" (RoPE rotates pairs of dimensions; DeepSeek-V3 uses 64), got {}",
           c.qk_rope_head_dim);
  LF_CHECK(c.v_head_dim > 0, "model.v_head_dim must be > 0 with model.attention = \"mla\" (DeepSeek-V3 uses 128)");
  LF_CHECK(c.q_lora_rank <= c.d_model, "model.q_lora_rank ({}) must not exceed model.d_model ({}): it compresses "
           "the query (0: no compression)", c.q_lora_rank, c.d_model);
  LF_CHECK(c.kv_lora_rank <= c.d_model, "model.kv_lora_rank ({}) must not exceed model.d_model ({}): the latent "
           "compresses the keys and values", c.kv_lora_rank, c.d_model);
  LF_CHECK(c.n_kv_heads == 0 || c.n_kv_heads == c.n_heads, "model.n_kv_heads ({}) does not apply to model.attention "
           "= \"mla\": every head reads the one shared latent; leave it 0", c.n_kv_heads);
  LF_CHECK(!c.qk_norm, "model.qk_norm is not supported with model.attention = \"mla\" (the latent has its own "
           "RMSNorm, kv_a_layernorm)");
  LF_CHECK(c.position == PositionKind::Rope, "model.position = \"{}\" is not supported with model.attention = "
           "\"mla\": its positions are the decoupled RoPE part (qk_rope_head_dim)", to_string(c.position));
  checked_size_product("model.n_heads · (qk_nope_head_dim + qk_rope_head_dim)", c.n_heads,
                       c.qk_nope_head_dim + c.qk_rope_head_dim, limits::kMaxAttentionWidth);
  checked_size_product("model.n_heads · v_head_dim", c.n_heads, c.v_head_dim, limits::kMaxAttentionWidth);
  // head_dim is not a size of an MLA layer: it names the query/key head width here.
  const int64_t qk = c.qk_nope_head_dim + c.qk_rope_head_dim;
  LF_CHECK(c.head_dim == 0 || c.head_dim == qk, "model.head_dim ({}) does not apply to model.attention = \"mla\": "
           "its query/key heads are qk_nope_head_dim + qk_rope_head_dim = {} wide; leave it 0", c.head_dim, qk);
  c.head_dim = qk;
}

}  // namespace

bool ModelConfig::is_moe_layer(int64_t layer) const {
  if (n_experts <= 0) return false;
  const MoeLayerRule r = parse_moe_layers(moe_layers);
  return layer >= r.first && (layer + 1) % r.every == 0;
}

int64_t ModelConfig::moe_layer_count() const {
  int64_t n = 0;
  for (int64_t i = 0; i < n_layers; ++i) n += is_moe_layer(i) ? 1 : 0;
  return n;
}

void ModelConfig::resolve() {
  LF_CHECK(vocab_size > 0, "model.vocab_size must be > 0, got {}", vocab_size);
  LF_CHECK(context_length > 0, "model.context_length must be > 0, got {}", context_length);
  LF_CHECK(d_model > 0, "model.d_model must be > 0, got {}", d_model);
  LF_CHECK(n_layers > 0, "model.n_layers must be > 0, got {}", n_layers);
  LF_CHECK(n_heads > 0, "model.n_heads must be > 0, got {}", n_heads);
  // Every size is bounded before it is multiplied with another (nn/model_limits.h).
  check_size_limit("model.vocab_size", vocab_size, limits::kMaxVocabSize);
  check_size_limit("model.context_length", context_length, limits::kMaxContextLength);
  check_size_limit("model.d_model", d_model, limits::kMaxDModel);
  check_size_limit("model.n_layers", n_layers, limits::kMaxLayers);
  check_size_limit("model.n_heads", n_heads, limits::kMaxHeads);
  check_size_limit("model.head_dim", head_dim, limits::kMaxHeadDim);
  check_size_limit("model.d_ff", d_ff, limits::kMaxDFF);
  resolve_mla(*this);
  LF_CHECK(n_kv_heads >= 0, "model.n_kv_heads must be >= 0 (0 means n_heads), got {}", n_kv_heads);
  if (n_kv_heads == 0) n_kv_heads = n_heads;
  LF_CHECK(n_kv_heads <= n_heads, "model.n_kv_heads ({}) must not exceed model.n_heads ({})", n_kv_heads, n_heads);
  LF_CHECK(n_heads % n_kv_heads == 0,
           "model.n_heads ({}) is not a multiple of model.n_kv_heads ({}): each key/value head must serve the "
           "same number of query heads", n_heads, n_kv_heads);
  LF_CHECK(head_dim >= 0, "model.head_dim must be >= 0 (0 means d_model / n_heads), got {}", head_dim);
  if (head_dim == 0) {
    LF_CHECK(d_model % n_heads == 0,
             "model.d_model ({}) is not divisible by model.n_heads ({}); choose d_model = n_heads · head_dim or "
             "set model.head_dim explicitly", d_model, n_heads);
    head_dim = d_model / n_heads;
  }
  if (position == PositionKind::Rope && !is_mla())
    LF_CHECK(head_dim % 2 == 0, "model.head_dim ({}) must be even with model.position = \"rope\" (RoPE rotates "
             "pairs of dimensions)", head_dim);
  LF_CHECK(d_ff >= 0, "model.d_ff must be >= 0 (0 picks the default), got {}", d_ff);
  if (d_ff == 0) {
    if (ffn == FfnKind::SwiGLU) {
      const int64_t raw = (8 * d_model + 2) / 3;  // ceil(8/3 · d_model)
      d_ff = (raw + 63) / 64 * 64;
    } else {
      d_ff = 4 * d_model;
    }
  }
  check_size_limit("model.head_dim", head_dim, limits::kMaxHeadDim);
  checked_size_product("model.n_heads · head_dim", n_heads, head_dim, limits::kMaxAttentionWidth);
  if (position == PositionKind::Rope)
    LF_CHECK(rope_theta > 0 && std::isfinite(rope_theta), "model.rope_theta must be a positive number, got {}",
             rope_theta);
  LF_CHECK(z_loss >= 0 && std::isfinite(z_loss), "model.z_loss must be >= 0, got {}", z_loss);
  LF_CHECK(dropout >= 0 && dropout < 1, "model.dropout must be in [0, 1), got {}", dropout);
  LF_CHECK(init_std > 0 && std::isfinite(init_std), "model.init_std must be > 0, got {}", init_std);
  LF_CHECK(norm_eps > 0 && norm_eps < 1, "model.norm_eps must be in (0, 1), got {}", norm_eps);

  LF_CHECK(mtp_depth >= 0, "model.mtp_depth must be >= 0 (0: no multi-token prediction), got {}", mtp_depth);
  LF_CHECK(mtp_depth < context_length, "model.mtp_depth ({}) must be below model.context_length ({}): module k "
           "predicts the token k + 1 ahead inside one window", mtp_depth, context_length);
  check_size_limit("model.mtp_depth", mtp_depth, limits::kMaxLayers);
  LF_CHECK(std::isfinite(mtp_weight) && mtp_weight >= 0, "model.mtp_weight must be >= 0, got {}", mtp_weight);
  LF_CHECK(n_experts >= 0, "model.n_experts must be >= 0 (0: a dense FFN), got {}", n_experts);
  if (n_experts == 0) return;
  LF_CHECK(n_experts <= 4096, "model.n_experts ({}) is larger than the supported 4096", n_experts);
  (void)parse_moe_layers(moe_layers);
  LF_CHECK(moe_layer_count() > 0, "model.moe_layers = \"{}\" selects none of the {} layers while model.n_experts "
           "= {}", moe_layers, n_layers, n_experts);
  LF_CHECK(!bias, "model.bias = true is not supported with model.n_experts > 0 (experts have no biases)");
  LF_CHECK(d_ff_expert > 0, "model.d_ff_expert must be > 0 with model.n_experts = {} (got {}): each expert's "
           "hidden width, e.g. model.d_ff = {} for experts as wide as the dense MLP, or d_ff / top_k = {} for "
           "fine-grained experts at the dense model's active compute", n_experts, d_ff_expert, d_ff,
           std::max<int64_t>(1, d_ff / std::max<int64_t>(1, top_k)));
  LF_CHECK(n_shared_experts >= 0, "model.n_shared_experts must be >= 0, got {}", n_shared_experts);
  LF_CHECK(top_k >= 1, "model.top_k must be >= 1, got {}", top_k);
  LF_CHECK(top_k <= n_experts, "model.top_k ({}) must not exceed model.n_experts ({})", top_k, n_experts);
  LF_CHECK(std::isfinite(capacity_factor) && capacity_factor >= 0,
           "model.capacity_factor must be >= 0 (0: dropless), got {}", capacity_factor);
  if (router == RouterKind::ExpertChoice)
    LF_CHECK(capacity_factor > 0, "model.router = \"expert_choice\" needs model.capacity_factor > 0 (each expert "
             "takes capacity_factor · tokens · top_k / n_experts tokens; 1.0 is the usual choice)");
  for (const auto& [key, v] : {std::pair{"model.balance_loss", balance_loss},
                               {"model.device_balance_loss", device_balance_loss},
                               {"model.comm_balance_loss", comm_balance_loss},
                               {"model.router_z_loss", router_z_loss},
                               {"model.bias_update_rate", bias_update_rate}})
    LF_CHECK(std::isfinite(v) && v >= 0, "{} must be >= 0, got {}", key, v);
  LF_CHECK(n_expert_groups >= 1, "model.n_expert_groups must be >= 1, got {}", n_expert_groups);
  LF_CHECK(n_experts % n_expert_groups == 0, "model.n_experts ({}) must be a multiple of model.n_expert_groups ({})",
           n_experts, n_expert_groups);
  if (bias_update_rate > 0)
    LF_CHECK(router != RouterKind::ExpertChoice, "model.bias_update_rate (auxiliary-loss-free balancing) applies to "
             "token-choice routers; expert_choice is balanced by construction");
}

std::vector<ParameterGroup> parameter_breakdown(const ModelConfig& c) {
  const int64_t d = c.d_model, hd = c.n_heads * c.head_dim, kvd = c.n_kv_heads * c.head_dim;
  const int64_t b = c.bias ? 1 : 0;
  const int64_t norm_params = c.norm == NormKind::LayerNorm && c.bias ? 2 * d : d;
  const int64_t ffn_mats = c.ffn == FfnKind::SwiGLU ? 3 : 2;
  const int64_t moe_layers = c.moe_layer_count(), dense_layers = c.n_layers - moe_layers;
  std::vector<ParameterGroup> g;
  const auto add = [&](std::string name, int64_t count, int64_t active, bool matmul) {
    if (count > 0) g.push_back({std::move(name), count, active, matmul});
  };
  add("token embedding", c.vocab_size * d, c.vocab_size * d, false);
  if (c.position == PositionKind::Learned) add("position embedding", c.context_length * d, c.context_length * d, false);
  int64_t attn_w = d * hd + 2 * d * kvd + hd * d;
  int64_t attn_b = b * (hd + 2 * kvd + d) + (c.qk_norm ? 2 * c.head_dim : 0);
  if (c.is_mla()) {
    // q_proj [H·qk, C] or q_a_proj [rq, C] + q_b_proj [H·qk, rq]; kv_a_proj_with_mqa
    // [rkv + rope, C]; kv_b_proj [H·(nope + v), rkv]; o_proj [C, H·v]. Biases on the projections
    // from x and on o_proj; RMSNorm gains on the two latents.
    const int64_t h = c.n_heads, qk = c.qk_nope_head_dim + c.qk_rope_head_dim, rq = c.q_lora_rank;
    const int64_t q_w = rq > 0 ? d * rq + rq * h * qk : d * h * qk;
    attn_w = q_w + d * (c.kv_lora_rank + c.qk_rope_head_dim) + c.kv_lora_rank * h * (c.qk_nope_head_dim + c.v_head_dim) +
             h * c.v_head_dim * d;
    attn_b = b * ((rq > 0 ? rq : h * qk) + c.kv_lora_rank + c.qk_rope_head_dim + d) + rq + c.kv_lora_rank;
  }
  add("attention", c.n_layers * attn_w, c.n_layers * attn_w, true);
  add("attention biases and norms", c.n_layers * attn_b, c.n_layers * attn_b, false);
  const int64_t mlp_w = ffn_mats * d * c.d_ff, mlp_b = b * ((ffn_mats - 1) * c.d_ff + d);
  add("mlp", dense_layers * mlp_w, dense_layers * mlp_w, true);
  add("mlp biases", dense_layers * mlp_b, dense_layers * mlp_b, false);
  if (moe_layers > 0) {
    const int64_t expert = ffn_mats * d * c.d_ff_expert;
    add("moe router", moe_layers * c.n_experts * d, moe_layers * c.n_experts * d, true);
    add("moe routed experts", moe_layers * c.n_experts * expert, moe_layers * c.top_k * expert, true);
    add("moe shared experts", moe_layers * c.n_shared_experts * expert, moe_layers * c.n_shared_experts * expert, true);
  }
  const int64_t norms = c.n_layers * 2 * norm_params + (c.norm_position == NormPosition::Pre ? norm_params : 0);
  add("norms", norms, norms, false);
  if (!c.tied_embeddings) add("lm_head", c.vocab_size * d, c.vocab_size * d, true);
  if (c.mtp_depth > 0) {
    // Multi-token prediction (nn/mtp.h): each module is one more block, at layer index
    // n_layers + k - 1 (MoE where is_moe_layer says so), plus enorm, hnorm, eh_proj [C, 2C] and
    // shared_head.norm; the embedding and the output head are the main model's.
    const int64_t depth = c.mtp_depth;
    int64_t mtp_moe = 0;
    for (int64_t k = 0; k < depth; ++k) mtp_moe += c.is_moe_layer(c.n_layers + k) ? 1 : 0;
    const int64_t mtp_dense = depth - mtp_moe;
    add("mtp projections", depth * 2 * d * d, depth * 2 * d * d, true);
    add("mtp attention", depth * attn_w, depth * attn_w, true);
    add("mtp mlp", mtp_dense * mlp_w, mtp_dense * mlp_w, true);
    if (mtp_moe > 0) {
      const int64_t expert = ffn_mats * d * c.d_ff_expert;
      add("mtp moe router", mtp_moe * c.n_experts * d, mtp_moe * c.n_experts * d, true);
      add("mtp moe routed experts", mtp_moe * c.n_experts * expert, mtp_moe * c.top_k * expert, true);
      add("mtp moe shared experts", mtp_moe * c.n_shared_experts * expert, mtp_moe * c.n_shared_experts * expert,
          true);
    }
    const int64_t small = depth * (attn_b + 5 * norm_params + b * d) + mtp_dense * mlp_b;
    add("mtp norms and biases", small, small, false);
  }
  return g;
}

int64_t ModelConfig::parameter_count() const {
  int64_t n = 0;
  for (const auto& group : parameter_breakdown(*this)) n += group.count;
  return n;
}

bool ModelConfig::is_llama() const {
  return norm == NormKind::RmsNorm && norm_position == NormPosition::Pre && ffn == FfnKind::SwiGLU &&
         position == PositionKind::Rope && !qk_norm && n_experts == 0 && attention == AttentionKind::MHA;
}

}  // namespace lmforge::nn
