// MasterIndex's replica tasks (docs/master.md, "Replica tasks"): what
// CreateTask checks, what TaskStart hands out, how TaskEnd commits or
// refuses, and what a removed object, an unmounted target, a timeout or a
// full task table leave behind. Time is driven by hand; every case checks
// the segments' used bytes, so a range a task forgot to free shows.
#include <algorithm>

#include <doctest/doctest.h>

#include "core/tenant.h"
#include "master/master_index.h"

namespace kvcached {
namespace {

constexpr int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }
constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kWall = 1'700'000'000'000;

const Caller kStoreA{"store-a", "host-a"};
const Caller kStoreB{"store-b", "host-b"};
const Caller kStoreC{"store-c", "host-c"};
const Caller kWriter{"writer", "host-a"};
const Caller kOther{"other", "host-b"};

MasterOptions Opts() {
  MasterOptions o;
  o.random_seed = 7;
  o.lease_ttl_ms = 1000;
  o.put_start_release_timeout_ms = 60'000;
  o.client_ttl_ms = 1'000'000;
  o.eviction_high_watermark_ratio = 1.0;
  return o;
}

struct Pool {
  MasterIndex m{Opts()};
  Pool() {
    REQUIRE(m.Mount(kStoreA, {"a", 0, 64 * kMiB, "tcp://a"}, 0).ok());
    REQUIRE(m.Mount(kStoreB, {"b", 0, 64 * kMiB, "tcp://b"}, 0).ok());
    REQUIRE(m.Mount(kStoreC, {"c", 0, 64 * kMiB, "tcp://c"}, 0).ok());
  }
  void Put(const std::string& key, const std::string& seg, uint64_t size = kMiB) {
    ReplicaListResponse s = m.PutStart(kWriter, {1, seg, {{key, size}}}, 0);
    REQUIRE(s.items[0].code == 0);
    REQUIRE(s.segments[s.items[0].replicas[0].segment].name == seg);
    REQUIRE(m.PutEnd(kWriter, {{{key, 99}}}, 0).codes[0] == 0);
  }
  TaskInfo Copy(const std::string& key, std::vector<std::string> targets, int64_t now = 10,
                const Caller& who = kWriter) {
    return m.CreateTask(who, {static_cast<uint8_t>(TaskType::kReplicaCopy), key, "", targets},
                        now, kWall + now);
  }
  TaskInfo Move(const std::string& key, const std::string& from, const std::string& to,
                int64_t now = 10) {
    return m.CreateTask(kWriter, {static_cast<uint8_t>(TaskType::kReplicaMove), key, from, {to}},
                        now, kWall + now);
  }
  uint64_t Used(const std::string& seg) {
    for (const SegmentStats& s : m.Segments(0)) {
      if (s.name == seg) return s.used_bytes;
    }
    FAIL("no segment " << seg);
    return 0;
  }
  std::vector<std::string> Holders(const std::string& key, int64_t now = 10) {
    std::vector<std::string> out;
    auto view = m.Lookup(key, now);
    if (!view) return out;
    for (const auto& [seg, offset] : view->replicas) out.push_back(seg);
    std::sort(out.begin(), out.end());
    return out;
  }
  TaskState State(const TaskInfo& t) {
    TaskInfo q = m.QueryTask("", t.task);
    REQUIRE(q.code == 0);
    return static_cast<TaskState>(q.state);
  }
};

TEST_CASE("a copy adds a replica that readers see only once it is ended") {
  Pool p;
  p.Put("k", "a");
  TaskInfo t = p.Copy("k", {"b", "c"});
  REQUIRE(t.code == 0);
  CHECK((t.task.id_hi | t.task.id_lo) != 0);
  CHECK(t.assigned_client == "writer");
  CHECK(t.created_ms == kWall + 10);
  CHECK(p.State(t) == TaskState::kPending);

  ReplicaListResponse start = p.m.TaskStart(kWriter, t.task, 20, kWall + 20);
  REQUIRE(start.items.size() == 2);
  REQUIRE(start.items[0].code == 0);
  CHECK(start.items[0].size == kMiB);
  CHECK(start.items[0].checksum == 99);
  REQUIRE(start.items[0].replicas.size() == 1);
  CHECK(start.segments[start.items[0].replicas[0].segment].name == "a");
  REQUIRE(start.items[1].replicas.size() == 2);
  CHECK(p.State(t) == TaskState::kProcessing);
  // The ranges are taken but the object still has one replica, and the
  // task's read lease protects it from a plain remove.
  CHECK(p.Used("b") == kMiB);
  CHECK(p.Used("c") == kMiB);
  CHECK(p.Holders("k") == std::vector<std::string>{"a"});
  CHECK(p.m.Remove({"k"}, false, 30).codes[0] == Code(ErrorCode::OBJECT_HAS_LEASE));
  // Only its creator may end it.
  CHECK(p.m.TaskEnd(kOther, {t.task, 0, ""}, 30, kWall + 30).code ==
        Code(ErrorCode::TASK_NOT_FOUND));

  p.m.TakeTableUpdates();
  REQUIRE(p.m.TaskEnd(kWriter, {t.task, 0, ""}, 40, kWall + 40).code == 0);
  CHECK(p.State(t) == TaskState::kSuccess);
  CHECK(p.m.QueryTask("", t.task).updated_ms == kWall + 40);
  CHECK(p.Holders("k", 40) == std::vector<std::string>{"a", "b", "c"});
  // The new holders were told, so a rebuilt index keeps the replicas.
  auto updates = p.m.TakeTableUpdates();
  CHECK(updates.size() == 2);
  for (const auto& [owner, u] : updates) {
    REQUIRE(u.changes.size() == 1);
    CHECK(u.changes[0].op == static_cast<uint8_t>(TableOp::kAdd));
    CHECK(u.changes[0].entry.key == "k");
    CHECK(u.changes[0].entry.checksum == 99);
  }
  // The lease was given back: a plain remove goes through, and frees all three.
  CHECK(p.m.Remove({"k"}, false, 41).codes[0] == 0);
  CHECK(p.Used("a") + p.Used("b") + p.Used("c") == 0);
  CHECK(p.m.counters().tasks_succeeded == 1);
  CHECK(p.m.counters().replicas_copied == 2);
}

TEST_CASE("a move puts the replica in the target, then drops the source's") {
  Pool p;
  p.Put("k", "a");
  TaskInfo t = p.Move("k", "a", "b");
  REQUIRE(t.code == 0);
  ReplicaListResponse start = p.m.TaskStart(kWriter, t.task, 20, kWall + 20);
  REQUIRE(start.items[0].code == 0);
  REQUIRE(start.items[1].replicas.size() == 1);
  CHECK(start.segments[start.items[1].replicas[0].segment].name == "b");
  // Another reader holds a lease on the object meanwhile.
  REQUIRE(p.m.GetReplicaLists({"k"}, 25).items[0].code == 0);
  p.m.TakeTableUpdates();
  REQUIRE(p.m.TaskEnd(kWriter, {t.task, 0, ""}, 30, kWall + 30).code == 0);
  CHECK(p.State(t) == TaskState::kSuccess);
  CHECK(p.Holders("k", 30) == std::vector<std::string>{"b"});
  // The source's owner is told, but the range waits for the reader's lease.
  bool removal = false;
  for (const auto& [owner, u] : p.m.TakeTableUpdates()) {
    for (const TableChange& c : u.changes) {
      if (owner == "store-a") {
        removal = c.op == static_cast<uint8_t>(TableOp::kRemove) && c.entry.key == "k";
      }
    }
  }
  CHECK(removal);
  CHECK(p.Used("a") == kMiB);
  p.m.Tick(25 + 1000);  // the reader's lease ends
  CHECK(p.Used("a") == 0);
  CHECK(p.Used("b") == kMiB);
}

TEST_CASE("CreateTask refuses what cannot be done, and records nothing") {
  Pool p;
  p.Put("k", "a");
  CHECK(p.Copy("nope", {"b"}).code == Code(ErrorCode::OBJECT_NOT_FOUND));
  CHECK(p.Copy("k", {"zz"}).code == Code(ErrorCode::SEGMENT_NOT_FOUND));
  CHECK(p.Copy("k", {}).code == Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.Copy("k", {"b", "b"}).code == Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.Copy("k", {""}).code == Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.Copy("", {"b"}).code == Code(ErrorCode::INVALID_KEY));
  CHECK(p.Move("k", "b", "c").code == Code(ErrorCode::INVALID_REPLICA));
  CHECK(p.Move("k", "a", "a").code == Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.Move("k", "", "b").code == Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.Move("k", "a", "zz").code == Code(ErrorCode::SEGMENT_NOT_FOUND));
  CHECK(p.m.CreateTask(kWriter, {9, "k", "", {"b"}}, 10, kWall).code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.m.counters().tasks_created == 0);
  CHECK(p.m.QueryTask("", {1, 2}).code == Code(ErrorCode::TASK_NOT_FOUND));
}

TEST_CASE("a copy to a segment that holds the object already has nothing to write") {
  Pool p;
  p.Put("k", "a");
  TaskInfo t = p.Copy("k", {"a"});
  REQUIRE(t.code == 0);
  ReplicaListResponse start = p.m.TaskStart(kWriter, t.task, 20, kWall + 20);
  REQUIRE(start.items[0].code == 0);
  CHECK(start.items[1].replicas.empty());
  REQUIRE(p.m.TaskEnd(kWriter, {t.task, 0, ""}, 21, kWall + 21).code == 0);
  CHECK(p.State(t) == TaskState::kSuccess);
  CHECK(p.Holders("k", 21) == std::vector<std::string>{"a"});
  CHECK(p.Used("a") == kMiB);
}

TEST_CASE("an object removed or replaced during the copy fails the task and keeps nothing") {
  for (bool upsert : {false, true}) {
    CAPTURE(upsert);
    Pool p;
    p.Put("k", "a");
    TaskInfo t = p.Copy("k", {"b"});
    REQUIRE(p.m.TaskStart(kWriter, t.task, 20, kWall + 20).items[0].code == 0);
    CHECK(p.Used("b") == kMiB);
    if (upsert) {
      ReplicaListResponse s = p.m.PutStart(kWriter, {1, "c", {{"k", 2 * kMiB}}}, 30, true);
      REQUIRE(s.items[0].code == 0);
      REQUIRE(p.m.PutEnd(kWriter, {{{"k", 5}}}, 30).codes[0] == 0);
    } else {
      REQUIRE(p.m.Remove({"k"}, true, 30).codes[0] == 0);
    }
    REQUIRE(p.m.TaskEnd(kWriter, {t.task, 0, ""}, 40, kWall + 40).code == 0);
    CHECK(p.State(t) == TaskState::kFailed);
    CHECK(p.m.QueryTask("", t.task).message.find("removed, replaced or evicted") !=
          std::string::npos);
    CHECK(p.Used("b") == 0);
    CHECK(p.Holders("k", 40) == (upsert ? std::vector<std::string>{"c"}
                                        : std::vector<std::string>{}));
  }
}

TEST_CASE("a failed copy frees its ranges and says why") {
  Pool p;
  p.Put("k", "a");
  TaskInfo t = p.Copy("k", {"b"});
  REQUIRE(p.m.TaskStart(kWriter, t.task, 20, kWall + 20).items[0].code == 0);
  REQUIRE(p.m.TaskEnd(kWriter, {t.task, Code(ErrorCode::TRANSFER_FAIL), "store b hung up"}, 30,
                      kWall + 30)
              .code == 0);
  TaskInfo q = p.m.QueryTask("", t.task);
  CHECK(q.state == static_cast<uint8_t>(TaskState::kFailed));
  CHECK(q.message == "store b hung up");
  CHECK(p.Used("b") == 0);
  CHECK(p.Holders("k", 30) == std::vector<std::string>{"a"});
  // Over: a second end and a start are refused, and change nothing.
  CHECK(p.m.TaskEnd(kWriter, {t.task, 0, ""}, 31, kWall).code == Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.m.TaskStart(kWriter, t.task, 31, kWall).items[0].code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.m.Remove({"k"}, false, 31).codes[0] == 0);  // no lease left behind
}

TEST_CASE("a target unmounted during the copy: its range goes with it; a move keeps its source") {
  Pool p;
  p.Put("k", "a");
  TaskInfo copy = p.Copy("k", {"b", "c"});
  REQUIRE(p.m.TaskStart(kWriter, copy.task, 20, kWall + 20).items[0].code == 0);
  REQUIRE(p.m.Unmount(kStoreB, "b", 25).ok());
  REQUIRE(p.m.TaskEnd(kWriter, {copy.task, 0, ""}, 30, kWall + 30).code == 0);
  CHECK(p.State(copy) == TaskState::kSuccess);
  CHECK(p.Holders("k", 30) == std::vector<std::string>{"a", "c"});

  p.Put("m", "a");
  TaskInfo move = p.Move("m", "a", "c");
  REQUIRE(p.m.TaskStart(kWriter, move.task, 40, kWall + 40).items[0].code == 0);
  REQUIRE(p.m.Unmount(kStoreC, "c", 45).ok());
  REQUIRE(p.m.TaskEnd(kWriter, {move.task, 0, ""}, 50, kWall + 50).code == 0);
  CHECK(p.State(move) == TaskState::kFailed);
  CHECK(p.Holders("m", 50) == std::vector<std::string>{"a"});
  // Mounted again, the segment starts empty: nothing of the task is in it.
  REQUIRE(p.m.Mount(kStoreC, {"c", 0, 64 * kMiB, "tcp://c"}, 60).ok());
  CHECK(p.Used("c") == 0);
}

TEST_CASE("tasks never started or never ended fail at the release timeout and free their ranges") {
  Pool p;
  p.Put("k", "a");
  TaskInfo idle = p.Copy("k", {"b"}, 10);
  TaskInfo stuck = p.Copy("k", {"c"}, 10);
  REQUIRE(p.m.TaskStart(kWriter, stuck.task, 20, kWall + 20).items[0].code == 0);
  CHECK(p.Used("c") == kMiB);
  p.m.Tick(60'000);  // idle's deadline is 60'010, stuck's 60'020
  CHECK(p.State(idle) == TaskState::kPending);
  p.m.Tick(60'020);
  CHECK(p.State(idle) == TaskState::kFailed);
  CHECK(p.State(stuck) == TaskState::kFailed);
  CHECK(p.m.QueryTask("", stuck.task).message.find("not ended") != std::string::npos);
  CHECK(p.m.QueryTask("", idle.task).message.find("not started") != std::string::npos);
  CHECK(p.Used("c") == 0);
  CHECK(p.Holders("k", 60'020) == std::vector<std::string>{"a"});
  // Its writer's late end is refused and changes nothing.
  CHECK(p.m.TaskEnd(kWriter, {stuck.task, 0, ""}, 60'030, kWall).code ==
        Code(ErrorCode::INVALID_PARAMS));
  CHECK(p.Holders("k", 60'030) == std::vector<std::string>{"a"});
}

TEST_CASE("the task table is bounded: unfinished refused past the limit, finished forgotten") {
  MasterOptions o = Opts();
  o.max_pending_tasks = 2;
  o.max_finished_tasks = 2;
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, {"a", 0, 64 * kMiB, "tcp://a"}, 0).ok());
  REQUIRE(m.Mount(kStoreB, {"b", 0, 64 * kMiB, "tcp://b"}, 0).ok());
  REQUIRE(m.PutStart(kWriter, {1, "a", {{"k", kMiB}}}, 0).items[0].code == 0);
  REQUIRE(m.PutEnd(kWriter, {{{"k", 1}}}, 0).codes[0] == 0);
  CreateTaskRequest req{static_cast<uint8_t>(TaskType::kReplicaCopy), "k", "", {"b"}};
  TaskInfo t1 = m.CreateTask(kWriter, req, 1, kWall);
  TaskInfo t2 = m.CreateTask(kWriter, req, 1, kWall);
  REQUIRE(t1.code == 0);
  REQUIRE(t2.code == 0);
  CHECK(m.CreateTask(kWriter, req, 1, kWall).code ==
        Code(ErrorCode::TASK_PENDING_LIMIT_EXCEEDED));
  std::vector<TaskRef> done;
  for (TaskInfo t : {t1, t2}) {
    REQUIRE(m.TaskEnd(kWriter, {t.task, Code(ErrorCode::TRANSFER_FAIL), "x"}, 2, kWall).code == 0);
    done.push_back(t.task);
  }
  for (int i = 0; i < 2; ++i) {
    TaskInfo t = m.CreateTask(kWriter, req, 3, kWall);
    REQUIRE(t.code == 0);
    REQUIRE(m.TaskEnd(kWriter, {t.task, Code(ErrorCode::TRANSFER_FAIL), "y"}, 3, kWall).code == 0);
  }
  // The two oldest finished tasks are forgotten.
  CHECK(m.QueryTask("", done[0]).code == Code(ErrorCode::TASK_NOT_FOUND));
  CHECK(m.QueryTask("", done[1]).code == Code(ErrorCode::TASK_NOT_FOUND));
}

TEST_CASE("a tenant's task is invisible to other tenants") {
  Pool p;
  std::string key = TenantPrefix("team-a") + "k";
  p.Put(key, "a");
  TaskInfo t = p.Copy(key, {"b"});
  REQUIRE(t.code == 0);
  CHECK(p.m.QueryTask("team-a", t.task).code == 0);
  CHECK(p.m.QueryTask("", t.task).code == Code(ErrorCode::TASK_NOT_FOUND));
  CHECK(p.m.QueryTask("team-b", t.task).code == Code(ErrorCode::TASK_NOT_FOUND));
}

TEST_CASE("a copy into a full target evicts there as a put would; a hard-pinned pool fails it") {
  MasterOptions o = Opts();
  MasterIndex m(o);
  REQUIRE(m.Mount(kStoreA, {"a", 0, 8 * kMiB, "tcp://a"}, 0).ok());
  REQUIRE(m.Mount(kStoreB, {"b", 0, 8 * kMiB, "tcp://b"}, 0).ok());
  auto put = [&](const std::string& key, const std::string& seg, uint8_t pin) {
    PutStartRequest r{1, seg, {{key, 4 * kMiB}}, pin};
    ReplicaListResponse s = m.PutStart(kWriter, r, 0);
    REQUIRE(s.items[0].code == 0);
    REQUIRE(s.segments[s.items[0].replicas[0].segment].name == seg);
    REQUIRE(m.PutEnd(kWriter, {{{key, 1}}}, 0).codes[0] == 0);
  };
  put("k", "a", 0);
  put("b1", "b", 0);
  put("b2", "b", 0);
  CreateTaskRequest req{static_cast<uint8_t>(TaskType::kReplicaCopy), "k", "", {"b"}};
  TaskInfo t = m.CreateTask(kWriter, req, 1, kWall);
  ReplicaListResponse start = m.TaskStart(kWriter, t.task, 2000, kWall);
  REQUIRE(start.items[0].code == 0);
  REQUIRE(start.items[1].replicas.size() == 1);
  CHECK(m.counters().evicted_objects == 1);
  REQUIRE(m.TaskEnd(kWriter, {t.task, 0, ""}, 2001, kWall).code == 0);

  MasterIndex pinned(o);
  REQUIRE(pinned.Mount(kStoreA, {"a", 0, 8 * kMiB, "tcp://a"}, 0).ok());
  REQUIRE(pinned.Mount(kStoreB, {"b", 0, 4 * kMiB, "tcp://b"}, 0).ok());
  REQUIRE(pinned.PutStart(kWriter, {1, "a", {{"k", 4 * kMiB}}}, 0).items[0].code == 0);
  REQUIRE(pinned.PutEnd(kWriter, {{{"k", 1}}}, 0).codes[0] == 0);
  PutStartRequest hard{1, "b", {{"h", 4 * kMiB}}, static_cast<uint8_t>(Pin::kHard)};
  REQUIRE(pinned.PutStart(kWriter, hard, 0).items[0].code == 0);
  REQUIRE(pinned.PutEnd(kWriter, {{{"h", 1}}}, 0).codes[0] == 0);
  TaskInfo full = pinned.CreateTask(kWriter, req, 1, kWall);
  REQUIRE(full.code == 0);
  CHECK(pinned.TaskStart(kWriter, full.task, 2000, kWall).items[0].code ==
        Code(ErrorCode::NO_AVAILABLE_HANDLE));
  TaskInfo q = pinned.QueryTask("", full.task);
  CHECK(q.state == static_cast<uint8_t>(TaskState::kFailed));
  CHECK(q.message == "no room in segment 'b'");
  CHECK(pinned.Remove({"k"}, false, 2001).codes[0] == 0);  // its lease was given back
}

}  // namespace
}  // namespace kvcached
