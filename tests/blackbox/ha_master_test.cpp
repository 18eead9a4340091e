// `kvcached master --etcd-endpoints` against a real etcd member: the
// standby's closed RPC port, the leader's /health, and the PutEnd answer
// that waits for the owner's acknowledgement of its table update (the
// failover tests in tests/python/test_failover.py run whole clusters).
#include <doctest/doctest.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <mutex>
#include <thread>

#include "core/rpc_protocol.h"
#include "etcd_member.h"
#include "kvcached_process.h"
#include "net/rpc_client.h"

namespace kvcached {
namespace {

using namespace std::chrono_literals;
using testing::EtcdMember;
using testing::FreePort;
using testing::HttpGet;
using testing::KvcachedProcess;
using testing::Metric;
using testing::WaitFor;

// A segment owner as `kvcached store` is one: a thread reads its
// connection and applies (and, when asked, acknowledges) table updates as
// they come, while the test makes calls on the same client.
class Owner {
 public:
  Owner(const std::string& address, bool acks) {
    RpcClientOptions o;
    o.address = address;
    o.hello.role = static_cast<uint8_t>(PeerRole::kStore);
    o.hello.client_id = acks ? "store-acks" : "store-silent";
    o.hello.host_id = "host";
    o.on_table_update = [this](const TableUpdate& u) {
      std::lock_guard<std::mutex> lock(mu_);
      for (const TableChange& c : u.changes) keys_[c.entry.key] = c.op;
    };
    o.ack_table_updates = acks;
    client_ = std::make_unique<RpcClient>(o);
    Status st = client_->Connect();
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    if (acks) {
      pump_ = std::thread([this] {
        while (!stop_) (void)client_->PollNotifications(5ms);
      });
    }
  }
  ~Owner() {
    stop_ = true;
    if (pump_.joinable()) pump_.join();
  }
  RpcClient& rpc() { return *client_; }
  bool Holds(const std::string& key) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = keys_.find(key);
    return it != keys_.end() && it->second == static_cast<uint8_t>(TableOp::kAdd);
  }

 private:
  std::unique_ptr<RpcClient> client_;
  std::mutex mu_;
  std::map<std::string, uint8_t> keys_;  // guarded by mu_
  std::atomic<bool> stop_{false};
  std::thread pump_;
};

std::unique_ptr<RpcClient> Writer(const std::string& address) {
  RpcClientOptions o;
  o.address = address;
  o.hello.role = static_cast<uint8_t>(PeerRole::kClient);
  o.hello.client_id = "writer";
  o.hello.host_id = "host";
  auto c = std::make_unique<RpcClient>(o);
  Status st = c->Connect();
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  return c;
}

// PutStart + PutEnd of one 4 KiB object; PutEnd's code.
int32_t Put(RpcClient& c, const std::string& key) {
  ReplicaListResponse placed;
  REQUIRE(c.Call(MsgType::kPutStart, PutStartRequest{1, "", {{key, 4096}}}, placed).ok());
  REQUIRE(placed.items.size() == 1);
  REQUIRE(placed.items[0].code == 0);
  CodesResponse ended;
  REQUIRE(c.Call(MsgType::kPutEnd, PutEndRequest{{{key, 7}}}, ended).ok());
  REQUIRE(ended.codes.size() == 1);
  return ended.codes[0];
}

TEST_CASE("HA master: standby keeps RPC closed; the leader's PutEnd waits for the owner's ack") {
  REQUIRE_MESSAGE(access(testing::kEtcdBinary, X_OK) == 0, testing::kEtcdMissing);
  EtcdMember etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  std::string rpc = "127.0.0.1:" + std::to_string(FreePort());
  KvcachedProcess master({"master", "--port", rpc.substr(rpc.rfind(':') + 1), "--admin-port", "0",
                          "--no-meta", "--etcd-endpoints", etcd.client(), "--cluster-id", "acks",
                          "--etcd-lease-ttl", "4s"});
  std::string admin = master.Address("admin");
  // Alone, it is elected; until then /health says standby and RPC is closed.
  REQUIRE(WaitFor([&] { return HttpGet(admin, "/health").find("role: leader") != std::string::npos; },
                  20s));
  std::string health = HttpGet(admin, "/health");
  CHECK(health.rfind("OK\n", 0) == 0);
  CHECK(health.find("cluster: acks") != std::string::npos);
  CHECK(health.find("epoch: 0") == std::string::npos);
  CHECK(Metric(admin, "kvcached_master_leader") == 1);
  // A second master of the cluster waits: /health names the leader, its own
  // RPC port refuses connections, other admin paths answer 503.
  std::string standby_rpc = "127.0.0.1:" + std::to_string(FreePort());
  KvcachedProcess standby({"master", "--port", standby_rpc.substr(standby_rpc.rfind(':') + 1),
                           "--admin-port", "0", "--no-meta", "--etcd-endpoints", etcd.client(),
                           "--cluster-id", "acks", "--etcd-lease-ttl", "4s"});
  std::string standby_admin = standby.Address("admin");
  REQUIRE(WaitFor(
      [&] { return HttpGet(standby_admin, "/health").find("leader: " + rpc) != std::string::npos; },
      20s));
  CHECK(HttpGet(standby_admin, "/health").find("role: standby") != std::string::npos);
  CHECK(Metric(standby_admin, "kvcached_master_leader") == 0);
  {
    RpcClientOptions o;
    o.address = standby_rpc;
    o.hello.client_id = "probe";
    o.connect_timeout = 2s;
    RpcClient probe(o);
    CHECK(probe.Connect().code() == ErrorCode::RPC_FAIL);  // refused: nothing listens
  }
  CHECK(HttpGet(standby_admin, "/api/v1/segments").find("standby") != std::string::npos);

  SUBCASE("an owner that acknowledges holds the object when the writer has its answer") {
    Owner owner(rpc, /*acks=*/true);
    StatusResponse r;
    REQUIRE(owner.rpc()
                .Call(MsgType::kMountSegment, MountRequest{{"seg", 0x10000, 1 << 20, "tcp://x"}}, r)
                .ok());
    REQUIRE(r.code == 0);
    auto writer = Writer(rpc);
    for (int i = 0; i < 20; ++i) {
      std::string key = "k" + std::to_string(i);
      CHECK(Put(*writer, key) == 0);
      CHECK_MESSAGE(owner.Holds(key), key);  // applied before the answer left
    }
    CHECK(Metric(admin, "kvcached_master_table_ack_timeouts_total") == 0);
  }
  SUBCASE("an owner that never acknowledges delays the answer, which still comes") {
    Owner owner(rpc, /*acks=*/false);
    StatusResponse r;
    REQUIRE(owner.rpc()
                .Call(MsgType::kMountSegment, MountRequest{{"seg", 0x10000, 1 << 20, "tcp://x"}}, r)
                .ok());
    auto writer = Writer(rpc);
    CHECK(Put(*writer, "late") == 0);
    CHECK(Metric(admin, "kvcached_master_table_ack_timeouts_total") == 1);
  }
}

// True once a kvcached process of this test logged `line` (its stderr is
// /tmp/kvcached-bb-*/stderr.log, kvcached_process.h), before it is ready.
bool SomeProcessLogged(const std::string& line) {
  std::error_code ec;
  for (const auto& dir : std::filesystem::directory_iterator("/tmp", ec)) {
    if (dir.path().filename().string().rfind("kvcached-bb-", 0) != 0) continue;
    std::ifstream in(dir.path() / "stderr.log");
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    if (text.find(line) != std::string::npos) return true;
  }
  return false;
}

TEST_CASE("HA store: started before any master leads, it waits for one and mounts there") {
  REQUIRE_MESSAGE(access(testing::kEtcdBinary, X_OK) == 0, testing::kEtcdMissing);
  EtcdMember etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  const std::string cluster = "late-" + std::to_string(getpid());
  std::unique_ptr<KvcachedProcess> store;
  std::string failed;
  // Its readiness comes only once a master leads: start it on a thread.
  std::thread starting([&] {
    try {
      store = std::make_unique<KvcachedProcess>(std::vector<std::string>{
          "store", "--master", "etcd://" + etcd.client(), "--cluster-id", cluster,
          "--segment-size", "8MiB", "--segment-name", "waiting-seg"});
    } catch (const std::exception& e) {
      failed = e.what();
    }
  });
  // The master starts once the store said it waits for one.
  bool waiting = WaitFor(
      [&] { return SomeProcessLogged("no master leads cluster '" + cluster + "'"); }, 20s);
  KvcachedProcess master({"master", "--port", std::to_string(FreePort()), "--admin-port", "0",
                          "--no-meta", "--etcd-endpoints", etcd.client(), "--cluster-id", cluster,
                          "--etcd-lease-ttl", "4s"});
  starting.join();
  CHECK(waiting);
  REQUIRE_MESSAGE(failed.empty(), failed);
  REQUIRE(store);
  CHECK(store->Log().find("waiting up to 15 s for a master to lead") != std::string::npos);
  std::string admin = master.Address("admin");
  CHECK(WaitFor([&] { return HttpGet(admin, "/get_all_segments") == "waiting-seg\n"; }, 20s));
}

TEST_CASE("RpcClient: with a reconnect window a call waits out a missing leader") {
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--no-meta"});
  std::string rpc = master.Address("rpc");
  // The resolver knows no leader for its first lookups, as during an
  // election; then it names the master.
  std::atomic<int> lookups{0};
  std::atomic<bool> never{false};  // no leader ever
  RpcClientOptions o;
  o.hello.client_id = "follower";
  o.connect_attempts = 2;
  o.backoff_initial = 10ms;
  o.resolve_address = [&]() -> Result<std::string> {
    if (++lookups <= 4 || never) {
      return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "no leader yet");
    }
    return rpc;
  };
  SUBCASE("without a window the call fails after its connect attempts") {
    RpcClient c(o);
    PingResponse pong;
    CHECK(c.Call(MsgType::kPing, PingRequest{0}, pong).code() ==
          ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
    CHECK(lookups == 2);
  }
  SUBCASE("within the window it keeps looking and succeeds") {
    o.reconnect_window = 30s;  // ends at the fifth lookup, long before
    RpcClient c(o);
    PingResponse pong;
    CHECK(c.Call(MsgType::kPing, PingRequest{0}, pong).ok());
    CHECK(lookups == 5);
  }
  SUBCASE("a window that runs out ends the call with the last error") {
    never = true;
    o.reconnect_window = 300ms;
    o.connect_attempts = 1;
    RpcClient c(o);
    PingResponse pong;
    CHECK(c.Call(MsgType::kPing, PingRequest{0}, pong).code() ==
          ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
    CHECK(lookups > 1);  // it kept looking past its one attempt
  }
}

}  // namespace
}  // namespace kvcached
