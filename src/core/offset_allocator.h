// OffsetAllocator: places objects inside one store's memory segment by handing
// out byte ranges [offset, offset + size). It owns only the bookkeeping of free
// holes, never the memory itself, and keeps no per-allocation state (the owner
// remembers what it allocated). Not thread-safe: the master's index owns one
// per segment and serialises every call. docs/allocator.md has the algorithm.
#pragma once

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <utility>

#include "core/status.h"

namespace kvcached {

// Best fit over free holes with immediate coalescing. Every allocation is
// rounded up to `alignment_bytes` and starts at a multiple of it; the smallest
// hole that fits wins, the lowest offset among equal holes, and the object is
// placed at the hole's start. O(log n) per call in the number of free holes;
// 128 bytes of heap per hole with glibc (two tree nodes), nothing per allocation.
//
// Validation limit: with no per-allocation state, Free can prove only that a
// range is aligned, in bounds and entirely allocated (overlaps no free hole).
// That rejects double frees, frees of never-allocated space and out-of-range
// values, but a range that is fully allocated yet was handed out with a
// different split (part of one allocation, or the tail of one and the head of
// the next) is accepted and freed. The owner's object table is the authority
// on which ranges exist; it must pass back exactly what Allocate returned.
class OffsetAllocator {
 public:
  // `alignment_bytes` must be a non-zero power of two; anything else is a
  // programming error and throws std::invalid_argument (never peer input).
  // A `capacity_bytes` that is not a multiple of the alignment is rounded down:
  // the tail shorter than one alignment unit is never handed out, and
  // capacity_bytes() reports the rounded value.
  explicit OffsetAllocator(uint64_t capacity_bytes, uint64_t alignment_bytes = 64);

  // The offset of a fresh range of `size_bytes` rounded up to the alignment.
  // nullopt when size is 0, the rounded size overflows, or no single hole fits
  // the rounded size (the caller evicts and retries; see docs/allocator.md).
  std::optional<uint64_t> Allocate(uint64_t size_bytes);

  // Returns [offset, offset + rounded size_bytes) to the free space, merging
  // it with free neighbours. `size_bytes` is the size asked of Allocate (or
  // Reserve). INVALID_PARAMS, with no change, when size is 0, the offset is
  // not aligned, the range is out of bounds or overflows, or any part of it is
  // already free (double free). See the validation limit above.
  Status Free(uint64_t offset, uint64_t size_bytes);

  // Marks [offset, offset + rounded size_bytes) as allocated, as if Allocate
  // had returned it; used when the master rebuilds a segment from its owner's
  // object table. Free(offset, size_bytes) releases it later. INVALID_PARAMS,
  // with no change, when size is 0, the offset is not aligned, the range is out
  // of bounds or overflows, or any part of it is not free.
  Status Reserve(uint64_t offset, uint64_t size_bytes);

  uint64_t capacity_bytes() const { return capacity_bytes_; }
  uint64_t alignment_bytes() const { return alignment_bytes_; }
  uint64_t used_bytes() const { return capacity_bytes_ - free_bytes_; }  // rounded sizes
  uint64_t free_bytes() const { return free_bytes_; }
  uint64_t largest_free_bytes() const;  // the biggest single hole; 0 when full
  size_t free_holes() const { return by_offset_.size(); }
  // External fragmentation in [0, 1]: 1 - largest_free / free; 0 when nothing
  // is free. 0 means every free byte is in one hole.
  double fragmentation() const;

 private:
  friend class OffsetAllocatorTestPeer;

  // `size_bytes` rounded up to the alignment; nullopt for 0 or on overflow.
  std::optional<uint64_t> RoundUp(uint64_t size_bytes) const;
  // The checks Free and Reserve share: non-zero size, aligned offset, no
  // overflow, within capacity. On success `*end` is offset + rounded size.
  Status CheckRange(const char* op, uint64_t offset, uint64_t size_bytes, uint64_t* end) const;

  using OffsetIndex = std::map<uint64_t, uint64_t>;           // offset -> size
  using SizeIndex = std::set<std::pair<uint64_t, uint64_t>>;  // (size, offset)

  // Hole bookkeeping: every change goes through these so both indexes agree.
  // `by_size` is the same hole's entry in by_size_, when the caller has it.
  void InsertHole(uint64_t offset, uint64_t size_bytes);
  void EraseHole(OffsetIndex::iterator it);
  void EraseHole(OffsetIndex::iterator it, SizeIndex::iterator by_size);
  // Moves and/or resizes an existing hole in place, reusing its tree nodes.
  void ReshapeHole(OffsetIndex::iterator it, uint64_t new_offset, uint64_t new_size_bytes);
  void ReshapeHole(OffsetIndex::iterator it, SizeIndex::iterator by_size, uint64_t new_offset,
                   uint64_t new_size_bytes);

  uint64_t capacity_bytes_;
  uint64_t alignment_bytes_;
  uint64_t free_bytes_;
  // The same holes twice. Invariants: holes are non-empty, aligned, inside
  // capacity, disjoint and never adjacent (adjacent holes are merged at once).
  OffsetIndex by_offset_;  // for coalescing
  SizeIndex by_size_;      // for best fit
};

}  // namespace kvcached
