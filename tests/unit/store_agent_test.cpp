// StoreAgent against a scripted master: a real RpcServer on a loopback port
// whose dispatcher plays the master's side of mount, ping and remount, and
// sends TableUpdates at the moments a real master can.
#include <doctest/doctest.h>

#include <chrono>
#include <condition_variable>
#include <mutex>
#include <thread>
#include <vector>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "core/metrics.h"
#include "core/rpc_protocol.h"
#include "net/rpc_server.h"
#include "store/store_agent.h"

namespace kvcached {
namespace {

constexpr auto kWait = std::chrono::seconds(30);  // a bound, not a pace: tests end on events

ObjectEntry Entry(const std::string& key, uint64_t version) {
  return ObjectEntry{key, 4096 * version, 4096, 0x1234 + version, version};
}

std::string AddFrame(const std::string& segment, const ObjectEntry& e) {
  TableUpdate u{segment, {{static_cast<uint8_t>(TableOp::kAdd), e}}};
  return EncodeFrame(MsgType::kTableUpdate, kFlagNotification, 0, u);
}

std::string RemoveFrame(const std::string& segment, const ObjectEntry& e) {
  TableUpdate u{segment, {{static_cast<uint8_t>(TableOp::kRemove), e}}};
  return EncodeFrame(MsgType::kTableUpdate, kFlagNotification, 0, u);
}

// The master's side. The first ping asks for a remount, later ones do not;
// `after_first_pong` frames follow that answer on the connection, so they
// are on their way before the agent reads its table for the remount and
// it reads them during the remount call (the answer is written before the
// frames Notify queues from inside a call).
class ScriptedMaster {
 public:
  explicit ScriptedMaster(std::vector<std::string> after_first_pong = {})
      : after_first_pong_(std::move(after_first_pong)) {
    RpcServerOptions o;
    o.master_id = "scripted";
    server_ = std::make_unique<RpcServer>(
        ioc_, o,
        [this](const RpcPeer& peer, MsgType type, std::string_view body, std::string& out,
               uint16_t&) { return Dispatch(peer, type, body, out); },
        metrics_);
    REQUIRE(server_->Start().ok());
    io_ = std::thread([this] { ioc_.run(); });
  }
  ~ScriptedMaster() {
    server_->BeginShutdown();
    work_.reset();
    ioc_.stop();
    io_.join();
  }

  std::string address() const { return server_->address(); }
  RpcServer& server() { return *server_; }

  // The tables of the remounts so far, once there are at least `n`.
  std::vector<RemountRequest> AwaitRemounts(size_t n) {
    std::unique_lock<std::mutex> lock(mu_);
    bool got = cv_.wait_for(lock, kWait, [&] { return remounts_.size() >= n; });
    REQUIRE_MESSAGE(got, "the agent sent ", remounts_.size(), " remount(s), expected ", n);
    return remounts_;
  }

 private:
  Status Dispatch(const RpcPeer& peer, MsgType type, std::string_view body, std::string& out) {
    switch (type) {
      case MsgType::kPing: {
        PingResponse r;
        r.master_id = "scripted";
        r.client_ttl_ms = 600'000;
        r.remount_needed = pings_++ == 0;
        if (r.remount_needed) {
          for (std::string& f : after_first_pong_) CHECK(server_->Notify(peer.client_id, f));
        }
        out = EncodeBody(r);
        return Status::Ok();
      }
      case MsgType::kRemountSegment: {
        RemountRequest req;
        if (Status st = DecodeBody(body, req); !st.ok()) return st;
        {
          std::lock_guard<std::mutex> lock(mu_);
          remounts_.push_back(std::move(req));
        }
        cv_.notify_all();
        out = EncodeBody(StatusResponse{});
        return Status::Ok();
      }
      default:  // mount, unmount
        out = EncodeBody(StatusResponse{});
        return Status::Ok();
    }
  }

  std::vector<std::string> after_first_pong_;
  MetricsRegistry metrics_;  // outlives the io_context: handlers it destroys count in it
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::unique_ptr<RpcServer> server_;
  std::thread io_;
  int pings_ = 0;  // I/O thread only
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<RemountRequest> remounts_;
};

StoreAgentOptions AgentOptions(const std::string& address) {
  StoreAgentOptions o;
  o.rpc.address = address;
  o.rpc.hello.role = static_cast<uint8_t>(PeerRole::kStore);
  o.rpc.hello.client_id = "store-under-test";
  o.rpc.hello.host_id = "host-a";
  o.segment = SegmentInfo{"seg-1", 0, 1 << 20, "tcp://127.0.0.1:1"};
  o.ping_interval = std::chrono::milliseconds(20);
  return o;
}

bool Holds(const std::vector<ObjectEntry>& table, const ObjectEntry& e) {
  for (const ObjectEntry& t : table) {
    if (t.key == e.key && t.version == e.version) return true;
  }
  return false;
}

TEST_CASE("store agent: an update that arrives during a remount is sent back in a second one") {
  // A master that had expired the owner rebuilds the segment from the table
  // sent, while an add it sent for the previous mount is still on the way
  // (the store was stopped when it came): the agent applies it after reading
  // its table. Unless the table goes back, the master never learns of that
  // record, and a later master would take it back from the table.
  const ObjectEntry stale = Entry("k", 5);
  ScriptedMaster master({AddFrame("seg-1", stale)});
  StoreAgent agent(AgentOptions(master.address()));
  REQUIRE(agent.Start().ok());
  std::vector<RemountRequest> remounts = master.AwaitRemounts(2);
  CHECK_FALSE(Holds(remounts[0].objects, stale));
  CHECK(Holds(remounts[1].objects, stale));  // the master can now reconcile it away
  CHECK(agent.Stop().ok());
}

TEST_CASE("store agent: a remount during which nothing arrives is sent once") {
  // The control for the case above: the second remount is caused by the
  // update, so with the update arriving after the answer there is none, and
  // the table keeps the update.
  const ObjectEntry fresh = Entry("k", 7);
  ScriptedMaster master;
  StoreAgent agent(AgentOptions(master.address()));
  REQUIRE(agent.Start().ok());
  REQUIRE(master.AwaitRemounts(1).size() == 1);
  // The remount has been answered once the agent counts it; only then is
  // the add sent, as a master's next change would be.
  for (auto until = std::chrono::steady_clock::now() + kWait; agent.remounts() < 1;) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::yield();
  }
  REQUIRE(master.server().Notify("store-under-test", AddFrame("seg-1", fresh)));
  for (auto until = std::chrono::steady_clock::now() + kWait; !Holds(agent.Table(), fresh);) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::yield();
  }
  // A removal of the record follows it on the same connection; once it is
  // applied every frame before it was read, and no second remount was sent.
  REQUIRE(master.server().Notify("store-under-test", RemoveFrame("seg-1", fresh)));
  for (auto until = std::chrono::steady_clock::now() + kWait; Holds(agent.Table(), fresh);) {
    REQUIRE(std::chrono::steady_clock::now() < until);
    std::this_thread::yield();
  }
  CHECK(agent.remounts() == 1);
  CHECK(master.AwaitRemounts(1).size() == 1);
  CHECK(agent.Stop().ok());
}

}  // namespace
}  // namespace kvcached
