// Inference at the edges of its options: near-zero temperatures approach greedy, a huge
// --max-new-tokens is bounded by the context, and an id outside the vocabulary is an error even
// in a sequence too short to score.
#include <gtest/gtest.h>

#include <limits>

#include "infer/generate.h"
#include "infer/sampling.h"
#include "infer/score.h"
#include "nn/model_test_util.h"

namespace lmforge::infer {
namespace {

TEST(SamplingLimits, NearZeroTemperaturesPickTheArgmax) {
  const std::vector<float> logits = {0.5f, -3.f, 2.25f, 2.f, -40.f};
  // 1e-320 is subnormal: 1 / 1e-320 is inf, which used to turn every probability into NaN and
  // fall through to the least likely candidate.
  for (double t : {1e-3, 1e-19, 1e-300, 1e-320, std::numeric_limits<double>::denorm_min()}) {
    SCOPED_TRACE(t);
    for (uint64_t seed = 0; seed < 50; ++seed) {
      TokenSampler s({.temperature = t}, seed);
      EXPECT_EQ(s.sample(logits), 2);
    }
    TokenSampler k({.temperature = t, .top_k = 3, .top_p = 0.5}, 9);
    EXPECT_EQ(k.sample(logits), 2);
  }
  // Equal maxima at a near-zero temperature: one of them, never another token.
  const std::vector<float> tie = {1.f, 3.f, 0.f, 3.f};
  for (uint64_t seed = 0; seed < 50; ++seed) {
    TokenSampler s({.temperature = 1e-320}, seed);
    const int64_t id = s.sample(tie);
    EXPECT_TRUE(id == 1 || id == 3) << id;
  }
}

TEST(GenerateLimits, HugeMaxNewTokensStopsAtTheFullContext) {
  nn::ModelConfig c = test::tiny_config();
  c.context_length = 16;
  auto model = test::make_model(c);
  model->set_training(false);
  const std::vector<uint32_t> prompt = {1, 5, 2};
  // prompt.size() + INT64_MAX overflowed to a negative capacity and gave one token.
  const auto out = generate(*model, prompt, {.max_new_tokens = std::numeric_limits<int64_t>::max(),
                                             .sampling = {.temperature = 0}});
  const auto bounded = generate(*model, prompt, {.max_new_tokens = 100, .sampling = {.temperature = 0}});
  EXPECT_EQ(out.size(), 16u - 3u + 1u);
  EXPECT_EQ(out, bounded);
}

TEST(ScoreLimits, AnOutOfRangeIdIsAnErrorInAnyLength) {
  nn::ModelConfig c = test::tiny_config();
  auto model = test::make_model(c);
  const int64_t v = c.vocab_size;
  EXPECT_THROW(score_tokens(*model, std::vector<int64_t>{v}), Error);
  EXPECT_THROW(score_tokens(*model, std::vector<int64_t>{-1}), Error);
  EXPECT_TRUE(score_tokens(*model, std::vector<int64_t>{v - 1}).empty());
  EXPECT_TRUE(score_tokens(*model, std::vector<int64_t>{}).empty());
}

}  // namespace
}  // namespace lmforge::infer
