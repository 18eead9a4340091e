#include "cmd/mooncake_master.h"

#include <doctest/doctest.h>

namespace kvcached {
namespace {

// A few of `kvcached master`'s own options (name -> is a switch).
const std::map<std::string, bool> kOwn = {
    {"token-file", false}, {"insecure", true}, {"log-level", false}, {"tenant-quotas", false}};

std::map<std::string, std::string> files;

// LoadConfigFile's contract over files held in memory.
Result<nlohmann::json> LoadFake(const std::string& path) {
  auto it = files.find(path);
  if (it == files.end()) return Status(ErrorCode::INVALID_PARAMS, "cannot read " + path);
  nlohmann::json doc = nlohmann::json::parse(it->second, nullptr, false);
  if (doc.is_discarded() || !doc.is_object()) {
    return Status(ErrorCode::INVALID_PARAMS, path + " is not a JSON object");
  }
  return doc;
}

Result<MooncakeMasterArgs> Translate(std::vector<std::string> args) {
  return TranslateMooncakeMasterArgs(args, kOwn, LoadFake);
}

std::vector<std::string> MasterArgs(std::vector<std::string> args) {
  Result<MooncakeMasterArgs> r = Translate(std::move(args));
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  return r->master_args;
}

TEST_CASE("mooncake_master: no flags is Mooncake's default, the metadata service off") {
  CHECK(MasterArgs({}) == std::vector<std::string>{"--no-meta"});
}

TEST_CASE("mooncake_master: each mapped flag becomes kvcached's option with Mooncake's unit") {
  std::vector<std::string> got =
      MasterArgs({"--rpc_port=6000", "--metrics_port", "9100", "-default_kv_lease_ttl=2500",
                  "--client_ttl=20", "--eviction_ratio=0.1", "--eviction_high_watermark_ratio=0.8",
                  "--put_start_discard_timeout_sec=40", "--put_start_release_timeout_sec=700",
                  "--rpc_thread_num=3", "--rpc_address=127.0.0.2", "--rpc_conn_timeout_seconds=30",
                  "--allocation_strategy=free_ratio_first", "--enable_http_metadata_server",
                  "--http_metadata_server_port=8181"});
  std::vector<std::string> want = {"--port=6000",
                                   "--threads=3",
                                   "--host=127.0.0.2",
                                   "--idle-timeout=30s",
                                   "--admin-port=9100",
                                   "--default-kv-lease-ttl=2500ms",
                                   "--eviction-ratio=0.1",
                                   "--eviction-high-watermark-ratio=0.8",
                                   "--client-ttl=20s",
                                   "--put-start-discard-timeout=40s",
                                   "--put-start-release-timeout=700s",
                                   "--allocation-strategy=free-ratio",
                                   "--meta-port=8181"};
  CHECK(got == want);
}

TEST_CASE("mooncake_master: rpc_port and rpc_thread_num win over the deprecated spellings") {
  CHECK(MasterArgs({"--port=7000", "--rpc_port=7001"}) ==
        std::vector<std::string>{"--port=7001", "--no-meta"});
  CHECK(MasterArgs({"--port=7000", "--rpc_port=0"}) ==
        std::vector<std::string>{"--port=7000", "--no-meta"});
  CHECK(MasterArgs({"--max_threads=2"}) == std::vector<std::string>{"--threads=2", "--no-meta"});
  CHECK(MasterArgs({"--max_threads=2", "--rpc_thread_num=5"}) ==
        std::vector<std::string>{"--threads=5", "--no-meta"});
}

TEST_CASE("mooncake_master: switches in gflags' spellings; the last one given wins") {
  CHECK(MasterArgs({"--enable_http_metadata_server=true"}).empty());
  CHECK(MasterArgs({"--enable_http_metadata_server=1"}).empty());
  CHECK(MasterArgs({"--enable_http_metadata_server=no"}) == std::vector<std::string>{"--no-meta"});
  CHECK(MasterArgs({"--enable_http_metadata_server", "--noenable_http_metadata_server"}) ==
        std::vector<std::string>{"--no-meta"});
  CHECK(MasterArgs({"--noenable_http_metadata_server", "--enable_http_metadata_server"}).empty());
  CHECK(MasterArgs({"--rpc_port=1", "--rpc_port=2"}).front() == "--port=2");
}

TEST_CASE("mooncake_master: kvcached's own options pass through as written") {
  CHECK(MasterArgs({"--token-file", "/etc/t", "--insecure", "--log-level=debug"}) ==
        std::vector<std::string>{"--no-meta", "--token-file", "/etc/t", "--insecure",
                                 "--log-level=debug"});
}

TEST_CASE("mooncake_master: bad input is refused with the flag named") {
  for (const std::vector<std::string>& bad :
       std::vector<std::vector<std::string>>{{"--rpc_prot=1"},
                                             {"--rpc_port=abc"},
                                             {"--rpc_port=-1"},
                                             {"--rpc_port"},
                                             {"--eviction_ratio=half"},
                                             {"--enable_ha=maybe"},
                                             {"--enable_ha"},  // no --etcd_endpoints
                                             {"stray"},
                                             {"--enable_http_metadata_server", "true"},
                                             {"--allocation_strategy=fastest"},
                                             {"--memory_allocator=jemalloc"},
                                             {"--nometrics_port"},
                                             {"--config_path=/missing.json"}}) {
    Result<MooncakeMasterArgs> r = Translate(bad);
    CHECK_MESSAGE(r.code() == ErrorCode::INVALID_PARAMS, bad.front());
  }
  Result<MooncakeMasterArgs> r = Translate({"--rpc_port=abc"});
  CHECK(r.status().message().find("--rpc_port") != std::string::npos);
}

TEST_CASE("mooncake_master: a feature kvcached lacks is NOT_SUPPORTED, never silently off") {
  for (const std::vector<std::string>& missing : std::vector<std::vector<std::string>>{
           {"--enable_cxl"},
           {"--root_fs_dir=/mnt/dfs"},
           {"--allocation_strategy=cxl"}}) {
    Result<MooncakeMasterArgs> r = Translate(missing);
    CHECK_MESSAGE(r.code() == ErrorCode::NOT_SUPPORTED, missing.front());
  }
  // Off is what kvcached has: accepted.
  CHECK(Translate({"--enable_ha=false", "--enable_offload=false", "--root_fs_dir="}).ok());
  // Disk tiers are each store's (--disk-path): the master needs no switch.
  CHECK(Translate({"--enable_offload=true"}).ok());
}

TEST_CASE("mooncake_master: flags without effect here are accepted and noted") {
  Result<MooncakeMasterArgs> r =
      Translate({"--enable_metric_reporting=false",
                 "--rpc_enable_tcp_no_delay=false", "--memory_allocator=cachelib",
                 "--max_total_processing_tasks=5", "--cluster_id=c1"});
  REQUIRE(r.ok());
  CHECK(r->master_args == std::vector<std::string>{"--no-meta"});
  auto noted = [&](const std::string& flag) {
    for (const std::string& n : r->notes) {
      if (n.find(flag) != std::string::npos) return true;
    }
    return false;
  };
  for (const char* flag :
       {"--enable_metric_reporting", "--rpc_enable_tcp_no_delay",
        "--memory_allocator", "--max_total_processing_tasks", "--cluster_id"}) {
    CHECK_MESSAGE(noted(flag), flag);
  }
  CHECK(Translate({"--rpc_port=1"})->notes.empty());
}

TEST_CASE("mooncake_master: --enable_ha runs one of several masters electing in etcd") {
  Result<MooncakeMasterArgs> r =
      Translate({"--enable_ha", "--etcd_endpoints=10.0.0.1:2379;10.0.0.2:2379", "--cluster_id=c1"});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->master_args == std::vector<std::string>{"--etcd-endpoints=10.0.0.1:2379;10.0.0.2:2379",
                                                   "--cluster-id=c1", "--no-meta"});
  CHECK(r->notes.empty());
  // A read lease over half of Mooncake's 5 s etcd lease lengthens the etcd
  // lease (the leader serves until one read lease before it could end).
  r = Translate({"--enable_ha", "--etcd_endpoints=10.0.0.1:2379", "--default_kv_lease_ttl=5000"});
  REQUIRE(r.ok());
  CHECK(r->master_args == std::vector<std::string>{"--default-kv-lease-ttl=5000ms",
                                                   "--etcd-endpoints=10.0.0.1:2379",
                                                   "--etcd-lease-ttl=10s", "--no-meta"});
  REQUIRE(r->notes.size() == 1);
  CHECK(r->notes[0].find("10 s") != std::string::npos);
  // Without --enable_ha the etcd flags do nothing, and say so.
  r = Translate({"--etcd_endpoints=10.0.0.1:2379"});
  REQUIRE(r.ok());
  CHECK(r->master_args == std::vector<std::string>{"--no-meta"});
  CHECK(r->notes.size() == 1);
}

TEST_CASE("mooncake_master: the task table's limits reach the master") {
  Result<MooncakeMasterArgs> r =
      Translate({"--max_total_pending_tasks=5", "--max_total_finished_tasks=7"});
  REQUIRE(r.ok());
  CHECK(r->master_args == std::vector<std::string>{"--max-pending-tasks=5",
                                                   "--max-finished-tasks=7", "--no-meta"});
  CHECK(r->notes.empty());
}

TEST_CASE("mooncake_master: the soft pin settings reach the master") {
  Result<MooncakeMasterArgs> r =
      Translate({"--default_kv_soft_pin_ttl=60000", "--allow_evict_soft_pinned_objects=false"});
  REQUIRE(r.ok());
  CHECK(r->master_args == std::vector<std::string>{"--default-kv-soft-pin-ttl=60000ms",
                                                   "--allow-evict-soft-pinned-objects=false",
                                                   "--no-meta"});
  CHECK(r->notes.empty());
}

TEST_CASE("mooncake_master: the config file's keys, with the command line over them") {
  files["/m.json"] =
      R"({"rpc_port": 6100, "metrics_port": "9200", "client_live_ttl_sec": 30,
          "enable_http_metadata_server": true, "eviction_ratio": 0.2, "some_new_key": 1})";
  Result<MooncakeMasterArgs> r = Translate({"--config_path=/m.json", "--metrics_port=9300"});
  REQUIRE_MESSAGE(r.ok(), r.status().message());
  CHECK(r->master_args == std::vector<std::string>{"--port=6100", "--admin-port=9300",
                                                   "--eviction-ratio=0.2", "--client-ttl=30s"});
  REQUIRE(r->notes.size() == 1);
  CHECK(r->notes[0].find("some_new_key") != std::string::npos);

  files["/bad.json"] = R"({"rpc_port": "x"})";
  CHECK(Translate({"--config_path", "/bad.json"}).code() == ErrorCode::INVALID_PARAMS);
  files["/m.yaml"] = "rpc_port: 1\n";
  Result<MooncakeMasterArgs> yaml = Translate({"--config_path=/m.yaml"});
  CHECK(yaml.code() == ErrorCode::INVALID_PARAMS);
  CHECK(yaml.status().message().find("YAML") != std::string::npos);
  files["/yaml"] = "rpc_port: 1\n";
  CHECK(Translate({"--config_path=/yaml"}).code() == ErrorCode::INVALID_PARAMS);
  files["/ha.json"] = R"({"enable_ha": true})";
  CHECK(Translate({"--config_path=/ha.json"}).code() == ErrorCode::INVALID_PARAMS);  // no etcd
  CHECK(Translate({"--config_path=/ha.json", "--enable_ha=false"}).ok());
}

TEST_CASE("mooncake_master: --help and --version stop before anything else") {
  CHECK(Translate({"--rpc_port=1", "--help"})->help);
  CHECK(Translate({"--helpfull"})->help);
  CHECK(Translate({"--version"})->version);
  std::string help = MooncakeMasterHelp();
  for (const char* flag : {"--rpc_port", "--enable_ha", "--config_path", "--cxl_size"}) {
    CHECK_MESSAGE(help.find(flag) != std::string::npos, flag);
  }
}

TEST_CASE("mooncake_master: chosen by the binary's name only") {
  CHECK(InvokedAsMooncakeMaster("mooncake_master"));
  CHECK(InvokedAsMooncakeMaster("/usr/bin/mooncake_master"));
  CHECK_FALSE(InvokedAsMooncakeMaster("/usr/bin/kvcached"));
  CHECK_FALSE(InvokedAsMooncakeMaster("mooncake_master2"));
  CHECK_FALSE(InvokedAsMooncakeMaster(nullptr));
}

}  // namespace
}  // namespace kvcached
