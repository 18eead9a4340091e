#include "bench/disk_probe.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/arena.h"
#include "bench/unique_fd.h"
#include "core/units.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kAlign = 4096;
constexpr uint64_t kMinFileBytes = uint64_t{16} << 20;

// Removes the scratch file however the probe ends.
class ScratchFile {
 public:
  explicit ScratchFile(std::string path) : path_(std::move(path)) {}
  ~ScratchFile() { (void)::unlink(path_.c_str()); }
  ScratchFile(const ScratchFile&) = delete;
  ScratchFile& operator=(const ScratchFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

Status Errno(ErrorCode code, const std::string& what, int err) {
  return Status(code, what + ": " + std::strerror(err));
}

std::string ScratchPath(const std::string& dir) {
  return dir + "/kvcached-bench-probe." + std::to_string(::getpid());
}

// Creates `path` for O_DIRECT reads and writes; `dir` is its directory.
Result<int> OpenDirect(const std::string& path, const std::string& dir) {
  int fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_DIRECT | O_CLOEXEC, 0600);
  if (fd >= 0) return fd;
  int err = errno;
  if (err == EINVAL) {
    return Status(ErrorCode::NOT_SUPPORTED, "the file system of " + dir +
                                                " does not support O_DIRECT (tmpfs?): a disk "
                                                "tier cannot live there");
  }
  return Errno(ErrorCode::NO_AVAILABLE_HANDLE, "cannot create " + path, err);
}

// One pass over the file, `queue_depth` threads each taking the next block,
// so the file is covered in order with that many I/Os in flight. Returns
// the seconds the pass took.
Result<double> Pass(int fd, bool write, const DiskProbeOptions& o, uint64_t blocks,
                    const Arena& buffers, const std::string& path) {
  std::atomic<uint64_t> next{0};
  std::atomic<int> error{0};  // errno of the first failure; EIO for a short transfer
  std::vector<std::thread> threads;
  auto t0 = Clock::now();
  for (unsigned t = 0; t < o.queue_depth; ++t) {
    threads.emplace_back([&, t] {
      uint8_t* buf = buffers.data() + t * o.block_bytes;
      for (uint64_t b;
           error.load(std::memory_order_relaxed) == 0 && (b = next.fetch_add(1)) < blocks;) {
        uint64_t done = 0;
        while (done < o.block_bytes) {
          off_t at = static_cast<off_t>(b * o.block_bytes + done);
          ssize_t n = write ? ::pwrite(fd, buf + done, o.block_bytes - done, at)
                            : ::pread(fd, buf + done, o.block_bytes - done, at);
          if (n < 0 && errno == EINTR) continue;
          if (n <= 0) {
            int expected = 0;
            error.compare_exchange_strong(expected, n < 0 ? errno : EIO);
            return;
          }
          done += static_cast<uint64_t>(n);
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  double seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  if (int err = error.load(); err != 0) {
    return Errno(ErrorCode::TRANSFER_FAIL,
                 std::string("disk probe: O_DIRECT ") + (write ? "write to " : "read of ") + path,
                 err);
  }
  return seconds;
}

}  // namespace

Status CheckDirectIo(const std::string& dir) {
  ScratchFile file(ScratchPath(dir));
  Result<int> opened = OpenDirect(file.path(), dir);
  if (!opened.ok()) return opened.status();
  UniqueFd fd(*opened);
  return Status::Ok();
}

Result<DiskCeiling> MeasureDiskCeiling(const DiskProbeOptions& o) {
  auto bad = [](const std::string& m) { return Status(ErrorCode::INVALID_PARAMS, m); };
  if (o.block_bytes == 0 || o.block_bytes % kAlign != 0) {
    return bad("disk probe: the block size must be a multiple of 4 KiB");
  }
  if (o.queue_depth < 1 || o.queue_depth > 256) return bad("disk probe: queue depth 1 to 256");
  const uint64_t blocks = o.file_bytes / o.block_bytes;
  if (blocks == 0 || blocks * o.block_bytes < kMinFileBytes) {
    return bad("disk probe: a scratch file of at least 16 MiB and one block");
  }
  struct stat st {};
  if (::stat(o.dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return bad("disk probe: " + o.dir + " is not a directory");
  }

  ScratchFile file(ScratchPath(o.dir));
  Result<int> opened = OpenDirect(file.path(), o.dir);
  if (!opened.ok()) return opened.status();
  UniqueFd fd(*opened);
  const uint64_t file_bytes = blocks * o.block_bytes;
  // As the disk tier does with its file: the space is taken up front, so the
  // writes measure the device, not block allocation (where fallocate works).
  if (::fallocate(fd.get(), 0, 0, static_cast<off_t>(file_bytes)) != 0 && errno != EOPNOTSUPP) {
    return Errno(ErrorCode::NO_AVAILABLE_HANDLE,
                 "disk probe: cannot allocate " + FormatSize(file_bytes) + " for " + file.path(),
                 errno);
  }
  Result<Arena> buffers = Arena::Create(o.block_bytes * o.queue_depth, 11);
  if (!buffers.ok()) return buffers.status();

  DiskCeiling c;
  c.dir = o.dir;
  c.file_bytes = file_bytes;
  c.block_bytes = o.block_bytes;
  c.queue_depth = o.queue_depth;
  c.rounds = std::max(o.rounds, 1);
  double best_write = 1e300, best_read = 1e300;
  for (int round = 0; round < c.rounds; ++round) {
    Result<double> w = Pass(fd.get(), /*write=*/true, o, blocks, *buffers, file.path());
    if (!w.ok()) return w.status();
    Result<double> r = Pass(fd.get(), /*write=*/false, o, blocks, *buffers, file.path());
    if (!r.ok()) return r.status();
    best_write = std::min(best_write, *w);
    best_read = std::min(best_read, *r);
  }
  c.write_gb_per_s = static_cast<double>(file_bytes) / best_write / 1e9;
  c.read_gb_per_s = static_cast<double>(file_bytes) / best_read / 1e9;
  c.method = FormatSize(file_bytes) + " scratch file, sequential, one pread/pwrite thread per " +
             "I/O in flight, best of " + std::to_string(c.rounds);
  return c;
}

}  // namespace kvcached
