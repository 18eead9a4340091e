// MasterService: `kvcached master` as a class — the MasterIndex behind the
// binary RPC server, the admin HTTP server (/health, /metrics, JSON queries
// of a key and of all segments, /get_all_segments for SGLang's readiness
// probe), the embedded metadata service, and the housekeeping timer (lease
// and put timeouts, eviction, owner liveness). After every request that
// changes objects it sends the affected segment owners their TableUpdate
// notifications, so each owner holds the table a restarted master rebuilds
// from.
//
// Threading: runs on the caller's io_context; the index is guarded by one
// mutex (index_mu_), held only for the in-memory work of one request.
#pragma once

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <list>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/asio/steady_timer.hpp>

#include "master/master_index.h"
#include "core/metrics.h"
#include "master/metadata_service.h"
#include "net/http_server.h"
#include "net/rpc_server.h"

namespace kvcached {

struct MasterServiceOptions {
  MasterOptions index;
  RpcServerOptions rpc;
  HttpServerOptions admin;
  std::optional<HttpServerOptions> meta;  // nullopt: --no-meta
  MetadataLimits meta_limits;
  std::chrono::milliseconds tick{100};
  std::string master_id;  // empty: a random one
  // HA (docs/ha.md): while may_serve() is false this master answers every
  // request UNAVAILABLE_IN_CURRENT_STATUS, sends no table update and calls
  // on_deposed(); null: a master that always serves.
  std::function<bool()> may_serve;
  std::function<void()> on_deposed;
  // PutEnd answers wait (up to 300 ms) for the owners' acknowledgements of
  // their table updates, so a master that dies right after answering
  // leaves the object in a table its successor rebuilds from. On with HA.
  bool await_owner_acks = false;
  // Lines added to /health (role, epoch); null: none.
  std::function<std::string()> health_detail;
};

class MasterService {
 public:
  MasterService(boost::asio::io_context& ioc, MasterServiceOptions options,
                MetricsRegistry& metrics);
  ~MasterService();

  // Binds every listener and starts the timer; the first failure is returned.
  Status Start();
  void BeginShutdown();
  size_t open_connections() const;

  const RpcServer& rpc() const { return rpc_; }
  const HttpServer& admin() const { return admin_; }
  const MetadataService* meta() const { return meta_.get(); }
  const std::string& master_id() const { return master_id_; }

  // The request handling itself (also what the fuzzer and tests drive).
  Status Dispatch(const RpcPeer& peer, MsgType type, std::string_view body, std::string& response,
                  uint16_t& flags);

 private:
  // Parts of Dispatch: the calls of a segment's owner (mount, remount,
  // unmount, ping), and a client's report of segments it could not reach.
  // A body that does not decode comes back as the error.
  Status SegmentCall(const Caller& caller, MsgType type, std::string_view body, std::string& out,
                     uint64_t& failures, int64_t now);
  // Removes the caller's tenant's objects whose keys match a regular
  // expression; the keys are tested in slices outside the index lock.
  Status RemoveByRegex(const RpcPeer& peer, const Caller& caller, std::string_view body,
                       std::string& out, uint16_t& flags);
  Status ReportUnreachable(const Caller& caller, std::string_view body, std::string& out,
                           uint64_t& failures);
  struct OpMetrics;
  // One batched per-key request: decodes `body` as Req, puts its keys in
  // the peer's tenant's key space, runs `call` under the index lock, counts
  // keys and failed items, encodes the answer.
  template <typename Req, typename Call>
  Status Batched(const RpcPeer& peer, std::string_view body, std::string& out, uint16_t& flags,
                 uint64_t& failures, Call call);
  // CreateTask, TaskStart, TaskEnd, QueryTask (replica tasks).
  Status TaskCall(const RpcPeer& peer, const Caller& caller, MsgType type, std::string_view body,
                  std::string& out, uint64_t& failures, int64_t now);
  // False (with `out` the refusal) when this master may no longer serve.
  bool Serving(uint16_t& flags, std::string& out);
  void HandleAdmin(const HttpRequest& req, const HttpRequestContext& ctx, HttpResponse& res);
  bool ServeMooncakeAdmin(std::string_view path, std::string_view target, HttpResponse& res);
  // `prefix`: the tenant's (core/tenant.h).
  void BatchQueryKeys(const std::string& prefix, const std::optional<std::string>& list,
                      HttpResponse& res);
  std::string SummaryLine();
  void OnTick();
  void FlushTableUpdates();
  // The same with index_mu_ held; `sent`, when given, gets the connection
  // and sequence number of each update sent.
  void FlushTableUpdatesLocked(std::vector<RpcServer::Sequenced>* sent);
  // A PutEnd's answer waits for its owners' TableUpdateAcks (or
  // kAckWait), so a master that dies after answering leaves the object in
  // a table the next master rebuilds from (docs/master.md).
  void AnswerAfterAcks(std::vector<RpcServer::Sequenced> need, uint16_t flags, std::string body);
  void OnTableUpdateAck(uint64_t connection_id, uint64_t seq);
  // Answers the waiters whose acks all came, and (`expire`) those past kAckWait.
  void ReleaseAckWaiters(bool expire);
  void RenderSegmentMetrics(std::string& out);
  static int64_t NowMs();
  // Disk tier (docs/disk-tier.md): a read of objects on disk waits for their
  // owners to load them, and a put that found no room while demotions were
  // under way waits for them to free ranges, each at most TierWait().
  struct TierWaiter {
    RpcServer::DeferredReply reply;
    std::chrono::steady_clock::time_point since, deadline;
    ReplicaListResponse res;
    std::vector<size_t> waiting;  // items still waiting
    bool put = false;
    // A read: the key of each item.
    std::vector<std::string> keys;
    // A put: what to try again for the items still waiting.
    Caller caller;
    PutStartRequest req;
    bool upsert = false;
  };
  std::chrono::milliseconds TierWait() const;
  // index_mu_ held: moves the waiters that are done (or, `expire`, out of
  // time) to `ready`, retrying waiting puts first.
  void SettleTierWaitersLocked(bool expire, int64_t now_ms, std::list<TierWaiter>& ready);
  void AnswerTierWaiters(std::list<TierWaiter>& ready);

  boost::asio::io_context& ioc_;
  MasterServiceOptions options_;
  MetricsRegistry& metrics_;
  std::string master_id_;
  std::mutex index_mu_;  // guards index_
  MasterIndex index_;
  std::unique_ptr<OpMetrics> ops_;
  RpcServer rpc_;
  HttpServer admin_;
  std::unique_ptr<MetadataService> meta_;
  boost::asio::steady_timer timer_;
  std::atomic<bool> stopping_{false};
  uint64_t logged_evictions_ = 0;  // timer handler only
  struct AckWaiter {
    std::vector<RpcServer::Sequenced> need;
    RpcServer::DeferredReply reply;
    uint16_t flags = 0;
    std::string body;
    std::chrono::steady_clock::time_point since;
  };
  std::mutex acks_mu_;  // guards acked_ and waiters_
  std::unordered_map<uint64_t, uint64_t> acked_;  // connection id -> highest seq acknowledged
  std::list<AckWaiter> waiters_;
  Counter* ack_timeouts_ = nullptr;
  Histogram* ack_wait_ = nullptr;
  std::list<TierWaiter> tier_waiters_;  // guarded by index_mu_
  Histogram* tier_wait_ = nullptr;
};

}  // namespace kvcached
