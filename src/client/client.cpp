#include "kvcached/client.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "client/checksum.h"
#include "client/client_settings.h"
#include "client/transport.h"
#include "core/auth_token.h"
#include "core/identity.h"
#include "core/metrics.h"
#include "core/rpc_protocol.h"
#include "core/segment_endpoint.h"
#include "net/rpc_client.h"
#include "store/segment_host.h"
#include "rdma/rdma_transport.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;

constexpr size_t kRpcConnections = 4;     // master connections shared by the caller threads
constexpr unsigned kAutoCopyThreads = 4;  // copy_threads 0: one per core, at most this
constexpr unsigned kMaxCopyThreads = 64;
// A put whose store could not be reached is tried elsewhere this many more
// times within the call.
constexpr int kUnreachableRetries = 2;

// Transfer errors that mean the store itself could not be reached (or went
// away mid-transfer), as opposed to a store that answered with a refusal.
bool Unreachable(ErrorCode code) {
  return code == ErrorCode::RPC_FAIL || code == ErrorCode::RPC_TIMEOUT ||
         code == ErrorCode::TRANSFER_FAIL;
}

Status CheckKey(std::string_view key) {
  if (key.empty()) return Status(ErrorCode::INVALID_KEY, "empty key");
  if (key.size() > kMaxKeyBytes) {
    return Status(ErrorCode::INVALID_KEY, "key of " + std::to_string(key.size()) +
                                              " bytes over the limit of " +
                                              std::to_string(kMaxKeyBytes));
  }
  return Status::Ok();
}

Status FromCode(int32_t code, const std::string& key, const char* what) {
  if (code == 0) return Status::Ok();
  ErrorCode c = ErrorCodeFromInt(code).value_or(ErrorCode::INTERNAL_ERROR);
  return Status(c, std::string(what) + " '" + key + "': " + std::string(ErrorText(c)));
}

// Splits [0, n) into runs of at most kMaxBatchKeys, the protocol's batch limit.
template <typename Fn>
Status ForChunks(size_t n, Fn fn) {
  for (size_t at = 0; at < n; at += kMaxBatchKeys) {
    if (Status st = fn(at, std::min(n, at + kMaxBatchKeys)); !st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientConfig config) : config_(std::move(config)) {}
  ~Impl() { Close(); }

  Status Open();
  void Close();

  // `retries`: how many more times keys whose store could not be reached
  // are put again elsewhere within this call (after reporting the store).
  std::vector<Status> BatchPut(const std::vector<std::string>& keys,
                               const std::vector<Slice>& values, const ReplicateConfig& rc,
                               int retries = kUnreachableRetries);
  std::vector<Result<uint64_t>> BatchGet(const std::vector<std::string>& keys,
                                         const std::vector<Slice>& buffers);
  std::vector<Result<bool>> BatchExist(const std::vector<std::string>& keys);
  Result<uint64_t> GetSize(std::string_view key);
  Status Remove(std::string_view key, bool force);
  Result<uint64_t> RemoveAll(bool force);
  Status RegisterBuffer(void* data, uint64_t size);
  Status UnregisterBuffer(void* data);
  ClientStats Stats() const;

  Status Usable() const {
    if (closed_) return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "the client is closed");
    return Status::Ok();
  }

  std::string host_id_;
  std::string segment_name_;

 private:
  // Each calling thread keeps to one master connection, so its requests
  // reach the master in the order it made them: a one-way ReleaseLeases is
  // applied before the thread's next call (a Remove right after a Get is not
  // refused by the get's own lease). Threads are spread over the connections.
  RpcClient& Master() {
    static std::atomic<size_t> threads{0};
    thread_local const size_t slot = threads.fetch_add(1);
    return *rpc_[slot % rpc_.size()];
  }
  std::shared_ptr<const SegmentEndpoint> Resolve(const std::string& text, Status& why);
  // The path to a replica, or an error when the configured transport rules it out.
  Result<Path> Choose(const SegmentEndpoint& segment);
  // Protocol "rdma": the engine that reaches other stores' segments, and
  // the target that serves this client's own segment.
  Status OpenRdma(const std::vector<std::string>& devices);
  Status ServeRdma(const std::vector<std::string>& devices);
  Status NoRdma(const std::string& why);
  // A replica of a PutStart or GetReplicaList answer: its segment and path.
  using Route = std::pair<std::shared_ptr<const SegmentEndpoint>, Path>;
  Result<Route> RouteTo(const ReplicaListResponse& res, const Replica& r);

  const ClientConfig config_;
  std::string client_id_;
  std::optional<AuthToken> token_;
  std::vector<std::unique_ptr<RpcClient>> rpc_;
  std::unique_ptr<Transport> transport_;
  std::atomic<bool> closed_{false};
  std::mutex close_mu_;

  std::mutex endpoints_mu_;  // guards endpoints_
  std::unordered_map<std::string, std::shared_ptr<const SegmentEndpoint>> endpoints_;

  std::mutex buffers_mu_;                  // guards buffers_
  std::map<uintptr_t, uint64_t> buffers_;  // start -> size

  // The segment this client contributes, when it does.
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  std::unique_ptr<SegmentHost> segment_;

  std::atomic<uint64_t> puts_{0}, gets_{0}, bytes_written_{0}, bytes_read_{0};
  std::atomic<uint64_t> checksum_mismatches_{0}, lease_expirations_{0};
};

// ---- open and close -------------------------------------------------------

Status Client::Impl::Open() {
  if (Status st = ValidateClientConfig(config_); !st.ok()) return st;
  Result<std::vector<std::string>> devices = ParseRdmaDeviceList(config_.device_names);
  if (!devices.ok()) return devices.status();
  if (!config_.token.empty()) {
    Result<AuthToken> t = AuthToken::FromString(config_.token);
    if (!t.ok()) return t.status();
    token_ = *t;
  }
  host_id_ = config_.local_hostname.empty() ? LocalHostname() : config_.local_hostname;
  client_id_ = RandomId("client");

  HelloRequest hello;
  hello.role = static_cast<uint8_t>(PeerRole::kClient);
  hello.client_id = client_id_;
  hello.host_id = host_id_;
  if (token_) hello.token = token_->secret();
  for (size_t i = 0; i < kRpcConnections; ++i) {
    RpcClientOptions o;
    o.address = config_.master_server_addr;
    o.hello = hello;
    o.connect_timeout = config_.connect_timeout;
    o.call_timeout = config_.rpc_timeout;
    o.connect_attempts = 2;
    rpc_.push_back(std::make_unique<RpcClient>(o));
  }
  if (Status st = rpc_[0]->Connect(); !st.ok()) return st;

  TransportOptions t;
  t.hello = hello;
  t.connect_timeout = config_.connect_timeout;
  t.io_timeout = config_.io_timeout;
  t.tcp_streams = config_.tcp_streams;
  t.tcp_split_bytes = config_.tcp_split_bytes;
  t.copy_threads = config_.copy_threads != 0
                       ? config_.copy_threads
                       : std::clamp(std::thread::hardware_concurrency(), 1u, kAutoCopyThreads);

  if (config_.global_segment_size > 0) {
    static std::atomic<unsigned> segments_in_process{0};
    SegmentHostOptions h;
    h.master = config_.master_server_addr;
    h.client_id = client_id_ + "-segment";
    h.host_id = host_id_;
    h.segment_name = !config_.segment_name.empty()
                         ? config_.segment_name
                         : host_id_ + ":" + std::to_string(getpid()) + ":" +
                               std::to_string(segments_in_process.fetch_add(1));
    h.memory.size_bytes = config_.global_segment_size;
    h.memory.hugepages = config_.hugepages;
    h.bind_host = config_.segment_bind_host;
    // A caller that set segment_bind_host beyond loopback chose to expose
    // it: the library warns (SegmentHost) rather than refusing, as it has
    // no --insecure to say so; `kvcached store` refuses.
    h.insecure = true;
    h.token = token_;
    h.metadata_server = config_.metadata_server;
    h.ping_interval = config_.ping_interval;
    h.connect_timeout = config_.connect_timeout;
    Result<std::unique_ptr<SegmentHost>> host = SegmentHost::Create(h);
    if (!host.ok()) return host.status();
    segment_ = std::move(host).value();
    if (Status st = ServeRdma(*devices); !st.ok()) return st;
    metrics_ = std::make_unique<MetricsRegistry>();
    ioc_ = std::make_unique<boost::asio::io_context>();
    work_ =
        std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
            ioc_->get_executor());
    if (Status st = segment_->Serve(*ioc_, *metrics_); !st.ok()) return st;
    for (int i = 0; i < 2; ++i) io_threads_.emplace_back([this] { ioc_->run(); });
    if (Status st = segment_->Mount(); !st.ok()) return st;
    segment_name_ = segment_->name();
    t.own_instance = segment_->endpoint().instance;
    t.own_base = segment_->memory().data();
    t.own_size = segment_->memory().size();
  }
  transport_ = std::make_unique<Transport>(t);
  if (config_.protocol == "rdma") {
    if (Status st = OpenRdma(*devices); !st.ok()) return st;
  }
  spdlog::debug("client {} on host '{}' connected to master {}{}", client_id_, host_id_,
                config_.master_server_addr,
                segment_name_.empty() ? "" : ", contributing segment '" + segment_name_ + "'");
  return Status::Ok();
}

void Client::Impl::Close() {
  std::lock_guard<std::mutex> lock(close_mu_);
  closed_ = true;
  if (segment_) {
    segment_->BeginShutdown();
    (void)segment_->Unmount();
  }
  if (work_) work_.reset();
  if (ioc_) ioc_->stop();
  for (std::thread& t : io_threads_) t.join();
  io_threads_.clear();
  // The segment's memory stays mapped until the client is destroyed: a call
  // still running on another thread may be copying into it.
  if (transport_) transport_->Close();
  for (auto& r : rpc_) r->Close();
}

// ---- RDMA -----------------------------------------------------------------

Status Client::Impl::NoRdma(const std::string& why) {
  if (config_.transport == TransportMode::kRdma) {
    return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE, "transport rdma: " + why);
  }
  spdlog::warn("protocol rdma: {}; using TCP (and shared memory on this host)", why);
  return Status::Ok();
}

namespace {

RdmaOptions RdmaSettings(const ClientConfig& c, const std::vector<std::string>& devices) {
  RdmaOptions o;
  o.devices = devices;
  o.gid_index = c.rdma_gid_index;
  o.connect_timeout = c.connect_timeout;
  o.io_timeout = c.io_timeout;
  return o;
}

}  // namespace

// Discovery that finds no device is NOT_SUPPORTED from both Opens: TCP,
// after one warning (from OpenRdma).
Status Client::Impl::OpenRdma(const std::vector<std::string>& devices) {
  Transport* t = transport_.get();
  Result<std::unique_ptr<RdmaEngine>> engine = RdmaEngine::OpenSystem(
      RdmaSettings(config_, devices),
      [t](const std::string& address, const RdmaConnectRequest& req,
          std::unique_ptr<RdmaLink>& link) { return t->RdmaHandshake(address, req, link); });
  if (engine.code() == ErrorCode::NOT_SUPPORTED) return NoRdma(engine.status().message());
  if (!engine.ok()) return engine.status();
  transport_->SetRdma(std::shared_ptr<RdmaEngine>(std::move(engine).value()));
  return Status::Ok();
}

Status Client::Impl::ServeRdma(const std::vector<std::string>& devices) {
  if (config_.protocol != "rdma") return Status::Ok();
  Result<std::unique_ptr<RdmaTarget>> target =
      RdmaTarget::OpenSystem(RdmaSettings(config_, devices), segment_->memory().data(),
                             segment_->memory().size());
  if (target.code() == ErrorCode::NOT_SUPPORTED) return Status::Ok();
  if (!target.ok()) return target.status();
  segment_->SetRdma(std::shared_ptr<RdmaTarget>(std::move(target).value()));
  return Status::Ok();
}

// ---- helpers --------------------------------------------------------------

std::shared_ptr<const SegmentEndpoint> Client::Impl::Resolve(const std::string& text, Status& why) {
  std::lock_guard<std::mutex> lock(endpoints_mu_);
  auto it = endpoints_.find(text);
  if (it != endpoints_.end()) return it->second;
  Result<SegmentEndpoint> parsed = ParseEndpoint(text);
  if (!parsed.ok()) {
    why = Status(ErrorCode::INVALID_REPLICA, parsed.status().message());
    return nullptr;
  }
  if (endpoints_.size() > 4096) endpoints_.clear();  // segments come and go
  auto e = std::make_shared<const SegmentEndpoint>(std::move(parsed).value());
  endpoints_.emplace(text, e);
  return e;
}

Result<Path> Client::Impl::Choose(const SegmentEndpoint& segment) {
  if (segment_ && segment.instance == segment_->endpoint().instance) return Path::kLocal;
  bool same_host = segment.host_id == host_id_ && !segment.shm.empty();
  bool rdma = transport_->rdma() != nullptr && segment.rdma.has_value() && !segment.tcp.empty();
  switch (config_.transport) {
    case TransportMode::kRdma:
      if (!rdma) {
        return Status(ErrorCode::TRANSFER_FAIL,
                      "transport rdma: segment '" + segment.name + "' does not serve RDMA");
      }
      return Path::kRdma;
    case TransportMode::kTcp:
      if (segment.tcp.empty()) break;
      return Path::kTcp;
    case TransportMode::kShm:
      if (!same_host) {
        return Status(ErrorCode::TRANSFER_FAIL, "transport shm: segment '" + segment.name +
                                                    "' is on host '" + segment.host_id +
                                                    "', not this host '" + host_id_ + "'");
      }
      return Path::kShm;
    case TransportMode::kAuto:
      if (same_host && transport_->ShmAvailable(segment)) return Path::kShm;
      if (rdma) return Path::kRdma;
      if (segment.tcp.empty()) break;
      return Path::kTcp;
  }
  return Status(ErrorCode::TRANSFER_FAIL,
                "segment '" + segment.name + "' offers no path this client may use");
}

Result<Client::Impl::Route> Client::Impl::RouteTo(const ReplicaListResponse& res,
                                                  const Replica& r) {
  if (r.segment >= res.segments.size()) {
    return Status(ErrorCode::INVALID_REPLICA, "the master named a replica in no segment");
  }
  Status why;
  std::shared_ptr<const SegmentEndpoint> seg = Resolve(res.segments[r.segment].endpoint, why);
  if (!seg) return why;
  Result<Path> path = Choose(*seg);
  if (!path.ok()) return path.status();
  return Route{std::move(seg), *path};
}

// ---- puts -----------------------------------------------------------------

std::vector<Status> Client::Impl::BatchPut(const std::vector<std::string>& keys,
                                           const std::vector<Slice>& values,
                                           const ReplicateConfig& rc, int retries) {
  std::vector<Status> out(keys.size());
  if (Status st = Usable(); !st.ok()) return std::vector<Status>(keys.size(), st);
  if (keys.size() != values.size()) {
    return std::vector<Status>(keys.size(), Status(ErrorCode::INVALID_PARAMS,
                                                   std::to_string(keys.size()) + " keys but " +
                                                       std::to_string(values.size()) + " values"));
  }
  // Which entries go to the master: valid, and the first of any repeated key.
  std::vector<size_t> todo;
  std::unordered_map<std::string_view, size_t> first;
  std::vector<std::pair<size_t, size_t>> repeats;  // (index, index of the first)
  for (size_t i = 0; i < keys.size(); ++i) {
    if (Status st = CheckKey(keys[i]); !st.ok()) {
      out[i] = st;
    } else if (values[i].size == 0 || values[i].data == nullptr) {
      out[i] = Status(ErrorCode::INVALID_PARAMS, "put of '" + keys[i] + "': no bytes to store");
    } else if (auto [it, fresh] = first.emplace(keys[i], i); !fresh) {
      repeats.emplace_back(i, it->second);
    } else {
      todo.push_back(i);
    }
  }
  if (rc.replica_num == 0 || rc.replica_num > kMaxReplicas) {
    for (size_t i : todo) {
      out[i] = Status(ErrorCode::INVALID_PARAMS, "replica_num must be 1 to 16");
    }
    todo.clear();
  }

  std::vector<uint64_t> sums(keys.size(), 0);

  // Placement.
  std::vector<ReplicaListResponse> placed;
  Status rpc = ForChunks(todo.size(), [&](size_t a, size_t b) {
    PutStartRequest req;
    req.replica_num = rc.replica_num;
    req.preferred_segment = rc.preferred_segment;
    for (size_t j = a; j < b; ++j) req.items.push_back({keys[todo[j]], values[todo[j]].size});
    ReplicaListResponse res;
    Status st = Master().Call(MsgType::kPutStart, req, res);
    if (st.ok() && res.items.size() != b - a) {
      st = Status(ErrorCode::RPC_FAIL, "PutStart answered the wrong number of items");
    }
    placed.push_back(std::move(res));
    return st;
  });

  // Transfers: one op per replica.
  std::vector<TransferOp> ops;
  std::vector<size_t> op_key;  // index into keys
  std::vector<bool> started(keys.size(), false);
  for (size_t j = 0; j < todo.size(); ++j) {
    size_t i = todo[j];
    size_t chunk = j / kMaxBatchKeys;
    if (chunk >= placed.size() || (!rpc.ok() && chunk == placed.size() - 1)) {
      out[i] = Status(rpc.code(), "put of '" + keys[i] + "': " + rpc.message());
      continue;
    }
    const ReplicaListResponse& res = placed[chunk];
    const ReplicaItem& item = res.items[j % kMaxBatchKeys];
    if (item.code == static_cast<int32_t>(ErrorCode::OBJECT_ALREADY_EXISTS)) continue;  // OK
    if (item.code != 0) {
      out[i] = FromCode(item.code, keys[i], "put of");
      continue;
    }
    started[i] = true;
    for (const Replica& r : item.replicas) {
      Result<Route> route = RouteTo(res, r);
      if (!route.ok()) {
        if (out[i].ok()) out[i] = route.status();
        continue;
      }
      TransferOp op;
      op.segment = route->first;
      op.path = route->second;
      op.offset = r.offset;
      op.length = values[i].size;
      op.local = static_cast<uint8_t*>(values[i].data);
      op.write = true;
      ops.push_back(std::move(op));
      op_key.push_back(i);
    }
  }
  // The checksum comes with a shared-memory copy of the object; for objects
  // that go only over TCP or RDMA it is computed here, before the bytes leave.
  if (config_.checksums) {
    std::vector<bool> fused(keys.size(), false);
    for (size_t k = 0; k < ops.size(); ++k) {
      bool copies = ops[k].path == Path::kShm || ops[k].path == Path::kLocal;
      if (copies && !fused[op_key[k]]) {
        ops[k].want_checksum = fused[op_key[k]] = true;
      }
    }
    for (size_t i : todo) {
      if (started[i] && !fused[i]) sums[i] = ObjectChecksum(values[i].data, values[i].size);
    }
  }
  transport_->Run(ops);
  // Keys with a replica on a store that could not be reached are given back
  // below, and put again elsewhere once the master knows (defect 3 of the
  // faults issue: it kept placing on a dead store until --client-ttl).
  std::vector<bool> again(keys.size(), false);
  std::vector<std::string> unreachable;
  for (size_t k = 0; k < ops.size(); ++k) {
    if (ops[k].checksum) sums[op_key[k]] = *ops[k].checksum;
    Status& st = out[op_key[k]];
    if (!ops[k].result.ok() && retries > 0 && Unreachable(ops[k].result.code())) {
      again[op_key[k]] = true;
      if (std::find(unreachable.begin(), unreachable.end(), ops[k].segment->name) ==
          unreachable.end()) {
        unreachable.push_back(ops[k].segment->name);
        spdlog::warn(
            "put: segment '{}' could not be reached ({}); reporting it to the master and "
            "putting its keys elsewhere",
            ops[k].segment->name, ops[k].result.ToString());
      }
    }
    if (st.ok() && !ops[k].result.ok()) {
      st = Status(ops[k].result.code(),
                  "put of '" + keys[op_key[k]] + "': " + ops[k].result.message());
    }
  }

  // Commit what arrived whole; give back what did not.
  PutEndRequest end;
  std::vector<size_t> ended;
  KeysRequest revoke;
  for (size_t i : todo) {
    if (!started[i]) continue;
    if (out[i].ok()) {
      end.items.push_back({keys[i], sums[i]});
      ended.push_back(i);
    } else {
      revoke.keys.push_back(keys[i]);
    }
  }
  for (size_t a = 0; a < end.items.size(); a += kMaxBatchKeys) {
    size_t b = std::min(end.items.size(), a + kMaxBatchKeys);
    PutEndRequest part;
    part.items.assign(end.items.begin() + a, end.items.begin() + b);
    CodesResponse res;
    Status st = Master().Call(MsgType::kPutEnd, part, res);
    for (size_t j = a; j < b; ++j) {
      size_t i = ended[j];
      if (!st.ok()) {
        out[i] = Status(st.code(), "put of '" + keys[i] + "' (PutEnd): " + st.message());
        // Whether the master applied it is unknown: a revoke frees the
        // space if it did not, and is refused harmlessly if it did.
        revoke.keys.push_back(keys[i]);
      } else if (j - a < res.codes.size() &&
                 res.codes[j - a] != static_cast<int32_t>(ErrorCode::OBJECT_ALREADY_EXISTS)) {
        // Another writer that took the put over and finished it first
        // leaves the key stored: as with any put of an existing key, OK.
        out[i] = FromCode(res.codes[j - a], keys[i], "put of");
      }
      if (out[i].ok()) {
        puts_++;
        bytes_written_ += values[i].size;
      }
    }
  }
  for (size_t a = 0; a < revoke.keys.size(); a += kMaxBatchKeys) {
    KeysRequest part;
    part.keys.assign(revoke.keys.begin() + a,
                     revoke.keys.begin() + std::min(revoke.keys.size(), a + kMaxBatchKeys));
    CodesResponse res;
    if (Status st = Master().Call(MsgType::kPutRevoke, part, res); !st.ok()) {
      spdlog::warn(
          "PutRevoke of {} keys failed: {} (the master reclaims them after "
          "--put-start-release-timeout)",
          part.keys.size(), st.ToString());
    }
  }
  if (!unreachable.empty()) {
    CodesResponse reported;
    if (Status st = Master().Call(MsgType::kReportUnreachable, KeysRequest{unreachable}, reported);
        !st.ok()) {
      spdlog::warn("could not report {} unreachable segment(s) to the master: {}",
                   unreachable.size(), st.ToString());
    }
    std::vector<std::string> again_keys;
    std::vector<Slice> again_values;
    std::vector<size_t> again_index;
    for (size_t i : todo) {
      if (!again[i] || out[i].ok()) continue;
      again_keys.push_back(keys[i]);
      again_values.push_back(values[i]);
      again_index.push_back(i);
    }
    std::vector<Status> second = BatchPut(again_keys, again_values, rc, retries - 1);
    for (size_t k = 0; k < again_index.size(); ++k) {
      // No room anywhere else: the store that failed is the better answer.
      if (second[k].code() != ErrorCode::NO_AVAILABLE_HANDLE) out[again_index[k]] = second[k];
    }
  }
  for (auto [i, f] : repeats) out[i] = out[f];
  return out;
}

// ---- gets -----------------------------------------------------------------

std::vector<Result<uint64_t>> Client::Impl::BatchGet(const std::vector<std::string>& keys,
                                                     const std::vector<Slice>& buffers) {
  std::vector<Result<uint64_t>> out(keys.size(), Result<uint64_t>(uint64_t{0}));
  if (Status st = Usable(); !st.ok()) return std::vector<Result<uint64_t>>(keys.size(), st);
  if (keys.size() != buffers.size()) {
    return std::vector<Result<uint64_t>>(
        keys.size(),
        Status(ErrorCode::INVALID_PARAMS, std::to_string(keys.size()) + " keys but " +
                                              std::to_string(buffers.size()) + " buffers"));
  }
  std::vector<size_t> todo;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (Status st = CheckKey(keys[i]); !st.ok()) {
      out[i] = st;
    } else if (buffers[i].data == nullptr && buffers[i].size > 0) {
      out[i] = Status(ErrorCode::INVALID_PARAMS, "get of '" + keys[i] + "': null buffer");
    } else {
      todo.push_back(i);
    }
  }
  // The lease runs from the moment the request leaves.
  Clock::time_point asked = Clock::now();
  std::vector<ReplicaListResponse> found;
  Status rpc = ForChunks(todo.size(), [&](size_t a, size_t b) {
    KeysRequest req;
    for (size_t j = a; j < b; ++j) req.keys.push_back(keys[todo[j]]);
    ReplicaListResponse res;
    Status st = Master().Call(MsgType::kGetReplicaList, req, res);
    if (st.ok() && res.items.size() != b - a) {
      st = Status(ErrorCode::RPC_FAIL, "GetReplicaList answered the wrong number of items");
    }
    found.push_back(std::move(res));
    return st;
  });

  // Per key: the replicas in the order to try them (same host first).
  struct Want {
    size_t key;
    const ReplicaItem* item;
    const ReplicaListResponse* res;
    struct Try {
      Route route;
      uint64_t offset;
    };
    std::vector<Try> tries;
    size_t next = 0;
    Status last;
  };
  std::vector<Want> wants;
  for (size_t j = 0; j < todo.size(); ++j) {
    size_t i = todo[j];
    size_t chunk = j / kMaxBatchKeys;
    if (chunk >= found.size() || (!rpc.ok() && chunk == found.size() - 1)) {
      out[i] = Status(rpc.code(), "get of '" + keys[i] + "': " + rpc.message());
      continue;
    }
    const ReplicaListResponse& res = found[chunk];
    const ReplicaItem& item = res.items[j % kMaxBatchKeys];
    if (item.code != 0) {
      out[i] = FromCode(item.code, keys[i], "get of");
      continue;
    }
    if (item.size > buffers[i].size) {
      out[i] = Status(ErrorCode::INVALID_PARAMS,
                      "get of '" + keys[i] + "': the object has " + std::to_string(item.size) +
                          " bytes, the buffer " + std::to_string(buffers[i].size));
      continue;
    }
    Want w{i, &item, &res, {}, 0, Status()};
    for (const Replica& r : item.replicas) {
      Result<Route> route = RouteTo(res, r);
      if (!route.ok()) {
        w.last = route.status();
        continue;
      }
      w.tries.push_back({*route, r.offset});
    }
    // Same-host copies first, then the rest in the master's order.
    std::stable_partition(w.tries.begin(), w.tries.end(),
                          [](const Want::Try& t) { return t.route.second != Path::kTcp; });
    if (w.tries.empty()) {
      Status why = w.last.ok() ? Status(ErrorCode::INVALID_REPLICA, "no replica") : w.last;
      out[i] = Status(why.code(), "get of '" + keys[i] + "': " + why.message());
      continue;
    }
    wants.push_back(std::move(w));
  }

  // Rounds: every key's next replica until each has its bytes or none is left.
  std::vector<Want*> pending;
  for (Want& w : wants) pending.push_back(&w);
  while (!pending.empty()) {
    std::vector<TransferOp> ops;
    for (Want* w : pending) {
      TransferOp op;
      const Want::Try& t = w->tries[w->next];
      op.segment = t.route.first;
      op.path = t.route.second;
      op.offset = t.offset;
      op.length = w->item->size;
      op.local = static_cast<uint8_t*>(buffers[w->key].data);
      op.want_checksum = config_.checksums && w->item->checksum != 0;
      ops.push_back(std::move(op));
    }
    transport_->Run(ops);
    std::vector<Want*> again;
    for (size_t k = 0; k < pending.size(); ++k) {
      Want* w = pending[k];
      Status st = ops[k].result;
      if (st.ok()) {
        auto lease = std::chrono::milliseconds(w->res->lease_ttl_ms);
        if (Clock::now() - asked > lease) {
          lease_expirations_++;
          st = Status(ErrorCode::LEASE_EXPIRED, "the transfer finished after the read lease of " +
                                                    std::to_string(lease.count()) + " ms ran out");
        } else if (config_.checksums && w->item->checksum != 0 &&
                   (ops[k].checksum ? *ops[k].checksum
                                    : ObjectChecksum(buffers[w->key].data, w->item->size)) !=
                       w->item->checksum) {
          checksum_mismatches_++;
          spdlog::warn("get of '{}': checksum mismatch on the replica in segment '{}'",
                       keys[w->key], ops[k].segment->name);
          st = Status(ErrorCode::CHECKSUM_MISMATCH, "the bytes read from segment '" +
                                                        ops[k].segment->name +
                                                        "' do not match the object's checksum");
        }
      }
      if (st.ok()) {
        out[w->key] = w->item->size;
        gets_++;
        bytes_read_ += w->item->size;
        continue;
      }
      w->last = st;
      // A lease that ran out will not come back by trying another replica.
      if (st.code() != ErrorCode::LEASE_EXPIRED && ++w->next < w->tries.size()) {
        again.push_back(w);
      } else {
        out[w->key] = Status(st.code(), "get of '" + keys[w->key] + "': " + st.message());
      }
    }
    pending = std::move(again);
  }
  // Done with every key: end the leases still running, so that eviction can
  // take these objects at once instead of one lease TTL later. A lease that
  // ran out needs no release (the master ignores it anyway).
  KeysRequest release;
  for (const Want& w : wants) {
    if (Clock::now() - asked < std::chrono::milliseconds(w.res->lease_ttl_ms)) {
      release.keys.push_back(keys[w.key]);
    }
  }
  for (size_t a = 0; a < release.keys.size(); a += kMaxBatchKeys) {
    KeysRequest part;
    part.keys.assign(release.keys.begin() + static_cast<std::ptrdiff_t>(a),
                     release.keys.begin() + static_cast<std::ptrdiff_t>(
                                                std::min(release.keys.size(), a + kMaxBatchKeys)));
    if (Status st = Master().Send(MsgType::kReleaseLeases, part); !st.ok()) {
      spdlog::debug("ReleaseLeases of {} keys not sent: {} (they end with their TTL)",
                    part.keys.size(), st.ToString());
    }
  }
  return out;
}

// ---- the rest -------------------------------------------------------------

std::vector<Result<bool>> Client::Impl::BatchExist(const std::vector<std::string>& keys) {
  std::vector<Result<bool>> out(keys.size(), Result<bool>(false));
  if (Status st = Usable(); !st.ok()) return std::vector<Result<bool>>(keys.size(), st);
  std::vector<size_t> todo;
  for (size_t i = 0; i < keys.size(); ++i) {
    if (Status st = CheckKey(keys[i]); !st.ok()) {
      out[i] = st;
    } else {
      todo.push_back(i);
    }
  }
  Status rpc = ForChunks(todo.size(), [&](size_t a, size_t b) {
    KeysRequest req;
    for (size_t j = a; j < b; ++j) req.keys.push_back(keys[todo[j]]);
    CodesResponse res;
    Status st = Master().Call(MsgType::kExistKey, req, res);
    if (st.ok() && res.codes.size() != b - a) {
      st = Status(ErrorCode::RPC_FAIL, "ExistKey answered the wrong number of codes");
    }
    for (size_t j = a; j < b; ++j) {
      size_t i = todo[j];
      if (!st.ok()) {
        out[i] = Status(st.code(), "exist of '" + keys[i] + "': " + st.message());
      } else if (res.codes[j - a] == static_cast<int32_t>(ErrorCode::OBJECT_NOT_FOUND)) {
        out[i] = false;
      } else if (res.codes[j - a] == 0) {
        out[i] = true;
      } else {
        out[i] = FromCode(res.codes[j - a], keys[i], "exist of");
      }
    }
    return Status::Ok();
  });
  (void)rpc;
  return out;
}

Result<uint64_t> Client::Impl::GetSize(std::string_view key) {
  if (Status st = Usable(); !st.ok()) return st;
  if (Status st = CheckKey(key); !st.ok()) return st;
  SizesResponse res;
  if (Status st = Master().Call(MsgType::kGetSize, KeysRequest{{std::string(key)}}, res);
      !st.ok()) {
    return st;
  }
  if (res.items.size() != 1) return Status(ErrorCode::RPC_FAIL, "GetSize answered no item");
  if (res.items[0].code != 0) return FromCode(res.items[0].code, std::string(key), "size of");
  return res.items[0].size;
}

Status Client::Impl::Remove(std::string_view key, bool force) {
  if (Status st = Usable(); !st.ok()) return st;
  if (Status st = CheckKey(key); !st.ok()) return st;
  CodesResponse res;
  RemoveRequest req{force, {std::string(key)}};
  if (Status st = Master().Call(MsgType::kRemove, req, res); !st.ok()) return st;
  if (res.codes.size() != 1) return Status(ErrorCode::RPC_FAIL, "Remove answered no code");
  return FromCode(res.codes[0], std::string(key), "remove of");
}

Result<uint64_t> Client::Impl::RemoveAll(bool force) {
  if (Status st = Usable(); !st.ok()) return st;
  RemoveAllResponse res;
  if (Status st = Master().Call(MsgType::kRemoveAll, RemoveAllRequest{force}, res); !st.ok()) {
    return st;
  }
  if (res.code != 0) return FromCode(res.code, "*", "remove of");
  return res.removed;
}

Status Client::Impl::RegisterBuffer(void* data, uint64_t size) {
  if (Status st = Usable(); !st.ok()) return st;
  if (data == nullptr || size == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "register_buffer: null or empty range");
  }
  uintptr_t start = reinterpret_cast<uintptr_t>(data);
  if (start + size < start) return Status(ErrorCode::INVALID_PARAMS, "range wraps around");
  std::lock_guard<std::mutex> lock(buffers_mu_);
  auto next = buffers_.lower_bound(start);
  bool overlaps = (next != buffers_.end() && next->first < start + size);
  if (next != buffers_.begin()) {
    auto prev = std::prev(next);
    overlaps = overlaps || prev->first + prev->second > start;
  }
  if (overlaps) {
    return Status(ErrorCode::INVALID_PARAMS, "register_buffer: overlaps a registered range");
  }
  // RDMA moves bytes from and into this range without registering it per call.
  if (RdmaEngine* rdma = transport_->rdma()) {
    if (Status st = rdma->RegisterMemory(data, size); !st.ok()) return st;
  }
  buffers_.emplace(start, size);
  return Status::Ok();
}

Status Client::Impl::UnregisterBuffer(void* data) {
  if (Status st = Usable(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(buffers_mu_);
  if (buffers_.erase(reinterpret_cast<uintptr_t>(data)) == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "unregister_buffer: no range registered there");
  }
  if (RdmaEngine* rdma = transport_->rdma()) return rdma->UnregisterMemory(data);
  return Status::Ok();
}

ClientStats Client::Impl::Stats() const {
  ClientStats s;
  s.puts = puts_;
  s.gets = gets_;
  s.bytes_written = bytes_written_;
  s.bytes_read = bytes_read_;
  s.checksum_mismatches = checksum_mismatches_;
  s.lease_expirations = lease_expirations_;
  if (transport_) {
    const TransportCounters& c = transport_->counters();
    s.shm_transfers = c.shm_transfers;
    s.tcp_transfers = c.tcp_transfers;
    s.tcp_connections_opened = c.tcp_connections_opened;
    s.rdma_transfers = c.rdma_transfers;
  }
  return s;
}

// ---- Client ---------------------------------------------------------------

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

Result<std::unique_ptr<Client>> Client::Open(const ClientConfig& config) {
  auto impl = std::make_unique<Impl>(config);
  if (Status st = impl->Open(); !st.ok()) return st;
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Status Client::Put(std::string_view key, const void* data, uint64_t size,
                   const ReplicateConfig& rc) {
  return impl_->BatchPut({std::string(key)}, {Slice{const_cast<void*>(data), size}}, rc)[0];
}

Result<uint64_t> Client::Get(std::string_view key, void* buffer, uint64_t capacity) {
  return impl_->BatchGet({std::string(key)}, {Slice{buffer, capacity}})[0];
}

std::vector<Status> Client::BatchPut(const std::vector<std::string>& keys,
                                     const std::vector<Slice>& values, const ReplicateConfig& rc) {
  return impl_->BatchPut(keys, values, rc);
}

std::vector<Result<uint64_t>> Client::BatchGet(const std::vector<std::string>& keys,
                                               const std::vector<Slice>& buffers) {
  return impl_->BatchGet(keys, buffers);
}

Result<bool> Client::Exist(std::string_view key) {
  return impl_->BatchExist({std::string(key)})[0];
}

std::vector<Result<bool>> Client::BatchExist(const std::vector<std::string>& keys) {
  return impl_->BatchExist(keys);
}

Result<uint64_t> Client::GetSize(std::string_view key) { return impl_->GetSize(key); }
Status Client::Remove(std::string_view key, bool force) { return impl_->Remove(key, force); }
Result<uint64_t> Client::RemoveAll(bool force) { return impl_->RemoveAll(force); }
Status Client::RegisterBuffer(void* data, uint64_t size) {
  return impl_->RegisterBuffer(data, size);
}
Status Client::UnregisterBuffer(void* data) { return impl_->UnregisterBuffer(data); }
void Client::Close() { impl_->Close(); }
const std::string& Client::host_id() const { return impl_->host_id_; }
const std::string& Client::segment_name() const { return impl_->segment_name_; }
ClientStats Client::stats() const { return impl_->Stats(); }

}  // namespace kvcached
