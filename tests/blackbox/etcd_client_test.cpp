// EtcdClient against a real etcd (Debian's etcd-server, /usr/bin/etcd, a
// one-member cluster on free loopback ports): the calls leader election is
// built on, through etcd's v3 JSON gateway.
#include <doctest/doctest.h>

#include <unistd.h>

#include <string>
#include <thread>

#include "etcd_member.h"
#include "kvcached_process.h"
#include "master/leadership.h"
#include "net/etcd_client.h"

namespace kvcached {
namespace {

using std::chrono::milliseconds;
using testing::EtcdMember;
using testing::FreePort;
using testing::WaitFor;

TEST_CASE("etcd client: keys, a create-if-absent transaction and leases on a real etcd") {
  REQUIRE_MESSAGE(access(testing::kEtcdBinary, X_OK) == 0, testing::kEtcdMissing);
  EtcdMember etcd;
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
  CHECK(got.code() == ErrorCode::RPC_FAIL);  // refused: not reachable, not a refusal by etcd
  CHECK(got.status().message().find(a) != std::string::npos);
  CHECK(got.status().message().find(b) != std::string::npos);
}

TEST_CASE("leadership: one leader at a time, a higher epoch for the next, a fence without etcd") {
  EtcdMember etcd;
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
