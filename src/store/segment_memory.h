// SegmentMemory: the memory a store contributes to the pool — a memfd
// mapping, so same-host clients can map the very same pages (the fd is what
// the shared-memory path hands out), optionally backed by huge pages and
// locked in RAM. The memory is committed (allocated and zeroed) at
// creation, so creation refuses sizes it cannot get and says why (the huge
// page pool, RLIMIT_MEMLOCK, available memory) and no transfer later pays
// for first-touch page allocation. Or, with `file_path`, a MAP_SHARED
// mapping of a file the caller made (a /dev/shm object, a regular file),
// which is never grown, truncated or removed. RAII: the mapping and the fd
// live exactly as long as the object, unless Release() gave the memory back
// early. Thread-safe to read; Release() may race with readers and writers.
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
  // Non-empty: map `size_bytes` of this existing regular file from
  // `file_offset` (a multiple of the page size) instead of making a memfd.
  // hugepages and lock do not apply.
  std::string file_path;
  uint64_t file_offset = 0;
};

class SegmentMemory {
 public:
  // NO_AVAILABLE_HANDLE when the memory cannot be had (with the reason and
  // what to change), INVALID_PARAMS for a size of 0 or not a multiple of the
  // huge page size. With file_path: INVALID_PARAMS for a file that cannot
  // be opened read-write, is not a regular file, or is shorter than
  // file_offset + size_bytes, and for an offset that is not page-aligned;
  // nothing is changed in the file.
  static Result<std::unique_ptr<SegmentMemory>> Create(const SegmentMemoryOptions& options);
  ~SegmentMemory();
  SegmentMemory(const SegmentMemory&) = delete;
  SegmentMemory& operator=(const SegmentMemory&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }
  // The memfd or the file. Its size is at least file_offset() + size().
  int fd() const { return fd_; }
  uint64_t file_offset() const { return file_offset_; }

  // Gives the memory back before destruction, for a segment that was
  // unmounted while a server thread might still be finishing a transfer:
  // the range at data() is atomically replaced by fresh anonymous pages
  // (a late read sees zeros, a late write lands nowhere that matters) and
  // fd() by /dev/null (a late shm attach is refused for its size), so the
  // file's (or memfd's) pages are no longer held by this object. The
  // address range and the descriptor number stay valid until destruction.
  // Idempotent.
  void Release();
  bool released() const { return released_; }
  bool hugepages() const { return hugepages_; }
  bool locked() const { return locked_; }

 private:
  SegmentMemory() = default;
  static Result<std::unique_ptr<SegmentMemory>> MapFile(const SegmentMemoryOptions& options);
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
  int fd_ = -1;
  bool hugepages_ = false;
  bool locked_ = false;
  uint64_t file_offset_ = 0;
  bool released_ = false;
};

// Bytes the kernel reports as available (MemAvailable), or 0 when unknown.
uint64_t AvailableMemoryBytes();

}  // namespace kvcached
