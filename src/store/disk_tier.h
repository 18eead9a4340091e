// DiskTier: a store's second tier, a local file that holds objects demoted
// from the DRAM segment until they are promoted back or dropped. It owns the
// file, its space and its records; it knows nothing of the master or of the
// segment (the caller decides what to demote and tells the master). One
// worker thread owns an io_uring and does all I/O (O_DIRECT) and every
// callback; Write, Read, Drop and the const calls may come from any thread,
// and callbacks run with no lock held, so they may call back into the tier.
//
// File format (one file per store, <dir>/<name>.kvtier; integers little-endian;
// "hash(seed, bytes)" is XXH3_64bits_withSeed):
//
//   Superblock, offset 0, one 4 KiB block:
//     0  8  magic "KVCDTIER"
//     8  4  format version (1)
//    12  4  block size (4096)
//    16  8  capacity: the file's size in bytes, a multiple of 4096
//    24  8  salt: 64 random bits (std::random_device), chosen when the file is made
//    32  8  created, Unix seconds (informational)
//    40  8  hash(0, bytes 0..39)
//    48     zeros to 4096
//
//   Records, each at a 4 KiB-aligned offset in [4096, capacity): a header of
//   H = round_up(80 + key length + 8, 4096) bytes (4 or 8 KiB), then the
//   payload, zero-padded to a multiple of 4096; both leave in one write.
//     0  8  magic "KVCDREC1"
//     8  4  H, the header's length
//    12  4  key length K (at most kMaxInternalKeyBytes, 4162)
//    16  8  offset of this header in the file
//    24  8  sequence number (per file, increasing: the order of writes)
//    32  8  version
//    40  8  payload size in bytes
//    48  8  checksum (the caller's, kept and returned as given)
//    56  8  hash(salt, payload)
//    64  1  pin (the caller's, kept and returned as given)
//    65 15  zeros
//    80  K  key bytes
//  80+K  8  hash(salt, header bytes 0..80+K-1)
//          zeros to H
//   A header is valid when its magic matches, H, K, the offset and the extent
//   are in bounds and consistent, and its hash matches; a record is valid when
//   its header is and the payload hash matches. Because both hashes are seeded
//   with the file's salt, bytes a user stored cannot pass for a header, and the
//   offset in the header keeps a copy of a header elsewhere from being valid.
//   A dropped record's first 4 KiB are overwritten with zeros, and its space
//   is reused only once that write has completed (and, with fsync, is durable),
//   so no stale header ever lies inside reused space. Free space holds zeros
//   (fallocate) or the remains of invalidated records.
//
//   Open scans [4096, capacity) sequentially in 8 MiB O_DIRECT reads, several
//   in flight: at each 4 KiB position it tries a header; a valid record is
//   kept and the scan skips to its end; a valid header with a bad payload is
//   torn (counted in scan_dropped and corrupt, invalidated) and the scan goes on
//   4 KiB after it; anything else steps 4 KiB. Of two records of one key the
//   higher version (then the later sequence number) is kept and the other
//   invalidated. Space comes from an OffsetAllocator (alignment 4096) over
//   [4096, capacity); when it is short the least recently used records (by
//   read, or by write; after a restart by sequence number) are dropped.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kvcached {

struct DiskTierOptions {
  // Directory of the tier file. It must exist: Open never creates it.
  std::string dir;
  // The file is <dir>/<name>.kvtier; characters outside [A-Za-z0-9._-] become '_'.
  std::string name;
  // The file's size, rounded down to 4 KiB; at least 16 MiB.
  uint64_t capacity_bytes = 0;
  // Memory for records copied from the caller and waiting to be written
  // (rounded down to 4 KiB, at least 1 MiB). A record's header plus padded
  // payload must fit in it: it bounds the largest record, with the file's
  // capacity and 1 GiB.
  uint64_t staging_bytes = 64ull << 20;
  unsigned queue_depth = 16;  // I/Os in flight, 1 to 1024
  bool fsync = false;         // fdatasync after each record (and each invalidation)
};

struct DiskRecord {
  std::string key;
  uint64_t version = 0;
  uint64_t size = 0;      // payload bytes
  uint64_t checksum = 0;  // opaque to the tier
  uint8_t pin = 0;        // opaque to the tier
};

// Counters only grow; gauges are the state at the call.
struct DiskTierStats {
  uint64_t objects = 0;         // gauge: records in the tier (their writes may be in flight)
  uint64_t bytes = 0;           // gauge: their payload bytes
  uint64_t capacity_bytes = 0;  // the file's size, superblock included
  uint64_t used_bytes = 0;      // gauge: file space held by records: headers, padding,
                                // records being written or invalidated
  uint64_t writes = 0;          // records written
  uint64_t write_bytes = 0;     // bytes written for them (headers and padding included)
  uint64_t write_ns = 0;        // sum over records of submission to completion (fsync included)
  uint64_t reads = 0;           // records read from the file (not those served from staging)
  uint64_t read_bytes = 0;
  uint64_t read_ns = 0;
  uint64_t evictions = 0;  // records dropped by the disk LRU to make room
  uint64_t corrupt = 0;    // torn or corrupt records dropped, at scan or at read
  uint64_t write_errors = 0;
  uint64_t read_errors = 0;
  uint64_t refused = 0;       // writes refused: offline, closing, too large, bad key
  uint64_t scan_records = 0;  // records the last Open found and kept
  uint64_t scan_dropped = 0;  // torn records and older versions the last Open dropped
  bool online = true;
  std::string offline_reason;  // empty while online
};

class DiskTier {
 public:
  // Opens <dir>/<name>.kvtier, or makes it (fallocated to capacity, made under
  // a temporary name and renamed, so the path never holds half a file).
  // A file of ours is scanned: every valid record goes to `*found` (oldest
  // write first; may be null) and stays in the tier. A file of ours made with
  // another capacity is made anew when it holds no record, and refused when
  // it holds any (start with the old capacity, or remove the file).
  // Errors, each naming the path and the cause:
  //   INVALID_PARAMS: options out of range, the directory missing or not a
  //     directory, a file that exists and is not ours (never changed), a
  //     capacity change over records, a file shorter than its superblock says;
  //   NOT_SUPPORTED: the file system refuses O_DIRECT (tmpfs);
  //   UNAVAILABLE_IN_CURRENT_STATUS: another DiskTier (this or another
  //     process) holds the file (flock);
  //   NO_AVAILABLE_HANDLE: the file cannot be made or allocated (permission,
  //     ENOSPC, EFBIG), io_uring or memory cannot be had;
  //   TRANSFER_FAIL: an I/O error while reading or scanning the file.
  static Result<std::unique_ptr<DiskTier>> Open(const DiskTierOptions& options,
                                                std::vector<DiskRecord>* found);
  // Stops the worker: I/O in flight completes (and its callbacks run), queued
  // writes and reads are answered UNAVAILABLE_IN_CURRENT_STATUS, and drops
  // already made reach the file. Must not run on the worker (from a callback).
  ~DiskTier();
  DiskTier(const DiskTier&) = delete;
  DiskTier& operator=(const DiskTier&) = delete;

  // Called on the worker for each record the tier drops on its own: `why`
  // starts with "evicted" (the disk LRU made room), "corrupt" (a read found
  // it damaged) or "disk tier offline". Only records whose write had completed
  // are reported; one still being written gets its `written` error instead.
  // Set before the first Write.
  void set_on_dropped(std::function<void(const DiskRecord&, std::string_view why)> f);

  // Demotion. `src` holds rec.size bytes and stays valid until `copied` runs.
  // Both callbacks run exactly once, on the worker, `copied` first:
  //   copied(OK) once the bytes are in staging memory (src may be reused),
  //     which waits while staging memory is full (backpressure); or an error
  //     and nothing is written: UNAVAILABLE_IN_CURRENT_STATUS (offline,
  //     closing), BUFFER_OVERFLOW (the record cannot fit the file or staging),
  //     INVALID_KEY (empty or over 4162 bytes), or the error `written` gets
  //     when the record was dropped or replaced before it was copied;
  //   written(OK) once the record is on disk (after fdatasync with fsync), or
  //     an error and the record is not in the tier: WRITE_FAIL (I/O error),
  //     OBJECT_NOT_FOUND (dropped or replaced before its write completed),
  //     UNAVAILABLE_IN_CURRENT_STATUS (offline, closing), NO_AVAILABLE_HANDLE
  //     (no room even with every other record evicted: space lost to failed
  //     invalidations), or copied's error.
  // The record is in the tier (Contains, Records, Read) from this call until
  // it is dropped or its write fails. A record of a key already in the tier
  // replaces it, whatever the versions (the old one without on_dropped).
  // Room in the file is made by dropping the least recently used records
  // that no read or write is using, each reported through on_dropped.
  void Write(DiskRecord rec, const void* src, std::function<void(Status)> copied,
             std::function<void(Status)> written);

  // Promotion: reads the record (key, version), of exactly `size` bytes, into
  // `dst` and checks its header and payload hashes. done(status) once, on the
  // worker: OK (dst holds the bytes); OBJECT_NOT_FOUND when the tier has no
  // such record (another version, another size); CHECKSUM_MISMATCH when the
  // record on disk is torn or corrupt: it is dropped, counted in `corrupt` and
  // reported through on_dropped; TRANSFER_FAIL on an I/O error (the record
  // stays); UNAVAILABLE_IN_CURRENT_STATUS offline or closing. On any error dst
  // is left as it was. A record whose write has not completed is served from
  // staging memory (waiting for its copy). A read makes the record the most
  // recently used. dst must stay valid until done runs.
  void Read(const std::string& key, uint64_t version, void* dst, uint64_t size,
            std::function<void(Status)> done);

  // Drops the record of `key` if its version is <= `version` (the master
  // removed or evicted the object); no on_dropped. Idempotent.
  void Drop(const std::string& key, uint64_t version);

  bool Contains(const std::string& key, uint64_t version) const;
  std::vector<DiskRecord> Records() const;  // every record in the tier, any order
  DiskTierStats stats() const;
  const std::string& path() const;

 private:
  class Impl;
  explicit DiskTier(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcached
