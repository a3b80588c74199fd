#include "cli/command.h"

#include <algorithm>
#include <map>

#include "core/error.h"

namespace lmforge::cli {

std::vector<Command>& command_registry() {
  static std::vector<Command> commands;
  return commands;
}

void add_commands(CLI::App& app) {
  std::vector<Command>& commands = command_registry();
  std::sort(commands.begin(), commands.end(), [](const Command& a, const Command& b) { return a.name < b.name; });
  std::map<std::string, CLI::App*> top;
  for (Command& c : commands) {
    if (!c.parent.empty()) continue;
    top[c.name] = app.add_subcommand(c.name, c.help);
    c.setup(*top[c.name]);
  }
  for (Command& c : commands) {
    if (c.parent.empty()) continue;
    const auto parent = top.find(c.parent);
    LF_ASSERT(parent != top.end(), "command {} is registered under {}, which is not a command", c.name, c.parent);
    parent->second->require_subcommand(1);
    c.setup(*parent->second->add_subcommand(c.name, c.help));
  }
}

}  // namespace lmforge::cli
