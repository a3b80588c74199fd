// The model configuration: the `[model]` section of a run's TOML config. One spelling per
// hyperparameter everywhere (config key = field name = --set key = metrics key).
//
// resolve() fills the derived defaults (n_kv_heads, head_dim, d_ff) and rejects invalid
// combinations before anything is built, naming the offending key ("model.n_heads").
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

namespace lmforge::nn {

enum class NormKind { RmsNorm, LayerNorm };
enum class NormPosition { Pre, Post };
enum class FfnKind { SwiGLU, GELU };
enum class PositionKind { Rope, Learned };
enum class InitKind { Xavier, Normal, Scaled };

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

  // Fills the 0 defaults above and checks every combination; throws Error naming the key.
  void resolve();
  int64_t kv_heads() const { return n_kv_heads; }  // after resolve()
  // Parameters of the model this config builds (after resolve()); embeddings included.
  // (accounting/ breaks them down and counts FLOPs and memory.)
  int64_t parameter_count() const;
  // True when the architecture is exactly HF Llama's (RMSNorm, pre-norm, SwiGLU, RoPE, no
  // QK-norm), so the exported weights load as LlamaForCausalLM.
  bool is_llama() const;
};

// Spellings used in configs ("rmsnorm", "pre", "swiglu", "rope", "scaled", ...).
std::string_view to_string(NormKind v);
std::string_view to_string(NormPosition v);
std::string_view to_string(FfnKind v);
std::string_view to_string(PositionKind v);
std::string_view to_string(InitKind v);
// Each throws Error naming `key` and the accepted spellings.
void parse_enum(std::string_view s, std::string_view key, NormKind& out);
void parse_enum(std::string_view s, std::string_view key, NormPosition& out);
void parse_enum(std::string_view s, std::string_view key, FfnKind& out);
void parse_enum(std::string_view s, std::string_view key, PositionKind& out);
void parse_enum(std::string_view s, std::string_view key, InitKind& out);

}  // namespace lmforge::nn
