// lmforge serve end to end: a server on a free port over a small model built here, driven by curl
// and by the official OpenAI Node client (skipped, with a message, where node or the package is
// missing), streaming and not; bad requests get 4xx and the server stays up; a client that
// disconnects mid-stream has its request cancelled.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <thread>

#include "infer/generate.h"
#include "infer/server.h"
#include "nn/model_test_util.h"

namespace lmforge::infer {
namespace {

namespace fs = std::filesystem;
using json = nlohmann::json;

struct CommandResult {
  int status = -1;
  std::string out;
};

CommandResult run_command(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.out.append(buf, n);
  const int rc = ::pclose(p);
  r.status = WIFEXITED(rc) ? WEXITSTATUS(rc) : -1;
  return r;
}

bool have(const std::string& program) { return run_command("command -v " + program + " >/dev/null 2>&1").status == 0; }

std::string quoted(const std::string& s) {
  std::string q = "'";
  for (char c : s) q += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return q + "'";
}

struct Reply {
  int status = 0;
  std::string body;
  json j() const { return json::parse(body); }
};

// A server over a random-weight byte-level model, serving on a free port in a thread.
class ServerFixture : public ::testing::Test {
 protected:
  static constexpr const char* kModel = "tiny";

  void start(const std::string& api_key = "") {
    if (!server_available()) GTEST_SKIP() << "built without cpp-httplib: lmforge serve is not available";
    if (!have("curl")) GTEST_SKIP() << "curl is not installed";
    tokenizer_ = tok::Tokenizer::byte_level({"<|endoftext|>"});
    nn::ModelConfig c = test::tiny_config();
    c.vocab_size = 257;
    c.context_length = 512;
    c.d_model = 32;
    c.n_heads = 4;
    c.n_kv_heads = 2;
    c.d_ff = 64;
    c.init_std = 0.2;
    model_ = test::make_model(c);
    model_->set_training(false);
    dir_ = test::temp_dir("server");
    fs::create_directories(dir_);
    server_ = std::make_unique<Server>(*model_, *tokenizer_,
                                       ServerOptions{.port = 0, .api_key = api_key, .model_name = kModel, .chat_template = "",
                                                     .max_request_bytes = 64 << 10, .batch = {.max_slots = 4}});
    port_ = server_->bind();
    thread_ = std::thread([this] { server_->serve(); });
    for (int i = 0; i < 200 && get("/health").status != 200; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }

  void TearDown() override {
    if (server_) server_->stop();
    if (thread_.joinable()) thread_.join();
    server_.reset();
    if (!dir_.empty()) fs::remove_all(dir_);
  }

  std::string url(const std::string& path) const { return fmt::format("http://127.0.0.1:{}{}", port_, path); }

  Reply curl(const std::string& args) {
    const CommandResult r = run_command("curl -sS -N -w '\\n%{http_code}' " + args);
    Reply reply;
    const size_t nl = r.out.rfind('\n');
    reply.body = r.out.substr(0, nl == std::string::npos ? 0 : nl);
    reply.status = std::atoi(r.out.c_str() + (nl == std::string::npos ? 0 : nl + 1));
    return reply;
  }
  Reply get(const std::string& path, const std::string& headers = "") { return curl(headers + " " + quoted(url(path))); }
  // POSTs `body` from a file, so any bytes (invalid UTF-8 too) go as they are.
  Reply post(const std::string& path, const std::string& body, const std::string& headers = "") {
    const std::string file = dir_ + "/body.json";
    std::ofstream(file, std::ios::binary) << body;
    return curl("-X POST -H 'Content-Type: application/json' " + headers + " --data-binary @" + quoted(file) + " " +
                quoted(url(path)));
  }

  // The greedy continuation of `prompt` as the server should produce it: the model's tokens up
  // to <|endoftext|> (at most max_tokens), as whole UTF-8 characters.
  std::string expected_greedy(const std::string& prompt, int64_t max_tokens) {
    std::vector<uint32_t> ids = {tokenizer_->eot_id()};
    tokenizer_->encode_ordinary_append(prompt, ids);
    const auto out = generate(*model_, ids, {.max_new_tokens = max_tokens, .sampling = {.temperature = 0},
                                              .stop_token = tokenizer_->eot_id()});
    Utf8Stream utf8;
    std::string text;
    for (uint32_t t : out)
      if (t != tokenizer_->eot_id()) text += utf8.push(tokenizer_->token_bytes(t));
    return text + utf8.flush();
  }

  // The concatenated text of an SSE stream of completion chunks; checks it ends with [DONE].
  static std::string stream_text(const std::string& body, bool chat, std::string* finish_reason = nullptr) {
    std::string text;
    bool done = false;
    size_t at = 0;
    while (at < body.size()) {
      size_t nl = body.find('\n', at);
      if (nl == std::string::npos) nl = body.size();
      const std::string line = body.substr(at, nl - at);
      at = nl + 1;
      if (!line.starts_with("data: ")) continue;
      const std::string data = line.substr(6);
      EXPECT_FALSE(done) << "data after [DONE]";
      if (data == "[DONE]") {
        done = true;
        continue;
      }
      const json c = json::parse(data);
      if (c["choices"].empty()) continue;  // the usage chunk
      const json& choice = c["choices"][0];
      if (chat) text += choice["delta"].value("content", "");
      else text += choice["text"].get<std::string>();
      if (finish_reason && !choice["finish_reason"].is_null()) *finish_reason = choice["finish_reason"];
    }
    EXPECT_TRUE(done) << "the stream did not end with [DONE]";
    return text;
  }

  std::optional<tok::Tokenizer> tokenizer_;
  std::unique_ptr<nn::Transformer> model_;
  std::unique_ptr<Server> server_;
  std::thread thread_;
  int port_ = 0;
  std::string dir_;
};

TEST_F(ServerFixture, CompletionsAnswerCurlStreamingAndNot) {
  start();
  if (!server_) return;
  const Reply health = get("/health");
  ASSERT_EQ(health.status, 200) << health.body;
  EXPECT_EQ(health.j()["status"], "ok");
  const Reply models = get("/v1/models");
  ASSERT_EQ(models.status, 200);
  EXPECT_EQ(models.j()["data"][0]["id"], kModel);

  const std::string prompt = "In the beginning";
  const std::string body = json{{"model", kModel}, {"prompt", prompt}, {"max_tokens", 20}, {"temperature", 0}}.dump();
  const Reply r = post("/v1/completions", body);
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.j();
  EXPECT_EQ(j["object"], "text_completion");
  EXPECT_EQ(j["choices"][0]["text"], expected_greedy(prompt, 20));
  EXPECT_EQ(j["usage"]["prompt_tokens"], 1 + prompt.size());  // <|endoftext|> + one id per byte
  EXPECT_EQ(j["usage"]["total_tokens"], j["usage"]["prompt_tokens"].get<int>() + j["usage"]["completion_tokens"].get<int>());

  json sj = json::parse(body);
  sj["stream"] = true;
  const Reply s = post("/v1/completions", sj.dump());
  ASSERT_EQ(s.status, 200) << s.body;
  std::string finish;
  EXPECT_EQ(stream_text(s.body, false, &finish), j["choices"][0]["text"].get<std::string>());
  EXPECT_EQ(finish, j["choices"][0]["finish_reason"].get<std::string>());

  // A stop string cuts the text before it; logprobs come one per token, each <= 0.
  const std::string full = j["choices"][0]["text"];
  std::vector<size_t> starts;  // where each UTF-8 character begins
  for (size_t i = 0; i < full.size(); ++i)
    if ((static_cast<unsigned char>(full[i]) & 0xC0) != 0x80) starts.push_back(i);
  starts.push_back(full.size());
  ASSERT_GE(starts.size(), 6u) << full;
  {
    const std::string stop = full.substr(starts[2], starts[4] - starts[2]);  // its 3rd and 4th characters
    json stopped = json::parse(body);
    stopped["stop"] = stop;
    stopped["logprobs"] = 1;
    const json sr = post("/v1/completions", stopped.dump()).j();
    EXPECT_EQ(sr["choices"][0]["text"], full.substr(0, full.find(stop)));
    EXPECT_EQ(sr["choices"][0]["finish_reason"], "stop");
    const json& lp = sr["choices"][0]["logprobs"]["token_logprobs"];
    EXPECT_EQ(int64_t(lp.size()), sr["usage"]["completion_tokens"].get<int64_t>());
    for (const auto& v : lp) EXPECT_LE(v.get<double>(), 0.0);
    // "logprobs": 1 also gives the most likely token of each step: under greedy decoding, the
    // chosen one with the same log-probability.
    const json& tops = sr["choices"][0]["logprobs"]["top_logprobs"];
    const json& toks = sr["choices"][0]["logprobs"]["tokens"];
    ASSERT_EQ(tops.size(), lp.size());
    for (size_t i = 0; i < tops.size(); ++i) {
      ASSERT_EQ(tops[i].size(), 1u) << tops[i].dump();
      EXPECT_EQ(tops[i].begin().key(), toks[i].get<std::string>());
      EXPECT_NEAR(tops[i].begin().value().get<double>(), lp[i].get<double>(), 1e-6);
    }
  }
}

TEST_F(ServerFixture, ChatTopLogprobsAreSortedAndIncludeTheGreedyToken) {
  start();
  if (!server_) return;
  json body{{"model", kModel}, {"messages", {{{"role", "user"}, {"content", "Hi"}}}}, {"max_tokens", 6},
            {"temperature", 0}, {"logprobs", true}, {"top_logprobs", 3}};
  const Reply r = post("/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json reply = r.j();
  const json& content = reply["choices"][0]["logprobs"]["content"];
  ASSERT_FALSE(content.empty()) << r.body;
  for (const json& t : content) {
    const json& top = t["top_logprobs"];
    ASSERT_EQ(top.size(), 3u) << t.dump();
    EXPECT_EQ(top[0]["token"], t["token"]);  // greedy: the chosen token is the most likely
    EXPECT_NEAR(top[0]["logprob"].get<double>(), t["logprob"].get<double>(), 1e-6);
    for (size_t k = 1; k < top.size(); ++k) EXPECT_LE(top[k]["logprob"].get<double>(), top[k - 1]["logprob"].get<double>());
  }
  body["logprobs"] = false;  // alternatives without logprobs: a 400 naming the field
  const Reply bad = post("/v1/chat/completions", body.dump());
  EXPECT_EQ(bad.status, 400);
  EXPECT_NE(bad.body.find("top_logprobs"), std::string::npos) << bad.body;
}

TEST_F(ServerFixture, ChatCompletionsStreamingAndNot) {
  start();
  if (!server_) return;
  const json body{{"model", kModel},
                  {"messages", {{{"role", "system"}, {"content", "Be brief."}}, {{"role", "user"}, {"content", "Hi"}}}},
                  {"max_tokens", 15},
                  {"temperature", 0}};
  const Reply r = post("/v1/chat/completions", body.dump());
  ASSERT_EQ(r.status, 200) << r.body;
  const json j = r.j();
  EXPECT_EQ(j["object"], "chat.completion");
  EXPECT_EQ(j["choices"][0]["message"]["role"], "assistant");
  // The plain template: "<|endoftext|>system: Be brief.\nuser: Hi\nassistant: ", a reply ends at "\n".
  const std::string expected = expected_greedy("system: Be brief.\nuser: Hi\nassistant: ", 15);
  EXPECT_EQ(j["choices"][0]["message"]["content"], expected.substr(0, expected.find('\n')));
  json sj = body;
  sj["stream"] = true;
  const Reply s = post("/v1/chat/completions", sj.dump());
  ASSERT_EQ(s.status, 200) << s.body;
  EXPECT_EQ(stream_text(s.body, true), j["choices"][0]["message"]["content"].get<std::string>());
}

TEST_F(ServerFixture, BadRequestsGet4xxAndTheServerStaysUp) {
  start();
  if (!server_) return;
  struct Case {
    std::string name, body;
    int status;
    std::string in_message;
  };
  const std::string long_prompt(600, 'a');  // 601 tokens > the context of 512
  const std::vector<Case> cases = {
      {"malformed JSON", "{\"model\": \"tiny\", \"prompt\": ", 400, "not valid JSON"},
      {"not an object", "[1, 2]", 400, "JSON object"},
      {"unknown model", R"({"model": "gpt-9", "prompt": "x"})", 404, "does not exist"},
      {"missing model", R"({"prompt": "x"})", 400, "'model' is missing"},
      {"prompt too long", json{{"model", kModel}, {"prompt", long_prompt}}.dump(), 400, "context"},
      {"invalid UTF-8", "{\"model\": \"tiny\", \"prompt\": \"\xff\xfe\"}", 400, "UTF-8"},
      {"huge max_tokens", R"({"model": "tiny", "prompt": "x", "max_tokens": 1000000000000})", 400, "max_tokens"},
      {"negative temperature", R"({"model": "tiny", "prompt": "x", "temperature": -0.5})", 400, "temperature"},
      {"bad top_p", R"({"model": "tiny", "prompt": "x", "top_p": 0})", 400, "top_p"},
      {"bad stop", R"({"model": "tiny", "prompt": "x", "stop": [1]})", 400, "stop"},
      {"n > 1", R"({"model": "tiny", "prompt": "x", "n": 2})", 400, "'n'"},
  };
  for (const Case& c : cases) {
    const Reply r = post("/v1/completions", c.body);
    EXPECT_EQ(r.status, c.status) << c.name << ": " << r.body;
    const json e = json::parse(r.body, nullptr, false);
    ASSERT_TRUE(e.is_object() && e.contains("error")) << c.name << ": " << r.body;
    EXPECT_NE(e["error"]["message"].get<std::string>().find(c.in_message), std::string::npos)
        << c.name << ": " << r.body;
    EXPECT_EQ(get("/health").status, 200) << "after " << c.name;
  }
  const Reply role = post("/v1/chat/completions", R"({"model": "tiny", "messages": [{"role": "wizard", "content": "x"}]})");
  EXPECT_EQ(role.status, 400);
  EXPECT_NE(role.body.find("messages[0].role"), std::string::npos) << role.body;
  const Reply big = post("/v1/completions", std::string(70 << 10, ' '));  // over the 64 KiB limit
  EXPECT_EQ(big.status, 413) << big.body;
  EXPECT_EQ(get("/v1/nothing").status, 404);
  EXPECT_EQ(get("/health").status, 200);
}

TEST_F(ServerFixture, ApiKeyIsRequiredWhenSet) {
  start("sekrit");
  if (!server_) return;
  const std::string body = R"({"model": "tiny", "prompt": "x", "max_tokens": 2})";
  EXPECT_EQ(post("/v1/completions", body).status, 401);
  EXPECT_EQ(post("/v1/completions", body, "-H 'Authorization: Bearer wrong'").status, 401);
  EXPECT_EQ(get("/v1/models").status, 401);
  EXPECT_EQ(post("/v1/completions", body, "-H 'Authorization: Bearer sekrit'").status, 200);
  EXPECT_EQ(get("/health").status, 200);  // not under /v1
}

TEST_F(ServerFixture, DisconnectingMidStreamCancelsTheRequest) {
  start();
  if (!server_) return;
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  ASSERT_GE(fd, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(uint16_t(port_));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  ASSERT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr), 0);
  const std::string body = R"({"model": "tiny", "prompt": "x", "max_tokens": 500, "stream": true, "temperature": 0})";
  const std::string request = fmt::format(
      "POST /v1/completions HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{}",
      body.size(), body);
  ASSERT_EQ(::write(fd, request.data(), request.size()), ssize_t(request.size()));
  char buf[256];
  ASSERT_GT(::read(fd, buf, sizeof buf), 0);  // the stream has started
  ::close(fd);
  // The server notices at its next write and cancels; the slot is free again.
  json h;
  for (int i = 0; i < 600; ++i) {
    h = get("/health").j();
    if (h["cancelled"].get<int>() >= 1 && h["running"].get<int>() == 0) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(h["cancelled"], 1) << h.dump();
  EXPECT_EQ(h["running"], 0) << h.dump();
  EXPECT_EQ(h["completed"], 0) << h.dump();
  // And it still serves.
  EXPECT_EQ(post("/v1/completions", R"({"model": "tiny", "prompt": "x", "max_tokens": 2})").status, 200);
}

TEST_F(ServerFixture, AnswersTheOfficialOpenAINodeClient) {
  const fs::path script = fs::path(LMFORGE_SOURCE_DIR) / "tests/infer/openai_client_check.mjs";
  if (!have("node")) GTEST_SKIP() << "node is not installed (scripts/install_deps.sh installs it)";
  if (!fs::exists(script.parent_path() / "node_modules/openai/package.json"))
    GTEST_SKIP() << "the openai npm package is not installed in tests/infer/node_modules (scripts/install_deps.sh "
                    "installs it)";
  start("client-key");
  if (!server_) return;
  const CommandResult r = run_command(fmt::format("node {} {} {} client-key 2>&1", quoted(script.string()),
                                                  quoted(url("/v1")), kModel));
  ASSERT_EQ(r.status, 0) << r.out;
  const json j = json::parse(r.out.substr(r.out.find('{')));
  EXPECT_EQ(j["completion"], expected_greedy("In the beginning", 12));
  EXPECT_EQ(j["completion_stream"], j["completion"]);
  EXPECT_GE(j["completion_stream_chunks"].get<int>(), 2);
  EXPECT_EQ(j["chat_stream"], j["chat"]);
  EXPECT_NE(j["unknown_model_error"].get<std::string>().find("does not exist"), std::string::npos);
}

}  // namespace
}  // namespace lmforge::infer
