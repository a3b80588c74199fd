// Multi-token prediction (DeepSeek-V3, §2.2 of its report): D sequential modules after the main
// model, module k (1..D) predicting the token k + 1 positions ahead.
//
// At position t, module k reads the previous depth's hidden state h^{k-1}_t (k = 1: the main
// model's residual stream before its final norm) and the embedding of token t + k:
//
//   x     = eh_proj([enorm(Emb(token t+k)); hnorm(h^{k-1}_t)])      [2C] -> C
//   h^k_t = block(x)                 one Transformer block, causal over the positions t
//   logits of token t+k+1 = head(shared_head.norm(h^k_t))
//
// Emb and head are the main model's token embedding and output projection (shared, no copies).
// The concatenation puts the embedding first, as DeepSeek-V3's released weights expect.
// The block is built by nn/layer_factory.h for layer index n_layers + k - 1, so it gets the
// configured sequence mixer, and a Mixture-of-Experts FFN exactly where the config's
// is_moe_layer() selects that index (DeepSeek-V3's MTP layer 61 is MoE under "after:3"); its
// auxiliary losses and statistics are reported under that layer index like any block's.
// The norms are of the model's kind (RMSNorm in DeepSeek-V3).
//
// An MtpModule is a TransformerBlock with the module's extra parts, so its parameters carry HF
// DeepSeek-V3's names for MTP layers: model.layers.{n_layers + k - 1}.{self_attn, mlp,
// input_layernorm, post_attention_layernorm, enorm, hnorm, eh_proj, shared_head.norm}.
//
// Training (nn/transformer.h) runs module k over the first T - k positions of a window of T:
// those whose target, token t + k + 1, lies inside the window. Decoding (infer/speculative.h)
// runs it with its own KV cache.
#pragma once

#include "nn/block.h"

namespace lmforge::nn {

class MtpModule : public TransformerBlock {
 public:
  // depth: k in [1, config.mtp_depth]. dropout_gen and stats as TransformerBlock's.
  MtpModule(const ModelConfig& config, int64_t depth, TensorOptions opt, Generator* dropout_gen, StepStats* stats);

  struct Output {
    Tensor hidden;      // h^k [B, S, C]: the next depth's input
    Tensor head_input;  // shared_head.norm(h^k) [B, S, C]: the output head's input
    Tensor aux;         // `aux` plus the block's auxiliary losses (undefined while there are none)
  };
  // previous: h^{k-1} [B, S, C]; embeddings: the token embeddings of tokens t + k [B, S, C],
  // both in the activation dtype. position_offset and cache as SequenceMixer::forward (the
  // positions are those of h^{k-1}).
  Output forward(const Tensor& previous, const Tensor& embeddings, int64_t position_offset, LayerKVCache* cache,
                 const Tensor& aux = Tensor()) const;
  using TransformerBlock::forward;

  int64_t depth() const { return depth_; }

 private:
  int64_t depth_;
  Norm* enorm_;
  Norm* hnorm_;
  Linear* eh_proj_;
  Norm* shared_head_norm_;
};

}  // namespace lmforge::nn
