#include "infer/score.h"

#include <fstream>
#include <nlohmann/json.hpp>

#include "ops/ops.h"

namespace lmforge::infer {

std::vector<double> score_tokens(const nn::Transformer& model0, std::span<const int64_t> ids) {
  auto& model = const_cast<nn::Transformer&>(model0);
  const auto& c = model.config();
  // Every id is checked, also in a sequence too short to score: a bad id is an error, not [].
  for (size_t i = 0; i < ids.size(); ++i)
    LF_CHECK(ids[i] >= 0 && ids[i] < c.vocab_size, "token id {} at position {} is outside the vocabulary [0, {})",
             ids[i], i, c.vocab_size);
  if (ids.size() < 2) return {};
  const int64_t t = int64_t(ids.size()) - 1;
  LF_CHECK(t <= c.context_length, "a sequence of {} tokens needs {} positions but the model's context_length is {}",
           ids.size(), t, c.context_length);
  const bool was_training = model.training();
  model.set_training(false);
  NoGradGuard no_grad;
  const Tensor x = from_vector<int64_t>(ids.subspan(0, size_t(t)), {1, t}, model.device());
  const Tensor y = from_vector<int64_t>(ids.subspan(1, size_t(t)), {1, t}, model.device());
  const std::vector<double> nll = to_vector<double>(model.token_nll(x, y));
  model.set_training(was_training);
  std::vector<double> out(nll.size());
  for (size_t i = 0; i < nll.size(); ++i) out[i] = -nll[i];
  return out;
}

std::vector<ChoiceItem> read_choices_jsonl(const std::string& path) {
  std::ifstream in(path);
  LF_CHECK(in.good(), "cannot open {}", path);
  std::vector<ChoiceItem> items;
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    const std::string at = fmt::format("{}:{}", path, no);
    nlohmann::json j;
    try {
      j = nlohmann::json::parse(line);
    } catch (const nlohmann::json::exception& e) {
      throw Error(fmt::format("{}: not valid JSON ({})", at, e.what()));
    }
    LF_CHECK(j.is_object(), "{}: expected an object {{\"context\", \"options\", \"answer\"}}", at);
    LF_CHECK(j.contains("context") && j["context"].is_string(), "{}: \"context\" must be a string", at);
    LF_CHECK(j.contains("options") && j["options"].is_array() && !j["options"].empty(),
             "{}: \"options\" must be a non-empty array of strings", at);
    LF_CHECK(j.contains("answer") && j["answer"].is_number_integer(), "{}: \"answer\" must be an integer index", at);
    ChoiceItem item;
    item.context = j["context"].get<std::string>();
    for (const auto& o : j["options"]) {
      LF_CHECK(o.is_string(), "{}: every option must be a string", at);
      item.options.push_back(o.get<std::string>());
    }
    item.answer = j["answer"].get<int64_t>();
    LF_CHECK(item.answer >= 0 && item.answer < int64_t(item.options.size()),
             "{}: answer {} is not an index into the {} options", at, item.answer, item.options.size());
    items.push_back(std::move(item));
  }
  LF_CHECK(!items.empty(), "{}: no items", path);
  return items;
}

ChoiceResult evaluate_choices(const nn::Transformer& model, const tok::Tokenizer& tokenizer,
                              const std::vector<ChoiceItem>& items, LengthNorm norm) {
  ChoiceResult r;
  const int64_t max_len = model.config().context_length + 1;
  const std::optional<uint32_t> eot = tokenizer.find_eot_id();
  for (const auto& item : items) {
    std::vector<uint32_t> ctx = tokenizer.encode_ordinary(item.context);
    if (ctx.empty()) {
      LF_CHECK(eot.has_value(), "an item has an empty context and the tokenizer has no end-of-text token to start "
               "from");
      ctx.push_back(*eot);
    }
    double best = -INFINITY;
    int64_t best_i = 0;
    for (size_t o = 0; o < item.options.size(); ++o) {
      const std::vector<uint32_t> opt = tokenizer.encode_ordinary(item.options[o]);
      LF_CHECK(!opt.empty(), "option {} (\"{}\") encodes to no tokens", o, item.options[o]);
      std::vector<int64_t> ids(ctx.begin(), ctx.end());
      ids.insert(ids.end(), opt.begin(), opt.end());
      LF_CHECK(int64_t(opt.size()) < max_len, "option {} has {} tokens, more than the context holds", o, opt.size());
      if (int64_t(ids.size()) > max_len) ids.erase(ids.begin(), ids.end() - max_len);
      const std::vector<double> lp = score_tokens(model, ids);
      double total = 0;
      for (size_t i = lp.size() - opt.size(); i < lp.size(); ++i) total += lp[i];
      double denom = 1;
      if (norm == LengthNorm::Tokens) denom = double(opt.size());
      if (norm == LengthNorm::Bytes) denom = double(std::max<size_t>(item.options[o].size(), 1));
      const double score = total / denom;
      if (score > best) best = score, best_i = int64_t(o);
    }
    r.predictions.push_back(best_i);
    ++r.n_items;
    if (best_i == item.answer) ++r.n_correct;
  }
  r.accuracy = r.n_items ? double(r.n_correct) / double(r.n_items) : 0;
  return r;
}

}  // namespace lmforge::infer
