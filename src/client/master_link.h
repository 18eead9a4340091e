// MasterLink: the client's link to the master — one request body out, its
// answer's body back — so the put and get stages can run against the real
// master over TCP (RpcMasterLink) or, in tests, against an in-process
// master with faults injected (tests/unit/fake_master_link.h).
//
// Errors: a whole-request error from the master comes back as its
// ErrorCode; transport trouble as RPC_FAIL or RPC_TIMEOUT. Thread-safe.
#pragma once

#include <algorithm>
#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "core/rpc_protocol.h"
#include "core/status.h"

namespace kvcached {

class RpcClient;
struct RpcClientOptions;

class MasterLink {
 public:
  virtual ~MasterLink() = default;
  // One request of `type` (not one-way) and its answer.
  virtual Status Call(MsgType type, std::string request, std::string& answer) = 0;
  // A one-way request (IsOneWay(type)): sent, never answered.
  virtual Status Send(MsgType type, std::string request) = 0;
  virtual void Close() {}
  // When the request of the calling thread's last Call left, after any wait
  // for a master (an election, a reconnect); the epoch when not known. A
  // lease in the answer starts no earlier.
  virtual std::chrono::steady_clock::time_point LastSent() const { return {}; }

  // Typed forms over the protocol's structs (core/rpc_protocol.h).
  template <typename Req, typename Resp>
  Status Call(MsgType type, const Req& req, Resp& resp) {
    std::string answer;
    if (Status st = Call(type, EncodeBody(req), answer); !st.ok()) return st;
    return DecodeBody(answer, resp);
  }
  template <typename Req>
  Status Send(MsgType type, const Req& req) {
    return Send(type, EncodeBody(req));
  }
};

// How long the calling thread's last Call on `link`, begun at `started`,
// waited (for a leader, a reconnect) before its request left; zero when the
// link does not know. A lease in its answer starts that much later.
inline std::chrono::steady_clock::duration WaitedBeforeSend(
    const MasterLink& link, std::chrono::steady_clock::time_point started) {
  auto sent = link.LastSent();
  return sent > started ? sent - started : std::chrono::steady_clock::duration::zero();
}

// The real link: `connections` RpcClients to one master. Each calling
// thread keeps to one connection, so its requests reach the master in the
// order it made them (a one-way ReleaseLeases is applied before the
// thread's next call); threads are spread over the connections.
class RpcMasterLink : public MasterLink {
 public:
  RpcMasterLink(const RpcClientOptions& options, size_t connections);
  ~RpcMasterLink() override;
  // Connects the first connection, so a bad address or token fails Open.
  Status Connect();
  Status Call(MsgType type, std::string request, std::string& answer) override;
  Status Send(MsgType type, std::string request) override;
  void Close() override;
  std::chrono::steady_clock::time_point LastSent() const override;
  using MasterLink::Call;
  using MasterLink::Send;

 private:
  RpcClient& Mine();
  std::vector<std::unique_ptr<RpcClient>> rpc_;
};

// Runs fn(begin, end) over [0, n) in runs of at most kMaxBatchKeys, the
// protocol's batch limit, until one returns an error, which it returns.
template <typename Fn>
Status ForBatchChunks(size_t n, Fn fn) {
  for (size_t at = 0; at < n; at += kMaxBatchKeys) {
    if (Status st = fn(at, std::min(n, at + kMaxBatchKeys)); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace kvcached
