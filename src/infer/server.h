// `lmforge serve`: an OpenAI-compatible HTTP server on cpp-httplib over a BatchGenerator.
//
//   POST /v1/completions, POST /v1/chat/completions   (infer/openai_api.h; stream: server-sent
//                                                      events ending with "data: [DONE]")
//   GET  /v1/models                                    the one model served
//   GET  /health                                       {"status": "ok", "running", "waiting", ...}
//
// One engine thread steps the BatchGenerator; each HTTP request submits a GenerationRequest and
// waits for its tokens. With an API key every /v1 route needs "Authorization: Bearer KEY" (401
// otherwise). Bodies above max_request_bytes get 413; a request running past request_timeout_s is
// cancelled (504, or an error event when streaming). A streaming client that disconnects is
// noticed at the next write (a token, or a keep-alive comment every second while queued), and its
// request is cancelled, which frees its slot at the next step. Bad requests get 4xx with an
// OpenAI-style error object; no request can stop the server.
//
// Built only when cpp-httplib was found at configure time (LMFORGE_WITH_HTTPLIB); otherwise
// server_available() is false and Server's constructor raises an Error saying so.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "infer/batch_generate.h"
#include "tokenizer/tokenizer.h"

namespace lmforge::infer {

struct ServerOptions {
  std::string host = "127.0.0.1";
  int port = 8080;                 // 0: any free port (see Server::bind)
  std::string api_key;             // empty: no authentication
  std::string model_name = "lmforge";
  std::string chat_template;       // empty: from the tokenizer (infer/chat_template.h)
  int64_t max_request_bytes = 1 << 20;
  double request_timeout_s = 300;
  int64_t http_threads = 96;       // connections served at once (each keep-alive client holds one)
  BatchOptions batch;
};

bool server_available();

class Server {
 public:
  Server(const nn::Transformer& model, const tok::Tokenizer& tokenizer, ServerOptions options);
  ~Server();
  // Binds host:port; returns the port (the chosen one for port 0). Error naming the address
  // when it is taken or invalid.
  int bind();
  // Serves until stop() (from another thread or a signal handler's thread).
  void serve();
  void stop();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace lmforge::infer
