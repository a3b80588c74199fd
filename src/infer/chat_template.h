// Chat prompts: a list of messages (role, content) turned into the token ids the model continues.
//
// A template is the text of one message with {role} and {content} in it, e.g. ChatML's
//   "<|im_start|>{role}\n{content}<|im_end|>\n"
// Each message is the template with its role and content filled in; the reply is prompted by the
// template's text before {content} with the role "assistant", and it ends where the text after
// {content} would begin (that text, trimmed of whitespace, is the reply's stop string, or stop
// token when it is a special token). Template text may hold the tokenizer's special tokens, which
// encode as specials; message contents always encode as ordinary text, so a user cannot inject a
// special token. Conversations start after <|endoftext|> when the tokenizer has it (documents
// start there in the training shards).
//
// for_tokenizer() picks ChatML when the tokenizer has <|im_start|> and <|im_end|>, else the
// plain-text template "{role}: {content}\n" (one line per message: the reply ends at a newline).
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace lmforge::infer {

struct ChatMessage {
  std::string role;  // system | user | assistant
  std::string content;
};

class ChatTemplate {
 public:
  static ChatTemplate for_tokenizer(const tok::Tokenizer& tokenizer);
  // Error when `format` lacks {role} or {content}, or has {content} before {role}.
  static ChatTemplate parse(std::string_view format, const tok::Tokenizer& tokenizer);

  std::vector<uint32_t> encode(const std::vector<ChatMessage>& messages) const;
  // What ends the reply: a special token's id, or a stop string (both may be absent).
  std::optional<uint32_t> stop_token() const { return stop_token_; }
  const std::string& stop_string() const { return stop_string_; }
  const std::string& format() const { return format_; }

 private:
  ChatTemplate(std::string format, const tok::Tokenizer& tokenizer);
  std::string format_;
  const tok::Tokenizer* tokenizer_;
  std::optional<uint32_t> start_;  // <|endoftext|>, when the tokenizer has it
  std::optional<uint32_t> stop_token_;
  std::string stop_string_;
};

}  // namespace lmforge::infer
