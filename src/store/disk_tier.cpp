#include "store/disk_tier.h"

#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <deque>
#include <list>
#include <mutex>
#include <optional>
#include <random>
#include <thread>
#include <unordered_map>
#include <utility>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#endif

#include <spdlog/spdlog.h>

#include "core/offset_allocator.h"
#include "core/printable.h"
#include "core/rpc_protocol.h"
#include "core/units.h"

namespace kvcached {
namespace {

constexpr uint64_t kBlock = 4096;
constexpr uint64_t kMinCapacity = 16ull << 20;
constexpr uint64_t kMaxCapacity = 1ull << 62;  // keeps every offset sum far from overflow
constexpr uint64_t kMinStaging = 1ull << 20;
// One io_uring write or read moves at most 2 GiB - 4 KiB; a record is one.
constexpr uint64_t kMaxImageBytes = 1ull << 30;
constexpr unsigned kMaxQueueDepth = 1024;
constexpr uint64_t kScanChunkBytes = 8ull << 20;
constexpr unsigned kScanDepth = 4;  // scan reads in flight: 32 MiB of buffers during Open
constexpr int kMaxConsecutiveErrors = 3;

constexpr char kSuperMagic[8] = {'K', 'V', 'C', 'D', 'T', 'I', 'E', 'R'};
constexpr char kRecordMagic[8] = {'K', 'V', 'C', 'D', 'R', 'E', 'C', '1'};
constexpr uint32_t kFormatVersion = 1;
constexpr size_t kSuperHashedBytes = 40;
constexpr size_t kHeaderFixedBytes = 80;

constexpr uint64_t RoundUp(uint64_t n) { return (n + kBlock - 1) / kBlock * kBlock; }
constexpr uint32_t HeaderBytesFor(uint64_t key_bytes) {
  return static_cast<uint32_t>(RoundUp(kHeaderFixedBytes + key_bytes + 8));
}
constexpr uint64_t kMaxHeaderBytes = HeaderBytesFor(kMaxInternalKeyBytes);
static_assert(kMaxHeaderBytes == 2 * kBlock, "the longest key needs a header of 8 KiB");
static_assert(kScanChunkBytes % kBlock == 0);

uint64_t NowNs() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

uint64_t Hash(uint64_t seed, const void* data, size_t size) {
#if defined(__x86_64__)
  return XXH3_64bits_withSeed_dispatch(data, size, seed);
#else
  return XXH3_64bits_withSeed(data, size, seed);
#endif
}

// The payload hash of a record the scan meets in pieces, chunk by chunk.
class StreamHash {
 public:
  explicit StreamHash(uint64_t seed) {
    // Zeroed first: reset_withSeed skips deriving the secret when the state
    // already holds this seed, and memory left by an earlier scan of the
    // same file can hold it beside a clobbered secret.
    std::memset(static_cast<void*>(&state_), 0, sizeof state_);
    XXH3_64bits_reset_withSeed(&state_, seed);
  }
  void Update(const void* data, size_t size) {
#if defined(__x86_64__)
    XXH3_64bits_update_dispatch(&state_, data, size);
#else
    XXH3_64bits_update(&state_, data, size);
#endif
  }
  uint64_t Digest() const { return XXH3_64bits_digest(&state_); }

 private:
  XXH3_state_t state_;
};

void Put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
void Put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
}
uint32_t Get32(const uint8_t* p) {
  uint32_t v = 0;
  for (int i = 0; i < 4; ++i) v |= static_cast<uint32_t>(p[i]) << (8 * i);
  return v;
}
uint64_t Get64(const uint8_t* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(p[i]) << (8 * i);
  return v;
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};
// Memory O_DIRECT can move: 4 KiB-aligned. Null when it cannot be had.
using AlignedBuffer = std::unique_ptr<uint8_t[], FreeDeleter>;
AlignedBuffer AllocateAligned(uint64_t bytes) {
  void* p = nullptr;
  if (posix_memalign(&p, kBlock, bytes) != 0) return nullptr;
  return AlignedBuffer(static_cast<uint8_t*>(p));
}

class Fd {
 public:
  explicit Fd(int fd = -1) : fd_(fd) {}
  ~Fd() { reset(); }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }
  void reset(int fd = -1) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = fd;
  }
  int release() { return std::exchange(fd_, -1); }

 private:
  int fd_;
};

class Ring {
 public:
  Ring() = default;
  ~Ring() {
    if (ready_) io_uring_queue_exit(&ring_);
  }
  Ring(const Ring&) = delete;
  Ring& operator=(const Ring&) = delete;
  int Init(unsigned entries) {
    int r = io_uring_queue_init(entries, &ring_, 0);
    ready_ = r == 0;
    return r;
  }
  io_uring* get() { return &ring_; }

 private:
  io_uring ring_{};
  bool ready_ = false;
};

std::string ErrnoText(int err) { return std::strerror(err); }

// An I/O completion that is not the whole transfer, in words.
std::string IoErrorText(int res, uint64_t want) {
  if (res < 0) return ErrnoText(-res);
  return "short transfer (" + std::to_string(res) + " of " + std::to_string(want) + " bytes)";
}

// rename(2) that fails with EEXIST instead of replacing `to`; 0 or an errno.
int RenameNoReplace(const std::string& from, const std::string& to) {
  if (::renameat2(AT_FDCWD, from.c_str(), AT_FDCWD, to.c_str(), RENAME_NOREPLACE) == 0) return 0;
  if (errno != EINVAL) return errno;
  // A file system without RENAME_NOREPLACE: link(2) fails on an existing name too.
  if (::link(from.c_str(), to.c_str()) != 0) return errno;
  ::unlink(from.c_str());
  return 0;
}

std::string SanitizeName(const std::string& name) {
  std::string out = name;
  for (char& c : out) {
    bool keep = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-';
    if (!keep) c = '_';
  }
  return out;
}

uint64_t RandomSalt() {
  std::random_device rd;
  return (static_cast<uint64_t>(rd()) << 32) ^ rd();
}

// A record header as it is on disk (see disk_tier.h for the layout).
struct Header {
  uint32_t header_bytes = 0;
  uint64_t offset = 0;
  uint64_t seq = 0;
  uint64_t payload_hash = 0;
  DiskRecord rec;
};

uint64_t ImageBytes(uint32_t header_bytes, uint64_t size) { return header_bytes + RoundUp(size); }

// Writes h's header into out[0, h.header_bytes).
void EncodeHeader(const Header& h, uint64_t salt, uint8_t* out) {
  std::memset(out, 0, h.header_bytes);
  std::memcpy(out, kRecordMagic, 8);
  Put32(out + 8, h.header_bytes);
  Put32(out + 12, static_cast<uint32_t>(h.rec.key.size()));
  Put64(out + 16, h.offset);
  Put64(out + 24, h.seq);
  Put64(out + 32, h.rec.version);
  Put64(out + 40, h.rec.size);
  Put64(out + 48, h.rec.checksum);
  Put64(out + 56, h.payload_hash);
  out[64] = h.rec.pin;
  std::memcpy(out + kHeaderFixedBytes, h.rec.key.data(), h.rec.key.size());
  size_t hashed = kHeaderFixedBytes + h.rec.key.size();
  Put64(out + hashed, Hash(salt, out, hashed));
}

// The header at `p` (`avail` readable bytes), found at file offset `offset` of
// a file of `capacity` bytes; nullopt unless it is whole, in bounds and its
// hash matches. Every length is bounded before it is used.
std::optional<Header> ParseHeader(const uint8_t* p, uint64_t avail, uint64_t offset,
                                  uint64_t capacity, uint64_t salt) {
  if (avail < kBlock || std::memcmp(p, kRecordMagic, 8) != 0) return std::nullopt;
  Header h;
  h.header_bytes = Get32(p + 8);
  uint32_t key_bytes = Get32(p + 12);
  if (key_bytes > kMaxInternalKeyBytes || h.header_bytes != HeaderBytesFor(key_bytes) ||
      h.header_bytes > avail) {
    return std::nullopt;
  }
  if (Get64(p + 16) != offset || offset >= capacity || h.header_bytes > capacity - offset) {
    return std::nullopt;
  }
  h.offset = offset;
  h.seq = Get64(p + 24);
  h.rec.version = Get64(p + 32);
  h.rec.size = Get64(p + 40);
  h.rec.checksum = Get64(p + 48);
  h.payload_hash = Get64(p + 56);
  h.rec.pin = p[64];
  if (h.rec.size > capacity || RoundUp(h.rec.size) > capacity - offset - h.header_bytes) {
    return std::nullopt;
  }
  for (size_t i = 65; i < kHeaderFixedBytes; ++i) {
    if (p[i] != 0) return std::nullopt;
  }
  size_t hashed = kHeaderFixedBytes + key_bytes;
  if (Get64(p + hashed) != Hash(salt, p, hashed)) return std::nullopt;
  h.rec.key.assign(reinterpret_cast<const char*>(p + kHeaderFixedBytes), key_bytes);
  return h;
}

struct Superblock {
  uint32_t version = 0;
  uint64_t capacity = 0;
  uint64_t salt = 0;
};

void EncodeSuperblock(const Superblock& sb, uint8_t* out) {
  std::memset(out, 0, kBlock);
  std::memcpy(out, kSuperMagic, 8);
  Put32(out + 8, kFormatVersion);
  Put32(out + 12, static_cast<uint32_t>(kBlock));
  Put64(out + 16, sb.capacity);
  Put64(out + 24, sb.salt);
  Put64(out + 32, static_cast<uint64_t>(std::time(nullptr)));
  Put64(out + kSuperHashedBytes, Hash(0, out, kSuperHashedBytes));
}

// Reads the superblock of the file that O_DIRECT reads `sync_read` into
// `buf`. A file is ours when magic and hash match; `why` says why not.
std::optional<Superblock> DecodeSuperblock(const uint8_t* p, std::string* why) {
  if (std::memcmp(p, kSuperMagic, 8) != 0) {
    *why = "it does not start with the disk tier's magic";
    return std::nullopt;
  }
  if (Get64(p + kSuperHashedBytes) != Hash(0, p, kSuperHashedBytes)) {
    *why = "its superblock's hash does not match";
    return std::nullopt;
  }
  Superblock sb;
  sb.version = Get32(p + 8);
  sb.capacity = Get64(p + 16);
  sb.salt = Get64(p + 24);
  if (sb.version != kFormatVersion) {
    *why = "it has format version " + std::to_string(sb.version) + "; this build reads " +
           std::to_string(kFormatVersion);
    return std::nullopt;
  }
  if (Get32(p + 12) != kBlock || sb.capacity % kBlock != 0 || sb.capacity < kMinCapacity ||
      sb.capacity > kMaxCapacity) {
    *why = "its superblock has an impossible block size or capacity";
    return std::nullopt;
  }
  return sb;
}

enum class RecState {
  kQueued,        // waiting for staging memory; src not copied yet
  kCopying,       // the worker copies src into staging, outside the lock
  kStaged,        // in staging memory, waiting for file space
  kWriting,       // placed; its write (and fdatasync) queued or in flight
  kOnDisk,        // on disk; readable
  kInvalidating,  // dropped; the zeros over its header are queued or in flight
};

struct PendingRead {
  void* dst = nullptr;
  uint64_t size = 0;
  std::function<void(Status)> done;
};

// One record, from Write (or the scan) until its space is free again. It is
// in the index from Write until it is dropped or fails; after that it lives
// on only while I/O, a copy or a staging read still names it.
struct Rec {
  DiskRecord meta;
  uint32_t header_bytes = 0;
  uint64_t image_bytes = 0;  // header + padded payload
  uint64_t seq = 0;
  uint64_t payload_hash = 0;  // set once the bytes are in staging (or by the scan)
  RecState state = RecState::kQueued;
  bool in_index = false;
  Status drop_status;  // what pending callbacks get once the record left the index

  const void* src = nullptr;
  std::function<void(Status)> copied;
  std::function<void(Status)> written;
  std::vector<PendingRead> waiting_reads;  // reads that came before the copy
  uint64_t write_start_ns = 0;

  std::optional<uint64_t> staging;  // offset in staging memory
  int staging_pins = 0;             // reads copying out of staging, outside the lock
  std::optional<uint64_t> file_offset;
  bool header_on_disk = false;  // a write left: the header must be zeroed before reuse
  int io = 0;                   // queued or in-flight ops naming this record

  bool in_lru = false;
  std::list<Rec*>::iterator lru;
  std::list<Rec>::iterator self;
};

enum class OpKind { kWrite, kWriteSync, kRead, kInvalidate, kInvalidateSync };

struct Op {
  Op(OpKind k, Rec* r) : kind(k), rec(r) {}
  OpKind kind;
  Rec* rec;
  uint64_t offset = 0;
  uint32_t bytes = 0;
  AlignedBuffer buf;  // reads: the bounce buffer
  PendingRead read;
  uint64_t start_ns = 0;
};

struct CopyJob {
  Rec* rec;
  uint8_t* payload;  // in staging
  uint64_t hash = 0;
};
struct StagingReadJob {
  Rec* rec;
  const uint8_t* payload;  // in staging
  PendingRead read;
};
struct VerifyJob {
  std::unique_ptr<Op> op;
  Status result;
};
// The work one worker round does outside the lock: memcpy and hashing.
struct Batch {
  std::vector<CopyJob> copies;
  std::vector<StagingReadJob> staging_reads;
  std::vector<VerifyJob> verifies;
  bool empty() const { return copies.empty() && staging_reads.empty() && verifies.empty(); }
};

// Reads [from, capacity) of the file in file order, kScanDepth chunks in
// flight. Each chunk's buffer holds kMaxHeaderBytes past the chunk's own
// range, so a header that starts in a chunk is whole in it. Used by Open
// only, before the worker owns the ring.
class ScanReader {
 public:
  struct Chunk {
    uint64_t offset = 0;
    uint64_t own_bytes = 0;    // [offset, offset + own_bytes) belongs to this chunk
    uint64_t avail_bytes = 0;  // bytes readable at data
    const uint8_t* data = nullptr;
  };

  ScanReader(io_uring* ring, int fd, uint64_t capacity, const std::string& path)
      : ring_(ring), fd_(fd), capacity_(capacity), path_(path) {}
  ~ScanReader() { Drain(); }  // the kernel must be done with the buffers
  ScanReader(const ScanReader&) = delete;
  ScanReader& operator=(const ScanReader&) = delete;

  Status Init() {
    for (Slot& s : slots_) {
      s.buf = AllocateAligned(kScanChunkBytes + kMaxHeaderBytes);
      if (!s.buf) return Status(ErrorCode::NO_AVAILABLE_HANDLE, "no memory for the scan buffers");
    }
    return Status::Ok();
  }

  // The next chunk; false at the end of the file.
  Result<bool> Next(Chunk* chunk) {
    if (current_ >= 0) slots_[current_].busy = false;
    current_ = -1;
    Fill();
    if (order_.empty()) return false;
    int idx = order_.front();
    order_.pop_front();
    while (!slots_[idx].done) ReapOne();
    Slot& s = slots_[idx];
    current_ = idx;
    if (s.res < 0 || static_cast<uint64_t>(s.res) != s.want) {
      return Status(ErrorCode::TRANSFER_FAIL, "cannot read " + std::to_string(s.want) +
                                                  " bytes at offset " + std::to_string(s.offset) +
                                                  " of '" + path_ +
                                                  "': " + IoErrorText(s.res, s.want));
    }
    chunk->offset = s.offset;
    chunk->own_bytes = std::min(kScanChunkBytes, capacity_ - s.offset);
    chunk->avail_bytes = s.want;
    chunk->data = s.buf.get();
    return true;
  }

  // Goes on from `offset` (4 KiB-aligned); reads already started are dropped.
  void Seek(uint64_t offset) {
    Drain();
    order_.clear();
    if (current_ >= 0) slots_[current_].busy = false;
    current_ = -1;
    for (Slot& s : slots_) s.busy = false;
    next_ = offset;
  }

 private:
  struct Slot {
    AlignedBuffer buf;
    uint64_t offset = 0;
    uint32_t want = 0;
    int32_t res = 0;
    bool busy = false;       // holds a chunk not yet handed out and released
    bool in_flight = false;  // the kernel still owns the buffer
    bool done = false;
  };

  void Fill() {
    bool queued = false;
    while (order_.size() < kScanDepth && next_ < capacity_) {
      int idx = -1;
      for (int i = 0; i < static_cast<int>(kScanDepth); ++i) {
        if (!slots_[i].busy) {
          idx = i;
          break;
        }
      }
      if (idx < 0) break;
      io_uring_sqe* sqe = io_uring_get_sqe(ring_);
      if (sqe == nullptr) break;
      Slot& s = slots_[idx];
      s.offset = next_;
      s.want =
          static_cast<uint32_t>(std::min(kScanChunkBytes + kMaxHeaderBytes, capacity_ - next_));
      s.busy = s.in_flight = true;
      s.done = false;
      io_uring_prep_read(sqe, fd_, s.buf.get(), s.want, s.offset);
      io_uring_sqe_set_data64(sqe, static_cast<uint64_t>(idx) + 1);
      order_.push_back(idx);
      next_ += std::min(kScanChunkBytes, capacity_ - next_);
      queued = true;
    }
    if (queued) io_uring_submit(ring_);
  }

  void ReapOne() {
    io_uring_cqe* cqe = nullptr;
    int r;
    do {
      r = io_uring_wait_cqe(ring_, &cqe);
    } while (r == -EINTR);
    if (r < 0) {  // cannot happen with reads in flight; fail the slots rather than hang
      for (Slot& s : slots_) {
        if (s.in_flight) {
          s.in_flight = false;
          s.done = true;
          s.res = r;
        }
      }
      return;
    }
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag >= 1 && tag <= kScanDepth) {
      Slot& s = slots_[tag - 1];
      s.res = cqe->res;
      s.in_flight = false;
      s.done = true;
    }
    io_uring_cqe_seen(ring_, cqe);
  }

  void Drain() {
    auto pending = [this] {
      return std::any_of(slots_.begin(), slots_.end(), [](const Slot& s) { return s.in_flight; });
    };
    while (pending()) ReapOne();
  }

  io_uring* ring_;
  int fd_;
  uint64_t capacity_;
  const std::string& path_;
  std::array<Slot, kScanDepth> slots_;
  std::deque<int> order_;  // slots with a chunk, in file order
  int current_ = -1;       // the chunk handed out last
  uint64_t next_ = kBlock;
};

}  // namespace

class DiskTier::Impl {
 public:
  ~Impl();
  Status Open(const DiskTierOptions& options, std::vector<DiskRecord>* found);

  void set_on_dropped(std::function<void(const DiskRecord&, std::string_view)> f) {
    on_dropped_ = std::move(f);
  }
  void Write(DiskRecord rec, const void* src, std::function<void(Status)> copied,
             std::function<void(Status)> written);
  void Read(const std::string& key, uint64_t version, void* dst, uint64_t size,
            std::function<void(Status)> done);
  void Drop(const std::string& key, uint64_t version);
  bool Contains(const std::string& key, uint64_t version) const;
  std::vector<DiskRecord> Records() const;
  DiskTierStats stats() const;
  const std::string& path() const { return path_; }

 private:
  // Open, stage by stage.
  Status CheckOptions(const DiskTierOptions& o);
  Status CheckDirectory() const;
  Status SetUpResources();
  Status OpenOrCreateFile(std::vector<DiskRecord>* found);
  Status CreateFile(bool replace);
  Status AdoptFile(std::vector<DiskRecord>* found);
  Status LockFile(int fd, const std::string& shown_path);
  Status Scan(std::vector<DiskRecord>* found);
  void ResetSpace();
  void ReadFaultHooks();
  int SyncIo(int fd, OpKind kind, void* buf, uint32_t bytes, uint64_t offset);

  // The worker.
  void Run();
  void WaitForCompletion();
  void Reap(Batch& batch);
  void TakeJobs(Batch& batch);
  void DoJobs(Batch& batch) const;
  void FinishJobs(Batch& batch);
  void PlaceWrites();
  void Submit();
  void CancelQueued();
  void ArmWake();
  Status VerifyRead(const Rec& r, const uint8_t* image) const;

  // Completions, under mu_.
  void OnComplete(std::unique_ptr<Op> op, int res, Batch& batch);
  void OnWriteDone(std::unique_ptr<Op> op, int res);
  void FinishWrite(Rec* r);
  void OnReadDone(std::unique_ptr<Op> op, int res, Batch& batch);
  void OnInvalidateDone(std::unique_ptr<Op> op, int res);
  void CountIoError(int res, bool write, const std::string& what);
  void GoOffline(const std::string& reason);

  // Record bookkeeping, under mu_.
  Status CheckWrite(const DiskRecord& rec, const void* src) const;
  Status Unavailable() const;
  void Unindex(Rec* r, Status why);
  void MaybeRetire(Rec* r);
  void StartInvalidate(Rec* r);
  void Evict(Rec* r);
  Rec* OldestIdle();
  void TrimStaging(Rec* r);
  void Touch(Rec* r);
  void Answer(std::function<void(Status)>& fn, const Status& st);
  void ReportDropped(const Rec* r, const std::string& why);
  bool NeedWake();
  void WakeWorker();
  std::string Describe(const Rec& r) const;

  DiskTierOptions options_;
  std::string path_;
  uint64_t requested_capacity_ = 0;
  uint64_t capacity_ = 0;
  uint64_t staging_bytes_ = 0;
  uint64_t max_image_bytes_ = 0;
  uint64_t salt_ = 0;
  Fd fd_;
  Fd wake_fd_;
  Ring ring_;
  AlignedBuffer staging_mem_;
  AlignedBuffer zero_block_;
  std::optional<uint64_t> fault_eio_after_;  // test builds: KVCACHED_FAULT_DISK_EIO_AFTER
  std::function<void(const DiskRecord&, std::string_view)> on_dropped_;  // read by the worker
  std::thread worker_;
  uint64_t wake_buf_ = 0;  // the worker's, for draining the eventfd

  mutable std::mutex mu_;                         // guards everything below
  std::optional<OffsetAllocator> file_space_;     // [0, capacity); the superblock reserved
  std::optional<OffsetAllocator> staging_space_;  // [0, staging_bytes_)
  std::list<Rec> records_;                        // every record alive
  std::unordered_map<std::string, Rec*> index_;   // the tier's content
  std::list<Rec*> lru_;                           // on disk, idle or not; front: least recent
  std::deque<Rec*> staging_wait_;                 // kQueued, in arrival order
  std::deque<Rec*> place_wait_;                   // kStaged, in arrival order
  std::deque<std::unique_ptr<Op>> backlog_;       // ready, waiting for a queue slot
  std::vector<StagingReadJob> staging_reads_;
  std::vector<std::function<void()>> ready_;  // callbacks for the worker to run
  unsigned in_flight_ = 0;                    // ops the kernel holds (not the wake poll)
  uint64_t freeing_bytes_ = 0;                // space whose invalidation is under way
  uint64_t next_seq_ = 1;
  int consecutive_errors_ = 0;
  uint64_t completed_writes_ = 0;
  uint64_t objects_ = 0;
  uint64_t bytes_ = 0;
  bool stopping_ = false;
  bool wake_pending_ = false;
  DiskTierStats stats_;  // counters, online and offline_reason
};

// ---- Open ------------------------------------------------------------------

Status DiskTier::Impl::Open(const DiskTierOptions& options, std::vector<DiskRecord>* found) {
  if (Status s = CheckOptions(options); !s.ok()) return s;
  if (Status s = CheckDirectory(); !s.ok()) return s;
  if (Status s = SetUpResources(); !s.ok()) return s;
  if (Status s = OpenOrCreateFile(found); !s.ok()) return s;
  ReadFaultHooks();
  worker_ = std::thread([this] { Run(); });
  return Status::Ok();
}

Status DiskTier::Impl::CheckOptions(const DiskTierOptions& o) {
  auto bad = [](const std::string& why) {
    return Status(ErrorCode::INVALID_PARAMS, "disk tier: " + why);
  };
  if (o.dir.empty()) return bad("no directory given");
  if (o.name.empty()) return bad("no name given");
  requested_capacity_ = o.capacity_bytes / kBlock * kBlock;
  if (requested_capacity_ < kMinCapacity) {
    return bad("a capacity of " + FormatSize(o.capacity_bytes) + " is below the minimum of " +
               FormatSize(kMinCapacity));
  }
  if (requested_capacity_ > kMaxCapacity) {
    return bad("a capacity of " + FormatSize(o.capacity_bytes) + " is above the maximum of " +
               FormatSize(kMaxCapacity));
  }
  staging_bytes_ = o.staging_bytes / kBlock * kBlock;
  if (staging_bytes_ < kMinStaging) {
    return bad("staging memory of " + FormatSize(o.staging_bytes) + " is below the minimum of " +
               FormatSize(kMinStaging));
  }
  if (o.queue_depth < 1 || o.queue_depth > kMaxQueueDepth) {
    return bad("queue depth " + std::to_string(o.queue_depth) + " is not in 1.." +
               std::to_string(kMaxQueueDepth));
  }
  options_ = o;
  options_.name = SanitizeName(o.name);
  std::string dir = o.dir;
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  options_.dir = dir;
  path_ = (dir == "/" ? "" : dir) + "/" + options_.name + ".kvtier";
  return Status::Ok();
}

Status DiskTier::Impl::CheckDirectory() const {
  struct stat st {};
  if (::stat(options_.dir.c_str(), &st) != 0) {
    int err = errno;
    std::string why = err == ENOENT ? "it does not exist (create it first; it is not made for you)"
                                    : ErrnoText(err);
    return Status(ErrorCode::INVALID_PARAMS,
                  "disk tier directory '" + options_.dir + "' cannot be used: " + why);
  }
  if (!S_ISDIR(st.st_mode)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "disk tier directory '" + options_.dir + "' is not a directory");
  }
  return Status::Ok();
}

Status DiskTier::Impl::SetUpResources() {
  // One slot for the wake-up poll, one to spare.
  if (int r = ring_.Init(options_.queue_depth + 2); r < 0) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "disk tier '" + path_ + "': cannot set up io_uring: " + ErrnoText(-r) +
                      (r == -EPERM || r == -ENOSYS ? " (io_uring disabled by the kernel or a "
                                                     "seccomp policy?)"
                                                   : ""));
  }
  wake_fd_.reset(::eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (wake_fd_.get() < 0) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "disk tier '" + path_ + "': eventfd: " + ErrnoText(errno));
  }
  staging_mem_ = AllocateAligned(staging_bytes_);
  zero_block_ = AllocateAligned(kBlock);
  if (!staging_mem_ || !zero_block_) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE, "disk tier '" + path_ + "': no memory for " +
                                                      FormatSize(staging_bytes_) +
                                                      " of staging memory");
  }
  std::memset(zero_block_.get(), 0, kBlock);
  staging_space_.emplace(staging_bytes_, kBlock);
  return Status::Ok();
}

Status DiskTier::Impl::OpenOrCreateFile(std::vector<DiskRecord>* found) {
  int fd = ::open(path_.c_str(), O_RDWR | O_DIRECT | O_CLOEXEC | O_NOCTTY);
  if (fd < 0) {
    int err = errno;
    if (err == ENOENT) return CreateFile(/*replace=*/false);
    if (err == EINVAL) {
      return Status(ErrorCode::NOT_SUPPORTED,
                    "disk tier '" + path_ + "': the file system of '" + options_.dir +
                        "' does not support O_DIRECT (tmpfs?); choose a directory on a disk");
    }
    return Status(ErrorCode::INVALID_PARAMS,
                  "disk tier: cannot open '" + path_ + "': " + ErrnoText(err));
  }
  fd_.reset(fd);
  return AdoptFile(found);
}

Status DiskTier::Impl::LockFile(int fd, const std::string& shown_path) {
  // A store killed a moment ago may hold the lock for some milliseconds
  // more (the kernel closes its io_uring, and with it the file, after the
  // process is gone): a restart right after a kill waits for that, a while.
  constexpr auto kLockWait = std::chrono::seconds(3);
  const auto give_up = std::chrono::steady_clock::now() + kLockWait;
  auto pause = std::chrono::milliseconds(5);
  int err = 0;
  while (true) {
    if (::flock(fd, LOCK_EX | LOCK_NB) == 0) return Status::Ok();
    err = errno;
    if (err != EWOULDBLOCK || std::chrono::steady_clock::now() >= give_up) break;
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, std::chrono::milliseconds(200));
  }
  if (err == EWOULDBLOCK) {
    return Status(
        ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
        "disk tier '" + shown_path + "' is in use by another disk tier (another running store?)");
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "disk tier: cannot lock '" + shown_path + "': " + ErrnoText(err));
}

// Made under a temporary name and renamed into place, so that the path never
// holds a file without its superblock (which the next Open would refuse as
// foreign). The lock taken on the temporary file stays with the renamed one;
// with `replace`, the file being replaced stays locked until then.
Status DiskTier::Impl::CreateFile(bool replace) {
  std::string tmp = options_.dir + "/." + options_.name + ".kvtier.new";
  Fd file(::open(tmp.c_str(), O_RDWR | O_CREAT | O_DIRECT | O_CLOEXEC | O_NOFOLLOW, 0600));
  if (file.get() < 0) {
    int err = errno;
    if (err == EINVAL) {
      return Status(ErrorCode::NOT_SUPPORTED,
                    "disk tier '" + path_ + "': the file system of '" + options_.dir +
                        "' does not support O_DIRECT (tmpfs?); choose a directory on a disk");
    }
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "disk tier: cannot create '" + tmp + "': " + ErrnoText(err));
  }
  // Another Open making the same file holds the lock; its file is left alone.
  if (Status s = LockFile(file.get(), tmp); !s.ok()) return s;
  auto fail = [&](ErrorCode code, const std::string& why) {
    ::unlink(tmp.c_str());
    return Status(code, why);
  };
  if (::ftruncate(file.get(), 0) != 0) {  // the remains of an Open that failed or crashed
    return fail(ErrorCode::NO_AVAILABLE_HANDLE,
                "disk tier: cannot truncate '" + tmp + "': " + ErrnoText(errno));
  }
  if (::fallocate(file.get(), 0, 0, static_cast<off_t>(requested_capacity_)) != 0) {
    int err = errno;
    return fail(ErrorCode::NO_AVAILABLE_HANDLE,
                "disk tier: cannot allocate " + FormatSize(requested_capacity_) + " (" +
                    std::to_string(requested_capacity_) + " bytes) for '" + path_ +
                    "': " + ErrnoText(err) + "; choose a smaller capacity or free disk space");
  }
  const uint64_t salt = RandomSalt();
  AlignedBuffer block = AllocateAligned(kBlock);
  if (!block) return fail(ErrorCode::NO_AVAILABLE_HANDLE, "disk tier: no memory");
  EncodeSuperblock(Superblock{kFormatVersion, requested_capacity_, salt}, block.get());
  int w = SyncIo(file.get(), OpKind::kWrite, block.get(), kBlock, 0);
  int f = w == static_cast<int>(kBlock) ? SyncIo(file.get(), OpKind::kWriteSync, nullptr, 0, 0) : 0;
  if (w != static_cast<int>(kBlock) || f < 0) {
    return fail(ErrorCode::NO_AVAILABLE_HANDLE,
                "disk tier: cannot write the superblock of '" + tmp +
                    "': " + (f < 0 ? "fdatasync: " + ErrnoText(-f) : IoErrorText(w, kBlock)));
  }
  if (replace) {
    if (::rename(tmp.c_str(), path_.c_str()) != 0) {
      return fail(ErrorCode::NO_AVAILABLE_HANDLE,
                  "disk tier: cannot rename '" + tmp + "' to '" + path_ + "': " + ErrnoText(errno));
    }
  } else if (int err = RenameNoReplace(tmp, path_); err != 0) {
    return fail(
        err == EEXIST ? ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS : ErrorCode::NO_AVAILABLE_HANDLE,
        "disk tier: cannot rename '" + tmp + "' to '" + path_ + "': " + ErrnoText(err));
  }
  Fd dir(::open(options_.dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC));
  if (dir.get() >= 0) (void)::fsync(dir.get());  // the new name survives a crash
  fd_.reset(file.release());
  capacity_ = requested_capacity_;
  salt_ = salt;
  ResetSpace();
  spdlog::info("disk tier {}: made, {} ({} bytes)", path_, FormatSize(capacity_), capacity_);
  return Status::Ok();
}

Status DiskTier::Impl::AdoptFile(std::vector<DiskRecord>* found) {
  if (Status s = LockFile(fd_.get(), path_); !s.ok()) return s;
  auto refuse = [&](const std::string& why) {
    return Status(ErrorCode::INVALID_PARAMS, "disk tier: '" + path_ +
                                                 "' exists and is not a kvcached disk tier file (" +
                                                 why + "); it is left as it is");
  };
  struct stat st {};
  if (::fstat(fd_.get(), &st) != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "disk tier: cannot stat '" + path_ + "': " + ErrnoText(errno));
  }
  if (!S_ISREG(st.st_mode)) return refuse("not a regular file");
  uint64_t file_bytes = static_cast<uint64_t>(st.st_size);
  if (file_bytes < kBlock) return refuse("it has " + std::to_string(file_bytes) + " bytes");
  AlignedBuffer block = AllocateAligned(kBlock);
  if (!block) return Status(ErrorCode::NO_AVAILABLE_HANDLE, "disk tier: no memory");
  int r = SyncIo(fd_.get(), OpKind::kRead, block.get(), kBlock, 0);
  if (r != static_cast<int>(kBlock)) {
    return Status(ErrorCode::TRANSFER_FAIL, "disk tier: cannot read the superblock of '" + path_ +
                                                "': " + IoErrorText(r, kBlock));
  }
  std::string why;
  std::optional<Superblock> sb = DecodeSuperblock(block.get(), &why);
  if (!sb) return refuse(why);
  if (file_bytes < sb->capacity) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "disk tier: '" + path_ + "' has " + std::to_string(file_bytes) +
                      " bytes but its superblock says " + std::to_string(sb->capacity) +
                      " (truncated?); remove it to start empty");
  }
  capacity_ = sb->capacity;
  salt_ = sb->salt;
  ResetSpace();
  std::vector<DiskRecord> kept;
  if (Status s = Scan(&kept); !s.ok()) return s;
  if (capacity_ != requested_capacity_) {
    if (!kept.empty()) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "disk tier: '" + path_ + "' was made with a capacity of " +
                        FormatSize(capacity_) + " and holds " + std::to_string(kept.size()) +
                        " records; the capacity asked for is " + FormatSize(requested_capacity_) +
                        ". Start with the old capacity, or remove the file to start empty");
    }
    spdlog::info("disk tier {}: holds no record; made anew with capacity {} (was {})", path_,
                 FormatSize(requested_capacity_), FormatSize(capacity_));
    return CreateFile(/*replace=*/true);
  }
  if (found != nullptr) *found = std::move(kept);
  return Status::Ok();
}

void DiskTier::Impl::ResetSpace() {
  records_.clear();
  index_.clear();
  lru_.clear();
  objects_ = bytes_ = 0;
  file_space_.emplace(capacity_, kBlock);
  (void)file_space_->Reserve(0, kBlock);  // the superblock
  max_image_bytes_ = std::min({capacity_ - kBlock, staging_bytes_, kMaxImageBytes});
  stats_.capacity_bytes = capacity_;
}

// See the format comment in disk_tier.h. Records are kept in `records_` and
// the index; what is dropped is invalidated before Open returns, so the
// space it leaves free holds no valid header when it is reused.
Status DiskTier::Impl::Scan(std::vector<DiskRecord>* found) {
  const uint64_t started = NowNs();
  ScanReader reader(ring_.get(), fd_.get(), capacity_, path_);
  if (Status s = reader.Init(); !s.ok()) return s;

  struct Pending {
    Header h;
    uint64_t payload_start;
    uint64_t end;
    StreamHash hash;
  };
  std::optional<Pending> cur;
  std::unordered_map<std::string, Header> best;
  std::vector<uint64_t> invalidate;
  uint64_t torn = 0, older = 0;
  auto keep = [&](Header h) {
    auto [it, fresh] = best.try_emplace(h.rec.key, h);
    if (fresh) return;
    Header& other = it->second;
    bool newer = h.rec.version > other.rec.version ||
                 (h.rec.version == other.rec.version && h.seq > other.seq);
    invalidate.push_back(newer ? other.offset : h.offset);
    if (newer) other = std::move(h);
    ++older;
  };

  uint64_t pos = kBlock;
  reader.Seek(pos);
  ScanReader::Chunk c;
  for (;;) {
    Result<bool> more = reader.Next(&c);
    if (!more.ok()) return more.status();
    if (!*more) break;
    const uint64_t chunk_end = c.offset + c.own_bytes;
    uint64_t p = std::max(pos, c.offset);
    while (p < chunk_end) {
      if (cur) {
        uint64_t to = std::min(chunk_end, cur->end);
        uint64_t from = std::max(p, cur->payload_start);
        uint64_t hashed_to = std::min(to, cur->payload_start + cur->h.rec.size);  // not the padding
        if (from < hashed_to) cur->hash.Update(c.data + (from - c.offset), hashed_to - from);
        p = to;
        if (p < cur->end) break;  // goes on in the next chunk
        if (cur->hash.Digest() == cur->h.payload_hash) {
          keep(std::move(cur->h));
          cur.reset();
          continue;
        }
        // Torn: the header made it to disk, the payload did not (or it
        // rotted). Whatever lies behind the header is looked at again.
        ++torn;
        invalidate.push_back(cur->h.offset);
        p = cur->h.offset + kBlock;
        cur.reset();
        reader.Seek(p);
        break;
      }
      std::optional<Header> h =
          ParseHeader(c.data + (p - c.offset), c.avail_bytes - (p - c.offset), p, capacity_, salt_);
      if (!h) {
        p += kBlock;
        continue;
      }
      uint64_t payload_start = p + h->header_bytes;
      uint64_t end = payload_start + RoundUp(h->rec.size);
      cur.emplace(Pending{std::move(*h), payload_start, end, StreamHash(salt_)});
    }
    pos = p;
  }
  if (cur) {  // ParseHeader bounds the end by the capacity: cannot happen
    ++torn;
    invalidate.push_back(cur->h.offset);
  }

  for (uint64_t offset : invalidate) {
    int r = SyncIo(fd_.get(), OpKind::kInvalidate, zero_block_.get(), kBlock, offset);
    if (r != static_cast<int>(kBlock)) {
      return Status(ErrorCode::TRANSFER_FAIL, "disk tier: cannot invalidate the record at offset " +
                                                  std::to_string(offset) + " of '" + path_ +
                                                  "': " + IoErrorText(r, kBlock));
    }
  }
  if (!invalidate.empty()) {
    if (int r = SyncIo(fd_.get(), OpKind::kWriteSync, nullptr, 0, 0); r < 0) {
      return Status(ErrorCode::TRANSFER_FAIL,
                    "disk tier: fdatasync of '" + path_ + "' failed: " + ErrnoText(-r));
    }
  }

  std::vector<Header> kept;
  kept.reserve(best.size());
  for (auto& [key, h] : best) kept.push_back(std::move(h));
  std::sort(kept.begin(), kept.end(),
            [](const Header& a, const Header& b) { return a.seq < b.seq; });
  uint64_t payload_bytes = 0;
  for (Header& h : kept) {
    uint64_t image = ImageBytes(h.header_bytes, h.rec.size);
    if (Status s = file_space_->Reserve(h.offset, image); !s.ok()) {
      // Records found by the scan never overlap; refuse rather than guess.
      return Status(ErrorCode::INTERNAL_ERROR, "disk tier: the record at offset " +
                                                   std::to_string(h.offset) + " of '" + path_ +
                                                   "' overlaps another: " + s.message());
    }
    Rec& r = records_.emplace_back();
    r.self = std::prev(records_.end());
    r.meta = h.rec;
    r.header_bytes = h.header_bytes;
    r.image_bytes = image;
    r.seq = h.seq;
    r.payload_hash = h.payload_hash;
    r.state = RecState::kOnDisk;
    r.file_offset = h.offset;
    r.header_on_disk = true;
    r.in_index = true;
    index_[r.meta.key] = &r;
    r.lru = lru_.insert(lru_.end(), &r);
    r.in_lru = true;
    next_seq_ = std::max(next_seq_, h.seq + 1);
    ++objects_;
    bytes_ += h.rec.size;
    payload_bytes += h.rec.size;
    if (found != nullptr) found->push_back(h.rec);
  }
  stats_.scan_records = kept.size();
  stats_.scan_dropped = torn + older;
  stats_.corrupt += torn;
  spdlog::info(
      "disk tier {}: {} records ({}) found, {} torn and {} older versions dropped; "
      "scanned {} in {} ms",
      path_, kept.size(), FormatSize(payload_bytes), torn, older, FormatSize(capacity_),
      (NowNs() - started) / 1000000);
  return Status::Ok();
}

void DiskTier::Impl::ReadFaultHooks() {
#ifdef KVCACHED_FAULT_HOOKS
  // Test builds only: KVCACHED_FAULT_DISK_EIO_AFTER=N fails every disk I/O
  // after the first N completed record writes with EIO, as a disk that dies
  // under a running store.
  const char* v = std::getenv("KVCACHED_FAULT_DISK_EIO_AFTER");
  if (v != nullptr && *v != '\0') {
    char* end = nullptr;
    unsigned long long n = std::strtoull(v, &end, 10);
    if (end != nullptr && *end == '\0') {
      fault_eio_after_ = n;
      spdlog::warn("disk tier {}: fault hook: every I/O after {} record writes fails with EIO",
                   path_, n);
    }
  }
#endif
}

// Open's I/O, on the calling thread before the worker owns the ring.
int DiskTier::Impl::SyncIo(int fd, OpKind kind, void* buf, uint32_t bytes, uint64_t offset) {
  io_uring* ring = ring_.get();
  io_uring_sqe* sqe = io_uring_get_sqe(ring);
  if (sqe == nullptr) return -EBUSY;
  switch (kind) {
    case OpKind::kRead:
      io_uring_prep_read(sqe, fd, buf, bytes, offset);
      break;
    case OpKind::kWrite:
    case OpKind::kInvalidate:
      io_uring_prep_write(sqe, fd, buf, bytes, offset);
      break;
    case OpKind::kWriteSync:
    case OpKind::kInvalidateSync:
      io_uring_prep_fsync(sqe, fd, IORING_FSYNC_DATASYNC);
      break;
  }
  io_uring_sqe_set_data64(sqe, 0);
  if (int r = io_uring_submit(ring); r < 0) return r;
  io_uring_cqe* cqe = nullptr;
  int r;
  do {
    r = io_uring_wait_cqe(ring, &cqe);
  } while (r == -EINTR);
  if (r < 0) return r;
  int res = cqe->res;
  io_uring_cqe_seen(ring, cqe);
  return res;
}

DiskTier::Impl::~Impl() {
  if (!worker_.joinable()) return;
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    wake_pending_ = true;
  }
  WakeWorker();
  worker_.join();
}

// ---- The worker -----------------------------------------------------------
//
// Each round: take completions and new work under the lock; copy and hash
// outside it; under the lock again finish that work, place staged records in
// the file (evicting for room), and queue I/O up to the queue depth; then
// submit, and run the callbacks with no lock held. It sleeps in the kernel
// only when a round found nothing to do; new work wakes it through an
// eventfd that a poll in the ring watches.

void DiskTier::Impl::Run() {
  ArmWake();
  io_uring_submit(ring_.get());
  for (;;) {
    Batch batch;
    {
      std::lock_guard<std::mutex> lock(mu_);
      Reap(batch);
      TakeJobs(batch);
    }
    DoJobs(batch);
    std::vector<std::function<void()>> callbacks;
    bool finished;
    {
      std::lock_guard<std::mutex> lock(mu_);
      FinishJobs(batch);
      if (stopping_) CancelQueued();
      PlaceWrites();
      Submit();
      callbacks.swap(ready_);
      finished = stopping_ && callbacks.empty() && batch.empty() && in_flight_ == 0 &&
                 backlog_.empty() && staging_reads_.empty() && staging_wait_.empty();
    }
    io_uring_submit(ring_.get());
    for (auto& cb : callbacks) cb();
    if (finished) return;
    if (batch.empty() && callbacks.empty()) WaitForCompletion();
  }
}

void DiskTier::Impl::WaitForCompletion() {
  io_uring_cqe* cqe = nullptr;
  int r;
  do {
    r = io_uring_wait_cqe(ring_.get(), &cqe);
  } while (r == -EINTR);
}

void DiskTier::Impl::ArmWake() {
  io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
  if (sqe == nullptr) {  // cannot happen: the ring has a slot beyond the depth for it
    spdlog::error("disk tier {}: no submission slot for the wake-up poll", path_);
    return;
  }
  io_uring_prep_poll_add(sqe, wake_fd_.get(), POLLIN);
  io_uring_sqe_set_data64(sqe, 0);
}

bool DiskTier::Impl::NeedWake() {
  if (wake_pending_) return false;
  wake_pending_ = true;
  return true;
}

void DiskTier::Impl::WakeWorker() {
  uint64_t one = 1;
  ssize_t n = ::write(wake_fd_.get(), &one, sizeof one);
  (void)n;  // EAGAIN: the counter is full, so the worker is woken anyway
}

void DiskTier::Impl::Reap(Batch& batch) {
  io_uring* ring = ring_.get();
  io_uring_cqe* cqe = nullptr;
  unsigned head = 0;
  unsigned seen = 0;
  io_uring_for_each_cqe(ring, head, cqe) {
    ++seen;
    uint64_t tag = io_uring_cqe_get_data64(cqe);
    if (tag == 0) {
      while (::read(wake_fd_.get(), &wake_buf_, sizeof wake_buf_) > 0) {
      }
      wake_pending_ = false;
      ArmWake();
      continue;
    }
    --in_flight_;
    OnComplete(std::unique_ptr<Op>(reinterpret_cast<Op*>(tag)), cqe->res, batch);
  }
  io_uring_cq_advance(ring, seen);
}

void DiskTier::Impl::TakeJobs(Batch& batch) {
  while (!staging_wait_.empty()) {
    Rec* r = staging_wait_.front();
    std::optional<uint64_t> at = staging_space_->Allocate(r->image_bytes);
    if (!at) break;  // backpressure: the copy waits for writes to finish
    staging_wait_.pop_front();
    r->staging = *at;
    r->state = RecState::kCopying;
    batch.copies.push_back(CopyJob{r, staging_mem_.get() + *at + r->header_bytes});
  }
  batch.staging_reads = std::move(staging_reads_);
  staging_reads_.clear();
}

// Outside the lock: the fields read here do not change while a job or an op
// names the record, and the staging bytes belong to it alone.
void DiskTier::Impl::DoJobs(Batch& batch) const {
  for (CopyJob& job : batch.copies) {
    const Rec& r = *job.rec;
    if (r.meta.size > 0) std::memcpy(job.payload, r.src, r.meta.size);
    std::memset(job.payload + r.meta.size, 0, RoundUp(r.meta.size) - r.meta.size);
    job.hash = Hash(salt_, job.payload, r.meta.size);
  }
  for (StagingReadJob& job : batch.staging_reads) {
    if (job.read.size > 0) std::memcpy(job.read.dst, job.payload, job.read.size);
  }
  for (VerifyJob& job : batch.verifies) {
    const Rec& r = *job.op->rec;
    job.result = VerifyRead(r, job.op->buf.get());
    if (job.result.ok() && r.meta.size > 0) {
      std::memcpy(job.op->read.dst, job.op->buf.get() + r.header_bytes, r.meta.size);
    }
  }
}

Status DiskTier::Impl::VerifyRead(const Rec& r, const uint8_t* image) const {
  auto corrupt = [&](const std::string& what) {
    return Status(ErrorCode::CHECKSUM_MISMATCH,
                  "disk tier: " + Describe(r) + " is corrupt on disk: " + what);
  };
  std::optional<Header> h = ParseHeader(image, r.image_bytes, *r.file_offset, capacity_, salt_);
  if (!h) return corrupt("its header is damaged");
  if (h->rec.key != r.meta.key || h->rec.version != r.meta.version || h->rec.size != r.meta.size ||
      h->rec.checksum != r.meta.checksum || h->rec.pin != r.meta.pin || h->seq != r.seq ||
      h->payload_hash != r.payload_hash) {
    return corrupt("its header names another record");
  }
  if (Hash(salt_, image + r.header_bytes, r.meta.size) != r.payload_hash) {
    return corrupt("the payload hash does not match");
  }
  return Status::Ok();
}

void DiskTier::Impl::FinishJobs(Batch& batch) {
  for (CopyJob& job : batch.copies) {
    Rec* r = job.rec;
    r->payload_hash = job.hash;
    r->src = nullptr;
    r->state = RecState::kStaged;
    Answer(r->copied, Status::Ok());
    if (!r->in_index) {
      MaybeRetire(r);  // dropped or replaced during the copy
      continue;
    }
    for (PendingRead& read : r->waiting_reads) {
      ++r->staging_pins;
      staging_reads_.push_back(StagingReadJob{r, job.payload, std::move(read)});
    }
    r->waiting_reads.clear();
    place_wait_.push_back(r);
  }
  for (StagingReadJob& job : batch.staging_reads) {
    Rec* r = job.rec;
    --r->staging_pins;
    Answer(job.read.done, Status::Ok());
    TrimStaging(r);
    MaybeRetire(r);
  }
  const uint64_t now = NowNs();
  for (VerifyJob& job : batch.verifies) {
    Rec* r = job.op->rec;
    --r->io;
    if (job.result.ok()) {
      ++stats_.reads;
      stats_.read_bytes += job.op->bytes;
      stats_.read_ns += now - job.op->start_ns;
      consecutive_errors_ = 0;
      Answer(job.op->read.done, Status::Ok());
    } else {
      ++stats_.corrupt;
      spdlog::warn("{}; dropped", job.result.message());
      Answer(job.op->read.done, job.result);
      if (r->in_index) {
        ReportDropped(r, "corrupt: " + job.result.message());
        Unindex(r, job.result);
        continue;
      }
    }
    MaybeRetire(r);
  }
}

void DiskTier::Impl::PlaceWrites() {
  while (!place_wait_.empty() && stats_.online && !stopping_) {
    Rec* r = place_wait_.front();
    std::optional<uint64_t> at = file_space_->Allocate(r->image_bytes);
    if (!at) {
      // Invalidations under way free their space when they complete; evict
      // until they would make room (or, with none under way, at least one:
      // the free space may be in pieces).
      while (file_space_->free_bytes() + freeing_bytes_ < r->image_bytes || freeing_bytes_ == 0) {
        Rec* victim = OldestIdle();
        if (victim == nullptr) break;  // the busy ones finish and become idle
        Evict(victim);
      }
      if (freeing_bytes_ > 0 || in_flight_ > 0 || !backlog_.empty() || !staging_reads_.empty()) {
        return;  // a completion will change things: try again then
      }
      // Nothing left to evict and nothing under way: space lost to failed
      // invalidations keeps this record out for good.
      place_wait_.pop_front();
      Status no_room(ErrorCode::NO_AVAILABLE_HANDLE,
                     "disk tier: no room in '" + path_ + "' for " + Describe(*r) + " (" +
                         FormatSize(file_space_->free_bytes()) + " free in pieces)");
      ++stats_.write_errors;
      Answer(r->written, no_room);
      Unindex(r, no_room);
      continue;
    }
    place_wait_.pop_front();
    r->file_offset = *at;
    r->state = RecState::kWriting;
    Header h;
    h.header_bytes = r->header_bytes;
    h.offset = *at;
    h.seq = r->seq;
    h.payload_hash = r->payload_hash;
    h.rec = r->meta;
    EncodeHeader(h, salt_, staging_mem_.get() + *r->staging);
    ++r->io;
    auto op = std::make_unique<Op>(OpKind::kWrite, r);
    op->offset = *at;
    op->bytes = static_cast<uint32_t>(r->image_bytes);
    backlog_.push_back(std::move(op));
  }
}

void DiskTier::Impl::Submit() {
  while (in_flight_ < options_.queue_depth && !backlog_.empty()) {
    std::unique_ptr<Op>& front = backlog_.front();
    Rec* r = front->rec;
    if (front->kind == OpKind::kWrite && !r->in_index) {
      backlog_.pop_front();  // dropped before its write left: nothing to write or to zero
      --r->io;
      MaybeRetire(r);
      continue;
    }
    if (front->kind == OpKind::kRead && !front->buf) {
      front->buf = AllocateAligned(r->image_bytes);
      if (!front->buf) {
        std::unique_ptr<Op> op = std::move(front);
        backlog_.pop_front();
        --r->io;
        Answer(op->read.done, Status(ErrorCode::NO_AVAILABLE_HANDLE,
                                     "disk tier: no memory to read " + Describe(*r)));
        MaybeRetire(r);
        continue;
      }
    }
    io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
    if (sqe == nullptr) break;  // the next round
    std::unique_ptr<Op> op = std::move(front);
    backlog_.pop_front();
    switch (op->kind) {
      case OpKind::kWrite:
        io_uring_prep_write(sqe, fd_.get(), staging_mem_.get() + *r->staging, op->bytes,
                            op->offset);
        r->header_on_disk = true;
        r->write_start_ns = op->start_ns = NowNs();
        break;
      case OpKind::kRead:
        io_uring_prep_read(sqe, fd_.get(), op->buf.get(), op->bytes, op->offset);
        op->start_ns = NowNs();
        break;
      case OpKind::kInvalidate:
        io_uring_prep_write(sqe, fd_.get(), zero_block_.get(), op->bytes, op->offset);
        break;
      case OpKind::kWriteSync:
      case OpKind::kInvalidateSync:
        io_uring_prep_fsync(sqe, fd_.get(), IORING_FSYNC_DATASYNC);
        break;
    }
    io_uring_sqe_set_data64(sqe, reinterpret_cast<uint64_t>(op.release()));
    ++in_flight_;
  }
}

// Closing: what has not reached the kernel is answered; what has completes.
void DiskTier::Impl::CancelQueued() {
  Status closing(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "disk tier '" + path_ + "' is closing");
  std::vector<Rec*> victims;
  for (auto& [key, r] : index_) {
    if (r->state == RecState::kQueued || r->state == RecState::kStaged ||
        (r->state == RecState::kWriting && !r->header_on_disk)) {
      victims.push_back(r);
    }
  }
  for (Rec* r : victims) Unindex(r, closing);
  std::vector<Rec*> readers;  // of records out of the index, whose last read this may be
  for (auto it = backlog_.begin(); it != backlog_.end();) {
    if ((*it)->kind != OpKind::kRead) {
      ++it;
      continue;
    }
    Answer((*it)->read.done, closing);
    --(*it)->rec->io;
    readers.push_back((*it)->rec);
    it = backlog_.erase(it);
  }
  std::sort(readers.begin(), readers.end());
  readers.erase(std::unique(readers.begin(), readers.end()), readers.end());
  for (Rec* r : readers) MaybeRetire(r);
}

// ---- Completions -----------------------------------------------------------

void DiskTier::Impl::OnComplete(std::unique_ptr<Op> op, int res, Batch& batch) {
  if (fault_eio_after_ && completed_writes_ >= *fault_eio_after_) res = -EIO;
  switch (op->kind) {
    case OpKind::kWrite:
    case OpKind::kWriteSync:
      return OnWriteDone(std::move(op), res);
    case OpKind::kRead:
      return OnReadDone(std::move(op), res, batch);
    case OpKind::kInvalidate:
    case OpKind::kInvalidateSync:
      return OnInvalidateDone(std::move(op), res);
  }
}

void DiskTier::Impl::OnWriteDone(std::unique_ptr<Op> op, int res) {
  Rec* r = op->rec;
  bool ok = op->kind == OpKind::kWriteSync ? res == 0 : res == static_cast<int>(op->bytes);
  if (ok) {
    consecutive_errors_ = 0;
    if (op->kind == OpKind::kWrite && options_.fsync && stats_.online) {
      backlog_.push_back(std::make_unique<Op>(OpKind::kWriteSync, r));
      return;
    }
    return FinishWrite(r);
  }
  --r->io;
  ++stats_.write_errors;
  std::string what =
      (op->kind == OpKind::kWriteSync ? "fdatasync after the write of " : "write of ") +
      Describe(*r) + " at offset " + std::to_string(*r->file_offset) + " of '" + path_ +
      "' failed: " + IoErrorText(res, op->bytes);
  Status failed(ErrorCode::WRITE_FAIL, "disk tier: " + what);
  // The caller hears of the failure after the tier went offline (if this
  // takes it offline) and reported its other records.
  std::function<void(Status)> written = std::move(r->written);
  r->written = nullptr;
  Status answer = r->in_index ? failed : r->drop_status;
  if (r->in_index) {
    Unindex(r, failed);
  } else {
    MaybeRetire(r);
  }
  spdlog::warn("disk tier: {}", what);
  CountIoError(res, /*write=*/true, what);
  Answer(written, answer);
}

void DiskTier::Impl::FinishWrite(Rec* r) {
  --r->io;
  ++stats_.writes;
  ++completed_writes_;
  stats_.write_bytes += r->image_bytes;
  stats_.write_ns += NowNs() - r->write_start_ns;
  r->state = RecState::kOnDisk;
  TrimStaging(r);
  if (!r->in_index) {
    Answer(r->written, r->drop_status);
    MaybeRetire(r);
    return;
  }
  r->lru = lru_.insert(lru_.end(), r);
  r->in_lru = true;
  Answer(r->written, Status::Ok());
}

void DiskTier::Impl::OnReadDone(std::unique_ptr<Op> op, int res, Batch& batch) {
  Rec* r = op->rec;
  if (res == static_cast<int>(op->bytes)) {
    batch.verifies.push_back(VerifyJob{std::move(op), Status::Ok()});  // r->io held until then
    return;
  }
  --r->io;
  ++stats_.read_errors;
  std::string what = "read of " + Describe(*r) + " at offset " + std::to_string(op->offset) +
                     " of '" + path_ + "' failed: " + IoErrorText(res, op->bytes);
  MaybeRetire(r);
  spdlog::warn("disk tier: {}", what);
  CountIoError(res, /*write=*/false, what);  // first: the caller hears after any going offline
  Answer(op->read.done, Status(ErrorCode::TRANSFER_FAIL, "disk tier: " + what));
}

void DiskTier::Impl::OnInvalidateDone(std::unique_ptr<Op> op, int res) {
  Rec* r = op->rec;
  bool ok = op->kind == OpKind::kInvalidateSync ? res == 0 : res == static_cast<int>(op->bytes);
  if (ok && op->kind == OpKind::kInvalidate && options_.fsync && stats_.online) {
    consecutive_errors_ = 0;
    backlog_.push_back(std::make_unique<Op>(OpKind::kInvalidateSync, r));
    return;
  }
  --r->io;
  freeing_bytes_ -= r->image_bytes;
  if (ok) {
    consecutive_errors_ = 0;
    if (stats_.online) (void)file_space_->Free(*r->file_offset, r->image_bytes);
  } else {
    ++stats_.write_errors;
    std::string what = "invalidating " + Describe(*r) + " at offset " +
                       std::to_string(*r->file_offset) + " of '" + path_ +
                       "' failed: " + IoErrorText(res, kBlock);
    // Its header may still be valid: the space is never reused (lost until
    // the next Open, whose scan sees the record and the master decides).
    spdlog::warn("disk tier: {}; its {} are not reused", what, FormatSize(r->image_bytes));
    CountIoError(res, /*write=*/true, what);
  }
  r->file_offset.reset();
  r->header_on_disk = false;
  MaybeRetire(r);
}

void DiskTier::Impl::CountIoError(int res, bool write, const std::string& what) {
  ++consecutive_errors_;
  if (write && (res == -EIO || res == -ENODEV || res == -ENOSPC)) return GoOffline(what);
  if (consecutive_errors_ >= kMaxConsecutiveErrors) {
    GoOffline(what + " (" + std::to_string(consecutive_errors_) + " I/O errors in a row)");
  }
}

void DiskTier::Impl::GoOffline(const std::string& reason) {
  if (!stats_.online) return;
  stats_.online = false;
  stats_.offline_reason = reason;
  spdlog::error("disk tier {} is offline, its {} records dropped: {}", path_, index_.size(),
                reason);
  Status offline = Unavailable();
  // Work that has not reached the kernel is answered now; what has completes.
  std::vector<Rec*> touched;
  for (std::unique_ptr<Op>& op : backlog_) {
    Rec* r = op->rec;
    --r->io;
    if (op->kind == OpKind::kRead) Answer(op->read.done, offline);
    if (op->kind == OpKind::kInvalidate || op->kind == OpKind::kInvalidateSync) {
      freeing_bytes_ -= r->image_bytes;
      r->file_offset.reset();  // forgotten with the file
      r->header_on_disk = false;
    }
    touched.push_back(r);
  }
  backlog_.clear();
  std::sort(touched.begin(), touched.end());
  touched.erase(std::unique(touched.begin(), touched.end()), touched.end());
  for (Rec* r : touched) {
    if (!r->in_index) MaybeRetire(r);  // those in the index go below
  }
  std::vector<Rec*> all;
  for (auto& [key, r] : index_) all.push_back(r);
  for (Rec* r : all) {
    if (r->state == RecState::kOnDisk) ReportDropped(r, offline.message());
    Unindex(r, offline);
  }
}

// ---- Records ---------------------------------------------------------------

Status DiskTier::Impl::Unavailable() const {
  if (stopping_) {
    return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "disk tier '" + path_ + "' is closing");
  }
  return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                "disk tier offline: " + stats_.offline_reason);
}

std::string DiskTier::Impl::Describe(const Rec& r) const {
  return "record '" + Printable(r.meta.key) + "' version " + std::to_string(r.meta.version) + " (" +
         std::to_string(r.meta.size) + " bytes)";
}

void DiskTier::Impl::Answer(std::function<void(Status)>& fn, const Status& st) {
  if (!fn) return;
  ready_.push_back([fn = std::move(fn), st] { fn(st); });
  fn = nullptr;
}

void DiskTier::Impl::ReportDropped(const Rec* r, const std::string& why) {
  ready_.push_back([this, rec = r->meta, why] {
    if (on_dropped_) on_dropped_(rec, why);
  });
}

void DiskTier::Impl::Unindex(Rec* r, Status why) {
  auto it = index_.find(r->meta.key);
  if (it != index_.end() && it->second == r) index_.erase(it);
  --objects_;
  bytes_ -= r->meta.size;
  if (r->in_lru) {
    lru_.erase(r->lru);
    r->in_lru = false;
  }
  r->in_index = false;
  r->drop_status = std::move(why);
  MaybeRetire(r);
}

// A record out of the index: answers what still waits on it, and once
// nothing names it, gives back its staging memory and its file space (after
// zeroing its header, if a write of it ever left) and forgets it.
void DiskTier::Impl::MaybeRetire(Rec* r) {
  if (r->in_index) return;
  if (r->state == RecState::kQueued) {
    staging_wait_.erase(std::remove(staging_wait_.begin(), staging_wait_.end(), r),
                        staging_wait_.end());
    Answer(r->copied, r->drop_status);
  }
  bool write_outstanding = r->state == RecState::kWriting && r->io > 0;
  if (r->state == RecState::kCopying || write_outstanding) return;
  Answer(r->written, r->drop_status);
  for (PendingRead& read : r->waiting_reads) Answer(read.done, r->drop_status);
  r->waiting_reads.clear();
  if (r->staging_pins > 0 || r->io > 0) return;
  if (r->state == RecState::kStaged) {
    place_wait_.erase(std::remove(place_wait_.begin(), place_wait_.end(), r), place_wait_.end());
  }
  if (r->staging) {
    (void)staging_space_->Free(*r->staging, r->image_bytes);
    r->staging.reset();
  }
  if (r->file_offset) {
    if (stats_.online && r->header_on_disk) return StartInvalidate(r);
    if (stats_.online) (void)file_space_->Free(*r->file_offset, r->image_bytes);
    r->file_offset.reset();
  }
  records_.erase(r->self);
}

void DiskTier::Impl::StartInvalidate(Rec* r) {
  r->state = RecState::kInvalidating;
  ++r->io;
  freeing_bytes_ += r->image_bytes;
  auto op = std::make_unique<Op>(OpKind::kInvalidate, r);
  op->offset = *r->file_offset;
  op->bytes = static_cast<uint32_t>(kBlock);
  backlog_.push_back(std::move(op));
}

Rec* DiskTier::Impl::OldestIdle() {
  for (Rec* r : lru_) {
    if (r->io == 0 && r->staging_pins == 0) return r;
  }
  return nullptr;
}

void DiskTier::Impl::Evict(Rec* r) {
  ++stats_.evictions;
  ReportDropped(r, "evicted: the disk tier needed room for a new record");
  Unindex(r, Status(ErrorCode::OBJECT_NOT_FOUND, "disk tier: " + Describe(*r) + " was evicted"));
}

void DiskTier::Impl::TrimStaging(Rec* r) {
  if (r->staging && r->staging_pins == 0 && r->state == RecState::kOnDisk) {
    (void)staging_space_->Free(*r->staging, r->image_bytes);
    r->staging.reset();
  }
}

void DiskTier::Impl::Touch(Rec* r) {
  if (r->in_lru) lru_.splice(lru_.end(), lru_, r->lru);
}

// ---- The public calls ------------------------------------------------------

Status DiskTier::Impl::CheckWrite(const DiskRecord& rec, const void* src) const {
  if (stopping_ || !stats_.online) return Unavailable();
  if (rec.key.empty() || rec.key.size() > kMaxInternalKeyBytes) {
    return Status(ErrorCode::INVALID_KEY, "disk tier: a key of " + std::to_string(rec.key.size()) +
                                              " bytes (1 to " +
                                              std::to_string(kMaxInternalKeyBytes) + " allowed)");
  }
  if (rec.size > 0 && src == nullptr) {
    return Status(ErrorCode::INVALID_PARAMS, "disk tier: no source bytes for a write");
  }
  uint32_t header = HeaderBytesFor(rec.key.size());
  if (rec.size > max_image_bytes_ || ImageBytes(header, rec.size) > max_image_bytes_) {
    return Status(ErrorCode::BUFFER_OVERFLOW,
                  "disk tier: a record of " + FormatSize(rec.size) +
                      " is larger than the largest the tier takes (" +
                      FormatSize(max_image_bytes_ - header) +
                      ": the smallest of the file's capacity, the staging memory and 1 GiB)");
  }
  return Status::Ok();
}

void DiskTier::Impl::Write(DiskRecord rec, const void* src, std::function<void(Status)> copied,
                           std::function<void(Status)> written) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (Status refused = CheckWrite(rec, src); !refused.ok()) {
      ++stats_.refused;
      Answer(copied, refused);
      Answer(written, refused);
    } else {
      if (auto it = index_.find(rec.key); it != index_.end()) {
        Rec* old = it->second;
        Unindex(old, Status(ErrorCode::OBJECT_NOT_FOUND,
                            "disk tier: " + Describe(*old) + " was replaced by version " +
                                std::to_string(rec.version) + " before its write completed"));
      }
      Rec& r = records_.emplace_back();
      r.self = std::prev(records_.end());
      r.header_bytes = HeaderBytesFor(rec.key.size());
      r.image_bytes = ImageBytes(r.header_bytes, rec.size);
      r.meta = std::move(rec);
      r.seq = next_seq_++;
      r.src = src;
      r.copied = std::move(copied);
      r.written = std::move(written);
      r.in_index = true;
      index_[r.meta.key] = &r;
      ++objects_;
      bytes_ += r.meta.size;
      staging_wait_.push_back(&r);
    }
    wake = NeedWake();
  }
  if (wake) WakeWorker();
}

void DiskTier::Impl::Read(const std::string& key, uint64_t version, void* dst, uint64_t size,
                          std::function<void(Status)> done) {
  bool wake;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    Rec* r = it == index_.end() ? nullptr : it->second;
    if (stopping_ || !stats_.online) {
      Answer(done, Unavailable());
    } else if (size > 0 && dst == nullptr) {
      Answer(done, Status(ErrorCode::INVALID_PARAMS, "disk tier: no destination for a read"));
    } else if (r == nullptr || r->meta.version != version || r->meta.size != size) {
      Answer(done, Status(ErrorCode::OBJECT_NOT_FOUND,
                          "disk tier: no record '" + Printable(key) + "' version " +
                              std::to_string(version) + " of " + std::to_string(size) + " bytes"));
    } else {
      PendingRead read{dst, size, std::move(done)};
      switch (r->state) {
        case RecState::kQueued:
        case RecState::kCopying:
          r->waiting_reads.push_back(std::move(read));
          break;
        case RecState::kStaged:
        case RecState::kWriting:
          ++r->staging_pins;
          staging_reads_.push_back(StagingReadJob{
              r, staging_mem_.get() + *r->staging + r->header_bytes, std::move(read)});
          break;
        case RecState::kOnDisk:
        case RecState::kInvalidating: {  // (never in the index while invalidating)
          ++r->io;
          Touch(r);
          auto op = std::make_unique<Op>(OpKind::kRead, r);
          op->offset = *r->file_offset;
          op->bytes = static_cast<uint32_t>(r->image_bytes);
          op->read = std::move(read);
          backlog_.push_back(std::move(op));
          break;
        }
      }
    }
    wake = NeedWake();
  }
  if (wake) WakeWorker();
}

void DiskTier::Impl::Drop(const std::string& key, uint64_t version) {
  bool wake = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = index_.find(key);
    if (it == index_.end() || it->second->meta.version > version) return;
    Rec* r = it->second;
    Unindex(r, Status(ErrorCode::OBJECT_NOT_FOUND,
                      "disk tier: " + Describe(*r) + " was dropped before its write completed"));
    wake = NeedWake();
  }
  if (wake) WakeWorker();
}

bool DiskTier::Impl::Contains(const std::string& key, uint64_t version) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = index_.find(key);
  return it != index_.end() && it->second->meta.version == version;
}

std::vector<DiskRecord> DiskTier::Impl::Records() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<DiskRecord> out;
  out.reserve(index_.size());
  for (const auto& [key, r] : index_) out.push_back(r->meta);
  return out;
}

DiskTierStats DiskTier::Impl::stats() const {
  std::lock_guard<std::mutex> lock(mu_);
  DiskTierStats s = stats_;
  s.objects = objects_;
  s.bytes = bytes_;
  s.used_bytes = file_space_->used_bytes() - kBlock;  // not the superblock
  return s;
}

// ---- DiskTier --------------------------------------------------------------

DiskTier::DiskTier(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DiskTier::~DiskTier() = default;

Result<std::unique_ptr<DiskTier>> DiskTier::Open(const DiskTierOptions& options,
                                                 std::vector<DiskRecord>* found) {
  auto impl = std::make_unique<Impl>();
  std::vector<DiskRecord> records;
  if (Status s = impl->Open(options, &records); !s.ok()) return s;
  if (found != nullptr) *found = std::move(records);
  return std::unique_ptr<DiskTier>(new DiskTier(std::move(impl)));
}

void DiskTier::set_on_dropped(std::function<void(const DiskRecord&, std::string_view)> f) {
  impl_->set_on_dropped(std::move(f));
}
void DiskTier::Write(DiskRecord rec, const void* src, std::function<void(Status)> copied,
                     std::function<void(Status)> written) {
  impl_->Write(std::move(rec), src, std::move(copied), std::move(written));
}
void DiskTier::Read(const std::string& key, uint64_t version, void* dst, uint64_t size,
                    std::function<void(Status)> done) {
  impl_->Read(key, version, dst, size, std::move(done));
}
void DiskTier::Drop(const std::string& key, uint64_t version) { impl_->Drop(key, version); }
bool DiskTier::Contains(const std::string& key, uint64_t version) const {
  return impl_->Contains(key, version);
}
std::vector<DiskRecord> DiskTier::Records() const { return impl_->Records(); }
DiskTierStats DiskTier::stats() const { return impl_->stats(); }
const std::string& DiskTier::path() const { return impl_->path(); }

}  // namespace kvcached
