// lmforge score: per-token log-probabilities of id sequences under a checkpoint.
#include <fmt/format.h>

#include <charconv>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/command.h"
#include "infer/score.h"
#include "train/checkpoint.h"

namespace lmforge::cli {
namespace {

struct ScoreArgs {
  std::string checkpoint;
  std::string ids;
  std::string device = "cpu";
  std::string precision = "auto";
};

std::vector<int64_t> parse_id_line(const std::string& line, const std::string& where) {
  std::vector<int64_t> ids;
  const char* p = line.data();
  const char* end = p + line.size();
  while (p < end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\r' || *p == ',')) ++p;
    if (p == end) break;
    int64_t v = 0;
    auto [q, ec] = std::from_chars(p, end, v);
    LF_CHECK(ec == std::errc() && q != p, "{}: \"{}\" is not a token id", where,
             std::string(p, std::min<size_t>(size_t(end - p), 20)));
    ids.push_back(v);
    p = q;
  }
  return ids;
}

void run(const ScoreArgs& a) {
  const train::LoadedModel m =
      train::load_checkpoint_model(a.checkpoint, Device::parse(a.device), precision_of(a.precision));
  std::ifstream in(a.ids);
  LF_CHECK(in.good(), "cannot open {}", a.ids);
  std::string line;
  for (int64_t no = 1; std::getline(in, line); ++no) {
    const std::string where = fmt::format("{}:{}", a.ids, no);
    const std::vector<int64_t> ids = parse_id_line(line, where);
    std::vector<double> lp;
    try {
      lp = infer::score_tokens(*m.model, ids);
    } catch (const Error& e) {
      throw Error(fmt::format("{}: {}", where, e.what()));
    }
    fmt::print("{}\n", nlohmann::json(lp).dump());
  }
}

LMFORGE_COMMAND("score", "Print the log-probability of each token given its prefix, one JSON array per line",
                [](CLI::App& sub) {
  auto args = std::make_shared<ScoreArgs>();
  sub.add_option("--checkpoint", args->checkpoint, "checkpoint directory (or a run directory: its newest)")->required();
  sub.add_option("--ids", args->ids,
                 "file of token ids separated by spaces, one sequence per line; each output array has one entry "
                 "per token after the first")
      ->required()
      ->check(CLI::ExistingFile);
  sub.add_option("--device", args->device, "cpu | cuda | cuda:N")->capture_default_str();
  add_precision_option(sub, args->precision);
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
