#include "train/evaluate.h"

#include <cmath>

#include "ops/ops.h"

namespace lmforge::train {

std::vector<uint32_t> token_byte_lengths(const tok::Tokenizer& tokenizer, int64_t vocab_size) {
  std::vector<uint32_t> out(size_t(vocab_size), 0);
  for (int64_t id = 0; id < vocab_size; ++id) {
    const uint32_t u = uint32_t(id);
    if (tokenizer.has_id(u) && !tokenizer.is_special(u)) out[size_t(id)] = uint32_t(tokenizer.token_bytes(u).size());
  }
  return out;
}

EvalResult evaluate(const nn::Transformer& model0, ValidationBatches& batches, int64_t batch_size, int64_t seq_len,
                    const std::vector<uint32_t>* token_bytes) {
  auto& model = const_cast<nn::Transformer&>(model0);
  const bool was_training = model.training();
  model.set_training(false);
  NoGradGuard no_grad;
  batches.reset();
  std::vector<int64_t> x(size_t(batch_size * seq_len)), y(size_t(batch_size * seq_len));
  double nll = 0;
  EvalResult r;
  for (;;) {
    const int64_t rows = batches.next(x, y);
    if (rows == 0) break;
    const size_t n = size_t(rows * seq_len);
    Tensor xs = from_vector<int64_t>(std::span<const int64_t>(x.data(), n), {rows, seq_len}, model.device());
    Tensor ys = from_vector<int64_t>(std::span<const int64_t>(y.data(), n), {rows, seq_len}, model.device());
    nll += sum(model.token_nll(xs, ys).to(DType::F64)).item();
    for (size_t i = 0; i < n; ++i) {
      if (y[i] == kIgnoreIndex) continue;
      ++r.tokens;
      if (token_bytes && size_t(y[i]) < token_bytes->size()) r.bytes += (*token_bytes)[size_t(y[i])];
    }
  }
  model.set_training(was_training);
  LF_CHECK(r.tokens > 0, "evaluation: the validation shards ({}) hold no tokens to predict (a shard needs at least "
           "2 tokens)", batches.shards().describe());
  r.loss = nll / double(r.tokens);
  r.perplexity = std::exp(r.loss);
  if (token_bytes && r.bytes > 0) r.bits_per_byte = nll / std::log(2.0) / double(r.bytes);
  return r;
}

}  // namespace lmforge::train
