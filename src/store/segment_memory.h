// SegmentMemory: the memory a store contributes to the pool — a memfd
// mapping, so same-host clients can map the very same pages (the fd is what
// the shared-memory path hands out), optionally backed by huge pages and
// locked in RAM. The memory is committed (allocated and zeroed) at
// creation, so creation refuses sizes it cannot get and says why (the huge
// page pool, RLIMIT_MEMLOCK, available memory) and no transfer later pays
// for first-touch page allocation. RAII: the mapping and the fd live
// exactly as long as the object. Thread-safe to read.
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "core/status.h"

namespace kvcached {

struct SegmentMemoryOptions {
  std::string name = "kvcached-segment";  // shows in /proc/<pid>/maps
  uint64_t size_bytes = 0;
  bool hugepages = false;  // 2 MiB pages from the kernel's reserved pool
  bool lock = false;       // mlock: never swapped, faulted in up front
  // How the caller's user names these settings, for error messages: the
  // store's flags by default; a client passes its own setting names.
  std::string size_setting = "--segment-size";
  std::string hugepages_setting = "--hugepages";
  std::string lock_setting = "--mlock";
};

class SegmentMemory {
 public:
  // NO_AVAILABLE_HANDLE when the memory cannot be had (with the reason and
  // what to change), INVALID_PARAMS for a size of 0 or not a multiple of the
  // huge page size.
  static Result<std::unique_ptr<SegmentMemory>> Create(const SegmentMemoryOptions& options);
  ~SegmentMemory();
  SegmentMemory(const SegmentMemory&) = delete;
  SegmentMemory& operator=(const SegmentMemory&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  int fd() const { return fd_; }
  bool hugepages() const { return hugepages_; }
  bool locked() const { return locked_; }

 private:
  SegmentMemory() = default;
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
  bool hugepages_ = false;
  bool locked_ = false;
};

// Bytes the kernel reports as available (MemAvailable), or 0 when unknown.
uint64_t AvailableMemoryBytes();

}  // namespace kvcached
