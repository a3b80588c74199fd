// Sampling, KV-cache generation and scoring.
#include <gtest/gtest.h>

#include <cmath>
#include <fstream>

#include "infer/generate.h"
#include "infer/sampling.h"
#include "infer/score.h"
#include "nn/model_test_util.h"

namespace lmforge::infer {
namespace {

std::vector<float> random_logits(uint64_t seed, int64_t v = 50) {
  Generator g(seed);
  return to_vector<float>(randn({v}, g, DType::F32, Device::cpu(), 0, 2));
}

TEST(Sampling, GreedyIsTheArgmaxAndTopKOneEqualsGreedy) {
  for (uint64_t seed = 0; seed < 20; ++seed) {
    const auto logits = random_logits(seed);
    const int64_t argmax = std::max_element(logits.begin(), logits.end()) - logits.begin();
    TokenSampler greedy({.temperature = 0}, seed), top1({.temperature = 1.5, .top_k = 1}, seed + 100);
    EXPECT_EQ(greedy.sample(logits), argmax);
    EXPECT_EQ(top1.sample(logits), argmax);
  }
  const std::vector<float> tie = {1.f, 3.f, 3.f, 0.f};
  TokenSampler g({.temperature = 0}, 1);
  EXPECT_EQ(g.sample(tie), 1);
}

TEST(Sampling, FrequenciesFollowTheTemperedDistribution) {
  const std::vector<float> logits = {0.f, 1.f, 2.f, -1.f};
  const double t = 0.7;
  TokenSampler s({.temperature = t}, 3);
  std::vector<int> counts(4);
  const int n = 40000;
  for (int i = 0; i < n; ++i) ++counts[size_t(s.sample(logits))];
  double z = 0;
  for (float l : logits) z += std::exp(l / t);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(counts[i] / double(n), std::exp(logits[i] / t) / z, 0.01) << i;
}

TEST(Sampling, TopKAndTopPRestrictTheCandidates) {
  const std::vector<float> logits = {0.f, 5.f, 4.9f, 4.8f, -3.f, 1.f};
  TokenSampler k2({.temperature = 1, .top_k = 2}, 9);
  for (int i = 0; i < 500; ++i) {
    const int64_t id = k2.sample(logits);
    EXPECT_TRUE(id == 1 || id == 2) << id;
  }
  // The three top tokens hold ~0.98 of the mass: top_p = 0.5 keeps the first two (0.36, 0.69).
  TokenSampler p({.temperature = 1, .top_p = 0.5}, 9);
  for (int i = 0; i < 500; ++i) {
    const int64_t id = p.sample(logits);
    EXPECT_TRUE(id == 1 || id == 2) << id;
  }
  TokenSampler tiny({.temperature = 1, .top_p = 1e-6}, 9);
  EXPECT_EQ(tiny.sample(logits), 1);
  EXPECT_THROW(TokenSampler({.temperature = -1}, 0), Error);
  EXPECT_THROW(TokenSampler({.top_p = 0}, 0), Error);
}

TEST(Sampling, SameSeedSameSamples) {
  const auto logits = random_logits(5);
  TokenSampler a({.temperature = 1, .top_k = 10, .top_p = 0.9}, 77), b({.temperature = 1, .top_k = 10, .top_p = 0.9}, 77);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(a.sample(logits), b.sample(logits));
}

TEST(Generate, TopKOneEqualsGreedyAndCacheMatchesRecomputation) {
  nn::ModelConfig c = test::tiny_config();
  c.context_length = 16;
  auto model = test::make_model(c);
  model->set_training(false);
  const std::vector<uint32_t> prompt = {1, 5, 2};
  const auto greedy = generate(*model, prompt, {.max_new_tokens = 10, .sampling = {.temperature = 0}});
  const auto top1 = generate(*model, prompt, {.max_new_tokens = 10, .sampling = {.temperature = 0.8, .top_k = 1}, .seed = 4});
  EXPECT_EQ(greedy, top1);
  ASSERT_EQ(greedy.size(), 10u);
  // Greedy without a cache: rerun the whole sequence for every new token.
  std::vector<int64_t> seq(prompt.begin(), prompt.end());
  NoGradGuard ng;
  for (int i = 0; i < 10; ++i) {
    const Tensor logits = model->forward(from_vector<int64_t>(seq, {1, int64_t(seq.size())}));
    const auto last = to_vector<float>(logits.narrow(1, int64_t(seq.size()) - 1, 1));
    seq.push_back(std::max_element(last.begin(), last.end()) - last.begin());
    EXPECT_EQ(uint32_t(seq.back()), greedy[size_t(i)]) << "token " << i;
  }
  // Stops at the stop token and at a full context.
  const auto stopped = generate(*model, prompt, {.max_new_tokens = 10, .sampling = {.temperature = 0},
                                                 .stop_token = greedy[2]});
  EXPECT_EQ(stopped.size(), size_t(std::find(greedy.begin(), greedy.end(), greedy[2]) - greedy.begin()) + 1);
  const auto full = generate(*model, prompt, {.max_new_tokens = 100, .sampling = {.temperature = 0}});
  EXPECT_EQ(full.size(), 16u - 3u + 1u);  // the last token is chosen from the logits at position 15
}

TEST(Generate, IncrementalLogitsMatchFullForward) {
  nn::ModelConfig c = test::tiny_config();
  auto model = test::make_model(c, DType::F64);
  model->set_training(false);
  const std::vector<uint32_t> ids = {3, 1, 4, 1, 5, 9, 2, 6};
  const auto inc = incremental_logits(*model, ids, 2);
  NoGradGuard ng;
  std::vector<int64_t> v(ids.begin(), ids.end());
  const auto full = to_vector<float>(model->forward(from_vector<int64_t>(v, {1, 8})));
  for (size_t t = 0; t < 8; ++t)
    for (size_t k = 0; k < 11; ++k) ASSERT_NEAR(inc[t][k], full[t * 11 + k], 1e-6) << t << "," << k;
}

TEST(Score, LogProbabilitiesOfEachTokenGivenItsPrefix) {
  nn::ModelConfig c = test::tiny_config();
  auto model = test::make_model(c, DType::F64);
  const std::vector<int64_t> ids = {2, 7, 1, 8, 2};
  const std::vector<double> lp = score_tokens(*model, ids);
  ASSERT_EQ(lp.size(), 4u);
  NoGradGuard ng;
  const Tensor ls = log_softmax(model->forward(from_vector<int64_t>(ids, {1, 5})), -1);
  const auto all = to_vector<double>(ls);
  for (size_t i = 0; i < 4; ++i) EXPECT_NEAR(lp[i], all[i * 11 + size_t(ids[i + 1])], 1e-12);
  EXPECT_TRUE(score_tokens(*model, std::vector<int64_t>{4}).empty());
  EXPECT_THROW(score_tokens(*model, std::vector<int64_t>{1, 11}), Error);
  EXPECT_THROW(score_tokens(*model, std::vector<int64_t>(10, 1)), Error);
}

TEST(Score, ChoicesFileErrorsNameTheLine) {
  const std::string p = test::temp_dir("choices") + ".jsonl";
  {
    std::ofstream f(p);
    f << R"({"context": "a", "options": ["b", "c"], "answer": 1})" << "\n\n";
    f << R"({"context": "a", "options": ["b"], "answer": 3})" << "\n";
  }
  try {
    read_choices_jsonl(p);
    FAIL();
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find(p + ":3"), std::string::npos) << e.what();
  }
  std::filesystem::remove(p);
}

TEST(Utf8Stream, HoldsIncompleteCharacters) {
  Utf8Stream s;
  const std::string euro = "\xE2\x82\xAC";
  EXPECT_EQ(s.push("a" + euro.substr(0, 1)), "a");
  EXPECT_EQ(s.push(euro.substr(1, 1)), "");
  EXPECT_EQ(s.push(euro.substr(2) + "b"), euro + "b");
  EXPECT_EQ(s.push("\xFF"), "\xEF\xBF\xBD");
  EXPECT_EQ(s.push("\xE2\x82"), "");
  EXPECT_EQ(s.flush(), "\xEF\xBF\xBD");
}

}  // namespace
}  // namespace lmforge::infer
