// The one table of a client's settings (names, Mooncake's aliases and
// variables, JSON fields, grammar, range) and the readers it drives: the
// environment, the JSON file, the by-name setter, ValidateClientConfig.
// Not responsible for connecting; Client::Open calls ValidateClientConfig.
// The table is immutable static data: every function here is thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/config.h"
#include "core/status.h"
#include "kvcached/client.h"

namespace kvcached {

// The grammar of a setting's text.
enum class SettingKind {
  kString,    // taken as it is
  kSize,      // bytes: "4294967296", "4gb", "512 MiB" (core/units.h)
  kDuration,  // milliseconds: a bare number, or "500ms", "1.5s", "5m"
  kBool,      // 1/0, true/false, yes/no, on/off, any case
  kInt,       // a decimal integer, optionally negative
  kChoice,    // one of `choices`, exactly
  kFile,      // a path whose contents are read when the setting is applied
};

// A setting's value, parsed; only the member of its kind is meaningful.
struct SettingValue {
  std::string text;  // kString, kChoice, kFile; also the raw text of any kind
  uint64_t size_bytes = 0;
  std::chrono::milliseconds duration{0};
  bool flag = false;
  int64_t integer = 0;
};

struct ClientSetting {
  std::string_view name = {};                  // canonical: kvcached_open_settings' name
  std::vector<std::string_view> aliases = {};  // other names the by-name setter takes
  std::string_view mooncake_env = {};          // read only when MOONCAKE_CONFIG_PATH is unset
  std::string_view kvcached_env = {};          // read always, after the file or MOONCAKE_*
  std::string_view json_key = {};              // field of MOONCAKE_CONFIG_PATH's file ("" none)
  SettingKind kind = SettingKind::kString;
  int64_t min = 0;  // kSize, kDuration (ms), kInt: inclusive bounds
  uint64_t max = UINT64_MAX;
  bool zero_is_off = false;                    // 0 is allowed whatever `min` says
  std::string_view zero_means = {};            // what that 0 is, for messages ("" : "none")
  bool only_when_contributing = false;         // range applies only with global_segment_size > 0
  std::vector<std::string_view> choices = {};  // kChoice
  std::string_view rule = {};  // the range in words, for messages ("timeouts must be positive")
  std::string_view help = {};
  // Stores `v` in the config. Fails only for kFile (the file cannot be read
  // or holds a bad value); the message then says what is wrong, not where.
  Status (*set)(ClientConfig& c, const SettingValue& v) = nullptr;
  // The config's current value; null for kFile settings (write-only).
  SettingValue (*get)(const ClientConfig& c) = nullptr;
};

// Every setting, in the order ValidateClientConfig checks them.
const std::vector<ClientSetting>& ClientSettings();

// The setting named `name` (canonical or alias), or null.
const ClientSetting* FindClientSetting(std::string_view name);

// Parses `text` by `s`'s grammar and range into `out`. INVALID_PARAMS with
// a message that says what is wrong with the text (not where it came from).
Status ParseClientSetting(const ClientSetting& s, std::string_view text, SettingValue& out);

// Parses `text` for the setting `name` and stores it. `source` names where
// the text came from ("KVCACHED_TRANSPORT", "--tcp-streams"); empty: the
// setting's own name. INVALID_PARAMS names the source, the text and the
// problem; unknown names fail too.
Status ApplyClientSetting(ClientConfig& c, std::string_view name, std::string_view text,
                          std::string_view source = {});

// Applies a JSON file in MOONCAKE_CONFIG_PATH's format: fields with a
// json_key; strings for string kinds, a whole number or a string for sizes;
// absent or null fields keep the setting; unknown fields are ignored.
// INVALID_PARAMS names the file and the field.
Status ApplyClientConfigFile(ClientConfig& c, const std::string& path);

// Mooncake's environment: the MOONCAKE_CONFIG_PATH file, else each
// setting's mooncake_env; then each kvcached_env. Empty variables are unset.
Status ApplyClientEnvironment(ClientConfig& c, const EnvLookup& env);

// The checks Client::Open makes before connecting: every setting in its
// range (ping_interval only when contributing a segment, which must then be
// at least 1 MiB, as `kvcached store` requires), protocol tcp or rdma,
// transport rdma only with protocol rdma, device_names a device list, a
// well-formed token. INVALID_PARAMS naming the setting.
Status ValidateClientConfig(const ClientConfig& c);

// The smallest segment a client may contribute, as `kvcached store --segment-size`.
inline constexpr uint64_t kMinContributedSegmentBytes = uint64_t{1} << 20;

// The smallest disk tier file (DiskTier's least capacity).
inline constexpr uint64_t kMinDiskTierBytes = uint64_t{16} << 20;

// The directory of the disk tier under the segment `c` contributes: disk_path;
// else, with enable_ssd_offload, ssd_offload_path, else what `env` gives for
// MOONCAKE_OFFLOAD_FILE_STORAGE_PATH (Mooncake's client reads it at setup,
// however it was configured); "" when no tier is asked for. Whether `c`
// contributes a segment is the caller's concern. INVALID_PARAMS when
// enable_ssd_offload is on and none of the three names a directory (Mooncake
// would try /data/file_storage; kvcached does not pick a directory itself).
Result<std::string> DiskTierDirectory(const ClientConfig& c, const EnvLookup& env);

// The value as text the setting reads back ("4", "1 MiB", "auto").
std::string FormatClientSetting(const ClientSetting& s, const ClientConfig& c);

// A command-line option for the setting `name` (kvcached bench's client
// flags): its kind, range, choices and default (ClientConfig's) from the
// table. A negative integer default ("choose") becomes an unset flag.
OptionSpec ClientOptionSpec(std::string_view name, std::string flag, std::string help);

// The table as one JSON array, for the C ABI (kvcached_settings_json):
// name, aliases, env (mooncake/kvcached), json_key, kind, min, max, choices,
// default, help.
std::string ClientSettingsJson();

}  // namespace kvcached
