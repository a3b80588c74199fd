// Multi-token prediction (nn/mtp.h): gradients against central finite differences in f64, the
// "mtp" loss term against the modules' pieces run by hand with the shifts written out, depth 0
// bit-identical to a model without the keys, the main model's outputs independent of the
// modules, HF DeepSeek-V3 names, the parameter formula, and config errors.
#include <gtest/gtest.h>

#include <cmath>

#include "core/error.h"
#include "nn/model_test_util.h"

namespace lmforge::nn {
namespace {

ModelConfig mtp_config(int64_t depth) {
  ModelConfig c = test::tiny_config();
  c.mtp_depth = depth;
  c.mtp_weight = 0.4;
  return c;
}

std::vector<test::ModelVariant> mtp_variants() {
  return {
      {"llama-like, depth 2", [](ModelConfig&) {}},
      {"untied, layernorm with biases, gelu, learned positions, depth 2",
       [](ModelConfig& c) {
         c.tied_embeddings = false, c.norm = NormKind::LayerNorm, c.bias = true, c.ffn = FfnKind::GELU;
         c.position = PositionKind::Learned;
       }},
      {"post-norm, z-loss, depth 2", [](ModelConfig& c) { c.norm_position = NormPosition::Post, c.z_loss = 0.1; }},
      {"dropout, depth 2", [](ModelConfig& c) { c.dropout = 0.2; }},
      // Under moe_layers = "all" the MTP blocks are MoE too; their balance loss joins "aux".
      {"moe in every block (MTP blocks too), depth 2",
       [](ModelConfig& c) { c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.balance_loss = 0.1; }},
  };
}

TEST(Mtp, GradientsMatchFiniteDifferences) {
  for (const auto& v : mtp_variants()) {
    ModelConfig c = mtp_config(2);
    v.apply(c);
    // The model's backward against central differences.
    const double worst = test::model_gradient_error(c, v.name, 6);
    std::printf("%-70s worst error %.3g of the tolerance\n", v.name.c_str(), worst);
  }
}

// Host-side pieces for the reference.
std::vector<double> host(const Tensor& t) { return to_vector<double>(contiguous(t)); }

// RMSNorm of each row of x [n, C] with gain w [C].
std::vector<double> rms_rows(const std::vector<double>& x, const std::vector<double>& w, int64_t c, double eps) {
  std::vector<double> y(x.size());
  for (size_t r = 0; r < x.size() / size_t(c); ++r) {
    double ss = 0;
    for (int64_t j = 0; j < c; ++j) ss += x[r * size_t(c) + size_t(j)] * x[r * size_t(c) + size_t(j)];
    const double inv = 1.0 / std::sqrt(ss / double(c) + eps);
    for (int64_t j = 0; j < c; ++j) y[r * size_t(c) + size_t(j)] = x[r * size_t(c) + size_t(j)] * inv * w[size_t(j)];
  }
  return y;
}

// x [n, in] · wᵀ, w [out, in] -> [n, out]
std::vector<double> matmul_t(const std::vector<double>& x, const std::vector<double>& w, int64_t in, int64_t out) {
  const size_t n = x.size() / size_t(in);
  std::vector<double> y(n * size_t(out), 0.0);
  for (size_t r = 0; r < n; ++r)
    for (int64_t o = 0; o < out; ++o) {
      double s = 0;
      for (int64_t i = 0; i < in; ++i) s += x[r * size_t(in) + size_t(i)] * w[size_t(o * in + i)];
      y[r * size_t(out) + size_t(o)] = s;
    }
  return y;
}

Tensor param(const Transformer& m, const std::string& name) {
  for (const auto& p : m.named_parameters())
    if (p.name == name) return p.tensor.detach();
  ADD_FAILURE() << "no parameter " << name;
  return {};
}

// The MTP term rebuilt from the model's hidden states and the modules' parameters: module k at
// position t reads h^{k-1}_t and the embedding of ids[t + k] and is scored on token t + k + 1,
// which is targets[t + k]; positions t >= T - k have no target.
TEST(Mtp, LossTermEqualsTheModulesRunByHand) {
  ModelConfig c = mtp_config(3);
  c.context_length = 8;
  auto model = test::make_model(c, DType::F64, 21);
  model->set_training(false);
  const int64_t b = 2, t = 7, d = c.d_model, v = c.vocab_size;
  // Targets as a loader makes them (the window shifted by one), so token t + k + 1 is ids[t + k + 1].
  const Tensor seq = test::random_ids(b, t + 1, v, 9);
  const Tensor ids = seq.narrow(1, 0, t).contiguous(), targets = seq.narrow(1, 1, t).contiguous();
  const std::vector<int64_t> s = to_vector<int64_t>(seq);
  const LossTerms lt = model->loss_terms(ids, targets);

  NoGradGuard no_grad;
  const std::vector<double> emb = host(param(*model, "model.embed_tokens.weight"));
  Tensor previous = model->forward_with_stream(ids).stream;  // h^0: the stream before the final norm
  double sum = 0;
  for (int64_t k = 1; k <= 3; ++k) {
    const std::string p = "model.layers." + std::to_string(c.n_layers + k - 1) + ".";
    const int64_t n = t - k;  // positions with a target
    std::vector<double> e(size_t(b * n * d)), h(size_t(b * n * d));
    const std::vector<double> prev = host(previous);
    const int64_t rows = previous.size(1);  // T - k + 1: h^{k-1} exists where module k - 1 had a target
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t i = 0; i < n; ++i)
        for (int64_t j = 0; j < d; ++j) {
          const int64_t tok = s[size_t(bi * (t + 1) + i + k)];  // token t + k
          e[size_t((bi * n + i) * d + j)] = emb[size_t(tok * d + j)];
          h[size_t((bi * n + i) * d + j)] = prev[size_t((bi * rows + i) * d + j)];
        }
    const std::vector<double> en = rms_rows(e, host(param(*model, p + "enorm.weight")), d, c.norm_eps);
    const std::vector<double> hn = rms_rows(h, host(param(*model, p + "hnorm.weight")), d, c.norm_eps);
    std::vector<double> cat2(size_t(b * n * 2 * d));
    for (int64_t r = 0; r < b * n; ++r)
      for (int64_t j = 0; j < d; ++j) {
        cat2[size_t(r * 2 * d + j)] = en[size_t(r * d + j)];
        cat2[size_t(r * 2 * d + d + j)] = hn[size_t(r * d + j)];
      }
    const std::vector<double> x = matmul_t(cat2, host(param(*model, p + "eh_proj.weight")), 2 * d, d);
    // The block itself through its own forward (tested with the main model's).
    const TransformerBlock& block = *model->mtp_modules()[size_t(k - 1)];
    const ResidualStream out =
        block.forward({.residual = from_vector<double>(x, {b, n, d}), .delta = Tensor(), .aux = Tensor()}, 0, nullptr);
    const std::vector<double> hk = host(out.residual + out.delta);
    const std::vector<double> normed = rms_rows(hk, host(param(*model, p + "shared_head.norm.weight")), d, c.norm_eps);
    const std::vector<double> logits = matmul_t(normed, emb, d, v);  // tied head
    double ce = 0;
    for (int64_t bi = 0; bi < b; ++bi)
      for (int64_t i = 0; i < n; ++i) {
        const double* row = &logits[size_t((bi * n + i) * v)];
        double mx = row[0], z = 0;
        for (int64_t j = 1; j < v; ++j) mx = std::max(mx, row[j]);
        for (int64_t j = 0; j < v; ++j) z += std::exp(row[j] - mx);
        const int64_t target = s[size_t(bi * (t + 1) + i + k + 1)];  // token t + k + 1
        ce += std::log(z) + mx - row[target];
      }
    sum += ce / double(b * n);
    previous = from_vector<double>(hk, {b, n, d});
  }
  const double expected = c.mtp_weight / 3.0 * sum;
  ASSERT_EQ(lt.terms.size(), 2u);
  EXPECT_EQ(lt.terms[0].first, "ce");
  EXPECT_EQ(lt.terms[1].first, "mtp");
  EXPECT_NEAR(lt.terms[1].second.item(), expected, 1e-12 * std::abs(expected));
  EXPECT_NEAR(lt.total.item(), lt.terms[0].second.item() + expected, 1e-12);
  // The main term is the plain cross-entropy of the main model's logits.
  const Tensor main_ce = cross_entropy(model->forward(ids).view({b * t, v}), targets.reshape({b * t}));
  EXPECT_EQ(lt.terms[0].second.item(), main_ce.item());
}

TEST(Mtp, DepthZeroIsBitIdenticalToAModelWithoutTheKeys) {
  for (const auto& v : test::core_model_variants()) {
    ModelConfig plain = test::tiny_config();
    v.apply(plain);
    ModelConfig off = plain;
    off.mtp_depth = 0;
    off.mtp_weight = 0.9;  // read only with modules
    auto a = test::make_model(plain), b = test::make_model(off);
    const Tensor x = test::random_ids(2, 8, plain.vocab_size, 1), y = test::random_ids(2, 8, plain.vocab_size, 2);
    const LossTerms la = a->loss_terms(x, y), lb = b->loss_terms(x, y);
    EXPECT_TRUE(test::bit_identical(la.total, lb.total)) << v.name;
    ASSERT_EQ(la.terms.size(), lb.terms.size()) << v.name;
    for (size_t i = 0; i < la.terms.size(); ++i) EXPECT_NE(lb.terms[i].first, "mtp");
    la.total.backward();
    lb.total.backward();
    const auto pa = a->named_parameters(), pb = b->named_parameters();
    ASSERT_EQ(pa.size(), pb.size());
    for (size_t i = 0; i < pa.size(); ++i) {
      EXPECT_EQ(pa[i].name, pb[i].name);
      EXPECT_TRUE(test::bit_identical(pa[i].tensor.grad(), pb[i].tensor.grad())) << v.name << " " << pa[i].name;
    }
  }
}

// Inference reads the main model only: a model with modules gives bit for bit the logits and
// token losses of the same main weights without them.
TEST(Mtp, ForwardAndTokenLossesIgnoreTheModules) {
  ModelConfig with = mtp_config(2);
  with.tied_embeddings = false;
  ModelConfig without = with;
  without.mtp_depth = 0;
  auto a = test::make_model(with), b = test::make_model(without);
  {  // b's parameters into a's main model
    NoGradGuard no_grad;
    const auto pa = a->named_parameters();
    for (const auto& pb : b->named_parameters())
      for (const auto& q : pa)
        if (q.name == pb.name) {
          Tensor dst = q.tensor.detach();
          copy_(dst, pb.tensor.detach());
        }
  }
  a->set_training(false), b->set_training(false);
  const Tensor x = test::random_ids(2, 8, with.vocab_size, 5), y = test::random_ids(2, 8, with.vocab_size, 6);
  EXPECT_TRUE(test::bit_identical(a->forward(x), b->forward(x)));
  EXPECT_TRUE(test::bit_identical(a->token_nll(x, y), b->token_nll(x, y)));
  // The loss's main term too; the modules only add their own.
  EXPECT_TRUE(test::bit_identical(a->loss_terms(x, y).terms[0].second, b->loss_terms(x, y).terms[0].second));
}

TEST(Mtp, ParametersCarryHfDeepSeekV3Names) {
  ModelConfig c = mtp_config(2);
  c.tied_embeddings = false;
  auto m = test::make_model(c);
  std::vector<std::string> names;
  for (const auto& p : m->named_parameters()) names.push_back(p.name);
  for (const std::string layer : {"model.layers.2.", "model.layers.3."})
    for (const char* part : {"enorm.weight", "hnorm.weight", "eh_proj.weight", "shared_head.norm.weight",
                             "self_attn.q_proj.weight", "mlp.down_proj.weight", "input_layernorm.weight",
                             "post_attention_layernorm.weight"})
      EXPECT_NE(std::find(names.begin(), names.end(), layer + part), names.end()) << layer + part;
  EXPECT_EQ(std::find(names.begin(), names.end(), "model.layers.4.enorm.weight"), names.end());
  // No copies of the embedding or the head.
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.find("embed") != n.npos; }),
            1);
  EXPECT_EQ(std::count_if(names.begin(), names.end(), [](const std::string& n) { return n.find("head") != n.npos &&
                                                                                   n.find("shared_head.norm") == n.npos; }),
            1);
}

TEST(Mtp, ParameterFormulaCountsTheModules) {
  const std::vector<test::ModelVariant> cases = {
      {"depth 1", [](ModelConfig& c) { c.mtp_depth = 1; }},
      {"depth 3, untied, layernorm, biases", [](ModelConfig& c) {
         c.mtp_depth = 3, c.tied_embeddings = false, c.norm = NormKind::LayerNorm, c.bias = true;
       }},
      {"depth 2, moe all (MTP blocks MoE)", [](ModelConfig& c) {
         c.mtp_depth = 2, c.n_experts = 4, c.d_ff_expert = 8, c.n_shared_experts = 1;
       }},
      {"depth 2, moe every:2 (layers 1 and 3: one MTP block MoE)", [](ModelConfig& c) {
         c.mtp_depth = 2, c.n_experts = 4, c.d_ff_expert = 8, c.moe_layers = "every:2";
       }},
  };
  for (const auto& v : cases) {
    ModelConfig c = test::tiny_config();
    v.apply(c);
    Transformer m(c);
    ModelConfig resolved = c;
    resolved.resolve();
    EXPECT_EQ(m.parameter_count(), resolved.parameter_count()) << v.name;
    ModelConfig off = resolved;
    off.mtp_depth = 0;
    EXPECT_GT(resolved.parameter_count(), off.parameter_count()) << v.name;
  }
}

TEST(Mtp, ShortWindowsScoreOnlyTheModulesWithATarget) {
  auto m = test::make_model(mtp_config(3), DType::F64);
  // T = 2: module 1 has one position (target t + 2 = ids' last + 1), modules 2 and 3 none.
  const Tensor x = test::random_ids(1, 2, 11, 1), y = test::random_ids(1, 2, 11, 2);
  const LossTerms two = m->loss_terms(x, y);
  ASSERT_EQ(two.terms.size(), 2u);
  EXPECT_TRUE(std::isfinite(two.terms[1].second.item()));
  // T = 1: no module has a target; no term.
  const LossTerms one = m->loss_terms(x.narrow(1, 0, 1).contiguous(), y.narrow(1, 0, 1).contiguous());
  ASSERT_EQ(one.terms.size(), 1u);
  EXPECT_EQ(one.total.item(), one.terms[0].second.item());
}

TEST(Mtp, ConfigErrorsNameTheKey) {
  const auto message = [](const std::function<void(ModelConfig&)>& change) {
    ModelConfig c = test::tiny_config();
    change(c);
    try {
      c.resolve();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message([](ModelConfig& c) { c.mtp_depth = -1; }).find("model.mtp_depth"), std::string::npos);
  EXPECT_NE(message([](ModelConfig& c) { c.mtp_depth = 8; }).find("model.mtp_depth"), std::string::npos);
  EXPECT_NE(message([](ModelConfig& c) { c.mtp_depth = 1, c.mtp_weight = -0.5; }).find("model.mtp_weight"),
            std::string::npos);
  EXPECT_NE(message([](ModelConfig& c) { c.mtp_depth = 1, c.mtp_weight = std::nan(""); }).find("model.mtp_weight"),
            std::string::npos);
  EXPECT_EQ(message([](ModelConfig& c) { c.mtp_depth = 7; }), "no error");
}

}  // namespace
}  // namespace lmforge::nn
