// The object checksum: XXH3-64 of the bytes, with 0 reserved for "none"
// (a writer that had checksums turned off), so a real checksum of 0 is
// stored as 1. On x86-64 the distribution's libxxhash picks the widest
// vector unit at run time (AVX2: about 3x its SSE2 default; the figures are
// in docs/benchmarks.md). Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

#include <xxhash.h>
#if defined(__x86_64__)
#include <xxh_x86dispatch.h>
#define KVCACHED_XXH3_64(data, size) XXH3_64bits_dispatch(data, size)
#define KVCACHED_XXH3_UPDATE(state, data, size) XXH3_64bits_update_dispatch(state, data, size)
#else
#define KVCACHED_XXH3_64(data, size) XXH3_64bits(data, size)
#define KVCACHED_XXH3_UPDATE(state, data, size) XXH3_64bits_update(state, data, size)
#endif

namespace kvcached {

inline uint64_t ObjectChecksum(const void* data, size_t size) {
  uint64_t h = KVCACHED_XXH3_64(data, size);
  return h == 0 ? 1 : h;
}

}  // namespace kvcached
