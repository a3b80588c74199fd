#include <gtest/gtest.h>

#include <cmath>

#include "nn/model_test_util.h"
#include "optim/adamw.h"
#include "optim/clip.h"
#include "optim/schedule.h"

namespace lmforge::optim {
namespace {

// Two AdamW steps on f64 parameters against the formulas written out by hand.
TEST(AdamW, MatchesReferenceWithDecoupledDecayAndBiasCorrection) {
  Tensor w = from_vector<double>({0.5, -1.0, 2.0}, {3});
  Tensor n = from_vector<double>({1.0, 1.5}, {2});
  std::vector<nn::NamedParameter> params{{"w", w, nn::ParamKind::Matrix}, {"n", n, nn::ParamKind::Norm}};
  for (auto& p : params) p.tensor.set_requires_grad(true);
  AdamWOptions o{.beta1 = 0.9, .beta2 = 0.99, .eps = 1e-8, .weight_decay = 0.1};
  AdamW opt(params, o);
  EXPECT_TRUE(opt.decays("w"));
  EXPECT_FALSE(opt.decays("n"));
  std::vector<double> pw = {0.5, -1.0, 2.0}, pn = {1.0, 1.5}, mw(3), vw(3), mn(2), vn(2);
  const std::vector<std::vector<double>> gw = {{0.1, -0.2, 0.3}, {-0.05, 0.4, 0.0}}, gn = {{1.0, -1.0}, {0.5, 0.25}};
  const double lr = 0.01, scale = 0.5;
  for (int step = 1; step <= 2; ++step) {
    w.set_grad(from_vector<double>(gw[step - 1], {3}));
    n.set_grad(from_vector<double>(gn[step - 1], {2}));
    opt.step(lr, scale);
    const double bc1 = 1 - std::pow(0.9, step), bc2 = 1 - std::pow(0.99, step);
    auto ref = [&](std::vector<double>& p, std::vector<double>& m, std::vector<double>& v, const std::vector<double>& g,
                   double wd) {
      for (size_t i = 0; i < p.size(); ++i) {
        const double gi = g[i] * scale;
        p[i] *= 1 - lr * wd;
        m[i] = 0.9 * m[i] + 0.1 * gi;
        v[i] = 0.99 * v[i] + 0.01 * gi * gi;
        p[i] -= lr * (m[i] / bc1) / (std::sqrt(v[i] / bc2) + 1e-8);
      }
    };
    ref(pw, mw, vw, gw[step - 1], 0.1);
    ref(pn, mn, vn, gn[step - 1], 0.0);
    const auto got_w = to_vector<double>(w), got_n = to_vector<double>(n);
    for (size_t i = 0; i < 3; ++i) EXPECT_NEAR(got_w[i], pw[i], 1e-14) << "step " << step;
    for (size_t i = 0; i < 2; ++i) EXPECT_NEAR(got_n[i], pn[i], 1e-14) << "step " << step;
  }
  EXPECT_EQ(opt.step_count(), 2);
}

TEST(AdamW, DefaultGroupsSkipNormsBiasesAndEmbeddings) {
  nn::ModelConfig c = test::tiny_config();
  c.bias = true;
  c.tied_embeddings = false;
  nn::Transformer m(c);
  AdamW opt(m.named_parameters(), {.weight_decay = 0.1});
  for (const auto& p : m.named_parameters()) {
    const bool matrix = p.name.ends_with("proj.weight") || p.name == "lm_head.weight";
    EXPECT_EQ(opt.decays(p.name), matrix) << p.name;
  }
  AdamW all(m.named_parameters(), {.weight_decay = 0.1, .decay_norms = true, .decay_biases = true,
                                   .decay_embeddings = true});
  for (const auto& p : m.named_parameters()) EXPECT_TRUE(all.decays(p.name)) << p.name;
}

TEST(AdamW, ParametersWithoutGradientsAreLeftAlone) {
  Tensor a = from_vector<float>({1.f, 2.f}, {2}), b = from_vector<float>({3.f}, {1});
  std::vector<nn::NamedParameter> params{{"a", a, nn::ParamKind::Matrix}, {"b", b, nn::ParamKind::Matrix}};
  for (auto& p : params) p.tensor.set_requires_grad(true);
  AdamW opt(params, {.weight_decay = 0.5});
  a.set_grad(from_vector<float>({1.f, 1.f}, {2}));
  opt.step(0.1);
  EXPECT_EQ(to_vector<float>(b), std::vector<float>{3.f});
  EXPECT_NE(to_vector<float>(a), (std::vector<float>{1.f, 2.f}));
}

TEST(LrSchedule, WarmupCosineToFloor) {
  LrSchedule s{.kind = ScheduleKind::Cosine, .lr = 1.0, .min_lr = 0.1, .warmup_steps = 10, .decay_steps = 110};
  EXPECT_DOUBLE_EQ(s.at(0), 0.1);
  EXPECT_DOUBLE_EQ(s.at(4), 0.5);
  EXPECT_DOUBLE_EQ(s.at(9), 1.0);
  EXPECT_DOUBLE_EQ(s.at(10), 1.0);
  EXPECT_NEAR(s.at(60), 0.55, 1e-12);  // halfway: min + (max - min) / 2
  EXPECT_NEAR(s.at(109), 0.1 + 0.9 * 0.5 * (1 + std::cos(M_PI * 99 / 100)), 1e-12);
  EXPECT_DOUBLE_EQ(s.at(110), 0.1);
  EXPECT_DOUBLE_EQ(s.at(1000), 0.1);
  LrSchedule lin{.kind = ScheduleKind::Linear, .lr = 1.0, .min_lr = 0.0, .warmup_steps = 0, .decay_steps = 4};
  EXPECT_DOUBLE_EQ(lin.at(0), 1.0);
  EXPECT_DOUBLE_EQ(lin.at(2), 0.5);
  LrSchedule k{.kind = ScheduleKind::Constant, .lr = 0.3, .min_lr = 0.0, .warmup_steps = 2, .decay_steps = 4};
  EXPECT_DOUBLE_EQ(k.at(0), 0.15);
  EXPECT_DOUBLE_EQ(k.at(100), 0.3);
}

TEST(ClipGradNorm, GlobalNormAndScale) {
  Tensor a = zeros({2}, DType::F32).set_requires_grad(true), b = zeros({1}, DType::F32).set_requires_grad(true);
  a.set_grad(from_vector<float>({3.f, 0.f}, {2}));
  b.set_grad(from_vector<float>({4.f}, {1}));
  std::vector<nn::NamedParameter> params{{"a", a, nn::ParamKind::Matrix}, {"b", b, nn::ParamKind::Matrix}};
  ClipResult r = clip_grad_norm(params, 1.0);
  EXPECT_DOUBLE_EQ(r.norm, 5.0);
  EXPECT_NEAR(r.scale, 1.0 / 5.0, 1e-6);
  r = clip_grad_norm(params, 10.0);
  EXPECT_DOUBLE_EQ(r.scale, 1.0);
  r = clip_grad_norm(params, 0.0);  // disabled
  EXPECT_DOUBLE_EQ(r.scale, 1.0);
  a.set_grad(from_vector<float>({NAN, 0.f}, {2}));
  r = clip_grad_norm(params, 1.0);
  EXPECT_TRUE(std::isnan(r.norm));
}

// Clipping on the parameters' device (grad_norm_squared + DeviceClip) gives the update of the
// host's clip_grad_norm bit for bit; a non-finite norm leaves the parameters and moments alone,
// and cancel_step() takes the step count back.
TEST(ClipGradNorm, DeviceClipMatchesHostClipAndSkipsNonFinite) {
  auto make = [] {
    Tensor a = from_vector<float>({0.5f, -1.f, 2.f}, {3}).set_requires_grad(true);
    Tensor b = from_vector<float>({1.f, 1.5f}, {2}).set_requires_grad(true);
    return std::vector<nn::NamedParameter>{{"a", a, nn::ParamKind::Matrix}, {"b", b, nn::ParamKind::Norm}};
  };
  auto host = make(), device = make();
  AdamW opt_host(host, {}), opt_device(device, {});
  for (double max_norm : {1.0, 100.0, 0.0}) {
    for (auto* ps : {&host, &device}) {
      (*ps)[0].tensor.set_grad(from_vector<float>({3.f, 0.f, -1.f}, {3}));
      (*ps)[1].tensor.set_grad(from_vector<float>({4.f, 0.5f}, {2}));
    }
    const double grad_scale = 0.5;
    opt_host.step(1e-2, clip_grad_norm(host, max_norm, grad_scale).scale);
    const Tensor sq = grad_norm_squared(device);
    EXPECT_DOUBLE_EQ(clip_norm(sq.item(), grad_scale), clip_grad_norm(device, max_norm, grad_scale).norm);
    opt_device.step(1e-2, grad_scale, {.norm_squared = sq, .max_norm = max_norm});
    for (size_t i = 0; i < host.size(); ++i)
      EXPECT_EQ(to_vector<float>(host[i].tensor), to_vector<float>(device[i].tensor)) << "max_norm " << max_norm;
  }
  const auto before = to_vector<float>(device[0].tensor);
  const auto moments = opt_device.state_tensors();
  const auto m_before = to_vector<float>(moments[0].second);
  device[0].tensor.set_grad(from_vector<float>({NAN, 0.f, 0.f}, {3}));
  opt_device.step(1e-2, 1.0, {.norm_squared = grad_norm_squared(device), .max_norm = 1.0});
  EXPECT_EQ(to_vector<float>(device[0].tensor), before);
  EXPECT_EQ(to_vector<float>(moments[0].second), m_before);
  EXPECT_EQ(opt_device.step_count(), 4);
  opt_device.cancel_step();
  EXPECT_EQ(opt_device.step_count(), 3);
}

// A tiny model memorises one batch.
TEST(AdamW, TinyModelOverfitsOneBatch) {
  nn::ModelConfig c = test::tiny_config();
  c.vocab_size = 32;
  c.context_length = 16;
  c.d_model = 32;
  c.n_heads = 4;
  c.d_ff = 64;
  c.init_std = 0.02;
  auto model = test::make_model(c);
  // Random sequences whose first tokens differ, so every context has one continuation.
  std::vector<int64_t> seq = to_vector<int64_t>(test::random_ids(4, 17, c.vocab_size, 1));
  for (int64_t b = 0; b < 4; ++b) seq[size_t(b * 17)] = b;
  const Tensor all = from_vector<int64_t>(seq, {4, 17});
  const Tensor x = all.narrow(1, 0, 16).contiguous(), y = all.narrow(1, 1, 16).contiguous();
  auto params = model->named_parameters();
  AdamW opt(params, {.beta1 = 0.9, .beta2 = 0.99, .weight_decay = 0.0});
  const LrSchedule sched{.kind = ScheduleKind::Cosine, .lr = 1e-2, .min_lr = 1e-3, .warmup_steps = 10,
                         .decay_steps = 400};
  double first = 0, loss = 0;
  for (int step = 0; step < 400; ++step) {
    Tensor l = model->loss(x, y);
    loss = l.item();
    if (step == 0) first = loss;
    if (loss < 0.05) break;
    l.backward();
    opt.step(sched.at(step), clip_grad_norm(params, 1.0).scale);
    model->zero_grad();
  }
  EXPECT_GT(first, 3.0);
  EXPECT_LT(loss, 0.05);
}

}  // namespace
}  // namespace lmforge::optim
