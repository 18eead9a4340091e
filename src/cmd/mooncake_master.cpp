// Mooncake's master flags, and what each becomes in `kvcached master`. The
// table below is the one list: the parser checks kinds against it, --help
// prints it, and Build() says what each value does.
#include "cmd/mooncake_master.h"

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdlib>
#include <optional>
#include <string_view>

#include <nlohmann/json.hpp>

namespace kvcached {
namespace {

enum class Kind { kBool, kUInt, kDouble, kText };

struct MooncakeFlag {
  const char* name;
  Kind kind;
  const char* here;  // what it does in kvcached, for --help
  // Accepted without effect here: a given value is noted in the log.
  bool no_effect = false;
};

// Every flag of Mooncake's master (mooncake-store/src/master.cpp), in its order.
constexpr MooncakeFlag kFlags[] = {
    {"config_path", Kind::kText, "JSON file of these settings (flags override it; no YAML)"},
    {"port", Kind::kUInt, "--port (--rpc_port wins when above 0)"},
    {"max_threads", Kind::kUInt, "--threads (--rpc_thread_num wins when above 0)"},
    {"enable_metric_reporting", Kind::kBool, "no effect: /metrics is always served", true},
    {"metrics_port", Kind::kUInt, "--admin-port: /metrics, /health and Mooncake's admin paths"},
    {"default_kv_lease_ttl", Kind::kUInt, "--default-kv-lease-ttl, in milliseconds"},
    {"default_kv_soft_pin_ttl", Kind::kUInt, "--default-kv-soft-pin-ttl, in milliseconds"},
    {"allow_evict_soft_pinned_objects", Kind::kBool, "--allow-evict-soft-pinned-objects"},
    {"eviction_ratio", Kind::kDouble, "--eviction-ratio"},
    {"eviction_high_watermark_ratio", Kind::kDouble, "--eviction-high-watermark-ratio"},
    {"rpc_thread_num", Kind::kUInt, "--threads"},
    {"rpc_port", Kind::kUInt, "--port"},
    {"rpc_address", Kind::kText,
     "--host, every listener's address (default here 127.0.0.1; another needs --token-file "
     "or --insecure)"},
    {"rpc_conn_timeout_seconds", Kind::kUInt, "--idle-timeout in seconds (0: kvcached's 10 min)"},
    {"rpc_enable_tcp_no_delay", Kind::kBool, "always on here; =false has no effect"},
    {"enable_ha", Kind::kBool,
     "one of several masters electing a leader in etcd (needs --etcd_endpoints; docs/ha.md)"},
    {"enable_offload", Kind::kBool,
     "no switch needed: a store's --disk-path gives its segment a disk tier, which this master "
     "uses (docs/disk-tier.md)",
     true},
    {"etcd_endpoints", Kind::kText, "--etcd-endpoints (read with --enable_ha only)"},
    {"client_ttl", Kind::kUInt, "--client-ttl, in seconds"},
    {"root_fs_dir", Kind::kText, "refused when set: there is no file storage backend"},
    {"global_file_segment_size", Kind::kUInt, "no effect: there is no file storage backend", true},
    {"cluster_id", Kind::kText, "--cluster-id (read with --enable_ha only)"},
    {"memory_allocator", Kind::kText, "offset (kvcached's best-fit allocator); cachelib is noted"},
    {"allocation_strategy", Kind::kText,
     "--allocation-strategy: random, free_ratio_first (free-ratio); cxl refused"},
    {"enable_http_metadata_server", Kind::kBool,
     "the metadata service in-process (default false, as in Mooncake; false: --no-meta)"},
    {"http_metadata_server_port", Kind::kUInt, "--meta-port"},
    {"http_metadata_server_host", Kind::kText,
     "no effect of its own: every listener binds --rpc_address's host", true},
    {"put_start_discard_timeout_sec", Kind::kUInt, "--put-start-discard-timeout, in seconds"},
    {"put_start_release_timeout_sec", Kind::kUInt, "--put-start-release-timeout, in seconds"},
    {"enable_disk_eviction", Kind::kBool,
     "no effect: a full disk tier always drops its least recently used objects", true},
    {"quota_bytes", Kind::kUInt, "no effect: there is no storage backend (see --tenant-quotas)",
     true},
    {"max_total_finished_tasks", Kind::kUInt, "--max-finished-tasks"},
    {"max_total_pending_tasks", Kind::kUInt, "--max-pending-tasks (pending and processing)"},
    {"max_total_processing_tasks", Kind::kUInt,
     "no effect: each task's client runs it as soon as it is created", true},
    {"pending_task_timeout_sec", Kind::kUInt,
     "no effect: tasks time out after --put-start-release-timeout", true},
    {"processing_task_timeout_sec", Kind::kUInt,
     "no effect: tasks time out after --put-start-release-timeout", true},
    {"cxl_path", Kind::kText, "no effect: CXL is not supported", true},
    {"cxl_size", Kind::kUInt, "no effect: CXL is not supported", true},
    {"enable_cxl", Kind::kBool, "refused when true: CXL is not supported"},
};

const MooncakeFlag* FindFlag(std::string_view name) {
  for (const MooncakeFlag& f : kFlags) {
    if (name == f.name) return &f;
  }
  return nullptr;
}

Status Invalid(const std::string& message) { return Status(ErrorCode::INVALID_PARAMS, message); }

// gflags' spellings of a boolean, as "true" or "false".
std::optional<std::string> CanonicalBool(std::string_view v) {
  std::string lower;
  for (char c : v) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  for (const char* t : {"true", "t", "yes", "y", "1"}) {
    if (lower == t) return "true";
  }
  for (const char* f : {"false", "f", "no", "n", "0"}) {
    if (lower == f) return "false";
  }
  return std::nullopt;
}

// The value as this flag's kind takes it, in a canonical spelling.
Result<std::string> CheckValue(const MooncakeFlag& flag, const std::string& value) {
  const std::string where = "--" + std::string(flag.name) + ": '" + value + "'";
  switch (flag.kind) {
    case Kind::kBool: {
      std::optional<std::string> b = CanonicalBool(value);
      if (!b) return Invalid(where + " is not true or false");
      return *b;
    }
    case Kind::kUInt: {
      bool digits = !value.empty() && value.size() <= 19 &&
                    value.find_first_not_of("0123456789") == std::string::npos;
      if (!digits) return Invalid(where + " is not a whole number");
      return value;
    }
    case Kind::kDouble: {
      errno = 0;
      char* end = nullptr;
      double d = std::strtod(value.c_str(), &end);
      if (value.empty() || *end != '\0' || errno != 0 || !std::isfinite(d)) {
        return Invalid(where + " is not a number");
      }
      return value;
    }
    case Kind::kText:
      return value;
  }
  return value;
}

using Values = std::map<std::string, std::string>;

// Mooncake's config file: a JSON object whose keys are the flags' names
// (client_ttl is client_live_ttl_sec there). Unknown keys are noted, as
// Mooncake ignores them.
Status ReadConfigFile(const std::string& path, const ConfigFileLoader& load_json, Values& values,
                      std::vector<std::string>& notes) {
  std::string_view ext = std::string_view(path).substr(std::min(path.size(), path.rfind('.')));
  if (ext == ".yaml" || ext == ".yml") {
    return Invalid("--config_path " + path +
                   ": Mooncake's YAML form is not read here; give the same keys as JSON");
  }
  Result<nlohmann::json> doc = load_json(path);
  if (!doc.ok()) return Invalid("--config_path: " + doc.status().message());
  for (const auto& [key, v] : doc->items()) {
    std::string name = key == "client_live_ttl_sec" ? "client_ttl" : key;
    const MooncakeFlag* flag = FindFlag(name);
    if (flag == nullptr || name == "config_path") {
      notes.push_back("--config_path: unknown key '" + key + "' ignored");
      continue;
    }
    std::string raw = v.is_string() ? v.get<std::string>() : v.dump();
    Result<std::string> checked = CheckValue(*flag, raw);
    if (!checked.ok()) return Invalid("--config_path " + path + ": " + checked.status().message());
    values[name] = *checked;
  }
  return Status::Ok();
}

struct Parsed {
  Values values;
  std::vector<std::string> passthrough;
  bool help = false;
  bool version = false;
};

// One pass over argv in gflags' forms. A flag not Mooncake's but one of
// kvcached master's passes through as written.
Status ParseArgs(const std::vector<std::string>& args, const std::map<std::string, bool>& own,
                 Parsed& out) {
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg.size() < 2 || arg[0] != '-') {
      return Invalid("unexpected argument '" + arg +
                     "' (a flag's value follows '=' or the flag; see mooncake_master --help)");
    }
    std::string body = arg.substr(arg[1] == '-' ? 2 : 1);
    size_t eq = body.find('=');
    std::string name = body.substr(0, eq);
    std::optional<std::string> value;
    if (eq != std::string::npos) value = body.substr(eq + 1);
    if (name == "help" || name == "helpfull" || name == "helpshort") {
      out.help = true;
      continue;
    }
    if (name == "version") {
      out.version = true;
      continue;
    }
    const MooncakeFlag* flag = FindFlag(name);
    if (flag == nullptr && !value && name.rfind("no", 0) == 0) {
      const MooncakeFlag* negated = FindFlag(name.substr(2));
      if (negated != nullptr && negated->kind == Kind::kBool) {
        out.values[negated->name] = "false";
        continue;
      }
    }
    if (flag == nullptr) {
      auto it = own.find(name);
      if (it == own.end()) {
        return Invalid("unknown flag '" + arg + "' (see mooncake_master --help)");
      }
      out.passthrough.push_back(arg);
      if (!it->second && !value && i + 1 < args.size()) out.passthrough.push_back(args[++i]);
      continue;
    }
    if (!value) {
      if (flag->kind == Kind::kBool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return Invalid("--" + name + " needs a value");
      }
    }
    Result<std::string> checked = CheckValue(*flag, *value);
    if (!checked.ok()) return checked.status();
    out.values[name] = *checked;
  }
  return Status::Ok();
}

Status NotSupported(const std::string& message) {
  return Status(ErrorCode::NOT_SUPPORTED, message);
}

// Refuses what asks for a feature kvcached lacks, so that no one runs
// without it unknowingly.
Status RefuseMissingFeatures(const Values& v) {
  auto on = [&](const char* name) {
    auto it = v.find(name);
    return it != v.end() && it->second == "true";
  };
  if (on("enable_cxl")) return NotSupported("--enable_cxl: CXL memory is not supported");
  if (auto it = v.find("root_fs_dir"); it != v.end() && !it->second.empty()) {
    return NotSupported("--root_fs_dir: there is no file storage backend; objects live in DRAM");
  }
  if (auto it = v.find("allocation_strategy"); it != v.end() && it->second == "cxl") {
    return NotSupported("--allocation_strategy=cxl: CXL memory is not supported");
  }
  return Status::Ok();
}

// The first of `names` given with a value above 0.
std::optional<std::string> FirstPositive(const Values& v,
                                         std::initializer_list<const char*> names) {
  for (const char* n : names) {
    auto it = v.find(n);
    if (it != v.end() && it->second.find_first_not_of('0') != std::string::npos) return it->second;
  }
  return std::nullopt;
}

// From the flags' values to `kvcached master`'s command line and the notes.
Status Build(const Values& v, MooncakeMasterArgs& out) {
  if (Status st = RefuseMissingFeatures(v); !st.ok()) return st;
  auto arg = [&](const std::string& flag, const std::string& value) {
    out.master_args.push_back("--" + flag + "=" + value);
  };
  auto given = [&](const char* name) -> const std::string* {
    auto it = v.find(name);
    return it == v.end() ? nullptr : &it->second;
  };
  if (auto port = FirstPositive(v, {"rpc_port"})) {
    arg("port", *port);
  } else if (const std::string* p = given("port")) {
    arg("port", *p);
  }
  if (auto threads = FirstPositive(v, {"rpc_thread_num", "max_threads"})) arg("threads", *threads);
  if (const std::string* a = given("rpc_address")) arg("host", *a);
  if (auto idle = FirstPositive(v, {"rpc_conn_timeout_seconds"})) arg("idle-timeout", *idle + "s");
  if (const std::string* p = given("metrics_port")) arg("admin-port", *p);
  if (const std::string* t = given("default_kv_lease_ttl")) arg("default-kv-lease-ttl", *t + "ms");
  if (const std::string* t = given("default_kv_soft_pin_ttl")) {
    arg("default-kv-soft-pin-ttl", *t + "ms");
  }
  if (const std::string* b = given("allow_evict_soft_pinned_objects")) {
    arg("allow-evict-soft-pinned-objects", *b);
  }
  if (const std::string* r = given("eviction_ratio")) arg("eviction-ratio", *r);
  if (const std::string* r = given("eviction_high_watermark_ratio")) {
    arg("eviction-high-watermark-ratio", *r);
  }
  if (const std::string* t = given("client_ttl")) arg("client-ttl", *t + "s");
  if (const std::string* t = given("put_start_discard_timeout_sec")) {
    arg("put-start-discard-timeout", *t + "s");
  }
  if (const std::string* t = given("put_start_release_timeout_sec")) {
    arg("put-start-release-timeout", *t + "s");
  }
  if (auto n = FirstPositive(v, {"max_total_pending_tasks"})) arg("max-pending-tasks", *n);
  if (auto n = FirstPositive(v, {"max_total_finished_tasks"})) arg("max-finished-tasks", *n);
  if (const std::string* s = given("allocation_strategy")) {
    if (*s == "random") {
      arg("allocation-strategy", "random");
    } else if (*s == "free_ratio_first") {
      arg("allocation-strategy", "free-ratio");
    } else {
      return Invalid("--allocation_strategy: '" + *s + "' is not random, free_ratio_first or cxl");
    }
  }
  if (const std::string* m = given("memory_allocator"); m && *m != "offset") {
    if (*m != "cachelib") {
      return Invalid("--memory_allocator: '" + *m + "' is not offset or cachelib");
    }
    out.notes.push_back("--memory_allocator=cachelib: kvcached has one allocator (best fit)");
  }
  if (const std::string* ha = given("enable_ha"); ha && *ha == "true") {
    const std::string* endpoints = given("etcd_endpoints");
    if (endpoints == nullptr || endpoints->empty()) {
      return Invalid("--enable_ha needs --etcd_endpoints (host:port;host:port)");
    }
    arg("etcd-endpoints", *endpoints);
    if (const std::string* id = given("cluster_id"); id && !id->empty()) arg("cluster-id", *id);
    // The leader serves until one read lease before its etcd lease (5 s,
    // Mooncake's) could end: a longer read lease takes a longer etcd lease.
    if (const std::string* t = given("default_kv_lease_ttl")) {
      uint64_t ms = std::strtoull(t->c_str(), nullptr, 10);
      if (ms * 2 > 5000) {
        uint64_t lease_s = (ms * 2 + 999) / 1000;
        arg("etcd-lease-ttl", std::to_string(lease_s) + "s");
        out.notes.push_back("--default_kv_lease_ttl=" + *t + " with --enable_ha: the leader's etcd lease is " +
                            std::to_string(lease_s) +
                            " s (twice the read lease), so a failover takes about that long");
      }
    }
  } else if (given("etcd_endpoints") || given("cluster_id")) {
    out.notes.push_back("--etcd_endpoints and --cluster_id have no effect without --enable_ha");
  }
  const std::string* meta = given("enable_http_metadata_server");
  if (meta == nullptr || *meta == "false") out.master_args.push_back("--no-meta");
  if (const std::string* p = given("http_metadata_server_port")) arg("meta-port", *p);
  for (const MooncakeFlag& f : kFlags) {
    if (!f.no_effect || v.count(f.name) == 0) continue;
    out.notes.push_back("--" + std::string(f.name) + ": " + f.here);
  }
  if (const std::string* nd = given("rpc_enable_tcp_no_delay"); nd && *nd == "false") {
    out.notes.push_back("--rpc_enable_tcp_no_delay=false: TCP_NODELAY stays on");
  }
  return Status::Ok();
}

}  // namespace

Result<MooncakeMasterArgs> TranslateMooncakeMasterArgs(
    const std::vector<std::string>& args, const std::map<std::string, bool>& kvcached_options,
    const ConfigFileLoader& load_json) {
  Parsed parsed;
  if (Status st = ParseArgs(args, kvcached_options, parsed); !st.ok()) return st;
  MooncakeMasterArgs out;
  out.help = parsed.help;
  out.version = parsed.version;
  if (out.help || out.version) return out;
  // The file first, then the command line over it, as Mooncake does.
  Values values;
  if (auto it = parsed.values.find("config_path");
      it != parsed.values.end() && !it->second.empty()) {
    if (Status st = ReadConfigFile(it->second, load_json, values, out.notes); !st.ok()) return st;
  }
  for (const auto& [name, value] : parsed.values) {
    if (name != "config_path") values[name] = value;
  }
  if (Status st = Build(values, out); !st.ok()) return st;
  out.master_args.insert(out.master_args.end(), parsed.passthrough.begin(),
                         parsed.passthrough.end());
  return out;
}

std::string MooncakeMasterHelp() {
  std::string out =
      "mooncake_master: kvcached's master under the name and flags of Mooncake's master.\n"
      "\n"
      "Usage: mooncake_master [--flag=value ...]\n"
      "\n"
      "Mooncake's flags (--name=value, --name value, --name / --noname for switches), and\n"
      "what each does here:\n";
  for (const MooncakeFlag& f : kFlags) {
    std::string name = "  --" + std::string(f.name);
    name.resize(std::max<size_t>(name.size() + 1, 36), ' ');
    out += name + f.here + "\n";
  }
  out +=
      "\n"
      "Any option of 'kvcached master' passes through as written (e.g. --token-file,\n"
      "--insecure, --tenant-quotas, --log-level); see 'kvcached master --help'.\n"
      "Flags of features kvcached lacks exit 69 with a message when turned on; flags\n"
      "without effect here are noted in the log. docs/compat.md lists every flag.\n";
  return out;
}

bool InvokedAsMooncakeMaster(const char* argv0) {
  if (argv0 == nullptr) return false;
  std::string_view name(argv0);
  size_t slash = name.rfind('/');
  if (slash != std::string_view::npos) name = name.substr(slash + 1);
  return name == "mooncake_master";
}

}  // namespace kvcached
