// The client's put and get stages (src/client/put_batch.h, get_batch.h,
// and the replica lookup of replica_desc_batch.h)
// against an in-process master (FakeMasterLink: the real MasterService
// behind Dispatch) and a fake data path (FakeDataPath), with faults
// injected on either side. Every failure branch of put and get runs here
// in milliseconds; the black-box tests cover the same calls over sockets.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "client/get_batch.h"
#include "client/put_batch.h"
#include "client/replica_desc_batch.h"
#include "fake_data_path.h"
#include "fake_master_link.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;
using namespace std::chrono_literals;

// The bytes of version `v` of `key`: every read is checked against them.
std::vector<uint8_t> Value(const std::string& key, int v, size_t size = 1000) {
  std::vector<uint8_t> out(size);
  uint64_t x = std::hash<std::string>()(key) ^ (0x9e3779b97f4a7c15ull * (v + 1));
  for (auto& b : out) {
    x = x * 6364136223846793005ull + 1442695040888963407ull;
    b = static_cast<uint8_t>(x >> 56);
  }
  return out;
}

struct Rig {
  FakeMasterLink master;
  Transport transport;
  FakeDataPath* path = nullptr;
  Router router{TransportMode::kTcp, "client-host", "", transport};
  ClientCounters counters;
  Clock::time_point now = Clock::time_point{} + 1h;
  BatchContext ctx{master, transport, router, counters, true, [this] { return now; }};

  explicit Rig(int segments = 1) {
    auto p = std::make_unique<FakeDataPath>();
    path = p.get();
    path->clock = &now;
    transport.SetPath(Path::kTcp, std::move(p));
    for (int i = 0; i < segments; ++i) master.Mount("seg" + std::to_string(i), 4 << 20);
  }

  std::vector<Status> Put(const std::vector<std::string>& keys,
                          std::vector<std::vector<uint8_t>>& values, ReplicateConfig rc = {},
                          int retries = 2) {
    std::vector<Slice> slices;
    for (auto& v : values) slices.push_back({v.data(), v.size()});
    return PutBatch(ctx, keys, slices, rc).Run(retries);
  }
  Status Put(const std::string& key, std::vector<uint8_t> value, ReplicateConfig rc = {}) {
    std::vector<std::vector<uint8_t>> values{std::move(value)};
    return Put({key}, values, rc)[0];
  }
  // Reads `key` and checks its bytes against `want` when it succeeds.
  Result<uint64_t> Get(const std::string& key, const std::vector<uint8_t>& want) {
    std::vector<uint8_t> buf(want.size() + 16, 0xee);
    std::vector<std::string> keys{key};
    std::vector<Slice> bufs{{buf.data(), buf.size()}};
    Result<uint64_t> r = GetBatch(ctx, keys, bufs).Run()[0];
    if (r.ok()) {
      REQUIRE(*r == want.size());
      CHECK(std::equal(want.begin(), want.end(), buf.begin()));
    }
    return r;
  }
};

TEST_CASE("client stages: a put reads back exact, and a second put of the key is OK") {
  Rig rig;
  CHECK(rig.Put("k", Value("k", 0)).ok());
  CHECK(rig.Get("k", Value("k", 0)).ok());
  // The key exists: PutStart says so and nothing is transferred again.
  int writes = rig.path->writes["seg0"];
  CHECK(rig.Put("k", Value("k", 1)).ok());
  CHECK(rig.path->writes["seg0"] == writes);
  CHECK(rig.Get("k", Value("k", 0)).ok());
  CHECK(rig.counters.puts == 1);
  CHECK(rig.counters.gets == 2);
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == 2);
  // The releases named the version read: the lease is over, so a remove
  // that respects leases goes through at once.
  RemoveRequest rm{false, {"k"}};
  CodesResponse removed;
  REQUIRE(static_cast<MasterLink&>(rig.master).Call(MsgType::kRemove, rm, removed).ok());
  CHECK(removed.codes.at(0) == 0);
}

TEST_CASE("client stages: a get into a buffer too small still ends the lease it took") {
  Rig rig;
  REQUIRE(rig.Put("k", Value("k", 0)).ok());
  std::vector<uint8_t> small(8);
  std::vector<std::string> keys{"k"};
  std::vector<Slice> bufs{{small.data(), small.size()}};
  Result<uint64_t> r = GetBatch(rig.ctx, keys, bufs).Run()[0];
  CHECK(r.status().code() == ErrorCode::INVALID_PARAMS);
  CHECK(rig.path->reads["seg0"] == 0);  // nothing was read
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == 1);
  // The lease is over: a remove that respects leases goes through at once.
  RemoveRequest rm{false, {"k"}};
  CodesResponse removed;
  REQUIRE(static_cast<MasterLink&>(rig.master).Call(MsgType::kRemove, rm, removed).ok());
  CHECK(removed.codes.at(0) == 0);
}

TEST_CASE("client stages: bad input is refused before the master is asked") {
  Rig rig;
  std::vector<std::vector<uint8_t>> values{Value("a", 0), {}, Value("a", 0), Value("x", 0)};
  std::vector<std::string> keys{"a", "b", "a", std::string(kMaxKeyBytes + 1, 'x')};
  std::vector<Status> out = rig.Put(keys, values);
  CHECK(out[0].ok());
  CHECK(out[1].code() == ErrorCode::INVALID_PARAMS);  // no bytes
  CHECK(out[2].ok());                                 // the repeat shares the first's outcome
  CHECK(out[3].code() == ErrorCode::INVALID_KEY);
  CHECK(rig.master.calls[MsgType::kPutStart] == 1);
  CHECK(rig.path->writes["seg0"] == 1);

  ReplicateConfig none;
  none.replica_num = 0;
  CHECK(rig.Put("z", Value("z", 0), none).code() == ErrorCode::INVALID_PARAMS);
  CHECK(rig.master.calls[MsgType::kPutStart] == 1);

  // A buffer smaller than the object: refused, the buffer untouched.
  std::vector<uint8_t> small(10, 0xee);
  std::vector<std::string> k{"a"};
  std::vector<Slice> bufs{{small.data(), small.size()}};
  CHECK(GetBatch(rig.ctx, k, bufs).Run()[0].code() == ErrorCode::INVALID_PARAMS);
  CHECK(small == std::vector<uint8_t>(10, 0xee));
  std::vector<Slice> null_buf{{nullptr, 5}};
  CHECK(GetBatch(rig.ctx, k, null_buf).Run()[0].code() == ErrorCode::INVALID_PARAMS);
}

TEST_CASE("client stages: a refused transfer revokes the put, and the key can be put again") {
  Rig rig;
  rig.path->fail["seg0"] = ErrorCode::INVALID_WRITE;  // the store answers with a refusal
  Status st = rig.Put("k", Value("k", 0));
  CHECK(st.code() == ErrorCode::INVALID_WRITE);
  CHECK(rig.master.calls[MsgType::kPutRevoke] == 1);
  CHECK(rig.master.calls[MsgType::kPutEnd] == 0);
  CHECK(rig.master.calls[MsgType::kReportUnreachable] == 0);  // a refusal is not a dead store
  CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::OBJECT_NOT_FOUND);
  rig.path->fail.clear();
  CHECK(rig.Put("k", Value("k", 1)).ok());
  CHECK(rig.Get("k", Value("k", 1)).ok());
}

TEST_CASE("client stages: a store that cannot be reached is reported and the put goes elsewhere") {
  Rig rig(2);
  rig.path->fail["seg0"] = ErrorCode::TRANSFER_FAIL;
  ReplicateConfig rc;
  rc.preferred_segment = "seg0";
  CHECK(rig.Put("k", Value("k", 0), rc).ok());
  CHECK(rig.master.reported == std::vector<std::string>{"seg0"});
  CHECK(rig.path->writes["seg1"] == 1);
  CHECK(rig.Get("k", Value("k", 0)).ok());
  CHECK(rig.path->reads["seg0"] == 0);
}

TEST_CASE("client stages: with no retries left an unreachable store's error stands") {
  Rig rig(2);
  rig.path->fail["seg0"] = ErrorCode::TRANSFER_FAIL;
  ReplicateConfig rc;
  rc.preferred_segment = "seg0";
  std::vector<std::vector<uint8_t>> values{Value("j", 0)};
  CHECK(rig.Put({"j"}, values, rc, /*retries=*/0)[0].code() == ErrorCode::TRANSFER_FAIL);
  CHECK(rig.master.reported.empty());
  CHECK(rig.master.calls[MsgType::kPutRevoke] == 1);
  CHECK(rig.path->writes["seg1"] == 0);
  CHECK(rig.Get("j", Value("j", 0)).code() == ErrorCode::OBJECT_NOT_FOUND);
}

TEST_CASE("client stages: when every store fails, the store's error beats NO_AVAILABLE_HANDLE") {
  Rig rig(1);
  rig.path->fail["seg0"] = ErrorCode::TRANSFER_FAIL;
  Status st = rig.Put("k", Value("k", 0));
  // seg0 was reported, so the retry found no segment; the caller hears why.
  CHECK(st.code() == ErrorCode::TRANSFER_FAIL);
  CHECK(rig.master.reported == std::vector<std::string>{"seg0"});
  CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::OBJECT_NOT_FOUND);
}

TEST_CASE("client stages: PutEnd lost before or after the master applied it") {
  Rig rig;
  SUBCASE("not applied: the put fails and is revoked; the key is absent") {
    rig.master.FailNext(MsgType::kPutEnd, ErrorCode::RPC_TIMEOUT);
    CHECK(rig.Put("k", Value("k", 0)).code() == ErrorCode::RPC_TIMEOUT);
    CHECK(rig.master.calls[MsgType::kPutRevoke] == 1);
    CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  SUBCASE("applied, answer lost: the put reports the error, the revoke is refused harmlessly") {
    rig.master.FailNext(MsgType::kPutEnd, ErrorCode::RPC_FAIL, /*applied=*/true);
    CHECK(rig.Put("k", Value("k", 0)).code() == ErrorCode::RPC_FAIL);
    CHECK(rig.master.calls[MsgType::kPutRevoke] == 1);
    CHECK(rig.Get("k", Value("k", 0)).ok());  // the object the master committed is exact
  }
  SUBCASE("PutStart lost: nothing was placed, nothing moves") {
    rig.master.FailNext(MsgType::kPutStart, ErrorCode::RPC_FAIL);
    CHECK(rig.Put("k", Value("k", 0)).code() == ErrorCode::RPC_FAIL);
    CHECK(rig.path->batches == 0);
    CHECK(rig.Put("k", Value("k", 1)).ok());
    CHECK(rig.Get("k", Value("k", 1)).ok());
  }
}

TEST_CASE("client stages: a PutStart or PutEnd answered after the lease is not trusted") {
  // A master past its fence may still answer a request it checked just
  // before (docs/ha.md): an answer later than the lease is treated as lost.
  Rig rig;
  MsgType slow = MsgType::kPutStart;
  rig.master.rewrite = [&](MsgType type, std::string&) {
    if (type == slow) rig.now += std::chrono::milliseconds(10'001);
  };
  SUBCASE("PutStart: nothing is written, the space is given back") {
    CHECK(rig.Put("k", Value("k", 0)).code() == ErrorCode::RPC_TIMEOUT);
    CHECK(rig.path->batches == 0);
    CHECK(rig.master.calls[MsgType::kPutEnd] == 0);
    CHECK(rig.master.calls[MsgType::kPutRevoke] == 1);
    CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  SUBCASE("PutEnd: the put reports the error and revokes") {
    slow = MsgType::kPutEnd;
    CHECK(rig.Put("k", Value("k", 0)).code() == ErrorCode::RPC_TIMEOUT);
    CHECK(rig.master.calls[MsgType::kPutRevoke] == 1);
  }
  SUBCASE("within the lease both are trusted") {
    rig.master.rewrite = [&](MsgType, std::string&) { rig.now += std::chrono::milliseconds(9'999); };
    CHECK(rig.Put("k", Value("k", 0)).ok());
    CHECK(rig.master.calls[MsgType::kPutRevoke] == 0);
  }
}

TEST_CASE("client stages: a read that ends after its lease is refused, and not retried") {
  Rig rig(2);
  ReplicateConfig two;
  two.replica_num = 2;
  CHECK(rig.Put("k", Value("k", 0), two).ok());
  uint64_t lease_ms = 0;
  rig.master.rewrite = [&](MsgType type, std::string& answer) {
    if (type != MsgType::kGetReplicaList) return;
    ReplicaListResponse res;
    REQUIRE(DecodeBody(answer, res).ok());
    lease_ms = res.lease_ttl_ms;
    answer = EncodeBody(res);
  };
  // Each transfer batch takes (on the test's clock) longer than the lease.
  rig.path->step = std::chrono::milliseconds(10'001);
  int before = rig.path->batches;
  CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::LEASE_EXPIRED);
  CHECK(lease_ms == 10'000);
  CHECK(rig.path->batches == before + 1);  // the second replica was not tried
  CHECK(rig.counters.lease_expirations == 1);
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == 0);  // nothing left to release
  // Within the lease the same read succeeds.
  rig.path->step = std::chrono::milliseconds(9'999);
  CHECK(rig.Get("k", Value("k", 0)).ok());
}

TEST_CASE("client stages: a checksum mismatch falls back to the next replica") {
  Rig rig(2);
  ReplicateConfig two;
  two.replica_num = 2;
  CHECK(rig.Put("k", Value("k", 0), two).ok());
  SUBCASE("one replica corrupt: the other one answers") {
    rig.path->corrupt_reads = {"seg0"};
    CHECK(rig.Get("k", Value("k", 0)).ok());
    // seg0 is read only when the master listed it first; each read of it mismatched.
    CHECK(rig.counters.checksum_mismatches == static_cast<uint64_t>(rig.path->reads["seg0"]));
    CHECK(rig.path->reads["seg1"] == 1);
  }
  SUBCASE("both corrupt: CHECKSUM_MISMATCH, after trying both") {
    rig.path->corrupt_reads = {"seg0", "seg1"};
    CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::CHECKSUM_MISMATCH);
    CHECK(rig.counters.checksum_mismatches == 2);
  }
  SUBCASE("checksums off: the caller asked for no check") {
    rig.ctx.checksums = false;
    rig.path->corrupt_reads = {"seg0", "seg1"};
    std::vector<uint8_t> buf(1000);
    std::vector<std::string> k{"k"};
    std::vector<Slice> bufs{{buf.data(), buf.size()}};
    CHECK(GetBatch(rig.ctx, k, bufs).Run()[0].ok());
    CHECK(buf != Value("k", 0));
    CHECK(rig.counters.checksum_mismatches == 0);
  }
}

TEST_CASE("client stages: a failed transfer falls back to the next replica") {
  Rig rig(2);
  ReplicateConfig two;
  two.replica_num = 2;
  CHECK(rig.Put("k", Value("k", 0), two).ok());
  rig.path->fail["seg1"] = ErrorCode::TRANSFER_FAIL;
  CHECK(rig.Get("k", Value("k", 0)).ok());
  CHECK(rig.path->reads["seg0"] == 1);  // the healthy replica answered
  rig.path->fail["seg0"] = ErrorCode::TRANSFER_FAIL;
  int before = rig.path->reads["seg0"] + rig.path->reads["seg1"];
  CHECK(rig.Get("k", Value("k", 0)).code() == ErrorCode::TRANSFER_FAIL);
  CHECK(rig.path->reads["seg0"] + rig.path->reads["seg1"] == before + 2);
}

TEST_CASE("client stages: batches over kMaxBatchKeys go in chunks; a failed chunk fails its keys") {
  Rig rig;
  const size_t n = 2 * kMaxBatchKeys + 3;
  std::vector<std::string> keys;
  std::vector<std::vector<uint8_t>> values;
  for (size_t i = 0; i < n; ++i) {
    keys.push_back("key-" + std::to_string(i));
    values.push_back(Value(keys.back(), 0, 64));
  }
  // The second PutStart chunk fails: its keys and the third chunk's fail
  // with its error; the first chunk's keys are stored.
  rig.master.PassNext(MsgType::kPutStart);
  rig.master.FailNext(MsgType::kPutStart, ErrorCode::RPC_TIMEOUT);
  std::vector<Status> out = rig.Put(keys, values);
  CHECK(rig.master.calls[MsgType::kPutStart] == 2);
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    if (i < kMaxBatchKeys) {
      CHECK(out[i].ok());
    } else {
      CHECK(out[i].code() == ErrorCode::RPC_TIMEOUT);
    }
  }
  // Put again: every key goes through, in three chunks.
  out = rig.Put(keys, values);
  for (const Status& st : out) CHECK(st.ok());
  CHECK(rig.master.calls[MsgType::kPutStart] == 5);
  // The first chunk's keys exist now: PutStart says so, and only the
  // other 8195 keys are committed, in two chunks.
  CHECK(rig.master.calls[MsgType::kPutEnd] == 1 + 2);

  std::vector<std::vector<uint8_t>> bufs(n, std::vector<uint8_t>(64));
  std::vector<Slice> slices;
  for (auto& b : bufs) slices.push_back({b.data(), b.size()});
  std::vector<Result<uint64_t>> got = GetBatch(rig.ctx, keys, slices).Run();
  CHECK(rig.master.calls[MsgType::kGetReplicaList] == 3);
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == 3);
  for (size_t i = 0; i < n; ++i) {
    REQUIRE(got[i].ok());
    CHECK(bufs[i] == values[i]);
  }
  // A GetReplicaList chunk that fails fails its keys and the later ones.
  rig.master.PassNext(MsgType::kGetReplicaList);
  rig.master.FailNext(MsgType::kGetReplicaList, ErrorCode::RPC_FAIL);
  got = GetBatch(rig.ctx, keys, slices).Run();
  for (size_t i = 0; i < n; ++i) {
    CAPTURE(i);
    CHECK(got[i].ok() == (i < kMaxBatchKeys));
  }
}

// Remove of `key` as a plain client sends it (no force): 0 once no read
// lease holds the object.
int32_t RemoveCode(FakeMasterLink& master, const std::string& key) {
  RemoveRequest rm{false, {key}};
  CodesResponse removed;
  REQUIRE(static_cast<MasterLink&>(master).Call(MsgType::kRemove, rm, removed).ok());
  REQUIRE(removed.codes.size() == 1);
  return removed.codes[0];
}

TEST_CASE("client stages: replica descriptors name every replica and pin nothing") {
  Rig rig(2);
  ReplicateConfig two;
  two.replica_num = 2;
  REQUIRE(rig.Put("two", Value("two", 0, 3000), two).ok());
  REQUIRE(rig.Put("one", Value("one", 0, 700)).ok());
  // The versions as the master's own lookup gives them (its lease ended at once).
  ReplicaListResponse direct;
  REQUIRE(static_cast<MasterLink&>(rig.master)
              .Call(MsgType::kGetReplicaList, KeysRequest{{"two", "one"}}, direct)
              .ok());
  REQUIRE(direct.items.size() == 2);
  ReleaseLeasesRequest done{{{"two", direct.items[0].version}, {"one", direct.items[1].version}}};
  REQUIRE(static_cast<MasterLink&>(rig.master).Send(MsgType::kReleaseLeases, done).ok());
  int lookups = rig.master.calls[MsgType::kGetReplicaList];
  int releases = rig.master.calls[MsgType::kReleaseLeases];

  std::vector<std::string> keys{"two", "missing", "one", ""};
  std::vector<Result<ObjectPlaces>> got = ReplicaDescBatch(rig.ctx, keys).Run();
  REQUIRE(got.size() == 4);
  CHECK(rig.master.calls[MsgType::kGetReplicaList] == lookups + 1);  // one round trip
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == releases + 1);

  REQUIRE(got[0].ok());
  CHECK(got[0]->size == 3000);
  CHECK(got[0]->version == direct.items[0].version);
  REQUIRE(got[0]->replicas.size() == 2);
  CHECK(got[0]->replicas[0].segment != got[0]->replicas[1].segment);
  for (const ReplicaPlace& p : got[0]->replicas) {
    CAPTURE(p.segment);
    CHECK((p.segment == "seg0" || p.segment == "seg1"));
    CHECK(p.data_endpoint == "fake-" + p.segment + ":1");
    // The offset is where the put's bytes are.
    const std::vector<uint8_t>& mem = rig.path->segments.at(p.segment);
    std::vector<uint8_t> want = Value("two", 0, 3000);
    REQUIRE(p.offset + want.size() <= mem.size());
    CHECK(std::equal(want.begin(), want.end(), mem.begin() + static_cast<ptrdiff_t>(p.offset)));
  }
  CHECK(got[1].code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(got[1].status().message().find("'missing'") != std::string::npos);
  REQUIRE(got[2].ok());
  CHECK(got[2]->size == 700);
  CHECK(got[2]->version == direct.items[1].version);
  REQUIRE(got[2]->replicas.size() == 1);
  {
    const ReplicaPlace& p = got[2]->replicas[0];
    const std::vector<uint8_t>& mem = rig.path->segments.at(p.segment);
    std::vector<uint8_t> want = Value("one", 0, 700);
    REQUIRE(p.offset + want.size() <= mem.size());
    CHECK(std::equal(want.begin(), want.end(), mem.begin() + static_cast<ptrdiff_t>(p.offset)));
  }
  CHECK(got[3].code() == ErrorCode::INVALID_KEY);
  // No bytes moved, and the leases are over: removes that respect them go through.
  CHECK(rig.counters.gets == 0);
  CHECK(RemoveCode(rig.master, "two") == 0);
  CHECK(RemoveCode(rig.master, "one") == 0);
  CHECK(ReplicaDescBatch(rig.ctx, {"two"}).Run()[0].code() == ErrorCode::OBJECT_NOT_FOUND);
}

TEST_CASE("client stages: replica descriptors of a failed lookup fail their keys") {
  Rig rig;
  REQUIRE(rig.Put("k", Value("k", 0)).ok());
  std::vector<std::string> keys{"k"};
  int releases = rig.master.calls[MsgType::kReleaseLeases];
  // Refused before the master saw it: nothing leased, nothing to release.
  rig.master.FailNext(MsgType::kGetReplicaList, ErrorCode::RPC_FAIL);
  CHECK(ReplicaDescBatch(rig.ctx, keys).Run()[0].code() == ErrorCode::RPC_FAIL);
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == releases);
  CHECK(ReplicaDescBatch(rig.ctx, keys).Run()[0].ok());
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == releases + 1);

  // Keys past kMaxBatchKeys go in a second request; when it fails, its
  // keys fail with its error and the first request's keys are answered.
  std::vector<std::string> many;
  for (size_t i = 0; i < kMaxBatchKeys + 2; ++i) many.push_back("none-" + std::to_string(i));
  many[1] = "k";
  many[kMaxBatchKeys + 1] = "k";
  rig.master.PassNext(MsgType::kGetReplicaList);
  rig.master.FailNext(MsgType::kGetReplicaList, ErrorCode::RPC_TIMEOUT);
  std::vector<Result<ObjectPlaces>> got = ReplicaDescBatch(rig.ctx, many).Run();
  REQUIRE(got.size() == many.size());
  for (size_t i = 0; i < many.size(); ++i) {
    CAPTURE(i);
    if (i == 1) {
      CHECK(got[i].ok());
    } else if (i < kMaxBatchKeys) {
      CHECK(got[i].code() == ErrorCode::OBJECT_NOT_FOUND);
    } else {
      CHECK(got[i].code() == ErrorCode::RPC_TIMEOUT);
    }
  }
  // The one object found was released: a remove goes through.
  CHECK(rig.master.calls[MsgType::kReleaseLeases] == releases + 2);
  CHECK(RemoveCode(rig.master, "k") == 0);
}

}  // namespace
}  // namespace kvcached
