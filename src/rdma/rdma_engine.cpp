// RdmaEngine: the client side of the RDMA transport (rdma_transport.h).
//
// Threads. Run() executes on its caller's thread: it validates and slices
// the ops, connects queue pairs (through the RdmaConnector) when needed,
// posts chains of work requests and waits for their outcome. One completion
// thread per engine sleeps in poll() on the completion channels (one per
// local NIC) and an eventfd; it polls a CQ when the channel says so, hands
// each finished chain to the Batch of the Run that posted it, and is the
// only thread that destroys queue pairs and CQs after start-up (so it never
// races a CQ event). Close() stops it and destroys what is left.
//
// Queue pairs are cached per (RdmaOp::instance, path), a path being (local
// NIC, remote NIC, index < qps_per_nic_pair). Each has its own CQ, sized
// for a full send queue. A queue pair that fails (error completion, refused
// post, io_timeout) is marked broken: moved to ERR, handed to the
// completion thread to drain and destroy, and replaced on next use.
//
// A chain is up to kMaxChainWrs work requests on one queue pair, all with
// wr_id = the chain's id and only the last signalled. Whoever erases the
// chain from its queue pair's map (the completion thread on a completion,
// the Run on a timeout, the completion thread when it destroys the queue
// pair) owns its outcome; the other sees nothing.
#include <fcntl.h>
#include <poll.h>
#include <spdlog/spdlog.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <condition_variable>
#include <cstring>
#include <limits>
#include <map>
#include <mutex>
#include <span>
#include <thread>
#include <unordered_map>

#include "rdma/memory_registry.h"
#include "rdma/queue_pair.h"
#include "rdma/rdma_transport.h"
#include "rdma/verbs_api.h"
#include "rdma/verbs_device.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;

constexpr uint32_t kMaxChainWrs = 16;
constexpr uint64_t kMaxWrBytes = 1ull << 30;  // well below the 2 GiB message limit
constexpr int kPollBatch = 32;
// The completion thread sweeps every CQ this often even without an event,
// so a lost notification costs latency, not a hang.
constexpr int kSweepMs = 200;
constexpr auto kRetireDrain = std::chrono::milliseconds(200);

struct Batch;

struct Chain {
  uint64_t id = 0;
  std::shared_ptr<Batch> batch;
  std::vector<uint32_t> slices;  // indexes into the Run's slices
  uint32_t wr_count = 0;
};

struct ChainDone {
  std::shared_ptr<Chain> chain;
  bool ok = false;
  std::string why;  // when !ok
};

// What a Run and the completion thread share.
struct Batch {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<ChainDone> done;  // mu
};

struct QpEntry {
  std::string label;  // "rxe0->rxe1 QP 17" for messages
  // The queue pair; reset only by the completion thread (or Close) under
  // post_mu, so the completion thread may use it without the lock.
  std::unique_ptr<QueuePair> qp;
  std::unique_ptr<RdmaLink> link;  // post_mu
  ibv_cq* cq = nullptr;            // fixed at creation
  uint32_t max_send_wr = 1;        // fixed at creation
  std::mutex post_mu;
  std::condition_variable room_cv;
  uint32_t outstanding_wrs = 0;                                 // post_mu
  std::unordered_map<uint64_t, std::shared_ptr<Chain>> chains;  // post_mu
  std::atomic<bool> broken{false};
  Clock::time_point retire_deadline{};  // completion thread only
};

// One cache slot: the queue pair for one (instance, path), connected by
// whoever holds connect_mu.
struct Slot {
  std::mutex connect_mu;
  std::shared_ptr<QpEntry> entry;  // connect_mu
};

struct Slice {
  uint32_t op = 0;
  uint8_t* local = nullptr;
  uint64_t remote_offset = 0;
  uint32_t length = 0;
  uint32_t attempts = 0;
  size_t path = 0;
};

// A chain posted by a Run and not yet accounted for.
struct Inflight {
  std::shared_ptr<Chain> chain;
  std::shared_ptr<QpEntry> entry;
  Clock::time_point deadline;
};

// One Run's bookkeeping, touched only by the Run's thread (the completion
// thread reaches the Run through `batch` alone).
struct RunState {
  explicit RunState(std::vector<RdmaOp*>& ops_in)
      : ops(ops_in), regions(ops_in.size()), failure(ops_in.size()), down(ops_in.size(), false) {}

  std::vector<RdmaOp*>& ops;
  std::shared_ptr<Batch> batch = std::make_shared<Batch>();
  std::vector<Slice> slices;
  std::vector<std::shared_ptr<RegisteredRegion>> regions;  // keeps keys alive
  std::vector<Status> failure;                             // per op
  std::vector<bool> down;                                  // the op's store could not be reached
  std::map<std::string, std::string> down_why;             // by instance
  std::vector<uint32_t> pending;                           // slices to post now
  std::unordered_map<uint64_t, Inflight> inflight;         // by chain id
  std::vector<uint32_t> retry;                             // slices to post on the next round
};

std::string WcText(const ibv_wc& wc) {
  return fmt::format("{} (status {}, vendor error {:#x})", ibv_wc_status_str(wc.status),
                     static_cast<int>(wc.status), wc.vendor_err);
}

Status CheckOp(const RdmaOp& op) {
  if (op.remote == nullptr) return Status(ErrorCode::INVALID_PARAMS, "RDMA op without a segment");
  const RdmaSegmentInfo& r = *op.remote;
  if (r.nics.empty() || r.chunk_bytes == 0 || r.rkeys.empty() || r.nics.size() > kMaxRdmaNics ||
      r.rkeys.size() > kMaxRdmaChunks) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "store " + op.address + " has no usable RDMA descriptor");
  }
  for (const auto& row : r.rkeys) {
    if (row.size() != r.nics.size()) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "store " + op.address + ": RDMA descriptor has a short rkey row");
    }
  }
  if (r.chunk_bytes > std::numeric_limits<uint64_t>::max() / r.rkeys.size()) {
    return Status(ErrorCode::INVALID_PARAMS, "store " + op.address + ": RDMA descriptor too large");
  }
  const uint64_t size = r.chunk_bytes * r.rkeys.size();
  if (r.base > std::numeric_limits<uint64_t>::max() - size) {
    return Status(ErrorCode::INVALID_PARAMS, "store " + op.address + ": RDMA segment wraps");
  }
  if (op.offset > size || op.length > size - op.offset) {
    return Status(ErrorCode::INVALID_PARAMS,
                  fmt::format("RDMA {} of {} bytes at offset {} is outside the segment of store {} "
                              "({} bytes)",
                              op.write ? "write" : "read", op.length, op.offset, op.address, size));
  }
  if (op.length > 0 && op.local == nullptr) {
    return Status(ErrorCode::INVALID_PARAMS, "RDMA op without local memory");
  }
  return Status::Ok();
}

}  // namespace

struct RdmaEngine::Impl {
  using PathKey = std::pair<std::string, size_t>;  // (instance, path)

  RdmaOptions options;
  RdmaConnector connector;
  // Destruction order (bottom-up) is settled in Close(), which the
  // destructor calls; these are declared in the order they are built.
  std::vector<std::unique_ptr<VerbsDevice>> devices;
  std::vector<VerbsDevice*> raw_devices;
  std::vector<RdmaNic> nics;
  std::vector<CompChannelPtr> channels;  // one per device
  uint64_t chunk_bytes = 0;
  MemoryRegistry registry;
  RdmaCounters counters;
  int wake_fd = -1;
  std::thread poller;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_chain_id{1};
  std::atomic<uint64_t> round_robin{0};

  std::mutex cache_mu;
  std::map<PathKey, std::shared_ptr<Slot>> cache;  // cache_mu

  std::mutex live_mu;
  std::unordered_map<ibv_cq*, std::shared_ptr<QpEntry>> live;  // live_mu
  std::vector<std::shared_ptr<QpEntry>> retiring;              // live_mu

  std::mutex run_mu;
  std::condition_variable run_cv;
  int running = 0;      // run_mu
  bool closed = false;  // run_mu
  bool torn_down = false;

  size_t Paths(size_t remote_nics) const {
    return devices.size() * remote_nics * options.qps_per_nic_pair;
  }
  // Consecutive path numbers change the NIC pair first, so slices and
  // retries spread over NICs before they share one.
  void SplitPath(size_t path, size_t remote_nics, size_t& local, size_t& remote) const {
    size_t pair = path % (devices.size() * remote_nics);
    local = pair % devices.size();
    remote = pair / devices.size();
  }

  void Wake() {
    uint64_t one = 1;
    ssize_t n = write(wake_fd, &one, sizeof one);
    (void)n;
  }

  // Any thread. Moves the queue pair to ERR (flushing what is posted) and
  // hands it to the completion thread to destroy; idempotent.
  bool LinkAlive(QpEntry& entry) {
    std::lock_guard<std::mutex> lock(entry.post_mu);
    return entry.link == nullptr || entry.link->Alive();
  }

  void MarkBroken(const std::shared_ptr<QpEntry>& entry) {
    if (entry->broken.exchange(true)) return;
    {
      std::lock_guard<std::mutex> lock(entry->post_mu);
      if (entry->qp != nullptr) entry->qp->ToError();
    }
    entry->room_cv.notify_all();
    {
      std::lock_guard<std::mutex> lock(live_mu);
      retiring.push_back(entry);
    }
    Wake();
  }

  static void Deliver(std::shared_ptr<Chain> chain, bool ok, std::string why) {
    std::shared_ptr<Batch> batch = chain->batch;
    {
      std::lock_guard<std::mutex> lock(batch->mu);
      batch->done.push_back(ChainDone{std::move(chain), ok, std::move(why)});
    }
    batch->cv.notify_all();
  }

  // Completion thread only.
  void DrainCq(const std::shared_ptr<QpEntry>& entry) {
    if (entry->qp == nullptr) return;
    const VerbsApi& verbs = entry->qp->device().verbs();
    ibv_wc wc[kPollBatch];
    for (;;) {
      int n = verbs.poll_cq(entry->cq, kPollBatch, wc);
      if (n <= 0) {
        if (n < 0) MarkBroken(entry);
        return;
      }
      for (int i = 0; i < n; ++i) {
        std::shared_ptr<Chain> chain;
        {
          std::lock_guard<std::mutex> lock(entry->post_mu);
          auto it = entry->chains.find(wc[i].wr_id);
          if (it != entry->chains.end()) {
            chain = std::move(it->second);
            entry->chains.erase(it);
            entry->outstanding_wrs -= chain->wr_count;
          }
        }
        if (chain != nullptr) entry->room_cv.notify_all();
        const bool ok = wc[i].status == IBV_WC_SUCCESS;
        if (!ok) MarkBroken(entry);
        if (chain != nullptr) {
          Deliver(std::move(chain), ok, ok ? "" : WcText(wc[i]) + " on " + entry->label);
        }
      }
    }
  }

  // Completion thread only: destroys a broken queue pair once its posted
  // chains are accounted for (or kRetireDrain has passed).
  bool FinishRetire(const std::shared_ptr<QpEntry>& entry, Clock::time_point now) {
    DrainCq(entry);
    std::unordered_map<uint64_t, std::shared_ptr<Chain>> left;
    std::unique_ptr<QueuePair> qp;
    std::unique_ptr<RdmaLink> link;
    {
      std::lock_guard<std::mutex> lock(entry->post_mu);
      if (!entry->chains.empty() && now < entry->retire_deadline) return false;
      left.swap(entry->chains);
      entry->outstanding_wrs = 0;
      qp = std::move(entry->qp);
      link = std::move(entry->link);
    }
    entry->room_cv.notify_all();
    for (auto& [id, chain] : left) {
      Deliver(std::move(chain), false, "queue pair " + entry->label + " failed");
    }
    qp.reset();  // the QP, then its CQ
    link.reset();
    {
      std::lock_guard<std::mutex> lock(live_mu);
      live.erase(entry->cq);
    }
    return true;
  }

  void PollerLoop() {
    std::vector<pollfd> fds;
    auto last_sweep = Clock::now();
    while (!stopping.load()) {
      fds.clear();
      fds.push_back({wake_fd, POLLIN, 0});
      for (auto& ch : channels) fds.push_back({ch->fd, POLLIN, 0});
      bool have_retiring;
      {
        std::lock_guard<std::mutex> lock(live_mu);
        have_retiring = !retiring.empty();
      }
      int rc = poll(fds.data(), fds.size(), have_retiring ? 10 : kSweepMs);
      if (stopping.load()) break;
      if (rc > 0 && (fds[0].revents & POLLIN)) {
        uint64_t value;
        ssize_t n = read(wake_fd, &value, sizeof value);
        (void)n;
      }
      for (size_t c = 0; c < channels.size(); ++c) {
        if (rc <= 0 || !(fds[c + 1].revents & POLLIN)) continue;
        const VerbsApi& verbs = raw_devices[c]->verbs();
        for (;;) {
          ibv_cq* cq = nullptr;
          void* context = nullptr;
          if (verbs.get_cq_event(channels[c].get(), &cq, &context) != 0) break;
          std::shared_ptr<QpEntry> entry;
          {
            std::lock_guard<std::mutex> lock(live_mu);
            auto it = live.find(cq);
            if (it != live.end()) entry = it->second;
          }
          if (entry == nullptr) continue;  // cannot happen: only we destroy CQs
          verbs.ack_cq_events(cq, 1);
          // Re-arm before polling, so a completion that lands after the
          // poll raises a new event.
          verbs.req_notify_cq(cq, 0);
          DrainCq(entry);
        }
      }
      auto now = Clock::now();
      if (now - last_sweep >= std::chrono::milliseconds(kSweepMs)) {
        last_sweep = now;
        std::vector<std::shared_ptr<QpEntry>> all;
        {
          std::lock_guard<std::mutex> lock(live_mu);
          for (auto& [cq, entry] : live) all.push_back(entry);
        }
        for (auto& entry : all) DrainCq(entry);
      }
      std::vector<std::shared_ptr<QpEntry>> work;
      {
        std::lock_guard<std::mutex> lock(live_mu);
        work.swap(retiring);
      }
      std::vector<std::shared_ptr<QpEntry>> again;
      for (auto& entry : work) {
        if (entry->retire_deadline == Clock::time_point{})
          entry->retire_deadline = now + kRetireDrain;
        if (!FinishRetire(entry, now)) again.push_back(entry);
      }
      if (!again.empty()) {
        std::lock_guard<std::mutex> lock(live_mu);
        retiring.insert(retiring.end(), again.begin(), again.end());
      }
    }
  }

  // Caller's thread. The connected queue pair for (op.instance, path), made
  // if needed. On failure `why` says why; `instance_down` is set when the
  // connector itself failed (the store is unreachable on every path).
  std::shared_ptr<QpEntry> GetEntry(const RdmaOp& op, size_t path, Status& why,
                                    bool& instance_down) {
    std::shared_ptr<Slot> slot;
    {
      std::lock_guard<std::mutex> lock(cache_mu);
      auto& s = cache[PathKey(op.instance, path)];
      if (s == nullptr) s = std::make_shared<Slot>();
      slot = s;
    }
    std::lock_guard<std::mutex> lock(slot->connect_mu);
    if (slot->entry != nullptr && !slot->entry->broken.load()) {
      if (LinkAlive(*slot->entry)) return slot->entry;
      SPDLOG_DEBUG("RDMA {}: the store's link closed; rebuilding", slot->entry->label);
      MarkBroken(slot->entry);
    }
    const bool rebuild = slot->entry != nullptr;
    slot->entry.reset();

    size_t l = 0, r = 0;
    SplitPath(path, op.remote->nics.size(), l, r);
    VerbsDevice& dev = *devices[l];
    auto entry = std::make_shared<QpEntry>();
    QueuePair::Config config;
    config.max_send_wr = options.max_send_wr;
    config.channel = channels[l].get();
    config.cq_context = entry.get();
    auto qp = QueuePair::Create(dev, config);
    if (!qp.ok()) {
      why = Status(ErrorCode::TRANSFER_FAIL, qp.status().message());
      return nullptr;
    }
    entry->qp = std::move(qp).value();
    entry->cq = entry->qp->cq();
    entry->max_send_wr = entry->qp->max_send_wr();
    entry->label =
        fmt::format("{}->{} QP {}", dev.name(), op.remote->nics[r].name, entry->qp->local().qpn);
    {
      std::lock_guard<std::mutex> live_lock(live_mu);
      live.emplace(entry->cq, entry);
    }
    RdmaConnectRequest request;
    request.store_nic = static_cast<uint32_t>(r);
    request.client = entry->qp->local();
    std::unique_ptr<RdmaLink> link;
    auto response = connector(op.address, request, link);
    if (!response.ok() || response->version != kRdmaLinkVersion) {
      MarkBroken(entry);
      why = Status(
          ErrorCode::TRANSFER_FAIL,
          fmt::format(
              "RDMA connect to store {} (NIC {}) failed: {}", op.address, op.remote->nics[r].name,
              response.ok() ? "unsupported RDMA link version" : response.status().ToString()));
      instance_down = true;
      return nullptr;
    }
    Status s = entry->qp->Connect(IBV_ACCESS_LOCAL_WRITE, response->store);
    {
      std::lock_guard<std::mutex> post_lock(entry->post_mu);
      entry->link = std::move(link);
    }
    if (!s.ok()) {
      MarkBroken(entry);
      why = Status(ErrorCode::TRANSFER_FAIL, "store " + op.address + ": " + s.message());
      return nullptr;
    }
    counters.queue_pairs_created.fetch_add(1);
    if (rebuild) counters.queue_pairs_rebuilt.fetch_add(1);
    SPDLOG_DEBUG("RDMA {} QP {} to store {} ({}) as {}", rebuild ? "rebuilt" : "connected",
                 entry->qp->local().qpn, op.address, op.instance, entry->label);
    slot->entry = entry;
    return entry;
  }

  // Caller's thread: the stages of a Run (RunBatch), defined below.
  void RunBatch(std::vector<RdmaOp*>& ops);
  void PrepareOp(RunState& run, size_t i);
  void SliceOp(RunState& run, size_t i, const RegisteredRegion& region);
  void PostPending(RunState& run);
  void PostGroup(RunState& run, const PathKey& key, const std::vector<uint32_t>& members);
  void MarkInstanceDown(RunState& run, const std::string& instance, const std::string& why);
  void PostChain(RunState& run, const std::shared_ptr<QpEntry>& entry,
                 std::span<const uint32_t> members, size_t local_nic, size_t remote_nic);
  void BuildChain(const RunState& run, Chain& chain, std::span<const uint32_t> members,
                  size_t local_nic, size_t remote_nic, std::vector<ibv_send_wr>& wrs,
                  std::vector<ibv_sge>& sges) const;
  std::string SubmitChain(QpEntry& entry, const std::shared_ptr<Chain>& chain,
                          std::vector<ibv_send_wr>& wrs);
  void TakeCompletions(RunState& run);
  void ExpireOverdue(RunState& run);
  void FailSlice(RunState& run, uint32_t index, const std::string& why, bool retriable);
  void FinishOps(RunState& run);
};

// The stages of a Run: each op is checked, registered and sliced; then
// rounds of posting what is pending and taking what finished or timed out,
// a failed slice coming back for one more round on the next path, until
// nothing is pending or in flight; then each op's outcome.
void RdmaEngine::Impl::RunBatch(std::vector<RdmaOp*>& ops) {
  RunState run(ops);
  for (size_t i = 0; i < ops.size(); ++i) PrepareOp(run, i);
  while (!run.pending.empty() || !run.inflight.empty()) {
    if (!run.pending.empty()) {
      PostPending(run);
      run.pending.swap(run.retry);
      continue;
    }
    TakeCompletions(run);
    ExpireOverdue(run);
    run.pending.swap(run.retry);
  }
  FinishOps(run);
}

void RdmaEngine::Impl::PrepareOp(RunState& run, size_t i) {
  RdmaOp& op = *run.ops[i];
  op.result = CheckOp(op);
  if (!op.result.ok() || op.length == 0) return;
  run.regions[i] = registry.Find(op.local, op.length);
  if (run.regions[i] == nullptr) {
    auto temp = RegisteredRegion::Register(raw_devices, op.local, op.length, chunk_bytes,
                                           IBV_ACCESS_LOCAL_WRITE, "a transfer buffer");
    if (!temp.ok()) {
      op.result = Status(ErrorCode::TRANSFER_FAIL, temp.status().message());
      return;
    }
    run.regions[i] = std::move(temp).value();
    counters.temporary_registrations.fetch_add(1);
  }
  SliceOp(run, i, *run.regions[i]);
}

// A slice never crosses a chunk boundary on either side, since each chunk
// has its own key.
void RdmaEngine::Impl::SliceOp(RunState& run, size_t i, const RegisteredRegion& region) {
  const RdmaOp& op = *run.ops[i];
  const uint64_t remote_chunk = op.remote->chunk_bytes;
  const size_t paths = Paths(op.remote->nics.size());
  const uint64_t slice_bytes = std::min(options.slice_bytes, kMaxWrBytes);
  std::vector<Slice>& slices = run.slices;
  const size_t first_slice = slices.size();
  uint64_t pos = 0;
  while (pos < op.length) {
    uint64_t remote_off = op.offset + pos;
    uint8_t* local = op.local + pos;
    uint64_t n = op.length - pos;
    n = std::min(n, remote_chunk - remote_off % remote_chunk);
    size_t lchunk = region.ChunkOf(local);
    uint64_t lend = (lchunk + 1) * region.chunk_bytes();  // relative to region base
    n = std::min(n, lend - static_cast<uint64_t>(local - region.base()));
    n = std::min(n, slice_bytes);
    Slice s;
    s.op = static_cast<uint32_t>(i);
    s.local = local;
    s.remote_offset = remote_off;
    s.length = static_cast<uint32_t>(n);
    slices.push_back(s);
    pos += n;
  }
  uint64_t start = round_robin.fetch_add(slices.size() - first_slice);
  for (size_t k = first_slice; k < slices.size(); ++k) {
    slices[k].path = (start + (k - first_slice)) % paths;
    run.pending.push_back(static_cast<uint32_t>(k));
  }
}

void RdmaEngine::Impl::PostPending(RunState& run) {
  // Group by (instance, path) so each group is one queue pair.
  std::map<PathKey, std::vector<uint32_t>> groups;
  for (uint32_t index : run.pending) {
    const Slice& s = run.slices[index];
    if (!run.failure[s.op].ok()) continue;  // the op has already failed
    groups[{run.ops[s.op]->instance, s.path}].push_back(index);
  }
  run.pending.clear();
  for (auto& [key, members] : groups) PostGroup(run, key, members);
}

void RdmaEngine::Impl::PostGroup(RunState& run, const PathKey& key,
                                 const std::vector<uint32_t>& members) {
  const RdmaOp& first = *run.ops[run.slices[members[0]].op];
  for (uint32_t index : members) run.slices[index].attempts++;
  if (auto it = run.down_why.find(key.first); it != run.down_why.end()) {
    for (uint32_t index : members) FailSlice(run, index, it->second, false);
    return;
  }
  Status why;
  bool instance_down = false;
  std::shared_ptr<QpEntry> entry = GetEntry(first, key.second, why, instance_down);
  if (entry == nullptr) {
    if (instance_down) MarkInstanceDown(run, first.instance, why.message());
    for (uint32_t index : members) FailSlice(run, index, why.message(), true);
    return;
  }
  size_t l = 0, r = 0;
  SplitPath(key.second, first.remote->nics.size(), l, r);
  const uint32_t chain_max = std::min<uint32_t>(kMaxChainWrs, entry->max_send_wr);
  for (size_t at = 0; at < members.size(); at += chain_max) {
    size_t count = std::min<size_t>(chain_max, members.size() - at);
    PostChain(run, entry, std::span<const uint32_t>(members).subspan(at, count), l, r);
  }
}

// The store did not answer the connector, so no other path to it will
// either: the rest of the Run fails its slices without trying.
void RdmaEngine::Impl::MarkInstanceDown(RunState& run, const std::string& instance,
                                        const std::string& why) {
  run.down_why[instance] = why;
  for (size_t i = 0; i < run.ops.size(); ++i) {
    if (run.ops[i]->instance == instance) run.down[i] = true;
  }
}

void RdmaEngine::Impl::PostChain(RunState& run, const std::shared_ptr<QpEntry>& entry,
                                 std::span<const uint32_t> members, size_t local_nic,
                                 size_t remote_nic) {
  const size_t count = members.size();
  std::vector<ibv_send_wr> wrs(count);
  std::vector<ibv_sge> sges(count);
  auto chain = std::make_shared<Chain>();
  chain->id = next_chain_id.fetch_add(1);
  chain->batch = run.batch;
  chain->wr_count = static_cast<uint32_t>(count);
  BuildChain(run, *chain, members, local_nic, remote_nic, wrs, sges);
  std::string refused = SubmitChain(*entry, chain, wrs);
  if (!refused.empty()) {
    MarkBroken(entry);
    for (uint32_t index : chain->slices) FailSlice(run, index, refused, true);
    return;
  }
  run.inflight.emplace(chain->id, Inflight{chain, entry, Clock::now() + options.io_timeout});
}

// One work request per slice, all carrying the chain's id; only the last is
// signalled, so the chain costs one completion.
void RdmaEngine::Impl::BuildChain(const RunState& run, Chain& chain,
                                  std::span<const uint32_t> members, size_t local_nic,
                                  size_t remote_nic, std::vector<ibv_send_wr>& wrs,
                                  std::vector<ibv_sge>& sges) const {
  const size_t count = members.size();
  for (size_t k = 0; k < count; ++k) {
    uint32_t index = members[k];
    const Slice& s = run.slices[index];
    const RdmaOp& op = *run.ops[s.op];
    const RegisteredRegion& region = *run.regions[s.op];
    chain.slices.push_back(index);
    sges[k].addr = reinterpret_cast<uint64_t>(s.local);
    sges[k].length = s.length;
    sges[k].lkey = region.lkey(region.ChunkOf(s.local), local_nic);
    ibv_send_wr& wr = wrs[k];
    wr.wr_id = chain.id;
    wr.sg_list = &sges[k];
    wr.num_sge = 1;
    wr.opcode = op.write ? IBV_WR_RDMA_WRITE : IBV_WR_RDMA_READ;
    wr.send_flags = k + 1 == count ? IBV_SEND_SIGNALED : 0;
    wr.wr.rdma.remote_addr = op.remote->base + s.remote_offset;
    wr.wr.rdma.rkey = op.remote->rkeys[s.remote_offset / op.remote->chunk_bytes][remote_nic];
    wr.next = k + 1 == count ? nullptr : &wrs[k + 1];
  }
}

// Posts the chain once the send queue has room for it. Empty on success,
// else why it was refused. The chain is registered on the queue pair before
// the post, so its completion cannot arrive unclaimed.
std::string RdmaEngine::Impl::SubmitChain(QpEntry& entry, const std::shared_ptr<Chain>& chain,
                                          std::vector<ibv_send_wr>& wrs) {
  const size_t count = wrs.size();
  std::unique_lock<std::mutex> lock(entry.post_mu);
  const auto deadline = Clock::now() + options.io_timeout;
  bool room = entry.room_cv.wait_until(lock, deadline, [&] {
    return entry.qp == nullptr || entry.broken.load() ||
           entry.outstanding_wrs + count <= entry.max_send_wr;
  });
  if (!room || entry.qp == nullptr || entry.broken.load()) {
    return room ? "queue pair " + entry.label + " failed"
                : "send queue of " + entry.label + " stayed full";
  }
  entry.chains.emplace(chain->id, chain);
  entry.outstanding_wrs += static_cast<uint32_t>(count);
  ibv_send_wr* bad = nullptr;
  const VerbsApi& verbs = entry.qp->device().verbs();
  if (int rc = verbs.post_send(entry.qp->qp(), wrs.data(), &bad); rc != 0) {
    entry.chains.erase(chain->id);
    entry.outstanding_wrs -= static_cast<uint32_t>(count);
    return fmt::format("ibv_post_send on {}: {}", entry.label, std::strerror(rc));
  }
  return "";
}

// Sleeps until a chain finishes or the earliest deadline passes.
void RdmaEngine::Impl::TakeCompletions(RunState& run) {
  Clock::time_point earliest = Clock::time_point::max();
  for (auto& [id, f] : run.inflight) earliest = std::min(earliest, f.deadline);
  std::vector<ChainDone> done;
  {
    std::unique_lock<std::mutex> lock(run.batch->mu);
    run.batch->cv.wait_until(lock, earliest, [&] { return !run.batch->done.empty(); });
    done.swap(run.batch->done);
  }
  for (ChainDone& d : done) {
    run.inflight.erase(d.chain->id);
    if (d.ok) continue;
    for (uint32_t index : d.chain->slices) FailSlice(run, index, d.why, true);
  }
}

// A chain past its deadline fails only if this Run takes it off its queue
// pair first; otherwise the completion thread already has, and its outcome
// is on the way.
void RdmaEngine::Impl::ExpireOverdue(RunState& run) {
  const auto now = Clock::now();
  for (auto it = run.inflight.begin(); it != run.inflight.end();) {
    Inflight& f = it->second;
    bool claimed = false;
    if (now >= f.deadline) {
      std::lock_guard<std::mutex> lock(f.entry->post_mu);
      if (f.entry->chains.erase(it->first) > 0) {
        f.entry->outstanding_wrs -= f.chain->wr_count;
        claimed = true;
      }
    }
    if (!claimed) {
      ++it;
      continue;
    }
    f.entry->room_cv.notify_all();
    MarkBroken(f.entry);
    std::string why =
        fmt::format("no completion within {} ms on {}", options.io_timeout.count(), f.entry->label);
    for (uint32_t index : f.chain->slices) FailSlice(run, index, why, false);
    it = run.inflight.erase(it);
  }
}

// A retriable failure sends the slice to the next path once (unless its
// store is down); otherwise the op's first failure is the one it reports.
void RdmaEngine::Impl::FailSlice(RunState& run, uint32_t index, const std::string& why,
                                 bool retriable) {
  Slice& s = run.slices[index];
  RdmaOp& op = *run.ops[s.op];
  if (retriable && s.attempts < 2 && !run.down[s.op]) {
    s.path = (s.path + 1) % Paths(op.remote->nics.size());
    counters.slices_retried.fetch_add(1);
    run.retry.push_back(index);
    return;
  }
  if (run.failure[s.op].ok()) {
    run.failure[s.op] =
        Status(ErrorCode::TRANSFER_FAIL,
               fmt::format("RDMA {} of {} bytes at offset {} of store {} failed{}: {}",
                           op.write ? "WRITE" : "READ", s.length, s.remote_offset, op.address,
                           s.attempts > 1 ? " after a retry" : "", why));
  }
}

void RdmaEngine::Impl::FinishOps(RunState& run) {
  {
    std::lock_guard<std::mutex> lock(run.batch->mu);
    run.batch->done.clear();
  }
  for (size_t i = 0; i < run.ops.size(); ++i) {
    RdmaOp& op = *run.ops[i];
    if (!op.result.ok()) continue;
    if (!run.failure[i].ok()) {
      op.result = run.failure[i];
      continue;
    }
    counters.transfers.fetch_add(1);
    counters.bytes.fetch_add(op.length);
  }
}

Result<std::unique_ptr<RdmaEngine>> RdmaEngine::Open(const VerbsApi& verbs, RdmaOptions options,
                                                     RdmaConnector connector) {
  using Out = Result<std::unique_ptr<RdmaEngine>>;
  if (!connector) return Out(ErrorCode::INVALID_PARAMS, "RDMA engine needs a connector");
  std::unique_ptr<RdmaEngine> engine(new RdmaEngine());
  engine->impl_ = std::make_unique<Impl>();
  Impl& impl = *engine->impl_;
  if (options.slice_bytes == 0) options.slice_bytes = 1 << 20;
  if (options.qps_per_nic_pair == 0) options.qps_per_nic_pair = 1;
  if (options.max_send_wr == 0) options.max_send_wr = 1;
  impl.options = std::move(options);
  impl.connector = std::move(connector);
  std::string why_none;
  auto devices = OpenVerbsDevices(verbs, impl.options, &why_none, /*log_opened=*/true);
  if (!devices.ok()) return devices.status();
  if (devices->empty()) return Out(ErrorCode::NOT_SUPPORTED, why_none);
  impl.devices = std::move(devices).value();
  for (auto& dev : impl.devices) {
    impl.raw_devices.push_back(dev.get());
    impl.nics.push_back(dev->nic());
    errno = 0;
    CompChannelPtr channel(verbs.create_comp_channel(dev->context()),
                           VerbsDeleter<ibv_comp_channel>{&verbs});
    if (channel == nullptr) {
      return Out(ErrorCode::TRANSFER_FAIL,
                 "ibv_create_comp_channel on " + dev->name() + ": " + std::strerror(errno));
    }
    // Non-blocking: the completion thread waits in poll(), where it can
    // also be woken, and drains events until EAGAIN.
    int flags = fcntl(channel->fd, F_GETFL);
    if (flags < 0 || fcntl(channel->fd, F_SETFL, flags | O_NONBLOCK) != 0) {
      return Out(ErrorCode::TRANSFER_FAIL,
                 "completion channel of " + dev->name() + ": fcntl: " + std::strerror(errno));
    }
    impl.channels.push_back(std::move(channel));
  }
  impl.chunk_bytes = RegistrationChunkBytes(impl.raw_devices, impl.options.max_chunk_bytes);
  impl.wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  if (impl.wake_fd < 0) {
    return Out(ErrorCode::TRANSFER_FAIL, std::string("eventfd: ") + std::strerror(errno));
  }
  impl.poller = std::thread([&impl] { impl.PollerLoop(); });
  return engine;
}

RdmaEngine::~RdmaEngine() { Close(); }

Result<std::unique_ptr<RdmaEngine>> RdmaEngine::OpenSystem(RdmaOptions options,
                                                           RdmaConnector connector) {
  return Open(RealVerbs(), std::move(options), std::move(connector));
}

Status RdmaEngine::RegisterMemory(void* addr, uint64_t length) {
  Impl& impl = *impl_;
  {
    std::lock_guard<std::mutex> lock(impl.run_mu);
    if (impl.closed) return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "RDMA engine closed");
  }
  if (addr == nullptr || length == 0) {
    return Status(ErrorCode::INVALID_PARAMS, "RegisterMemory of an empty range");
  }
  if (impl.registry.Exact(addr, length) != nullptr) return Status::Ok();
  auto region =
      RegisteredRegion::Register(impl.raw_devices, static_cast<uint8_t*>(addr), length,
                                 impl.chunk_bytes, IBV_ACCESS_LOCAL_WRITE, "a client buffer");
  if (!region.ok()) return region.status();
  impl.registry.Add(std::move(region).value());
  return Status::Ok();
}

Status RdmaEngine::UnregisterMemory(void* addr) {
  if (!impl_->registry.Remove(addr)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  fmt::format("no RDMA registration starts at {}", addr));
  }
  return Status::Ok();
}

void RdmaEngine::Run(std::vector<RdmaOp*>& ops) {
  Impl& impl = *impl_;
  {
    std::lock_guard<std::mutex> lock(impl.run_mu);
    if (impl.closed) {
      for (RdmaOp* op : ops) op->result = Status(ErrorCode::TRANSFER_FAIL, "RDMA engine closed");
      return;
    }
    impl.running++;
  }
  impl.RunBatch(ops);
  {
    std::lock_guard<std::mutex> lock(impl.run_mu);
    impl.running--;
  }
  impl.run_cv.notify_all();
}

void RdmaEngine::Close() {
  if (impl_ == nullptr) return;
  Impl& impl = *impl_;
  {
    std::unique_lock<std::mutex> lock(impl.run_mu);
    impl.closed = true;
    impl.run_cv.wait(lock, [&] { return impl.running == 0; });
    if (impl.torn_down) return;
    impl.torn_down = true;
  }
  impl.stopping.store(true);
  if (impl.poller.joinable()) {
    impl.Wake();
    impl.poller.join();
  }
  // Only this thread is left: queue pairs (and CQs, and the links that keep
  // the stores' halves), then memory, channels, PDs and contexts.
  {
    std::lock_guard<std::mutex> lock(impl.cache_mu);
    impl.cache.clear();
  }
  std::unordered_map<ibv_cq*, std::shared_ptr<QpEntry>> live;
  {
    std::lock_guard<std::mutex> lock(impl.live_mu);
    live.swap(impl.live);
    impl.retiring.clear();
  }
  for (auto& [cq, entry] : live) {
    std::lock_guard<std::mutex> lock(entry->post_mu);
    entry->chains.clear();
    entry->qp.reset();
    entry->link.reset();
  }
  live.clear();
  impl.registry.Clear();
  impl.channels.clear();
  impl.raw_devices.clear();
  impl.devices.clear();
  if (impl.wake_fd >= 0) {
    close(impl.wake_fd);
    impl.wake_fd = -1;
  }
}

const std::vector<RdmaNic>& RdmaEngine::nics() const { return impl_->nics; }
const RdmaCounters& RdmaEngine::counters() const { return impl_->counters; }

}  // namespace kvcached
