#include "infer/openai_api.h"

#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

namespace lmforge::infer {

using json = nlohmann::json;

ApiError::ApiError(int status_, std::string message, std::string param_, std::string code_, std::string type_)
    : std::runtime_error(std::move(message)),
      status(status_),
      param(std::move(param_)),
      code(std::move(code_)),
      type(std::move(type_)) {}

std::string ApiError::body() const {
  json e{{"message", what()}, {"type", type}};
  e["param"] = param.empty() ? json(nullptr) : json(param);
  e["code"] = code.empty() ? json(nullptr) : json(code);
  return json{{"error", e}}.dump(-1, ' ', false, json::error_handler_t::replace);
}

bool valid_utf8(std::string_view s, size_t* bad_at) {
  size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    int n = c < 0x80 ? 1 : c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
    bool ok = n > 0 && i + size_t(n) <= s.size();
    for (int k = 1; ok && k < n; ++k) ok = (static_cast<unsigned char>(s[i + size_t(k)]) & 0xC0) == 0x80;
    if (ok && n >= 3) {
      const auto c1 = static_cast<unsigned char>(s[i + 1]);
      ok = !(c == 0xE0 && c1 < 0xA0) && !(c == 0xED && c1 >= 0xA0) && !(c == 0xF0 && c1 < 0x90) &&
           !(c == 0xF4 && c1 >= 0x90);
    }
    if (!ok) {
      if (bad_at) *bad_at = i;
      return false;
    }
    i += size_t(n);
  }
  return true;
}

namespace {

ApiError bad(const std::string& param, const std::string& message) { return ApiError(400, message, param); }

const json* field(const json& body, const char* name) {
  const auto it = body.find(name);
  return it == body.end() || it->is_null() ? nullptr : &*it;
}

double number(const json& body, const char* name, double fallback, double lo, double hi, bool lo_open = false) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number()) throw bad(name, fmt::format("'{}' must be a number, got {}", name, v->dump()));
  const double x = v->get<double>();
  if (!std::isfinite(x) || x < lo || x > hi || (lo_open && x == lo))
    throw bad(name, fmt::format("'{}' must be in {}{}, {}], got {}", name, lo_open ? "(" : "[", lo, hi, x));
  return x;
}

int64_t integer(const json& body, const char* name, int64_t fallback, int64_t lo, int64_t hi) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_number_integer()) throw bad(name, fmt::format("'{}' must be an integer, got {}", name, v->dump()));
  if (v->is_number_unsigned() && v->get<uint64_t>() > uint64_t(INT64_MAX))
    throw bad(name, fmt::format("'{}' = {} is too large", name, v->dump()));
  const int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) throw bad(name, fmt::format("'{}' must be in [{}, {}], got {}", name, lo, hi, x));
  return x;
}

bool boolean(const json& body, const char* name, bool fallback) {
  const json* v = field(body, name);
  if (!v) return fallback;
  if (!v->is_boolean()) throw bad(name, fmt::format("'{}' must be true or false, got {}", name, v->dump()));
  return v->get<bool>();
}

std::string message_content(const json& m, size_t i) {
  const std::string param = fmt::format("messages[{}].content", i);
  const json* c = field(m, "content");
  if (!c) throw bad(param, fmt::format("'{}' is missing", param));
  if (c->is_string()) return c->get<std::string>();
  if (!c->is_array()) throw bad(param, fmt::format("'{}' must be a string or an array of text parts", param));
  std::string text;
  for (const json& part : *c) {
    if (!part.is_object() || part.value("type", "") != "text" || !part.contains("text") || !part["text"].is_string())
      throw bad(param, fmt::format("'{}': only {{\"type\": \"text\", \"text\": ...}} parts are supported", param));
    text += part["text"].get<std::string>();
  }
  return text;
}

}  // namespace

CompletionRequest parse_completion_request(std::string_view text, bool chat, const ApiModel& model) {
  size_t bad_at = 0;
  if (!valid_utf8(text, &bad_at))
    throw ApiError(400, fmt::format("the request body is not valid UTF-8 (byte {})", bad_at));
  json body;
  try {
    body = json::parse(text);
  } catch (const json::parse_error& e) {
    throw ApiError(400, fmt::format("the request body is not valid JSON: {}", e.what()));
  }
  if (!body.is_object()) throw ApiError(400, "the request body must be a JSON object");
  CompletionRequest r;
  r.chat = chat;
  const json* name = field(body, "model");
  if (!name) throw bad("model", "'model' is missing");
  if (!name->is_string()) throw bad("model", "'model' must be a string");
  if (name->get<std::string>() != model.name)
    throw ApiError(404, fmt::format("the model '{}' does not exist; this server serves '{}'",
                                    name->get<std::string>(), model.name),
                   "model", "model_not_found");
  if (integer(body, "n", 1, 1, 1) != 1) throw bad("n", "'n' must be 1");
  const tok::Tokenizer& tok = *model.tokenizer;
  if (chat) {
    const json* messages = field(body, "messages");
    if (!messages || !messages->is_array() || messages->empty())
      throw bad("messages", "'messages' must be a non-empty array of {\"role\", \"content\"}");
    std::vector<ChatMessage> ms;
    for (size_t i = 0; i < messages->size(); ++i) {
      const json& m = (*messages)[i];
      if (!m.is_object()) throw bad(fmt::format("messages[{}]", i), fmt::format("'messages[{}]' must be an object", i));
      const std::string role = m.value("role", "");
      if (role != "system" && role != "user" && role != "assistant")
        throw bad(fmt::format("messages[{}].role", i),
                  fmt::format("'messages[{}].role' must be system, user or assistant, got '{}'", i, role));
      ms.push_back({role, message_content(m, i)});
    }
    r.prompt = model.chat_template->encode(ms);
    if (model.chat_template->stop_token()) r.stop_tokens.push_back(*model.chat_template->stop_token());
    if (!model.chat_template->stop_string().empty()) r.stop.push_back(model.chat_template->stop_string());
  } else {
    const json* p = field(body, "prompt");
    std::string prompt;
    if (p && p->is_string()) prompt = p->get<std::string>();
    else if (p && p->is_array() && p->size() == 1 && (*p)[0].is_string()) prompt = (*p)[0].get<std::string>();
    else throw bad("prompt", "'prompt' must be a string (or an array of one string)");
    // Documents in the training shards start after <|endoftext|>, so a prompt starts there too.
    if (const auto eot = tok.special_id("<|endoftext|>")) r.prompt.push_back(*eot);
    tok.encode_ordinary_append(prompt, r.prompt);
    if (r.prompt.empty()) throw bad("prompt", "'prompt' is empty and the tokenizer has no <|endoftext|> to start from");
  }
  if (const auto eot = tok.special_id("<|endoftext|>")) r.stop_tokens.push_back(*eot);
  for (uint32_t id : r.prompt)
    if (int64_t(id) >= model.vocab_size)
      throw bad(chat ? "messages" : "prompt", fmt::format("token id {} is outside the model's vocabulary", id));
  const int64_t n_prompt = int64_t(r.prompt.size());
  if (n_prompt >= model.context_length)
    throw ApiError(400,
                   fmt::format("the prompt is {} tokens long but the model's context is {} tokens (at most {} prompt "
                               "tokens, leaving room for one new token)",
                               n_prompt, model.context_length, model.context_length - 1),
                   chat ? "messages" : "prompt", "context_length_exceeded");
  const int64_t room = model.context_length - n_prompt;
  const char* max_name = field(body, "max_completion_tokens") ? "max_completion_tokens" : "max_tokens";
  const json* max_field = field(body, max_name);
  r.max_tokens = integer(body, max_name, chat ? room : std::min<int64_t>(16, room), 1, INT64_MAX);
  if (max_field && r.max_tokens > room)
    throw ApiError(400,
                   fmt::format("'{}' is {} but the prompt's {} tokens leave room for {} in the model's context of {}",
                               max_name, r.max_tokens, n_prompt, room, model.context_length),
                   max_name, "context_length_exceeded");
  r.sampling.temperature = number(body, "temperature", 1.0, 0.0, 2.0);
  r.sampling.top_p = number(body, "top_p", 1.0, 0.0, 1.0, true);
  r.sampling.top_k = integer(body, "top_k", 0, 0, model.vocab_size);
  if (field(body, "seed")) r.seed = uint64_t(integer(body, "seed", 0, INT64_MIN, INT64_MAX));
  if (const json* s = field(body, "stop")) {
    std::vector<std::string> stops;
    if (s->is_string()) stops.push_back(s->get<std::string>());
    else if (s->is_array() && s->size() <= 4 && std::all_of(s->begin(), s->end(), [](const json& x) { return x.is_string(); }))
      for (const json& x : *s) stops.push_back(x.get<std::string>());
    else throw bad("stop", "'stop' must be a string or an array of at most 4 strings");
    for (const auto& x : stops)
      if (x.empty()) throw bad("stop", "'stop' strings must not be empty");
    r.stop.insert(r.stop.end(), stops.begin(), stops.end());
  }
  r.stream = boolean(body, "stream", false);
  if (const json* so = field(body, "stream_options")) {
    if (!so->is_object()) throw bad("stream_options", "'stream_options' must be an object");
    r.include_usage = boolean(*so, "include_usage", false);
  }
  if (chat) {
    r.logprobs = boolean(body, "logprobs", false);
    r.top_logprobs = integer(body, "top_logprobs", 0, 0, kMaxTopLogprobs);
    if (r.top_logprobs > 0 && !r.logprobs)
      throw bad("top_logprobs", "'top_logprobs' requires 'logprobs' to be true");
  } else {
    // The legacy API: "logprobs": N asks for the chosen tokens' log-probabilities and N alternatives.
    const json* lp = field(body, "logprobs");
    r.logprobs = lp != nullptr;
    r.top_logprobs = integer(body, "logprobs", 0, 0, 5);
  }
  return r;
}

CompletionText::CompletionText(const tok::Tokenizer& tokenizer, std::vector<std::string> stop)
    : tokenizer_(tokenizer), stop_(std::move(stop)) {
  for (const auto& s : stop_) longest_stop_ = std::max(longest_stop_, s.size());
}

std::string CompletionText::push(uint32_t token) {
  if (stopped_) return "";
  // Special tokens (end of text, chat markers) are not text.
  if (!tokenizer_.is_special(token)) held_ += utf8_.push(tokenizer_.token_bytes(token));
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, held_.find(s));
  if (cut != std::string::npos) {
    stopped_ = true;
    std::string out = held_.substr(0, cut);
    held_.clear();
    return out;
  }
  // Keep the last longest_stop - 1 bytes (a stop string may begin there), on a character start.
  const size_t hold = longest_stop_ > 0 ? longest_stop_ - 1 : 0;
  size_t keep_from = held_.size() > hold ? held_.size() - hold : 0;
  while (keep_from > 0 && keep_from < held_.size() && (static_cast<unsigned char>(held_[keep_from]) & 0xC0) == 0x80)
    --keep_from;
  std::string out = held_.substr(0, keep_from);
  held_.erase(0, keep_from);
  return out;
}

std::string CompletionText::finish() {
  if (stopped_) return "";
  held_ += utf8_.flush();
  size_t cut = std::string::npos;
  for (const auto& s : stop_) cut = std::min(cut, held_.find(s));
  std::string out = held_.substr(0, cut);
  held_.clear();
  return out;
}

}  // namespace lmforge::infer
