#include "core/config.h"

#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

namespace kvcached {

std::string EnvNameFor(const std::string& option_name) {
  std::string out = "KVCACHED_";
  for (char c : option_name) {
    out += c == '-' ? '_' : static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  }
  return out;
}

std::string FileKeyFor(const std::string& option_name) {
  std::string out = option_name;
  for (char& c : out) {
    if (c == '-') c = '_';
  }
  return out;
}

const char* ConfigSourceName(ConfigSource source) {
  switch (source) {
    case ConfigSource::kDefault:
      return "default";
    case ConfigSource::kFile:
      return "config file";
    case ConfigSource::kEnv:
      return "environment";
    case ConfigSource::kFlag:
      return "command line";
  }
  return "?";
}

const ConfigValue& Config::Get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) {
    std::fprintf(stderr, "kvcached: internal error: undeclared option '%s'\n", name.c_str());
    std::abort();
  }
  return it->second;
}

std::string Config::Describe() const {
  std::string out;
  for (const auto& [name, value] : values_) {
    if (!value.set) continue;
    if (!out.empty()) out += ", ";
    out += name + "=" + (name.find("token") != std::string::npos ? "<set>" : value.raw);
    if (value.source != ConfigSource::kDefault) out += " (" + value.origin + ")";
  }
  return out;
}

EnvLookup ProcessEnv() {
  return [](const std::string& name) -> std::optional<std::string> {
    const char* v = std::getenv(name.c_str());
    if (v == nullptr || *v == '\0') return std::nullopt;
    return std::string(v);
  };
}

Result<nlohmann::json> LoadConfigFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    return Status(ErrorCode::INVALID_PARAMS, "cannot read config file '" + path + "'");
  }
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json doc = nlohmann::json::parse(buf.str(), nullptr, /*allow_exceptions=*/false,
                                             /*ignore_comments=*/true);
  if (doc.is_discarded()) {
    // Re-parse with exceptions only to obtain the position for the message.
    try {
      nlohmann::json ignored = nlohmann::json::parse(buf.str(), nullptr, true, true);
      (void)ignored;
    } catch (const nlohmann::json::parse_error& e) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "config file '" + path + "' is not valid JSON: " + e.what());
    }
    return Status(ErrorCode::INVALID_PARAMS, "config file '" + path + "' is not valid JSON");
  }
  if (!doc.is_object()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "config file '" + path + "' must hold a JSON object of settings");
  }
  return doc;
}

// Long because it is one case per OptionKind, each with its own message;
// split up, the kinds' rules would no longer read side by side.
Status ParseOptionValue(const OptionSpec& spec, const std::string& raw, ConfigValue& out) {
  out.raw = raw;
  switch (spec.kind) {
    case OptionKind::kString:
    case OptionKind::kPath:
      return Status::Ok();
    case OptionKind::kSize: {
      Result<uint64_t> v = ParseSize(raw);
      if (!v.ok()) return v.status();
      if (*v < spec.min || *v > spec.max) {
        return Status(
            ErrorCode::INVALID_PARAMS,
            "'" + raw + "' is out of range (" + FormatSize(spec.min) + " to " +
                (spec.max == UINT64_MAX ? std::string("unlimited") : FormatSize(spec.max)) + ")");
      }
      out.number = *v;
      return Status::Ok();
    }
    case OptionKind::kUInt: {
      bool digits = !raw.empty();
      uint64_t v = 0;
      for (char c : raw) {
        if (!std::isdigit(static_cast<unsigned char>(c))) {
          digits = false;
          break;
        }
        if (__builtin_mul_overflow(v, 10, &v) ||
            __builtin_add_overflow(v, static_cast<uint64_t>(c - '0'), &v)) {
          return Status(ErrorCode::INVALID_PARAMS, "'" + raw + "' is too large");
        }
      }
      if (!digits) {
        return Status(ErrorCode::INVALID_PARAMS, "'" + raw + "' is not a whole number");
      }
      if (v < spec.min || v > spec.max) {
        return Status(ErrorCode::INVALID_PARAMS, "'" + raw + "' is out of range (" +
                                                     std::to_string(spec.min) + " to " +
                                                     std::to_string(spec.max) + ")");
      }
      out.number = v;
      return Status::Ok();
    }
    case OptionKind::kDuration: {
      Result<std::chrono::milliseconds> v = ParseDuration(raw, spec.bare_unit);
      if (!v.ok()) return v.status();
      uint64_t ms = static_cast<uint64_t>(v->count());
      if (ms < spec.min || ms > spec.max) {
        std::string upper = spec.max == UINT64_MAX
                                ? std::string("unlimited")
                                : FormatDuration(std::chrono::milliseconds(spec.max));
        return Status(ErrorCode::INVALID_PARAMS,
                      "'" + raw + "' is out of range (" +
                          FormatDuration(std::chrono::milliseconds(spec.min)) + " to " + upper +
                          ")");
      }
      out.duration = *v;
      return Status::Ok();
    }
    case OptionKind::kBool: {
      std::string v;
      for (char c : raw) v += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      if (v == "true" || v == "1" || v == "yes" || v == "on") {
        out.flag = true;
      } else if (v == "false" || v == "0" || v == "no" || v == "off") {
        out.flag = false;
      } else {
        return Status(ErrorCode::INVALID_PARAMS, "'" + raw + "' is not true or false");
      }
      return Status::Ok();
    }
    case OptionKind::kRatio: {
      // Plain decimals only ("0.9", "1", ".05"): no exponents, signs or units.
      bool digits = false;
      bool dot = false;
      for (char c : raw) {
        if (std::isdigit(static_cast<unsigned char>(c))) {
          digits = true;
        } else if (c == '.' && !dot) {
          dot = true;
        } else {
          digits = false;
          break;
        }
      }
      double v = digits ? std::strtod(raw.c_str(), nullptr) : -1;
      if (!digits || v < 0 || v > 1) {
        return Status(ErrorCode::INVALID_PARAMS,
                      "'" + raw + "' is not a ratio between 0 and 1 (e.g. 0.9)");
      }
      out.ratio = v;
      return Status::Ok();
    }
    case OptionKind::kChoice: {
      for (const std::string& c : spec.choices) {
        if (c == raw) return Status::Ok();
      }
      std::string list;
      for (const std::string& c : spec.choices) list += (list.empty() ? "" : ", ") + c;
      return Status(ErrorCode::INVALID_PARAMS, "'" + raw + "' is not one of: " + list);
    }
  }
  return Status(ErrorCode::INTERNAL_ERROR, "unknown option kind");
}

ConfigResolver::ConfigResolver(std::vector<OptionSpec> specs) : specs_(std::move(specs)) {}

Result<Config> ConfigResolver::Resolve(const std::map<std::string, std::string>& flags,
                                       const EnvLookup& env, const nlohmann::json* file,
                                       const std::string& file_name,
                                       ConfigSource* failed_source) const {
  auto fail = [&](ConfigSource source, std::string message) -> Result<Config> {
    if (failed_source != nullptr) *failed_source = source;
    return Status(ErrorCode::INVALID_PARAMS, std::move(message));
  };

  if (file != nullptr) {
    for (const auto& [key, unused] : file->items()) {
      if (key == "config") {
        return fail(ConfigSource::kFile,
                    "config file '" + file_name + "': 'config' cannot be set inside a config file");
      }
      bool known = false;
      for (const OptionSpec& spec : specs_) {
        if (key == FileKeyFor(spec.name) || key == spec.name) known = true;
      }
      if (!known) {
        return fail(ConfigSource::kFile,
                    "config file '" + file_name + "': unknown setting '" + key + "'");
      }
    }
  }

  Config config;
  for (const OptionSpec& spec : specs_) {
    ConfigValue value;
    std::optional<std::string> raw;

    if (auto it = flags.find(spec.name); it != flags.end()) {
      raw = it->second;
      value.source = ConfigSource::kFlag;
      value.origin = "--" + spec.name;
    }
    if (!raw && spec.read_env && env) {
      std::vector<std::string> names{EnvNameFor(spec.name)};
      names.insert(names.end(), spec.extra_env.begin(), spec.extra_env.end());
      for (const std::string& name : names) {
        if (auto v = env(name)) {
          raw = *v;
          value.source = ConfigSource::kEnv;
          value.origin = name;
          break;
        }
      }
    }
    if (!raw && file != nullptr) {
      for (const std::string& key : {FileKeyFor(spec.name), spec.name}) {
        auto it = file->find(key);
        if (it == file->end()) continue;
        if (it->is_string()) {
          raw = it->get<std::string>();
        } else if (it->is_boolean()) {
          raw = it->get<bool>() ? "true" : "false";
        } else if (it->is_number_unsigned()) {
          raw = std::to_string(it->get<uint64_t>());
        } else if (it->is_number()) {
          raw = it->dump();  // negative or fractional: the parser says why it is wrong
        } else {
          return fail(ConfigSource::kFile, "config file '" + file_name + "': setting '" + key +
                                               "' must be a string, number or boolean");
        }
        value.source = ConfigSource::kFile;
        value.origin = "config file " + file_name;
        break;
      }
    }
    if (!raw && !spec.default_value.empty()) {
      raw = spec.default_value;
      value.source = ConfigSource::kDefault;
      value.origin = "default";
    }
    if (raw) {
      value.set = true;
      Status st = ParseOptionValue(spec, *raw, value);
      if (!st.ok()) {
        std::string where = value.source == ConfigSource::kFlag ? "--" + spec.name
                            : value.source == ConfigSource::kEnv
                                ? "--" + spec.name + " (from " + value.origin + ")"
                            : value.source == ConfigSource::kFile
                                ? "--" + spec.name + " (from " + value.origin + ")"
                                : "--" + spec.name + " (built-in default)";
        return fail(value.source, "invalid value for " + where + ": " + st.message());
      }
    }
    config.values_[spec.name] = std::move(value);
  }
  return config;
}

}  // namespace kvcached
