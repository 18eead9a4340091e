// RpcClient: a blocking client of the master's RPC protocol for stores, the
// client library, the benchmark and tests. Every wait has a deadline (a
// call never hangs past `call_timeout`); a broken connection is re-opened
// on the next call with exponential backoff (a read-only request that finds
// its idle connection stale is sent once more on a fresh one), re-resolving the master's
// address through `resolve_address` (the leader lookup of an HA cluster).
// A master that answers a request with UNAVAILABLE_IN_CURRENT_STATUS as a
// whole (a deposed leader, docs/ha.md) did not apply it: with a resolver,
// the connection is dropped and the request sent once more to the master
// the resolver names then. Requests may be pipelined (CallMany). TableUpdate notifications
// that arrive while waiting are handed to `on_table_update` on the calling
// thread. Thread-safe: calls are serialised by an internal mutex.
#pragma once

#include <chrono>
#include <functional>
#include <mutex>
#include <string>
#include <vector>

#include "core/rpc_protocol.h"
#include "core/status.h"

namespace kvcached {

struct RpcClientOptions {
  std::string address;  // "host:port" of the master
  HelloRequest hello;   // identity and token sent on every (re)connect
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds call_timeout{5000};
  int connect_attempts = 4;  // per call that finds the connection down
  std::chrono::milliseconds backoff_initial{50};
  std::chrono::milliseconds backoff_max{2000};
  // When above 0, a call that finds no master keeps trying to connect (at
  // least every 200 ms) until this much time has passed, beyond
  // connect_attempts: a client of an HA cluster waits out an election
  // (net/leader_lookup.h) instead of failing.
  std::chrono::milliseconds reconnect_window{0};
  // Called before each connect; returns the address to use (an error fails
  // the connect attempt like a refused connection). Default: `address`.
  // net/leader_lookup.h sets it for "etcd://" addresses.
  std::function<Result<std::string>()> resolve_address;
  std::function<void(const TableUpdate&)> on_table_update;
  // Acknowledge each numbered TableUpdate (TableUpdateAck) once
  // on_table_update returned: a segment owner does, so the master answers a
  // PutEnd only once the owner's table has the object.
  bool ack_table_updates = false;
};

class RpcClient {
 public:
  explicit RpcClient(RpcClientOptions options);
  ~RpcClient();
  RpcClient(const RpcClient&) = delete;
  RpcClient& operator=(const RpcClient&) = delete;

  // Connects and says Hello. RPC_FAIL (cannot connect), RPC_TIMEOUT,
  // INVALID_VERSION or ILLEGAL_CLIENT (refused Hello) with the reason.
  Status Connect();
  bool connected() const;
  // The last successful Hello's answer (master id, lease TTL).
  HelloResponse hello() const;
  // Connections opened so far (each Hello'd one counts): a change means
  // notifications sent on the old connection may have been lost.
  uint64_t connections() const;

  // One request, one response. A whole-request error from the master comes
  // back as its ErrorCode; transport trouble as RPC_FAIL or RPC_TIMEOUT
  // (the connection is then dropped and re-opened by the next call).
  template <typename Req, typename Resp>
  Status Call(MsgType type, const Req& req, Resp& resp) {
    std::vector<std::string> bodies;
    Status st = RoundTrip(type, {EncodeBody(req)}, bodies);
    if (!st.ok()) return st;
    return DecodeBody(bodies[0], resp);
  }

  // Sends every request before reading any response (one round trip for
  // the lot); responses come back in request order.
  template <typename Req, typename Resp>
  Status CallMany(MsgType type, const std::vector<Req>& reqs, std::vector<Resp>& resps) {
    std::vector<std::string> in;
    in.reserve(reqs.size());
    for (const Req& r : reqs) in.push_back(EncodeBody(r));
    std::vector<std::string> bodies;
    Status st = RoundTrip(type, std::move(in), bodies);
    if (!st.ok()) return st;
    resps.resize(bodies.size());
    for (size_t i = 0; i < bodies.size(); ++i) {
      if (Status d = DecodeBody(bodies[i], resps[i]); !d.ok()) return d;
    }
    return Status::Ok();
  }

  // A one-way request (IsOneWay): sent, never answered. Fails only when it
  // could not be sent.
  template <typename Req>
  Status Send(MsgType type, const Req& req) {
    return SendOneWay(type, EncodeBody(req));
  }

  // The same with encoded bodies: every body sent, then every answer's
  // body read, in order; and a one-way request's body sent.
  // `sent`, when given, gets the time the bodies left (after any reconnect
  // and resend): leases the answers grant start no earlier.
  Status RoundTrip(MsgType type, std::vector<std::string> bodies, std::vector<std::string>& out,
                   std::chrono::steady_clock::time_point* sent = nullptr);
  Status SendOneWay(MsgType type, const std::string& body);

  // Waits up to `wait` for notifications and dispatches them; OK when the
  // wait ended without a transport error. A readable `wake_fd` (>= 0) ends
  // the wait early (the caller drains it).
  Status PollNotifications(std::chrono::milliseconds wait, int wake_fd = -1);

  void Close();

 private:
  using Clock = std::chrono::steady_clock;
  using Deadline = Clock::time_point;
  Status RoundTripLocked(MsgType type, const std::vector<std::string>& bodies,
                         std::vector<std::string>& out, Clock::time_point* sent);
  Status EnsureConnectedLocked();
  Status ConnectLocked();
  std::string PeerName() const;
  Status ReadOneFrame(FrameHeader& head, std::string& body, Deadline deadline);
  // Reads frames until one that is not a notification, dispatching those.
  Status ReadFrame(FrameHeader& head, std::string& body, Deadline deadline);
  void Dispatch(const FrameHeader& head, const std::string& body);
  void CloseLocked();

  const RpcClientOptions options_;
  mutable std::mutex mu_;  // guards everything below
  int fd_ = -1;
  uint64_t next_request_id_ = 1;
  uint64_t connections_ = 0;
  HelloResponse hello_;
  std::string connected_to_;  // the address of the last connect attempt
};

}  // namespace kvcached
