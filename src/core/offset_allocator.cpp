#include "core/offset_allocator.h"

#include <iterator>
#include <limits>
#include <stdexcept>
#include <string>

namespace kvcached {
namespace {

std::string RangeText(uint64_t offset, uint64_t size_bytes) {
  return "[" + std::to_string(offset) + ", +" + std::to_string(size_bytes) + ")";
}

}  // namespace

OffsetAllocator::OffsetAllocator(uint64_t capacity_bytes, uint64_t alignment_bytes)
    : alignment_bytes_(alignment_bytes) {
  if (alignment_bytes == 0 || (alignment_bytes & (alignment_bytes - 1)) != 0) {
    throw std::invalid_argument("OffsetAllocator: alignment " + std::to_string(alignment_bytes) +
                                " is not a power of two");
  }
  // Offsets are aligned and sizes rounded, so an unaligned tail could never be
  // handed out; dropping it keeps used + free == capacity exact.
  capacity_bytes_ = capacity_bytes & ~(alignment_bytes - 1);
  free_bytes_ = capacity_bytes_;
  if (capacity_bytes_ > 0) InsertHole(0, capacity_bytes_);
}

std::optional<uint64_t> OffsetAllocator::RoundUp(uint64_t size_bytes) const {
  const uint64_t mask = alignment_bytes_ - 1;
  if (size_bytes == 0 || size_bytes > std::numeric_limits<uint64_t>::max() - mask) {
    return std::nullopt;
  }
  return (size_bytes + mask) & ~mask;
}

Status OffsetAllocator::CheckRange(const char* op, uint64_t offset, uint64_t size_bytes,
                                   uint64_t* end) const {
  if (size_bytes == 0) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(op) + " of zero bytes");
  }
  if ((offset & (alignment_bytes_ - 1)) != 0) {
    return Status(ErrorCode::INVALID_PARAMS, std::string(op) + " at offset " +
                                                 std::to_string(offset) + " not aligned to " +
                                                 std::to_string(alignment_bytes_));
  }
  std::optional<uint64_t> rounded = RoundUp(size_bytes);
  // Compare against what is left after `offset` so offset + size never wraps.
  if (!rounded || offset > capacity_bytes_ || *rounded > capacity_bytes_ - offset) {
    return Status(ErrorCode::INVALID_PARAMS,
                  std::string(op) + " of " + RangeText(offset, size_bytes) +
                      " outside a segment of " + std::to_string(capacity_bytes_) + " bytes");
  }
  *end = offset + *rounded;
  return Status::Ok();
}

std::optional<uint64_t> OffsetAllocator::Allocate(uint64_t size_bytes) {
  std::optional<uint64_t> rounded = RoundUp(size_bytes);
  if (!rounded || *rounded > free_bytes_) return std::nullopt;
  // Smallest hole of at least `rounded`; among equals the lowest offset, so
  // placement is deterministic.
  auto fit = by_size_.lower_bound({*rounded, 0});
  if (fit == by_size_.end()) return std::nullopt;
  const auto [hole_size, hole_offset] = *fit;
  auto hole = by_offset_.find(hole_offset);
  if (hole_size == *rounded) {
    EraseHole(hole, fit);
  } else {
    ReshapeHole(hole, fit, hole_offset + *rounded, hole_size - *rounded);
  }
  free_bytes_ -= *rounded;
  return hole_offset;
}

Status OffsetAllocator::Free(uint64_t offset, uint64_t size_bytes) {
  uint64_t end = 0;
  if (Status st = CheckRange("free", offset, size_bytes, &end); !st.ok()) return st;
  const uint64_t rounded = end - offset;

  // Holes are disjoint and sorted, so only the last hole starting before
  // `offset` and the first starting at or after it can touch the range.
  auto next = by_offset_.lower_bound(offset);
  auto prev = next == by_offset_.begin() ? by_offset_.end() : std::prev(next);
  const bool has_next = next != by_offset_.end();
  const bool has_prev = prev != by_offset_.end();
  if ((has_next && next->first < end) || (has_prev && prev->first + prev->second > offset)) {
    return Status(ErrorCode::INVALID_PARAMS, "free of " + RangeText(offset, size_bytes) +
                                                 " overlaps free space (double free?)");
  }

  const bool merge_prev = has_prev && prev->first + prev->second == offset;
  const bool merge_next = has_next && next->first == end;
  if (merge_prev && merge_next) {
    const uint64_t merged = prev->second + rounded + next->second;
    EraseHole(next);
    ReshapeHole(prev, prev->first, merged);
  } else if (merge_prev) {
    ReshapeHole(prev, prev->first, prev->second + rounded);
  } else if (merge_next) {
    ReshapeHole(next, offset, rounded + next->second);
  } else {
    InsertHole(offset, rounded);
  }
  free_bytes_ += rounded;
  return Status::Ok();
}

Status OffsetAllocator::Reserve(uint64_t offset, uint64_t size_bytes) {
  uint64_t end = 0;
  if (Status st = CheckRange("reserve", offset, size_bytes, &end); !st.ok()) return st;

  // The range is free only if one hole covers all of it (holes never touch,
  // so a range spanning two holes crosses allocated bytes).
  auto hole = by_offset_.upper_bound(offset);
  if (hole == by_offset_.begin() || std::prev(hole)->first + std::prev(hole)->second < end) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "reserve of " + RangeText(offset, size_bytes) + " overlaps allocated space");
  }
  --hole;
  const uint64_t hole_offset = hole->first;
  const uint64_t hole_end = hole->first + hole->second;
  const uint64_t left = offset - hole_offset;
  const uint64_t right = hole_end - end;
  if (left == 0 && right == 0) {
    EraseHole(hole);
  } else if (left == 0) {
    ReshapeHole(hole, end, right);
  } else if (right == 0) {
    ReshapeHole(hole, hole_offset, left);
  } else {
    // Insert first: it is the only step that can throw (bad_alloc), and until
    // the old hole is shrunk nothing observable has changed.
    InsertHole(end, right);
    ReshapeHole(hole, hole_offset, left);
  }
  free_bytes_ -= end - offset;
  return Status::Ok();
}

uint64_t OffsetAllocator::largest_free_bytes() const {
  return by_size_.empty() ? 0 : by_size_.rbegin()->first;
}

double OffsetAllocator::fragmentation() const {
  if (free_bytes_ == 0) return 0.0;
  return 1.0 - static_cast<double>(largest_free_bytes()) / static_cast<double>(free_bytes_);
}

void OffsetAllocator::InsertHole(uint64_t offset, uint64_t size_bytes) {
  auto it = by_offset_.emplace(offset, size_bytes).first;
  try {
    by_size_.emplace(size_bytes, offset);
  } catch (...) {
    by_offset_.erase(it);  // keep the two indexes identical if the second insert fails
    throw;
  }
}

void OffsetAllocator::EraseHole(OffsetIndex::iterator it) {
  EraseHole(it, by_size_.find({it->second, it->first}));
}

void OffsetAllocator::EraseHole(OffsetIndex::iterator it, SizeIndex::iterator by_size) {
  by_size_.erase(by_size);
  by_offset_.erase(it);
}

void OffsetAllocator::ReshapeHole(OffsetIndex::iterator it, uint64_t new_offset,
                                  uint64_t new_size_bytes) {
  ReshapeHole(it, by_size_.find({it->second, it->first}), new_offset, new_size_bytes);
}

void OffsetAllocator::ReshapeHole(OffsetIndex::iterator it, SizeIndex::iterator by_size,
                                  uint64_t new_offset, uint64_t new_size_bytes) {
  // Extract and re-insert the existing nodes: no allocation, so no failure
  // half way. A reshaped hole never crosses a neighbour, so `it`'s successor
  // is an exact hint for the offset index.
  auto size_node = by_size_.extract(by_size);
  size_node.value() = {new_size_bytes, new_offset};
  by_size_.insert(std::move(size_node));
  if (new_offset == it->first) {
    it->second = new_size_bytes;
  } else {
    auto hint = std::next(it);
    auto offset_node = by_offset_.extract(it);
    offset_node.key() = new_offset;
    offset_node.mapped() = new_size_bytes;
    by_offset_.insert(hint, std::move(offset_node));
  }
}

}  // namespace kvcached
