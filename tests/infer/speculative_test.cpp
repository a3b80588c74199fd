// Self-speculative decoding (infer/speculative.h): greedy output equals generate()'s token for
// token (untrained modules that are mostly rejected, trained ones that are mostly accepted,
// prompts of every length up to a full context, a stop token inside an accepted draft), and
// speculative sampling draws the main model's distribution (empirical frequencies of many
// seeded runs against the probabilities computed from the model's logits).
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "core/error.h"
#include "infer/generate.h"
#include "infer/speculative.h"
#include "nn/model_test_util.h"
#include "optim/adamw.h"

namespace lmforge::infer {
namespace {

nn::ModelConfig spec_config(int64_t depth, int64_t context = 24) {
  nn::ModelConfig c = test::tiny_config();
  c.context_length = context;
  c.mtp_depth = depth;
  return c;
}

// A model (and its modules) trained on the cycle 0, 1, ..., V - 1, 0, ...: most drafts are right.
std::unique_ptr<nn::Transformer> cyclic_model(int64_t depth) {
  nn::ModelConfig c = spec_config(depth, 32);
  c.d_model = 16, c.d_ff = 32, c.init_std = 0.02;
  auto m = test::make_model(c, DType::F32, 3);
  optim::AdamW opt(m->named_parameters(), {.weight_decay = 0.0});
  const int64_t b = 4, t = 16, v = c.vocab_size;
  for (int step = 0; step < 150; ++step) {
    std::vector<int64_t> ids, targets;
    for (int64_t r = 0; r < b; ++r)
      for (int64_t i = 0; i < t; ++i) {
        ids.push_back((step * 7 + r * 3 + i) % v);
        targets.push_back((step * 7 + r * 3 + i + 1) % v);
      }
    m->zero_grad();
    m->loss(from_vector<int64_t>(ids, {b, t}), from_vector<int64_t>(targets, {b, t})).backward();
    opt.step(1e-2);
  }
  m->set_training(false);
  return m;
}

std::vector<uint32_t> prompt_of(std::initializer_list<uint32_t> ids) { return ids; }

void expect_same_as_greedy(const nn::Transformer& m, const std::vector<uint32_t>& prompt, int64_t max_new,
                           std::optional<uint32_t> stop, const std::string& label, SpeculativeStats* stats = nullptr) {
  const GenerateOptions o{.max_new_tokens = max_new, .sampling = {.temperature = 0}, .seed = 1, .stop_token = stop};
  const std::vector<uint32_t> plain = generate(m, prompt, o);
  std::vector<uint32_t> streamed;
  SpeculativeStats s;
  const std::vector<uint32_t> spec = generate_speculative(m, prompt, o, [&](uint32_t id) { streamed.push_back(id); }, &s);
  EXPECT_EQ(spec, plain) << label;
  EXPECT_EQ(streamed, spec) << label;
  EXPECT_LE(s.accepted, s.drafted);
  if (stats) *stats = s;
}

TEST(Speculative, GreedyEqualsPlainGreedyWithUntrainedModules) {
  for (int64_t depth : {1, 2, 3}) {
    for (DType dtype : {DType::F32, DType::F64}) {
      auto m = test::make_model(spec_config(depth), dtype, 5 + uint64_t(depth));
      m->set_training(false);
      const std::vector<std::vector<uint32_t>> prompts = {
          {3}, {1, 2, 3, 4, 5}, std::vector<uint32_t>(20, 7), std::vector<uint32_t>(23, 2), std::vector<uint32_t>(40, 9)};
      for (const auto& p : prompts)
        for (int64_t n : {0, 1, 2, 5, 17, 100}) {
          const std::string label = "depth " + std::to_string(depth) + ", prompt " + std::to_string(p.size()) +
                                    ", max_new " + std::to_string(n) + ", " + std::string(dtype_name(dtype));
          expect_same_as_greedy(*m, p, n, std::nullopt, label);
        }
    }
  }
}

TEST(Speculative, GreedyEqualsPlainGreedyWithTrainedModules) {
  for (int64_t depth : {1, 2, 3}) {
    auto m = cyclic_model(depth);
    SpeculativeStats s;
    // The context (32) fills: 32 - 3 + 1 = 30 tokens.
    expect_same_as_greedy(*m, prompt_of({4, 5, 6}), 1000, std::nullopt, "depth " + std::to_string(depth), &s);
    EXPECT_GT(s.acceptance_rate(), 0.5) << "depth " << depth << ": trained modules should mostly be right";
    EXPECT_LT(s.rounds, 30) << "fewer main-model forwards than tokens";
    for (int64_t n : {1, 2, 3, 4, 7, 13})
      expect_same_as_greedy(*m, prompt_of({9, 10}), n, std::nullopt, "max_new " + std::to_string(n));
    // A prompt one short of the context: two tokens fit (the second chosen from the last position).
    expect_same_as_greedy(*m, std::vector<uint32_t>(31, 1), 10, std::nullopt, "prompt of context - 1");
  }
}

TEST(Speculative, StopTokenInsideAnAcceptedDraftEndsTheOutput) {
  auto m = cyclic_model(3);
  // Prompt ... 4 -> the first token 5 comes from the prefill, the drafts 6, 7, 8 are verified in
  // one forward; 7 is the stop token: 6 and 7 are accepted and 8 is dropped.
  SpeculativeStats s;
  expect_same_as_greedy(*m, prompt_of({1, 2, 3, 4}), 50, 7u, "stop 7", &s);
  const GenerateOptions o{.max_new_tokens = 50, .sampling = {.temperature = 0}, .stop_token = 7u};
  EXPECT_EQ(generate_speculative(*m, prompt_of({1, 2, 3, 4}), o), (std::vector<uint32_t>{5, 6, 7}));
  EXPECT_EQ(s.rounds, 1);
  EXPECT_EQ(s.accepted, 2);
}

TEST(Speculative, ModelWithoutModulesIsRefusedNamingTheKey) {
  auto m = test::make_model(spec_config(0));
  try {
    generate_speculative(*m, prompt_of({1}), {.max_new_tokens = 3, .sampling = {}});
    FAIL() << "no error";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("model.mtp_depth"), std::string::npos) << e.what();
  }
}

// The target distribution computed here from its definition (infer/sampling.h), independently
// of target_distribution(): softmax at the temperature, the top_k largest logits, the smallest
// prefix (by probability) reaching top_p, renormalised.
std::vector<double> reference_distribution(const std::vector<float>& logits, const SamplingOptions& o) {
  const size_t v = logits.size();
  std::vector<size_t> order(v);
  for (size_t i = 0; i < v; ++i) order[i] = i;
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return logits[a] > logits[b]; });
  const size_t k = o.top_k > 0 ? std::min(size_t(o.top_k), v) : v;
  double z = 0;
  for (size_t i = 0; i < k; ++i) z += std::exp(double(logits[order[i]]) / o.temperature);
  std::vector<double> p(v, 0.0);
  double cum = 0, kept = 0;
  size_t keep = k;
  for (size_t i = 0; i < k; ++i) {
    cum += std::exp(double(logits[order[i]]) / o.temperature) / z;
    if (cum >= o.top_p) {
      keep = i + 1;
      break;
    }
  }
  for (size_t i = 0; i < keep; ++i) kept += std::exp(double(logits[order[i]]) / o.temperature);
  for (size_t i = 0; i < keep; ++i) p[order[i]] = std::exp(double(logits[order[i]]) / o.temperature) / kept;
  return p;
}

std::vector<float> next_logits(const nn::Transformer& m, const std::vector<uint32_t>& ids) {
  NoGradGuard no_grad;
  std::vector<int64_t> v(ids.begin(), ids.end());
  const Tensor logits = m.forward(from_vector<int64_t>(v, {1, int64_t(v.size())}));
  return to_vector<float>(logits.narrow(1, int64_t(v.size()) - 1, 1));
}

// Three tokens from a two-token prompt with two modules: the first from the prefill, the second
// and third through a round of drafting (d = 2), acceptance and rejection. The joint frequency of
// every (a, b, c) over many seeds matches p(a) p(b | a) p(c | a, b) within five standard errors.
TEST(Speculative, SamplingDrawsTheTargetDistribution) {
  nn::ModelConfig c = spec_config(2, 8);
  c.vocab_size = 5, c.init_std = 0.5;
  auto m = test::make_model(c, DType::F32, 13);
  m->set_training(false);
  const std::vector<uint32_t> prompt = {1, 3};
  for (const SamplingOptions& so : {SamplingOptions{.temperature = 1.0}, SamplingOptions{.temperature = 0.7, .top_k = 4, .top_p = 0.9}}) {
    std::map<std::vector<uint32_t>, double> target;
    const std::vector<double> pa = reference_distribution(next_logits(*m, prompt), so);
    for (uint32_t a = 0; a < 5; ++a) {
      if (pa[a] == 0) continue;
      const std::vector<double> pb = reference_distribution(next_logits(*m, {1, 3, a}), so);
      for (uint32_t b = 0; b < 5; ++b) {
        if (pb[b] == 0) continue;
        const std::vector<double> pc = reference_distribution(next_logits(*m, {1, 3, a, b}), so);
        for (uint32_t cc = 0; cc < 5; ++cc)
          if (pc[cc] > 0) target[{a, b, cc}] = pa[a] * pb[b] * pc[cc];
      }
    }
    const int n = 8000;
    std::map<std::vector<uint32_t>, double> seen;
    SpeculativeStats total;
    for (int seed = 0; seed < n; ++seed) {
      SpeculativeStats s;
      const std::vector<uint32_t> out =
          generate_speculative(*m, prompt, {.max_new_tokens = 3, .sampling = so, .seed = uint64_t(seed)}, nullptr, &s);
      ASSERT_EQ(out.size(), 3u);
      seen[out] += 1;
      total.drafted += s.drafted, total.accepted += s.accepted;
    }
    // Both paths ran: accepted drafts and rejections with a residual draw.
    EXPECT_GT(total.accepted, n / 10);
    EXPECT_LT(total.accepted, total.drafted - n / 10);
    for (const auto& [seq, count] : seen) EXPECT_TRUE(target.count(seq)) << "a sequence of probability 0";
    for (const auto& [seq, p] : target) {
      const double f = seen.count(seq) ? seen[seq] / n : 0.0;
      const double tolerance = 5 * std::sqrt(p * (1 - p) / n) + 1.0 / n;
      EXPECT_NEAR(f, p, tolerance) << "tokens " << seq[0] << " " << seq[1] << " " << seq[2] << " at temperature "
                                   << so.temperature;
    }
  }
}

// target_distribution() against the reference on a row with ties and every option.
TEST(Speculative, TargetDistributionFollowsTheSamplingOptions) {
  const std::vector<float> logits = {0.5f, 2.0f, -1.0f, 2.0f, 1.0f, 0.0f};
  for (const SamplingOptions& so : {SamplingOptions{.temperature = 1.0}, SamplingOptions{.temperature = 0.5, .top_k = 3},
                                    SamplingOptions{.temperature = 2.0, .top_p = 0.6},
                                    SamplingOptions{.temperature = 0.8, .top_k = 4, .top_p = 0.95}}) {
    const std::vector<double> got = target_distribution(logits, so), want = reference_distribution(logits, so);
    for (size_t i = 0; i < logits.size(); ++i) EXPECT_NEAR(got[i], want[i], 1e-12) << i;
  }
  // Greedy: one-hot on the lowest id among the maxima.
  const std::vector<double> g = target_distribution(logits, {.temperature = 0});
  EXPECT_EQ(g, (std::vector<double>{0, 1, 0, 0, 0, 0}));
}

}  // namespace
}  // namespace lmforge::infer
