#include "client/client_settings.h"

#include <doctest/doctest.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <map>
#include <set>
#include <utility>

#include <nlohmann/json.hpp>

namespace kvcached {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;

// A temporary file holding `text`, removed with the object.
class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char path[] = "/tmp/kvcached-settings-test-XXXXXX";
    int fd = mkstemp(path);
    REQUIRE(fd >= 0);
    REQUIRE(write(fd, text.data(), text.size()) == static_cast<ssize_t>(text.size()));
    close(fd);
    path_ = path;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars = std::move(vars)](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end() || it->second.empty()) return std::nullopt;
    return it->second;
  };
}

bool Mentions(const Status& st, const std::string& text) {
  return st.message().find(text) != std::string::npos;
}

TEST_CASE("client settings: names are unique and every alias finds its setting") {
  std::set<std::string_view> names;
  std::set<std::string_view> envs;
  for (const ClientSetting& s : ClientSettings()) {
    CAPTURE(s.name);
    CHECK(names.insert(s.name).second);
    for (std::string_view a : s.aliases) {
      CHECK(names.insert(a).second);
      CHECK(FindClientSetting(a) == &s);
    }
    CHECK(FindClientSetting(s.name) == &s);
    for (std::string_view e : {s.mooncake_env, s.kvcached_env}) {
      if (!e.empty()) CHECK(envs.insert(e).second);
    }
    CHECK(static_cast<bool>(s.set));
    CHECK(static_cast<bool>(s.get) == (s.kind != SettingKind::kFile));
    CHECK(!s.help.empty());
  }
  CHECK(FindClientSetting("no_such_setting") == nullptr);
}

TEST_CASE("client settings: every default reads back through its own grammar") {
  const ClientConfig defaults;
  for (const ClientSetting& s : ClientSettings()) {
    if (s.get == nullptr) continue;
    CAPTURE(s.name);
    const std::string text = FormatClientSetting(s, defaults);
    ClientConfig c;
    Status st = ApplyClientSetting(c, s.name, text);
    CHECK_MESSAGE(st.ok(), st.ToString());
    CHECK(FormatClientSetting(s, c) == text);
  }
  CHECK(ValidateClientConfig(defaults).ok());
}

TEST_CASE("client settings: the by-name setter parses each kind into its field") {
  ClientConfig c;
  REQUIRE(ApplyClientSetting(c, "master_server_address", "10.0.0.1:50051").ok());
  CHECK(c.master_server_addr == "10.0.0.1:50051");
  REQUIRE(ApplyClientSetting(c, "device_name", "mlx5_0,mlx5_1").ok());
  CHECK(c.device_names == "mlx5_0,mlx5_1");
  REQUIRE(ApplyClientSetting(c, "global_segment_size", "4gb").ok());
  CHECK(c.global_segment_size == 4ull << 30);
  REQUIRE(ApplyClientSetting(c, "tcp_split_bytes", "64 KiB").ok());
  CHECK(c.tcp_split_bytes == 64 * 1024);
  REQUIRE(ApplyClientSetting(c, "rpc_timeout_ms", "250").ok());
  CHECK(c.rpc_timeout == std::chrono::milliseconds(250));
  REQUIRE(ApplyClientSetting(c, "io_timeout_ms", "1.5s").ok());
  CHECK(c.io_timeout == std::chrono::milliseconds(1500));
  REQUIRE(ApplyClientSetting(c, "checksums", "False").ok());
  CHECK_FALSE(c.checksums);
  REQUIRE(ApplyClientSetting(c, "hugepages", "on").ok());
  CHECK(c.hugepages);
  REQUIRE(ApplyClientSetting(c, "tcp_streams", "64").ok());
  CHECK(c.tcp_streams == 64);
  REQUIRE(ApplyClientSetting(c, "rdma_gid_index", "-1").ok());
  CHECK(c.rdma_gid_index == -1);
  REQUIRE(ApplyClientSetting(c, "rdma_gid_index", "3").ok());
  CHECK(c.rdma_gid_index == 3);
  const std::pair<const char*, TransportMode> transports[] = {{"auto", TransportMode::kAuto},
                                                              {"shm", TransportMode::kShm},
                                                              {"tcp", TransportMode::kTcp},
                                                              {"rdma", TransportMode::kRdma}};
  for (const auto& [name, mode] : transports) {
    REQUIRE(ApplyClientSetting(c, "transport", name).ok());
    CHECK(c.transport == mode);
  }
}

TEST_CASE("client settings: bad text fails INVALID_PARAMS naming the source") {
  struct Case {
    const char* name;
    const char* text;
  };
  for (Case k :
       {Case{"transport", "carrier-pigeon"}, Case{"transport", "TCP"}, Case{"protocol", "udp"},
        Case{"global_segment_size", "lots"}, Case{"global_segment_size", "512kb"},
        Case{"local_buffer_size", "-1"}, Case{"checksums", "maybe"}, Case{"tcp_streams", "0"},
        Case{"tcp_streams", "65"}, Case{"tcp_streams", "4x"}, Case{"copy_threads", "65"},
        Case{"tcp_split_bytes", "4095"}, Case{"tcp_split_bytes", "2gb"},
        Case{"rdma_gid_index", "-2"}, Case{"rdma_gid_index", "256"}, Case{"rpc_timeout_ms", "0"},
        Case{"connect_timeout_ms", "soon"}, Case{"token_file", "/nonexistent/kvcached-token"},
        Case{"config_path", "/nonexistent/kvcached.json"}}) {
    CAPTURE(k.name);
    CAPTURE(k.text);
    ClientConfig c;
    Status st = ApplyClientSetting(c, k.name, k.text, "THE_SOURCE");
    CHECK(st.code() == ErrorCode::INVALID_PARAMS);
    CHECK(Mentions(st, "THE_SOURCE"));
    CHECK(Mentions(st, k.text));
    // Without a source the setting's own name is the source.
    Status named = ApplyClientSetting(c, k.name, k.text);
    CHECK(Mentions(named, k.name));
  }
  ClientConfig c;
  Status unknown = ApplyClientSetting(c, "prot", "tcp");
  CHECK(unknown.code() == ErrorCode::INVALID_PARAMS);
  CHECK(Mentions(unknown, "unknown setting 'prot'"));
  // 0 turns the segment off; 1 MiB is the smallest there is.
  CHECK(ApplyClientSetting(c, "global_segment_size", "0").ok());
  CHECK(ApplyClientSetting(c, "global_segment_size", "1mb").ok());
  CHECK(c.global_segment_size == kMiB);
}

TEST_CASE("client settings: the environment, as Mooncake reads it") {
  TempFile token("0123456789abcdef0123\n");
  ClientConfig c;
  Status st =
      ApplyClientEnvironment(c, FakeEnv({{"MOONCAKE_MASTER", "10.1.1.1:50051"},
                                         {"MOONCAKE_LOCAL_HOSTNAME", "node7"},
                                         {"MOONCAKE_TE_META_DATA_SERVER", "http://m:8080/metadata"},
                                         {"MOONCAKE_GLOBAL_SEGMENT_SIZE", "32mb"},
                                         {"MOONCAKE_LOCAL_BUFFER_SIZE", "16mb"},
                                         {"MOONCAKE_PROTOCOL", "rdma"},
                                         {"MOONCAKE_DEVICE", "mlx5_0"},
                                         {"KVCACHED_TOKEN_FILE", token.path()},
                                         {"KVCACHED_TRANSPORT", "shm"},
                                         {"KVCACHED_RDMA_GID_INDEX", "3"},
                                         {"KVCACHED_SEGMENT_BIND_HOST", "10.1.1.7"}}));
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(c.master_server_addr == "10.1.1.1:50051");
  CHECK(c.local_hostname == "node7");
  CHECK(c.metadata_server == "http://m:8080/metadata");
  CHECK(c.global_segment_size == 32 * kMiB);
  CHECK(c.local_buffer_size == 16 * kMiB);
  CHECK(c.protocol == "rdma");
  CHECK(c.device_names == "mlx5_0");
  CHECK(c.token == "0123456789abcdef0123");
  CHECK(c.transport == TransportMode::kShm);
  CHECK(c.rdma_gid_index == 3);
  CHECK(c.segment_bind_host == "10.1.1.7");

  // Empty variables count as unset.
  ClientConfig d;
  REQUIRE(ApplyClientEnvironment(d, FakeEnv({{"MOONCAKE_PROTOCOL", ""}})).ok());
  CHECK(d.protocol == "tcp");

  // A bad value names its variable.
  for (const char* var :
       {"MOONCAKE_GLOBAL_SEGMENT_SIZE", "MOONCAKE_LOCAL_BUFFER_SIZE", "MOONCAKE_PROTOCOL",
        "KVCACHED_TRANSPORT", "KVCACHED_RDMA_GID_INDEX", "KVCACHED_TOKEN_FILE"}) {
    CAPTURE(var);
    ClientConfig e;
    Status bad = ApplyClientEnvironment(e, FakeEnv({{var, "-7x"}}));
    CHECK(bad.code() == ErrorCode::INVALID_PARAMS);
    CHECK(Mentions(bad, var));
  }
}

TEST_CASE("client settings: MOONCAKE_CONFIG_PATH's file wins over the MOONCAKE_ variables") {
  TempFile file(R"({"local_hostname": "from-file", "metadata_server": "P2PHANDSHAKE",
      "global_segment_size": 33554432, "local_buffer_size": "16mb", "protocol": "tcp",
      "device_name": null, "master_server_address": "10.2.2.2:50051",
      "check_server": false, "transport": "shm"})");
  ClientConfig c;
  Status st = ApplyClientEnvironment(c, FakeEnv({{"MOONCAKE_CONFIG_PATH", file.path()},
                                                 {"MOONCAKE_MASTER", "127.0.0.1:1"},
                                                 {"MOONCAKE_GLOBAL_SEGMENT_SIZE", "1gb"},
                                                 {"KVCACHED_TRANSPORT", "tcp"}}));
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(c.local_hostname == "from-file");
  CHECK(c.master_server_addr == "10.2.2.2:50051");
  CHECK(c.global_segment_size == 32 * kMiB);
  CHECK(c.local_buffer_size == 16 * kMiB);
  CHECK(c.device_names.empty());
  // The file's unknown fields are ignored ("transport" is no file field);
  // KVCACHED_ variables still apply after the file.
  CHECK(c.transport == TransportMode::kTcp);

  TempFile wrong_type(R"({"protocol": 1})");
  Status bad = ApplyClientConfigFile(c, wrong_type.path());
  CHECK(bad.code() == ErrorCode::INVALID_PARAMS);
  CHECK(Mentions(bad, wrong_type.path()));
  CHECK(Mentions(bad, "field 'protocol' must be a string"));

  TempFile bad_size(R"({"global_segment_size": -5})");
  bad = ApplyClientConfigFile(c, bad_size.path());
  CHECK(bad.code() == ErrorCode::INVALID_PARAMS);
  CHECK(Mentions(bad, "global_segment_size"));

  TempFile not_object("[1, 2]");
  CHECK(ApplyClientConfigFile(c, not_object.path()).code() == ErrorCode::INVALID_PARAMS);

  // config_path applies the same file by name, where it appears.
  ClientConfig d;
  REQUIRE(ApplyClientSetting(d, "config_path", file.path()).ok());
  CHECK(d.local_hostname == "from-file");
  CHECK(d.transport == TransportMode::kAuto);
}

TEST_CASE("client settings: the disk tier, by kvcached's names and by Mooncake's") {
  // kvcached's variables.
  ClientConfig c;
  Status st = ApplyClientEnvironment(c, FakeEnv({{"KVCACHED_DISK_PATH", "/nvme/kv"},
                                                 {"KVCACHED_DISK_SIZE", "1gb"},
                                                 {"KVCACHED_DISK_FSYNC", "yes"}}));
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(c.disk_path == "/nvme/kv");
  CHECK(c.disk_size == 1024 * kMiB);
  CHECK(c.disk_fsync);
  CHECK_FALSE(c.enable_ssd_offload);

  // Mooncake's (SGLang reads the same two for its setup() keywords).
  ClientConfig m;
  st = ApplyClientEnvironment(m, FakeEnv({{"MOONCAKE_ENABLE_SSD_OFFLOAD", "true"},
                                          {"MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", "/ssd/mc"}}));
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(m.enable_ssd_offload);
  CHECK(m.ssd_offload_path == "/ssd/mc");
  CHECK(m.disk_path.empty());
  CHECK(m.disk_size == 0);

  // MOONCAKE_CONFIG_PATH's file wins over those, as over every MOONCAKE_ variable;
  // kvcached's fields are read from it too.
  TempFile file(R"({"enable_ssd_offload": true, "ssd_offload_path": "/from/file",
      "disk_size": "64mb", "disk_fsync": false})");
  ClientConfig f;
  st = ApplyClientEnvironment(f, FakeEnv({{"MOONCAKE_CONFIG_PATH", file.path()},
                                          {"MOONCAKE_ENABLE_SSD_OFFLOAD", "false"},
                                          {"MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", "/ssd/mc"}}));
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(f.enable_ssd_offload);
  CHECK(f.ssd_offload_path == "/from/file");
  CHECK(f.disk_size == 64 * kMiB);

  // setup(config: dict) passes them by name, Python's bools as 1/0.
  ClientConfig n;
  REQUIRE(ApplyClientSetting(n, "enable_ssd_offload", "1").ok());
  REQUIRE(ApplyClientSetting(n, "ssd_offload_path", "/p").ok());
  CHECK(n.enable_ssd_offload);
  CHECK(n.ssd_offload_path == "/p");

  // Bad text names its source; a tier file is at least 16 MiB, 0 is automatic.
  // (Not a structured binding: clang 14 cannot capture one in CAPTURE's lambda.)
  for (const auto& var_text :
       {std::pair{"MOONCAKE_ENABLE_SSD_OFFLOAD", "maybe"}, std::pair{"KVCACHED_DISK_FSYNC", "2"},
        std::pair{"KVCACHED_DISK_SIZE", "lots"}, std::pair{"KVCACHED_DISK_SIZE", "8mb"}}) {
    const char* var = var_text.first;
    const char* text = var_text.second;
    CAPTURE(var);
    CAPTURE(text);
    ClientConfig e;
    Status bad = ApplyClientEnvironment(e, FakeEnv({{var, text}}));
    CHECK(bad.code() == ErrorCode::INVALID_PARAMS);
    CHECK(Mentions(bad, var));
  }
  ClientConfig small;
  Status bad = ApplyClientSetting(small, "disk_size", "15MiB");
  CHECK(Mentions(bad, "0 (automatic) or 16 MiB to unlimited"));
  CHECK(ApplyClientSetting(small, "disk_size", "0").ok());
  CHECK(ApplyClientSetting(small, "disk_size", "16MiB").ok());
}

TEST_CASE("client settings: which directory the disk tier uses") {
  auto dir = [](const ClientConfig& c, std::map<std::string, std::string> env = {}) {
    Result<std::string> d = DiskTierDirectory(c, FakeEnv(std::move(env)));
    REQUIRE_MESSAGE(d.ok(), d.status().ToString());
    return *d;
  };
  ClientConfig c;
  CHECK(dir(c).empty());
  // Without enable_ssd_offload Mooncake's path is not used (SGLang passes it
  // whenever its config has one), nor is its variable.
  c.ssd_offload_path = "/ssd";
  CHECK(dir(c, {{"MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", "/env"}}).empty());
  c.enable_ssd_offload = true;
  CHECK(dir(c, {{"MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", "/env"}}) == "/ssd");
  // disk_path wins over both, and needs no switch.
  c.disk_path = "/kv";
  CHECK(dir(c) == "/kv");
  c.enable_ssd_offload = false;
  CHECK(dir(c) == "/kv");
  // On with no path: the variable, read at the call as Mooncake's client does.
  ClientConfig e;
  e.enable_ssd_offload = true;
  CHECK(dir(e, {{"MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", "/env"}}) == "/env");
  Result<std::string> none = DiskTierDirectory(e, FakeEnv({}));
  CHECK(none.code() == ErrorCode::INVALID_PARAMS);
  CHECK(Mentions(none.status(), "ssd_offload_path"));
  CHECK(Mentions(none.status(), "MOONCAKE_OFFLOAD_FILE_STORAGE_PATH"));
}

TEST_CASE("client settings: ValidateClientConfig checks a finished config") {
  auto fails = [](const ClientConfig& c, const std::string& naming) {
    Status st = ValidateClientConfig(c);
    CHECK(st.code() == ErrorCode::INVALID_PARAMS);
    CHECK_MESSAGE(Mentions(st, naming), st.ToString());
  };
  {
    ClientConfig c;
    c.tcp_streams = 0;
    fails(c, "tcp_streams");
    c.tcp_streams = 65;
    fails(c, "tcp_streams");
    c.tcp_streams = 64;
    CHECK(ValidateClientConfig(c).ok());
  }
  {
    ClientConfig c;
    c.tcp_split_bytes = 4095;
    fails(c, "tcp_split_bytes");
    c.tcp_split_bytes = (1ull << 30) + 1;
    fails(c, "tcp_split_bytes");
  }
  {
    ClientConfig c;
    c.copy_threads = 65;
    fails(c, "copy_threads");
  }
  {
    ClientConfig c;
    c.rdma_gid_index = -2;
    fails(c, "rdma_gid_index");
    c.rdma_gid_index = 256;
    fails(c, "rdma_gid_index");
  }
  for (auto field :
       {&ClientConfig::rpc_timeout, &ClientConfig::io_timeout, &ClientConfig::connect_timeout}) {
    ClientConfig c;
    c.*field = std::chrono::milliseconds(0);
    fails(c, "timeout_ms");
    fails(c, "timeouts must be positive");
    c.*field = std::chrono::milliseconds(-5);
    fails(c, "timeout_ms");
  }
  {
    // ping_interval's range holds only for a client that contributes a segment.
    ClientConfig c;
    c.ping_interval = std::chrono::milliseconds(10);
    CHECK(ValidateClientConfig(c).ok());
    c.global_segment_size = 64 * kMiB;
    fails(c, "ping_interval_ms");
    c.ping_interval = std::chrono::milliseconds(60'001);
    fails(c, "ping_interval_ms");
    c.ping_interval = std::chrono::milliseconds(50);
    CHECK(ValidateClientConfig(c).ok());
  }
  {
    // A contributed segment is at least 1 MiB, as `kvcached store` requires.
    ClientConfig c;
    c.global_segment_size = kMiB - 1;
    fails(c, "global_segment_size");
    c.global_segment_size = kMinContributedSegmentBytes;
    CHECK(ValidateClientConfig(c).ok());
  }
  {
    ClientConfig c;
    c.protocol = "udp";
    fails(c, "protocol");
    c.protocol = "rdma";
    CHECK(ValidateClientConfig(c).ok());
    c.transport = TransportMode::kRdma;
    CHECK(ValidateClientConfig(c).ok());
    c.protocol = "tcp";
    fails(c, "transport rdma needs protocol rdma");
  }
  {
    ClientConfig c;
    c.device_names = "mlx5 0/bad";
    fails(c, "rdma_devices");
  }
  {
    ClientConfig c;
    c.disk_size = kMinDiskTierBytes - 4096;
    fails(c, "disk_size");
    c.disk_size = kMinDiskTierBytes;
    CHECK(ValidateClientConfig(c).ok());
  }
  {
    ClientConfig c;
    c.token = "short";
    fails(c, "token");
    c.token = "0123456789abcdef0123";
    CHECK(ValidateClientConfig(c).ok());
  }
}

TEST_CASE("client settings: command-line options and the C ABI's listing come from the table") {
  OptionSpec streams = ClientOptionSpec("tcp_streams", "tcp-streams", "help");
  CHECK(streams.name == "tcp-streams");
  CHECK(streams.kind == OptionKind::kUInt);
  CHECK(streams.min == 1);
  CHECK(streams.max == 64);
  CHECK(streams.default_value == std::to_string(ClientConfig{}.tcp_streams));
  OptionSpec transport = ClientOptionSpec("transport", "transport", "help");
  CHECK(transport.kind == OptionKind::kChoice);
  CHECK(transport.default_value == "auto");
  CHECK(transport.choices == std::vector<std::string>{"auto", "shm", "tcp", "rdma"});
  OptionSpec gid = ClientOptionSpec("rdma_gid_index", "gid-index", "help");
  CHECK(gid.default_value.empty());  // -1, "choose": an unset flag
  CHECK(gid.max == 255);
  OptionSpec split = ClientOptionSpec("tcp_split_bytes", "split", "help");
  CHECK(split.kind == OptionKind::kSize);
  CHECK(ParseSize(split.default_value).value() == ClientConfig{}.tcp_split_bytes);

  nlohmann::json listing = nlohmann::json::parse(ClientSettingsJson());
  REQUIRE(listing.is_array());
  REQUIRE(listing.size() == ClientSettings().size());
  for (size_t i = 0; i < listing.size(); ++i) {
    const ClientSetting& s = ClientSettings()[i];
    CHECK(listing[i]["name"] == std::string(s.name));
    CHECK(listing[i]["kvcached_env"] == std::string(s.kvcached_env));
    CHECK(listing[i]["mooncake_env"] == std::string(s.mooncake_env));
    CHECK(listing[i]["aliases"].size() == s.aliases.size());
  }
}

}  // namespace
}  // namespace kvcached
