// lmforge: one binary, one file per subcommand (see command.h).
#include <cstdio>
#include <exception>

#include "cli/command.h"
#include "core/error.h"

int main(int argc, char** argv) {
  using namespace lmforge;
  CLI::App app{"lmforge: build language models from scratch — tokenizer, shards, training, "
               "evaluation, sampling"};
  app.require_subcommand(1);
  app.set_help_all_flag("--help-all", "Show help for every subcommand");
  cli::add_commands(app);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  } catch (const Error& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  } catch (const InternalError& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
