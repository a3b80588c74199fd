// lmforge serve: an OpenAI-compatible HTTP server (infer/server.h) for one checkpoint, quantized
// or not, with continuous batching. Stops cleanly on SIGINT / SIGTERM.
#include <fmt/format.h>

#include <csignal>
#include <filesystem>
#include <thread>

#include "cli/command.h"
#include "infer/server.h"
#include "train/checkpoint.h"

namespace lmforge::cli {
namespace {

struct ServeArgs {
  std::string checkpoint;
  std::string device = "cpu";
  std::string precision = "auto";
  infer::ServerOptions server;
};

void run(ServeArgs a) {
  LF_CHECK(infer::server_available(),
           "this lmforge was built without cpp-httplib, so `serve` is not available: install it (Debian: apt-get "
           "install libcpp-httplib-dev), then configure and build again");
  LF_CHECK(a.server.port >= 0 && a.server.port <= 65535, "--port must be in [0, 65535], got {}", a.server.port);
  const train::LoadedModel m =
      train::load_checkpoint_model(a.checkpoint, Device::parse(a.device), precision_of(a.precision));
  LF_CHECK(m.tokenizer.has_value(), "checkpoint {} has no tokenizer.json; serve needs one", m.dir);
  if (a.server.model_name.empty()) a.server.model_name = std::filesystem::path(m.dir).filename().string();
  // SIGINT / SIGTERM are taken by one thread that stops the server; every other thread
  // (started below) inherits the blocked mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  infer::Server server(*m.model, *m.tokenizer, a.server);
  const int port = server.bind();
  std::thread waiter([&] {
    int sig = 0;
    sigwait(&signals, &sig);
    server.stop();
  });
  waiter.detach();
  fmt::print("serving {} as '{}' on http://{}:{} ({} slots{})\n", m.dir, a.server.model_name, a.server.host, port,
             a.server.batch.max_slots, a.server.api_key.empty() ? "" : ", API key required");
  std::fflush(stdout);
  server.serve();
  fmt::print("stopped\n");
}

LMFORGE_COMMAND("serve", "Serve a checkpoint over an OpenAI-compatible HTTP API (completions, chat, streaming)",
                [](CLI::App& sub) {
  auto args = std::make_shared<ServeArgs>();
  args->server.model_name.clear();  // default: the checkpoint directory's name
  sub.add_option("--checkpoint", args->checkpoint, "checkpoint directory (or a run directory: its newest)")->required();
  sub.add_option("--device", args->device, "cpu | cuda | cuda:N")->capture_default_str();
  add_precision_option(sub, args->precision);
  sub.add_option("--host", args->server.host, "address to listen on")->capture_default_str();
  sub.add_option("--port", args->server.port, "port (0: any free port, printed at start)")->capture_default_str();
  sub.add_option("--api-key", args->server.api_key, "require 'Authorization: Bearer KEY' on /v1 routes");
  sub.add_option("--model-name", args->server.model_name, "the model id clients name (default: the checkpoint's "
                                                         "directory name)");
  sub.add_option("--chat-template", args->server.chat_template,
                 "one message's text with {role} and {content} (default: ChatML if the tokenizer has its tokens, "
                 "else \"{role}: {content}\\n\")");
  sub.add_option("--slots", args->server.batch.max_slots, "sequences decoded together")->capture_default_str();
  sub.add_option("--prefill-chunk", args->server.batch.prefill_chunk, "prompt tokens per slot per step")
      ->capture_default_str();
  sub.add_option("--max-request-bytes", args->server.max_request_bytes, "larger request bodies get 413")
      ->capture_default_str();
  sub.add_option("--request-timeout", args->server.request_timeout_s, "seconds a request may run")
      ->capture_default_str();
  sub.add_option("--http-threads", args->server.http_threads, "connections served at once")->capture_default_str();
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
