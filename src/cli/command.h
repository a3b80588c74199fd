// The one command registry of the lmforge binary. Each command lives in its own file under
// src/cli/ and registers itself with a static LMFORGE_COMMAND(...) object, or, nested under
// another command (`lmforge tokenizer encode`), LMFORGE_SUBCOMMAND(parent, ...); main() builds the
// CLI11 app from the list with add_commands().
#pragma once

#include <CLI/CLI.hpp>

#include <functional>
#include <string>
#include <vector>

#include "train/config.h"

namespace lmforge::cli {

struct Command {
  std::string name;
  std::string help;
  // Adds options and sets the callback on the subcommand's CLI::App.
  std::function<void(CLI::App& sub)> setup;
  std::string parent;  // empty: a top-level command
};

std::vector<Command>& command_registry();
// Adds every registered command to `app`, each level sorted by name, nested commands under their
// parent (which then requires one of them).
void add_commands(CLI::App& app);

struct CommandRegistrar {
  explicit CommandRegistrar(Command c) { command_registry().push_back(std::move(c)); }
};

// --precision of the commands that run a checkpoint (eval, score, generate): the dtype the
// forward computes in, as train.precision; auto is bf16 on a GPU and f32 on the CPU.
void add_precision_option(CLI::App& sub, std::string& value);
train::Precision precision_of(const std::string& value);

}  // namespace lmforge::cli

#define LMFORGE_CONCAT_INNER(a, b) a##b
#define LMFORGE_CONCAT(a, b) LMFORGE_CONCAT_INNER(a, b)
// LMFORGE_COMMAND("name", "help", [](CLI::App& sub) { ... });
#define LMFORGE_COMMAND(name, help, setup)                                             \
  static ::lmforge::cli::CommandRegistrar LMFORGE_CONCAT(lmforge_command_, __COUNTER__) { \
    ::lmforge::cli::Command { name, help, setup, "" }                                  \
  }
// LMFORGE_SUBCOMMAND("parent", "name", "help", [](CLI::App& sub) { ... }): `lmforge parent name`.
#define LMFORGE_SUBCOMMAND(parent, name, help, setup)                                     \
  static ::lmforge::cli::CommandRegistrar LMFORGE_CONCAT(lmforge_subcommand_, __COUNTER__) { \
    ::lmforge::cli::Command { name, help, setup, parent }                                 \
  }
