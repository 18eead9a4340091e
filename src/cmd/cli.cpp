// The CLI root: CLI11 for the shape of the command line, the core resolver
// for every value. CLI11 collects raw strings only, so one parser decides
// what "4gb" or "10s" means whether it came from a flag, the environment or
// the config file, and each error names the option and its source.
#include <cstdio>
#include <map>
#include <memory>

#include <spdlog/spdlog.h>
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

#include "cmd/command.h"
#include "cmd/mooncake_master.h"
#include "core/build_info.h"
#include "core/error_code.h"
#include "core/logging.h"
#include "rdma/rdma_devices.h"

namespace kvcached {
namespace {

std::string TypeName(const OptionSpec& spec) {
  switch (spec.kind) {
    case OptionKind::kString:
      return "TEXT";
    case OptionKind::kPath:
      return "PATH";
    case OptionKind::kSize:
      return "SIZE";
    case OptionKind::kDuration:
      return "DURATION";
    case OptionKind::kUInt:
      return "UINT";
    case OptionKind::kBool:
      return "";
    case OptionKind::kRatio:
      return "RATIO";
    case OptionKind::kChoice: {
      std::string out;
      for (const std::string& c : spec.choices) out += (out.empty() ? "" : "|") + c;
      return out;
    }
  }
  return "";
}

std::string HelpText(const OptionSpec& spec) {
  std::string out = spec.help;
  if (spec.read_env) {
    out += " [env: " + EnvNameFor(spec.name);
    for (const std::string& e : spec.extra_env) out += ", " + e;
    out += "]";
  }
  if (!spec.default_value.empty()) out += " [default: " + spec.default_value + "]";
  return out;
}

std::string VersionText() {
  const BuildInfo& b = GetBuildInfo();
  std::string out = VersionLine();
  out += "\nrevision: " + std::string(b.revision);
  out += "\nbuild type: " + std::string(b.build_type);
  out += std::string("\nsanitizers: ") + (b.sanitizers ? "address,undefined" : "off");
  if (b.fault_hooks) out += "\nfault hooks: compiled (a test build; not for production)";
  if (!b.rdma_compiled) {
    out += "\nrdma transport: not compiled (rdma-core development files were not found)";
    return out;
  }
  std::string why;
  auto devices = ListRdmaDevices(&why);
  out += "\nrdma transport: compiled (libibverbs); devices: ";
  if (devices.empty()) {
    out += "none (" + why + ")";
  } else {
    for (size_t i = 0; i < devices.size(); ++i) out += (i ? ", " : "") + devices[i].name;
  }
  return out;
}

// Raw command-line values of one subcommand, and the CLI11 options that
// collected them (so we can tell "given" from "not given").
struct FlagCapture {
  std::map<std::string, std::string> text;
  std::map<std::string, bool> switches;
  std::map<std::string, CLI::Option*> options;

  std::map<std::string, std::string> Given(const std::vector<OptionSpec>& specs) const {
    std::map<std::string, std::string> out;
    for (const OptionSpec& spec : specs) {
      const CLI::Option* opt = options.at(spec.name);
      if (opt->count() == 0) continue;
      out[spec.name] = spec.kind == OptionKind::kBool ? (switches.at(spec.name) ? "true" : "false")
                                                      : text.at(spec.name);
    }
    return out;
  }
};

void AddOptions(CLI::App* app, const std::vector<OptionSpec>& specs, FlagCapture& cap) {
  for (const OptionSpec& spec : specs) {
    std::string names = "--" + spec.name;
    for (const std::string& a : spec.aliases) names += ",--" + a;
    CLI::Option* opt = nullptr;
    if (spec.kind == OptionKind::kBool) {
      opt = app->add_flag(names, cap.switches[spec.name], HelpText(spec));
    } else {
      opt = app->add_option(names, cap.text[spec.name], HelpText(spec));
      opt->type_name(TypeName(spec));
    }
    opt->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
    cap.options[spec.name] = opt;
  }
}

struct Resolution {
  std::optional<Config> config;
  int exit_code = kExitOk;
  std::string error;
};

Resolution Resolve(const std::string& command, const std::vector<OptionSpec>& specs,
                   const std::map<std::string, std::string>& flags) {
  Resolution r;
  // The config file path itself comes from the flag or the environment only.
  std::string config_path;
  if (auto it = flags.find("config"); it != flags.end()) {
    config_path = it->second;
  } else if (auto env = ProcessEnv()(EnvNameFor("config"))) {
    config_path = *env;
  }
  std::optional<nlohmann::json> file;
  if (!config_path.empty()) {
    Result<nlohmann::json> loaded = LoadConfigFile(config_path);
    if (!loaded.ok()) {
      r.exit_code = kExitConfig;
      r.error = "kvcached " + command + ": " + loaded.status().message();
      return r;
    }
    file = std::move(loaded).value();
  }
  ConfigSource bad = ConfigSource::kDefault;
  Result<Config> cfg = ConfigResolver(specs).Resolve(flags, ProcessEnv(), file ? &*file : nullptr,
                                                     config_path, &bad);
  if (!cfg.ok()) {
    r.exit_code = bad == ConfigSource::kFlag ? kExitUsage : kExitConfig;
    r.error = "kvcached " + command + ": " + cfg.status().message();
    if (bad == ConfigSource::kFlag) r.error += " (see 'kvcached " + command + " --help')";
    return r;
  }
  r.config = std::move(cfg).value();
  return r;
}

}  // namespace

std::vector<OptionSpec> CommonOptions() {
  std::vector<OptionSpec> out;
  OptionSpec config;
  config.name = "config";
  config.kind = OptionKind::kPath;
  config.help =
      "JSON file of settings (keys are option names with '_' for '-'); "
      "flags and environment override it";
  out.push_back(config);
  OptionSpec level;
  level.name = "log-level";
  level.kind = OptionKind::kChoice;
  level.default_value = "info";
  level.choices.assign(std::begin(kLogLevels), std::end(kLogLevels));
  level.help = "Logging threshold";
  out.push_back(level);
  return out;
}

int RunCli(int argc, char** argv) {
  std::vector<Command> commands = {MasterCommand(), MetaCommand(), StoreCommand(), BenchCommand()};
  CLI::App app{
      "kvcached: a distributed KV-cache pool for LLM inference servers.\n"
      "Stores contribute memory, a master places objects, clients move bytes directly.",
      "kvcached"};
  app.set_version_flag("--version", VersionText(), "Print version, revision and build facts");
  app.require_subcommand(0, 1);
  app.footer(
      "Settings: command-line flag > environment (KVCACHED_<OPTION>, MOONCAKE_*) > "
      "--config JSON file > default.\n"
      "Exit codes: 0 ok, 2 bad command line, 69 not available in this build, 70 internal\n"
      "error, 75 temporary failure (e.g. address in use), 78 bad configuration.\n"
      "Run 'kvcached <subcommand> --help' for a subcommand's options; README.md and docs/\n"
      "describe deployment and configuration.");

  std::vector<FlagCapture> captures(commands.size());
  std::vector<std::vector<OptionSpec>> specs(commands.size());
  std::vector<CLI::App*> subs;
  for (size_t i = 0; i < commands.size(); ++i) {
    const Command& c = commands[i];
    CLI::App* sub = app.add_subcommand(c.name, c.summary);
    sub->footer(c.description + "\n\n" + std::string(app.get_footer()));
    specs[i] = CommonOptions();
    specs[i].insert(specs[i].end(), c.options.begin(), c.options.end());
    AddOptions(sub, specs[i], captures[i]);
    subs.push_back(sub);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion&) {
    std::printf("%s\n", VersionText().c_str());
    return kExitOk;
  } catch (const CLI::ParseError& e) {
    std::string where = "kvcached";
    std::string help = "kvcached --help";
    for (size_t i = 0; i < subs.size(); ++i) {
      if (subs[i]->parsed()) {
        where += " " + commands[i].name;
        help = "kvcached " + commands[i].name + " --help";
      }
    }
    std::fprintf(stderr, "%s: error: %s (see '%s')\n", where.c_str(), e.what(), help.c_str());
    return kExitUsage;
  }

  for (size_t i = 0; i < commands.size(); ++i) {
    if (!subs[i]->parsed()) continue;
    const Command& c = commands[i];
    std::map<std::string, std::string> flags = captures[i].Given(specs[i]);
    Resolution r = Resolve(c.name, specs[i], flags);
    if (!r.config) {
      std::fprintf(stderr, "%s\n", r.error.c_str());
      return r.exit_code;
    }
    if (Status st = InitLogging(c.name, r.config->String("log-level")); !st.ok()) {
      std::fprintf(stderr, "kvcached %s: %s\n", c.name.c_str(), st.message().c_str());
      return kExitConfig;
    }
    CommandContext ctx{*r.config, [name = c.name, spec = specs[i], flags]() -> Result<Config> {
                         Resolution again = Resolve(name, spec, flags);
                         if (!again.config) return Status(ErrorCode::INVALID_PARAMS, again.error);
                         return std::move(*again.config);
                       }};
    try {
      return c.run(ctx);
    } catch (const std::exception& e) {
      spdlog::critical("{}: fatal: {}", c.name, e.what());
      return kExitSoftware;
    }
  }

  std::fprintf(stderr, "%s\n", app.help().c_str());
  std::fprintf(stderr, "kvcached: error: a subcommand is required (master, meta, store, bench)\n");
  return kExitUsage;
}

int RunMooncakeMaster(int argc, char** argv) {
  std::map<std::string, bool> own;
  std::vector<OptionSpec> specs = CommonOptions();
  for (const OptionSpec& spec : MasterCommand().options) specs.push_back(spec);
  for (const OptionSpec& spec : specs) own[spec.name] = spec.kind == OptionKind::kBool;
  Result<MooncakeMasterArgs> translated = TranslateMooncakeMasterArgs(
      std::vector<std::string>(argv + 1, argv + argc), own, LoadConfigFile);
  if (!translated.ok()) {
    std::fprintf(stderr, "mooncake_master: error: %s\n", translated.status().message().c_str());
    return translated.code() == ErrorCode::NOT_SUPPORTED ? ExitCode(translated.code()) : kExitUsage;
  }
  if (translated->help) {
    std::printf("%s", MooncakeMasterHelp().c_str());
    return kExitOk;
  }
  if (translated->version) {
    std::printf("%s\n", VersionText().c_str());
    return kExitOk;
  }
  for (const std::string& note : translated->notes) {
    std::fprintf(stderr, "mooncake_master: note: %s\n", note.c_str());
  }
  std::vector<std::string> words = {"mooncake_master", "master"};
  words.insert(words.end(), translated->master_args.begin(), translated->master_args.end());
  std::vector<char*> cargv;
  for (std::string& w : words) cargv.push_back(w.data());
  cargv.push_back(nullptr);
  return RunCli(static_cast<int>(words.size()), cargv.data());
}

}  // namespace kvcached
