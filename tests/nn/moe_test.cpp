// The Mixture-of-Experts layer: the grouped path against the per-expert loop, each router's
// routing rules (expert choice's equal load, capacity drops), the Switch loss against its formula
// on a hand-made case, auxiliary-loss-free balancing, the config checks, and a whole MoE model
// whose loss carries its auxiliary terms.
#include <gtest/gtest.h>

#include <cmath>

#include "nn/model_test_util.h"
#include "nn/moe.h"

namespace lmforge::nn {
namespace {

ModelConfig moe_config(RouterKind router) {
  ModelConfig c = test::tiny_config();
  c.d_model = 8;
  c.n_experts = 4;
  c.d_ff_expert = 6;
  c.top_k = 2;
  c.router = router;
  if (router == RouterKind::ExpertChoice) c.capacity_factor = 1.0;
  c.resolve();
  return c;
}

// A MoE layer with every parameter drawn from N(0, 0.5²).
std::unique_ptr<MoE> make_moe(const ModelConfig& c, DType dtype, uint64_t seed) {
  auto moe = std::make_unique<MoE>(c, TensorOptions{.dtype = dtype});
  Generator g(seed);
  NoGradGuard ng;
  for (auto& p : moe->named_parameters()) normal_(p.tensor, g, 0.0, 0.5);
  return moe;
}

double max_abs_diff(const Tensor& a, const Tensor& b) {
  const std::vector<double> x = to_vector<double>(cast(a, DType::F64)), y = to_vector<double>(cast(b, DType::F64));
  EXPECT_EQ(x.size(), y.size());
  double m = 0;
  for (size_t i = 0; i < x.size() && i < y.size(); ++i) m = std::max(m, std::abs(x[i] - y[i]));
  return m;
}

struct RouterCase {
  const char* name;
  RouterKind router;
  double capacity_factor;
  int64_t shared;
};

class MoEPaths : public ::testing::TestWithParam<RouterCase> {};

// The grouped products give the loop's output and gradients (f64: equal to rounding).
TEST_P(MoEPaths, GroupedPathEqualsPerExpertLoop) {
  const RouterCase rc = GetParam();
  ModelConfig c = test::tiny_config();
  c.n_experts = 4, c.d_ff_expert = 6, c.top_k = 2, c.router = rc.router;
  c.capacity_factor = rc.capacity_factor, c.n_shared_experts = rc.shared;
  c.balance_loss = 0.01, c.router_z_loss = 0.001;
  c.resolve();
  auto moe = make_moe(c, DType::F64, 3);
  Generator g(9);
  const Tensor x0 = randn({3, 5, c.d_model}, g, DType::F64);
  std::vector<Tensor> outs, grads_x;
  std::vector<std::vector<Tensor>> grads_p;
  for (int path = 0; path < 2; ++path) {
    moe->zero_grad();
    Tensor x = x0.detach();
    x.set_requires_grad(true);
    AuxReport report;
    const Tensor y = path == 0 ? moe->forward(x, &report) : moe->forward_reference(x, &report);
    Tensor loss = sum(y * y);
    if (const Tensor aux = report.loss_sum(); aux.defined()) loss = loss + aux;
    loss.backward();
    outs.push_back(y.detach());
    grads_x.push_back(x.grad());
    grads_p.emplace_back();
    for (auto& p : moe->named_parameters()) grads_p.back().push_back(clone(p.tensor.grad()));
  }
  EXPECT_LT(max_abs_diff(outs[0], outs[1]), 1e-12) << rc.name;
  EXPECT_LT(max_abs_diff(grads_x[0], grads_x[1]), 1e-12) << rc.name;
  const auto params = moe->named_parameters();
  for (size_t i = 0; i < params.size(); ++i)
    EXPECT_LT(max_abs_diff(grads_p[0][i], grads_p[1][i]), 1e-12) << rc.name << " " << params[i].name;
}

INSTANTIATE_TEST_SUITE_P(Routers, MoEPaths,
                         ::testing::Values(RouterCase{"softmax", RouterKind::SoftmaxTopK, 0.0, 0},
                                           RouterCase{"softmax capacity", RouterKind::SoftmaxTopK, 0.5, 1},
                                           RouterCase{"sigmoid shared", RouterKind::SigmoidTopK, 0.0, 2},
                                           RouterCase{"expert choice", RouterKind::ExpertChoice, 1.0, 0}),
                         [](const auto& info) {
                           std::string s = info.param.name;
                           for (char& ch : s)
                             if (ch == ' ') ch = '_';
                           return s;
                         });

TEST(MoERouting, ExpertChoiceGivesEveryExpertTheSameLoad) {
  ModelConfig c = moe_config(RouterKind::ExpertChoice);
  c.capacity_factor = 1.25;
  auto moe = make_moe(c, DType::F32, 5);
  Generator g(1);
  const Tensor x = randn({40, c.d_model}, g);
  const Routing r = moe->router().route(x);
  const int64_t cap = int64_t(std::ceil(1.25 * 40 * 2 / 4.0));  // 25 of the 40 tokens per expert
  const std::vector<int64_t> ends = to_vector<int64_t>(r.ends);
  for (int64_t e = 0; e < 4; ++e) EXPECT_EQ(ends[size_t(e)], (e + 1) * cap);
  // Each expert's tokens are distinct and its gates are its highest probabilities.
  const std::vector<int64_t> tokens = to_vector<int64_t>(r.token);
  const std::vector<float> probs = to_vector<float>(r.probs), gates = to_vector<float>(r.gate);
  for (int64_t e = 0; e < 4; ++e) {
    std::vector<float> col;
    for (int64_t t = 0; t < 40; ++t) col.push_back(probs[size_t(t * 4 + e)]);
    std::sort(col.begin(), col.end(), std::greater<>());
    std::vector<bool> seen(40, false);
    for (int64_t j = 0; j < cap; ++j) {
      const int64_t t = tokens[size_t(e * cap + j)];
      EXPECT_FALSE(seen[size_t(t)]);
      seen[size_t(t)] = true;
      EXPECT_EQ(gates[size_t(e * cap + j)], probs[size_t(t * 4 + e)]);
      EXPECT_EQ(gates[size_t(e * cap + j)], col[size_t(j)]);
    }
  }
}

// Token choice with a capacity: expert e keeps its first ceil(cf·N·k/E) assignments in token
// order; dropless keeps them all.
TEST(MoERouting, CapacityDropsTheLaterTokensOfAnOverfullExpert) {
  for (double cf : {0.0, 0.5, 1.0}) {
    ModelConfig c = moe_config(RouterKind::SoftmaxTopK);
    c.capacity_factor = cf;
    auto moe = make_moe(c, DType::F32, 6);
    Generator g(2);
    const Tensor x = randn({24, c.d_model}, g);
    const Routing r = moe->router().route(x);
    // The expected kept assignments, by a plain loop over the router's choices.
    const std::vector<int64_t> choice = to_vector<int64_t>(r.choice);
    const int64_t cap = cf > 0 ? int64_t(std::ceil(cf * 24 * 2 / 4)) : 1 << 30;
    std::vector<std::vector<int64_t>> kept(4);
    int64_t dropped = 0;
    for (int64_t t = 0; t < 24; ++t)
      for (int64_t j = 0; j < 2; ++j) {
        const int64_t e = choice[size_t(t * 2 + j)];
        if (int64_t(kept[size_t(e)].size()) < cap) kept[size_t(e)].push_back(t);
        else ++dropped;
      }
    EXPECT_EQ(r.dropped.item(), double(dropped)) << "cf " << cf;
    if (cf == 0.0) {
      EXPECT_EQ(dropped, 0);
    }
    if (cf == 0.5) {
      EXPECT_GT(dropped, 0);
    }
    const std::vector<int64_t> ends = to_vector<int64_t>(r.ends), tokens = to_vector<int64_t>(r.token);
    int64_t start = 0;
    for (int64_t e = 0; e < 4; ++e) {
      const std::vector<int64_t> seg(tokens.begin() + start, tokens.begin() + ends[size_t(e)]);
      EXPECT_EQ(seg, kept[size_t(e)]) << "cf " << cf << " expert " << e;
      start = ends[size_t(e)];
    }
  }
}

// Switch loss on a case small enough to check by hand: E = 2, top-1, router weight = identity,
// tokens (1,0), (0,1), (2,0): probabilities softmax(x), choices 0, 1, 0.
TEST(MoELosses, SwitchLossEqualsItsFormula) {
  ModelConfig c = test::tiny_config();
  c.d_model = 2, c.n_heads = 1, c.n_experts = 2, c.d_ff_expert = 4, c.top_k = 1, c.balance_loss = 0.5;
  c.router_z_loss = 0.25;
  c.resolve();
  auto moe = make_moe(c, DType::F64, 1);
  {
    NoGradGuard ng;
    Tensor w = moe->router().weight();
    copy_(w, from_vector<double>({1, 0, 0, 1}, {2, 2}));
  }
  const Tensor x = from_vector<double>({1, 0, 0, 1, 2, 0}, {3, 2});
  AuxReport report;
  moe->forward(x, &report);
  const auto sm = [](double a, double b) { return std::exp(a) / (std::exp(a) + std::exp(b)); };
  const double p0 = (sm(1, 0) + sm(0, 1) + sm(2, 0)) / 3, p1 = 1 - p0;
  const double f0 = 2.0 / 3, f1 = 1.0 / 3;
  const double switch_loss = 0.5 * 2 * (f0 * p0 + f1 * p1);
  const auto lse = [](double a, double b) { return std::log(std::exp(a) + std::exp(b)); };
  const double z = 0.25 * (std::pow(lse(1, 0), 2) + std::pow(lse(0, 1), 2) + std::pow(lse(2, 0), 2)) / 3;
  ASSERT_EQ(report.losses().size(), 2u);
  EXPECT_EQ(report.losses()[0].first, "moe_balance");
  EXPECT_NEAR(report.losses()[0].second.item(), switch_loss, 1e-6);
  EXPECT_EQ(report.losses()[1].first, "router_z");
  EXPECT_NEAR(report.losses()[1].second.item(), z, 1e-6);
  // The chosen-assignment counts are the statistic.
  bool found = false;
  for (const auto& s : report.stats())
    if (s.name == "moe.tokens_per_expert") {
      found = true;
      EXPECT_EQ(to_vector<double>(cast(s.value, DType::F64)), (std::vector<double>{2, 1}));
    }
  EXPECT_TRUE(found);
}

// Auxiliary-loss-free balancing: with a router skewed towards one expert and nothing else
// trained, the bias alone brings max/mean load below 1.2 within a bounded number of steps.
TEST(MoELosses, LossFreeBiasBalancesASkewedRouter) {
  ModelConfig c = moe_config(RouterKind::SigmoidTopK);
  c.n_experts = 8, c.top_k = 2, c.bias_update_rate = 0.01;
  c.resolve();
  auto moe = make_moe(c, DType::F32, 4);
  {
    NoGradGuard ng;
    Generator g(3);
    Tensor w = moe->router().weight();
    normal_(w, g, 0.0, 0.3);
    Tensor row0 = select(w, 0, 0);
    fill_(row0, 0.4);  // expert 0 preferred by tokens with positive features
  }
  Generator g(8);
  const Tensor x = abs(randn({256, c.d_model}, g));
  StepStats stats;
  double ratio = 0;
  int step = 0;
  for (; step < 400; ++step) {
    NoGradGuard ng;
    stats.clear();
    AuxReport report;
    moe->forward(x, &report);
    stats.add(0, report);
    const std::vector<float> load = to_vector<float>(stats.get("layers.0.moe.tokens_per_expert"));
    double mean = 0, peak = 0;
    for (float l : load) mean += l / 8.0, peak = std::max<double>(peak, l);
    ratio = peak / mean;
    if (step == 0) {
      EXPECT_GT(ratio, 2.0) << "the router should start skewed";
    }
    if (ratio < 1.2) break;
    moe->after_optimizer_step(stats, 0);
  }
  EXPECT_LT(ratio, 1.2) << "after " << step << " steps";
  EXPECT_LT(step, 400);
}

TEST(MoEConfig, BadInputNamesTheKey) {
  const auto error = [](std::function<void(ModelConfig&)> f) {
    ModelConfig c = test::tiny_config();
    c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2;
    f(c);
    try {
      c.resolve();
    } catch (const Error& e) {
      return std::string(e.what());
    }
    return std::string();
  };
  EXPECT_EQ(error([](ModelConfig&) {}), "");
  EXPECT_NE(error([](ModelConfig& c) { c.top_k = 5; }).find("model.top_k (5) must not exceed model.n_experts (4)"),
            std::string::npos);
  EXPECT_NE(error([](ModelConfig& c) { c.capacity_factor = -1; }).find("model.capacity_factor"), std::string::npos);
  EXPECT_NE(error([](ModelConfig& c) { c.d_ff_expert = 0; }).find("model.d_ff_expert"), std::string::npos);
  EXPECT_NE(error([](ModelConfig& c) { c.moe_layers = "every:x"; }).find("model.moe_layers"), std::string::npos);
  EXPECT_NE(error([](ModelConfig& c) { c.moe_layers = "after:2"; }).find("selects none"), std::string::npos);
  EXPECT_NE(error([](ModelConfig& c) { c.router = RouterKind::ExpertChoice; }).find("model.capacity_factor"),
            std::string::npos);
  EXPECT_NE(error([](ModelConfig& c) { c.n_expert_groups = 3; }).find("model.n_expert_groups"), std::string::npos);
}

TEST(MoEConfig, LayerSelection) {
  ModelConfig c = test::tiny_config();
  c.n_layers = 6, c.n_experts = 4, c.d_ff_expert = 8;
  const auto moe_layers = [&](std::string rule) {
    c.moe_layers = std::move(rule);
    std::vector<int64_t> out;
    for (int64_t i = 0; i < c.n_layers; ++i)
      if (c.is_moe_layer(i)) out.push_back(i);
    return out;
  };
  EXPECT_EQ(moe_layers("all"), (std::vector<int64_t>{0, 1, 2, 3, 4, 5}));
  EXPECT_EQ(moe_layers("every:2"), (std::vector<int64_t>{1, 3, 5}));
  EXPECT_EQ(moe_layers("after:2"), (std::vector<int64_t>{2, 3, 4, 5}));
}

// A whole MoE model: parameter names and count, its loss = cross-entropy + the auxiliary terms,
// and per-layer statistics in the model's StepStats during training only.
TEST(MoEModel, LossCarriesTheAuxiliaryTerms) {
  ModelConfig c = test::tiny_config();
  c.n_experts = 4, c.d_ff_expert = 8, c.top_k = 2, c.balance_loss = 0.1, c.n_shared_experts = 1;
  c.moe_layers = "after:1";
  auto model = test::make_model(c, DType::F32, 3);
  const ModelConfig& r = model->config();
  EXPECT_EQ(model->parameter_count(), r.parameter_count());
  std::vector<std::string> names;
  for (const auto& p : model->named_parameters()) names.push_back(p.name);
  for (const char* want : {"model.layers.0.mlp.up_proj.weight", "model.layers.1.mlp.gate.weight",
                           "model.layers.1.mlp.experts.gate_proj", "model.layers.1.mlp.experts.down_proj",
                           "model.layers.1.mlp.shared_experts.up_proj.weight"})
    EXPECT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
  const Tensor x = test::random_ids(2, 6, c.vocab_size, 1), y = test::random_ids(2, 6, c.vocab_size, 2);
  model->set_training(true);
  model->step_stats().clear();
  const LossTerms lt = model->loss_terms(x, y);
  ASSERT_EQ(lt.terms.size(), 2u);
  EXPECT_EQ(lt.terms[0].first, "ce");
  EXPECT_EQ(lt.terms[1].first, "aux");
  EXPECT_NEAR(lt.total.item(), lt.terms[0].second.item() + lt.terms[1].second.item(), 1e-6);
  const StepStats& stats = model->step_stats();
  EXPECT_TRUE(stats.get("layers.1.moe.tokens_per_expert").defined());
  EXPECT_FALSE(stats.get("layers.0.moe.tokens_per_expert").defined());
  EXPECT_NEAR(stats.loss_totals().at("moe_balance").item(), lt.terms[1].second.item(), 1e-6);
  EXPECT_EQ(sum(stats.get("layers.1.moe.tokens_per_expert")).item(), 24.0);  // 12 tokens, top-2
  // ce equals the plain cross-entropy of the logits; a second training forward adds its counts.
  const Tensor logits = model->forward(x);
  EXPECT_NEAR(lt.terms[0].second.item(), cross_entropy(logits.view({12, c.vocab_size}), y.reshape({12})).item(), 1e-6);
  EXPECT_EQ(sum(stats.get("layers.1.moe.tokens_per_expert")).item(), 48.0);
  model->set_training(false);
  model->step_stats().clear();
  model->forward(x);
  EXPECT_TRUE(stats.values().empty());
}

}  // namespace
}  // namespace lmforge::nn

namespace lmforge::nn {
namespace {

// Central differences in f64 through the layer (the routing does not move under a 1e-6 step):
// d/dx and d/dparams of sum(y²) + the auxiliary losses, for every router.
TEST_P(MoEPaths, GradientMatchesFiniteDifferences) {
  const RouterCase rc = GetParam();
  ModelConfig c = test::tiny_config();
  c.n_experts = 4, c.d_ff_expert = 6, c.top_k = 2, c.router = rc.router;
  c.capacity_factor = rc.capacity_factor, c.n_shared_experts = rc.shared;
  c.balance_loss = 0.1, c.router_z_loss = 0.01;
  if (rc.router == RouterKind::SigmoidTopK) c.n_expert_groups = 2, c.device_balance_loss = 0.1, c.comm_balance_loss = 0.1;
  c.resolve();
  auto moe = make_moe(c, DType::F64, 3);
  Generator g(9);
  Tensor x = randn({2, 5, c.d_model}, g, DType::F64);
  x.set_requires_grad(true);
  const auto objective = [&] {
    AuxReport report;
    const Tensor y = moe->forward(x, &report);
    Tensor loss = sum(y * y);
    if (const Tensor aux = report.loss_sum(); aux.defined()) loss = loss + aux;
    return loss;
  };
  moe->zero_grad();
  objective().backward();
  std::vector<std::pair<std::string, Tensor>> targets{{"x", x}};
  for (auto& p : moe->named_parameters()) targets.emplace_back(p.name, p.tensor);
  Generator pick(5);
  for (auto& [name, t] : targets) {
    const std::vector<double> grad = to_vector<double>(t.grad());
    Tensor flat = t.detach().view({-1});
    for (int64_t i : to_vector<int64_t>(randint({4}, 0, flat.numel(), pick))) {
      NoGradGuard ng;
      Tensor e = flat.narrow(0, i, 1);
      const double v0 = e.item(), eps = 1e-6;
      fill_(e, v0 + eps);
      const double lp = objective().item();
      fill_(e, v0 - eps);
      const double lm = objective().item();
      fill_(e, v0);
      const double fd = (lp - lm) / (2 * eps);
      EXPECT_NEAR(grad[size_t(i)], fd, 1e-6 + 1e-5 * std::abs(fd)) << rc.name << " " << name << "[" << i << "]";
    }
  }
}

}  // namespace
}  // namespace lmforge::nn
