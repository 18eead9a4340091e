// RdmaTarget and RdmaEngine together in one process over FakeVerbs: the
// handshake, real bytes moved by RDMA WRITE and READ, slicing, retries,
// rebuilds, timeouts and the bounds checks.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <map>
#include <random>
#include <set>
#include <thread>
#include <vector>

#include "fake_verbs.h"
#include "rdma/rdma_transport.h"

namespace kvcached {
namespace {

constexpr uint64_t kMiB = 1 << 20;
constexpr uint64_t kChunk = 4 * kMiB;  // the target's registration chunks

class TestLink : public RdmaLink {
 public:
  TestLink(RdmaTarget* target, uint64_t id, const std::atomic<bool>* dead)
      : target_(target), id_(id), dead_(dead) {}
  ~TestLink() override { target_->Release(id_); }
  bool Alive() const override { return !*dead_; }

 private:
  RdmaTarget* target_;
  uint64_t id_;
  const std::atomic<bool>* dead_;
};

std::vector<uint8_t> Random(size_t n, uint32_t seed) {
  std::vector<uint8_t> out(n);
  std::mt19937 rng(seed);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

// A store (target over a segment) and a client (engine) sharing a FakeVerbs;
// the connector hands requests straight to the target, or refuses for the
// addresses in `down`.
struct Cluster {
  explicit Cluster(std::vector<FakeDeviceSpec> devices = {FakeRoceDevice("rxe0", "10.0.0.1"),
                                                          FakeRoceDevice("rxe1", "10.0.0.2")},
                   RdmaOptions engine_options = DefaultEngineOptions(),
                   RdmaOptions target_options = DefaultTargetOptions(),
                   uint64_t segment_bytes = 6 * kChunk)
      : fake(std::move(devices)), segment(segment_bytes) {
    auto t = RdmaTarget::Open(fake.api(), target_options, segment.data(), segment.size());
    REQUIRE(t.ok());
    target = std::move(t).value();
    info = target->Describe();
    auto e =
        RdmaEngine::Open(fake.api(), engine_options,
                         [this](const std::string& address, const RdmaConnectRequest& request,
                                std::unique_ptr<RdmaLink>& link) -> Result<RdmaConnectResponse> {
                           connects++;
                           if (down.count(address) > 0) {
                             return Status(ErrorCode::RPC_FAIL, "connection refused");
                           }
                           uint64_t id = next_link++;
                           auto response = target->Accept(request, id);
                           if (response.ok()) {
                             link = std::make_unique<TestLink>(target.get(), id, &links_dead);
                           }
                           return response;
                         });
    REQUIRE(e.ok());
    engine = std::move(e).value();
  }
  ~Cluster() {
    engine.reset();
    target.reset();
  }

  static RdmaOptions DefaultEngineOptions() {
    RdmaOptions o;
    o.slice_bytes = 256 * 1024;
    o.io_timeout = std::chrono::milliseconds(5000);
    return o;
  }
  static RdmaOptions DefaultTargetOptions() {
    RdmaOptions o;
    o.max_chunk_bytes = kChunk;
    return o;
  }

  RdmaOp Op(uint64_t offset, uint64_t length, uint8_t* local, bool write,
            const std::string& address = "store:1", const std::string& instance = "i1") {
    RdmaOp op;
    op.remote = &info;
    op.address = address;
    op.instance = instance;
    op.offset = offset;
    op.length = length;
    op.local = local;
    op.write = write;
    return op;
  }
  Status RunOne(RdmaOp op) {
    std::vector<RdmaOp*> ops{&op};
    engine->Run(ops);
    return op.result;
  }
  std::vector<FakeVerbs::QpInfo> ClientQps() {
    std::vector<FakeVerbs::QpInfo> out;
    for (auto& qp : fake.Qps()) {
      if (qp.alive && qp.access == IBV_ACCESS_LOCAL_WRITE) out.push_back(qp);
    }
    return out;
  }

  FakeVerbs fake;
  std::vector<uint8_t> segment;
  std::unique_ptr<RdmaTarget> target;
  RdmaSegmentInfo info;
  std::unique_ptr<RdmaEngine> engine;
  std::atomic<uint64_t> next_link{1};
  std::atomic<int> connects{0};
  std::set<std::string> down;
  std::atomic<bool> links_dead{false};  // every link reports its store gone
};

TEST_CASE("rdma transport: handshake reaches RTS in order with the right attributes") {
  FakeDeviceSpec store = FakeRoceDevice("rxe0", "10.0.0.1");
  FakeDeviceSpec client = FakeRoceDevice("cli0", "10.0.0.9");
  client.ports[0].mtu = IBV_MTU_1024;
  client.max_qp_rd_atom = 8;
  RdmaOptions engine_options = Cluster::DefaultEngineOptions();
  engine_options.devices = {"cli0"};
  engine_options.qps_per_nic_pair = 1;
  RdmaOptions target_options = Cluster::DefaultTargetOptions();
  target_options.devices = {"rxe0"};
  Cluster c({store, client}, engine_options, target_options);
  REQUIRE(c.engine->nics().size() == 1);
  CHECK(c.engine->nics()[0].name == "cli0");

  std::vector<uint8_t> data = Random(100, 1);
  REQUIRE(c.RunOne(c.Op(0, data.size(), data.data(), true)).ok());
  CHECK(c.connects == 1);
  CHECK(c.target->queue_pairs() == 1);
  CHECK(c.engine->counters().queue_pairs_created == 1);

  auto qps = c.fake.Qps();
  REQUIRE(qps.size() == 2);
  const FakeVerbs::QpInfo* cq = nullptr;
  const FakeVerbs::QpInfo* tq = nullptr;
  for (auto& qp : qps) (qp.device == "cli0" ? cq : tq) = &qp;
  REQUIRE(cq != nullptr);
  REQUIRE(tq != nullptr);
  const std::vector<ibv_qp_state> order{IBV_QPS_RESET, IBV_QPS_INIT, IBV_QPS_RTR, IBV_QPS_RTS};
  CHECK(cq->history == order);
  CHECK(tq->history == order);
  CHECK(tq->access == (IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE));
  // Each side points at the other, over RoCE with the chosen GIDs.
  CHECK(cq->rtr.dest_qp_num == tq->qpn);
  CHECK(tq->rtr.dest_qp_num == cq->qpn);
  CHECK(cq->rtr.ah_attr.is_global == 1);
  CHECK(cq->rtr.ah_attr.grh.hop_limit == 64);
  CHECK(cq->rtr.ah_attr.grh.sgid_index == 3);
  CHECK(std::memcmp(cq->rtr.ah_attr.grh.dgid.raw, FakeGid("::ffff:10.0.0.1").data(), 16) == 0);
  CHECK(std::memcmp(tq->rtr.ah_attr.grh.dgid.raw, FakeGid("::ffff:10.0.0.9").data(), 16) == 0);
  // MTU: the smaller of both sides.
  CHECK(cq->rtr.path_mtu == IBV_MTU_1024);
  CHECK(tq->rtr.path_mtu == IBV_MTU_1024);
  CHECK(cq->rts.timeout == 14);
  CHECK(cq->rts.retry_cnt == 7);
  CHECK(cq->rts.rnr_retry == 7);
  CHECK(cq->rts.max_rd_atomic == 8);  // bounded by the client device
  CHECK(tq->rtr.max_dest_rd_atomic == 16);
  CHECK(cq->rts.sq_psn == tq->rtr.rq_psn);
  CHECK(tq->rts.sq_psn == cq->rtr.rq_psn);
  CHECK(std::equal(data.begin(), data.end(), c.segment.begin()));

  // A second op reuses the queue pair.
  REQUIRE(c.RunOne(c.Op(100, data.size(), data.data(), true)).ok());
  CHECK(c.connects == 1);
  CHECK(c.fake.Qps().size() == 2);
}

TEST_CASE("rdma transport: put then get moves real bytes, 1 B to 8 MiB, across chunks") {
  Cluster c;
  const uint64_t sizes[] = {1, 7, 4096, 65537, kMiB, 3 * kMiB + 5, 8 * kMiB};
  uint32_t seed = 10;
  for (uint64_t size : sizes) {
    for (uint64_t offset : {uint64_t{0}, kChunk - std::min(size, kChunk) / 2 - 1, 2 * kChunk - 3,
                            c.segment.size() - size}) {
      CAPTURE(size);
      CAPTURE(offset);
      std::vector<uint8_t> src = Random(size, seed++);
      REQUIRE(c.RunOne(c.Op(offset, size, src.data(), true)).ok());
      REQUIRE(std::equal(src.begin(), src.end(), c.segment.begin() + offset));
      std::vector<uint8_t> dst(size, 0);
      REQUIRE(c.RunOne(c.Op(offset, size, dst.data(), false)).ok());
      REQUIRE(dst == src);
    }
  }
  CHECK(c.engine->counters().transfers == 2 * 4 * std::size(sizes));
  CHECK(c.engine->counters().temporary_registrations == 2 * 4 * std::size(sizes));
  CHECK(c.engine->counters().slices_retried == 0);
  CHECK(c.fake.Held() == 0);
}

TEST_CASE("rdma transport: registered client memory needs no temporary registration") {
  Cluster c;
  std::vector<uint8_t> buffer = Random(3 * kMiB, 7);
  const size_t mrs_before = c.fake.LiveMrs();
  REQUIRE(c.engine->RegisterMemory(buffer.data(), buffer.size()).ok());
  REQUIRE(c.engine->RegisterMemory(buffer.data(), buffer.size()).ok());  // idempotent
  const size_t mrs_registered = c.fake.LiveMrs();
  CHECK(mrs_registered > mrs_before);
  REQUIRE(c.RunOne(c.Op(kChunk - kMiB, 2 * kMiB, buffer.data() + kMiB, true)).ok());
  CHECK(std::equal(buffer.begin() + kMiB, buffer.begin() + 3 * kMiB,
                   c.segment.begin() + kChunk - kMiB));
  CHECK(c.engine->counters().temporary_registrations == 0);
  CHECK(c.fake.LiveMrs() == mrs_registered);
  REQUIRE(c.engine->UnregisterMemory(buffer.data()).ok());
  CHECK(c.engine->UnregisterMemory(buffer.data()).code() == ErrorCode::INVALID_PARAMS);
  CHECK(c.fake.LiveMrs() == mrs_before);
  // Unregistered: a temporary registration, gone after the call.
  REQUIRE(c.RunOne(c.Op(0, 10, buffer.data(), false)).ok());
  CHECK(c.engine->counters().temporary_registrations == 1);
  CHECK(c.fake.LiveMrs() == mrs_before);
}

TEST_CASE("rdma transport: a batch of 256 ops") {
  Cluster c;
  const uint64_t each = 64 * 1024 + 3;
  std::vector<uint8_t> src = Random(256 * each, 99);
  std::vector<RdmaOp> ops;
  for (size_t i = 0; i < 256; ++i) {
    ops.push_back(c.Op(i * (each + 11), each, src.data() + i * each, true));
  }
  std::vector<RdmaOp*> ptrs;
  for (auto& op : ops) ptrs.push_back(&op);
  c.engine->Run(ptrs);
  for (size_t i = 0; i < 256; ++i) {
    REQUIRE(ops[i].result.ok());
    REQUIRE(std::memcmp(c.segment.data() + i * (each + 11), src.data() + i * each, each) == 0);
  }
  std::vector<uint8_t> dst(src.size(), 0);
  for (size_t i = 0; i < 256; ++i) {
    ops[i] = c.Op(i * (each + 11), each, dst.data() + i * each, false);
  }
  c.engine->Run(ptrs);
  for (auto& op : ops) REQUIRE(op.result.ok());
  CHECK(dst == src);
  CHECK(c.engine->counters().transfers == 512);
  CHECK(c.engine->counters().bytes == 512 * each);
}

TEST_CASE("rdma transport: a large object is sliced across queue pairs and NICs") {
  Cluster c;
  std::vector<uint8_t> src = Random(8 * kMiB, 5);
  REQUIRE(c.RunOne(c.Op(kMiB, src.size(), src.data(), true)).ok());
  auto qps = c.ClientQps();
  // 2 local NICs x 2 remote NICs x 2 queue pairs each.
  CHECK(qps.size() == 8);
  std::set<std::string> devices;
  size_t used = 0;
  uint64_t wrs = 0;
  for (auto& qp : qps) {
    if (qp.wrs_executed > 0) {
      used++;
      devices.insert(qp.device);
    }
    wrs += qp.wrs_executed;
    CHECK(qp.max_send_wr == 128);
  }
  CHECK(used == 8);
  CHECK(devices.size() == 2);
  CHECK(wrs == 8 * kMiB / (256 * 1024));  // slices of 256 KiB, none crossing chunks unaligned
  CHECK(c.target->queue_pairs() == 8);
  CHECK(std::equal(src.begin(), src.end(), c.segment.begin() + kMiB));
}

TEST_CASE("rdma transport: chains respect max_send_wr") {
  RdmaOptions options = Cluster::DefaultEngineOptions();
  options.max_send_wr = 4;
  options.qps_per_nic_pair = 1;
  options.devices = {"rxe0"};
  options.slice_bytes = 4096;
  RdmaOptions target_options = Cluster::DefaultTargetOptions();
  target_options.devices = {"rxe1"};
  Cluster c({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2")}, options,
            target_options);
  std::vector<uint8_t> src = Random(400 * 4096, 3);
  // The fake refuses a post that overflows the send queue, so success here
  // means the engine waited for room.
  REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), true)).ok());
  CHECK(c.engine->counters().slices_retried == 0);
  CHECK(std::equal(src.begin(), src.end(), c.segment.begin()));
  CHECK(c.fake.PostCalls() == 100);
}

TEST_CASE("rdma transport: a failed slice is retried on another queue pair") {
  Cluster c;
  std::vector<uint8_t> warm(16, 1);
  REQUIRE(c.RunOne(c.Op(0, warm.size(), warm.data(), true)).ok());
  c.fake.FailWrNumber(3, IBV_WC_REM_ACCESS_ERR);
  std::vector<uint8_t> src = Random(4 * kMiB, 11);
  RdmaOp op = c.Op(kChunk - 2 * kMiB, src.size(), src.data(), true);
  REQUIRE(c.RunOne(op).ok());
  CHECK(std::equal(src.begin(), src.end(), c.segment.begin() + op.offset));
  CHECK(c.engine->counters().slices_retried >= 1);
  // The queue pair that failed went to ERR and was destroyed, with the
  // store's half; the next use of that path rebuilds it.
  bool saw_error = false;
  for (auto& qp : c.fake.Qps()) {
    if (qp.state == IBV_QPS_ERR && qp.access == IBV_ACCESS_LOCAL_WRITE) {
      saw_error = true;
      for (int i = 0; i < 100 && c.fake.Qp(qp.qpn)->alive; ++i) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      CHECK_FALSE(c.fake.Qp(qp.qpn)->alive);
    }
  }
  CHECK(saw_error);
  std::vector<uint8_t> dst(src.size());
  REQUIRE(c.RunOne(c.Op(op.offset, dst.size(), dst.data(), false)).ok());
  CHECK(dst == src);
  CHECK(c.engine->counters().queue_pairs_rebuilt >= 1);
}

TEST_CASE("rdma transport: a refused post is retried on another queue pair") {
  Cluster c;
  c.fake.FailPostNumber(1, EIO);
  std::vector<uint8_t> src = Random(1000, 12);
  REQUIRE(c.RunOne(c.Op(5, src.size(), src.data(), true)).ok());
  CHECK(c.engine->counters().slices_retried == 1);
  CHECK(std::equal(src.begin(), src.end(), c.segment.begin() + 5));
}

TEST_CASE("rdma transport: a queue pair moved to error is rebuilt") {
  Cluster c;
  std::vector<uint8_t> src = Random(2 * kMiB, 21);  // 8 slices: every path
  REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), true)).ok());
  auto qps = c.ClientQps();
  REQUIRE(qps.size() == 8);
  c.fake.ForceQpError(qps[0].qpn);
  c.fake.ForceQpError(qps[5].qpn);

  std::vector<uint8_t> dst(src.size());
  REQUIRE(c.RunOne(c.Op(0, dst.size(), dst.data(), false)).ok());
  CHECK(dst == src);
  CHECK(c.engine->counters().slices_retried >= 2);
  // Later ops go over rebuilt queue pairs.
  for (int round = 0; round < 3; ++round) {
    std::vector<uint8_t> again = Random(2 * kMiB, 30 + round);
    REQUIRE(c.RunOne(c.Op(kChunk, again.size(), again.data(), true)).ok());
    REQUIRE(std::equal(again.begin(), again.end(), c.segment.begin() + kChunk));
  }
  CHECK(c.engine->counters().queue_pairs_rebuilt == 2);
  CHECK(c.engine->counters().queue_pairs_created == 10);
  for (int i = 0; i < 100 && c.ClientQps().size() != 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  CHECK(c.ClientQps().size() == 8);
  CHECK(c.target->queue_pairs() == 8);  // the broken ones' store halves released
}

TEST_CASE("rdma transport: an unreachable peer fails its ops only") {
  Cluster c;
  c.down.insert("store:2");
  std::vector<uint8_t> a = Random(3 * kMiB, 41);
  std::vector<uint8_t> b = Random(3 * kMiB, 42);
  RdmaOp good = c.Op(0, a.size(), a.data(), true, "store:1", "i1");
  RdmaOp bad = c.Op(0, b.size(), b.data(), true, "store:2", "i2");
  RdmaOp good2 = c.Op(kChunk, 100, a.data(), true, "store:1", "i1");
  std::vector<RdmaOp*> ops{&bad, &good, &good2};
  c.engine->Run(ops);
  CHECK(good.result.ok());
  CHECK(good2.result.ok());
  CHECK(bad.result.code() == ErrorCode::TRANSFER_FAIL);
  CHECK(bad.result.message().find("store:2") != std::string::npos);
  CHECK(bad.result.message().find("connection refused") != std::string::npos);
  CHECK(std::equal(a.begin(), a.end(), c.segment.begin()));
  // The connector ran once for the dead peer, not once per slice.
  CHECK(c.connects == 1 + 8);
}

TEST_CASE("rdma transport: a store whose link closed is not posted to") {
  Cluster c;
  std::vector<uint8_t> src = Random(2 * kMiB, 51);
  REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), true)).ok());
  // The store's process ended: its links closed and its port refuses. The
  // fake would still carry the bytes, so only the link check can fail this.
  c.links_dead = true;
  c.down.insert("store:1");
  Status st = c.RunOne(c.Op(0, src.size(), src.data(), false));
  CHECK(st.code() == ErrorCode::TRANSFER_FAIL);
  CHECK(st.message().find("connection refused") != std::string::npos);
  // A store back on that address gets new queue pairs.
  c.links_dead = false;
  c.down.clear();
  std::vector<uint8_t> dst(src.size());
  REQUIRE(c.RunOne(c.Op(0, dst.size(), dst.data(), false)).ok());
  CHECK(dst == src);
  CHECK(c.engine->counters().queue_pairs_created > 8);
}

TEST_CASE("rdma transport: no completion within io_timeout fails in bounded time") {
  RdmaOptions options = Cluster::DefaultEngineOptions();
  options.io_timeout = std::chrono::milliseconds(300);
  Cluster c({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2")}, options);
  c.fake.SetHold(true);
  std::vector<uint8_t> src = Random(2 * kMiB, 51);  // a slice on every path
  auto start = std::chrono::steady_clock::now();
  Status s = c.RunOne(c.Op(0, src.size(), src.data(), true));
  auto elapsed = std::chrono::steady_clock::now() - start;
  CHECK(s.code() == ErrorCode::TRANSFER_FAIL);
  CHECK(s.message().find("no completion within 300 ms") != std::string::npos);
  CHECK(s.message().find("store:1") != std::string::npos);
  CHECK(elapsed < std::chrono::seconds(3));
  c.fake.SetHold(false);
  // The stuck queue pairs were torn down; new ones work.
  REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), true)).ok());
  CHECK(std::equal(src.begin(), src.end(), c.segment.begin()));
  CHECK(c.engine->counters().queue_pairs_rebuilt >= 1);
}

TEST_CASE("rdma transport: a slice failing on both paths fails the op with the verbs status") {
  RdmaOptions options = Cluster::DefaultEngineOptions();
  options.qps_per_nic_pair = 1;
  options.devices = {"rxe0"};
  RdmaOptions target_options = Cluster::DefaultTargetOptions();
  target_options.devices = {"rxe1"};
  Cluster c({FakeRoceDevice("rxe0", "10.0.0.1"), FakeRoceDevice("rxe1", "10.0.0.2")}, options,
            target_options);
  std::vector<uint8_t> src = Random(100, 61);
  // One path only: a failure is retried on the rebuilt queue pair.
  c.fake.FailWrNumber(1, IBV_WC_REM_ACCESS_ERR);
  REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), true)).ok());
  CHECK(c.engine->counters().queue_pairs_rebuilt == 1);
  CHECK(c.engine->counters().slices_retried == 1);

  // Both tries fail: the post is refused, then the retry's work request
  // completes in error. The message names the store and ibv_wc_status_str.
  c.fake.FailPostNumber(1, EIO);
  c.fake.FailWrNumber(1, IBV_WC_RETRY_EXC_ERR);
  Status s = c.RunOne(c.Op(0, src.size(), src.data(), true));
  CHECK(s.code() == ErrorCode::TRANSFER_FAIL);
  CHECK(s.message().find("store:1") != std::string::npos);
  CHECK(s.message().find(ibv_wc_status_str(IBV_WC_RETRY_EXC_ERR)) != std::string::npos);
  CHECK(s.message().find("after a retry") != std::string::npos);

  // And the path recovers.
  REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), false)).ok());
}

TEST_CASE("rdma transport: out-of-range ops are refused before posting") {
  Cluster c;
  std::vector<uint8_t> buffer(64);
  const uint64_t size = c.info.chunk_bytes * c.info.rkeys.size();
  const uint64_t posts = c.fake.PostCalls();
  RdmaOp past = c.Op(size - 10, 11, buffer.data(), true);
  RdmaOp huge = c.Op(10, ~uint64_t{0} - 5, buffer.data(), false);
  RdmaOp far = c.Op(size + 1, 1, buffer.data(), false);
  RdmaOp no_remote = c.Op(0, 1, buffer.data(), true);
  no_remote.remote = nullptr;
  RdmaOp no_local = c.Op(0, 1, nullptr, true);
  RdmaSegmentInfo broken = c.info;
  broken.rkeys[1].pop_back();
  RdmaOp short_row = c.Op(0, 1, buffer.data(), true);
  short_row.remote = &broken;
  RdmaOp edge = c.Op(size - 10, 10, buffer.data(), true);
  RdmaOp empty = c.Op(size, 0, buffer.data(), true);
  std::vector<RdmaOp*> ops{&past, &huge, &far, &no_remote, &no_local, &short_row, &edge, &empty};
  c.engine->Run(ops);
  for (RdmaOp* op : {&past, &huge, &far, &no_remote, &no_local, &short_row}) {
    CHECK(op->result.code() == ErrorCode::INVALID_PARAMS);
  }
  CHECK(past.result.message().find("outside the segment") != std::string::npos);
  CHECK(edge.result.ok());
  CHECK(empty.result.ok());
  CHECK(c.fake.PostCalls() == posts + 1);  // only `edge`
}

TEST_CASE("rdma transport: Accept validates and Release destroys the link's queue pairs") {
  Cluster c;
  // A client-side queue pair to connect to, made by the engine.
  std::vector<uint8_t> data(8, 7);
  REQUIRE(c.RunOne(c.Op(0, 8, data.data(), true)).ok());
  const size_t engine_qps = c.target->queue_pairs();
  RdmaConnectRequest request;
  request.client.gid = FakeGid("::ffff:10.0.0.1");
  request.client.qpn = 0x777;
  request.client.psn = 1;
  request.client.mtu = IBV_MTU_4096;
  const size_t live = c.fake.LiveQps();
  REQUIRE(c.target->Accept(request, 1000).ok());
  request.store_nic = 1;
  REQUIRE(c.target->Accept(request, 1000).ok());
  REQUIRE(c.target->Accept(request, 1001).ok());
  CHECK(c.target->queue_pairs() == engine_qps + 3);
  CHECK(c.fake.LiveQps() == live + 3);
  c.target->Release(1000);
  CHECK(c.target->queue_pairs() == engine_qps + 1);
  CHECK(c.fake.LiveQps() == live + 1);
  c.target->Release(1000);  // idempotent
  c.target->Release(1001);
  CHECK(c.fake.LiveQps() == live);

  RdmaConnectRequest bad = request;
  bad.version = 2;
  CHECK(c.target->Accept(bad, 1002).code() == ErrorCode::INVALID_PARAMS);
  bad = request;
  bad.store_nic = 2;
  CHECK(c.target->Accept(bad, 1002).code() == ErrorCode::INVALID_PARAMS);
  bad = request;
  bad.client.mtu = 9;
  CHECK(c.target->Accept(bad, 1002).code() == ErrorCode::INVALID_PARAMS);
  CHECK(c.fake.LiveQps() == live);

  // Closing the engine drops its links: the store's halves go too.
  c.engine->Close();
  CHECK(c.target->queue_pairs() == 0);
  CHECK(c.fake.LiveQps() == 0);
  RdmaOp after = c.Op(0, 8, data.data(), true);
  CHECK(c.RunOne(after).code() == ErrorCode::TRANSFER_FAIL);
  c.engine->Close();  // idempotent
}

TEST_CASE("rdma transport: Run from many threads") {
  Cluster c;
  constexpr int kThreads = 4;
  constexpr uint64_t kEach = 300 * 1024;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int round = 0; round < 20; ++round) {
        std::vector<uint8_t> src = Random(kEach, t * 100 + round);
        const uint64_t offset = t * kChunk + kChunk - kEach / 2;  // straddles a chunk
        if (!c.RunOne(c.Op(offset, kEach, src.data(), true)).ok()) failures++;
        std::vector<uint8_t> dst(kEach);
        if (!c.RunOne(c.Op(offset, kEach, dst.data(), false)).ok() || dst != src) failures++;
      }
    });
  }
  for (auto& t : threads) t.join();
  CHECK(failures == 0);
  CHECK(c.engine->counters().transfers == kThreads * 20 * 2);
  CHECK(c.engine->counters().queue_pairs_created == 8);
}

TEST_CASE("rdma transport: teardown leaves no verbs objects") {
  auto fake_check = [](Cluster& c) {
    std::vector<uint8_t> src = Random(kMiB, 77);
    REQUIRE(c.RunOne(c.Op(0, src.size(), src.data(), true)).ok());
  };
  Cluster c;
  fake_check(c);
  c.engine.reset();
  c.target.reset();
  CHECK(c.fake.LiveQps() == 0);
  CHECK(c.fake.LiveMrs() == 0);
  CHECK(c.fake.LiveCqs() == 0);
  CHECK(c.fake.LiveContexts() == 0);
}

}  // namespace
}  // namespace kvcached
