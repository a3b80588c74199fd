// The Transformer fuses every residual add that a norm reads into that norm (nn/block.h), across
// blocks too. Its logits, loss and every parameter gradient must be bit for bit those of the
// unfused model: here that model is assembled by hand from the same modules under the same names,
// each residual add a separate add() and each norm a plain one, as the Transformer was written
// before the fusion.
#include <gtest/gtest.h>

#include "nn/model_test_util.h"

namespace lmforge::nn {
namespace {

class UnfusedTransformer : public ModuleGroup {
 public:
  UnfusedTransformer(const ModelConfig& c, TensorOptions opt) : c_(c) {
    auto* model = add("model", std::make_unique<ModuleGroup>());
    embed_tokens_ = model->add("embed_tokens", std::make_unique<Embedding>(c.vocab_size, c.d_model, opt));
    if (c.position == PositionKind::Learned)
      embed_positions_ = model->add("embed_positions", std::make_unique<Embedding>(c.context_length, c.d_model, opt));
    auto* layers = model->add("layers", std::make_unique<ModuleGroup>());
    for (int64_t i = 0; i < c.n_layers; ++i) {
      auto* l = layers->add(std::to_string(i), std::make_unique<ModuleGroup>());
      attn_.push_back(l->add("self_attn", std::make_unique<Attention>(c, opt)));
      mlp_.push_back(l->add("mlp", std::make_unique<MLP>(c, opt)));
      norm1_.push_back(l->add("input_layernorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt)));
      norm2_.push_back(
          l->add("post_attention_layernorm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt)));
    }
    if (c.norm_position == NormPosition::Pre)
      norm_ = model->add("norm", std::make_unique<Norm>(c.norm, c.d_model, c.bias, c.norm_eps, opt));
    if (!c.tied_embeddings)
      lm_head_ = add("lm_head", std::make_unique<Linear>(c.d_model, c.vocab_size, false, ParamKind::Matrix, opt));
  }

  // ids [B, T] -> logits [B, T, V]; dropout masks drawn from `gen` in the model's order.
  Tensor forward(const Tensor& ids, DType activation_dtype, Generator& gen) const {
    auto drop = [&](const Tensor& v) { return c_.dropout > 0 ? dropout(v, c_.dropout, true, gen) : v; };
    Tensor x = embed_tokens_->forward(ids);
    if (embed_positions_) x = x + embed_positions_->forward(arange(ids.size(1), DType::I64, Device::cpu(), 0.0));
    x = drop(cast(x, activation_dtype));
    for (size_t i = 0; i < attn_.size(); ++i) {
      if (c_.norm_position == NormPosition::Pre) {
        const Tensor h = x + drop(attn_[i]->forward(norm1_[i]->forward(x), 0, nullptr));
        x = h + drop(mlp_[i]->forward(norm2_[i]->forward(h)));
      } else {
        const Tensor h = norm1_[i]->forward(x + drop(attn_[i]->forward(x, 0, nullptr)));
        x = norm2_[i]->forward(h + drop(mlp_[i]->forward(h)));
      }
    }
    if (norm_) x = norm_->forward(x);
    return lm_head_ ? lm_head_->forward(x) : linear(x, embed_tokens_->compute_copy(embed_tokens_->weight()));
  }

 private:
  ModelConfig c_;
  Embedding* embed_tokens_ = nullptr;
  Embedding* embed_positions_ = nullptr;
  std::vector<Attention*> attn_;
  std::vector<MLP*> mlp_;
  std::vector<Norm*> norm1_, norm2_;
  Norm* norm_ = nullptr;
  Linear* lm_head_ = nullptr;
};

void check_matches_unfused(const test::ModelVariant& v) {
  SCOPED_TRACE(v.name);
  ModelConfig c = test::tiny_config();
  c.n_layers = 3;
  v.apply(c);
  auto model = test::make_model(c, DType::F32, 13);
  UnfusedTransformer ref(model->config(), {});
  auto mp = model->named_parameters(), rp = ref.named_parameters();
  ASSERT_EQ(mp.size(), rp.size());
  {
    // Norm gains and biases start at one and zero: make them matter.
    NoGradGuard ng;
    Generator g(3);
    for (auto& p : mp) {
      if (p.kind == ParamKind::Norm) copy_(p.tensor, rand(p.tensor.shape(), g, DType::F32, Device::cpu(), 0.5, 1.5));
      if (p.kind == ParamKind::Bias) copy_(p.tensor, rand(p.tensor.shape(), g, DType::F32, Device::cpu(), -0.5, 0.5));
    }
    for (size_t i = 0; i < mp.size(); ++i) {
      ASSERT_EQ(mp[i].name, rp[i].name);
      copy_(rp[i].tensor, mp[i].tensor);
    }
  }
  if (v.compute_dtype) {
    model->set_compute_dtype(*v.compute_dtype);
    ref.set_compute_dtype(*v.compute_dtype);
  }
  const DType act = model->activation_dtype();
  const Tensor ids = test::random_ids(2, 7, c.vocab_size, 4), targets = test::random_ids(2, 7, c.vocab_size, 5);
  const int64_t n = ids.numel();
  const GeneratorState drop0 = model->dropout_generator().state();

  // Logits, without autograd.
  {
    NoGradGuard ng;
    Generator g(drop0);
    const Tensor got = model->forward(ids), want = ref.forward(ids, act, g);
    EXPECT_TRUE(test::bit_identical(got, want)) << "logits";
    EXPECT_EQ(model->dropout_generator().state().offset, g.state().offset) << "dropout draws";
  }
  // Loss and every parameter gradient.
  model->dropout_generator().set_state(drop0);
  Generator g(drop0);
  model->zero_grad();
  const Tensor loss = model->loss(ids, targets);
  const Tensor ref_logits = ref.forward(ids, act, g);
  const Tensor ref_loss =
      cross_entropy(ref_logits.view({n, c.vocab_size}), targets.reshape({n}), {.z_loss = c.z_loss});
  EXPECT_TRUE(test::bit_identical(loss, ref_loss)) << "loss";
  loss.backward();
  ref_loss.backward();
  for (size_t i = 0; i < mp.size(); ++i)
    EXPECT_TRUE(test::bit_identical(mp[i].tensor.grad(), rp[i].tensor.grad())) << mp[i].name;
}

TEST(ResidualFusion, MatchesTheUnfusedModelBitForBit) {
  std::vector<test::ModelVariant> variants = test::core_model_variants();
  variants.insert(variants.end(), {
      {"gpt2-like with dropout",
       [](ModelConfig& c) {
         c.norm = NormKind::LayerNorm, c.ffn = FfnKind::GELU, c.position = PositionKind::Learned, c.bias = true,
         c.dropout = 0.1;
       }},
      {"post-norm", [](ModelConfig& c) { c.norm_position = NormPosition::Post; }},
      {"post-norm layernorm with dropout",
       [](ModelConfig& c) { c.norm_position = NormPosition::Post, c.norm = NormKind::LayerNorm, c.dropout = 0.2; }},
      {"llama-like, bf16 compute", [](ModelConfig&) {}, DType::BF16},
      {"gpt2-like, bf16 compute",
       [](ModelConfig& c) {
         c.norm = NormKind::LayerNorm, c.ffn = FfnKind::GELU, c.position = PositionKind::Learned, c.bias = true;
       },
       DType::BF16},
  });
  for (const auto& v : variants) check_matches_unfused(v);
}

}  // namespace
}  // namespace lmforge::nn
