// Test-only: the bytes of an object, a pseudo-random pattern seeded by its
// key, so any byte a get returns can be checked against what was put
// without keeping a copy.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string_view>
#include <vector>

namespace kvcached::testing {

inline uint64_t KeySeed(std::string_view key) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : key) {
    h ^= c;
    h *= 1099511628211ull;
  }
  return h;
}

inline uint64_t SplitMix(uint64_t& state) {
  uint64_t z = (state += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

inline void FillPattern(std::string_view key, uint8_t* out, uint64_t size) {
  uint64_t state = KeySeed(key);
  uint64_t i = 0;
  for (; i + 8 <= size; i += 8) {
    uint64_t v = SplitMix(state);
    std::memcpy(out + i, &v, 8);
  }
  if (i < size) {
    uint64_t v = SplitMix(state);
    std::memcpy(out + i, &v, size - i);
  }
}

inline std::vector<uint8_t> Pattern(std::string_view key, uint64_t size) {
  std::vector<uint8_t> v(size);
  FillPattern(key, v.data(), size);
  return v;
}

// The offset of the first byte that differs from `key`'s pattern; -1 if none.
inline int64_t FirstMismatch(std::string_view key, const uint8_t* p, uint64_t size) {
  uint64_t state = KeySeed(key);
  for (uint64_t i = 0; i < size; i += 8) {
    uint64_t v = SplitMix(state);
    uint64_t n = std::min<uint64_t>(8, size - i);
    if (std::memcmp(p + i, &v, n) != 0) {
      for (uint64_t j = 0; j < n; ++j) {
        if (p[i + j] != reinterpret_cast<const uint8_t*>(&v)[j]) return static_cast<int64_t>(i + j);
      }
    }
  }
  return -1;
}

}  // namespace kvcached::testing
