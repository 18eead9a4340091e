// EtcdClient against a real etcd (Debian's etcd-server, /usr/bin/etcd, a
// one-member cluster on free loopback ports): the calls leader election is
// built on, through etcd's v3 JSON gateway.
#include <doctest/doctest.h>

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "kvcached_process.h"
#include "master/leadership.h"
#include "net/etcd_client.h"

namespace kvcached {
namespace {

using std::chrono::milliseconds;
using testing::HttpGet;
using testing::WaitFor;

uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

// One etcd member in a temp dir; killed and removed at the end.
class Etcd {
 public:
  Etcd() {
    char tmpl[] = "/tmp/kvcached-etcd-XXXXXX";
    dir_ = mkdtemp(tmpl);
    client_ = "127.0.0.1:" + std::to_string(FreePort());
    std::string peer = "127.0.0.1:" + std::to_string(FreePort());
    std::vector<std::string> args = {"/usr/bin/etcd",
                                     "--name=m0",
                                     "--data-dir=" + dir_ + "/data",
                                     "--listen-client-urls=http://" + client_,
                                     "--advertise-client-urls=http://" + client_,
                                     "--listen-peer-urls=http://" + peer,
                                     "--initial-advertise-peer-urls=http://" + peer,
                                     "--initial-cluster=m0=http://" + peer};
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/etcd.log";
      if (!freopen(log.c_str(), "w", stderr)) _exit(126);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Polls /health (it answers "true" once the member serves) until then,
    // or until etcd exits (a port taken under us: the log says why).
    ready_ = WaitFor(
        [&] {
          if (waitpid(pid_, nullptr, WNOHANG) == pid_) return exited_ = true;
          return HttpGet(client_, "/health").find("\"true\"") != std::string::npos;
        },
        milliseconds(30000)) && !exited_;
  }
  ~Etcd() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::string rm = "rm -rf '" + dir_ + "'";
    (void)!std::system(rm.c_str());
  }
  bool ready() const { return ready_; }
  void Kill() {
    if (!exited_) kill(pid_, SIGKILL), waitpid(pid_, nullptr, 0), exited_ = true;
  }
  const std::string& client() const { return client_; }

 private:
  std::string dir_, client_;
  pid_t pid_ = -1;
  bool ready_ = false;
  bool exited_ = false;
};

TEST_CASE("etcd client: keys, a create-if-absent transaction and leases on a real etcd") {
  REQUIRE_MESSAGE(access("/usr/bin/etcd", X_OK) == 0,
                  "/usr/bin/etcd is missing: apt-get install etcd-server "
                  "(scripts/quickstart.sh test installs it)");
  Etcd etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  // A dead endpoint first: the call goes on to the live one.
  std::string dead = "127.0.0.1:" + std::to_string(FreePort());
  auto c = EtcdClient::Create("etcd://" + dead + ";" + etcd.client(), milliseconds(3000));
  REQUIRE(c.ok());

  std::string bytes("k\0\xff/\n", 5);
  REQUIRE(c->Put("test/a", bytes).ok());
  REQUIRE(c->Put("test/b", "2").ok());
  REQUIRE(c->Put("tesu", "outside").ok());
  auto got = c->Get("test/a");
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->value == bytes);
  CHECK((*got)->create_revision > 0);
  auto none = c->Get("test/none");
  REQUIRE(none.ok());
  CHECK_FALSE(none->has_value());
  auto all = c->GetPrefix("test/");
  REQUIRE(all.ok());
  REQUIRE(all->size() == 2);
  CHECK((*all)[0].key == "test/a");
  CHECK((*all)[1].value == "2");
  auto deleted = c->Delete("test/b");
  REQUIRE(deleted.ok());
  CHECK(*deleted == 1);
  CHECK(*c->Delete("test/b") == 0);

  int64_t ttl = 0;
  auto lease = c->LeaseGrant(5, &ttl);
  REQUIRE(lease.ok());
  CHECK(ttl >= 5);
  auto first = c->CreateIfAbsent("test/leader", "me", *lease);
  REQUIRE(first.ok());
  CHECK(first->created);
  CHECK(first->revision > 0);
  auto second = c->CreateIfAbsent("test/leader", "other", 0);
  REQUIRE(second.ok());
  CHECK_FALSE(second->created);
  REQUIRE(second->current.has_value());
  CHECK(second->current->value == "me");
  CHECK(second->current->create_revision == first->revision);
  CHECK(second->current->lease == *lease);

  auto renewed = c->LeaseKeepAlive(*lease);
  REQUIRE(renewed.ok());
  CHECK(*renewed >= 5);
  CHECK_FALSE(*c->DeleteIfCreatedAt("test/leader", first->revision + 1000));
  CHECK(c->Get("test/leader")->has_value());

  // Revoking the lease deletes the key bound to it; a keepalive then says 0.
  REQUIRE(c->LeaseRevoke(*lease).ok());
  CHECK_FALSE(c->Get("test/leader")->has_value());
  auto gone = c->LeaseKeepAlive(*lease);
  REQUIRE(gone.ok());
  CHECK(*gone == 0);

  auto again = c->CreateIfAbsent("test/leader", "next", 0);
  REQUIRE(again.ok());
  CHECK(again->created);
  CHECK(again->revision > first->revision);  // a later claim has a higher revision
  CHECK(*c->DeleteIfCreatedAt("test/leader", again->revision));
  CHECK_FALSE(c->Get("test/leader")->has_value());
}

TEST_CASE("etcd client: no reachable endpoint is an error naming each one") {
  std::string a = "127.0.0.1:" + std::to_string(FreePort());
  std::string b = "127.0.0.1:" + std::to_string(FreePort());
  auto c = EtcdClient::Create(a + "," + b, milliseconds(1000));
  REQUIRE(c.ok());
  auto got = c->Get("k");
  REQUIRE_FALSE(got.ok());
  CHECK(got.code() == ErrorCode::ETCD_OPERATION_ERROR);
  CHECK(got.status().message().find(a) != std::string::npos);
  CHECK(got.status().message().find(b) != std::string::npos);
}

TEST_CASE("leadership: one leader at a time, a higher epoch for the next, a fence without etcd") {
  Etcd etcd;
  REQUIRE_MESSAGE(etcd.ready(), "etcd did not become healthy within 30 s");
  auto client = EtcdClient::Create(etcd.client(), milliseconds(1000));
  REQUIRE(client.ok());
  LeadershipOptions o;
  o.cluster_id = "test";
  o.lease_ttl_s = 4;  // renewals every 1 s, the fence 3 s after each: room for a loaded machine
  o.grant_margin = milliseconds(1000);
  o.value = "A";
  Leadership a(*client, o);
  o.value = "B";
  Leadership b(*client, o);

  auto ignore = [](const std::string&, int64_t) {};
  REQUIRE(a.Campaign(ignore).ok());
  CHECK(a.epoch() > 0);
  CHECK(a.MayServe());
  std::atomic<int> lost_a{0};
  a.StartRenewals([&](const std::string&) { ++lost_a; });

  // B waits, told who leads, until A resigns; then it leads at a later epoch.
  std::string seen;
  int64_t seen_epoch = 0;
  std::atomic<bool> b_won{false};
  std::thread t([&] {
    b_won = b.Campaign([&](const std::string& v, int64_t e) { seen = v, seen_epoch = e; }).ok();
  });
  CHECK(WaitFor([&] { return seen_epoch != 0; }, milliseconds(10000)));
  CHECK_FALSE(b_won.load());
  // A renews past its TTL: still the leader two TTLs later.
  CHECK_FALSE(WaitFor([&] { return lost_a.load() > 0; }, milliseconds(8500)));
  CHECK(a.MayServe());
  a.Resign();
  t.join();
  CHECK(b_won.load());
  CHECK(seen == "A");
  CHECK(seen_epoch == a.epoch());
  CHECK(b.epoch() > a.epoch());
  auto key = client->Get(LeaderKey("test"));
  REQUIRE(key.ok());
  REQUIRE(key->has_value());
  CHECK((*key)->value == "B");

  // etcd gone: B stops serving by its fence (grant time + TTL - margin),
  // before etcd could have expired its claim, and is told once.
  std::atomic<int> lost_b{0};
  b.StartRenewals([&](const std::string&) { ++lost_b; });
  auto killed = Leadership::Clock::now();
  etcd.Kill();
  CHECK(WaitFor([&] { return lost_b.load() > 0; }, milliseconds(10000)));
  CHECK_FALSE(b.MayServe());
  CHECK(b.fence() <= killed + std::chrono::seconds(4) - milliseconds(1000));
  CHECK(lost_b.load() == 1);
}

}  // namespace
}  // namespace kvcached
