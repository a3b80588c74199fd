// Held-out evaluation: mean next-token loss, perplexity and bits per byte over token shards.
//
// Bits per byte divide the summed loss (in bits) by the bytes of text the predicted tokens
// stand for: each target counts the length of its token's bytes in the tokenizer (special
// tokens count zero, since they are not text). That makes numbers comparable across
// tokenizers. Without a tokenizer there is no bits per byte.
#pragma once

#include <cstdint>
#include <optional>
#include <vector>

#include "nn/transformer.h"
#include "tokenizer/tokenizer.h"
#include "train/data_loader.h"

namespace lmforge::train {

struct EvalResult {
  double loss = 0;        // mean negative log-likelihood in nats per token
  double perplexity = 0;  // exp(loss)
  std::optional<double> bits_per_byte;
  uint64_t tokens = 0;    // predicted tokens
  uint64_t bytes = 0;     // text bytes they stand for (0 without a tokenizer)
};

// Bytes of text per id for ids below vocab_size (0 for special tokens and unknown ids).
std::vector<uint32_t> token_byte_lengths(const tok::Tokenizer& tokenizer, int64_t vocab_size);

// Runs the model (in evaluation mode, without autograd) over `batches` from the start.
// token_bytes: from token_byte_lengths(), or null.
EvalResult evaluate(const nn::Transformer& model, ValidationBatches& batches, int64_t batch_size, int64_t seq_len,
                    const std::vector<uint32_t>* token_bytes);

}  // namespace lmforge::train
