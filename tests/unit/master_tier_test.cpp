// The master's side of the disk tier (docs/disk-tier.md): demotion instead
// of eviction, loads on a read, owners' reports, and the ranges that must
// not be reused while an owner copies them.
#include <doctest/doctest.h>

#include "core/rpc_protocol.h"
#include "master/master_index.h"

namespace kvcached {
namespace {

constexpr int32_t kOk = 0;
constexpr int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }
constexpr uint64_t kMiB = 1 << 20;

const Caller kOwner{"store-a", "host-a", 11};
const Caller kWriter{"writer", "host-a"};

MasterOptions Opts() {
  MasterOptions o;
  o.random_seed = 42;
  o.lease_ttl_ms = 1000;
  o.client_ttl_ms = 5000;
  o.eviction_ratio = 0.0;  // each eviction frees what a put needs, no more
  return o;
}

SegmentInfo TierSeg(uint64_t size, uint64_t disk = 64 * kMiB, uint8_t flags = 0) {
  SegmentInfo s{"a", 0x1000, size, "tcp://a"};
  s.disk_bytes = disk;
  s.flags = flags;
  return s;
}

int32_t Put(MasterIndex& m, const std::string& key, int64_t now, uint64_t size = kMiB) {
  ReplicaListResponse start = m.PutStart(kWriter, {1, "", {{key, size}}}, now);
  if (start.items[0].code != kOk) return start.items[0].code;
  return m.PutEnd(kWriter, {{{key, 7}}}, now).codes[0];
}

// The changes queued for the owner of segment "a", taken.
std::vector<TableChange> Changes(MasterIndex& m) {
  std::vector<TableChange> out;
  for (auto& [owner, u] : m.TakeTableUpdates()) {
    for (TableChange& c : u.changes) out.push_back(std::move(c));
  }
  return out;
}

const TableChange* Find(const std::vector<TableChange>& cs, TableOp op, const std::string& key) {
  for (const TableChange& c : cs) {
    if (c.op == static_cast<uint8_t>(op) && c.entry.key == key) return &c;
  }
  return nullptr;
}

void Report(MasterIndex& m, TierEvent ev, const ObjectEntry& e, int64_t now) {
  TableUpdate r{"a", {{static_cast<uint8_t>(ev), e}}};
  REQUIRE(m.TierReport(kOwner, r, now).ok());
}

// A 2 MiB tiered segment full with a1 and a2; a put of a3 finds no room,
// so a1 (the least recently used) is sent to disk. The owner's changes
// queued by that put, taken.
std::vector<TableChange> FillAndDemoteA1(MasterIndex& m) {
  REQUIRE(m.Mount(kOwner, TierSeg(2 * kMiB), 0).ok());
  REQUIRE(Put(m, "a1", 0) == kOk);
  REQUIRE(Put(m, "a2", 1) == kOk);
  (void)Changes(m);
  CHECK(Put(m, "a3", 2) == Code(ErrorCode::NO_AVAILABLE_HANDLE));
  return Changes(m);
}

TEST_CASE("disk tier: a put that finds no room demotes, and the range is freed on the report") {
  MasterIndex m(Opts());
  // No room: the least recently used object is sent to disk, not dropped.
  std::vector<TableChange> cs = FillAndDemoteA1(m);
  CHECK(m.demoting_bytes() == kMiB);
  const TableChange* demote = Find(cs, TableOp::kDemote, "a1");
  REQUIRE(demote != nullptr);
  CHECK(Find(cs, TableOp::kRemove, "a1") == nullptr);
  // Still readable from memory while it is written.
  std::vector<size_t> loading;
  ReplicaListResponse read = m.GetReplicaLists({"a1"}, 3, &loading);
  CHECK(read.items[0].code == kOk);
  CHECK(loading.empty());
  CHECK(m.ReleaseLeases({{"a1", read.items[0].version}}, 3) == 1);

  Report(m, TierEvent::kDemoted, demote->entry, 4);
  CHECK(m.demoting_bytes() == 0);
  cs = Changes(m);
  const TableChange* moved = Find(cs, TableOp::kAdd, "a1");
  REQUIRE(moved != nullptr);
  CHECK(moved->entry.offset == kOnDiskOffset);
  CHECK(m.counters().demoted == 1);
  CHECK(m.counters().evicted_objects == 0);
  CHECK(m.Segments(4)[0].disk_objects == 1);
  CHECK(Put(m, "a3", 5) == kOk);  // into the freed range
  CHECK(m.ExistKeys({"a1"}, 5).codes[0] == kOk);
  // Listed with the others, before them (the least recently used).
  CHECK(m.CompleteKeys("", 10) == std::vector<std::string>{"a1", "a2", "a3"});
  CHECK(m.object_count() == 3);
}

TEST_CASE("disk tier: a read of an object on disk waits for its load, then finds it in memory") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kOwner, TierSeg(4 * kMiB), 0).ok());
  REQUIRE(Put(m, "k", 0) == kOk);
  REQUIRE(Put(m, "other", 1) == kOk);
  m.Tick(2);  // not past the watermark: nothing moves
  (void)Changes(m);
  REQUIRE(Put(m, "f1", 2) == kOk);
  REQUIRE(Put(m, "f2", 2) == kOk);
  CHECK(Put(m, "f3", 3) == Code(ErrorCode::NO_AVAILABLE_HANDLE));
  const TableChange* demote = nullptr;
  std::vector<TableChange> cs = Changes(m);
  demote = Find(cs, TableOp::kDemote, "k");
  REQUIRE(demote != nullptr);
  Report(m, TierEvent::kDemoted, demote->entry, 4);
  (void)Changes(m);

  // A caller that cannot wait is told the object is not there.
  CHECK(m.GetReplicaLists({"k"}, 5).items[0].code == Code(ErrorCode::OBJECT_NOT_FOUND));
  std::vector<size_t> loading;
  ReplicaListResponse read = m.GetReplicaLists({"other", "k"}, 5, &loading);
  REQUIRE(read.items[1].code == kOk);
  CHECK(loading == std::vector<size_t>{1});
  CHECK(m.PromotionOf("k", read.items[1].version) == MasterIndex::Promotion::kPending);
  cs = Changes(m);
  const TableChange* load = Find(cs, TableOp::kPromote, "k");
  REQUIRE(load != nullptr);
  CHECK(load->entry.offset == read.items[1].replicas[0].offset);
  // A second reader joins the same load.
  std::vector<size_t> again;
  ReplicaListResponse second = m.GetReplicaLists({"k"}, 6, &again);
  CHECK(again == std::vector<size_t>{0});
  CHECK(Changes(m).empty());
  Report(m, TierEvent::kPromoted, load->entry, 7);
  CHECK(m.PromotionOf("k", read.items[1].version) == MasterIndex::Promotion::kReady);
  CHECK(m.counters().promoted == 1);
  CHECK(second.items[0].replicas[0].offset == load->entry.offset);
  // In memory again, with its disk record kept: making room later needs no write.
  loading.clear();
  CHECK(m.GetReplicaLists({"k"}, 8, &loading).items[0].code == kOk);
  CHECK(loading.empty());
}

TEST_CASE("disk tier: a failed load removes the object; a dropped record removes a disk-only one") {
  // Objects rebuilt from the owner's disk records (a new master).
  MasterIndex n(Opts());
  std::vector<ObjectEntry> records = {{"d1", kOnDiskOffset, kMiB, 5, 100, 0},
                                      {"d2", kOnDiskOffset, kMiB, 6, 101, 0}};
  REQUIRE(n.Remount(kOwner, TierSeg(8 * kMiB), records, 0).ok());
  CHECK(n.Segments(0)[0].disk_objects == 2);
  std::vector<size_t> unused;
  // Loads wait until the rebuilt segment's quarantine (one lease) is over.
  CHECK(n.GetReplicaLists({"d1"}, 1, &unused).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  CHECK(n.ExistKeys({"d1", "d2"}, 2001).codes == std::vector<int32_t>{kOk, kOk});
  std::vector<size_t> loading;
  ReplicaListResponse read = n.GetReplicaLists({"d1"}, 2001, &loading);
  REQUIRE(loading.size() == 1);
  std::vector<TableChange> cs = Changes(n);
  const TableChange* load = Find(cs, TableOp::kPromote, "d1");
  REQUIRE(load != nullptr);
  Report(n, TierEvent::kPromoteFailed, load->entry, 2002);
  CHECK(n.PromotionOf("d1", read.items[0].version) == MasterIndex::Promotion::kFailed);
  CHECK(n.ExistKeys({"d1"}, 2002).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
  CHECK(n.counters().promote_failures == 1);
  CHECK(n.used_bytes() == 0);  // its range came back

  Report(n, TierEvent::kDiskDropped, records[1], 2003);
  CHECK(n.ExistKeys({"d2"}, 2003).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
  CHECK(n.counters().disk_dropped == 1);
  // A record of another version changes nothing.
  REQUIRE(Put(n, "d3", 2004) == kOk);
  Report(n, TierEvent::kDiskDropped, {"d3", kOnDiskOffset, kMiB, 7, 1, 0}, 2005);
  CHECK(n.ExistKeys({"d3"}, 2005).codes[0] == kOk);
}

TEST_CASE("disk tier: a range being copied is not reused before the owner reports") {
  MasterIndex m(Opts());
  std::vector<TableChange> cs = FillAndDemoteA1(m);
  const TableChange* demote = Find(cs, TableOp::kDemote, "a1");
  REQUIRE(demote != nullptr);
  // Removed while its owner copies it: the range stays taken.
  CHECK(m.Remove({"a1"}, false, 3).codes[0] == kOk);
  CHECK(m.demoting_bytes() == 0);
  CHECK(m.PutStart(kWriter, {1, "", {{"a3", kMiB}}}, 4).items[0].code != kOk);
  m.PutRevoke(kWriter, {"a3"}, 4);
  (void)Changes(m);
  // The late report frees it, and the owner is told to drop its record.
  Report(m, TierEvent::kDemoted, demote->entry, 5);
  cs = Changes(m);
  const TableChange* drop = Find(cs, TableOp::kRemove, "a1");
  REQUIRE(drop != nullptr);
  CHECK(drop->entry.offset == kOnDiskOffset);
  ReplicaListResponse placed = m.PutStart(kWriter, {1, "", {{"a4", kMiB}}}, 6);
  REQUIRE(placed.items[0].code == kOk);
}

TEST_CASE("disk tier: the high watermark demotes once, not again while the writes are under way") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kOwner, TierSeg(10 * kMiB), 0).ok());
  for (int i = 0; i < 10; ++i) REQUIRE(Put(m, "k" + std::to_string(i), i) == kOk);
  (void)Changes(m);
  m.Tick(20);  // 100% > 90%: one object's worth goes
  std::vector<TableChange> cs = Changes(m);
  size_t demotes = 0;
  for (const TableChange& c : cs) demotes += c.op == static_cast<uint8_t>(TableOp::kDemote);
  CHECK(demotes == 1);
  m.Tick(21);
  CHECK(Changes(m).empty());
  CHECK(m.counters().demotions == 1);
}

TEST_CASE("disk tier: a quota evicts for real (disk counts against it too)") {
  MasterOptions o = Opts();
  o.tenant_quota_bytes[""] = 2 * kMiB;
  MasterIndex m(o);
  REQUIRE(m.Mount(kOwner, TierSeg(8 * kMiB), 0).ok());
  REQUIRE(Put(m, "q1", 0) == kOk);
  REQUIRE(Put(m, "q2", 1) == kOk);
  REQUIRE(Put(m, "q3", 2) == kOk);
  std::vector<TableChange> cs = Changes(m);
  CHECK(Find(cs, TableOp::kRemove, "q1") != nullptr);
  CHECK(Find(cs, TableOp::kDemote, "q1") == nullptr);
}

TEST_CASE(
    "disk tier: records need a disk tier; a restarted owner with fresh memory takes them back") {
  std::vector<ObjectEntry> records = {{"r1", kOnDiskOffset, kMiB, 5, 100, 0}};
  {
    MasterIndex m(Opts());
    REQUIRE(m.Remount(kOwner, TierSeg(8 * kMiB, /*disk=*/0), records, 0).ok());
    CHECK(m.ExistKeys({"r1"}, 0).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
    CHECK(Find(Changes(m), TableOp::kRemove, "r1") != nullptr);
  }
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kOwner, TierSeg(8 * kMiB), 0).ok());
  Caller restarted{"store-a2", "host-a", 11};  // a new process, the same proof
  // Not fresh memory: an older process that remounts is refused.
  CHECK(!m.Remount(restarted, TierSeg(8 * kMiB), records, 1).ok());
  REQUIRE(m.Remount(restarted, TierSeg(8 * kMiB, 64 * kMiB, kSegmentFreshMemory), records, 1).ok());
  CHECK(m.ExistKeys({"r1"}, 1).codes[0] == kOk);
  CHECK(m.counters().owner_restarts == 1);
  // Fresh memory: no wait before new objects are placed there.
  CHECK(m.PutStart(restarted, {1, "", {{"new", kMiB}}}, 2).items[0].code == kOk);
}

TEST_CASE("disk tier: reports lost with a connection are settled by the owner's remount table") {
  MasterIndex m(Opts());
  std::vector<TableChange> cs = FillAndDemoteA1(m);
  const TableChange* demote = Find(cs, TableOp::kDemote, "a1");
  REQUIRE(demote != nullptr);
  // The owner wrote a1 (its table says so) but its report never came.
  ObjectEntry a1 = demote->entry;
  a1.offset = kOnDiskOffset;
  std::vector<size_t> unused;
  ReplicaListResponse a2 = m.GetReplicaLists({"a2"}, 3, &unused);
  ObjectEntry a2e{"a2", a2.items[0].replicas[0].offset, kMiB, 7, a2.items[0].version, 0};
  REQUIRE(m.Remount(kOwner, TierSeg(2 * kMiB), {a1, a2e}, 4).ok());
  CHECK(m.demoting_bytes() == 0);
  CHECK(m.counters().demoted == 1);
  CHECK(m.Segments(4)[0].disk_objects == 1);
  CHECK(Put(m, "a3", 5) == kOk);
}

TEST_CASE("disk tier: a copy demoted under readers is freed when the last one releases") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kOwner, TierSeg(2 * kMiB), 0).ok());
  REQUIRE(Put(m, "a1", 0) == kOk);
  REQUIRE(Put(m, "a2", 1) == kOk);
  std::vector<size_t> loading;
  ReplicaListResponse read = m.GetReplicaLists({"a1"}, 2, &loading);  // a reader of a1
  REQUIRE(read.items[0].code == kOk);
  REQUIRE(m.ExistKeys({"a2"}, 2).codes[0] == kOk);  // a1 is the least recently used again
  (void)Changes(m);
  m.Tick(3);  // past the watermark: a1 goes to disk, though it is being read
  std::vector<TableChange> cs = Changes(m);
  const TableChange* demote = Find(cs, TableOp::kDemote, "a1");
  REQUIRE(demote != nullptr);
  Report(m, TierEvent::kDemoted, demote->entry, 4);
  CHECK(m.used_bytes() == 2 * kMiB);  // the reader's range stays
  CHECK(m.ReleaseLeases({{"a1", read.items[0].version}}, 5) == 1);
  CHECK(m.used_bytes() == kMiB);  // freed at the release, not at the lease's end
  CHECK(Put(m, "a3", 6) == kOk);
}

TEST_CASE("disk tier: a key removed while its owner was expired stays removed when the owner returns") {
  MasterIndex m(Opts());
  REQUIRE(m.Mount(kOwner, TierSeg(8 * kMiB), 0).ok());
  m.Started(0);
  REQUIRE(Put(m, "gone", 1) == kOk);
  REQUIRE(Put(m, "kept", 1) == kOk);
  uint64_t gone_v = m.GetReplicaLists({"gone"}, 2).items[0].version;
  uint64_t kept_v = m.GetReplicaLists({"kept"}, 2).items[0].version;
  REQUIRE(m.ExpireClients(20'000).size() == 1);  // silent past the client TTL
  CHECK(m.Remove({"gone"}, false, 20'001).codes[0] == Code(ErrorCode::OBJECT_NOT_FOUND));
  // The owner comes back (a restart that kept its disk tier) offering both.
  std::vector<ObjectEntry> records = {{"gone", kOnDiskOffset, kMiB, 7, gone_v, 0},
                                      {"kept", kOnDiskOffset, kMiB, 7, kept_v, 0}};
  REQUIRE(m.Remount(kOwner, TierSeg(8 * kMiB, 64 * kMiB, kSegmentFreshMemory), records, 20'002)
              .ok());
  CHECK(m.ExistKeys({"gone", "kept"}, 20'003).codes ==
        std::vector<int32_t>{Code(ErrorCode::OBJECT_NOT_FOUND), kOk});
}

TEST_CASE("disk tier: every tier event decodes in a TierReport; unknown operations do not") {
  for (uint8_t op = 1; op <= kMaxTierEvent; ++op) {
    TableUpdate r{"a", {{op, {"k", kOnDiskOffset, 1, 2, 3, 0}}}};
    TableUpdate back;
    CHECK(DecodeBody(EncodeBody(r), back).ok());
    CHECK(back.changes[0].op == op);
  }
  TableUpdate bad{"a", {{static_cast<uint8_t>(kMaxTierEvent + 1), {"k", 0, 1, 2, 3, 0}}}};
  TableUpdate back;
  CHECK(!DecodeBody(EncodeBody(bad), back).ok());
  CHECK(IsOneWay(MsgType::kTierReport));
}

}  // namespace
}  // namespace kvcached
