// The disk's own ceiling for `kvcached bench --disk-path`: O_DIRECT
// sequential write, then read, of a scratch file in the directory the disk
// tier will use, in fixed-size blocks with several I/Os in flight (one
// thread per I/O, each with its own aligned buffer), so the tier's figures
// can be read as a share of what the device gives. It measures the device
// and file system, not the tier's code. Not thread-safe with other
// measurements; the scratch file is always removed.
#pragma once

#include <cstdint>
#include <string>

#include "kvcached/status.h"

namespace kvcached {

struct DiskCeiling {
  double write_gb_per_s = 0;  // 1 GB = 1e9 bytes
  double read_gb_per_s = 0;
  std::string dir;
  uint64_t file_bytes = 0;
  uint64_t block_bytes = 0;
  unsigned queue_depth = 0;
  int rounds = 0;
  std::string method;  // how it was measured, for reports
};

struct DiskProbeOptions {
  std::string dir;  // must exist; the scratch file is <dir>/kvcached-bench-probe.<pid>
  uint64_t file_bytes = uint64_t{1} << 30;   // rounded down to a multiple of block_bytes
  uint64_t block_bytes = uint64_t{4} << 20;  // a multiple of 4096
  unsigned queue_depth = 16;                 // I/Os in flight, 1 to 256
  int rounds = 3;                            // each a full write then a full read; best kept
};

// Whether files in `dir` can be opened with O_DIRECT (a scratch file is
// made and removed): OK, NOT_SUPPORTED naming `dir` (tmpfs), or
// NO_AVAILABLE_HANDLE when no file can be made there (permission, missing).
Status CheckDirectIo(const std::string& dir);

// Best write and best read bandwidth over the rounds. Errors:
//   INVALID_PARAMS   options out of range, or `dir` missing;
//   NOT_SUPPORTED    the file system refuses O_DIRECT (tmpfs), naming `dir`;
//   NO_AVAILABLE_HANDLE  the file cannot be made or allocated (permission, ENOSPC);
//   TRANSFER_FAIL    an I/O error or a short read or write.
Result<DiskCeiling> MeasureDiskCeiling(const DiskProbeOptions& options);

}  // namespace kvcached
