#include "bench/arena.h"

#include <sys/mman.h>

#include <cstring>
#include <utility>

#include "core/units.h"

namespace kvcached {

Result<Arena> Arena::Create(uint64_t size_bytes, uint64_t seed) {
  if (size_bytes == 0) return Status(ErrorCode::INVALID_PARAMS, "an arena of 0 bytes");
  void* p = mmap(nullptr, size_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "cannot map " + FormatSize(size_bytes) + ": " + std::strerror(errno));
  }
  auto* data = static_cast<uint8_t*>(p);
  // xorshift64: cheap, and incompressible enough that no layer can shortcut it.
  uint64_t x = 0x9E3779B97F4A7C15ull ^ size_bytes ^ (seed * 0xBF58476D1CE4E5B9ull);
  if (x == 0) x = 1;
  uint64_t i = 0;
  for (; i + 8 <= size_bytes; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(data + i, &x, 8);
  }
  for (; i < size_bytes; ++i) data[i] = static_cast<uint8_t>(x >> (8 * (i % 8)));
  return Arena(data, size_bytes);
}

Arena::Arena(Arena&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)), size_(std::exchange(other.size_, 0)) {}

Arena& Arena::operator=(Arena&& other) noexcept {
  if (this != &other) {
    if (data_ != nullptr) munmap(data_, size_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
  }
  return *this;
}

Arena::~Arena() {
  if (data_ != nullptr) munmap(data_, size_);
}

}  // namespace kvcached
