// Copies for the shared-memory path. Copies of 64 KiB and more use
// non-temporal stores:
// glibc's memcpy writes through the cache below its own large-copy
// threshold, which for multi-MiB KV pages runs at about two thirds of the
// machine's streaming bandwidth (measured in docs/benchmarks.md); the
// bytes copied are not read again soon by this thread anyway. Thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>

namespace kvcached {

// Copies n bytes; [dst, dst + n) and [src, src + n) must not overlap.
void StreamCopy(void* dst, const void* src, size_t n);

// The same, and returns ObjectChecksum() of the bytes copied, hashing each
// chunk while it is still in cache (one pass over memory instead of two).
uint64_t CopyAndChecksum(void* dst, const void* src, size_t n);

}  // namespace kvcached
