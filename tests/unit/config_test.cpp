#include "core/config.h"

#include <doctest/doctest.h>

#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

namespace kvcached {
namespace {

std::vector<OptionSpec> Specs() {
  OptionSpec port;
  port.name = "port";
  port.kind = OptionKind::kUInt;
  port.default_value = "8080";
  port.max = 65535;
  OptionSpec size;
  size.name = "segment-size";
  size.kind = OptionKind::kSize;
  size.default_value = "1GiB";
  size.extra_env = {"MOONCAKE_GLOBAL_SEGMENT_SIZE"};
  OptionSpec ttl;
  ttl.name = "lease-ttl";
  ttl.kind = OptionKind::kDuration;
  ttl.default_value = "10s";
  ttl.aliases = {"lease_ttl"};
  OptionSpec flag;
  flag.name = "no-meta";
  flag.kind = OptionKind::kBool;
  flag.default_value = "false";
  OptionSpec level;
  level.name = "log-level";
  level.kind = OptionKind::kChoice;
  level.choices = {"info", "debug"};
  level.default_value = "info";
  OptionSpec token;
  token.name = "token-file";
  token.kind = OptionKind::kPath;
  return {port, size, ttl, flag, level, token};
}

EnvLookup FakeEnv(std::map<std::string, std::string> vars) {
  return [vars](const std::string& name) -> std::optional<std::string> {
    auto it = vars.find(name);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST_CASE("precedence: flag > environment > file > default") {
  ConfigResolver r(Specs());
  nlohmann::json file = {{"port", 1111}, {"segment_size", "2gb"}, {"lease_ttl", "3s"}};

  Result<Config> defaults = r.Resolve({}, FakeEnv({}), nullptr, "");
  REQUIRE(defaults.ok());
  CHECK(defaults->Number("port") == 8080);
  CHECK(defaults->Get("port").source == ConfigSource::kDefault);
  CHECK(defaults->Number("segment-size") == (1ull << 30));
  CHECK(defaults->Duration("lease-ttl") == std::chrono::milliseconds(10'000));
  CHECK_FALSE(defaults->Bool("no-meta"));
  CHECK_FALSE(defaults->IsSet("token-file"));

  Result<Config> from_file = r.Resolve({}, FakeEnv({}), &file, "f.json");
  REQUIRE(from_file.ok());
  CHECK(from_file->Number("port") == 1111);
  CHECK(from_file->Get("port").source == ConfigSource::kFile);
  CHECK(from_file->Number("segment-size") == (2ull << 30));
  CHECK(from_file->Duration("lease-ttl") == std::chrono::milliseconds(3000));

  auto env = FakeEnv({{"KVCACHED_PORT", "2222"}, {"MOONCAKE_GLOBAL_SEGMENT_SIZE", "4gb"}});
  Result<Config> from_env = r.Resolve({}, env, &file, "f.json");
  REQUIRE(from_env.ok());
  CHECK(from_env->Number("port") == 2222);
  CHECK(from_env->Get("port").origin == "KVCACHED_PORT");
  CHECK(from_env->Number("segment-size") == (4ull << 30));
  CHECK(from_env->Get("segment-size").origin == "MOONCAKE_GLOBAL_SEGMENT_SIZE");
  CHECK(from_env->Duration("lease-ttl") == std::chrono::milliseconds(3000));

  Result<Config> from_flag = r.Resolve({{"port", "3333"}, {"no-meta", "true"}}, env, &file, "f");
  REQUIRE(from_flag.ok());
  CHECK(from_flag->Number("port") == 3333);
  CHECK(from_flag->Get("port").source == ConfigSource::kFlag);
  CHECK(from_flag->Bool("no-meta"));
}

TEST_CASE("our own variable beats the Mooncake one") {
  ConfigResolver r(Specs());
  auto env = FakeEnv({{"KVCACHED_SEGMENT_SIZE", "1mb"}, {"MOONCAKE_GLOBAL_SEGMENT_SIZE", "4gb"}});
  Result<Config> c = r.Resolve({}, env, nullptr, "");
  REQUIRE(c.ok());
  CHECK(c->Number("segment-size") == (1ull << 20));
}

TEST_CASE("bad values name the option and the source") {
  ConfigResolver r(Specs());
  ConfigSource src{};
  Result<Config> bad_flag = r.Resolve({{"port", "http"}}, FakeEnv({}), nullptr, "", &src);
  REQUIRE_FALSE(bad_flag.ok());
  CHECK(src == ConfigSource::kFlag);
  CHECK(bad_flag.status().message().find("--port") != std::string::npos);

  Result<Config> bad_env = r.Resolve({}, FakeEnv({{"KVCACHED_PORT", "70000"}}), nullptr, "", &src);
  REQUIRE_FALSE(bad_env.ok());
  CHECK(src == ConfigSource::kEnv);
  CHECK(bad_env.status().message().find("KVCACHED_PORT") != std::string::npos);
  CHECK(bad_env.status().message().find("out of range") != std::string::npos);

  nlohmann::json file = {{"segment_size", "-4gb"}};
  Result<Config> bad_file = r.Resolve({}, FakeEnv({}), &file, "x.json", &src);
  REQUIRE_FALSE(bad_file.ok());
  CHECK(src == ConfigSource::kFile);
  CHECK(bad_file.status().message().find("x.json") != std::string::npos);

  nlohmann::json typo = {{"prot", 1}};
  Result<Config> unknown = r.Resolve({}, FakeEnv({}), &typo, "x.json", &src);
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.status().message().find("unknown setting 'prot'") != std::string::npos);

  nlohmann::json nested = {{"port", {1, 2}}};
  CHECK_FALSE(r.Resolve({}, FakeEnv({}), &nested, "x.json").ok());
  nlohmann::json negative = {{"port", -1}};
  CHECK_FALSE(r.Resolve({}, FakeEnv({}), &negative, "x.json").ok());

  CHECK_FALSE(r.Resolve({{"log-level", "loud"}}, FakeEnv({}), nullptr, "").ok());
  CHECK_FALSE(r.Resolve({{"no-meta", "maybe"}}, FakeEnv({}), nullptr, "").ok());
  CHECK_FALSE(r.Resolve({{"lease-ttl", "soon"}}, FakeEnv({}), nullptr, "").ok());
}

TEST_CASE("config files: missing, not JSON, not an object") {
  CHECK(LoadConfigFile("/nonexistent/kvcached.json").status().message().find("cannot read") !=
        std::string::npos);
  const char* path = "/tmp/kvcached-config-test.json";
  { std::ofstream(path) << "{\"port\": 12,}"; }
  Result<nlohmann::json> broken = LoadConfigFile(path);
  REQUIRE_FALSE(broken.ok());
  CHECK(broken.status().message().find("not valid JSON") != std::string::npos);
  { std::ofstream(path) << "[1,2]"; }
  CHECK(LoadConfigFile(path).status().message().find("JSON object") != std::string::npos);
  { std::ofstream(path) << "// comment\n{\"port\": 12}"; }
  CHECK(LoadConfigFile(path).ok());
  std::remove(path);
}

TEST_CASE("ratios are plain decimals in [0, 1]") {
  OptionSpec r;
  r.name = "ratio";
  r.kind = OptionKind::kRatio;
  ConfigValue v;
  REQUIRE(ParseOptionValue(r, "0.9", v).ok());
  CHECK(v.ratio == doctest::Approx(0.9));
  REQUIRE(ParseOptionValue(r, "1", v).ok());
  CHECK(v.ratio == 1.0);
  REQUIRE(ParseOptionValue(r, ".05", v).ok());
  CHECK(v.ratio == doctest::Approx(0.05));
  for (const char* bad : {"", "1.5", "-0.1", "1e-1", "0.9x", "..5", "nan", "inf", " 0.5"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseOptionValue(r, bad, v).ok());
  }
}

TEST_CASE("names derive from the option name") {
  CHECK(EnvNameFor("max-body-size") == "KVCACHED_MAX_BODY_SIZE");
  CHECK(FileKeyFor("max-body-size") == "max_body_size");
}

}  // namespace
}  // namespace kvcached
