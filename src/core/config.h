// Config: the settings of one subcommand, resolved from four sources with one
// rule for all of them: command-line flag > environment > config file (JSON)
// > built-in default. Each setting is declared once as an OptionSpec; the
// resolver parses and range-checks every value whatever its source and says
// which source a bad value came from (a bad flag is a usage error, exit 2; a
// bad environment or file value is a configuration error, exit 78).
// Resolution is pure (the environment is injected); a resolved Config is
// immutable and safe to read from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"
#include "core/units.h"

namespace kvcached {

enum class OptionKind { kString, kPath, kSize, kDuration, kUInt, kBool, kChoice, kRatio };

struct OptionSpec {
  std::string name;  // long flag without dashes, e.g. "max-body-size"
  OptionKind kind = OptionKind::kString;
  std::string default_value;  // raw text, parsed like any other source; "" = unset
  std::string help;
  // Environment names read in this order after KVCACHED_<NAME>; e.g.
  // MOONCAKE_GLOBAL_SEGMENT_SIZE for the store's segment size.
  std::vector<std::string> extra_env;
  // Extra flag spellings without dashes (Mooncake's "default_kv_lease_ttl").
  std::vector<std::string> aliases;
  uint64_t min = 0;  // kUInt, kSize: inclusive bounds
  uint64_t max = UINT64_MAX;
  std::vector<std::string> choices;                 // kChoice
  DurationUnit bare_unit = DurationUnit::kSeconds;  // kDuration: unit of a bare number
  bool read_env = true;  // false for settings that make no sense per process env
};

// KVCACHED_MAX_BODY_SIZE for "max-body-size".
std::string EnvNameFor(const std::string& option_name);
// "max_body_size" for "max-body-size": the key in a JSON config file.
std::string FileKeyFor(const std::string& option_name);

enum class ConfigSource { kDefault, kFile, kEnv, kFlag };
const char* ConfigSourceName(ConfigSource source);

struct ConfigValue {
  bool set = false;  // false: no source gave a value and there is no default
  std::string raw;
  ConfigSource source = ConfigSource::kDefault;
  std::string origin;   // "--port", "KVCACHED_PORT", "config file x.json", "default"
  uint64_t number = 0;  // kSize, kUInt
  std::chrono::milliseconds duration{0};
  bool flag = false;  // kBool
  double ratio = 0;   // kRatio: a decimal in [0, 1]
};

class Config {
 public:
  // Accessors abort on a name that was not declared: that is a programming
  // error, not a user error.
  const ConfigValue& Get(const std::string& name) const;
  bool IsSet(const std::string& name) const { return Get(name).set; }
  // Given by a flag, the environment or a config file (not its default).
  bool IsGiven(const std::string& name) const {
    const ConfigValue& v = Get(name);
    return v.set && v.source != ConfigSource::kDefault;
  }
  const std::string& String(const std::string& name) const { return Get(name).raw; }
  uint64_t Number(const std::string& name) const { return Get(name).number; }
  std::chrono::milliseconds Duration(const std::string& name) const { return Get(name).duration; }
  bool Bool(const std::string& name) const { return Get(name).flag; }
  double Ratio(const std::string& name) const { return Get(name).ratio; }

  // "port=8080 (default), threads=4 (KVCACHED_THREADS)": for the start-up log.
  std::string Describe() const;

 private:
  friend class ConfigResolver;
  std::map<std::string, ConfigValue> values_;
};

using EnvLookup = std::function<std::optional<std::string>(const std::string&)>;
// Reads the real process environment. An empty variable counts as unset.
EnvLookup ProcessEnv();

// Reads a JSON config file that must hold one object. Fails with
// INVALID_PARAMS naming the file and the problem (missing, unreadable, not
// JSON with the position, not an object).
Result<nlohmann::json> LoadConfigFile(const std::string& path);

class ConfigResolver {
 public:
  explicit ConfigResolver(std::vector<OptionSpec> specs);

  // `flags` maps option name -> raw text given on the command line.
  // `file` may be null. On failure the Status names the option, the source
  // and the problem; *failed_source (if given) says which source was bad.
  // A key in the file that names no option is an error (typos are caught).
  Result<Config> Resolve(const std::map<std::string, std::string>& flags, const EnvLookup& env,
                         const nlohmann::json* file, const std::string& file_name,
                         ConfigSource* failed_source = nullptr) const;

  const std::vector<OptionSpec>& specs() const { return specs_; }

 private:
  std::vector<OptionSpec> specs_;
};

// Parses `raw` as `spec` says into `out` (number/duration/flag). The message
// of a failure says what was wrong with the text, not where it came from.
Status ParseOptionValue(const OptionSpec& spec, const std::string& raw, ConfigValue& out);

}  // namespace kvcached
