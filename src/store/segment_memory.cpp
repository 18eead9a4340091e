#include "store/segment_memory.h"

#include <fcntl.h>

#include <linux/memfd.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>

#include <spdlog/spdlog.h>

#include "core/units.h"

namespace kvcached {
namespace {

constexpr uint64_t kHugePageBytes = 2u << 20;

uint64_t MeminfoBytes(const std::string& field) {
  std::ifstream in("/proc/meminfo");
  std::string name;
  uint64_t value = 0;
  std::string unit;
  while (in >> name >> value) {
    std::getline(in, unit);
    if (name == field + ":") return value * 1024;  // reported in kB
  }
  return 0;
}

// Free 2 MiB huge pages not promised to another mapping yet.
uint64_t FreeHugePages() {
  auto read = [](const char* file) -> uint64_t {
    std::ifstream in(std::string("/sys/kernel/mm/hugepages/hugepages-2048kB/") + file);
    uint64_t v = 0;
    in >> v;
    return v;
  };
  uint64_t free_pages = read("free_hugepages");
  uint64_t reserved = read("resv_hugepages");
  return free_pages > reserved ? free_pages - reserved : 0;
}

Status Refuse(const std::string& why) { return Status(ErrorCode::NO_AVAILABLE_HANDLE, why); }

Status BadFile(const std::string& path, const std::string& why) {
  return Status(ErrorCode::INVALID_PARAMS, "cannot mount '" + path + "': " + why);
}

}  // namespace

// Every check comes before anything is mapped, and the file is opened
// without O_CREAT or O_TRUNC and never resized: a refused call leaves it as it was.
Result<std::unique_ptr<SegmentMemory>> SegmentMemory::MapFile(const SegmentMemoryOptions& o) {
  const uint64_t page = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));
  if (o.file_offset % page != 0) {
    return BadFile(o.file_path, "offset " + std::to_string(o.file_offset) +
                                    " is not a multiple of the page size (" +
                                    std::to_string(page) + " bytes)");
  }
  std::unique_ptr<SegmentMemory> m(new SegmentMemory());
  m->fd_ = ::open(o.file_path.c_str(), O_RDWR | O_CLOEXEC | O_NOCTTY);
  if (m->fd_ < 0) return BadFile(o.file_path, std::strerror(errno));
  struct stat info {};
  if (fstat(m->fd_, &info) != 0) return BadFile(o.file_path, std::strerror(errno));
  if (!S_ISREG(info.st_mode)) return BadFile(o.file_path, "not a regular file");
  const uint64_t file_bytes = static_cast<uint64_t>(info.st_size);
  if (o.file_offset > file_bytes || o.size_bytes > file_bytes - o.file_offset) {
    return BadFile(o.file_path, "it has " + std::to_string(file_bytes) +
                                    " bytes, fewer than offset " +
                                    std::to_string(o.file_offset) + " + size " +
                                    std::to_string(o.size_bytes) + " (it is not grown)");
  }
  // Populated like a memfd segment, for the same reason: no transfer pays
  // for faulting the pages in.
  void* p = mmap(nullptr, o.size_bytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, m->fd_,
                 static_cast<off_t>(o.file_offset));
  if (p == MAP_FAILED) {
    return Refuse("cannot map " + FormatSize(o.size_bytes) + " of '" + o.file_path +
                  "': " + std::strerror(errno));
  }
  m->data_ = static_cast<uint8_t*>(p);
  m->size_ = o.size_bytes;
  m->file_offset_ = o.file_offset;
  return m;
}

uint64_t AvailableMemoryBytes() { return MeminfoBytes("MemAvailable"); }

Result<std::unique_ptr<SegmentMemory>> SegmentMemory::Create(const SegmentMemoryOptions& o) {
  if (o.size_bytes == 0) return Status(ErrorCode::INVALID_PARAMS, "segment size is 0");
  if (!o.file_path.empty()) return MapFile(o);
  if (o.hugepages && o.size_bytes % kHugePageBytes != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "with " + o.hugepages_setting +
                      " the segment size must be a multiple of 2 MiB, not " +
                      FormatSize(o.size_bytes));
  }
  if (o.hugepages) {
    uint64_t free_huge = FreeHugePages() * kHugePageBytes;
    if (free_huge < o.size_bytes) {
      return Refuse(o.hugepages_setting + " needs " + FormatSize(o.size_bytes) +
                    " of 2 MiB huge pages but " + FormatSize(free_huge) +
                    " are free in the pool; reserve more with " + "`sysctl vm.nr_hugepages=" +
                    std::to_string(o.size_bytes / kHugePageBytes) + "` (or more)");
    }
  } else if (uint64_t avail = AvailableMemoryBytes(); avail != 0 && o.size_bytes > avail) {
    return Refuse("segment of " + FormatSize(o.size_bytes) + " is larger than the " +
                  FormatSize(avail) + " of memory available (MemAvailable); choose a smaller " +
                  o.size_setting);
  }
  if (o.lock) {
    rlimit lim{};
    if (getrlimit(RLIMIT_MEMLOCK, &lim) == 0 && lim.rlim_cur != RLIM_INFINITY &&
        lim.rlim_cur < o.size_bytes && geteuid() != 0) {
      return Refuse(o.lock_setting + " needs " + FormatSize(o.size_bytes) +
                    " locked but RLIMIT_MEMLOCK is " + FormatSize(lim.rlim_cur) +
                    "; raise it (ulimit -l unlimited, or " +
                    "LimitMEMLOCK=infinity in the systemd unit)");
    }
  }

  std::unique_ptr<SegmentMemory> m(new SegmentMemory());
  // 2 MiB pages whatever the system's default huge page size is.
  unsigned flags = MFD_CLOEXEC | (o.hugepages ? MFD_HUGETLB | MFD_HUGE_2MB : 0u);
  m->fd_ = memfd_create(o.name.c_str(), flags);
  if (m->fd_ < 0) return Refuse(std::string("memfd_create failed: ") + std::strerror(errno));
  if (ftruncate(m->fd_, static_cast<off_t>(o.size_bytes)) != 0) {
    return Refuse("cannot size the segment to " + FormatSize(o.size_bytes) + ": " +
                  std::strerror(errno));
  }
  // Commit the memory now: a segment the kernel cannot back fails here with
  // a message, not later with SIGBUS in the store or in a client that maps
  // it, and no transfer pays for allocating and zeroing pages.
  if (fallocate(m->fd_, 0, 0, static_cast<off_t>(o.size_bytes)) != 0) {
    return Refuse("cannot commit " + FormatSize(o.size_bytes) +
                  " for the segment: " + std::strerror(errno) +
                  (o.hugepages ? " (huge page pool exhausted?)" : " (out of memory?)"));
  }
  // The store's own page tables are filled up front as well.
  int map_flags = MAP_SHARED | MAP_POPULATE;
  void* p = mmap(nullptr, o.size_bytes, PROT_READ | PROT_WRITE, map_flags, m->fd_, 0);
  if (p == MAP_FAILED) {
    return Refuse("cannot map the " + FormatSize(o.size_bytes) +
                  " segment: " + std::strerror(errno));
  }
  m->data_ = static_cast<uint8_t*>(p);
  m->size_ = o.size_bytes;
  m->hugepages_ = o.hugepages;
  if (o.lock) {
    if (mlock(m->data_, m->size_) != 0) {
      return Refuse("cannot lock the " + FormatSize(o.size_bytes) + " segment in memory: " +
                    std::strerror(errno) + " (check RLIMIT_MEMLOCK and free memory)");
    }
    m->locked_ = true;
  }
  return m;
}

void SegmentMemory::Release() {
  if (released_ || data_ == nullptr) return;
  released_ = true;
  // MAP_FIXED swaps the pages under the same addresses in one step: there is
  // no moment at which a server thread still copying could fault.
  void* p = mmap(data_, size_, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED, -1, 0);
  if (p == MAP_FAILED) {
    spdlog::warn("cannot release the memory of an unmounted segment early ({}); it is released "
                 "when the client is destroyed",
                 std::strerror(errno));
  }
  // dup3 replaces the descriptor in one step too; a late attach is then
  // handed /dev/null and refuses it for its size.
  int null_fd = ::open("/dev/null", O_RDWR | O_CLOEXEC);
  if (null_fd >= 0) {
    if (dup3(null_fd, fd_, O_CLOEXEC) < 0) {
      spdlog::warn("cannot release the descriptor of an unmounted segment early: {}",
                   std::strerror(errno));
    }
    ::close(null_fd);
  }
}

SegmentMemory::~SegmentMemory() {
  if (data_ != nullptr) munmap(data_, size_);
  if (fd_ >= 0) close(fd_);
}

}  // namespace kvcached
