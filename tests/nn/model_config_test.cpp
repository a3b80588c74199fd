#include <gtest/gtest.h>

#include "nn/model_config.h"
#include "nn/model_test_util.h"

namespace lmforge::nn {
namespace {

std::string resolve_error(ModelConfig c) {
  try {
    c.resolve();
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, DerivedDefaults) {
  ModelConfig c;
  c.d_model = 256;
  c.n_heads = 4;
  c.resolve();
  EXPECT_EQ(c.n_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 64);
  EXPECT_EQ(c.d_ff, 704);  // ceil(8/3 · 256) = 683 -> 704
  ModelConfig g;
  g.ffn = FfnKind::GELU;
  g.d_model = 768;
  g.n_heads = 12;
  g.resolve();
  EXPECT_EQ(g.d_ff, 3072);
  ModelConfig l;  // llama-336m: 8/3 · 1024 = 2730.7 -> 2752; the preset sets 2816 explicitly
  l.d_model = 1024;
  l.n_heads = 16;
  l.resolve();
  EXPECT_EQ(l.d_ff, 2752);
}

TEST(ModelConfig, InvalidCombinationsNameTheKey) {
  ModelConfig c;
  c.n_heads = 6;
  c.n_kv_heads = 4;
  c.d_model = 48;
  EXPECT_NE(resolve_error(c).find("model.n_kv_heads"), std::string::npos) << resolve_error(c);
  c.n_kv_heads = 5;
  EXPECT_NE(resolve_error(c).find("model.n_heads (6) is not a multiple of model.n_kv_heads (5)"), std::string::npos)
      << resolve_error(c);
  ModelConfig d;
  d.d_model = 100;
  d.n_heads = 3;
  EXPECT_NE(resolve_error(d).find("model.d_model (100) is not divisible by model.n_heads (3)"), std::string::npos);
  d.head_dim = 32;  // explicit head_dim: allowed, q/o project to 3·32 = 96
  EXPECT_EQ(resolve_error(d), "");
  ModelConfig r;
  r.d_model = 30;
  r.n_heads = 2;  // head_dim 15, odd, with RoPE
  EXPECT_NE(resolve_error(r).find("model.head_dim"), std::string::npos);
  r.position = PositionKind::Learned;
  EXPECT_EQ(resolve_error(r), "");
  ModelConfig z;
  z.dropout = 1.0;
  EXPECT_NE(resolve_error(z).find("model.dropout"), std::string::npos);
  ModelConfig v;
  v.vocab_size = 0;
  EXPECT_NE(resolve_error(v).find("model.vocab_size"), std::string::npos);
}

TEST(ModelConfig, EnumSpellings) {
  NormKind n;
  parse_enum("layernorm", "model.norm", n);
  EXPECT_EQ(n, NormKind::LayerNorm);
  EXPECT_EQ(to_string(NormPosition::Post), "post");
  try {
    FfnKind f;
    parse_enum("relu", "model.ffn", f);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.ffn"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("swiglu | gelu"), std::string::npos);
  }
}

TEST(ModelConfig, ParameterCountMatchesTheModel) {
  for (int variant = 0; variant < 6; ++variant) {
    ModelConfig c = test::tiny_config();
    if (variant == 1) c.norm = NormKind::LayerNorm, c.bias = true;
    if (variant == 2) c.position = PositionKind::Learned, c.tied_embeddings = false;
    if (variant == 3) c.ffn = FfnKind::GELU, c.norm_position = NormPosition::Post;
    if (variant == 4) c.qk_norm = true, c.n_kv_heads = 1;
    if (variant == 5) c.bias = true, c.head_dim = 6;
    Transformer m(c);
    c.resolve();
    EXPECT_EQ(m.parameter_count(), c.parameter_count()) << "variant " << variant;
  }
}

}  // namespace
}  // namespace lmforge::nn
