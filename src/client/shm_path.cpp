#include "client/shm_path.h"

#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>

#include "client/copy.h"
#include "client/copy_pool.h"
#include "net/socket_util.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;

constexpr auto kShmRetryAfter = std::chrono::seconds(5);
// Below this many bytes a batch of copies is done by the caller alone: a
// hand-over to the copy threads costs a few microseconds of wake-ups.
constexpr uint64_t kParallelCopyBytes = 256 << 10;

std::string StoreName(const SegmentEndpoint& s, const std::string& where) {
  return "store of segment '" + s.name + "' (shm " + where + ")";
}

}  // namespace

// A same-host segment mapped into this process. The control connection
// stays open: its hang-up says the store is gone.
struct ShmPath::Mapping {
  ~Mapping() {
    if (base != nullptr) ::munmap(base, size);
    if (control >= 0) ::close(control);
  }
  uint8_t* base = nullptr;
  uint64_t size = 0;
  int control = -1;
  std::string name;
};

ShmPath::ShmPath(const TransportOptions& options, TransportCounters& counters)
    : options_(options), counters_(counters) {
  if (options_.copy_threads > 1) copiers_ = std::make_unique<CopyPool>(options_.copy_threads - 1);
}

ShmPath::~ShmPath() { Close(); }

void ShmPath::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  mappings_.clear();
  failures_.clear();
}

void ShmPath::Run(std::vector<TransferOp*>& ops) {
  SweepMappings();
  uint64_t bytes = 0;
  for (TransferOp* op : ops) bytes += op->length;
  // A batch worth the hand-over is shared with the copy threads.
  if (copiers_ && bytes >= kParallelCopyBytes) {
    copiers_->ForEach(ops.size(), [&](size_t i) { Copy(*ops[i]); });
  } else {
    for (TransferOp* op : ops) Copy(*op);
  }
}

std::shared_ptr<ShmPath::Mapping> ShmPath::Attach(const SegmentEndpoint& segment, Status& why) {
  const std::string key = segment.instance + "/" + segment.name;
  {
    std::lock_guard<std::mutex> lock(mu_);
    // Whether the store is still there is SweepMappings' question, asked
    // once a second rather than on every copy.
    auto it = mappings_.find(key);
    if (it != mappings_.end()) return it->second;
    auto failed = failures_.find(key);
    if (failed != failures_.end()) {
      if (Clock::now() < failed->second) {
        why = Status(ErrorCode::TRANSFER_FAIL,
                     "shared memory with segment '" + segment.name + "' failed recently");
        return nullptr;
      }
      failures_.erase(failed);
    }
  }
  std::string peer = StoreName(segment, segment.shm);
  Deadline deadline = Clock::now() + options_.connect_timeout;
  auto fail = [&](Status st) -> std::shared_ptr<Mapping> {
    spdlog::warn("cannot map segment '{}' through {}: {}", segment.name, segment.shm,
                 st.ToString());
    why = Status(ErrorCode::TRANSFER_FAIL, "shared memory with " + peer + ": " + st.message());
    std::lock_guard<std::mutex> lock(mu_);
    failures_[key] = Clock::now() + kShmRetryAfter;
    return nullptr;
  };
  auto m = std::make_shared<Mapping>();
  m->name = segment.name;
  Result<int> fd = ConnectUnix(segment.shm, deadline, peer);
  if (!fd.ok()) return fail(fd.status());
  m->control = *fd;
  if (Result<HelloResponse> hello = SayHello(m->control, options_.hello, deadline, peer);
      !hello.ok()) {
    return fail(hello.status());
  }
  FrameHeader h;  // ShmAttach: a header with an empty body
  h.type = static_cast<uint16_t>(MsgType::kShmAttach);
  h.request_id = 1;
  unsigned char frame[kFrameHeaderBytes];
  EncodeHeader(h, frame);
  if (Status st = SendAll(m->control, frame, sizeof frame, deadline, peer); !st.ok()) {
    return fail(st);
  }
  FrameHeader head;
  std::string body;
  int memfd = -1;
  if (Status st = RecvFrameWithFd(m->control, head, body, &memfd, 4096, deadline, peer); !st.ok()) {
    return fail(st);
  }
  ShmAttachResponse res;
  Status st = (head.flags & kFlagError) ? Status(ErrorCode::TRANSFER_FAIL, "refused")
                                        : DecodeBody(body, res);
  struct stat info {};
  if (st.ok() && memfd < 0) st = Status(ErrorCode::TRANSFER_FAIL, "no descriptor came");
  if (st.ok() && (res.segment != segment.name || res.size != segment.size)) {
    st = Status(ErrorCode::TRANSFER_FAIL, "it serves segment '" + res.segment + "' of " +
                                              std::to_string(res.size) + " bytes instead");
  }
  if (st.ok() && (::fstat(memfd, &info) != 0 || static_cast<uint64_t>(info.st_size) < res.size)) {
    st = Status(ErrorCode::TRANSFER_FAIL, "the descriptor is smaller than the segment");
  }
  if (st.ok()) {
    // Page tables filled up front: faulting the segment in 4 KiB at a time
    // during copies cost a third of the bandwidth (docs/benchmarks.md).
    void* base =
        ::mmap(nullptr, res.size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, memfd, 0);
    if (base == MAP_FAILED) {
      st = Status(ErrorCode::TRANSFER_FAIL, std::string("mmap: ") + std::strerror(errno));
    } else {
      m->base = static_cast<uint8_t*>(base);
      m->size = res.size;
    }
  }
  if (memfd >= 0) ::close(memfd);  // the mapping keeps the memory
  if (!st.ok()) return fail(st);
  counters_.shm_attaches++;
  spdlog::debug("mapped segment '{}' ({} bytes) through {}", segment.name, m->size, segment.shm);
  std::lock_guard<std::mutex> lock(mu_);
  // Another thread may have attached first: keep one mapping.
  return mappings_.emplace(key, m).first->second;
}

void ShmPath::SweepMappings() {
  std::lock_guard<std::mutex> lock(mu_);
  auto now = Clock::now();
  if (now < next_sweep_) return;
  next_sweep_ = now + std::chrono::seconds(1);
  for (auto it = mappings_.begin(); it != mappings_.end();) {
    if (IdleConnectionAlive(it->second->control)) {
      ++it;
      continue;
    }
    spdlog::info("segment '{}': its store hung up; unmapping", it->second->name);
    it = mappings_.erase(it);  // transfers still copying hold their own reference
  }
}

bool ShmPath::Reaches(const SegmentEndpoint& segment) {
  if (segment.shm.empty()) return false;
  Status why;
  return Attach(segment, why) != nullptr;
}

void ShmPath::Copy(TransferOp& op) {
  uint8_t* base = nullptr;
  uint64_t size = 0;
  std::shared_ptr<Mapping> mapping;
  if (op.path == Path::kLocal) {
    base = options_.own_base;
    size = options_.own_size;
  } else {
    Status why;
    mapping = Attach(*op.segment, why);
    if (!mapping) {
      FailOp(op, why.code(), why.message());
      return;
    }
    base = mapping->base;
    size = mapping->size;
  }
  if (!RangeWithin(DataRange{op.offset, op.length}, size)) {
    FailOp(op, ErrorCode::INVALID_PARAMS,
           "replica [" + std::to_string(op.offset) + ", +" + std::to_string(op.length) +
               ") lies outside segment '" + op.segment->name + "' of " + std::to_string(size) +
               " bytes");
    return;
  }
  uint8_t* dst = op.write ? base + op.offset : op.local;
  const uint8_t* src = op.write ? op.local : base + op.offset;
  if (op.want_checksum) {
    op.checksum = CopyAndChecksum(dst, src, op.length);
  } else {
    StreamCopy(dst, src, op.length);
  }
  counters_.shm_transfers++;
}

}  // namespace kvcached
