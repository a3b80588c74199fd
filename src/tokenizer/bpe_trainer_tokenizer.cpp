#include "tokenizer/bpe_trainer_tokenizer.h"

#include <algorithm>

#include "core/error.h"
#include "tokenizer/known_encodings.h"

namespace lmforge::tok {

Pretokenizer pretokenizer_for_pattern(std::string_view name_or_regex) {
  LF_CHECK(!name_or_regex.empty(), "empty pattern (give a name: {}, or a regex)", known_encoding_names());
  const bool is_word = std::all_of(name_or_regex.begin(), name_or_regex.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
  });
  if (is_word) {
    LF_CHECK(find_known_encoding(name_or_regex) != nullptr, "unknown pattern name '{}' (known: {}; or give a regex)",
             name_or_regex, known_encoding_names());
    return Pretokenizer::named(name_or_regex);
  }
  return Pretokenizer::regex(std::string(name_or_regex));
}

SplitFn split_fn(const Pretokenizer& pretokenizer) {
  return [pretokenizer](std::string_view text, const std::function<void(std::string_view)>& emit) {
    pretokenizer.for_each_piece(text, emit);
  };
}

Tokenizer tokenizer_from_model(const BpeModel& model, const std::vector<std::string>& special_tokens,
                               const Pretokenizer& pretokenizer) {
  return Tokenizer::from_merges(model.tokens, special_tokens, pretokenizer);
}

TrainedTokenizer train_tokenizer(const std::vector<std::string>& paths, const TrainerOptions& options,
                                 std::string_view pattern) {
  const Pretokenizer pt = pretokenizer_for_pattern(pattern);
  TrainerReport report;
  BpeModel model = train_bpe(paths, split_fn(pt), options, &report);
  Tokenizer tok = tokenizer_from_model(model, options.special_tokens, pt);
  return TrainedTokenizer{std::move(tok), std::move(model), report};
}

}  // namespace lmforge::tok
