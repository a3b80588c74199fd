// The decoder-only Transformer assembled from a ModelConfig.
//
//   ids [B, T] -> embed_tokens (+ embed_positions) -> dropout -> layers -> norm (pre-norm only)
//   -> lm_head (or the token embedding, tied) -> logits [B, T, V]
// The residual adds run inside the norms that read them, across blocks too (nn/block.h).
//
// Parameter names are HF Llama's: model.embed_tokens.weight, model.layers.{i}.self_attn.
// {q,k,v,o}_proj.weight, model.layers.{i}.mlp.{gate,up,down}_proj.weight,
// model.layers.{i}.{input,post_attention}_layernorm.weight, model.norm.weight, lm_head.weight
// (absent when tied); extensions keep the same scheme (…_proj.bias, self_attn.{q,k}_norm.weight
// as Qwen3, model.embed_positions.weight for learned positions).
//
// Every tensor is created on the model's device through ops, so the same code runs on any
// backend. Build in f64 (TensorOptions{.dtype = DType::F64}) for finite-difference checks.
//
// Mixed precision: set_compute_dtype(bf16 or f16) keeps the parameters in their dtype (f32
// masters) and runs the forward pass in the compute dtype: weights are read as cached compute
// copies (nn/compute_copy.h), the summed embeddings are cast once, and everything after them
// (norms, RoPE, attention, MLP, logits) is computed in the compute dtype, GEMMs accumulating in
// f32 inside the kernels. The loss is computed in f32 from the low-precision logits.
//
// Multi-token prediction (model.mtp_depth = D > 0; nn/mtp.h): D modules after the main model,
// module k predicting the token k + 1 ahead from the previous depth's hidden state and the
// embedding of token t + k. They add the term "mtp" = mtp_weight / D · Σ_k CE_k to the training
// loss, module k's cross-entropy taken over the first T - k positions of each window (the rest
// have no target inside it). forward(), hidden(), token_nll() and so evaluation and scoring
// read the main model alone; infer/speculative.h drafts tokens with the modules. D = 0 builds
// and computes exactly the model without them.
//
// Activation recomputation: with set_recompute_blocks(true), a training forward keeps only each
// block's input stream for backward and runs the block again during backward
// (autograd/recompute.h): activation memory drops from every block's intermediates to one
// block's, for about one more forward pass of compute. Results are unchanged (the dropout masks
// are drawn again from the same generator state). The MTP modules' blocks are not recomputed.
#pragma once

#include <memory>
#include <vector>

#include "core/random_kernels.h"
#include "nn/aux_report.h"
#include "nn/block.h"
#include "nn/kv_cache.h"
#include "nn/mtp.h"

namespace lmforge::nn {

// The training objective as a sum of named terms.
struct LossTerms {
  Tensor total;  // the scalar to differentiate: the sum of every term
  // Each term's value, detached f32 scalars, in a fixed order: "ce" (cross-entropy), "z_loss"
  // (when model.z_loss > 0), "aux" (the layers' auxiliary losses, when any layer reports one;
  // by name and layer in the model's step_stats()), "mtp" (when model.mtp_depth > 0: the
  // multi-token prediction loss, weight included).
  std::vector<std::pair<std::string, Tensor>> terms;
};

class Transformer : public Module {
 public:
  // Resolves and validates `config`; parameters are uninitialised until init_parameters().
  explicit Transformer(ModelConfig config, TensorOptions opt = {});

  const ModelConfig& config() const { return config_; }
  const TensorOptions& options() const { return opt_; }
  Device device() const { return opt_.device; }
  // The dtype activations are computed in: set_compute_dtype()'s, else the parameters' dtype.
  DType activation_dtype() const { return compute_dtype().value_or(opt_.dtype); }

  // Recompute each block's forward in backward instead of keeping its activations (training
  // with grad mode on; inference and KV-cache decoding are unaffected).
  void set_recompute_blocks(bool on) { recompute_blocks_ = on; }
  bool recompute_blocks() const { return recompute_blocks_; }

  // Fills every parameter from `gen` (nn/init.h), in named_parameters() order.
  void init_parameters(Generator& gen);

  // ids [B, T] (i64/i32) -> final hidden states [B, T, C]. With a cache, ids continue the
  // cached sequence at position cache->length, which then advances by T.
  Tensor hidden(const Tensor& ids, KVCache* cache = nullptr) const;
  // ids [B, T] -> logits [B, T, V]
  Tensor forward(const Tensor& ids, KVCache* cache = nullptr) const;
  // forward() that also returns the residual stream before the final norm: the first MTP
  // module's input (the final hidden state itself in a post-norm model).
  struct LogitsAndStream {
    Tensor logits;  // [B, T, V]
    Tensor stream;  // [B, T, C]
  };
  LogitsAndStream forward_with_stream(const Tensor& ids, KVCache* cache = nullptr) const;
  // The output head: final-normed hidden states [..., C] -> logits [..., V] (lm_head, or the
  // token embedding when tied). The MTP modules share it.
  Tensor logits_of(const Tensor& hidden) const;
  // The MTP modules' token input: ids [B, S] -> embeddings [B, S, C] in the activation dtype
  // (the main model's token embedding, without positions).
  Tensor token_embeddings(const Tensor& ids) const;
  // The multi-token prediction modules, depth 1 first (config().mtp_depth of them).
  const std::vector<MtpModule*>& mtp_modules() const { return mtp_; }
  // The training objective: mean over tokens of cross-entropy(logits, targets), plus
  // z_loss · logsumexp² when the config has a z-loss, plus the layers' auxiliary losses
  // (nn/aux_report.h). ids, targets [B, T].
  Tensor loss(const Tensor& ids, const Tensor& targets) const;
  // The same objective with its named terms.
  LossTerms loss_terms(const Tensor& ids, const Tensor& targets) const;
  // Negative log-likelihood of each target, no z-loss: [B, T] (ignore_index -100 gives 0).
  Tensor token_nll(const Tensor& ids, const Tensor& targets) const;

  // A cache for `batch` sequences of up to `capacity` positions (at most context_length).
  KVCache make_cache(int64_t batch, int64_t capacity) const;

  // Draws the dropout masks; its state is part of a checkpoint.
  Generator& dropout_generator() { return dropout_gen_; }
  const Generator& dropout_generator() const { return dropout_gen_; }

  // The output projection weight [V, C] (the token embedding when tied).
  const Tensor& output_weight() const;

  // Statistics of the training forwards since the last clear (nn/aux_report.h).
  StepStats& step_stats() const { return stats_; }
  // After each optimizer step: layers with load-following state (MoE expert biases) update it
  // from step_stats(). The trainer calls it before clearing the statistics.
  void after_optimizer_step();

  const std::vector<TransformerBlock*>& layers() const { return layers_; }

 private:
  struct HiddenAndAux {
    Tensor hidden;  // [B, T, C]
    Tensor aux;     // the auxiliary losses' sum, or undefined
    Tensor stream;  // [B, T, C]: the residual stream before the final norm
  };
  HiddenAndAux hidden_and_aux(const Tensor& ids, KVCache* cache) const;
  // mtp_weight / D · Σ_k CE_k from the main model's stream [B, T, C]; the modules' auxiliary
  // losses are added to `aux`. Undefined when the window is too short for any module.
  Tensor mtp_loss(const Tensor& stream, const Tensor& ids, const Tensor& targets, Tensor& aux) const;

  ModelConfig config_;
  TensorOptions opt_;
  mutable Generator dropout_gen_;  // forward() is const but draws masks in training
  mutable StepStats stats_;        // and records statistics
  bool recompute_blocks_ = false;
  Embedding* embed_tokens_;
  Embedding* embed_positions_ = nullptr;
  std::vector<TransformerBlock*> layers_;
  Norm* norm_ = nullptr;
  Linear* lm_head_ = nullptr;
  std::vector<MtpModule*> mtp_;
};

}  // namespace lmforge::nn
