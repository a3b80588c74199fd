#include "infer/server.h"

#include "core/error.h"

#ifdef LMFORGE_WITH_HTTPLIB

#include <httplib.h>

#include <chrono>
#include <condition_variable>
#include <ctime>
#include <mutex>
#include <nlohmann/json.hpp>
#include <random>
#include <thread>

#include "infer/openai_api.h"

namespace lmforge::infer {

namespace {

using json = nlohmann::json;
using Clock = std::chrono::steady_clock;

std::string dump(const json& j) { return j.dump(-1, ' ', false, json::error_handler_t::replace); }

// What the engine thread has produced for one request and its handler has not sent yet.
struct Pending {
  using Token = GeneratedToken;
  std::mutex mutex;
  std::condition_variable changed;
  std::string text;           // new text, not yet taken
  std::vector<Token> tokens;  // new tokens (with logprobs requested), not yet taken
  int64_t completion_tokens = 0;
  bool done = false;
  FinishReason reason = FinishReason::Length;
};

// A token's bytes as the list of numbers the chat API's logprobs carry.
std::vector<int> byte_values(const std::string& bytes) {
  std::vector<int> values;
  for (const char c : bytes) values.push_back(static_cast<unsigned char>(c));
  return values;
}

const char* finish_reason_name(FinishReason r) { return r == FinishReason::Length ? "length" : "stop"; }

}  // namespace

bool server_available() { return true; }

struct Server::Impl {
  Impl(const nn::Transformer& model, const tok::Tokenizer& tokenizer, ServerOptions options)
      : tok(tokenizer),
        o(std::move(options)),
        chat(o.chat_template.empty() ? ChatTemplate::for_tokenizer(tokenizer)
                                     : ChatTemplate::parse(o.chat_template, tokenizer)),
        api{.name = o.model_name, .tokenizer = &tokenizer, .chat_template = &chat,
            .context_length = model.config().context_length, .vocab_size = model.config().vocab_size},
        gen(model, o.batch),
        seed_base(std::random_device{}()) {
    LF_CHECK(o.max_request_bytes > 0, "--max-request-bytes must be > 0");
    LF_CHECK(o.request_timeout_s > 0, "--request-timeout must be > 0");
    LF_CHECK(o.http_threads > 0, "--http-threads must be > 0");
    setup_routes();
  }

  const tok::Tokenizer& tok;
  ServerOptions o;
  ChatTemplate chat;
  ApiModel api;
  BatchGenerator gen;
  uint64_t seed_base;
  httplib::Server http;
  std::thread engine;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1}, completed{0}, cancelled{0}, failed{0};

  void setup_routes();
  void completion(const httplib::Request& req, httplib::Response& res, bool chat_api);
  json response_body(const CompletionRequest& r, uint64_t id, const std::string& text,
                     const std::vector<Pending::Token>& tokens, int64_t completion_tokens, FinishReason reason);
  json chunk(const CompletionRequest& r, uint64_t id, const std::string& text, const std::vector<Pending::Token>& tokens,
             const char* finish_reason, bool first);
  json logprobs_of(const CompletionRequest& r, const std::vector<Pending::Token>& tokens, size_t text_offset);
  json usage(const CompletionRequest& r, int64_t completion_tokens) const {
    return {{"prompt_tokens", r.prompt.size()}, {"completion_tokens", completion_tokens},
            {"total_tokens", int64_t(r.prompt.size()) + completion_tokens}};
  }
};

namespace {

void send_error(httplib::Response& res, const ApiError& e) {
  res.status = e.status;
  res.set_content(e.body(), "application/json");
}

// Runs a handler, turning what it throws into an error response: ApiError as it says, an Error
// (a request the engine refused) as 400, anything else as 500. Nothing escapes to the server.
template <class F>
void guarded(httplib::Response& res, F&& f) {
  try {
    f();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const Error& e) {
    send_error(res, ApiError(400, e.what()));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, fmt::format("internal error: {}", e.what()), "", "", "server_error"));
  }
}

}  // namespace

json Server::Impl::logprobs_of(const CompletionRequest& r, const std::vector<Pending::Token>& tokens,
                               size_t text_offset) {
  if (!r.logprobs) return nullptr;
  if (r.chat) {
    json content = json::array();
    for (const auto& t : tokens) {
      const std::string& bytes = tok.token_bytes(t.id);
      json top = json::array();
      for (const auto& [alt, logprob] : t.top)
        top.push_back({{"token", tok.token_bytes(alt)}, {"logprob", logprob}, {"bytes", byte_values(tok.token_bytes(alt))}});
      content.push_back({{"token", bytes}, {"logprob", t.logprob}, {"bytes", byte_values(bytes)}, {"top_logprobs", top}});
    }
    return {{"content", content}};
  }
  json toks = json::array(), lps = json::array(), offsets = json::array(), tops = json::array();
  for (const auto& t : tokens) {
    const std::string& bytes = tok.token_bytes(t.id);
    toks.push_back(bytes);
    lps.push_back(t.logprob);
    json top = json::object();  // the legacy format: token text -> log-probability
    for (const auto& [alt, logprob] : t.top) top.emplace(tok.token_bytes(alt), logprob);
    tops.push_back(top);
    offsets.push_back(text_offset);
    text_offset += tok.is_special(t.id) ? 0 : bytes.size();
  }
  return {{"tokens", toks}, {"token_logprobs", lps}, {"top_logprobs", r.top_logprobs > 0 ? tops : json(nullptr)},
          {"text_offset", offsets}};
}

json Server::Impl::response_body(const CompletionRequest& r, uint64_t id, const std::string& text,
                                 const std::vector<Pending::Token>& tokens, int64_t completion_tokens,
                                 FinishReason reason) {
  json choice{{"index", 0}};
  if (r.chat) choice["message"] = {{"role", "assistant"}, {"content", text}};
  else choice["text"] = text;
  choice["logprobs"] = logprobs_of(r, tokens, 0);
  choice["finish_reason"] = finish_reason_name(reason);
  return {{"id", fmt::format("{}-{}", r.chat ? "chatcmpl" : "cmpl", id)},
          {"object", r.chat ? "chat.completion" : "text_completion"},
          {"created", int64_t(std::time(nullptr))},
          {"model", o.model_name},
          {"choices", json::array({choice})},
          {"usage", usage(r, completion_tokens)}};
}

json Server::Impl::chunk(const CompletionRequest& r, uint64_t id, const std::string& text,
                         const std::vector<Pending::Token>& tokens, const char* finish_reason, bool first) {
  json choice{{"index", 0}};
  if (r.chat) {
    choice["delta"] = first ? json{{"role", "assistant"}, {"content", text}} : json{{"content", text}};
    if (finish_reason) choice["delta"] = json::object();
  } else {
    choice["text"] = text;
  }
  choice["logprobs"] = logprobs_of(r, tokens, 0);
  choice["finish_reason"] = finish_reason ? json(finish_reason) : json(nullptr);
  return {{"id", fmt::format("{}-{}", r.chat ? "chatcmpl" : "cmpl", id)},
          {"object", r.chat ? "chat.completion.chunk" : "text_completion"},
          {"created", int64_t(std::time(nullptr))},
          {"model", o.model_name},
          {"choices", json::array({choice})}};
}

void Server::Impl::completion(const httplib::Request& req, httplib::Response& res, bool chat_api) {
  const CompletionRequest r = parse_completion_request(req.body, chat_api, api);
  const uint64_t id = next_id++;
  auto pending = std::make_shared<Pending>();
  auto text = std::make_shared<CompletionText>(tok, r.stop);
  GenerationRequest g{.prompt = r.prompt, .max_new_tokens = r.max_tokens, .sampling = r.sampling,
                      .seed = r.seed.value_or(seed_base + id * 0x9E3779B97F4A7C15ull), .stop_tokens = r.stop_tokens,
                      .on_token = nullptr, .on_finish = nullptr};
  g.top_logprobs = r.top_logprobs;
  g.on_token = [pending, text, logprobs = r.logprobs](const GeneratedToken& token) {
    const std::string t = text->push(token.id);
    std::lock_guard lock(pending->mutex);
    pending->text += t;
    ++pending->completion_tokens;
    if (logprobs) pending->tokens.push_back(token);
    pending->changed.notify_all();
    return !text->stopped();
  };
  g.on_finish = [pending, text](FinishReason reason) {
    const std::string t = text->finish();
    std::lock_guard lock(pending->mutex);
    pending->text += t;
    pending->done = true;
    pending->reason = text->stopped() ? FinishReason::Stop : reason;
    pending->changed.notify_all();
  };
  const uint64_t engine_id = gen.submit(std::move(g));
  const auto deadline = Clock::now() + std::chrono::duration_cast<Clock::duration>(
                                           std::chrono::duration<double>(o.request_timeout_s));
  const ApiError timeout(504, fmt::format("the request ran past the server's time limit of {} s", o.request_timeout_s),
                         "", "timeout", "server_error");
  const ApiError shutting_down(503, "the server is shutting down", "", "", "server_error");

  if (!r.stream) {
    std::unique_lock lock(pending->mutex);
    while (!pending->done) {
      if (stopping || Clock::now() >= deadline) {
        lock.unlock();
        gen.cancel(engine_id);
        ++cancelled;
        throw stopping ? shutting_down : timeout;
      }
      pending->changed.wait_for(lock, std::chrono::milliseconds(500));
    }
    res.set_content(dump(response_body(r, id, pending->text, pending->tokens, pending->completion_tokens,
                                       pending->reason)),
                    "application/json");
    ++completed;
    return;
  }

  struct StreamState {
    bool first = true, finished = false;
    size_t text_offset = 0;
  };
  auto state = std::make_shared<StreamState>();
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream",
      [this, r, id, pending, state, deadline, timeout, engine_id](size_t, httplib::DataSink& sink) {
        auto send = [&](const std::string& s) { return sink.write(s.data(), s.size()); };
        std::string new_text;
        std::vector<Pending::Token> new_tokens;
        bool done = false;
        int64_t completion_tokens = 0;
        FinishReason reason = FinishReason::Length;
        {
          std::unique_lock lock(pending->mutex);
          pending->changed.wait_for(lock, std::chrono::seconds(1), [&] {
            return pending->done || !pending->text.empty() || !pending->tokens.empty() || stopping.load();
          });
          new_text.swap(pending->text);
          new_tokens.swap(pending->tokens);
          done = pending->done;
          completion_tokens = pending->completion_tokens;
          reason = pending->reason;
        }
        if (!done && (stopping || Clock::now() >= deadline)) {
          gen.cancel(engine_id);
          const std::string why = stopping ? "the server is shutting down" : timeout.what();
          send("data: " + ApiError(stopping ? 503 : 504, why, "", "timeout", "server_error").body() + "\n\n");
          sink.done();
          return true;
        }
        if (new_text.empty() && new_tokens.empty() && !done && !state->first)
          return send(": keep-alive\n\n");  // fails once the client is gone
        if (state->first || !new_text.empty() || !new_tokens.empty()) {
          json c = chunk(r, id, new_text, new_tokens, nullptr, state->first);
          if (!r.chat && r.logprobs) c["choices"][0]["logprobs"] = logprobs_of(r, new_tokens, state->text_offset);
          state->text_offset += new_text.size();
          state->first = false;
          if (!send("data: " + dump(c) + "\n\n")) return false;
        }
        if (!done) return true;
        if (!send("data: " + dump(chunk(r, id, "", {}, finish_reason_name(reason), false)) + "\n\n")) return false;
        if (r.include_usage) {
          json u = chunk(r, id, "", {}, nullptr, false);
          u["choices"] = json::array();
          u["usage"] = usage(r, completion_tokens);
          if (!send("data: " + dump(u) + "\n\n")) return false;
        }
        if (!send("data: [DONE]\n\n")) return false;
        state->finished = true;
        ++completed;
        sink.done();
        return true;
      },
      [this, state, engine_id](bool success) {
        // The client went away (or the write failed) before the end: free the slot now.
        if (!success || !state->finished) {
          gen.cancel(engine_id);
          ++cancelled;
        }
      });
}

void Server::Impl::setup_routes() {
  http.new_task_queue = [n = size_t(o.http_threads)] { return new httplib::ThreadPool(n); };
  http.set_payload_max_length(size_t(o.max_request_bytes));
  http.set_read_timeout(30, 0);
  http.set_write_timeout(30, 0);
  http.set_keep_alive_max_count(1000);
  http.set_pre_routing_handler([this](const httplib::Request& req, httplib::Response& res) {
    if (o.api_key.empty() || !req.path.starts_with("/v1/")) return httplib::Server::HandlerResponse::Unhandled;
    if (req.get_header_value("Authorization") == "Bearer " + o.api_key)
      return httplib::Server::HandlerResponse::Unhandled;
    send_error(res, ApiError(401, "a valid API key is required: send the header 'Authorization: Bearer <key>'", "",
                             "invalid_api_key"));
    return httplib::Server::HandlerResponse::Handled;
  });
  http.set_error_handler(httplib::Server::HandlerWithResponse([](const httplib::Request& req, httplib::Response& res) {
    if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;  // ours already
    const std::string message =
        res.status == 404   ? fmt::format("no route for {} {}", req.method, req.path)
        : res.status == 413 ? std::string("the request body is larger than the server's limit")
                            : fmt::format("HTTP error {}", res.status);
    send_error(res, ApiError(res.status, message));
    return httplib::Server::HandlerResponse::Handled;
  }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "internal error", "", "", "server_error"));
  });
  http.Get("/health", [this](const httplib::Request&, httplib::Response& res) {
    res.set_content(dump({{"status", "ok"},
                          {"model", o.model_name},
                          {"running", gen.running()},
                          {"waiting", gen.waiting()},
                          {"completed", completed.load()},
                          {"cancelled", cancelled.load()}}),
                    "application/json");
  });
  http.Get("/v1/models", [this](const httplib::Request&, httplib::Response& res) {
    const json model{{"id", o.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "lmforge"}};
    res.set_content(dump({{"object", "list"}, {"data", json::array({model})}}), "application/json");
  });
  http.Get(R"(/v1/models/(.+))", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (req.matches[1] != o.model_name)
        throw ApiError(404, fmt::format("the model '{}' does not exist", std::string(req.matches[1])), "model",
                       "model_not_found");
      res.set_content(dump({{"id", o.model_name}, {"object", "model"}, {"created", 0}, {"owned_by", "lmforge"}}),
                      "application/json");
    });
  });
  http.Post("/v1/completions", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { completion(req, res, false); });
  });
  http.Post("/v1/chat/completions", [this](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { completion(req, res, true); });
  });
}

Server::Server(const nn::Transformer& model, const tok::Tokenizer& tokenizer, ServerOptions options)
    : impl_(std::make_unique<Impl>(model, tokenizer, std::move(options))) {}

Server::~Server() {
  stop();
  if (impl_->engine.joinable()) impl_->engine.join();
}

int Server::bind() {
  Impl& s = *impl_;
  const int port = s.o.port == 0 ? s.http.bind_to_any_port(s.o.host)
                                 : (s.http.bind_to_port(s.o.host, s.o.port) ? s.o.port : -1);
  LF_CHECK(port > 0, "cannot listen on {}:{}: the port is in use or the address is not one of this machine's",
           s.o.host, s.o.port);
  return port;
}

void Server::serve() {
  Impl& s = *impl_;
  s.engine = std::thread([&s] { s.gen.run(s.stopping); });
  s.http.listen_after_bind();
  s.stopping = true;
  s.gen.wake_up();
  s.engine.join();
}

void Server::stop() {
  impl_->stopping = true;
  impl_->http.stop();
}

}  // namespace lmforge::infer

#else  // built without cpp-httplib

namespace lmforge::infer {

bool server_available() { return false; }

struct Server::Impl {};

Server::Server(const nn::Transformer&, const tok::Tokenizer&, ServerOptions) {
  throw Error(
      "this lmforge was built without cpp-httplib, so `serve` is not available: install it (Debian: apt-get install "
      "libcpp-httplib-dev), then configure and build again");
}
Server::~Server() = default;
int Server::bind() { return 0; }
void Server::serve() {}
void Server::stop() {}

}  // namespace lmforge::infer

#endif
