// The chaos test's Oracle on made-up histories: every verdict it can give,
// so that a chaos run that passes means the reads were checked, not that
// the checker was blind. No processes, no network.
#include <doctest/doctest.h>

#include "kvcached/error_code.h"
#include "oracle.h"

namespace kvcached::chaos {
namespace {

constexpr int64_t kMs = 1'000'000;

// Writes the op log of one worker slot, in time order, as a worker would.
class History {
 public:
  explicit History(uint32_t slot = 0, uint32_t incarnation = 0)
      : slot_(slot), incarnation_(incarnation) {}

  // An operation from `from` to `to` ms; `to` < 0: never ended (its worker died).
  History& Put(uint32_t key, uint64_t version, int64_t from, int64_t to,
               ErrorCode code = ErrorCode::OK, int32_t segment = 0) {
    Add(OpKind::kPut, OpLog::KeyId(slot_, key), version, from, to, code, ReadResult::kNone,
        segment);
    return *this;
  }
  History& Upsert(uint32_t key, uint64_t version, int64_t from, int64_t to,
                  ErrorCode code = ErrorCode::OK, int32_t segment = 0) {
    Add(OpKind::kUpsert, OpLog::KeyId(slot_, key), version, from, to, code, ReadResult::kNone,
        segment);
    return *this;
  }
  History& Remove(uint32_t key, int64_t from, int64_t to, ErrorCode code = ErrorCode::OK) {
    Add(OpKind::kRemove, OpLog::KeyId(slot_, key), 0, from, to, code, ReadResult::kNone, -1);
    return *this;
  }
  // A get that read `version` (0: OBJECT_NOT_FOUND).
  History& Get(uint32_t key, uint64_t version, int64_t from, int64_t to) {
    return GetFrom(slot_, key, version, from, to);
  }
  // A get by this worker of key `key` of worker slot `slot`.
  History& GetFrom(uint32_t slot, uint32_t key, uint64_t version, int64_t from, int64_t to) {
    Add(OpKind::kGet, OpLog::KeyId(slot, key), version, from, to,
        version == 0 ? ErrorCode::OBJECT_NOT_FOUND : ErrorCode::OK,
        version == 0 ? ReadResult::kAbsent : ReadResult::kValue, -1);
    return *this;
  }
  History& GetWrong(uint32_t key, int64_t from, int64_t to) {
    Add(OpKind::kGet, OpLog::KeyId(slot_, key), 1, from, to, ErrorCode::OK, ReadResult::kWrong, -1);
    return *this;
  }

  std::vector<OpRecord> records;

 private:
  void Add(OpKind kind, uint32_t key_id, uint64_t version, int64_t from, int64_t to, ErrorCode code,
           ReadResult read, int32_t segment) {
    OpRecord r;
    r.kind = kind;
    r.worker = slot_;
    r.incarnation = incarnation_;
    r.seq = seq_++;
    r.key = key_id;
    r.version = version;
    r.mono_ns = from * kMs;
    records.push_back(r);
    if (to < 0) return;
    r.phase = OpPhase::kEnd;
    r.mono_ns = to * kMs;
    r.code = static_cast<int32_t>(code);
    r.read = read;
    r.segment = segment;
    records.push_back(r);
  }

  uint32_t slot_, incarnation_;
  uint64_t seq_ = 0;
};

// Two segments, mounted at one master from the start.
void Init(ClusterTimeline& t) {
  t.segments = {"seg-0", "seg-1"};
  MasterLife life;
  life.seen_ns = {0, 0};
  t.masters.push_back(life);
}

OracleReport JudgeOf(const ClusterTimeline& t, const History& h) {
  return Oracle(t, h.records).Judge();
}

TEST_CASE("oracle: the latest version is exact, and older, resurrected and lost reads are caught") {
  ClusterTimeline t;
  Init(t);
  History h;
  h.Remove(1, 1, 2, ErrorCode::OBJECT_NOT_FOUND)
      .Put(1, 1, 10, 20)
      .Get(1, 1, 30, 31)  // exact
      .Remove(1, 40, 41)
      .Get(1, 0, 50, 51)  // absent, as it should be
      .Put(1, 2, 60, 61)
      .Get(1, 1, 70, 71)  // REVERTED
      .Remove(1, 80, 81)
      .Get(1, 2, 90, 91)  // RESURRECTED
      .Put(1, 3, 100, 101)
      .Get(1, 0, 110, 111)  // LOST
      .Get(1, 3, 120, 121);
  OracleReport r = JudgeOf(t, h);
  CHECK(r.reads_exact == 2);
  CHECK(r.absent_ok == 2);  // the get at 50 and the first removal's OBJECT_NOT_FOUND
  CHECK(r.reverted == 1);
  CHECK(r.resurrected == 1);
  CHECK(r.lost == 1);
  CHECK(r.wrong == 0);
  CHECK_FALSE(r.ok());
  REQUIRE(r.anomalies.size() == 3);
  CHECK(r.anomalies[0].rfind("REVERTED", 0) == 0);
  CHECK(r.anomalies[0].find("chaos-w0-k1") != std::string::npos);
}

TEST_CASE("oracle: bytes of no version, and versions never put, are WRONG") {
  ClusterTimeline t;
  Init(t);
  History h;
  h.Put(1, 1, 10, 20).GetWrong(1, 30, 31).Get(1, 7, 40, 41);
  // A put refused before any byte moved stored nothing.
  h.Put(2, 1, 10, 20).Remove(2, 30, 31).Put(2, 2, 40, 41, ErrorCode::NO_AVAILABLE_HANDLE);
  h.Get(2, 2, 50, 51);
  OracleReport r = JudgeOf(t, h);
  CHECK(r.wrong == 3);
  CHECK(r.reads_exact == 0);
}

TEST_CASE("oracle: an outcome in doubt allows either value") {
  ClusterTimeline t;
  Init(t);
  History h(0, 0);
  // A PutEnd that failed on the wire may have stored the object, or not.
  h.Put(1, 1, 10, 20, ErrorCode::RPC_FAIL).Get(1, 1, 30, 31).Get(1, 0, 32, 33);
  h.Put(2, 1, 10, 20).Remove(2, 30, 31, ErrorCode::RPC_TIMEOUT).Get(2, 1, 40, 41).Get(2, 0, 42, 43);
  h.Put(3, 1, 10, 20).Put(3, 2, 30, -1);  // the worker died in this put
  History next(0, 1);
  next.Get(3, 2, 50, 51).Get(3, 1, 52, 53).Get(3, 0, 54, 55);
  // Once a later write succeeds, the doubt is gone.
  next.Remove(3, 60, 61).Put(3, 3, 62, 63).Get(3, 2, 70, 71);
  std::vector<OpRecord> all = h.records;
  all.insert(all.end(), next.records.begin(), next.records.end());
  OracleReport r = Oracle(t, all).Judge();
  CHECK(r.reads_allowed == 4);
  CHECK(r.absent_ok == 2);
  CHECK(r.in_flight_at_kill == 1);
  CHECK(r.lost == 1);  // the get of absent at 54: v1 was there for sure before the doubt
  CHECK(r.reverted == 1);
}

TEST_CASE("oracle: a read overlapping a write of another worker may see either side") {
  ClusterTimeline t;
  Init(t);
  History writer(0), reader(1);
  writer.Put(1, 1, 10, 20).Remove(1, 30, 40).Put(1, 2, 41, 60);
  reader.GetFrom(0, 1, 1, 35, 45);
  std::vector<OpRecord> all = writer.records;
  all.insert(all.end(), reader.records.begin(), reader.records.end());
  OracleReport r = Oracle(t, all).Judge();
  CHECK(r.reads_allowed == 1);
  CHECK(r.ok());
}

TEST_CASE("oracle: documented losses are misses, each counted by its reason") {
  ClusterTimeline t;
  Init(t);
  // Store 1 was killed at 100 and back at 200; evictions happened in [300, 310].
  t.faults.push_back({FaultKind::kStoreKill, 1, 100 * kMs, 200 * kMs, ""});
  t.evictions.push_back({300 * kMs, 310 * kMs, 5, 0});
  // A second master from 500 on; seg-0 was seen there at 520. The first was
  // killed at 490 after a barrier at 480.
  t.masters[0].end_ns = 490 * kMs;
  MasterLife second;
  second.start_ns = 500 * kMs;
  second.seen_ns = {520 * kMs, 505 * kMs};
  t.masters.push_back(second);
  t.kills.push_back({480 * kMs, 490 * kMs});
  History h;
  h.Put(1, 1, 10, 20, ErrorCode::OK, 1).Get(1, 0, 150, 151);    // on the killed store
  h.Put(2, 1, 10, 20, ErrorCode::OK, 0).Get(2, 0, 150, 151);    // not on it: LOST
  h.Put(3, 1, 250, 260, ErrorCode::OK, 0).Get(3, 0, 320, 321);  // evicted
  h.Put(4, 1, 400, 410, ErrorCode::OK, 0).Get(4, 0, 510, 511);  // seg-0 not back yet
  h.Get(4, 1, 530, 531);
  h.Put(5, 1, 482, 485, ErrorCode::OK, 1).Get(5, 0, 530, 531);  // in the documented window
  // A removal answered in the window may come back with the master.
  h.Put(6, 1, 400, 410, ErrorCode::OK, 1).Remove(6, 483, 484).Get(6, 1, 530, 531);
  OracleReport r = JudgeOf(t, h);
  CHECK(r.lost == 1);
  CHECK(r.legit_misses["store killed or frozen"] == 1);
  CHECK(r.legit_misses["eviction"] == 1);
  CHECK(r.legit_misses["asked before its store remounted at a new master"] == 1);
  CHECK(r.documented_window == 2);
  CHECK(r.window_reads.size() == 2);
  CHECK(r.reads_exact == 1);
}

TEST_CASE("oracle: a removal answered before the key's store remounted, then a put, is REVERTED") {
  ClusterTimeline t;
  Init(t);
  t.masters[0].end_ns = 490 * kMs;
  t.kills.push_back({480 * kMs, 490 * kMs});
  MasterLife second;
  second.start_ns = 500 * kMs;
  second.seen_ns = {520 * kMs, 505 * kMs};
  t.masters.push_back(second);
  History h;
  h.Put(1, 1, 10, 20, ErrorCode::OK, 0)
      .Remove(1, 510, 511, ErrorCode::OBJECT_NOT_FOUND)  // seg-0 not back: a miss
      .Get(1, 1, 515, 516)                               // still allowed: it comes back
      .Put(1, 2, 525, 526)  // OK, but the remounted v1 was there: nothing stored
      .Get(1, 1, 530, 531);
  OracleReport r = JudgeOf(t, h);
  CHECK(r.legit_misses["asked before its store remounted at a new master"] == 1);
  CHECK(r.reads_allowed == 1);
  CHECK(r.reverted == 1);
  REQUIRE(r.anomalies.size() == 1);
  CHECK(r.anomalies[0].find("had not remounted") != std::string::npos);
}

TEST_CASE("oracle: an upsert replaces; a failed one leaves the old value, none, or (in doubt) the new") {
  ClusterTimeline t;
  Init(t);
  History h;
  // Replaced: the new version is exact, the old one REVERTED.
  h.Put(1, 1, 10, 20).Upsert(1, 2, 30, 40).Get(1, 2, 50, 51).Get(1, 1, 52, 53);
  // Refused before placement: the old value stays, and only it.
  h.Put(2, 1, 10, 20).Upsert(2, 2, 30, 40, ErrorCode::NO_AVAILABLE_HANDLE);
  h.Get(2, 1, 50, 51);  // exact
  h.Get(2, 0, 52, 53);  // LOST: nothing explains the absence
  // Failed after placement: the old object may be gone; the new was never stored.
  h.Put(3, 1, 10, 20).Upsert(3, 2, 30, 40, ErrorCode::TRANSFER_FAIL);
  h.Get(3, 1, 50, 51).Get(3, 0, 52, 53);  // both allowed
  h.Get(3, 2, 54, 55);                    // WRONG: never stored
  // Failed on the wire: any of the three.
  h.Put(4, 1, 10, 20).Upsert(4, 2, 30, 40, ErrorCode::RPC_FAIL);
  h.Get(4, 1, 50, 51).Get(4, 0, 52, 53).Get(4, 2, 54, 55);
  OracleReport r = JudgeOf(t, h);
  CHECK(r.upserts == 4);
  CHECK(r.puts == 8);
  CHECK(r.reads_exact == 2);
  CHECK(r.reverted == 1);
  CHECK(r.lost == 1);
  CHECK(r.wrong == 1);
  CHECK(r.reads_allowed + r.absent_ok == 5);
}

TEST_CASE("oracle: a read overlapping an upsert may find the key absent") {
  ClusterTimeline t;
  Init(t);
  History writer(0);
  writer.Put(1, 1, 10, 20).Upsert(1, 2, 30, 40).Put(2, 1, 10, 20).Put(2, 2, 30, 40, ErrorCode::OK);
  History reader(1);
  reader.GetFrom(0, 1, 0, 35, 36);  // during the upsert: allowed
  reader.GetFrom(0, 1, 0, 50, 51);  // after it: LOST
  reader.GetFrom(0, 2, 0, 35, 36);  // during a plain put of a key that had v1: LOST
  std::vector<OpRecord> all = writer.records;
  all.insert(all.end(), reader.records.begin(), reader.records.end());
  OracleReport r = Oracle(t, all).Judge();
  CHECK(r.absent_ok == 1);
  CHECK(r.lost == 2);
}

TEST_CASE("oracle: an upsert answered just before a master kill may bring the old value back") {
  ClusterTimeline t;
  Init(t);
  MasterKill k;
  k.barrier_ns = 25 * kMs;
  k.kill_ns = 45 * kMs;
  t.kills.push_back(k);
  History h;
  h.Put(1, 1, 10, 20).Upsert(1, 2, 30, 40).Get(1, 1, 60, 61);
  OracleReport r = JudgeOf(t, h);
  CHECK(r.reverted == 0);
  CHECK(r.documented_window == 1);
  // Before the barrier, the removal reached the store: REVERTED.
  History early;
  early.Put(1, 1, 5, 6).Upsert(1, 2, 10, 20).Get(1, 1, 60, 61);
  CHECK(JudgeOf(t, early).reverted == 1);
}

}  // namespace
}  // namespace kvcached::chaos
