#include "kvcached/client.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <deque>
#include <map>
#include <mutex>
#include <thread>
#include <utility>

#include <spdlog/spdlog.h>
#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "client/batch_context.h"
#include "client/checksum.h"
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
#include "core/units.h"
#include "net/leader_lookup.h"
#include "net/rpc_client.h"
#include "rdma/rdma_transport.h"
#include "store/segment_host.h"

namespace kvcached {
namespace {

constexpr size_t kRpcConnections = 4;     // master connections shared by the caller threads
constexpr unsigned kAutoCopyThreads = 4;  // copy_threads 0: one per core, at most this
// A put whose store could not be reached is tried elsewhere this many more
// times within the call.
constexpr int kUnreachableRetries = 2;
constexpr uint64_t kHugePageBytes = 2u << 20;

// The default segment name, `<host id>:<pid>:<n>`: n counts every segment
// made in this process, so two clients (or two segments of one) never share one.
std::string NextSegmentName(const std::string& host_id) {
  static std::atomic<unsigned> segments_in_process{0};
  return host_id + ":" + std::to_string(getpid()) + ":" +
         std::to_string(segments_in_process.fetch_add(1));
}

uint64_t RoundUp(uint64_t n, uint64_t unit) { return (n + unit - 1) / unit * unit; }

// A file descriptor, closed with the object.
class Fd {
 public:
  Fd() = default;
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() { Reset(); }
  Fd(Fd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  Fd& operator=(Fd&& other) noexcept {
    if (this != &other) {
      Reset();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  void Reset() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }
  int fd_ = -1;
};

// ---- the disk tier under the setup segment ---------------------------------

// Tier files one directory holds for clients: kvcached-client-0 to -255.
constexpr unsigned kDiskTierSlots = 256;
constexpr uint64_t kDiskBlockBytes = 4096;
// DiskTier's staging memory: the store's default, but no more than the
// largest record a segment can demote (its memory, rounded up to huge pages,
// plus a record header of at most 8 KiB, disk_tier.h), so a small segment
// does not pay for 64 MiB of staging.
constexpr uint64_t kDiskStagingBytes = 64ull << 20;
constexpr uint64_t kDiskRecordHeaderBytes = 8192;

struct DiskSlot {
  std::string name;  // the tier file is <dir>/<name>.kvtier
  Fd lock;           // the flock on <dir>/<name>.lock, the claim on that name
};

// The first tier name kvcached-client-<n> of `dir` that no live process
// holds, claimed by an flock on <dir>/kvcached-client-<n>.lock for as long as
// the returned descriptor is open. Names are per directory, not per segment
// (a default segment name carries the pid): a restarted client finds its
// slot, and the file with its records, again instead of leaving the file
// behind and making another; clients alive at once get different files (the
// tier's own flock would refuse a shared one). A separate lock file, since
// an flock on the tier file itself would conflict with DiskTier's.
Result<DiskSlot> ClaimDiskSlot(const std::string& dir) {
  for (unsigned n = 0; n < kDiskTierSlots; ++n) {
    DiskSlot slot{"kvcached-client-" + std::to_string(n), Fd()};
    const std::string path = dir + "/" + slot.name + ".lock";
    slot.lock = Fd(::open(path.c_str(), O_RDWR | O_CREAT | O_CLOEXEC, 0600));
    if (slot.lock.get() < 0) {
      return Status(ErrorCode::NO_AVAILABLE_HANDLE, path + ": " + std::strerror(errno));
    }
    if (::flock(slot.lock.get(), LOCK_EX | LOCK_NB) == 0) return slot;
    if (errno != EWOULDBLOCK) {
      return Status(ErrorCode::NO_AVAILABLE_HANDLE, path + ": flock: " + std::strerror(errno));
    }
  }
  return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                "live processes hold all " + std::to_string(kDiskTierSlots) +
                    " client tier files kvcached-client-<n>");
}

struct DiskSize {
  uint64_t bytes = 0;
  std::string why;  // for the log line
};

// disk_size 0: the size of the tier file found at `file` (a restart keeps
// it, and a tier with records refuses another), else 4x the segment, at most
// half the free space of the file system under `dir` (the rest is left to
// everything else on it); 4 KiB blocks.
DiskSize DefaultDiskSize(const std::string& file, const std::string& dir, uint64_t segment_bytes) {
  struct stat st {};
  if (::stat(file.c_str(), &st) == 0 && S_ISREG(st.st_mode) && st.st_size > 0) {
    return {static_cast<uint64_t>(st.st_size), "the size of the file found there"};
  }
  const uint64_t four_segments = 4 * segment_bytes / kDiskBlockBytes * kDiskBlockBytes;
  struct statvfs fs {};
  if (::statvfs(dir.c_str(), &fs) != 0) {  // DiskTier::Open names the problem
    return {four_segments, "4x the segment's " + FormatSize(segment_bytes)};
  }
  const uint64_t free_bytes = static_cast<uint64_t>(fs.f_bavail) * fs.f_frsize;
  const uint64_t half_free = free_bytes / 2 / kDiskBlockBytes * kDiskBlockBytes;
  if (four_segments <= half_free) {
    return {four_segments, "4x the segment's " + FormatSize(segment_bytes) + ", within half the " +
                               FormatSize(free_bytes) + " free there"};
  }
  return {half_free, "half the " + FormatSize(free_bytes) + " free there, less than 4x the " +
                         "segment's " + FormatSize(segment_bytes)};
}

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
  Result<MountedSegment> MountSegment(const SegmentSpec& spec);
  Status UnmountSegments(const std::vector<std::string>& names, bool free_memory);
  std::vector<std::string> MountedSegments() const;
  Result<TaskId> CreateTask(const CreateTaskRequest& req);
  Result<ReplicaTaskInfo> QueryTask(TaskId id);
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
  Status ServeRdma(const std::vector<std::string>& devices, SegmentHost& host);
  // What every segment of this client shares (master, token, bind address).
  SegmentHostOptions HostOptions(const std::string& name, const std::string& owner_id) const;
  // The disk tier of the setup segment, into h.disk, from disk_path,
  // enable_ssd_offload, ssd_offload_path, disk_size and disk_fsync. Fails only
  // (INVALID_PARAMS) when enable_ssd_offload names no directory; a tier that
  // cannot be had is logged and the segment keeps objects in memory alone, as
  // a store's does. Segments MountSegment adds have no disk tier.
  Status PlanDiskTier(SegmentHostOptions& h);
  void StartIo();  // the io_context and threads that serve this client's segments
  // Served but not (or no longer) mounted: stopped, memory released, kept in retired_.
  void Retire(std::unique_ptr<SegmentHost> host);
  const ClientConfig config_;
  std::vector<std::string> rdma_devices_;
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
  // The claim on the setup segment's disk tier file (ClaimDiskSlot), given up
  // by Close once the segment's Unmount has closed the tier; declared before
  // segment_ so that it outlives the tier in any case.
  Fd disk_slot_;
  std::unique_ptr<SegmentHost> segment_;

  // Segments MountSegment added. A host that was served is destroyed only
  // after the io threads are joined (Close): until then a server handler may
  // still run on its memory, so an unmounted one waits in retired_ with its
  // memory already given back (SegmentMemory::Release). This client's own
  // transfers never use these mappings: they reach extra segments like any
  // same-host store's (a mapping of their own through the shm socket, or TCP).
  struct ExtraSegment {
    std::unique_ptr<SegmentHost> host;
    bool allocated = false;  // memory of our own, not a caller's file
  };
  mutable std::mutex segments_mu_;  // guards extras_, retired_, extra_count_ and StartIo
  std::map<std::string, ExtraSegment> extras_;
  std::vector<std::unique_ptr<SegmentHost>> retired_;
  unsigned extra_count_ = 0;

  // Replica tasks this client created, run one at a time on task_thread_
  // (started with the first task) in the order they were created.
  void RunTasks();
  void RunTask(const TaskRef& task);
  // Reads the object (item 0 of TaskStart's answer) from one of its
  // replicas and writes it to every target range (item 1).
  Status CopyObject(const ReplicaListResponse& res, std::chrono::steady_clock::time_point asked);
  void EndTask(const TaskRef& task, const Status& result);
  std::mutex tasks_mu_;  // guards the three below
  std::condition_variable tasks_cv_;
  std::deque<TaskRef> task_queue_;
  bool tasks_stopping_ = false;
  std::thread task_thread_;
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
  if (Status st = ApplyMasterAddress(o, config_.master_server_addr, config_.cluster_id); !st.ok()) {
    return st;
  }
  o.hello = hello;
  o.connect_timeout = config_.connect_timeout;
  o.call_timeout = config_.rpc_timeout;
  o.connect_attempts = 2;
  // Following a leader in etcd: a call made during an election waits for
  // the next leader (within one call timeout) instead of failing.
  if (o.resolve_address) o.reconnect_window = config_.rpc_timeout;
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

  rdma_devices_ = *devices;
  if (config_.global_segment_size > 0) {
    SegmentHostOptions h = HostOptions(
        !config_.segment_name.empty() ? config_.segment_name : NextSegmentName(host_id_),
        client_id_ + "-segment");
    h.memory.size_bytes = config_.global_segment_size;
    if (Status st = PlanDiskTier(h); !st.ok()) return st;
    Result<std::unique_ptr<SegmentHost>> host = SegmentHost::Create(h);
    if (!host.ok()) return host.status();
    segment_ = std::move(host).value();
    if (Status st = ServeRdma(*devices); !st.ok()) return st;
    StartIo();
    if (Status st = segment_->Serve(*ioc_, *metrics_); !st.ok()) return st;
    if (Status st = segment_->Mount(); !st.ok()) return st;
    segment_name_ = segment_->name();
    t.own_instance = segment_->endpoint().instance;
    t.own_base = segment_->memory().data();
    t.own_size = segment_->memory().size();
  } else if (!config_.disk_path.empty() || config_.enable_ssd_offload) {
    spdlog::warn(
        "{} ignored: a disk tier sits under a segment the client contributes, and "
        "global_segment_size is 0",
        !config_.disk_path.empty() ? "disk_path '" + config_.disk_path + "'"
                                   : std::string("enable_ssd_offload"));
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

SegmentHostOptions Client::Impl::HostOptions(const std::string& name,
                                              const std::string& owner_id) const {
  SegmentHostOptions h;
  h.master = config_.master_server_addr;
  h.cluster_id = config_.cluster_id;
  h.client_id = owner_id;
  h.host_id = host_id_;
  h.segment_name = name;
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
  return h;
}

Status Client::Impl::PlanDiskTier(SegmentHostOptions& h) {
  Result<std::string> dir = DiskTierDirectory(config_, ProcessEnv());
  if (!dir.ok()) return dir.status();
  if (dir->empty()) {
    if (!config_.ssd_offload_path.empty()) {
      spdlog::info("ssd_offload_path '{}' is not used: enable_ssd_offload is off",
                   config_.ssd_offload_path);
    }
    return Status::Ok();
  }
  const std::string memory_only = "; segment '" + h.segment_name + "' keeps objects in memory only";
  Result<DiskSlot> slot = ClaimDiskSlot(*dir);
  if (!slot.ok()) {
    spdlog::error("disk tier in {} not opened: {}{}", *dir, slot.status().message(), memory_only);
    return Status::Ok();
  }
  const std::string file = *dir + "/" + slot->name + ".kvtier";
  DiskSize size{config_.disk_size, "disk_size"};
  if (size.bytes == 0) size = DefaultDiskSize(file, *dir, config_.global_segment_size);
  if (size.bytes < kMinDiskTierBytes) {
    spdlog::error("disk tier {} not opened: {} ({}) is less than the {} a tier needs{}", file,
                  FormatSize(size.bytes), size.why, FormatSize(kMinDiskTierBytes), memory_only);
    return Status::Ok();
  }
  h.disk.dir = *dir;
  h.disk.name = slot->name;
  h.disk.capacity_bytes = size.bytes;
  h.disk.staging_bytes =
      std::min(kDiskStagingBytes,
               RoundUp(config_.global_segment_size, kHugePageBytes) + kDiskRecordHeaderBytes);
  h.disk.fsync = config_.disk_fsync;
  disk_slot_ = std::move(slot.value().lock);
  spdlog::info("disk tier for segment '{}': {}, {} ({}){}", h.segment_name, file,
               FormatSize(size.bytes), size.why, h.disk.fsync ? ", fdatasync per object" : "");
  return Status::Ok();
}

void Client::Impl::StartIo() {
  if (ioc_) return;
  metrics_ = std::make_unique<MetricsRegistry>();
  ioc_ = std::make_unique<boost::asio::io_context>();
  work_ = std::make_unique<boost::asio::executor_work_guard<boost::asio::io_context::executor_type>>(
      ioc_->get_executor());
  for (int i = 0; i < 2; ++i) io_threads_.emplace_back([this] { ioc_->run(); });
}

void Client::Impl::Close() {
  std::lock_guard<std::mutex> lock(close_mu_);
  closed_ = true;
  {
    std::lock_guard<std::mutex> tasks(tasks_mu_);
    tasks_stopping_ = true;
  }
  tasks_cv_.notify_all();
  if (task_thread_.joinable()) task_thread_.join();
  {
    std::lock_guard<std::mutex> segments(segments_mu_);
    for (auto& [name, extra] : extras_) {
      extra.host->BeginShutdown();
      if (Status st = extra.host->Unmount(); !st.ok()) {
        spdlog::warn("close: could not unmount segment '{}' at the master: {}", name,
                     st.ToString());
      }
      Retire(std::move(extra.host));
    }
    extras_.clear();
  }
  if (segment_) {
    segment_->BeginShutdown();
    (void)segment_->Unmount();  // closes its disk tier: the slot's file is free for others
  }
  disk_slot_ = Fd();
  if (work_) work_.reset();
  if (ioc_) ioc_->stop();
  for (std::thread& t : io_threads_) t.join();
  io_threads_.clear();
  {
    // No server handler runs any more, and this client's transfers never
    // use these mappings (see ExtraSegment): free them now.
    std::lock_guard<std::mutex> segments(segments_mu_);
    retired_.clear();
  }
  // The setup segment's memory stays mapped until the client is destroyed:
  // a call still running on another thread may be copying into it.
  if (transport_) transport_->Close();
  if (master_) master_->Close();
}

// ---- replica tasks --------------------------------------------------------

Result<TaskId> Client::Impl::CreateTask(const CreateTaskRequest& req) {
  if (Status st = Usable(); !st.ok()) return st;
  if (Status st = CheckKey(req.key); !st.ok()) return st;
  const char* what = req.type == static_cast<uint8_t>(TaskType::kReplicaMove) ? "move" : "copy";
  if (req.targets.empty() || req.targets.size() > kMaxTaskTargets) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(what) + " of '" + req.key + "': 1 to " +
                                                 std::to_string(kMaxTaskTargets) +
                                                 " target segments");
  }
  for (const std::string& name : req.targets) {
    if (name.empty() || name.size() > kMaxIdBytes) {
      return Status(ErrorCode::INVALID_PARAMS,
                    std::string(what) + " of '" + req.key + "': a target segment name of 1 to " +
                        std::to_string(kMaxIdBytes) + " bytes");
    }
  }
  if (req.source.size() > kMaxIdBytes) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(what) + " of '" + req.key +
                                                 "': the source segment name is too long");
  }
  TaskInfo res;
  if (Status st = master_->Call(MsgType::kCreateTask, req, res); !st.ok()) return st;
  if (res.code != 0) {
    return Status(static_cast<ErrorCode>(res.code),
                  std::string(what) + " of '" + req.key + "': " + res.message);
  }
  {
    std::lock_guard<std::mutex> lock(tasks_mu_);
    if (tasks_stopping_) {
      // Closed meanwhile: the master hears the task will not run.
      EndTask(res.task, Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "the client closed"));
      return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "the client is closed");
    }
    task_queue_.push_back(res.task);
    if (!task_thread_.joinable()) task_thread_ = std::thread([this] { RunTasks(); });
  }
  tasks_cv_.notify_one();
  return TaskId{res.task.id_hi, res.task.id_lo};
}

Result<ReplicaTaskInfo> Client::Impl::QueryTask(TaskId id) {
  if (Status st = Usable(); !st.ok()) return st;
  TaskInfo res;
  if (Status st = master_->Call(MsgType::kQueryTask, TaskRef{id.hi, id.lo}, res); !st.ok()) {
    return st;
  }
  if (res.code != 0) return Status(static_cast<ErrorCode>(res.code), "query_task: " + res.message);
  if (res.type > static_cast<uint8_t>(ReplicaTaskType::kMove) ||
      res.state > static_cast<uint8_t>(ReplicaTaskStatus::kFailed)) {
    return Status(ErrorCode::RPC_FAIL, "query_task: the master answered an unknown type or state");
  }
  ReplicaTaskInfo info;
  info.id = {res.task.id_hi, res.task.id_lo};
  info.type = static_cast<ReplicaTaskType>(res.type);
  info.status = static_cast<ReplicaTaskStatus>(res.state);
  info.created_at_ms_epoch = res.created_ms;
  info.last_updated_at_ms_epoch = res.updated_ms;
  info.assigned_client = std::move(res.assigned_client);
  info.message = std::move(res.message);
  return info;
}

void Client::Impl::RunTasks() {
  std::unique_lock<std::mutex> lock(tasks_mu_);
  for (;;) {
    tasks_cv_.wait(lock, [&] { return tasks_stopping_ || !task_queue_.empty(); });
    if (tasks_stopping_) break;
    TaskRef task = task_queue_.front();
    task_queue_.pop_front();
    lock.unlock();
    RunTask(task);
    lock.lock();
  }
  // Closing: the tasks not run yet fail now rather than at their timeout.
  for (const TaskRef& task : task_queue_) {
    EndTask(task, Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "the client closed"));
  }
  task_queue_.clear();
}

void Client::Impl::EndTask(const TaskRef& task, const Status& result) {
  TaskEndRequest req;
  req.task = task;
  req.code = static_cast<int32_t>(result.code());
  if (!result.ok()) req.message = result.ToString().substr(0, kMaxMessageBytes);
  StatusResponse res;
  Status st = master_->Call(MsgType::kTaskEnd, req, res);
  if (!st.ok() || res.code != 0) {
    // The master fails the task at its timeout and frees what it holds.
    spdlog::warn("task {:016x}{:016x}: the master did not take its end: {}", task.id_hi,
                 task.id_lo, st.ok() ? res.message : st.ToString());
  }
}

void Client::Impl::RunTask(const TaskRef& task) {
  ReplicaListResponse res;
  auto asked = std::chrono::steady_clock::now();
  if (Status st = master_->Call(MsgType::kTaskStart, task, res); !st.ok()) {
    // Whether the master started it is unknown: an end with the failure
    // fails it either way (and frees its ranges if it had started).
    EndTask(task, st);
    return;
  }
  if (res.items.size() != 2) {
    EndTask(task, Status(ErrorCode::RPC_FAIL, "TaskStart answered " +
                                                  std::to_string(res.items.size()) + " items"));
    return;
  }
  if (res.items[0].code != 0) return;  // the master failed the task itself, and says why
  Status result = CopyObject(res, asked);
  if (!result.ok()) {
    spdlog::warn("task {:016x}{:016x}: {}", task.id_hi, task.id_lo, result.ToString());
  }
  EndTask(task, result);
}

Status Client::Impl::CopyObject(const ReplicaListResponse& res,
                                std::chrono::steady_clock::time_point asked) {
  const ReplicaItem& object = res.items[0];
  const ReplicaItem& targets = res.items[1];
  if (targets.replicas.empty()) return Status::Ok();  // every target holds it already
  std::unique_ptr<uint8_t[]> bytes(new (std::nothrow) uint8_t[object.size]);
  if (!bytes) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "no memory for a copy of " + std::to_string(object.size) + " bytes");
  }
  // Read it, same-host replicas first, until one reads whole, within the
  // lease and (checksums on) matching the object's checksum.
  std::vector<std::pair<Route, uint64_t>> tries;
  Status last(ErrorCode::INVALID_REPLICA, "no replica to read");
  for (const Replica& r : object.replicas) {
    Result<Route> route = router_->To(res, r);
    if (route.ok()) {
      tries.emplace_back(*route, r.offset);
    } else {
      last = route.status();
    }
  }
  std::stable_partition(tries.begin(), tries.end(),
                        [](const auto& t) { return t.first.path != Path::kTcp; });
  bool read = false;
  for (const auto& [route, offset] : tries) {
    std::vector<TransferOp> ops(1);
    TransferOp& op = ops[0];
    op.segment = route.segment;
    op.path = route.path;
    op.offset = offset;
    op.length = object.size;
    op.local = bytes.get();
    op.want_checksum = config_.checksums && object.checksum != 0;
    transport_->Run(ops);
    if (!op.result.ok()) {
      last = op.result;
      continue;
    }
    if (std::chrono::steady_clock::now() - asked > std::chrono::milliseconds(res.lease_ttl_ms)) {
      counters_.lease_expirations++;
      return Status(ErrorCode::LEASE_EXPIRED, "the read of the object outlived its lease of " +
                                                  std::to_string(res.lease_ttl_ms) + " ms");
    }
    if (op.want_checksum) {
      uint64_t sum = op.checksum ? *op.checksum : ObjectChecksum(bytes.get(), object.size);
      if (sum != object.checksum) {
        counters_.checksum_mismatches++;
        last = Status(ErrorCode::CHECKSUM_MISMATCH,
                      "the bytes read from segment '" + op.segment->name +
                          "' do not match the object's checksum");
        continue;
      }
    }
    read = true;
    break;
  }
  if (!read) return last;
  std::vector<TransferOp> writes;
  for (const Replica& r : targets.replicas) {
    Result<Route> route = router_->To(res, r);
    if (!route.ok()) return route.status();
    TransferOp op;
    op.segment = route->segment;
    op.path = route->path;
    op.offset = r.offset;
    op.length = object.size;
    op.local = bytes.get();
    op.write = true;
    writes.push_back(std::move(op));
  }
  transport_->Run(writes);
  for (const TransferOp& op : writes) {
    if (!op.result.ok()) {
      return Status(op.result.code(),
                    "write to segment '" + op.segment->name + "': " + op.result.message());
    }
  }
  return Status::Ok();
}

// ---- segments added after Open ---------------------------------------------

void Client::Impl::Retire(std::unique_ptr<SegmentHost> host) {
  host->BeginShutdown();
  host->ReleaseMemory();
  retired_.push_back(std::move(host));
}

Result<MountedSegment> Client::Impl::MountSegment(const SegmentSpec& spec) {
  if (Status st = Usable(); !st.ok()) return st;
  if (spec.size_bytes == 0) return Status(ErrorCode::INVALID_PARAMS, "mount: size is 0");
  if (spec.protocol != "tcp" && spec.protocol != "rdma") {
    return Status(ErrorCode::INVALID_PARAMS,
                  "mount: protocol must be tcp or rdma, not '" + spec.protocol + "'");
  }
  const bool allocated = spec.file_path.empty();
  uint64_t size = spec.size_bytes;
  if (allocated) {
    uint64_t unit = config_.hugepages ? kHugePageBytes : static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
    if (size > UINT64_MAX - unit) return Status(ErrorCode::INVALID_PARAMS, "mount: size too large");
    size = RoundUp(size, unit);
  } else if (spec.file_offset != 0 && (spec.file_offset % sysconf(_SC_PAGESIZE)) != 0) {
    // SegmentMemory checks this too; said here before a name is spent.
    return Status(ErrorCode::INVALID_PARAMS, "mount: offset " + std::to_string(spec.file_offset) +
                                                 " is not a multiple of the page size");
  }

  std::lock_guard<std::mutex> lock(segments_mu_);
  // Close sets closed_ before it takes segments_mu_: a mount either sees it
  // here or is unmounted by Close.
  if (Status st = Usable(); !st.ok()) return st;
  unsigned n = ++extra_count_;
  SegmentHostOptions h =
      HostOptions(NextSegmentName(host_id_), client_id_ + "-segment-" + std::to_string(n));
  h.memory.size_bytes = size;
  h.memory.file_path = spec.file_path;
  h.memory.file_offset = allocated ? 0 : spec.file_offset;
  if (!allocated) h.memory.hugepages = false;
  Result<std::unique_ptr<SegmentHost>> created = SegmentHost::Create(h);
  if (!created.ok()) return created.status();
  std::unique_ptr<SegmentHost> host = std::move(created).value();
  if (spec.protocol == "rdma") {
    if (Status st = ServeRdma(rdma_devices_, *host); !st.ok()) return st;
  }
  StartIo();
  Status st = host->Serve(*ioc_, *metrics_);
  if (st.ok()) st = host->Mount();
  if (!st.ok()) {
    Retire(std::move(host));  // its listeners may have run: destroyed at Close
    return st;
  }
  MountedSegment out{host->name(), host->memory().size()};
  spdlog::info("mounted segment '{}' ({} bytes{}) as {}", out.name, out.size_bytes,
               allocated ? ", allocated"
                         : ", file " + spec.file_path + " from offset " +
                               std::to_string(spec.file_offset),
               h.client_id);
  extras_.emplace(out.name, ExtraSegment{std::move(host), allocated});
  return out;
}

Status Client::Impl::UnmountSegments(const std::vector<std::string>& names, bool free_memory) {
  const char* call = free_memory ? "unmount_and_free_segment" : "unmount_segment";
  if (Status st = Usable(); !st.ok()) return st;
  if (names.empty()) return Status(ErrorCode::INVALID_PARAMS, std::string(call) + ": no segment");
  std::lock_guard<std::mutex> lock(segments_mu_);
  if (Status st = Usable(); !st.ok()) return st;
  // Every name is checked before any segment is touched: all or none.
  std::vector<std::string> todo;
  for (const std::string& name : names) {
    if (std::find(todo.begin(), todo.end(), name) != todo.end()) continue;
    auto it = extras_.find(name);
    if (it == extras_.end()) {
      if (!segment_name_.empty() && name == segment_name_) {
        return Status(ErrorCode::INVALID_PARAMS,
                      std::string(call) + ": '" + name +
                          "' is the segment set up with the client; close() unmounts it");
      }
      return Status(ErrorCode::SEGMENT_NOT_FOUND,
                    std::string(call) + ": this client mounted no segment '" + name + "'");
    }
    if (free_memory && !it->second.allocated) {
      return Status(ErrorCode::INVALID_PARAMS,
                    std::string(call) + ": segment '" + name +
                        "' maps a file (mount_segment), it was not allocated by "
                        "allocate_and_mount_segment; use unmount_segment");
    }
    todo.push_back(name);
  }
  Status first;
  for (const std::string& name : todo) {
    auto it = extras_.find(name);
    std::unique_ptr<SegmentHost> host = std::move(it->second.host);
    extras_.erase(it);
    host->BeginShutdown();
    Status st = host->Unmount();
    if (!st.ok()) {
      spdlog::warn("{}: the master was not told of segment '{}' ({}); it drops it when its "
                   "lease runs out",
                   call, name, st.ToString());
      if (first.ok()) first = st;
    } else {
      spdlog::info("{}: unmounted segment '{}'", call, name);
    }
    Retire(std::move(host));
  }
  return first;
}

std::vector<std::string> Client::Impl::MountedSegments() const {
  std::lock_guard<std::mutex> lock(segments_mu_);
  std::vector<std::string> out;
  for (const auto& [name, extra] : extras_) out.push_back(name);
  return out;
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
  return ServeRdma(devices, *segment_);
}

Status Client::Impl::ServeRdma(const std::vector<std::string>& devices, SegmentHost& host) {
  Result<std::unique_ptr<RdmaTarget>> target = RdmaTarget::OpenSystem(
      RdmaSettings(config_, devices), host.memory().data(), host.memory().size());
  if (target.code() == ErrorCode::NOT_SUPPORTED) {
    if (&host != segment_.get()) {
      spdlog::warn("segment '{}', protocol rdma: {}; serving it over TCP (and shared memory)",
                   host.name(), target.status().message());
    }
    return Status::Ok();
  }
  if (!target.ok()) return target.status();
  host.SetRdma(std::shared_ptr<RdmaTarget>(std::move(target).value()));
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
Result<MountedSegment> Client::MountSegment(const SegmentSpec& spec) {
  return impl_->MountSegment(spec);
}
Status Client::UnmountSegments(const std::vector<std::string>& names, bool free_memory) {
  return impl_->UnmountSegments(names, free_memory);
}
std::vector<std::string> Client::mounted_segments() const { return impl_->MountedSegments(); }
Result<TaskId> Client::CreateCopyTask(std::string_view key,
                                      const std::vector<std::string>& targets) {
  CreateTaskRequest req;
  req.type = static_cast<uint8_t>(TaskType::kReplicaCopy);
  req.key = std::string(key);
  req.targets = targets;
  return impl_->CreateTask(req);
}
Result<TaskId> Client::CreateMoveTask(std::string_view key, std::string_view source,
                                      std::string_view target) {
  CreateTaskRequest req;
  req.type = static_cast<uint8_t>(TaskType::kReplicaMove);
  req.key = std::string(key);
  req.source = std::string(source);
  req.targets = {std::string(target)};
  if (source.empty()) return Status(ErrorCode::INVALID_PARAMS, "move: no source segment");
  return impl_->CreateTask(req);
}
Result<ReplicaTaskInfo> Client::QueryTask(TaskId id) { return impl_->QueryTask(id); }
void Client::Close() { impl_->Close(); }
const std::string& Client::host_id() const { return impl_->host_id_; }
const std::string& Client::segment_name() const { return impl_->segment_name_; }
ClientStats Client::stats() const { return impl_->Stats(); }

}  // namespace kvcached
