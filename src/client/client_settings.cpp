#include "client/client_settings.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <optional>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/auth_token.h"
#include "core/rdma_link.h"
#include "core/tenant.h"
#include "core/units.h"

namespace kvcached {
namespace {

constexpr std::pair<std::string_view, TransportMode> kTransports[] = {
    {"auto", TransportMode::kAuto},
    {"shm", TransportMode::kShm},
    {"tcp", TransportMode::kTcp},
    {"rdma", TransportMode::kRdma}};

SettingValue Text(std::string text) {
  SettingValue v;
  v.text = std::move(text);
  return v;
}
SettingValue Size(uint64_t bytes) {
  SettingValue v;
  v.size_bytes = bytes;
  return v;
}
SettingValue Millis(std::chrono::milliseconds d) {
  SettingValue v;
  v.duration = d;
  return v;
}
SettingValue Flag(bool on) {
  SettingValue v;
  v.flag = on;
  return v;
}
SettingValue Integer(int64_t n) {
  SettingValue v;
  v.integer = n;
  return v;
}

std::string ChoiceList(const ClientSetting& s) {
  std::string out;
  for (std::string_view c : s.choices) out += (out.empty() ? "" : ", ") + std::string(c);
  return out;
}

// Range text for messages: "1 to 64", "4 KiB to 1 GiB", "50ms to 1m".
std::string RangeText(const ClientSetting& s) {
  auto bound = [&s](uint64_t b) {
    switch (s.kind) {
      case SettingKind::kSize:
        return FormatSize(b);
      case SettingKind::kDuration:
        return FormatDuration(std::chrono::milliseconds(b));
      default:
        return std::to_string(b);
    }
  };
  std::string lo = s.min < 0 ? std::to_string(s.min) : bound(static_cast<uint64_t>(s.min));
  std::string hi = s.max == UINT64_MAX ? std::string("unlimited") : bound(s.max);
  std::string zero = s.zero_means.empty() ? "none" : std::string(s.zero_means);
  return (s.zero_is_off ? "0 (" + zero + ") or " : "") + lo + " to " + hi;
}

// Whether the value of a ranged setting lies in its range.
bool InRange(const ClientSetting& s, const SettingValue& v) {
  if (s.kind == SettingKind::kInt) {
    return v.integer >= s.min && (v.integer < 0 || static_cast<uint64_t>(v.integer) <= s.max);
  }
  uint64_t n =
      s.kind == SettingKind::kSize
          ? v.size_bytes
          : static_cast<uint64_t>(std::max<int64_t>(0, static_cast<int64_t>(v.duration.count())));
  if (s.kind == SettingKind::kDuration && v.duration.count() < 0) return false;
  if (n == 0 && s.zero_is_off) return true;
  return n >= static_cast<uint64_t>(std::max<int64_t>(s.min, 0)) && n <= s.max;
}

// Setters and getters of one ClientConfig field, by the field's type.
template <std::string ClientConfig::*F>
Status SetText(ClientConfig& c, const SettingValue& v) {
  c.*F = v.text;
  return Status::Ok();
}
template <std::string ClientConfig::*F>
SettingValue GetText(const ClientConfig& c) {
  return Text(c.*F);
}
template <uint64_t ClientConfig::*F>
Status SetSize(ClientConfig& c, const SettingValue& v) {
  c.*F = v.size_bytes;
  return Status::Ok();
}
template <uint64_t ClientConfig::*F>
SettingValue GetSize(const ClientConfig& c) {
  return Size(c.*F);
}
template <std::chrono::milliseconds ClientConfig::*F>
Status SetMillis(ClientConfig& c, const SettingValue& v) {
  c.*F = v.duration;
  return Status::Ok();
}
template <std::chrono::milliseconds ClientConfig::*F>
SettingValue GetMillis(const ClientConfig& c) {
  return Millis(c.*F);
}
template <bool ClientConfig::*F>
Status SetFlag(ClientConfig& c, const SettingValue& v) {
  c.*F = v.flag;
  return Status::Ok();
}
template <bool ClientConfig::*F>
SettingValue GetFlag(const ClientConfig& c) {
  return Flag(c.*F);
}
// Integers: the table's range has been checked, so the value fits the field.
template <typename T, T ClientConfig::*F>
Status SetInt(ClientConfig& c, const SettingValue& v) {
  c.*F = static_cast<T>(v.integer);
  return Status::Ok();
}
template <typename T, T ClientConfig::*F>
SettingValue GetInt(const ClientConfig& c) {
  return Integer(static_cast<int64_t>(c.*F));
}

Status SetTransport(ClientConfig& c, const SettingValue& v) {
  for (const auto& [name, mode] : kTransports) {
    if (name == v.text) c.transport = mode;
  }
  return Status::Ok();
}
SettingValue GetTransport(const ClientConfig& c) {
  for (const auto& [name, mode] : kTransports) {
    if (mode == c.transport) return Text(std::string(name));
  }
  return Text("?");
}

Status SetTenant(ClientConfig& c, const SettingValue& v) {
  Result<std::string> t = CanonicalTenant(v.text);
  if (!t.ok()) return t.status();
  c.tenant_id = *t;
  return Status::Ok();
}

Status LoadToken(ClientConfig& c, const SettingValue& v) {
  Result<AuthToken> token = AuthToken::LoadFile(v.text);
  if (!token.ok()) return token.status();
  c.token = token->secret();
  return Status::Ok();
}

Status ApplyFile(ClientConfig& c, const SettingValue& v) {
  return ApplyClientConfigFile(c, v.text);
}

// Long because it is the table: one entry per setting, read top to bottom.
std::vector<ClientSetting> BuildTable() {
  using C = ClientConfig;
  using K = SettingKind;
  std::vector<ClientSetting> t;
  auto add = [&t](ClientSetting s) { t.push_back(std::move(s)); };

  // Mooncake's setup() arguments and MOONCAKE_CONFIG_PATH's fields.
  add({.name = "local_hostname",
       .mooncake_env = "MOONCAKE_LOCAL_HOSTNAME",
       .json_key = "local_hostname",
       .help = "host id; the same one means shared memory (empty: the hostname)",
       .set = SetText<&C::local_hostname>,
       .get = GetText<&C::local_hostname>});
  add({.name = "metadata_server",
       .mooncake_env = "MOONCAKE_TE_META_DATA_SERVER",
       .json_key = "metadata_server",
       .help = "P2PHANDSHAKE, or where a contributed segment's descriptor is published: "
               "http://host:port/metadata or etcd://host:port[;host:port...]",
       .set = SetText<&C::metadata_server>,
       .get = GetText<&C::metadata_server>});
  add({.name = "global_segment_size",
       .mooncake_env = "MOONCAKE_GLOBAL_SEGMENT_SIZE",
       .json_key = "global_segment_size",
       .kind = K::kSize,
       .min = static_cast<int64_t>(kMinContributedSegmentBytes),
       .zero_is_off = true,
       .help = "bytes this client contributes to the pool (0: none)",
       .set = SetSize<&C::global_segment_size>,
       .get = GetSize<&C::global_segment_size>});
  add({.name = "local_buffer_size",
       .mooncake_env = "MOONCAKE_LOCAL_BUFFER_SIZE",
       .json_key = "local_buffer_size",
       .kind = K::kSize,
       .help = "accepted for compatibility and unused",
       .set = SetSize<&C::local_buffer_size>,
       .get = GetSize<&C::local_buffer_size>});
  add({.name = "protocol",
       .mooncake_env = "MOONCAKE_PROTOCOL",
       .json_key = "protocol",
       .kind = K::kChoice,
       .choices = {"tcp", "rdma"},
       .help = "tcp, or rdma: RDMA to stores that serve it",
       .set = SetText<&C::protocol>,
       .get = GetText<&C::protocol>});
  add({.name = "rdma_devices",
       .aliases = {"device_name"},
       .mooncake_env = "MOONCAKE_DEVICE",
       .json_key = "device_name",
       .help = "RDMA devices: a comma list or Mooncake's JSON rank map (empty: all active)",
       .set = SetText<&C::device_names>,
       .get = GetText<&C::device_names>});
  add({.name = "master_server_addr",
       .aliases = {"master_server_address"},
       .mooncake_env = "MOONCAKE_MASTER",
       .json_key = "master_server_address",
       .help = "the master's RPC address, host:port, or etcd://host:port[;host:port...] to "
               "follow the leader elected there",
       .set = SetText<&C::master_server_addr>,
       .get = GetText<&C::master_server_addr>});
  add({.name = "tenant_id",
       .mooncake_env = "MOONCAKE_TENANT_ID",
       .json_key = "tenant_id",
       .help = "the tenant whose key space this client uses (empty or 'default': the default)",
       .set = SetTenant,
       .get = GetText<&C::tenant_id>});
  add({.name = "enable_ssd_offload",
       .mooncake_env = "MOONCAKE_ENABLE_SSD_OFFLOAD",
       .json_key = "enable_ssd_offload",
       .kind = K::kBool,
       .help = "a disk tier under the contributed segment, in disk_path, else ssd_offload_path, "
               "else MOONCAKE_OFFLOAD_FILE_STORAGE_PATH",
       .set = SetFlag<&C::enable_ssd_offload>,
       .get = GetFlag<&C::enable_ssd_offload>});
  add({.name = "ssd_offload_path",
       .mooncake_env = "MOONCAKE_OFFLOAD_FILE_STORAGE_PATH",
       .json_key = "ssd_offload_path",
       .help = "with enable_ssd_offload: the disk tier's directory (unused without it)",
       .set = SetText<&C::ssd_offload_path>,
       .get = GetText<&C::ssd_offload_path>});

  // kvcached's own settings.
  add({.name = "rdma_gid_index",
       .kvcached_env = "KVCACHED_RDMA_GID_INDEX",
       .kind = K::kInt,
       .min = -1,
       .max = 255,
       .help = "GID index on every RDMA port (-1: chosen per port)",
       .set = SetInt<int, &C::rdma_gid_index>,
       .get = GetInt<int, &C::rdma_gid_index>});
  add({.name = "cluster_id",
       .kvcached_env = "KVCACHED_CLUSTER_ID",
       .json_key = "cluster_id",
       .help = "with an etcd:// master address: the masters' --cluster-id (empty: "
               "mooncake_cluster)",
       .set = SetText<&C::cluster_id>,
       .get = GetText<&C::cluster_id>});
  add({.name = "token",
       .help = "the cluster token",
       .set = SetText<&C::token>,
       .get = GetText<&C::token>});
  add({.name = "token_file",
       .kvcached_env = "KVCACHED_TOKEN_FILE",
       .kind = K::kFile,
       .help = "a file holding the cluster token",
       .set = LoadToken});
  add({.name = "transport",
       .kvcached_env = "KVCACHED_TRANSPORT",
       .kind = K::kChoice,
       .choices = {"auto", "shm", "tcp", "rdma"},
       .help = "auto, shm, tcp, or rdma (needs protocol rdma)",
       .set = SetTransport,
       .get = GetTransport});
  add({.name = "checksums",
       .kind = K::kBool,
       .help = "checksum every object at put and verify it at get",
       .set = SetFlag<&C::checksums>,
       .get = GetFlag<&C::checksums>});
  add({.name = "rpc_timeout_ms",
       .kind = K::kDuration,
       .min = 1,
       .rule = "timeouts must be positive",
       .help = "one master round trip",
       .set = SetMillis<&C::rpc_timeout>,
       .get = GetMillis<&C::rpc_timeout>});
  add({.name = "io_timeout_ms",
       .kind = K::kDuration,
       .min = 1,
       .rule = "timeouts must be positive",
       .help = "a transfer fails when nothing moved for this long",
       .set = SetMillis<&C::io_timeout>,
       .get = GetMillis<&C::io_timeout>});
  add({.name = "connect_timeout_ms",
       .kind = K::kDuration,
       .min = 1,
       .rule = "timeouts must be positive",
       .help = "one connection attempt or handshake",
       .set = SetMillis<&C::connect_timeout>,
       .get = GetMillis<&C::connect_timeout>});
  add({.name = "tcp_streams",
       .kind = K::kInt,
       .min = 1,
       .max = 64,
       .help = "TCP connections one call uses per store",
       .set = SetInt<unsigned, &C::tcp_streams>,
       .get = GetInt<unsigned, &C::tcp_streams>});
  add({.name = "tcp_split_bytes",
       .kind = K::kSize,
       .min = 4096,
       .max = uint64_t{1} << 30,
       .help = "larger TCP transfers are cut into pieces of this size",
       .set = SetSize<&C::tcp_split_bytes>,
       .get = GetSize<&C::tcp_split_bytes>});
  add({.name = "copy_threads",
       .kind = K::kInt,
       .min = 0,
       .max = 64,
       .help = "threads copying one batch's shared-memory transfers (0: one per core, at most 4)",
       .set = SetInt<unsigned, &C::copy_threads>,
       .get = GetInt<unsigned, &C::copy_threads>});
  add({.name = "segment_bind_host",
       .kvcached_env = "KVCACHED_SEGMENT_BIND_HOST",
       .help = "address a contributed segment's data port binds",
       .set = SetText<&C::segment_bind_host>,
       .get = GetText<&C::segment_bind_host>});
  add({.name = "segment_name",
       .help = "a contributed segment's name (empty: <host id>:<pid>:<n>)",
       .set = SetText<&C::segment_name>,
       .get = GetText<&C::segment_name>});
  add({.name = "hugepages",
       .kind = K::kBool,
       .help = "back a contributed segment with 2 MiB huge pages",
       .set = SetFlag<&C::hugepages>,
       .get = GetFlag<&C::hugepages>});
  add({.name = "ping_interval_ms",
       .kind = K::kDuration,
       .min = 50,
       .max = 60'000,
       .only_when_contributing = true,
       .help = "how often a contributed segment's owner pings the master",
       .set = SetMillis<&C::ping_interval>,
       .get = GetMillis<&C::ping_interval>});
  add({.name = "disk_path",
       .kvcached_env = "KVCACHED_DISK_PATH",
       .json_key = "disk_path",
       .help = "an existing directory for a disk tier under the contributed segment: objects "
               "evicted from memory go to a file there and are read back on a get (empty: none)",
       .set = SetText<&C::disk_path>,
       .get = GetText<&C::disk_path>});
  add({.name = "disk_size",
       .kvcached_env = "KVCACHED_DISK_SIZE",
       .json_key = "disk_size",
       .kind = K::kSize,
       .min = static_cast<int64_t>(kMinDiskTierBytes),
       .zero_is_off = true,
       .zero_means = "automatic",
       .help = "the disk tier file's size (0: the existing file's, else 4x the segment, at most "
               "half the directory's free space)",
       .set = SetSize<&C::disk_size>,
       .get = GetSize<&C::disk_size>});
  add({.name = "disk_fsync",
       .kvcached_env = "KVCACHED_DISK_FSYNC",
       .json_key = "disk_fsync",
       .kind = K::kBool,
       .help = "fdatasync each object written to the disk tier",
       .set = SetFlag<&C::disk_fsync>,
       .get = GetFlag<&C::disk_fsync>});
  add({.name = "config_path",
       .kind = K::kFile,
       .help = "a JSON file in MOONCAKE_CONFIG_PATH's format, applied where it appears",
       .set = ApplyFile});
  return t;
}

Status Bad(std::string_view source, std::string_view text, std::string_view why) {
  return Status(ErrorCode::INVALID_PARAMS,
                std::string(source) + "='" + std::string(text) + "': " + std::string(why));
}

// A JSON field as the text the grammar reads, or a message for a wrong type.
Result<std::string> JsonText(const ClientSetting& s, const nlohmann::json& v) {
  if (v.is_string()) return v.get<std::string>();
  switch (s.kind) {
    case SettingKind::kSize:
    case SettingKind::kDuration:
      if (v.is_number_unsigned()) return std::to_string(v.get<uint64_t>());
      return Status(ErrorCode::INVALID_PARAMS,
                    "must be a size (a number or a string like \"4gb\")");
    case SettingKind::kInt:
      if (v.is_number_integer()) return std::to_string(v.get<int64_t>());
      return Status(ErrorCode::INVALID_PARAMS, "must be a whole number");
    case SettingKind::kBool:
      if (v.is_boolean()) return std::string(v.get<bool>() ? "true" : "false");
      return Status(ErrorCode::INVALID_PARAMS, "must be true or false");
    default:
      return Status(ErrorCode::INVALID_PARAMS, "must be a string");
  }
}

}  // namespace

const std::vector<ClientSetting>& ClientSettings() {
  static const std::vector<ClientSetting> table = BuildTable();
  return table;
}

const ClientSetting* FindClientSetting(std::string_view name) {
  for (const ClientSetting& s : ClientSettings()) {
    if (s.name == name) return &s;
    for (std::string_view a : s.aliases) {
      if (a == name) return &s;
    }
  }
  return nullptr;
}

Status ParseClientSetting(const ClientSetting& s, std::string_view text, SettingValue& out) {
  out = SettingValue();
  out.text = std::string(text);
  switch (s.kind) {
    case SettingKind::kString:
    case SettingKind::kFile:
      return Status::Ok();
    case SettingKind::kSize: {
      Result<uint64_t> n = ParseSize(text);
      if (!n.ok()) return n.status();
      out.size_bytes = *n;
      break;
    }
    case SettingKind::kDuration: {
      Result<std::chrono::milliseconds> d = ParseDuration(text, DurationUnit::kMilliseconds);
      if (!d.ok()) return d.status();
      out.duration = *d;
      break;
    }
    case SettingKind::kBool: {
      std::string v;
      for (char ch : text) v += static_cast<char>(std::tolower(static_cast<unsigned char>(ch)));
      if (v == "1" || v == "true" || v == "yes" || v == "on") {
        out.flag = true;
      } else if (v == "0" || v == "false" || v == "no" || v == "off") {
        out.flag = false;
      } else {
        return Status(ErrorCode::INVALID_PARAMS, "not a boolean (1/0/true/false)");
      }
      return Status::Ok();
    }
    case SettingKind::kInt: {
      auto [end, ec] = std::from_chars(text.data(), text.data() + text.size(), out.integer);
      if (ec != std::errc() || end != text.data() + text.size()) {
        return Status(ErrorCode::INVALID_PARAMS, "not a whole number");
      }
      break;
    }
    case SettingKind::kChoice:
      if (std::find(s.choices.begin(), s.choices.end(), text) == s.choices.end()) {
        return Status(ErrorCode::INVALID_PARAMS, "not one of " + ChoiceList(s));
      }
      return Status::Ok();
  }
  // Ranges that hold only in context (ping_interval) are ValidateClientConfig's.
  if (!s.only_when_contributing && !InRange(s, out)) {
    return Status(
        ErrorCode::INVALID_PARAMS,
        "out of range (" + RangeText(s) + ")" + (s.rule.empty() ? "" : ": " + std::string(s.rule)));
  }
  return Status::Ok();
}

Status ApplyClientSetting(ClientConfig& c, std::string_view name, std::string_view text,
                          std::string_view source) {
  const ClientSetting* s = FindClientSetting(name);
  if (s == nullptr) {
    return Status(ErrorCode::INVALID_PARAMS, "unknown setting '" + std::string(name) + "'");
  }
  std::string where = source.empty() ? "setting " + std::string(name) : std::string(source);
  SettingValue v;
  if (Status st = ParseClientSetting(*s, text, v); !st.ok()) {
    return Bad(where, text, st.message());
  }
  if (Status st = s->set(c, v); !st.ok()) return Bad(where, text, st.message());
  return Status::Ok();
}

Status ApplyClientConfigFile(ClientConfig& c, const std::string& path) {
  std::ifstream in(path);
  if (!in) return Status(ErrorCode::INVALID_PARAMS, "cannot read config file '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(buf.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(ErrorCode::INVALID_PARAMS, path + ": not a JSON object");
  }
  for (const ClientSetting& s : ClientSettings()) {
    if (s.json_key.empty()) continue;
    auto it = j.find(s.json_key);
    if (it == j.end() || it->is_null()) continue;
    const std::string field = path + ": field '" + std::string(s.json_key) + "'";
    Result<std::string> text = JsonText(s, *it);
    if (!text.ok()) return Status(ErrorCode::INVALID_PARAMS, field + " " + text.status().message());
    if (Status st = ApplyClientSetting(c, s.name, *text, field); !st.ok()) return st;
  }
  return Status::Ok();
}

Status ApplyClientEnvironment(ClientConfig& c, const EnvLookup& env) {
  if (std::optional<std::string> path = env("MOONCAKE_CONFIG_PATH")) {
    if (Status st = ApplyClientConfigFile(c, *path); !st.ok()) return st;
  } else {
    for (const ClientSetting& s : ClientSettings()) {
      if (s.mooncake_env.empty()) continue;
      std::optional<std::string> v = env(std::string(s.mooncake_env));
      if (!v) continue;
      if (Status st = ApplyClientSetting(c, s.name, *v, s.mooncake_env); !st.ok()) return st;
    }
  }
  for (const ClientSetting& s : ClientSettings()) {
    if (s.kvcached_env.empty()) continue;
    std::optional<std::string> v = env(std::string(s.kvcached_env));
    if (!v) continue;
    if (Status st = ApplyClientSetting(c, s.name, *v, s.kvcached_env); !st.ok()) return st;
  }
  return Status::Ok();
}

Status ValidateClientConfig(const ClientConfig& c) {
  for (const ClientSetting& s : ClientSettings()) {
    if (s.get == nullptr) continue;
    if (s.only_when_contributing && c.global_segment_size == 0) continue;
    SettingValue v = s.get(c);
    bool ok = true;
    std::string shown;
    switch (s.kind) {
      case SettingKind::kChoice:
        ok = std::find(s.choices.begin(), s.choices.end(), v.text) != s.choices.end();
        if (!ok) {
          return Status(ErrorCode::INVALID_PARAMS,
                        std::string(s.name) + " '" + v.text + "' is not one of " + ChoiceList(s));
        }
        continue;
      case SettingKind::kSize:
      case SettingKind::kDuration:
      case SettingKind::kInt:
        ok = InRange(s, v);
        break;
      default:
        continue;
    }
    if (!ok) {
      std::string value = FormatClientSetting(s, c);
      return Status(ErrorCode::INVALID_PARAMS,
                    std::string(s.name) + " " + value + " is out of range (" + RangeText(s) +
                        (s.only_when_contributing ? " when contributing a segment" : "") + ")" +
                        (s.rule.empty() ? "" : ": " + std::string(s.rule)));
    }
  }
  if (c.transport == TransportMode::kRdma && c.protocol != "rdma") {
    return Status(ErrorCode::INVALID_PARAMS, "transport rdma needs protocol rdma");
  }
  if (Result<std::vector<std::string>> d = ParseRdmaDeviceList(c.device_names); !d.ok()) {
    return Status(d.code(), "rdma_devices: " + d.status().message());
  }
  if (!c.token.empty()) {
    if (Result<AuthToken> t = AuthToken::FromString(c.token); !t.ok()) {
      return Status(t.code(), "token: " + t.status().message());
    }
  }
  return Status::Ok();
}

Result<std::string> DiskTierDirectory(const ClientConfig& c, const EnvLookup& env) {
  if (!c.disk_path.empty()) return c.disk_path;
  if (!c.enable_ssd_offload) return std::string();
  if (!c.ssd_offload_path.empty()) return c.ssd_offload_path;
  if (std::optional<std::string> dir = env("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH")) return *dir;
  return Status(ErrorCode::INVALID_PARAMS,
                "enable_ssd_offload needs a directory for the disk tier: set ssd_offload_path, "
                "MOONCAKE_OFFLOAD_FILE_STORAGE_PATH or disk_path (KVCACHED_DISK_PATH)");
}

std::string FormatClientSetting(const ClientSetting& s, const ClientConfig& c) {
  if (s.get == nullptr) return "";
  SettingValue v = s.get(c);
  switch (s.kind) {
    case SettingKind::kSize:
      return FormatSize(v.size_bytes);
    case SettingKind::kDuration:
      return std::to_string(v.duration.count());
    case SettingKind::kBool:
      return v.flag ? "true" : "false";
    case SettingKind::kInt:
      return std::to_string(v.integer);
    default:
      return v.text;
  }
}

OptionSpec ClientOptionSpec(std::string_view name, std::string flag, std::string help) {
  const ClientSetting* s = FindClientSetting(name);
  if (s == nullptr) std::abort();  // a programming error: the caller names a table entry
  OptionSpec o;
  o.name = std::move(flag);
  o.help = std::move(help);
  o.default_value = FormatClientSetting(*s, ClientConfig{});
  o.min = static_cast<uint64_t>(std::max<int64_t>(s->min, 0));
  o.max = s->max;
  switch (s->kind) {
    case SettingKind::kString:
      o.kind = OptionKind::kString;
      break;
    case SettingKind::kFile:
      o.kind = OptionKind::kPath;
      break;
    case SettingKind::kSize:
      o.kind = OptionKind::kSize;
      break;
    case SettingKind::kDuration:
      o.kind = OptionKind::kDuration;
      o.bare_unit = DurationUnit::kMilliseconds;
      break;
    case SettingKind::kBool:
      o.kind = OptionKind::kBool;
      break;
    case SettingKind::kInt:
      o.kind = OptionKind::kUInt;
      if (s->get(ClientConfig{}).integer < 0) o.default_value.clear();
      break;
    case SettingKind::kChoice:
      o.kind = OptionKind::kChoice;
      o.choices.assign(s->choices.begin(), s->choices.end());
      break;
  }
  return o;
}

std::string ClientSettingsJson() {
  static constexpr const char* kKinds[] = {"string", "size",   "duration_ms", "bool",
                                           "int",    "choice", "file"};
  nlohmann::json out = nlohmann::json::array();
  for (const ClientSetting& s : ClientSettings()) {
    nlohmann::json e;
    e["name"] = std::string(s.name);
    e["aliases"] = nlohmann::json::array();
    for (std::string_view a : s.aliases) e["aliases"].push_back(std::string(a));
    e["mooncake_env"] = std::string(s.mooncake_env);
    e["kvcached_env"] = std::string(s.kvcached_env);
    e["json_key"] = std::string(s.json_key);
    e["kind"] = kKinds[static_cast<int>(s.kind)];
    e["min"] = s.min;
    e["max"] = s.max;
    e["zero_is_off"] = s.zero_is_off;
    e["choices"] = nlohmann::json::array();
    for (std::string_view ch : s.choices) e["choices"].push_back(std::string(ch));
    if (s.get != nullptr) e["default"] = FormatClientSetting(s, ClientConfig{});
    e["help"] = std::string(s.help);
    out.push_back(std::move(e));
  }
  return out.dump();
}

}  // namespace kvcached
