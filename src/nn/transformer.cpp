#include "nn/transformer.h"

#include "autograd/recompute.h"
#include "backend/backend.h"
#include "nn/init.h"
#include "ops/ops.h"

namespace lmforge::nn {

namespace {
ModelConfig resolved(ModelConfig c) {
  c.resolve();
  return c;
}
}  // namespace

Transformer::Transformer(ModelConfig config, TensorOptions opt)
    : config_(resolved(std::move(config))), opt_(opt), dropout_gen_(0) {
  LF_CHECK(is_floating(opt.dtype), "Transformer: parameters must be floating, got {}", dtype_name(opt.dtype));
  const ModelConfig& c = config_;
  auto* model = register_module("model", std::make_unique<ModuleGroup>());
  embed_tokens_ = model->add("embed_tokens", std::make_unique<Embedding>(c.vocab_size, c.d_model, opt));
  if (c.position == PositionKind::Learned)
    embed_positions_ = model->add("embed_positions", std::make_unique<Embedding>(c.context_length, c.d_model, opt));
  auto* layers = model->add("layers", std::make_unique<ModuleGroup>());
  for (int64_t i = 0; i < c.n_layers; ++i)
    layers_.push_back(
        layers->add(std::to_string(i), std::make_unique<TransformerBlock>(c, i, opt, &dropout_gen_, &stats_)));
  // The MTP modules continue the layer numbering, as HF DeepSeek-V3 names them.
  for (int64_t k = 1; k <= c.mtp_depth; ++k)
    mtp_.push_back(layers->add(std::to_string(c.n_layers + k - 1),
                               std::make_unique<MtpModule>(c, k, opt, &dropout_gen_, &stats_)));
  if (c.norm_position == NormPosition::Pre)
    norm_ = model->add("norm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
  if (!c.tied_embeddings)
    lm_head_ = register_module("lm_head", std::make_unique<Linear>(c.d_model, c.vocab_size, false, ParamKind::Matrix, opt));
}

void Transformer::init_parameters(Generator& gen) { nn::init_parameters(*this, config_, gen); }

const Tensor& Transformer::output_weight() const { return lm_head_ ? lm_head_->weight() : embed_tokens_->weight(); }

Tensor Transformer::hidden(const Tensor& ids, KVCache* cache) const { return hidden_and_aux(ids, cache).hidden; }

Transformer::HiddenAndAux Transformer::hidden_and_aux(const Tensor& ids, KVCache* cache) const {
  LF_CHECK(ids.dim() == 2, "Transformer: ids must be [B, T], got shape {}", shape_str(ids.shape()));
  const int64_t t = ids.size(1);
  const int64_t offset = cache ? cache->length : 0;
  LF_CHECK(offset + t <= config_.context_length,
           "Transformer: {} positions requested but the model's context_length is {}", offset + t,
           config_.context_length);
  if (cache) {
    LF_CHECK(offset + t <= cache->capacity, "Transformer: the KV cache holds {} positions, {} needed",
             cache->capacity, offset + t);
    LF_CHECK(static_cast<int64_t>(cache->layers.size()) == config_.n_layers,
             "Transformer: the KV cache has {} layers, the model {}", cache->layers.size(), config_.n_layers);
  }
  const bool device_positions = cache && cache->positions.defined();
  if (device_positions) {
    LF_CHECK(!embed_positions_, "Transformer: learned position embeddings cannot read positions from the device "
             "(KVCache::positions); decode with host positions instead");
    LF_CHECK(cache->positions.dtype() == DType::I32 && cache->positions.dim() == 1 &&
                 cache->positions.size(0) == ids.size(0),
             "Transformer: KVCache::positions must be i32 [{}], got {}", ids.size(0), cache->positions.str());
    // key_lengths = positions + T, kept in i32 (the scalar ops of ops/ compute in floats).
    Tensor key_lengths = Tensor::empty(cache->positions.shape(), DType::I32, cache->positions.device());
    backend_for(key_lengths).unary(UnaryOp::Affine, cache->positions.contiguous(), key_lengths, 1.0, double(t));
    for (LayerKVCache& l : cache->layers) {
      l.positions = cache->positions;
      l.key_lengths = key_lengths;
    }
  }
  Tensor x = embed_tokens_->forward(ids);  // [B, T, C]
  if (embed_positions_) {
    Tensor pos = arange(t, DType::I64, opt_.device, double(offset));
    x = x + embed_positions_->forward(pos);  // [T, C] broadcast over B
  }
  x = cast(x, activation_dtype());  // the summed embeddings, rounded once (a no-op without mixed precision)
  if (config_.dropout > 0 && training()) x = dropout(x, config_.dropout, true, dropout_gen_);
  ResidualStream stream{.residual = x, .delta = Tensor()};  // no pending add before the first block
  const bool recompute = recompute_blocks_ && training() && !cache && GradMode::is_enabled();
  for (size_t i = 0; i < layers_.size(); ++i) {
    if (!recompute) {
      stream = layers_[i]->forward(stream, offset, cache ? &cache->layers[i] : nullptr);
      continue;
    }
    const TransformerBlock* block = layers_[i];
    const TensorList out = checkpoint(
        "block (recomputed)",
        [block, offset](const TensorList& in) {
          const ResidualStream s = block->forward({.residual = in[0], .delta = in[1], .aux = in[2]}, offset, nullptr);
          return TensorList{s.residual, s.delta, s.aux};
        },
        {stream.residual, stream.delta, stream.aux}, &dropout_gen_);
    stream = {.residual = out[0], .delta = out[1], .aux = out[2]};
  }
  // Pre-norm: the final norm adds the last block's pending delta (a model without one adds it
  // alone). Post-norm blocks leave none.
  Tensor before_norm;
  if (norm_) {
    const AddNorm a = norm_->forward_add(stream.delta, stream.residual);
    x = a.y, before_norm = a.sum;
  } else {
    x = before_norm = stream.delta.defined() ? stream.residual + stream.delta : stream.residual;
  }
  if (cache && !device_positions) cache->length = offset + t;
  return {.hidden = x, .aux = stream.aux, .stream = before_norm};
}

Tensor Transformer::logits_of(const Tensor& h) const {
  return lm_head_ ? lm_head_->forward(h) : linear(h, embed_tokens_->compute_copy(embed_tokens_->weight()));
}

Tensor Transformer::forward(const Tensor& ids, KVCache* cache) const { return logits_of(hidden(ids, cache)); }

Transformer::LogitsAndStream Transformer::forward_with_stream(const Tensor& ids, KVCache* cache) const {
  const HiddenAndAux h = hidden_and_aux(ids, cache);
  return {.logits = logits_of(h.hidden), .stream = h.stream};
}

Tensor Transformer::token_embeddings(const Tensor& ids) const {
  return cast(embed_tokens_->forward(ids.contiguous()), activation_dtype());
}

Tensor Transformer::mtp_loss(const Tensor& stream, const Tensor& ids, const Tensor& targets, Tensor& aux) const {
  const int64_t batch = ids.size(0), window = ids.size(1);
  Tensor previous = stream, sum;
  // Under activation recomputation the modules' blocks are recomputed in backward like the
  // model's own (their inputs kept, their insides dropped).
  const bool recompute = recompute_blocks_ && training() && GradMode::is_enabled();
  for (const MtpModule* module : mtp_) {
    // Module k at positions i in [0, T - k): its input token i + k is ids[i + k], its target,
    // token i + k + 1, is targets[i + k] (targets are the ids shifted by one).
    const int64_t k = module->depth(), s = window - k;
    if (s <= 0) break;
    MtpModule::Output o;
    if (!recompute) {
      o = module->forward(previous.narrow(1, 0, s), token_embeddings(ids.narrow(1, k, s)), 0, nullptr, aux);
    } else {
      const TensorList out = checkpoint(
          "mtp module (recomputed)",
          [module](const TensorList& in) {
            const MtpModule::Output r = module->forward(in[0], in[1], 0, nullptr, in[2]);
            return TensorList{r.hidden, r.head_input, r.aux};
          },
          {previous.narrow(1, 0, s), token_embeddings(ids.narrow(1, k, s)), aux}, &dropout_gen_);
      o = {.hidden = out[0], .head_input = out[1], .aux = out[2]};
    }
    aux = o.aux;
    const Tensor ce = cross_entropy(logits_of(o.head_input).view({batch * s, config_.vocab_size}),
                                    targets.narrow(1, k, s).reshape({batch * s}));
    sum = sum.defined() ? sum + ce : ce;
    previous = o.hidden;
  }
  return sum.defined() ? sum * (config_.mtp_weight / double(config_.mtp_depth)) : Tensor();
}

Tensor Transformer::loss(const Tensor& ids, const Tensor& targets) const { return loss_terms(ids, targets).total; }

LossTerms Transformer::loss_terms(const Tensor& ids, const Tensor& targets) const {
  LF_CHECK(targets.shape() == ids.shape(), "Transformer::loss: targets have shape {} but ids have shape {}",
           shape_str(targets.shape()), shape_str(ids.shape()));
  const HiddenAndAux h = hidden_and_aux(ids, nullptr);
  const int64_t n = ids.numel();
  Tensor z_part;
  Tensor lm = cross_entropy(logits_of(h.hidden).view({n, config_.vocab_size}), targets.reshape({n}),
                            {.z_loss = config_.z_loss, .z_loss_part = config_.z_loss > 0 ? &z_part : nullptr});
  LossTerms out;
  {
    NoGradGuard no_grad;
    const Tensor lm_value = lm.detach();
    out.terms.emplace_back("ce", z_part.defined() ? lm_value - z_part : lm_value);
    if (z_part.defined()) out.terms.emplace_back("z_loss", z_part);
  }
  Tensor aux = h.aux;
  const Tensor mtp = mtp_.empty() ? Tensor() : mtp_loss(h.stream, ids, targets, aux);
  out.total = aux.defined() ? lm + aux : lm;
  if (aux.defined()) out.terms.emplace_back("aux", aux.detach());
  if (mtp.defined()) {
    out.total = out.total + mtp;
    out.terms.emplace_back("mtp", mtp.detach());
  }
  if (training()) stats_.count_micro_batch();
  return out;
}

void Transformer::after_optimizer_step() {
  for (TransformerBlock* block : layers_) block->ffn().after_optimizer_step(stats_, block->layer());
  for (MtpModule* module : mtp_) module->ffn().after_optimizer_step(stats_, module->layer());
}

Tensor Transformer::token_nll(const Tensor& ids, const Tensor& targets) const {
  LF_CHECK(targets.shape() == ids.shape(), "Transformer::token_nll: targets have shape {} but ids have shape {}",
           shape_str(targets.shape()), shape_str(ids.shape()));
  Tensor logits = forward(ids);
  const int64_t n = ids.numel();
  Tensor nll = cross_entropy(logits.view({n, config_.vocab_size}), targets.reshape({n}),
                             {.reduction = CrossEntropyOptions::Reduction::None});
  return nll.view(ids.shape());
}

KVCache Transformer::make_cache(int64_t batch, int64_t capacity) const {
  LF_CHECK(batch > 0, "make_cache: batch must be > 0, got {}", batch);
  LF_CHECK(capacity > 0 && capacity <= config_.context_length,
           "make_cache: capacity must be in [1, context_length = {}], got {}", config_.context_length, capacity);
  KVCache cache{.batch = batch, .capacity = capacity, .length = 0};
  for (const auto* layer : layers_) cache.layers.push_back(layer->mixer().make_cache(batch, capacity));
  return cache;
}

}  // namespace lmforge::nn
