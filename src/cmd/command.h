// Command: what a subcommand declares to the CLI root (src/main.cpp): its
// name, help text, settings and entry point. The root parses the command
// line, resolves the settings (flag > environment > config file > default),
// sets up logging and calls `run`. Each subcommand lives in its own file in
// src/cmd/ and exposes one factory function below.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "core/config.h"

namespace kvcached {

struct CommandContext {
  const Config& config;
  // Resolves the settings again from the same flags and the current
  // environment and config file (SIGHUP). Thread-safe.
  std::function<Result<Config>()> reload;
};

struct Command {
  std::string name;
  std::string summary;      // one line for `kvcached --help`
  std::string description;  // paragraph for `kvcached <name> --help`
  std::vector<OptionSpec> options;
  std::function<int(const CommandContext&)> run;
};

Command MasterCommand();
Command MetaCommand();
Command StoreCommand();
Command BenchCommand();

// The settings every subcommand has: --config, --log-level.
std::vector<OptionSpec> CommonOptions();

// Parses argv and runs the chosen subcommand; returns the exit code.
int RunCli(int argc, char** argv);

// The binary invoked as mooncake_master: Mooncake's master flags translated
// (cmd/mooncake_master.h), then RunCli as `kvcached master`.
int RunMooncakeMaster(int argc, char** argv);

}  // namespace kvcached
