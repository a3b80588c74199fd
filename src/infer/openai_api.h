// The OpenAI-compatible request and response bodies of `lmforge serve` (infer/server.h), apart
// from HTTP: parsing and validating a /v1/completions or /v1/chat/completions request, the text
// that streams out of generated tokens (stop strings held back until they cannot match), and the
// error object.
//
// Supported request fields: model, prompt (a string, or an array of one string) or messages
// (role system | user | assistant, content a string or an array of {"type": "text"} parts),
// max_tokens / max_completion_tokens, temperature [0, 2], top_p (0, 1], top_k (an extension, 0:
// off), stop (a string or up to 4), seed, stream, stream_options.include_usage, logprobs (chat: a
// boolean with top_logprobs 0..20 alternatives per token; completions: an integer 0..5, the chosen
// token's log-probability and that many alternatives per token), n (1),
// user (ignored). Anything else of the wrong type is a 400 naming the field.
#pragma once

#include <cstdint>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "infer/batch_generate.h"
#include "infer/chat_template.h"
#include "infer/generate.h"
#include "infer/sampling.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::infer {

// An error answered to the client as {"error": {"message", "type", "param", "code"}}.
struct ApiError : std::runtime_error {
  ApiError(int status, std::string message, std::string param = "", std::string code = "",
           std::string type = "invalid_request_error");
  int status;
  std::string param, code, type;
  std::string body() const;  // the JSON error object
};

// What a request is checked against.
struct ApiModel {
  std::string name;  // the id /v1/models lists and requests must name
  const tok::Tokenizer* tokenizer = nullptr;
  const ChatTemplate* chat_template = nullptr;
  int64_t context_length = 0;
  int64_t vocab_size = 0;
};

struct CompletionRequest {
  bool chat = false;
  std::vector<uint32_t> prompt;  // token ids, the chat template applied
  int64_t max_tokens = 16;
  SamplingOptions sampling;
  std::optional<uint64_t> seed;
  std::vector<std::string> stop;       // stop strings, the chat template's included
  std::vector<uint32_t> stop_tokens;   // <|endoftext|>, the chat template's end token
  bool stream = false;
  bool include_usage = false;
  bool logprobs = false;
  int64_t top_logprobs = 0;  // alternatives per token (chat: top_logprobs; completions: the logprobs number)
};

// Throws ApiError (400, or 404 for a model that is not served) naming the field.
CompletionRequest parse_completion_request(std::string_view body, bool chat, const ApiModel& model);

// True when `s` is valid UTF-8; otherwise `bad_at` gets the offset of the first bad byte.
bool valid_utf8(std::string_view s, size_t* bad_at = nullptr);

// Turns generated tokens into text: whole UTF-8 characters only, cut at the first stop string
// (which is not part of the text), and, while streaming, holding back the tail that could still
// be the start of a stop string.
class CompletionText {
 public:
  CompletionText(const tok::Tokenizer& tokenizer, std::vector<std::string> stop);
  // Adds a token; returns the text that may be sent now. After a stop string, stopped() is true
  // and further tokens are ignored.
  std::string push(uint32_t token);
  // The rest at the end (nothing held back any more).
  std::string finish();
  bool stopped() const { return stopped_; }

 private:
  const tok::Tokenizer& tokenizer_;
  std::vector<std::string> stop_;
  size_t longest_stop_ = 0;
  Utf8Stream utf8_;
  std::string held_;  // complete characters not yet sent
  bool stopped_ = false;
};

}  // namespace lmforge::infer
