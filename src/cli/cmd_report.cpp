// lmforge report RUN_DIR... --output FILE.html: one self-contained HTML page drawing the runs
// over each other (train/report.h).
#include <fmt/format.h>

#include "cli/command.h"
#include "train/report.h"

namespace lmforge::cli {
namespace {

struct ReportArgs {
  std::vector<std::string> run_dirs;
  std::string output;
  std::string title;
};

void run(const ReportArgs& a) {
  const train::ReportSummary s = train::write_report(a.run_dirs, a.output, a.title);
  for (const auto& note : s.skipped) fmt::print("skipped: {}\n", note);
  fmt::print("report of {} run(s) ({} with metrics): {}\n", a.run_dirs.size(), s.runs_drawn, a.output);
}

LMFORGE_COMMAND("report", "Draw one or more runs' metrics into one self-contained HTML page", [](CLI::App& sub) {
  auto args = std::make_shared<ReportArgs>();
  sub.add_option("run_dirs", args->run_dirs,
                 "run directories (each holding metrics.jsonl and config.toml, or a train/ that does)")
      ->required();
  sub.add_option("--output,-o", args->output, "the HTML file to write")->required();
  sub.add_option("--title", args->title, "the page's title (default: the run directory, or \"lmforge runs\")");
  sub.callback([args] { run(*args); });
});

}  // namespace
}  // namespace lmforge::cli
