#include "nn/model_config.h"

#include <array>
#include <cmath>
#include <utility>

#include "core/error.h"

namespace lmforge::nn {

namespace {

template <class E, size_t N>
using Names = std::array<std::pair<E, std::string_view>, N>;

constexpr Names<NormKind, 2> kNorm{{{NormKind::RmsNorm, "rmsnorm"}, {NormKind::LayerNorm, "layernorm"}}};
constexpr Names<NormPosition, 2> kNormPos{{{NormPosition::Pre, "pre"}, {NormPosition::Post, "post"}}};
constexpr Names<FfnKind, 2> kFfn{{{FfnKind::SwiGLU, "swiglu"}, {FfnKind::GELU, "gelu"}}};
constexpr Names<PositionKind, 2> kPos{{{PositionKind::Rope, "rope"}, {PositionKind::Learned, "learned"}}};
constexpr Names<InitKind, 3> kInit{{{InitKind::Xavier, "xavier"}, {InitKind::Normal, "normal"},
                                    {InitKind::Scaled, "scaled"}}};

template <class E, size_t N>
std::string_view name_of(const Names<E, N>& names, E v) {
  for (const auto& [e, s] : names)
    if (e == v) return s;
  return "?";
}

template <class E, size_t N>
void parse_from(const Names<E, N>& names, std::string_view s, std::string_view key, E& out) {
  std::string accepted;
  for (const auto& [e, name] : names) {
    if (name == s) {
      out = e;
      return;
    }
    accepted += (accepted.empty() ? "" : " | ") + std::string(name);
  }
  throw Error(fmt::format("{}: unknown value \"{}\" (expected {})", key, s, accepted));
}

}  // namespace

std::string_view to_string(NormKind v) { return name_of(kNorm, v); }
std::string_view to_string(NormPosition v) { return name_of(kNormPos, v); }
std::string_view to_string(FfnKind v) { return name_of(kFfn, v); }
std::string_view to_string(PositionKind v) { return name_of(kPos, v); }
std::string_view to_string(InitKind v) { return name_of(kInit, v); }
void parse_enum(std::string_view s, std::string_view key, NormKind& out) { parse_from(kNorm, s, key, out); }
void parse_enum(std::string_view s, std::string_view key, NormPosition& out) { parse_from(kNormPos, s, key, out); }
void parse_enum(std::string_view s, std::string_view key, FfnKind& out) { parse_from(kFfn, s, key, out); }
void parse_enum(std::string_view s, std::string_view key, PositionKind& out) { parse_from(kPos, s, key, out); }
void parse_enum(std::string_view s, std::string_view key, InitKind& out) { parse_from(kInit, s, key, out); }

void ModelConfig::resolve() {
  LF_CHECK(vocab_size > 0, "model.vocab_size must be > 0, got {}", vocab_size);
  LF_CHECK(vocab_size <= (int64_t(1) << 32), "model.vocab_size {} is larger than 2^32 (token ids are 32-bit)",
           vocab_size);
  LF_CHECK(context_length > 0, "model.context_length must be > 0, got {}", context_length);
  LF_CHECK(d_model > 0, "model.d_model must be > 0, got {}", d_model);
  LF_CHECK(n_layers > 0, "model.n_layers must be > 0, got {}", n_layers);
  LF_CHECK(n_heads > 0, "model.n_heads must be > 0, got {}", n_heads);
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
  if (position == PositionKind::Rope)
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
  if (position == PositionKind::Rope)
    LF_CHECK(rope_theta > 0 && std::isfinite(rope_theta), "model.rope_theta must be a positive number, got {}",
             rope_theta);
  LF_CHECK(z_loss >= 0 && std::isfinite(z_loss), "model.z_loss must be >= 0, got {}", z_loss);
  LF_CHECK(dropout >= 0 && dropout < 1, "model.dropout must be in [0, 1), got {}", dropout);
  LF_CHECK(init_std > 0 && std::isfinite(init_std), "model.init_std must be > 0, got {}", init_std);
  LF_CHECK(norm_eps > 0 && norm_eps < 1, "model.norm_eps must be in (0, 1), got {}", norm_eps);
}

int64_t ModelConfig::parameter_count() const {
  const int64_t c = d_model, hd = n_heads * head_dim, kvd = n_kv_heads * head_dim, f = d_ff;
  const int64_t b = bias ? 1 : 0;
  const int64_t norm_params = norm == NormKind::LayerNorm && bias ? 2 * c : c;
  int64_t layer = c * hd + 2 * c * kvd + hd * c + b * (hd + 2 * kvd + c);
  if (qk_norm) layer += 2 * head_dim;
  layer += 2 * norm_params;
  layer += ffn == FfnKind::SwiGLU ? 3 * c * f + b * (2 * f + c) : 2 * c * f + b * (f + c);
  int64_t n = n_layers * layer;
  if (norm_position == NormPosition::Pre) n += norm_params;  // final norm
  if (!tied_embeddings) n += vocab_size * c;                // lm_head
  n += vocab_size * c;                                      // embed_tokens
  if (position == PositionKind::Learned) n += context_length * c;
  return n;
}

bool ModelConfig::is_llama() const {
  return norm == NormKind::RmsNorm && norm_position == NormPosition::Pre && ffn == FfnKind::SwiGLU &&
         position == PositionKind::Rope && !qk_norm;
}

}  // namespace lmforge::nn
