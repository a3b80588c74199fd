#include "infer/chat_template.h"

#include "core/error.h"

namespace lmforge::infer {

namespace {

std::string replace_all(std::string s, std::string_view from, std::string_view to) {
  for (size_t at = s.find(from); at != std::string::npos; at = s.find(from, at + to.size())) s.replace(at, from.size(), to);
  return s;
}

std::string trimmed(std::string_view s) {
  const size_t b = s.find_first_not_of(" \t\r\n");
  if (b == std::string_view::npos) return "";
  return std::string(s.substr(b, s.find_last_not_of(" \t\r\n") - b + 1));
}

}  // namespace

ChatTemplate ChatTemplate::for_tokenizer(const tok::Tokenizer& tokenizer) {
  if (tokenizer.special_id("<|im_start|>") && tokenizer.special_id("<|im_end|>"))
    return ChatTemplate("<|im_start|>{role}\n{content}<|im_end|>\n", tokenizer);
  return ChatTemplate("{role}: {content}\n", tokenizer);
}

ChatTemplate ChatTemplate::parse(std::string_view format, const tok::Tokenizer& tokenizer) {
  const size_t role = format.find("{role}"), content = format.find("{content}");
  LF_CHECK(role != std::string_view::npos && content != std::string_view::npos,
           "--chat-template '{}' must contain {{role}} and {{content}}", format);
  LF_CHECK(role < content, "--chat-template '{}': {{role}} must come before {{content}}", format);
  return ChatTemplate(std::string(format), tokenizer);
}

ChatTemplate::ChatTemplate(std::string format, const tok::Tokenizer& tokenizer)
    : format_(std::move(format)), tokenizer_(&tokenizer) {
  start_ = tokenizer.special_id("<|endoftext|>");
  const std::string after = trimmed(std::string_view(format_).substr(format_.find("{content}") + 9));
  stop_token_ = tokenizer.special_id(after);
  if (!stop_token_) stop_string_ = after.empty() ? std::string_view(format_).substr(format_.find("{content}") + 9) : after;
}

std::vector<uint32_t> ChatTemplate::encode(const std::vector<ChatMessage>& messages) const {
  std::vector<uint32_t> ids;
  if (start_) ids.push_back(*start_);
  const size_t content_at = format_.find("{content}");
  const std::string before = format_.substr(0, content_at), after = format_.substr(content_at + 9);
  const auto specials = tok::SpecialPolicy::all();
  for (const ChatMessage& m : messages) {
    tokenizer_->encode_append(replace_all(before, "{role}", m.role), ids, specials);
    tokenizer_->encode_ordinary_append(m.content, ids);
    tokenizer_->encode_append(replace_all(after, "{role}", m.role), ids, specials);
  }
  tokenizer_->encode_append(replace_all(before, "{role}", "assistant"), ids, specials);
  return ids;
}

}  // namespace lmforge::infer
