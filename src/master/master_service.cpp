#include "master/master_service.h"

#include <array>
#include <optional>

#include <spdlog/spdlog.h>
#include <boost/beast/http.hpp>
#include <nlohmann/json.hpp>

#include "core/compiled_regex.h"
#include "core/identity.h"
#include "core/printable.h"
#include "core/tenant.h"
#include "core/url_query.h"

namespace kvcached {
namespace {

namespace http = boost::beast::http;

constexpr size_t kOpSlots = 23;  // MsgType values are below this (TableUpdateAck is not counted)
// How long a PutEnd answer waits for its owners' acknowledgements.
constexpr std::chrono::milliseconds kAckWait{300};

bool IsObjectOp(MsgType t) {
  return t == MsgType::kPutEnd || t == MsgType::kRemove || t == MsgType::kRemoveAll ||
         t == MsgType::kUnmountSegment || t == MsgType::kPutStart ||
         t == MsgType::kRemountSegment || t == MsgType::kUpsertStart ||
         t == MsgType::kRemoveByRegex || t == MsgType::kTaskStart || t == MsgType::kTaskEnd ||
         t == MsgType::kCreateTask ||
         t == MsgType::kGetReplicaList;  // loads from disk tiers, evictions to make room
}

int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }

// Keys a batched request names, for kvcached_master_request_keys_total.
size_t KeyCount(const KeysRequest& r) { return r.keys.size(); }
size_t KeyCount(const RemoveRequest& r) { return r.keys.size(); }
size_t KeyCount(const PutStartRequest& r) { return r.items.size(); }
size_t KeyCount(const PutEndRequest& r) { return r.items.size(); }

// The keys of a request in the caller's tenant's key space (core/tenant.h):
// a tenant's keys get its prefix; a key of the default tenant may not begin
// with NUL, so it can never name another tenant's object. The client
// library refuses such keys itself, one by one; here a request holding one
// is refused whole.
Status ScopeKey(const std::string& prefix, size_t i, std::string& key) {
  if (prefix.empty()) {
    if (IsReservedKey(key)) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "key " + std::to_string(i) +
                        " of the request begins with a NUL byte; such keys are reserved for "
                        "tenants' key spaces");
    }
    return Status::Ok();
  }
  key.insert(0, prefix);
  return Status::Ok();
}
Status ScopeKeys(const std::string& prefix, std::vector<std::string>& keys) {
  for (size_t i = 0; i < keys.size(); ++i) {
    if (Status st = ScopeKey(prefix, i, keys[i]); !st.ok()) return st;
  }
  return Status::Ok();
}
Status ScopeKeys(const std::string& prefix, KeysRequest& r) { return ScopeKeys(prefix, r.keys); }
Status ScopeKeys(const std::string& prefix, RemoveRequest& r) { return ScopeKeys(prefix, r.keys); }
template <typename Req>  // PutStartRequest, PutEndRequest, ReleaseLeasesRequest
Status ScopeKeys(const std::string& prefix, Req& r) {
  for (size_t i = 0; i < r.items.size(); ++i) {
    if (Status st = ScopeKey(prefix, i, r.items[i].key); !st.ok()) return st;
  }
  return Status::Ok();
}

// Items answered with an error, for kvcached_master_request_failures_total.
uint64_t Failures(const CodesResponse& r) {
  uint64_t n = 0;
  for (int32_t c : r.codes) n += c != 0;
  return n;
}
template <typename Answer>
uint64_t Failures(const Answer& r) {  // ReplicaListResponse, SizesResponse
  uint64_t n = 0;
  for (const auto& item : r.items) n += item.code != 0;
  return n;
}

}  // namespace

// Per-operation series, created once so the request path takes no lock.
struct MasterService::OpMetrics {
  std::array<Counter*, kOpSlots> requests{};
  std::array<Counter*, kOpSlots> failures{};  // items answered with an error
  std::array<Histogram*, kOpSlots> latency{};
  Counter* keys{};  // keys named in requests
};

MasterService::MasterService(boost::asio::io_context& ioc, MasterServiceOptions options,
                             MetricsRegistry& metrics)
    : ioc_(ioc),
      options_(std::move(options)),
      metrics_(metrics),
      master_id_(options_.master_id.empty() ? RandomId("", 32) : options_.master_id),
      index_([&] {
        // Versions follow the wall clock from the master's start, so a
        // restarted master's are above its predecessor's.
        MasterOptions o = options_.index;
        if (o.version_base_us == 0) {
          o.version_base_us =
              static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
        }
        return o;
      }()),
      ops_(std::make_unique<OpMetrics>()),
      rpc_(
          ioc,
          [&] {
            RpcServerOptions o = options_.rpc;
            o.master_id = master_id_;
            o.lease_ttl_ms = static_cast<uint64_t>(options_.index.lease_ttl_ms);
            // A peer claiming the client id of a segment's owner must hold
            // its owner proof (docs/master.md, "Segment owners").
            o.admit = [this](const std::string& client_id, uint64_t proof) {
              std::lock_guard<std::mutex> lock(index_mu_);
              Status st = index_.AdmitOwner(client_id, proof);
              return st.ok() ? std::string() : st.message();
            };
            return o;
          }(),
          [this](const RpcPeer& peer, MsgType type, std::string_view body, std::string& out,
                 uint16_t& flags) { return Dispatch(peer, type, body, out, flags); },
          metrics),
      admin_(
          ioc, options_.admin,
          [this](const HttpRequest& req, const HttpRequestContext& ctx, HttpResponse& res) {
            HandleAdmin(req, ctx, res);
          },
          metrics),
      timer_(ioc) {
  if (options_.meta) {
    meta_ = std::make_unique<MetadataService>(ioc, *options_.meta, options_.meta_limits, metrics);
  }
  for (uint16_t t = 1; t < kOpSlots; ++t) {
    MsgType type = static_cast<MsgType>(t);
    const char* name = MsgTypeName(type);
    // Hello is answered by the RPC server; TableUpdate is never a request.
    if (std::string_view(name) == "Unknown" || type == MsgType::kHello ||
        type == MsgType::kTableUpdate) {
      continue;
    }
    ops_->requests[t] = &metrics.GetCounter("kvcached_master_requests_total",
                                            "RPC requests by operation", {{"op", name}});
    ops_->failures[t] = &metrics.GetCounter(
        "kvcached_master_request_failures_total",
        "Items answered with an error, by operation (not-found included)", {{"op", name}});
    ops_->latency[t] = &metrics.GetHistogram("kvcached_master_rpc_duration_seconds",
                                             "Time the master spent on one RPC request",
                                             LatencyBucketsSeconds(), {{"op", name}});
  }
  ops_->keys = &metrics.GetCounter("kvcached_master_request_keys_total",
                                   "Keys named in RPC requests (batches count each key)");
  metrics.AddGaugeCallback("kvcached_master_keys", "Objects in the index (pending included)", {},
                           [this] {
                             std::lock_guard<std::mutex> lock(index_mu_);
                             return static_cast<double>(index_.object_count());
                           });
  metrics.AddGaugeCallback("kvcached_master_active_clients",
                           "Clients the master tracks for liveness (those that mounted or pinged "
                           "within --client-ttl)",
                           {}, [this] {
                             std::lock_guard<std::mutex> lock(index_mu_);
                             return static_cast<double>(index_.client_count());
                           });
  metrics.AddCollector([this](std::string& out) { RenderSegmentMetrics(out); });
  ack_timeouts_ = &metrics.GetCounter(
      "kvcached_master_table_ack_timeouts_total",
      "PutEnd answers sent without every owner's acknowledgement of its table update (an owner "
      "slower than 300 ms or gone)");
  ack_wait_ = &metrics.GetHistogram("kvcached_master_table_ack_wait_seconds",
                                    "How long a PutEnd answer waited for its owners' "
                                    "acknowledgements",
                                    LatencyBucketsSeconds());
  tier_wait_ = &metrics.GetHistogram(
      "kvcached_master_tier_wait_seconds",
      "How long a get waited for objects to be loaded from disk tiers, or a put for demotions "
      "to free room",
      LatencyBucketsSeconds());
}

MasterService::~MasterService() { BeginShutdown(); }

int64_t MasterService::NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

Status MasterService::Start() {
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    index_.Started(NowMs());  // owners have not remounted yet
  }
  if (Status st = rpc_.Start(); !st.ok()) return st;
  if (Status st = admin_.Start(); !st.ok()) return st;
  if (meta_) {
    if (Status st = meta_->Start(); !st.ok()) return st;
  }
  OnTick();
  return Status::Ok();
}

void MasterService::BeginShutdown() {
  if (stopping_.exchange(true)) return;
  ReleaseAckWaiters(/*expire=*/true);  // stopping: every waiter is answered
  {
    std::list<TierWaiter> ready;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      ready.splice(ready.end(), tier_waiters_);
    }
    AnswerTierWaiters(ready);
  }
  timer_.cancel();
  rpc_.BeginShutdown();
  admin_.BeginShutdown();
  if (meta_) meta_->BeginShutdown();
}

size_t MasterService::open_connections() const {
  return rpc_.open_connections() + admin_.open_connections() +
         (meta_ ? meta_->open_connections() : 0);
}

void MasterService::OnTick() {
  if (stopping_) return;
  int64_t now = NowMs();
  std::vector<std::pair<std::string, size_t>> expired;
  uint64_t evicted_before = logged_evictions_;
  uint64_t evicted_after = 0;
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    expired = index_.ExpireClients(now);
    index_.Tick(now);
    evicted_after = index_.counters().evicted_objects;
  }
  logged_evictions_ = evicted_after;
  for (const auto& [client, segments] : expired) {
    if (segments == 0) continue;  // a reader that stopped pinging owns nothing
    spdlog::warn(
        "client '{}' sent no ping for {} ms (--client-ttl): its {} segment(s) are "
        "unmounted and their objects dropped",
        Printable(client), options_.index.client_ttl_ms, segments);
  }
  if (evicted_after > evicted_before) {
    spdlog::info(
        "evicted {} object(s) since the last tick (high watermark, a put that found "
        "no space, or doomed objects whose lease ended)",
        evicted_after - evicted_before);
  }
  {
    std::list<TierWaiter> ready;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      SettleTierWaitersLocked(/*expire=*/true, NowMs(), ready);
      FlushTableUpdatesLocked(nullptr);
    }
    AnswerTierWaiters(ready);
  }
  FlushTableUpdates();
  ReleaseAckWaiters(/*expire=*/true);
  timer_.expires_after(options_.tick);
  timer_.async_wait([this](boost::system::error_code ec) {
    if (!ec) OnTick();
  });
}

void MasterService::FlushTableUpdates() {
  std::lock_guard<std::mutex> lock(index_mu_);
  FlushTableUpdatesLocked(nullptr);
}

void MasterService::FlushTableUpdatesLocked(std::vector<RpcServer::Sequenced>* sent) {
  // Handed to the owners' connections while the index lock is held, so two
  // I/O threads cannot deliver one owner's changes out of order (sending
  // only queues the frame on the connection's strand; it never blocks).
  if (options_.may_serve && !options_.may_serve()) return;  // deposed: owners hear nothing more
  for (auto& [owner, update] : index_.TakeTableUpdates()) {
    size_t n = update.changes.size();
    RpcServer::Sequenced s = rpc_.NotifySequenced(owner, MsgType::kTableUpdate, EncodeBody(update));
    if (s.connection_id == 0) {
      spdlog::warn("owner '{}' of segment '{}' is not connected: {} table change(s) not delivered",
                   Printable(owner), Printable(update.segment), n);
    } else if (sent) {
      sent->push_back(s);
    }
  }
}

void MasterService::AnswerAfterAcks(std::vector<RpcServer::Sequenced> need, uint16_t flags,
                                    std::string body) {
  AckWaiter w;
  w.need = std::move(need);
  w.reply = RpcServer::Defer();
  w.flags = flags;
  w.body = std::move(body);
  w.since = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(acks_mu_);
    waiters_.push_back(std::move(w));
  }
  ReleaseAckWaiters(/*expire=*/false);  // the acks may be in already
}

void MasterService::OnTableUpdateAck(uint64_t connection_id, uint64_t seq) {
  {
    std::lock_guard<std::mutex> lock(acks_mu_);
    if (waiters_.empty()) return;  // nothing waits: no need to remember
    uint64_t& acked = acked_[connection_id];
    acked = std::max(acked, seq);
  }
  ReleaseAckWaiters(/*expire=*/false);
}

void MasterService::ReleaseAckWaiters(bool expire) {
  std::vector<AckWaiter> ready;
  auto now = std::chrono::steady_clock::now();
  {
    std::lock_guard<std::mutex> lock(acks_mu_);
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      bool done = std::all_of(it->need.begin(), it->need.end(), [&](const RpcServer::Sequenced& s) {
        auto a = acked_.find(s.connection_id);
        return a != acked_.end() && a->second >= s.seq;
      });
      bool late = expire && now - it->since >= kAckWait;
      if (done || late || stopping_) {
        if (!done) ack_timeouts_->Inc();
        ready.push_back(std::move(*it));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    // Only waiters read acked_; the next waiter needs a later ack anyway.
    if (waiters_.empty()) acked_.clear();
  }
  for (AckWaiter& w : ready) {
    ack_wait_->ObserveSeconds(std::chrono::duration<double>(now - w.since).count());
    // The fence applies to a late answer as to any other.
    std::string body = std::move(w.body);
    uint16_t flags = w.flags;
    (void)Serving(flags, body);
    w.reply.Reply(flags, std::move(body));
  }
}

namespace {

// Item `from` of `src` becomes item `to` of `dst`, its segments named in
// dst's list.
void MoveItem(const ReplicaListResponse& src, size_t from, ReplicaListResponse& dst, size_t to) {
  ReplicaItem item = src.items[from];
  for (Replica& r : item.replicas) {
    const SegmentRef& ref = src.segments[r.segment];
    auto it = std::find_if(dst.segments.begin(), dst.segments.end(),
                           [&](const SegmentRef& d) { return d.name == ref.name; });
    if (it == dst.segments.end()) it = dst.segments.insert(dst.segments.end(), ref);
    r.segment = static_cast<uint32_t>(it - dst.segments.begin());
  }
  dst.items[to] = std::move(item);
}

}  // namespace

std::chrono::milliseconds MasterService::TierWait() const {
  // Well inside the lease: a client distrusts a put answered later than
  // one lease after it asked, and a read's lease runs from its request.
  return std::chrono::milliseconds(std::clamp<int64_t>(options_.index.lease_ttl_ms / 4, 10, 2000));
}

void MasterService::SettleTierWaitersLocked(bool expire, int64_t now_ms,
                                            std::list<TierWaiter>& ready) {
  auto now = std::chrono::steady_clock::now();
  for (auto it = tier_waiters_.begin(); it != tier_waiters_.end();) {
    TierWaiter& w = *it;
    std::vector<size_t> still;
    if (w.put) {
      // The items that found no room: placed now if demotions freed some.
      PutStartRequest again = w.req;
      again.items.clear();
      for (size_t i : w.waiting) again.items.push_back(w.req.items[i]);
      ReplicaListResponse more = index_.PutStart(w.caller, again, now_ms, w.upsert);
      for (size_t j = 0; j < w.waiting.size(); ++j) {
        MoveItem(more, j, w.res, w.waiting[j]);
        if (more.items[j].code == Code(ErrorCode::NO_AVAILABLE_HANDLE))
          still.push_back(w.waiting[j]);
      }
      if (index_.demoting_bytes() == 0) still.clear();  // nothing more will come free
    } else {
      // Items that found no room for their load while demotions were under
      // way: asked again.
      std::vector<size_t> no_room;
      std::vector<std::string> again;
      for (size_t i : w.waiting) {
        if (w.res.items[i].code == Code(ErrorCode::NO_AVAILABLE_HANDLE)) {
          no_room.push_back(i);
          again.push_back(w.keys[i]);
        }
      }
      if (!again.empty()) {
        std::vector<size_t> loading;
        ReplicaListResponse more = index_.GetReplicaLists(again, now_ms, &loading);
        for (size_t j = 0; j < no_room.size(); ++j) MoveItem(more, j, w.res, no_room[j]);
      }
      for (size_t i : w.waiting) {
        ReplicaItem& item = w.res.items[i];
        if (item.code == Code(ErrorCode::NO_AVAILABLE_HANDLE)) {
          // Room comes as demotions finish and readers release: asked again
          // at each report, release and tick until the deadline.
          still.push_back(i);
          continue;
        }
        if (item.code != 0) continue;
        switch (index_.PromotionOf(w.keys[i], item.version)) {
          case MasterIndex::Promotion::kPending:
            still.push_back(i);
            break;
          case MasterIndex::Promotion::kReady:
            break;
          case MasterIndex::Promotion::kFailed:
            item = ReplicaItem{};
            item.code = Code(ErrorCode::OBJECT_NOT_FOUND);
            break;
        }
      }
    }
    w.waiting = std::move(still);
    bool late = expire && now >= w.deadline;
    if (w.waiting.empty() || late || stopping_) {
      for (size_t i : w.waiting) {  // a load still under way: not this reader's
        if (!w.put) {
          w.res.items[i] = ReplicaItem{};
          w.res.items[i].code = Code(ErrorCode::OBJECT_NOT_FOUND);
        }
      }
      ready.splice(ready.end(), tier_waiters_, it++);
    } else {
      ++it;
    }
  }
}

void MasterService::AnswerTierWaiters(std::list<TierWaiter>& ready) {
  auto now = std::chrono::steady_clock::now();
  for (TierWaiter& w : ready) {
    tier_wait_->ObserveSeconds(std::chrono::duration<double>(now - w.since).count());
    uint16_t flags = 0;
    std::string body = EncodeBody(w.res);
    (void)Serving(flags, body);  // the fence applies to a late answer as to any other
    w.reply.Reply(flags, std::move(body));
  }
  ready.clear();
}

template <typename Req, typename Call>
Status MasterService::Batched(const RpcPeer& peer, std::string_view body, std::string& out,
                              uint16_t& flags, uint64_t& failures, Call call) {
  Req req;
  if (Status st = DecodeBody(body, req); !st.ok()) return st;
  ops_->keys->Inc(KeyCount(req));
  if (Status st = ScopeKeys(TenantPrefix(peer.tenant), req); !st.ok()) {
    failures += KeyCount(req);
    flags = kFlagError;
    out = EncodeBody(ErrorBody{Code(st.code()), st.message()});
    return Status::Ok();
  }
  auto answer = [&] {
    std::lock_guard<std::mutex> lock(index_mu_);
    return call(req);
  }();
  failures += Failures(answer);
  out = EncodeBody(answer);
  return Status::Ok();
}

namespace {

void StatusBody(const Status& st, std::string& out, uint64_t& failures) {
  failures += !st.ok();
  out = EncodeBody(StatusResponse{static_cast<int32_t>(st.code()), st.message()});
}

}  // namespace

// The calls of a segment's owner: mount, remount, unmount, ping.
Status MasterService::SegmentCall(const Caller& caller, MsgType type, std::string_view body,
                                  std::string& out, uint64_t& failures, int64_t now) {
  switch (type) {
    case MsgType::kMountSegment: {
      MountRequest r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      Status st;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        st = index_.Mount(caller, r.segment, now);
      }
      if (st.ok()) {
        spdlog::info("segment '{}' ({} bytes) mounted by client '{}' on host '{}'",
                     Printable(r.segment.name), r.segment.size, Printable(caller.client_id),
                     Printable(caller.host_id));
      } else {
        spdlog::warn("mount of segment '{}' by client '{}' refused: {}", Printable(r.segment.name),
                     Printable(caller.client_id), st.ToString());
      }
      StatusBody(st, out, failures);
      break;
    }
    case MsgType::kRemountSegment: {
      RemountRequest r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      Status st;
      MasterCounters before;
      MasterCounters after;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        before = index_.counters();
        st = index_.Remount(caller, r.segment, r.objects, now);
        after = index_.counters();
      }
      spdlog::info(
          "segment '{}' remounted by client '{}' with {} object(s), {} rejected, {} replacing "
          "older records, {} table change(s) sent back: {}",
          Printable(r.segment.name), Printable(caller.client_id), r.objects.size(),
          after.remount_objects_rejected - before.remount_objects_rejected,
          after.remount_objects_superseded - before.remount_objects_superseded,
          (after.remount_objects_rejected - before.remount_objects_rejected) +
              (after.reconcile_changes - before.reconcile_changes),
          st.ToString());
      StatusBody(st, out, failures);
      break;
    }
    case MsgType::kUnmountSegment: {
      UnmountRequest r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      Status st;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        st = index_.Unmount(caller, r.name, now);
      }
      spdlog::info("unmount of segment '{}' by client '{}': {}", Printable(r.name),
                   Printable(caller.client_id), st.ToString());
      StatusBody(st, out, failures);
      break;
    }
    case MsgType::kPing: {
      PingRequest r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      PingResponse res;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        res = index_.Ping(caller, r.segments_owned, now);
      }
      res.master_id = master_id_;
      if (res.remount_needed) {
        spdlog::info(
            "client '{}' owns {} segment(s) this master does not know: asking it to "
            "remount",
            Printable(caller.client_id), r.segments_owned);
      }
      out = EncodeBody(res);
      break;
    }
    default:
      break;
  }
  return Status::Ok();
}

// A client could not reach these segments: nothing new is placed there
// until their owners ping again.
Status MasterService::ReportUnreachable(const Caller& caller, std::string_view body,
                                        std::string& out, uint64_t& failures) {
  KeysRequest r;
  if (Status st = DecodeBody(body, r); !st.ok()) return st;
  CodesResponse res;
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    res = index_.ReportUnreachable(r.keys);
  }
  for (size_t i = 0; i < r.keys.size() && i < res.codes.size(); ++i) {
    if (res.codes[i] != 0) continue;
    spdlog::warn(
        "client '{}' could not reach segment '{}': nothing new is placed there until its "
        "owner pings again",
        Printable(caller.client_id), Printable(r.keys[i]));
  }
  failures += Failures(res);
  out = EncodeBody(res);
  return Status::Ok();
}

Status MasterService::RemoveByRegex(const RpcPeer& peer, const Caller& caller,
                                   std::string_view body, std::string& out, uint16_t& flags) {
  RemoveByRegexRequest r;
  if (Status st = DecodeBody(body, r); !st.ok()) return st;
  // Matching takes time linear in a key's length (core/compiled_regex.h),
  // and the program's size is bounded at compile time; the index lock is
  // not held meanwhile.
  Result<CompiledRegex> re = CompileRegex(r.pattern);
  if (!re.ok()) {
    flags = kFlagError;
    std::string reason =
        "bad regular expression '" + Printable(r.pattern) + "': " + re.status().message();
    out = EncodeBody(ErrorBody{Code(ErrorCode::INVALID_PARAMS), std::move(reason)});
    return Status::Ok();
  }
  constexpr size_t kSlice = 4096;  // keys tested per turn of the index lock
  RemoveAllResponse res;
  std::vector<MasterIndex::KeyVersion> slice, matched;
  uint32_t cursor = 0;
  for (bool more = true; more;) {
    slice.clear();
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      more = index_.ScanTenant(peer.tenant, cursor, kSlice, slice);
    }
    matched.clear();
    for (MasterIndex::KeyVersion& kv : slice) {
      if (re->Search(kv.key)) matched.push_back(std::move(kv));
    }
    if (matched.empty()) continue;
    std::lock_guard<std::mutex> lock(index_mu_);
    res.removed += index_.RemoveVersions(peer.tenant, matched, r.force, NowMs());
  }
  spdlog::info("client '{}' removed the objects of tenant '{}' matching '{}'{}: {} removed",
               Printable(caller.client_id), TenantLabel(peer.tenant), Printable(r.pattern),
               r.force ? " (forced)" : "", res.removed);
  out = EncodeBody(res);
  return Status::Ok();
}

Status MasterService::TaskCall(const RpcPeer& peer, const Caller& caller, MsgType type,
                               std::string_view body, std::string& out, uint64_t& failures,
                               int64_t now) {
  auto wall = static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
  auto task_text = [](const TaskRef& t) {
    return fmt::format("{:016x}{:016x}", t.id_hi, t.id_lo);
  };
  if (type == MsgType::kCreateTask) {
    CreateTaskRequest r;
    if (Status st = DecodeBody(body, r); !st.ok()) return st;
    ops_->keys->Inc();
    TaskInfo res;
    if (Status st = ScopeKey(TenantPrefix(peer.tenant), 0, r.key); !st.ok()) {
      res.code = Code(st.code());
      res.message = st.message();
    } else {
      std::lock_guard<std::mutex> lock(index_mu_);
      res = index_.CreateTask(caller, r, now, wall);
    }
    if (res.code != 0) {
      failures++;
    } else {
      spdlog::info("client '{}' created task {}: {} of '{}'{} to {}", Printable(caller.client_id),
                   task_text(res.task),
                   r.type == static_cast<uint8_t>(TaskType::kReplicaMove) ? "move" : "copy",
                   Printable(UserKeyOf(r.key)),
                   r.source.empty() ? "" : " from '" + Printable(r.source) + "'",
                   Printable(fmt::format("{}", fmt::join(r.targets, ","))));
    }
    out = EncodeBody(res);
    return Status::Ok();
  }
  if (type == MsgType::kTaskEnd) {
    TaskEndRequest r;
    if (Status st = DecodeBody(body, r); !st.ok()) return st;
    StatusResponse res;
    TaskInfo after;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      res = index_.TaskEnd(caller, r, now, wall);
      after = index_.QueryTask(peer.tenant, r.task);
    }
    if (res.code != 0) failures++;
    if (res.code == 0 && after.code == 0) {
      bool ok = after.state == static_cast<uint8_t>(TaskState::kSuccess);
      if (ok) {
        spdlog::info("task {} done", task_text(r.task));
      } else {
        spdlog::warn("task {} failed: {}", task_text(r.task), Printable(after.message));
      }
    }
    out = EncodeBody(res);
    return Status::Ok();
  }
  TaskRef r;
  if (Status st = DecodeBody(body, r); !st.ok()) return st;
  if (type == MsgType::kTaskStart) {
    ReplicaListResponse res;
    TaskInfo after;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      res = index_.TaskStart(caller, r, now, wall);
      after = index_.QueryTask(peer.tenant, r);
    }
    if (res.items[0].code != 0) {
      failures++;
      if (after.code == 0 && after.state == static_cast<uint8_t>(TaskState::kFailed)) {
        spdlog::warn("task {} failed: {}", task_text(r), Printable(after.message));
      }
    }
    out = EncodeBody(res);
    return Status::Ok();
  }
  TaskInfo res;
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    res = index_.QueryTask(peer.tenant, r);
  }
  if (res.code != 0) failures++;
  out = EncodeBody(res);
  return Status::Ok();
}

bool MasterService::Serving(uint16_t& flags, std::string& out) {
  if (!options_.may_serve || options_.may_serve()) return true;
  flags = kFlagError;
  out = EncodeBody(ErrorBody{
      Code(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS),
      "master " + master_id_ +
          " no longer leads the cluster (its lease in etcd could not be renewed in time); "
          "the request was not applied: ask etcd for the leader"});
  if (options_.on_deposed) options_.on_deposed();
  return false;
}

Status MasterService::Dispatch(const RpcPeer& peer, MsgType type, std::string_view body,
                               std::string& out, uint16_t& flags) {
  // A leader past its fence answers nothing it did: the check comes before
  // the request and again before its answer and table updates leave.
  if (!Serving(flags, out)) return Status::Ok();
  auto started = std::chrono::steady_clock::now();
  int64_t now = NowMs();
  Caller caller{peer.client_id, peer.host_id, peer.proof};
  size_t slot = static_cast<size_t>(type);
  uint64_t failures = 0;
  Status decoded;  // a batched request whose body did not decode closes the connection
  std::vector<RpcServer::Sequenced> acks_needed;  // PutEnd: the owners' updates to wait for
  std::optional<TierWaiter> tier_waiter;          // a get or put that waits on disk tiers
  switch (type) {
    case MsgType::kMountSegment:
    case MsgType::kRemountSegment:
    case MsgType::kUnmountSegment:
    case MsgType::kPing:
      decoded = SegmentCall(caller, type, body, out, failures, now);
      break;
    case MsgType::kExistKey:
      decoded = Batched<KeysRequest>(peer, body, out, flags, failures, [&](const KeysRequest& r) {
        return index_.ExistKeys(r.keys, now);
      });
      break;
    case MsgType::kGetReplicaList:
      decoded = Batched<KeysRequest>(peer, body, out, flags, failures, [&](const KeysRequest& r) {
        std::vector<size_t> loading;
        ReplicaListResponse res = index_.GetReplicaLists(r.keys, now, &loading);
        if (index_.demoting_bytes() > 0) {  // no room to load yet: room is on its way
          for (size_t i = 0; i < res.items.size(); ++i) {
            if (res.items[i].code == Code(ErrorCode::NO_AVAILABLE_HANDLE)) loading.push_back(i);
          }
        }
        if (!loading.empty()) {  // objects on disk: the answer waits for their loads
          tier_waiter.emplace();
          tier_waiter->keys = r.keys;
          tier_waiter->waiting = std::move(loading);
          tier_waiter->res = res;
        }
        return res;
      });
      break;
    case MsgType::kPutStart:
    case MsgType::kUpsertStart:
      decoded =
          Batched<PutStartRequest>(peer, body, out, flags, failures, [&](const PutStartRequest& r) {
            bool upsert = type == MsgType::kUpsertStart;
            ReplicaListResponse res = index_.PutStart(caller, r, now, upsert);
            if (index_.demoting_bytes() > 0) {  // room is on its way: wait for it
              std::vector<size_t> full;
              for (size_t i = 0; i < res.items.size(); ++i) {
                if (res.items[i].code == Code(ErrorCode::NO_AVAILABLE_HANDLE)) full.push_back(i);
              }
              if (!full.empty()) {
                tier_waiter.emplace();
                tier_waiter->put = true;
                tier_waiter->caller = caller;
                tier_waiter->req = r;
                tier_waiter->upsert = upsert;
                tier_waiter->waiting = std::move(full);
                tier_waiter->res = res;
              }
            }
            return res;
          });
      break;
    case MsgType::kTierReport: {
      TableUpdate r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      std::list<TierWaiter> ready;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        if (Status st = index_.TierReport(caller, r, now); !st.ok()) {
          spdlog::warn("tier report from client '{}' for segment '{}' ignored: {}",
                       Printable(caller.client_id), Printable(r.segment), st.ToString());
        }
        SettleTierWaitersLocked(/*expire=*/false, now, ready);
        FlushTableUpdatesLocked(nullptr);
      }
      AnswerTierWaiters(ready);
      return Status::Ok();  // one-way, and not counted as a request
    }
    case MsgType::kRemoveByRegex:
      decoded = RemoveByRegex(peer, caller, body, out, flags);
      break;
    case MsgType::kCreateTask:
    case MsgType::kTaskStart:
    case MsgType::kTaskEnd:
    case MsgType::kQueryTask:
      decoded = TaskCall(peer, caller, type, body, out, failures, now);
      break;
    case MsgType::kPutEnd:
      decoded = Batched<PutEndRequest>(peer, body, out, flags, failures,
                                       [&](const PutEndRequest& r) {
                                         CodesResponse res = index_.PutEnd(caller, r, now);
                                         // This request's updates leave now, numbered.
                                         if (options_.await_owner_acks) {
                                           FlushTableUpdatesLocked(&acks_needed);
                                         }
                                         return res;
                                       });
      break;
    case MsgType::kTableUpdateAck: {
      TableUpdateAck ack;
      if (Status st = DecodeBody(body, ack); !st.ok()) return st;
      OnTableUpdateAck(peer.connection_id, ack.seq);
      return Status::Ok();  // one-way, and not counted as a request
    }
    case MsgType::kPutRevoke:
      decoded = Batched<KeysRequest>(peer, body, out, flags, failures, [&](const KeysRequest& r) {
        return index_.PutRevoke(caller, r.keys, now);
      });
      break;
    case MsgType::kReleaseLeases: {
      ReleaseLeasesRequest r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      ops_->keys->Inc(r.items.size());
      if (!ScopeKeys(TenantPrefix(peer.tenant), r).ok()) break;  // one-way: nothing to answer
      std::list<TierWaiter> ready;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        (void)index_.ReleaseLeases(r.items, now);
        if (!tier_waiters_.empty()) {  // released ranges may be what a load waits for
          SettleTierWaitersLocked(/*expire=*/false, now, ready);
          FlushTableUpdatesLocked(nullptr);
        }
      }
      AnswerTierWaiters(ready);
      break;  // one-way: the RPC server sends no answer
    }
    case MsgType::kReportUnreachable:
      decoded = ReportUnreachable(caller, body, out, failures);
      break;
    case MsgType::kRemove:
      decoded = Batched<RemoveRequest>(
          peer, body, out, flags, failures,
          [&](const RemoveRequest& r) { return index_.Remove(r.keys, r.force, now); });
      break;
    case MsgType::kRemoveAll: {
      RemoveAllRequest r;
      if (Status st = DecodeBody(body, r); !st.ok()) return st;
      RemoveAllResponse res;
      {
        std::lock_guard<std::mutex> lock(index_mu_);
        res.removed = index_.RemoveAll(peer.tenant, r.force, now);
      }
      spdlog::info("client '{}' removed all objects of tenant '{}'{}: {} removed",
                   Printable(caller.client_id), TenantLabel(peer.tenant),
                   r.force ? " (forced)" : "", res.removed);
      out = EncodeBody(res);
      break;
    }
    case MsgType::kGetSize:
      decoded = Batched<KeysRequest>(peer, body, out, flags, failures,
                                     [&](const KeysRequest& r) { return index_.GetSizes(r.keys); });
      break;
    default:
      flags = kFlagError;
      out = EncodeBody(ErrorBody{Code(ErrorCode::NOT_SUPPORTED),
                                 "unknown request type " + std::to_string(static_cast<int>(type))});
      return Status::Ok();
  }
  if (!decoded.ok()) return decoded;
  if (slot < kOpSlots && ops_->requests[slot] != nullptr) {
    ops_->requests[slot]->Inc();
    if (failures > 0) ops_->failures[slot]->Inc(failures);
    ops_->latency[slot]->ObserveSeconds(
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }
  if (!Serving(flags, out)) return Status::Ok();
  if (IsObjectOp(type)) FlushTableUpdates();
  if (!acks_needed.empty() && !(flags & kFlagError)) {
    AnswerAfterAcks(std::move(acks_needed), flags, std::move(out));
    flags = kFlagDeferred;
  }
  if (tier_waiter && !(flags & kFlagError)) {
    tier_waiter->reply = RpcServer::Defer();
    tier_waiter->since = started;
    tier_waiter->deadline = started + TierWait();
    std::list<TierWaiter> ready;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      tier_waiters_.push_back(std::move(*tier_waiter));
      SettleTierWaitersLocked(/*expire=*/false, NowMs(), ready);  // a report may be in already
      FlushTableUpdatesLocked(nullptr);
    }
    AnswerTierWaiters(ready);
    flags = kFlagDeferred;
  }
  return Status::Ok();
}

void MasterService::RenderSegmentMetrics(std::string& out) {
  std::vector<SegmentStats> segs;
  MasterCounters c;
  std::map<std::string, TenantStats> tenants;
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    segs = index_.Segments(NowMs());
    c = index_.counters();
    tenants = index_.Tenants();
  }
  // Per tenant (label "default" for the default tenant): what it holds, its
  // quota, and what the quota cost it.
  auto per_tenant = [&](const char* name, const char* type, const char* help,
                        uint64_t TenantStats::*field) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
    for (const auto& [t, s] : tenants) {
      out += name + RenderLabels({{"tenant", std::string(TenantLabel(t))}}) + " " +
             std::to_string(s.*field) + "\n";
    }
  };
  per_tenant("kvcached_master_tenant_objects", "gauge",
             "Objects of each tenant (pending puts included)", &TenantStats::objects);
  per_tenant("kvcached_master_tenant_bytes", "gauge",
             "Bytes of each tenant's objects, each object once (pending puts included)",
             &TenantStats::bytes);
  per_tenant("kvcached_master_tenant_quota_bytes", "gauge", "Each tenant's byte quota (0: none)",
             &TenantStats::quota_bytes);
  per_tenant("kvcached_master_tenant_quota_evictions_total", "counter",
             "Objects of each tenant evicted to make room within its quota",
             &TenantStats::evicted_for_quota);
  per_tenant("kvcached_master_tenant_quota_refusals_total", "counter",
             "Puts refused because the tenant's quota was full of objects being read",
             &TenantStats::quota_refusals);
  out +=
      "# HELP kvcached_master_segment_capacity_bytes Capacity of each mounted segment\n"
      "# TYPE kvcached_master_segment_capacity_bytes gauge\n";
  for (const SegmentStats& s : segs) {
    out += "kvcached_master_segment_capacity_bytes" + RenderLabels({{"segment", s.name}}) + " " +
           std::to_string(s.capacity_bytes) + "\n";
  }
  out +=
      "# HELP kvcached_master_segment_allocated_bytes Bytes allocated in each mounted segment\n"
      "# TYPE kvcached_master_segment_allocated_bytes gauge\n";
  for (const SegmentStats& s : segs) {
    out += "kvcached_master_segment_allocated_bytes" + RenderLabels({{"segment", s.name}}) + " " +
           std::to_string(s.used_bytes) + "\n";
  }
  auto counter = [&](const char* name, const char* help, uint64_t v) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " counter\n" + name +
           " " + std::to_string(v) + "\n";
  };
  auto per_segment = [&](const char* name, const char* help, uint64_t SegmentStats::*field) {
    out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " gauge\n";
    for (const SegmentStats& s : segs) {
      out += name + RenderLabels({{"segment", s.name}}) + " " + std::to_string(s.*field) + "\n";
    }
  };
  per_segment("kvcached_master_segment_disk_capacity_bytes",
              "Size of each segment owner's disk tier (0: none)",
              &SegmentStats::disk_capacity_bytes);
  per_segment("kvcached_master_segment_dram_objects",
              "Objects (and ranges held for readers) in each segment's memory",
              &SegmentStats::objects);
  per_segment("kvcached_master_segment_disk_objects",
              "Objects of each segment only in its owner's disk tier", &SegmentStats::disk_objects);
  per_segment("kvcached_master_segment_disk_bytes",
              "Bytes of the objects of each segment only in its owner's disk tier",
              &SegmentStats::disk_bytes);
  counter("kvcached_master_evictions_total", "Objects evicted", c.evicted_objects);
  counter("kvcached_master_demotions_total",
          "Objects eviction asked their owners to write to their disk tiers", c.demotions);
  counter("kvcached_master_demoted_total",
          "Demotions done: the object is on disk and its memory freed", c.demoted);
  counter("kvcached_master_demote_failures_total",
          "Demotions that failed (the object was evicted as without a disk tier)",
          c.demote_failures);
  counter("kvcached_master_clean_drops_total",
          "Memory copies of objects also on disk dropped to make room (no write needed)",
          c.clean_drops);
  counter("kvcached_master_promotions_total",
          "Reads that asked an owner to load an object from disk", c.promotions);
  counter("kvcached_master_promoted_total", "Loads from disk done", c.promoted);
  counter("kvcached_master_promote_failures_total",
          "Loads from disk that failed (record gone or corrupt: the object was removed)",
          c.promote_failures);
  counter("kvcached_master_promote_no_room_total",
          "Loads of objects on disk that found no room at once (the read then waits for "
          "demotions to free some, or is refused)",
          c.promote_no_room);
  counter("kvcached_master_disk_dropped_total",
          "Objects removed because their owner dropped their disk record (disk full, corrupt, "
          "disk failed)",
          c.disk_dropped);
  counter("kvcached_master_evicted_bytes_total", "Bytes of objects evicted", c.evicted_bytes);
  counter("kvcached_master_lease_refusals_total",
          "Leases refused because the object was chosen for eviction", c.lease_refusals);
  counter("kvcached_master_puts_too_large_total",
          "Puts refused because the object is larger than every mounted segment", c.put_too_large);
  counter("kvcached_master_put_takeovers_total",
          "Pending puts taken over after --put-start-discard-timeout", c.put_takeovers);
  counter("kvcached_master_upserts_replaced_total",
          "Complete objects replaced by an upsert (their space reused when their leases end)",
          c.upserts_replaced);
  counter("kvcached_master_soft_pinned_evictions_total",
          "Objects evicted while their soft pin lasted (unpinned ones were not enough)",
          c.soft_pinned_evicted);
  counter("kvcached_master_put_reclaims_total",
          "Pending puts reclaimed after --put-start-release-timeout", c.put_reclaims);
  counter("kvcached_master_clients_expired_total", "Owners dropped after --client-ttl",
          c.clients_expired);
  counter("kvcached_master_remount_objects_rejected_total",
          "Records in remount tables refused: out of bounds, over a range taken, older than the "
          "index's record of the key, or removed since",
          c.remount_objects_rejected);
  counter("kvcached_master_remount_objects_superseded_total",
          "Records in the index replaced by a newer record of the same key from a remount",
          c.remount_objects_superseded);
  counter("kvcached_master_reconcile_changes_total",
          "Table changes sent to owners whose tables had drifted from the index",
          c.reconcile_changes);
  counter("kvcached_master_leases_released_total",
          "Read leases ended by their readers when the get was done", c.leases_released);
  counter("kvcached_master_tasks_created_total", "Replica copy and move tasks created",
          c.tasks_created);
  counter("kvcached_master_tasks_succeeded_total", "Replica tasks that succeeded",
          c.tasks_succeeded);
  counter("kvcached_master_tasks_failed_total",
          "Replica tasks that failed (the client said why, the object changed, or they timed out)",
          c.tasks_failed);
  counter("kvcached_master_task_replicas_added_total", "Replicas that tasks added to objects",
          c.replicas_copied);
  counter("kvcached_master_unreachable_reports_total",
          "Segments clients reported they could not reach (placements stop until the owner "
          "pings)",
          c.unreachable_reports);
  counter("kvcached_master_owner_restarts_total",
          "Segments mounted again by a new process of their owner (same owner proof), "
          "replacing the old mount at once",
          c.owner_restarts);
}

namespace {

// A replica as Mooncake's admin API shows one (its buffer descriptor):
// `transport_endpoint_` names the segment, `buffer_address_` is the offset
// in it (kvcached does not hand out the holder's addresses).
nlohmann::json MooncakeDescriptor(uint64_t size, const std::string& segment, uint64_t offset) {
  return {{"size_", size}, {"buffer_address_", offset}, {"transport_endpoint_", segment}};
}

// Keys are bytes: anything not UTF-8 is shown as U+FFFD, never a 500.
std::string DumpJson(const nlohmann::json& doc) {
  return doc.dump(-1, ' ', false, nlohmann::json::error_handler_t::replace);
}

void SetText(HttpResponse& res, unsigned status, std::string body) {
  res.result(status);
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = std::move(body);
}

}  // namespace

// Mooncake's admin paths, with its shapes, for tools written against
// mooncake_master (Dynamo's KV router polls /batch_query_keys). False when
// `path` is none of them.
bool MasterService::ServeMooncakeAdmin(std::string_view path, std::string_view target,
                                       HttpResponse& res) {
  size_t q = target.find('?');
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  auto param = [&](std::string_view name) -> std::optional<std::string> {
    Result<std::optional<std::string>> v = QueryParam(query, name);
    if (!v.ok() || !v->has_value()) return std::nullopt;
    return **v;
  };
  // kvcached's addition: `tenant=NAME` names the key space (default: the
  // default tenant's; /get_key_count without it counts every tenant's).
  std::optional<std::string> tenant_param = param("tenant");
  std::string tenant;
  if (tenant_param) {
    Result<std::string> t = CanonicalTenant(*tenant_param);
    if (!t.ok()) {
      SetText(res, 400, "tenant: " + t.status().message() + "\n");
      return true;
    }
    tenant = *t;
  }
  const std::string prefix = TenantPrefix(tenant);
  if (path == "/get_all_keys" || path == "/get_key_count") {
    std::vector<std::string> keys;
    size_t count = 0;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      if (path == "/get_all_keys") {
        keys = index_.CompleteKeys(tenant, SIZE_MAX);
      } else if (tenant_param) {
        std::map<std::string, TenantStats> tenants = index_.Tenants();
        auto it = tenants.find(tenant);
        count = it == tenants.end() ? 0 : it->second.objects;
      } else {
        count = index_.object_count();
      }
    }
    std::string body;
    if (path == "/get_key_count") {
      body = std::to_string(count);
    } else {
      for (const std::string& k : keys) body += k + "\n";
    }
    SetText(res, 200, std::move(body));
    return true;
  }
  if (path == "/query_key") {
    std::optional<std::string> key = param("key");
    if (!key || key->empty()) {
      SetText(res, 400, "missing or badly escaped 'key' query parameter\n");
      return true;
    }
    std::optional<MasterIndex::ObjectView> view;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      view = index_.Lookup(prefix + *key, NowMs());
    }
    if (!view || !view->complete) {
      SetText(res, 404, view ? "REPLICA_IS_NOT_READY" : "OBJECT_NOT_FOUND");
      return true;
    }
    std::string body;
    for (const auto& [seg, off] : view->replicas)
      body += DumpJson(MooncakeDescriptor(view->size, seg, off)) + "\n";
    SetText(res, 200, std::move(body));
    return true;
  }
  if (path == "/batch_query_keys") {
    BatchQueryKeys(prefix, param("keys"), res);
    return true;
  }
  if (path == "/query_segment") {
    std::optional<std::string> name = param("segment");
    std::vector<SegmentStats> segs;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      segs = index_.Segments(NowMs());
    }
    for (const SegmentStats& seg : segs) {
      if (name && seg.name == *name) {
        SetText(res, 200,
                seg.name + "\nUsed(bytes): " + std::to_string(seg.used_bytes) +
                    "\nCapacity(bytes) : " + std::to_string(seg.capacity_bytes) + "\n");
        return true;
      }
    }
    SetText(res, 404, "Failed to query segment: no mounted segment of that name\n");
    return true;
  }
  if (path == "/metrics/summary") {
    SetText(res, 200, SummaryLine() + "\n");
    return true;
  }
  return false;
}

// Mooncake's /batch_query_keys: every key's replicas as buffer descriptors.
void MasterService::BatchQueryKeys(const std::string& prefix,
                                   const std::optional<std::string>& list, HttpResponse& res) {
  res.set(http::field::content_type, "application/json; charset=utf-8");
  std::vector<std::string> keys;
  for (size_t at = 0; list && !list->empty() && at <= list->size();) {
    size_t comma = std::min(list->find(',', at), list->size());
    keys.push_back(list->substr(at, comma - at));
    at = comma + 1;
  }
  if (keys.empty()) {
    res.result(http::status::bad_request);
    res.body() =
        DumpJson({{"success", false}, {"error", "No keys provided. Use ?keys=key1,key2,..."}});
    return;
  }
  nlohmann::json data = nlohmann::json::object();
  {
    std::lock_guard<std::mutex> lock(index_mu_);
    int64_t now = NowMs();
    for (const std::string& k : keys) {
      std::optional<MasterIndex::ObjectView> view = index_.Lookup(prefix + k, now);
      if (!view || !view->complete) {
        data[k] = {{"ok", false}, {"error", view ? "REPLICA_IS_NOT_READY" : "OBJECT_NOT_FOUND"}};
        continue;
      }
      nlohmann::json values = nlohmann::json::array();
      for (const auto& [seg, off] : view->replicas)
        values.push_back(MooncakeDescriptor(view->size, seg, off));
      data[k] = {{"ok", true}, {"values", values}};
    }
  }
  res.result(http::status::ok);
  res.body() = DumpJson({{"success", true}, {"data", data}});
}

// Mooncake's /metrics/summary: the pool in one line.
std::string MasterService::SummaryLine() {
  std::lock_guard<std::mutex> lock(index_mu_);
  const MasterCounters& c = index_.counters();
  return "keys=" + std::to_string(index_.object_count()) +
         ", segments=" + std::to_string(index_.Segments(NowMs()).size()) +
         ", clients=" + std::to_string(index_.client_count()) +
         ", capacity_bytes=" + std::to_string(index_.capacity_bytes()) +
         ", used_bytes=" + std::to_string(index_.used_bytes()) +
         ", evicted_objects=" + std::to_string(c.evicted_objects) +
         ", evicted_bytes=" + std::to_string(c.evicted_bytes);
}

void MasterService::HandleAdmin(const HttpRequest& req, const HttpRequestContext& ctx,
                                HttpResponse& res) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  if (HttpServer::ServeHealthOrMetrics(req, metrics_, res)) {
    if (options_.health_detail && res.result() == http::status::ok && path == "/health") {
      res.body() += options_.health_detail();
    }
    return;
  }
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.set(http::field::allow, "GET, HEAD");
    return HttpServer::SetError(res, 405, "the admin API is read-only");
  }
  auto json = [&](const nlohmann::json& doc) {
    res.result(http::status::ok);
    res.set(http::field::content_type, "application/json");
    res.body() = DumpJson(doc) + "\n";
  };
  if (ServeMooncakeAdmin(path, target, res)) return;
  if (path == "/api/v1/segments" || path == "/get_all_segments") {
    std::vector<SegmentStats> segs;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      segs = index_.Segments(NowMs());
    }
    if (path == "/get_all_segments") {  // SGLang's readiness probe: one name per line
      res.result(http::status::ok);
      res.set(http::field::content_type, "text/plain; charset=utf-8");
      for (const SegmentStats& s : segs) res.body() += s.name + "\n";
      return;
    }
    nlohmann::json list = nlohmann::json::array();
    for (const SegmentStats& s : segs) {
      list.push_back({{"name", s.name},
                      {"owner", s.owner},
                      {"host_id", s.host_id},
                      {"endpoint", s.endpoint},
                      {"capacity_bytes", s.capacity_bytes},
                      {"allocated_bytes", s.used_bytes},
                      {"objects", s.objects},
                      {"quarantined", s.quarantined},
                      {"unreachable", s.unreachable}});
    }
    return json({{"master_id", master_id_}, {"segments", list}});
  }
  if (path == "/api/v1/key") {
    size_t q = target.find('?');
    Result<std::optional<std::string>> key =
        QueryParam(q == std::string_view::npos ? std::string_view() : target.substr(q + 1), "key");
    if (!key.ok() || !key->has_value() || (*key)->empty()) {
      return HttpServer::SetError(res, 400, "missing or badly escaped 'key' query parameter");
    }
    std::optional<MasterIndex::ObjectView> view;
    {
      std::lock_guard<std::mutex> lock(index_mu_);
      view = index_.Lookup(**key, NowMs());
    }
    if (!view) return HttpServer::SetError(res, 404, "no such key");
    nlohmann::json replicas = nlohmann::json::array();
    for (const auto& [seg, off] : view->replicas) {
      if (off == kOnDiskOffset) {  // in its owner's disk tier (docs/disk-tier.md)
        replicas.push_back({{"segment", seg}, {"tier", "disk"}});
      } else {
        replicas.push_back({{"segment", seg}, {"offset", off}, {"tier", "memory"}});
      }
    }
    return json({{"key", **key},
                 {"size", view->size},
                 {"checksum", view->checksum},
                 {"state", view->complete ? "complete" : "pending"},
                 {"chosen_for_eviction", view->doomed},
                 {"lease_remaining_ms", view->lease_left_ms},
                 {"replicas", replicas}});
  }
  HttpServer::SetError(res, 404,
                       "no such path; see /api/v1/segments, /api/v1/key?key=K, and Mooncake's "
                       "/get_all_keys, /get_key_count, /query_key?key=K, "
                       "/batch_query_keys?keys=K1,K2, /query_segment?segment=S, "
                       "/metrics/summary");
}

}  // namespace kvcached
