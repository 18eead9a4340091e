// The object checksum: XXH3-64 of the bytes, with 0 reserved for "none"
// (a writer that had checksums turned off), so a real checksum of 0 is
// stored as 1. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include <xxhash.h>

namespace kvcached {

inline uint64_t ObjectChecksum(const void* data, size_t size) {
  uint64_t h = XXH3_64bits(data, size);
  return h == 0 ? 1 : h;
}

}  // namespace kvcached
