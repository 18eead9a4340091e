#include "master/master_index.h"

#include <algorithm>

#include <doctest/doctest.h>

#include "core/tenant.h"

namespace kvcached {
namespace {

constexpr int32_t kOk = 0;
constexpr int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }
constexpr uint64_t kMiB = 1 << 20;

const Caller kStoreA{"store-a", "host-a"};
const Caller kStoreB{"store-b", "host-b"};
const Caller kWriter{"writer", "host-a"};
const Caller kOther{"other", "host-b"};

MasterOptions Opts() {
  MasterOptions o;
  o.random_seed = 42;
  o.lease_ttl_ms = 1000;
  o.put_start_discard_timeout_ms = 3000;
  o.put_start_release_timeout_ms = 60'000;
  o.client_ttl_ms = 5000;
  return o;
}

SegmentInfo Seg(const std::string& name, uint64_t size) {
  return {name, 0x1000, size, "tcp://" + name};
}

// PutStart + PutEnd of one key; returns the PutStart item.
ReplicaItem Put(MasterIndex& m, const std::string& key, uint64_t size, int64_t now,
                uint64_t checksum = 7, const Caller& who = kWriter, uint32_t replicas = 1) {
  ReplicaListResponse start = m.PutStart(who, {replicas, "", {{key, size}}}, now);
  REQUIRE(start.items.size() == 1);
  if (start.items[0].code == kOk) {
    CodesResponse end = m.PutEnd(who, {{{key, checksum}}}, now);
    REQUIRE(end.codes[0] == kOk);
  }
  return start.items[0];
}

TEST_CASE("put lifecycle: pending objects are invisible until PutEnd") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  ReplicaListResponse start = m.PutStart(kWriter, {1, "", {{"k", kMiB}}}, 0);
  REQUIRE(start.items[0].code == kOk);
  REQUIRE(start.items[0].replicas.size() == 1);
  CHECK(start.segments[0].name == "a");
  CHECK(start.segments[0].endpoint == "tcp://a");
  CHECK(m.ExistKeys({"k"}, 0).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
  CHECK(m.GetSizes({"k"}).items[0].code == Code(ErrorCode::OBJECT_NOT_FOUND));
  CHECK(m.PutEnd(kOther, {{{"k", 9}}}, 0).codes[0] == Code(ErrorCode::INVALID_WRITE));
  CHECK(m.PutEnd(kWriter, {{{"k", 9}}}, 0).codes[0] == kOk);
  CodesResponse exist = m.ExistKeys({"k", "nope"}, 0);
  CHECK(exist.codes == std::vector<int32_t>{kOk, Code(ErrorCode::OBJECT_NOT_FOUND)});
  CHECK(exist.lease_ttl_ms == 0);  // a check grants no lease
  ReplicaListResponse list = m.GetReplicaLists({"k"}, 0);
  CHECK(list.items[0].checksum == 9);
  CHECK(list.items[0].size == kMiB);
  CHECK(list.items[0].replicas[0].offset == start.items[0].replicas[0].offset);
  CHECK(m.GetSizes({"k"}).items[0].size == kMiB);
  // Immutable: a second put is refused and changes nothing.
  CHECK(m.PutStart(kOther, {1, "", {{"k", 2 * kMiB}}}, 0).items[0].code ==
        Code(ErrorCode::OBJECT_ALREADY_EXISTS));
  CHECK(m.GetSizes({"k"}).items[0].size == kMiB);
}

TEST_CASE("bad put requests") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  CHECK(m.PutStart(kWriter, {0, "", {{"k", 1}}}, 0).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(m.PutStart(kWriter, {17, "", {{"k", 1}}}, 0).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(m.PutStart(kWriter, {1, "", {{"k", 0}}}, 0).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(m.PutStart(kWriter, {1, "", {{"", 1}}}, 0).items[0].code == Code(ErrorCode::INVALID_KEY));
  // Larger than every segment: it can never be placed.
  CHECK(m.PutStart(kWriter, {1, "", {{"big", 9 * kMiB}}}, 0).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(m.object_count() == 0);
  CHECK(m.used_bytes() == 0);
}

TEST_CASE("replicas, preferred segment and placement strategies") {
  MasterOptions o = Opts();
  o.strategy = AllocationStrategy::kLocalFirst;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  REQUIRE(m.Mount(kStoreB, Seg("b", 64 * kMiB), 0).ok());
  ReplicaItem two = Put(m, "two", kMiB, 0, 1, kWriter, 2);
  CHECK(two.replicas.size() == 2);
  ReplicaItem three = Put(m, "three", kMiB, 0, 1, kWriter, 3);  // only two segments
  CHECK(three.replicas.size() == 2);
  // local-first: the writer is on host-a.
  ReplicaListResponse local = m.PutStart(kWriter, {1, "", {{"local", kMiB}}}, 0);
  CHECK(local.segments[local.items[0].replicas[0].segment].name == "a");
  ReplicaListResponse pref = m.PutStart(kWriter, {1, "b", {{"pref", kMiB}}}, 0);
  CHECK(pref.segments[pref.items[0].replicas[0].segment].name == "b");
  CHECK(ParseAllocationStrategy("free-ratio").ok());
  CHECK_FALSE(ParseAllocationStrategy("fastest").ok());
}

TEST_CASE("free-ratio placement fills the emptier segment") {
  MasterOptions o = Opts();
  o.strategy = AllocationStrategy::kFreeRatio;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  REQUIRE(m.Mount(kStoreB, Seg("b", 64 * kMiB), 0).ok());
  for (int i = 0; i < 20; ++i) Put(m, "k" + std::to_string(i), kMiB, 0);
  std::vector<SegmentStats> segs = m.Segments(0);
  REQUIRE(segs.size() == 2);
  CHECK(segs[0].objects == 10);
  CHECK(segs[1].objects == 10);
}

TEST_CASE("leases block removal; force overrides; RemoveAll skips leased") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  Put(m, "k", kMiB, 0);
  Put(m, "j", kMiB, 0);
  m.ExistKeys({"k", "j"}, 50);    // no lease
  m.GetReplicaLists({"k"}, 100);  // lease until 1100
  CHECK(m.Remove({"k"}, false, 500).codes[0] == Code(ErrorCode::OBJECT_HAS_LEASE));
  CHECK(m.RemoveAll("", false, 500) == 1);              // only j
  CHECK(m.Remove({"k"}, false, 1100).codes[0] == kOk);  // lease over (monotonic ms)
  Put(m, "k", kMiB, 2000);
  m.GetReplicaLists({"k"}, 2000);  // lease until 3000
  CHECK(m.Remove({"k"}, true, 2001).codes[0] == kOk);
  CHECK(m.Remove({"k"}, false, 2001).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
  // Gone from the index, but its reader may still be reading: the range
  // is reused only when the lease ends.
  CHECK(m.used_bytes() == kMiB);
  m.Tick(2999);
  CHECK(m.used_bytes() == kMiB);
  m.Tick(3000);
  CHECK(m.used_bytes() == 0);
}

TEST_CASE("pending puts: takeover after the discard timeout, reclaim after release") {
  MasterOptions o = Opts();
  o.eviction_high_watermark_ratio = 1.0;  // this case is about puts, not eviction
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 4 * kMiB), 0).ok());
  REQUIRE(m.PutStart(kWriter, {1, "", {{"k", 2 * kMiB}}}, 0).items[0].code == kOk);
  CHECK(m.PutStart(kOther, {1, "", {{"k", 2 * kMiB}}}, 2999).items[0].code ==
        Code(ErrorCode::REPLICA_IS_NOT_READY));
  ReplicaListResponse taken = m.PutStart(kOther, {1, "", {{"k", 2 * kMiB}}}, 3000);
  REQUIRE(taken.items[0].code == kOk);
  CHECK(m.counters().put_takeovers == 1);
  // The abandoned range is still held: the segment is full.
  CHECK(m.used_bytes() == 4 * kMiB);
  // The old writer's PutEnd must not publish the new writer's range.
  CHECK(m.PutEnd(kWriter, {{{"k", 1}}}, 3001).codes[0] == Code(ErrorCode::INVALID_WRITE));
  CHECK(m.PutEnd(kOther, {{{"k", 2}}}, 3001).codes[0] == kOk);
  m.Tick(59'999);
  CHECK(m.used_bytes() == 4 * kMiB);
  m.Tick(60'000);  // release timeout of the first put
  CHECK(m.used_bytes() == 2 * kMiB);
  // A put nobody ends is reclaimed after the release timeout.
  REQUIRE(m.PutStart(kWriter, {1, "", {{"lost", kMiB}}}, 61'000).items[0].code == kOk);
  m.Tick(121'000);
  CHECK(m.counters().put_reclaims == 1);
  CHECK(m.Lookup("lost", 121'000) == std::nullopt);
  CHECK(m.used_bytes() == 2 * kMiB);
  // PutRevoke frees at once, and only for the writer.
  REQUIRE(m.PutStart(kWriter, {1, "", {{"r", kMiB}}}, 0).items[0].code == kOk);
  CHECK(m.PutRevoke(kOther, {"r"}, 0).codes[0] == Code(ErrorCode::INVALID_WRITE));
  CHECK(m.PutRevoke(kWriter, {"r", "nope"}, 0).codes ==
        std::vector<int32_t>{kOk, Code(ErrorCode::OBJECT_NOT_FOUND)});
  CHECK(m.used_bytes() == 2 * kMiB);
}

TEST_CASE("eviction: LRU order past the high watermark") {
  MasterOptions o = Opts();
  o.eviction_high_watermark_ratio = 0.5;
  o.eviction_ratio = 0.2;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 10 * kMiB), 0).ok());
  for (int i = 0; i < 6; ++i) Put(m, "k" + std::to_string(i), kMiB, 0);
  m.GetReplicaLists({"k0"}, 0);  // k0 becomes most recently used (leased until 1000)
  m.Tick(2000);                  // 6 of 10 MiB used > 50%: free 1 MiB over + 2 MiB
  CHECK(m.counters().evicted_objects == 3);
  CHECK(m.Lookup("k1", 2000) == std::nullopt);
  CHECK(m.Lookup("k2", 2000) == std::nullopt);
  CHECK(m.Lookup("k3", 2000) == std::nullopt);
  CHECK(m.Lookup("k0", 2000).has_value());
  CHECK(m.Lookup("k4", 2000).has_value());
  // Evictions are reported to the owner.
  auto updates = m.TakeTableUpdates();
  REQUIRE(updates.size() == 1);
  CHECK(updates[0].first == "store-a");
  size_t removes = 0;
  for (const TableChange& c : updates[0].second.changes) {
    removes += c.op == static_cast<uint8_t>(TableOp::kRemove);
  }
  CHECK(removes == 3);
}

// Mounts one 8 MiB segment and fills it with eight 1 MiB objects k0..k7.
std::vector<std::string> FillPool(MasterIndex& m) {
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  std::vector<std::string> all;
  for (int i = 0; i < 8; ++i) {
    all.push_back("k" + std::to_string(i));
    REQUIRE(Put(m, all.back(), kMiB, 0).code == kOk);
  }
  return all;
}

TEST_CASE("ExistKey pins nothing: a full pool evicts checked objects at once") {
  MasterIndex m(Opts());  // lease 1000 ms
  std::vector<std::string> all = FillPool(m);
  for (int32_t code : m.ExistKeys(all, 100).codes) CHECK(code == kOk);
  // Checked a moment ago, yet evictable: the put makes room now.
  CHECK(m.PutStart(kWriter, {1, "", {{"new", kMiB}}}, 200).items[0].code == kOk);
  CHECK(m.counters().evicted_objects >= 1);
  CHECK(m.counters().lease_refusals == 0);
  CHECK(m.Remove({"k7"}, false, 200).codes[0] == kOk);  // no lease to block a remove
}

TEST_CASE("eviction keeps making progress under a storm of reads") {
  MasterIndex m(Opts());  // lease 1000 ms
  std::vector<std::string> all = FillPool(m);
  // Every key is read (and leased) again every 100 ms, forever.
  int64_t now = 0;
  int32_t status = 0;
  for (; now < 5000; now += 100) {
    m.GetReplicaLists(all, now);
    if (now == 500) {
      // The pool is full: a new put triggers eviction; every object is
      // leased, so it dooms the oldest instead of failing forever.
      status = m.PutStart(kWriter, {1, "", {{"new", kMiB}}}, now).items[0].code;
    }
    m.Tick(now);
  }
  CHECK(status == Code(ErrorCode::NO_AVAILABLE_HANDLE));  // nothing unleased at that moment
  CHECK(m.counters().lease_refusals > 0);                 // doomed keys got no new lease
  CHECK(m.counters().evicted_objects >= 1);               // and were freed after their lease
  CHECK(m.PutStart(kWriter, {1, "", {{"new", kMiB}}}, now).items[0].code == kOk);
}

TEST_CASE("a put no segment can ever hold fails at once and evicts nothing") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  REQUIRE(m.Mount(kStoreB, Seg("b", 16 * kMiB), 0).ok());
  std::vector<std::string> all;
  for (int i = 0; i < 20; ++i) {
    all.push_back("k" + std::to_string(i));
    REQUIRE(Put(m, all.back(), kMiB, 0).code == kOk);
  }
  m.GetReplicaLists({"k0", "k1"}, 0);  // some leased, most not: nothing may go either way
  for (uint64_t size : {16 * kMiB + 64, uint64_t{1} << 63, ~uint64_t{0}}) {
    CAPTURE(size);
    for (uint32_t replicas : {1u, 2u}) {
      CHECK(m.PutStart(kWriter, {replicas, "", {{"huge", size}}}, 10).items[0].code ==
            Code(ErrorCode::INVALID_PARAMS));
    }
  }
  CHECK(m.counters().evicted_objects == 0);
  CHECK(m.counters().put_too_large == 6);
  for (int32_t code : m.ExistKeys(all, 10).codes) CHECK(code == kOk);
  CHECK(m.TakeTableUpdates().size() == 2);  // the 20 adds, and no remove
  CHECK(m.PutStart(kWriter, {1, "", {{"small", kMiB}}}, 10).items[0].code == kOk);
}

TEST_CASE("one eviction pass is bounded by the configured ratio") {
  MasterOptions o = Opts();
  o.eviction_ratio = 0.25;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 16 * kMiB), 0).ok());
  for (int i = 0; i < 16; ++i) REQUIRE(Put(m, "k" + std::to_string(i), kMiB, 0).code == kOk);
  // Full: a 1 MiB put frees a quarter of the pool (4 MiB), not everything.
  CHECK(m.PutStart(kWriter, {1, "", {{"new", kMiB}}}, 5000).items[0].code == kOk);
  CHECK(m.counters().evicted_objects == 4);
  CHECK_FALSE(m.Lookup("k3", 5000).has_value());
  CHECK(m.Lookup("k4", 5000).has_value());
}

TEST_CASE("liveness: silent owners lose their segments; a returning owner remounts") {
  MasterIndex m(Opts());  // client ttl 5000
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  REQUIRE(m.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(m, "ka", kMiB, 0, 1, kWriter);
  m.Ping(kStoreB, 1, 4000);
  CHECK(m.ExpireClients(4999).empty());
  auto expired = m.ExpireClients(5000);
  REQUIRE(expired.size() == 1);
  CHECK(expired[0].first == "store-a");
  CHECK(expired[0].second == 1);  // segments it lost
  CHECK(m.Segments(0).size() == 1);
  CHECK(m.Lookup("ka", 5000) == std::nullopt);
  CHECK(m.Ping(kStoreA, 1, 5001).remount_needed);
  CHECK_FALSE(m.Ping(kStoreB, 1, 5001).remount_needed);
  CHECK(m.Unmount(kStoreA, "b", 5001).code() == ErrorCode::ILLEGAL_CLIENT);
  CHECK(m.Unmount(kStoreA, "zz", 5001).code() == ErrorCode::SEGMENT_NOT_FOUND);
  CHECK(m.Mount(kStoreA, Seg("b", 8 * kMiB), 5001).code() == ErrorCode::SEGMENT_ALREADY_EXISTS);
  CHECK(m.Mount(kStoreB, Seg("b", 8 * kMiB), 5001).ok());  // idempotent retry
}

TEST_CASE("restart: the index is rebuilt from remounts and quarantined ranges wait") {
  MasterIndex first(Opts());
  REQUIRE(first.Mount(kStoreA, Seg("a", 4 * kMiB), 0).ok());
  ReplicaItem k1 = Put(first, "k1", kMiB, 0, 11);
  ReplicaItem k2 = Put(first, "k2", kMiB, 0, 22);
  std::vector<ObjectEntry> table;  // what the owner learned from TableUpdates
  for (auto& [owner, update] : first.TakeTableUpdates()) {
    for (const TableChange& c : update.changes) table.push_back(c.entry);
  }
  REQUIRE(table.size() == 2);
  // A bad entry from the owner is skipped, not trusted.
  table.push_back({"evil", 3 * kMiB + 64, 4 * kMiB, 0});
  table.push_back({"dup", table[0].offset, kMiB, 0});

  MasterIndex second(Opts());  // the restarted master
  CHECK(second.Ping(kStoreA, 1, 100).remount_needed);
  REQUIRE(second.Remount(kStoreA, Seg("a", 4 * kMiB), table, 100).ok());
  CHECK(second.counters().remount_objects_rejected == 2);
  CHECK(second.GetReplicaLists({"k1"}, 100).items[0].checksum == 11);
  CHECK(second.GetReplicaLists({"k2"}, 100).items[0].replicas[0].offset == k2.replicas[0].offset);
  CHECK_FALSE(second.Ping(kStoreA, 1, 100).remount_needed);
  // No new allocation in the rebuilt segment for one lease TTL.
  CHECK(second.PutStart(kWriter, {1, "", {{"n", kMiB}}}, 1099).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  // Quarantine is not a lack of space: nothing was chosen for eviction.
  CHECK_FALSE(second.Lookup("k1", 1099)->doomed);
  CHECK(second.counters().evicted_objects == 0);
  ReplicaListResponse later = second.PutStart(kWriter, {1, "", {{"n", kMiB}}}, 1100);
  REQUIRE(later.items[0].code == kOk);
  CHECK(later.items[0].replicas[0].offset != k1.replicas[0].offset);
  CHECK(later.items[0].replicas[0].offset != k2.replicas[0].offset);
}

// The table updates queued for `owner`, flattened in order.
std::vector<TableChange> UpdatesFor(MasterIndex& m, const std::string& owner) {
  std::vector<TableChange> out;
  for (auto& [who, update] : m.TakeTableUpdates()) {
    if (who != owner) continue;
    for (const TableChange& c : update.changes) out.push_back(c);
  }
  return out;
}

bool Removes(const std::vector<TableChange>& changes, const std::string& key) {
  for (const TableChange& c : changes) {
    if (c.entry.key == key && c.op == static_cast<uint8_t>(TableOp::kRemove)) return true;
  }
  return false;
}

TEST_CASE("rebuild keeps the newest record of each key, in either remount order") {
  // Store a holds an old version of k, store b the newer one (a missed the change).
  const std::vector<ObjectEntry> table_a{{"k", 0, kMiB, 1, 10}};
  const std::vector<ObjectEntry> table_b{{"k", 0, kMiB, 2, 20}};
  for (bool a_first : {true, false}) {
    CAPTURE(a_first);
    MasterIndex m(Opts());
    if (a_first) {
      REQUIRE(m.Remount(kStoreA, Seg("a", 4 * kMiB), table_a, 0).ok());
      REQUIRE(m.Remount(kStoreB, Seg("b", 4 * kMiB), table_b, 0).ok());
      CHECK(m.counters().remount_objects_superseded == 1);
    } else {
      REQUIRE(m.Remount(kStoreB, Seg("b", 4 * kMiB), table_b, 0).ok());
      REQUIRE(m.Remount(kStoreA, Seg("a", 4 * kMiB), table_a, 0).ok());
      CHECK(m.counters().remount_objects_rejected == 1);
    }
    ReplicaListResponse list = m.GetReplicaLists({"k"}, 0);
    REQUIRE(list.items[0].code == kOk);
    CHECK(list.items[0].checksum == 2);
    REQUIRE(list.items[0].replicas.size() == 1);
    CHECK(list.segments[list.items[0].replicas[0].segment].name == "b");
    // The stale owner is told to drop its record, and its range is free again.
    CHECK(Removes(UpdatesFor(m, "store-a"), "k"));
    CHECK(m.Segments(0)[a_first ? 0 : 1].used_bytes == 0);
  }
}

TEST_CASE("rebuild: of two records over one range the newer wins") {
  MasterIndex m(Opts());
  REQUIRE(m.Remount(kStoreA, Seg("a", 4 * kMiB),
                    {{"old", 0, 2 * kMiB, 1, 5}, {"new", kMiB, kMiB, 2, 9}}, 0)
              .ok());
  CHECK(m.counters().remount_objects_rejected == 1);
  CHECK(m.Lookup("old", 0) == std::nullopt);
  CHECK(m.Lookup("new", 0)->replicas[0].second == kMiB);
  CHECK(Removes(UpdatesFor(m, "store-a"), "old"));
}

TEST_CASE("an owner back after expiring: records removed or replaced meanwhile are refused") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  for (const char* key : {"kept", "moved", "gone"}) {
    REQUIRE(m.PutStart(kWriter, {1, "a", {{key, kMiB}}}, 0).items[0].code == kOk);
    REQUIRE(m.PutEnd(kWriter, {{{key, 1}}}, 0).codes[0] == kOk);
  }
  std::vector<ObjectEntry> table_a;  // what store a holds
  for (const TableChange& c : UpdatesFor(m, "store-a")) table_a.push_back(c.entry);
  REQUIRE(table_a.size() == 3);
  // Store a is stopped past the TTL; the master drops its objects.
  REQUIRE(m.Mount(kStoreB, Seg("b", 8 * kMiB), 5000).ok());
  REQUIRE(m.ExpireClients(5001).size() == 1);
  // Meanwhile "moved" is put again (on b) and "gone" is put on b and removed.
  Put(m, "moved", kMiB, 5002, 2);
  Put(m, "gone", kMiB, 5002, 2);
  REQUIRE(m.Remove({"gone"}, false, 5003).codes[0] == kOk);
  (void)m.TakeTableUpdates();
  // Store a comes back with its old table.
  REQUIRE(m.Remount(kStoreA, Seg("a", 8 * kMiB), table_a, 5004).ok());
  CHECK(m.counters().remount_objects_rejected == 2);
  std::vector<TableChange> told = UpdatesFor(m, "store-a");
  CHECK(Removes(told, "moved"));
  CHECK(Removes(told, "gone"));
  CHECK(m.GetReplicaLists({"kept"}, 5004).items[0].code == kOk);
  CHECK(m.GetReplicaLists({"gone"}, 5004).items[0].code == Code(ErrorCode::OBJECT_NOT_FOUND));
  ReplicaListResponse moved = m.GetReplicaLists({"moved"}, 5004);
  CHECK(moved.items[0].checksum == 2);
  CHECK(moved.segments[moved.items[0].replicas[0].segment].name == "b");
}

TEST_CASE("tombstones are bounded: past the limit older records are refused wholesale") {
  MasterOptions o = Opts();
  o.max_tombstones = 1;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  Put(m, "x", kMiB, 0);
  Put(m, "y", kMiB, 0);
  REQUIRE(m.Remove({"x", "y"}, false, 1).codes == std::vector<int32_t>{kOk, kOk});
  std::vector<TableChange> removed = UpdatesFor(m, "store-a");
  REQUIRE(removed.size() == 4);  // two adds, two removes
  // "x" fell out of the tombstones: a record of it at its version is refused by the floor.
  REQUIRE(m.Remount(kStoreB, Seg("b", 8 * kMiB), {removed[0].entry, {"z", 4 * kMiB, kMiB, 3, 1}}, 2)
              .ok());
  CHECK(m.Lookup("x", 2) == std::nullopt);
  CHECK(m.Lookup("z", 2) == std::nullopt);  // version 1 is below the floor too
}

TEST_CASE("remount of a segment still mounted: the index wins and the owner gets the differences") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  Put(m, "k1", kMiB, 0, 1);
  Put(m, "k2", kMiB, 0, 2);
  std::vector<TableChange> adds = UpdatesFor(m, "store-a");
  REQUIRE(adds.size() == 2);
  // The owner missed k2's add and still has "x", which the index removed.
  std::vector<ObjectEntry> theirs{adds[0].entry, {"x", 6 * kMiB, kMiB, 9, 1}};
  REQUIRE(m.Remount(kStoreA, Seg("a", 8 * kMiB), theirs, 10).ok());
  CHECK(m.counters().reconcile_changes == 2);
  std::vector<TableChange> told = UpdatesFor(m, "store-a");
  REQUIRE(told.size() == 2);
  CHECK(told[0].op == static_cast<uint8_t>(TableOp::kAdd));
  CHECK(told[0].entry.key == "k2");
  CHECK(told[0].entry.version == adds[1].entry.version);
  CHECK(Removes(told, "x"));
  CHECK(m.Lookup("x", 10) == std::nullopt);
  // Nothing was rebuilt: no quarantine, both objects still there.
  CHECK(m.PutStart(kWriter, {1, "", {{"n", kMiB}}}, 10).items[0].code == kOk);
  CHECK(m.GetReplicaLists({"k1", "k2"}, 10).items[1].code == kOk);
}

TEST_CASE("versions grow within a master and across a restart") {
  MasterOptions o = Opts();
  o.version_base_us = 1'000'000;
  MasterIndex first(o);
  REQUIRE(first.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  Put(first, "a", kMiB, 0);
  Put(first, "b", kMiB, 0);  // same millisecond: still a larger version
  Put(first, "c", kMiB, 5);  // 5 ms later: the clock moved 5000 us
  std::vector<TableChange> adds = UpdatesFor(first, "store-a");
  REQUIRE(adds.size() == 3);
  CHECK(adds[0].entry.version >= 1'000'000);
  CHECK(adds[1].entry.version == adds[0].entry.version + 1);
  CHECK(adds[2].entry.version >= o.version_base_us + 5000);
  // A restart whose clock base is behind what it finds in the tables (a
  // clock set back): versions it hands out still come after those.
  o.version_base_us = 10;
  MasterIndex second(o);
  std::vector<ObjectEntry> table;
  for (const TableChange& c : adds) table.push_back(c.entry);
  REQUIRE(second.Remount(kStoreA, Seg("a", 8 * kMiB), table, 0).ok());
  REQUIRE(second.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(second, "d", kMiB, 0);
  std::vector<TableChange> later = UpdatesFor(second, "store-b");
  REQUIRE(later.size() == 1);
  CHECK(later[0].entry.version > adds[2].entry.version);
}

TEST_CASE("segment owners: a peer claiming the owner's id without its proof changes nothing") {
  MasterIndex m(Opts());
  const Caller owner{"store-a", "host-a", 1111};
  const Caller impostor{"store-a", "host-x", 2222};  // the id is public; the proof is not
  const Caller no_proof{"store-a", "host-x", 0};
  REQUIRE(m.Mount(owner, Seg("a", 8 * kMiB), 0).ok());
  Put(m, "k1", kMiB, 0);
  Put(m, "k2", kMiB, 0);
  CHECK(m.AdmitOwner("store-a", 1111).ok());
  CHECK(m.AdmitOwner("store-a", 2222).code() == ErrorCode::ILLEGAL_CLIENT);
  CHECK(m.AdmitOwner("store-a", 0).code() == ErrorCode::ILLEGAL_CLIENT);
  CHECK(m.AdmitOwner("someone-else", 2222).ok());
  // Even a connection that got past Hello (before the mount) is refused.
  for (const Caller& who : {impostor, no_proof}) {
    CHECK(m.Remount(who, Seg("a", 8 * kMiB), {}, 10).code() == ErrorCode::ILLEGAL_CLIENT);
    CHECK(m.Unmount(who, "a", 10).code() == ErrorCode::ILLEGAL_CLIENT);
    CHECK(m.Mount(who, Seg("a", 1024 * kMiB), 10).code() == ErrorCode::ILLEGAL_CLIENT);
    CHECK(m.Mount(who, Seg("a", 8 * kMiB), 10).code() == ErrorCode::ILLEGAL_CLIENT);
  }
  CHECK(m.GetReplicaLists({"k1", "k2"}, 10).items[1].code == kOk);
  CHECK(m.Segments(10)[0].capacity_bytes == 8 * kMiB);
  CHECK(m.counters().owner_restarts == 0);
  // The owner itself can still do all of it.
  CHECK(m.Remount(owner, Seg("a", 8 * kMiB), {}, 10).ok());
  CHECK(m.Unmount(owner, "a", 10).ok());
}

TEST_CASE("segment owners: a new process proving the same owner replaces the mount at once") {
  MasterIndex m(Opts());
  const Caller before{"store-1", "host-a", 4242};
  const Caller after{"store-2", "host-a", 4242};  // restarted: new id, same kept proof
  const Caller stranger{"store-3", "host-a", 9999};
  REQUIRE(m.Mount(before, Seg("a", 8 * kMiB), 0).ok());
  Put(m, "k1", kMiB, 0);
  CHECK(m.Mount(stranger, Seg("a", 8 * kMiB), 1).code() == ErrorCode::SEGMENT_ALREADY_EXISTS);
  // Long before the client TTL: the old process's objects went with it.
  REQUIRE(m.Mount(after, Seg("a", 8 * kMiB), 1).ok());
  CHECK(m.counters().owner_restarts == 1);
  CHECK(m.Lookup("k1", 1) == std::nullopt);
  CHECK(m.Segments(10)[0].owner == "store-2");
  CHECK(m.Unmount(before, "a", 1).code() == ErrorCode::ILLEGAL_CLIENT);
  // The old process, had it lived on, cannot take it back by remounting.
  CHECK(m.Remount(before, Seg("a", 8 * kMiB), {}, 1).code() == ErrorCode::SEGMENT_ALREADY_EXISTS);
  CHECK(m.AdmitOwner("store-1", 4242).ok());  // it owns nothing now
  Put(m, "k2", kMiB, 1);
  CHECK(m.GetReplicaLists({"k2"}, 1).items[0].code == kOk);
}

TEST_CASE("a segment reported unreachable takes nothing new until its owner pings") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  REQUIRE(m.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(m, "on-a", kMiB, 0, 1, kWriter, 1);
  CodesResponse r = m.ReportUnreachable({"a", "nope"});
  REQUIRE(r.codes.size() == 2);
  CHECK(r.codes[0] == kOk);
  CHECK(r.codes[1] == Code(ErrorCode::SEGMENT_NOT_FOUND));
  CHECK(m.ReportUnreachable({"a"}).codes[0] == kOk);
  CHECK(m.counters().unreachable_reports == 1);  // one report per outage
  for (int i = 0; i < 6; ++i) {
    ReplicaListResponse placed =
        m.PutStart(kWriter, {1, "a", {{"k" + std::to_string(i), kMiB}}}, 2);
    REQUIRE(placed.items[0].code == kOk);
    CHECK(placed.segments[placed.items[0].replicas[0].segment].name == "b");
    REQUIRE(m.PutEnd(kWriter, {{{"k" + std::to_string(i), 7}}}, 2).codes[0] == kOk);
  }
  // "b" is full: room is made there by eviction, and nothing is evicted
  // from "a", where it could not go anyway ("on-a" is older than all of b's).
  ReplicaListResponse big = m.PutStart(kWriter, {1, "", {{"big", 4 * kMiB}}}, 2);
  REQUIRE(big.items[0].code == kOk);
  CHECK(big.segments[big.items[0].replicas[0].segment].name == "b");
  CHECK(m.GetReplicaLists({"on-a"}, 2).items[0].code == kOk);
  std::vector<SegmentStats> stats = m.Segments(2);
  CHECK(stats[0].unreachable);
  // Another client's ping does not bring it back; its owner's does.
  (void)m.Ping(kWriter, 0, 3);
  CHECK(m.Segments(3)[0].unreachable);
  (void)m.Ping(kStoreA, 1, 3);
  CHECK_FALSE(m.Segments(3)[0].unreachable);
  ReplicaListResponse back = m.PutStart(kWriter, {1, "a", {{"back", kMiB}}}, 3);
  REQUIRE(back.items[0].code == kOk);
  CHECK(back.segments[back.items[0].replicas[0].segment].name == "a");
}

TEST_CASE("a new master: a key removed before its owner remounts stays removed") {
  // Seen by the chaos test: Remove answered OBJECT_NOT_FOUND, the owner then
  // remounted the old record, and the writer's next put found it and left
  // it as it was: the key read its older version for good.
  MasterIndex old_master(Opts());
  REQUIRE(old_master.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  REQUIRE(old_master.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(old_master, "k", kMiB, 0, 1, kWriter, 1);
  Put(old_master, "x", kMiB, 0, 1, kWriter, 1);
  Put(old_master, "y", kMiB, 0, 1, kWriter, 1);
  std::vector<ObjectEntry> table_a, table_b;
  for (const TableChange& c : UpdatesFor(old_master, "store-a")) table_a.push_back(c.entry);
  for (const TableChange& c : UpdatesFor(old_master, "store-b")) table_b.push_back(c.entry);
  REQUIRE(table_a.size() + table_b.size() == 3);

  MasterOptions o = Opts();  // client TTL 5000 ms
  o.version_base_us = 10'000'000;
  MasterIndex m(o);
  m.Started(0);
  CHECK(m.Remove({"k"}, false, 10).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
  REQUIRE(m.Remount(kStoreA, Seg("a", 8 * kMiB), table_a, 20).ok());
  REQUIRE(m.Remount(kStoreB, Seg("b", 8 * kMiB), table_b, 20).ok());
  CHECK(m.Lookup("k", 30) == std::nullopt);
  CHECK(m.Lookup("x", 30).has_value());
  CHECK(m.counters().remount_objects_rejected == 1);
  // The writer's put after its remove stores the new value (once the
  // rebuilt segments take new objects).
  CHECK(m.PutStart(kWriter, {1, "", {{"k", kMiB}}}, 2000).items[0].code == kOk);
}

TEST_CASE("RemoveAll that keeps nothing: no older record comes back, remounted later or not") {
  MasterIndex old_master(Opts());
  REQUIRE(old_master.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(old_master, "x", kMiB, 0);
  std::vector<ObjectEntry> table_b;
  for (const TableChange& c : UpdatesFor(old_master, "store-b")) table_b.push_back(c.entry);

  MasterOptions o = Opts();
  o.version_base_us = 10'000'000;
  MasterIndex m(o);
  m.Started(0);
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  Put(m, "k", kMiB, 0);
  CHECK(m.RemoveAll("", false, 10) == 1);
  REQUIRE(m.Remount(kStoreB, Seg("b", 8 * kMiB), table_b, 20).ok());
  CHECK(m.Lookup("x", 30) == std::nullopt);
  Put(m, "after", kMiB, 2000);  // new puts are above the line
  CHECK(m.Lookup("after", 2000).has_value());
}

// Keys as the master service puts them in a tenant's key space.
std::string In(const std::string& tenant, const std::string& key) {
  return TenantPrefix(tenant) + key;
}

TEST_CASE("tenants: RemoveAll and the stats stay within one tenant's keys") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  Put(m, "k", kMiB, 0);
  Put(m, In("team-a", "k"), 2 * kMiB, 0);
  Put(m, In("team-a", "j"), kMiB, 0);
  Put(m, In("team-b", "k"), 3 * kMiB, 0);
  CHECK(m.Lookup("k", 0)->size == kMiB);
  CHECK(m.Lookup(In("team-a", "k"), 0)->size == 2 * kMiB);
  CHECK(m.CompleteKeys("team-a", 10) == std::vector<std::string>{"k", "j"});
  CHECK(m.CompleteKeys("", 10) == std::vector<std::string>{"k"});
  std::map<std::string, TenantStats> t = m.Tenants();
  CHECK(t[""].objects == 1);
  CHECK(t["team-a"].objects == 2);
  CHECK(t["team-a"].bytes == 3 * kMiB);
  CHECK(t["team-b"].bytes == 3 * kMiB);
  CHECK(m.RemoveAll("team-a", false, 10) == 2);
  CHECK(m.Lookup("k", 10).has_value());
  CHECK(m.Lookup(In("team-b", "k"), 10).has_value());
  CHECK(m.Lookup(In("team-a", "k"), 10) == std::nullopt);
  t = m.Tenants();
  CHECK(t.count("team-a") == 0);  // nothing left and no quota: not listed
  CHECK(t["team-b"].objects == 1);
  CHECK(m.RemoveAll("", false, 10) == 1);
  CHECK(m.object_count() == 1);
}

TEST_CASE("tenants: a RemoveAll buries only that tenant's older records") {
  MasterIndex old_master(Opts());
  REQUIRE(old_master.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(old_master, In("team-a", "x"), kMiB, 0);
  Put(old_master, In("team-b", "x"), kMiB, 0);
  std::vector<ObjectEntry> table_b;
  for (const TableChange& c : UpdatesFor(old_master, "store-b")) table_b.push_back(c.entry);
  REQUIRE(table_b.size() == 2);

  MasterOptions o = Opts();
  o.version_base_us = 10'000'000;
  MasterIndex m(o);
  m.Started(0);
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  CHECK(m.RemoveAll("team-a", false, 10) == 0);
  REQUIRE(m.Remount(kStoreB, Seg("b", 8 * kMiB), table_b, 20).ok());
  CHECK(m.Lookup(In("team-a", "x"), 30) == std::nullopt);
  CHECK(m.Lookup(In("team-b", "x"), 30).has_value());
}

TEST_CASE("tenants: a quota evicts the tenant's own oldest objects, not others'") {
  MasterOptions o = Opts();
  o.tenant_quota_bytes["team-a"] = 3 * kMiB;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  Put(m, "other", kMiB, 0);  // the default tenant: no quota
  for (int i = 0; i < 3; ++i) Put(m, In("team-a", "k" + std::to_string(i)), kMiB, i);
  CHECK(m.Tenants()["team-a"].bytes == 3 * kMiB);
  // A fourth MiB: k0, the tenant's least recently used, makes room.
  CHECK(Put(m, In("team-a", "k3"), kMiB, 10).code == kOk);
  CHECK(m.Lookup(In("team-a", "k0"), 10) == std::nullopt);
  CHECK(m.Lookup(In("team-a", "k1"), 10).has_value());
  CHECK(m.Lookup("other", 10).has_value());
  std::map<std::string, TenantStats> t = m.Tenants();
  CHECK(t["team-a"].bytes == 3 * kMiB);
  CHECK(t["team-a"].quota_bytes == 3 * kMiB);
  CHECK(t["team-a"].evicted_for_quota == 1);
  // Larger than the quota itself: refused, nothing evicted.
  CHECK(m.PutStart(kWriter, {1, "", {{In("team-a", "big"), 4 * kMiB}}}, 20).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  CHECK(m.Tenants()["team-a"].objects == 3);
  // Every object of the tenant being read: doomed, the put refused now...
  REQUIRE(m.GetReplicaLists({In("team-a", "k1"), In("team-a", "k2"), In("team-a", "k3")}, 30)
              .items[0]
              .code == kOk);
  CHECK(m.PutStart(kWriter, {1, "", {{In("team-a", "k4"), kMiB}}}, 40).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  CHECK(m.Tenants()["team-a"].quota_refusals == 2);
  // ...and taken once the lease is over and the doomed object gone.
  m.Tick(30 + 1000);
  CHECK(Put(m, In("team-a", "k4"), kMiB, 1100).code == kOk);
  CHECK(m.Tenants()["team-a"].bytes <= 3 * kMiB);
}

// The version a GetReplicaList answer gave for its only key.
ReleaseItem Read(MasterIndex& m, const std::string& key, int64_t now) {
  ReplicaListResponse r = m.GetReplicaLists({key}, now);
  REQUIRE(r.items.at(0).code == kOk);
  return {key, r.items[0].version};
}

TEST_CASE("a lease ends when its last reader is done; a doomed object goes then") {
  MasterIndex m(Opts());  // lease 1000 ms
  std::vector<std::string> all = FillPool(m);
  // Two readers of k0, then every other key checked: k0 is the oldest.
  ReleaseItem k0 = Read(m, "k0", 10);
  REQUIRE(Read(m, "k0", 20).version == k0.version);
  (void)m.ExistKeys({"k1", "k2", "k3", "k4", "k5", "k6", "k7"}, 25);
  ReleaseItem k1 = Read(m, "k1", 26);  // one reader
  CHECK(m.Remove({"k1"}, false, 30).codes[0] == Code(ErrorCode::OBJECT_HAS_LEASE));
  CHECK(m.ReleaseLeases({k0, k1, {"missing", 1}}, 30) == 2);
  CHECK(m.Remove({"k1"}, false, 30).codes[0] == kOk);  // its only reader is done
  CHECK(m.Remove({"k0"}, false, 30).codes[0] == Code(ErrorCode::OBJECT_HAS_LEASE));  // one left
  CHECK(m.PutStart(kWriter, {1, "", {{"n1", kMiB}}}, 40).items[0].code == kOk);  // k1's space
  // Full: eviction chooses k0, the oldest, while it is read: doomed, not freed.
  CHECK(m.PutStart(kWriter, {1, "", {{"n2", kMiB}}}, 40).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  uint64_t evicted = m.counters().evicted_objects;
  // The last reader finishes: k0 goes now, not a lease TTL later.
  CHECK(m.ReleaseLeases({k0}, 50) == 1);
  CHECK(m.Lookup("k0", 50) == std::nullopt);
  CHECK(m.counters().evicted_objects == evicted + 1);
  CHECK(m.PutStart(kWriter, {1, "", {{"n2", kMiB}}}, 50).items[0].code == kOk);
  // A release after its lease ran out does nothing; a reader that came
  // later is the one whose release counts.
  ReleaseItem k2 = Read(m, "k2", 100);
  REQUIRE(Read(m, "k2", 1500).version == k2.version);  // the first lease ran out
  CHECK(m.ReleaseLeases({k2}, 1600) == 1);
  CHECK(m.Remove({"k2"}, false, 1600).codes[0] == kOk);
  CHECK(m.counters().leases_released == 4);
}

TEST_CASE("a late release of an older object does not end the lease of the key's newer one") {
  MasterIndex m(Opts());  // lease 1000 ms
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  Put(m, "k", kMiB, 0);
  ReleaseItem old_read = Read(m, "k", 10);  // a reader that stalls past its lease
  CHECK(m.Remove({"k"}, false, 1100).codes[0] == kOk);
  Put(m, "k", kMiB, 1200, /*checksum=*/8);
  ReleaseItem new_read = Read(m, "k", 1300);
  CHECK(new_read.version > old_read.version);
  // The stalled reader's release arrives now: it names the old version.
  CHECK(m.ReleaseLeases({old_read}, 1400) == 0);
  CHECK(m.Remove({"k"}, false, 1400).codes[0] == Code(ErrorCode::OBJECT_HAS_LEASE));
  CHECK(m.ReleaseLeases({new_read}, 1400) == 1);
  CHECK(m.Remove({"k"}, false, 1400).codes[0] == kOk);
}

TEST_CASE("unmount drops one replica and keeps objects that have another") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 8 * kMiB), 0).ok());
  REQUIRE(m.Mount(kStoreB, Seg("b", 8 * kMiB), 0).ok());
  Put(m, "both", kMiB, 0, 1, kWriter, 2);
  Put(m, "one", kMiB, 0, 1, kWriter, 1);
  std::string where = m.Lookup("one", 0)->replicas[0].first;
  REQUIRE(m.Unmount(where == "a" ? kStoreA : kStoreB, where, 0).ok());
  CHECK(m.Lookup("one", 0) == std::nullopt);
  REQUIRE(m.Lookup("both", 0).has_value());
  CHECK(m.Lookup("both", 0)->replicas.size() == 1);
  CHECK(m.ExistKeys({"both"}, 0).codes[0] == kOk);
}

TEST_CASE("upsert replaces a complete object; its readers keep the old range until their lease ends") {
  MasterIndex m(Opts());  // lease 1000 ms
  REQUIRE(m.Mount(kStoreA, Seg("a", 2 * kMiB), 0).ok());
  ReplicaItem first = Put(m, "k", kMiB, 0, /*checksum=*/1);
  (void)UpdatesFor(m, "store-a");
  ReleaseItem read = Read(m, "k", 10);  // lease until 1010
  // A plain put leaves it; an upsert replaces it.
  CHECK(m.PutStart(kOther, {1, "", {{"k", kMiB}}}, 20).items[0].code ==
        Code(ErrorCode::OBJECT_ALREADY_EXISTS));
  ReplicaListResponse up = m.PutStart(kOther, {1, "", {{"k", kMiB}}}, 20, /*upsert=*/true);
  REQUIRE(up.items[0].code == kOk);
  CHECK(up.items[0].version > read.version);
  // The reader's range is not handed out again while it reads.
  CHECK(up.items[0].replicas[0].offset != first.replicas[0].offset);
  CHECK(m.ExistKeys({"k"}, 20).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));  // until PutEnd
  CHECK(Removes(UpdatesFor(m, "store-a"), "k"));  // the owner drops the old record
  // Another upsert of the key while this one is in flight must wait.
  CHECK(m.PutStart(kWriter, {1, "", {{"k", kMiB}}}, 30, true).items[0].code ==
        Code(ErrorCode::REPLICA_IS_NOT_READY));
  CHECK(m.PutEnd(kOther, {{{"k", 2}}}, 40).codes[0] == kOk);
  ReplicaListResponse now = m.GetReplicaLists({"k"}, 50);
  CHECK(now.items[0].checksum == 2);
  CHECK(now.items[0].version == up.items[0].version);
  CHECK(m.used_bytes() == 2 * kMiB);  // the old range waits for its reader
  CHECK(m.ReleaseLeases({read}, 60) == 0);  // a release of the replaced object changes nothing
  m.Tick(1010);
  CHECK(m.used_bytes() == kMiB);
  // Unread, a replaced object's range is free at once.
  ReleaseItem second = Read(m, "k", 2100);
  REQUIRE(m.ReleaseLeases({second}, 2100) == 1);
  ReplicaListResponse third = m.PutStart(kWriter, {1, "", {{"k", kMiB}}}, 2100, true);
  REQUIRE(third.items[0].code == kOk);
  CHECK(m.used_bytes() == kMiB);  // the third, pending; the second's range is free
  CHECK(m.PutEnd(kWriter, {{{"k", 3}}}, 2100).codes[0] == kOk);
  // An upsert refused before it is placed leaves the object as it was.
  CHECK(m.PutStart(kWriter, {1, "", {{"k", 4 * kMiB}}}, 2200, true).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(m.PutStart(kWriter, {0, "", {{"k", kMiB}}}, 2200, true).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(m.GetReplicaLists({"k"}, 2200).items[0].checksum == 3);
  CHECK(m.counters().upserts_replaced == 2);
}

TEST_CASE("remove by pattern: a tenant's keys in slices, only the version seen is removed") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 64 * kMiB), 0).ok());
  for (const char* k : {"a1", "a2", "a3", "b1", "b2"}) Put(m, k, kMiB, 0);
  Put(m, In("team-a", "a9"), kMiB, 0);
  // The walk over the default tenant, two keys at a time.
  std::vector<MasterIndex::KeyVersion> seen;
  uint32_t cursor = 0;
  int slices = 0;
  bool more = true;
  while (more) {
    size_t before = seen.size();
    more = m.ScanTenant("", cursor, 2, seen);
    CHECK(seen.size() - before <= 2);
    ++slices;
  }
  CHECK(slices >= 3);
  std::vector<std::string> keys;
  for (const auto& kv : seen) keys.push_back(kv.key);
  std::sort(keys.begin(), keys.end());
  CHECK(keys == std::vector<std::string>{"a1", "a2", "a3", "b1", "b2"});  // not team-a's
  std::vector<MasterIndex::KeyVersion> a_keys;
  for (const auto& kv : seen) {
    if (kv.key[0] == 'a') a_keys.push_back(kv);
  }
  // Between the walk and the removal: a2 replaced, a3 read.
  REQUIRE(m.PutStart(kWriter, {1, "", {{"a2", kMiB}}}, 10, true).items[0].code == kOk);
  REQUIRE(m.PutEnd(kWriter, {{{"a2", 8}}}, 10).codes[0] == kOk);
  (void)Read(m, "a3", 10);
  CHECK(m.RemoveVersions("", a_keys, /*force=*/false, 20) == 1);  // a1
  CHECK(m.Lookup("a1", 20) == std::nullopt);
  CHECK(m.Lookup("a2", 20).has_value());  // the newer a2 was not what the caller saw
  CHECK(m.Lookup("a3", 20).has_value());  // leased
  CHECK(m.RemoveVersions("", a_keys, /*force=*/true, 20) == 1);  // a3
  CHECK(m.Lookup("a3", 20) == std::nullopt);
  CHECK(m.Lookup("b1", 20).has_value());
  CHECK(m.Lookup(In("team-a", "a9"), 20).has_value());
  // An upsert of a key that does not exist is a put.
  CHECK(m.PutStart(kWriter, {1, "", {{"fresh", kMiB}}}, 30, true).items[0].code == kOk);
  CHECK(m.counters().upserts_replaced == 1);  // a2
  // The other tenant's walk sees only its key.
  std::vector<MasterIndex::KeyVersion> team;
  cursor = 0;
  while (m.ScanTenant("team-a", cursor, 100, team)) {
  }
  REQUIRE(team.size() == 1);
  CHECK(team[0].key == "a9");
}


// A put of one key with a pin (Pin::kNone, kSoft, kHard), ended at once.
ReplicaItem PutPinned(MasterIndex& m, const std::string& key, uint64_t size, int64_t now, Pin pin) {
  PutStartRequest req{1, "", {{key, size}}};
  req.pin = static_cast<uint8_t>(pin);
  ReplicaListResponse start = m.PutStart(kWriter, req, now);
  REQUIRE(start.items.at(0).code == kOk);
  REQUIRE(m.PutEnd(kWriter, {{{key, 1}}}, now).codes[0] == kOk);
  return start.items[0];
}

TEST_CASE("pins: eviction takes unpinned objects first, then soft pins, never hard pins") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kStoreA, Seg("a", 6 * kMiB), 0).ok());
  // Oldest first: the hard pins, then the unpinned, then the soft pins
  // (laid out in that order, so that u1, u2 and s1 are one range).
  PutPinned(m, "h1", kMiB, 0, Pin::kHard);
  PutPinned(m, "h2", kMiB, 0, Pin::kHard);
  PutPinned(m, "u1", kMiB, 0, Pin::kNone);
  PutPinned(m, "u2", kMiB, 0, Pin::kNone);
  PutPinned(m, "s1", kMiB, 0, Pin::kSoft);
  PutPinned(m, "s2", kMiB, 0, Pin::kSoft);
  // 3 MiB: both unpinned objects go although the pinned ones are older,
  // then the oldest soft pin.
  CHECK(PutPinned(m, "n", 3 * kMiB, 10, Pin::kNone).code == kOk);
  for (const char* gone : {"u1", "u2", "s1"}) CHECK_MESSAGE(!m.Lookup(gone, 10), gone);
  for (const char* kept : {"h1", "h2", "s2"}) CHECK_MESSAGE(m.Lookup(kept, 10), kept);
  CHECK(m.counters().evicted_objects == 3);
  CHECK(m.counters().soft_pinned_evicted == 1);
  // With only hard pins left, a put that needs their space fails and
  // evicts none of them.
  CHECK(m.Remove({"n", "s2"}, false, 20).codes == std::vector<int32_t>{kOk, kOk});
  PutPinned(m, "h3", 2 * kMiB, 20, Pin::kHard);
  PutPinned(m, "h4", 2 * kMiB, 20, Pin::kHard);
  CHECK(m.PutStart(kWriter, {1, "", {{"x", kMiB}}}, 30).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  m.Tick(40);  // past the high watermark: still nothing to take
  for (const char* kept : {"h1", "h2", "h3", "h4"}) CHECK_MESSAGE(m.Lookup(kept, 40), kept);
  CHECK(m.counters().evicted_objects == 3);
  // A pin the wire cannot name is refused.
  PutStartRequest bad{1, "", {{"y", kMiB}}};
  bad.pin = kMaxPin + 1;
  CHECK(m.PutStart(kWriter, bad, 50).items[0].code == Code(ErrorCode::INVALID_PARAMS));
}

TEST_CASE("pins: a soft pin lasts its TTL from the put and each read; it can be kept absolute") {
  MasterOptions o = Opts();
  o.soft_pin_ttl_ms = 1000;
  o.allow_evict_soft_pinned = false;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, Seg("a", 2 * kMiB), 0).ok());
  PutPinned(m, "s1", kMiB, 0, Pin::kSoft);  // pinned until 1000
  PutPinned(m, "s2", kMiB, 0, Pin::kSoft);
  ReleaseItem read = Read(m, "s2", 900);  // s2 pinned until 1900
  REQUIRE(m.ReleaseLeases({read}, 900) == 1);
  CHECK(m.PutStart(kWriter, {1, "", {{"x", kMiB}}}, 950).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  CHECK(m.counters().evicted_objects == 0);
  // s1's pin ran out, s2's was renewed by the read.
  CHECK(PutPinned(m, "x", kMiB, 1500, Pin::kNone).code == kOk);
  CHECK_FALSE(m.Lookup("s1", 1500));
  CHECK(m.Lookup("s2", 1500));
  CHECK(m.counters().soft_pinned_evicted == 0);  // s1 was no longer pinned
}

TEST_CASE("pins: owners keep them in their tables, so a rebuilt index keeps them") {
  MasterIndex first(Opts());
  REQUIRE(first.Mount(kStoreA, Seg("a", 2 * kMiB), 0).ok());
  PutPinned(first, "h", kMiB, 0, Pin::kHard);
  PutPinned(first, "u", kMiB, 0, Pin::kNone);
  std::vector<ObjectEntry> table;
  for (const TableChange& c : UpdatesFor(first, "store-a")) table.push_back(c.entry);
  REQUIRE(table.size() == 2);
  CHECK(table[0].pin == static_cast<uint8_t>(Pin::kHard));
  CHECK(table[1].pin == static_cast<uint8_t>(Pin::kNone));
  MasterIndex second(Opts());
  REQUIRE(second.Remount(kStoreA, Seg("a", 2 * kMiB), table, 100).ok());
  // After the quarantine, a put that needs room takes the unpinned object only.
  CHECK(PutPinned(second, "n", kMiB, 2000, Pin::kNone).code == kOk);
  CHECK(second.Lookup("h", 2000));
  CHECK_FALSE(second.Lookup("u", 2000));
  CHECK(second.PutStart(kWriter, {1, "", {{"m", 2 * kMiB}}}, 2000).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  CHECK(second.Lookup("h", 2000));
}

}  // namespace
}  // namespace kvcached
