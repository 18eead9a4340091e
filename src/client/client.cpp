#include "kvcached/client.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <map>
#include <mutex>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "client/batch_context.h"
#include "client/client_settings.h"
#include "client/get_batch.h"
#include "client/master_link.h"
#include "client/put_batch.h"
#include "client/rdma_path.h"
#include "client/replica_desc_batch.h"
#include "client/router.h"
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

constexpr size_t kRpcConnections = 4;     // master connections shared by the caller threads
constexpr unsigned kAutoCopyThreads = 4;  // copy_threads 0: one per core, at most this
// A put whose store could not be reached is tried elsewhere this many more
// times within the call.
constexpr int kUnreachableRetries = 2;

}  // namespace

class Client::Impl {
 public:
  explicit Impl(ClientConfig config) : config_(std::move(config)) {}
  ~Impl() { Close(); }

  Status Open();
  void Close();

  std::vector<Status> BatchPut(const std::vector<std::string>& keys,
                               const std::vector<Slice>& values, const ReplicateConfig& rc,
                               bool upsert);
  std::vector<Result<uint64_t>> BatchGet(const std::vector<std::string>& keys,
                                         const std::vector<Slice>& buffers);
  std::vector<Result<bool>> BatchExist(const std::vector<std::string>& keys);
  Result<uint64_t> GetSize(std::string_view key);
  std::vector<Result<ObjectPlaces>> GetReplicaDesc(const std::vector<std::string>& keys);
  Status Remove(std::string_view key, bool force);
  Result<uint64_t> RemoveAll(bool force);
  Result<uint64_t> RemoveByRegex(std::string_view pattern, bool force);
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
  // Protocol "rdma": the engine that reaches other stores' segments, and
  // the target that serves this client's own segment.
  Status OpenRdma(const std::vector<std::string>& devices);
  Status ServeRdma(const std::vector<std::string>& devices);
  Status NoRdma(const std::string& why);
  const ClientConfig config_;
  std::string client_id_;
  std::optional<AuthToken> token_;
  std::unique_ptr<RpcMasterLink> master_;
  std::unique_ptr<Transport> transport_;
  std::unique_ptr<Router> router_;
  ClientCounters counters_;
  std::unique_ptr<BatchContext> ctx_;
  std::atomic<bool> closed_{false};
  std::mutex close_mu_;

  std::mutex buffers_mu_;                  // guards buffers_
  std::map<uintptr_t, uint64_t> buffers_;  // start -> size

  // The segment this client contributes, when it does.
  std::unique_ptr<MetricsRegistry> metrics_;
  std::unique_ptr<boost::asio::io_context> ioc_;
  std::unique_ptr<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>> work_;
  std::vector<std::thread> io_threads_;
  std::unique_ptr<SegmentHost> segment_;
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
  hello.tenant = config_.tenant_id;
  if (token_) hello.token = token_->secret();
  RpcClientOptions o;
  o.address = config_.master_server_addr;
  o.hello = hello;
  o.connect_timeout = config_.connect_timeout;
  o.call_timeout = config_.rpc_timeout;
  o.connect_attempts = 2;
  master_ = std::make_unique<RpcMasterLink>(o, kRpcConnections);
  if (Status st = master_->Connect(); !st.ok()) return st;

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
    h.memory.size_setting = "global_segment_size";  // errors name the client's settings
    h.memory.hugepages_setting = "hugepages";
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
  router_ = std::make_unique<Router>(config_.transport, host_id_, t.own_instance, *transport_);
  ctx_ = std::make_unique<BatchContext>(
      BatchContext{*master_, *transport_, *router_, counters_, config_.checksums});
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
  if (master_) master_->Close();
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
  Result<std::unique_ptr<RdmaPath>> path = RdmaPath::Open(
      transport_->options(), transport_->counters(), RdmaSettings(config_, devices));
  if (path.code() == ErrorCode::NOT_SUPPORTED) return NoRdma(path.status().message());
  if (!path.ok()) return path.status();
  transport_->SetPath(Path::kRdma, std::move(path).value());
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

// ---- puts and gets (put_batch.h, get_batch.h) -----------------------------

std::vector<Status> Client::Impl::BatchPut(const std::vector<std::string>& keys,
                                           const std::vector<Slice>& values,
                                           const ReplicateConfig& rc, bool upsert) {
  if (Status st = Usable(); !st.ok()) return std::vector<Status>(keys.size(), st);
  return PutBatch(*ctx_, keys, values, rc, upsert).Run(kUnreachableRetries);
}

std::vector<Result<uint64_t>> Client::Impl::BatchGet(const std::vector<std::string>& keys,
                                                     const std::vector<Slice>& buffers) {
  if (Status st = Usable(); !st.ok()) return std::vector<Result<uint64_t>>(keys.size(), st);
  return GetBatch(*ctx_, keys, buffers).Run();
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
  Status rpc = ForBatchChunks(todo.size(), [&](size_t a, size_t b) {
    KeysRequest req;
    for (size_t j = a; j < b; ++j) req.keys.push_back(keys[todo[j]]);
    CodesResponse res;
    Status st = master_->Call(MsgType::kExistKey, req, res);
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
  if (Status st = master_->Call(MsgType::kGetSize, KeysRequest{{std::string(key)}}, res);
      !st.ok()) {
    return st;
  }
  if (res.items.size() != 1) return Status(ErrorCode::RPC_FAIL, "GetSize answered no item");
  if (res.items[0].code != 0) return FromCode(res.items[0].code, std::string(key), "size of");
  return res.items[0].size;
}

std::vector<Result<ObjectPlaces>> Client::Impl::GetReplicaDesc(
    const std::vector<std::string>& keys) {
  if (Status st = Usable(); !st.ok()) return std::vector<Result<ObjectPlaces>>(keys.size(), st);
  return ReplicaDescBatch(*ctx_, keys).Run();
}

Status Client::Impl::Remove(std::string_view key, bool force) {
  if (Status st = Usable(); !st.ok()) return st;
  if (Status st = CheckKey(key); !st.ok()) return st;
  CodesResponse res;
  RemoveRequest req{force, {std::string(key)}};
  if (Status st = master_->Call(MsgType::kRemove, req, res); !st.ok()) return st;
  if (res.codes.size() != 1) return Status(ErrorCode::RPC_FAIL, "Remove answered no code");
  return FromCode(res.codes[0], std::string(key), "remove of");
}

Result<uint64_t> Client::Impl::RemoveAll(bool force) {
  if (Status st = Usable(); !st.ok()) return st;
  RemoveAllResponse res;
  if (Status st = master_->Call(MsgType::kRemoveAll, RemoveAllRequest{force}, res); !st.ok()) {
    return st;
  }
  if (res.code != 0) return FromCode(res.code, "*", "remove of");
  return res.removed;
}

Result<uint64_t> Client::Impl::RemoveByRegex(std::string_view pattern, bool force) {
  if (Status st = Usable(); !st.ok()) return st;
  if (pattern.empty() || pattern.size() > kMaxRegexBytes) {
    return Status(ErrorCode::INVALID_PARAMS, "remove_by_regex: the pattern must have 1 to " +
                                                 std::to_string(kMaxRegexBytes) + " bytes");
  }
  RemoveAllResponse res;
  if (Status st = master_->Call(MsgType::kRemoveByRegex,
                                RemoveByRegexRequest{std::string(pattern), force}, res);
      !st.ok()) {
    return st;
  }
  if (res.code != 0) return FromCode(res.code, std::string(pattern), "remove by regex");
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
  if (Status st = transport_->RegisterMemory(data, size); !st.ok()) return st;
  buffers_.emplace(start, size);
  return Status::Ok();
}

Status Client::Impl::UnregisterBuffer(void* data) {
  if (Status st = Usable(); !st.ok()) return st;
  std::lock_guard<std::mutex> lock(buffers_mu_);
  if (buffers_.erase(reinterpret_cast<uintptr_t>(data)) == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "unregister_buffer: no range registered there");
  }
  return transport_->UnregisterMemory(data);
}

ClientStats Client::Impl::Stats() const {
  ClientStats s;
  s.puts = counters_.puts;
  s.gets = counters_.gets;
  s.bytes_written = counters_.bytes_written;
  s.bytes_read = counters_.bytes_read;
  s.checksum_mismatches = counters_.checksum_mismatches;
  s.lease_expirations = counters_.lease_expirations;
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
  return impl_->BatchPut({std::string(key)}, {Slice{const_cast<void*>(data), size}}, rc,
                         /*upsert=*/false)[0];
}

Result<uint64_t> Client::Get(std::string_view key, void* buffer, uint64_t capacity) {
  return impl_->BatchGet({std::string(key)}, {Slice{buffer, capacity}})[0];
}

std::vector<Status> Client::BatchPut(const std::vector<std::string>& keys,
                                     const std::vector<Slice>& values, const ReplicateConfig& rc) {
  return impl_->BatchPut(keys, values, rc, /*upsert=*/false);
}

Status Client::Upsert(std::string_view key, const void* data, uint64_t size,
                      const ReplicateConfig& rc) {
  return impl_->BatchPut({std::string(key)}, {Slice{const_cast<void*>(data), size}}, rc,
                         /*upsert=*/true)[0];
}

std::vector<Status> Client::BatchUpsert(const std::vector<std::string>& keys,
                                        const std::vector<Slice>& values,
                                        const ReplicateConfig& rc) {
  return impl_->BatchPut(keys, values, rc, /*upsert=*/true);
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
std::vector<Result<ObjectPlaces>> Client::GetReplicaDesc(const std::vector<std::string>& keys) {
  return impl_->GetReplicaDesc(keys);
}
Status Client::Remove(std::string_view key, bool force) { return impl_->Remove(key, force); }
Result<uint64_t> Client::RemoveAll(bool force) { return impl_->RemoveAll(force); }

Result<uint64_t> Client::RemoveByRegex(std::string_view pattern, bool force) {
  return impl_->RemoveByRegex(pattern, force);
}
Status Client::RegisterBuffer(void* data, uint64_t size) {
  return impl_->RegisterBuffer(data, size);
}
Status Client::UnregisterBuffer(void* data) { return impl_->UnregisterBuffer(data); }
void Client::Close() { impl_->Close(); }
const std::string& Client::host_id() const { return impl_->host_id_; }
const std::string& Client::segment_name() const { return impl_->segment_name_; }
ClientStats Client::stats() const { return impl_->Stats(); }

}  // namespace kvcached
