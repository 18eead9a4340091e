// `mooncake_master`: the kvcached binary under the name of Mooncake's master
// (a link installed by the kvcached-mooncake-compat package) takes Mooncake's
// gflags-style command line and its --config_path JSON file, and runs
// `kvcached master` with the same meaning. This module only translates;
// flags of features kvcached lacks are refused, flags without effect here
// are accepted with a note (docs/compat.md). Pure functions, thread-safe.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/status.h"

namespace kvcached {

struct MooncakeMasterArgs {
  bool help = false;
  bool version = false;
  // What follows `kvcached master` on its command line.
  std::vector<std::string> master_args;
  // One line per flag accepted without effect here, for the log.
  std::vector<std::string> notes;
};

// Translates Mooncake master's command line (without argv[0]). gflags'
// forms are accepted: --name=value, --name value, -name, --name and
// --noname for booleans. A flag named in `kvcached_options` (the options of
// `kvcached master`, e.g. "token-file", each with whether it is a switch)
// passes through unchanged.
// `load_json` reads the --config_path file (core/config.h's LoadConfigFile:
// a JSON object, or INVALID_PARAMS saying why not). Errors: INVALID_PARAMS for an
// unknown flag, a missing or malformed value or an unreadable config file;
// NOT_SUPPORTED for a feature kvcached does not have (--enable_ha, CXL,
// offload). The message names the flag.
using ConfigFileLoader = std::function<Result<nlohmann::json>(const std::string& path)>;

Result<MooncakeMasterArgs> TranslateMooncakeMasterArgs(
    const std::vector<std::string>& args, const std::map<std::string, bool>& kvcached_options,
    const ConfigFileLoader& load_json);

// The --help text: every Mooncake flag and what it becomes here.
std::string MooncakeMasterHelp();

// True when argv[0] names the binary mooncake_master.
bool InvokedAsMooncakeMaster(const char* argv0);

}  // namespace kvcached
