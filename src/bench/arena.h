// Arena: anonymous memory written once up front with incompressible bytes,
// so no measurement pays for its page faults and the bytes are not all
// alike. The benchmarks take sources and destinations from arenas. Owns the
// mapping; not thread-safe to construct, but its bytes may be read by any
// number of threads.
#pragma once

#include <cstdint>

#include "kvcached/status.h"

namespace kvcached {

class Arena {
 public:
  // NO_AVAILABLE_HANDLE when the memory cannot be mapped.
  static Result<Arena> Create(uint64_t size_bytes, uint64_t seed = 0);
  Arena(Arena&& other) noexcept;
  Arena& operator=(Arena&& other) noexcept;
  Arena(const Arena&) = delete;
  Arena& operator=(const Arena&) = delete;
  ~Arena();

  uint8_t* data() const { return data_; }
  uint64_t size() const { return size_; }

 private:
  Arena(uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  uint8_t* data_ = nullptr;
  uint64_t size_ = 0;
};

}  // namespace kvcached
