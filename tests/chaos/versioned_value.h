// Test-only: the bytes the chaos test stores under a key for one version,
// and the check of bytes read back. A value is a 32-byte header (magic, the
// key's hash, the version, the length) followed by a pseudo-random stream
// seeded by key and version, so a read either names the one version of the
// key it holds, byte for byte, or is proved to be no version of it at all.
// Pure functions; any thread.
#pragma once

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>

namespace kvcached::chaos {

class VersionedValue {
 public:
  static constexpr uint64_t kHeaderBytes = 32;
  static constexpr uint64_t kMagic = 0x31534f4148435643ull;  // "CVCHAOS1"

  // FNV-1a of the key.
  static uint64_t KeyHash(std::string_view key) {
    uint64_t h = 1469598103934665603ull;
    for (unsigned char c : key) {
      h ^= c;
      h *= 1099511628211ull;
    }
    return h;
  }

  // Writes version `version` of `key` into out[0, size). Precondition:
  // size >= kHeaderBytes, version > 0.
  static void Fill(std::string_view key, uint64_t version, uint8_t* out, uint64_t size) {
    const uint64_t header[4] = {kMagic, KeyHash(key), version, size};
    std::memcpy(out, header, sizeof header);
    uint64_t state = Seed(header[1], version);
    uint64_t i = kHeaderBytes;
    for (; i + 8 <= size; i += 8) {
      uint64_t v = Next(state);
      std::memcpy(out + i, &v, 8);
    }
    if (i < size) {
      uint64_t v = Next(state);
      std::memcpy(out + i, &v, size - i);
    }
  }

  struct Check {
    bool valid = false;    // the bytes are exactly version `version` of the key
    uint64_t version = 0;  // from the header (also when not valid, if readable)
    std::string why;       // when not valid: what differs
  };

  // Checks `size` bytes read back for `key`.
  static Check Read(std::string_view key, const uint8_t* data, uint64_t size) {
    Check c;
    if (size < kHeaderBytes) {
      c.why = "only " + std::to_string(size) + " bytes, shorter than the header";
      return c;
    }
    uint64_t header[4];
    std::memcpy(header, data, sizeof header);
    c.version = header[2];
    if (header[0] != kMagic) {
      c.why = "bad magic " + Hex(header[0]);
      return c;
    }
    if (header[1] != KeyHash(key)) {
      c.why = "header names key hash " + Hex(header[1]) + ", not this key's " + Hex(KeyHash(key));
      return c;
    }
    if (header[3] != size) {
      c.why = "header says " + std::to_string(header[3]) + " bytes, the get returned " +
              std::to_string(size);
      return c;
    }
    uint64_t state = Seed(header[1], header[2]);
    uint64_t i = kHeaderBytes;
    for (; i < size; i += 8) {
      uint64_t want = Next(state);
      uint64_t n = size - i < 8 ? size - i : 8;
      if (std::memcmp(data + i, &want, n) != 0) {
        c.why = "body differs from version " + std::to_string(header[2]) + " at byte " +
                std::to_string(FirstDiff(data + i, &want, n) + i) + " of " + std::to_string(size);
        return c;
      }
    }
    c.valid = true;
    return c;
  }

 private:
  static uint64_t Seed(uint64_t key_hash, uint64_t version) {
    return key_hash ^ (version * 0xD6E8FEB86659FD93ull);
  }
  static uint64_t Next(uint64_t& state) {  // SplitMix64
    uint64_t z = (state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  static uint64_t FirstDiff(const uint8_t* a, const void* b, uint64_t n) {
    const uint8_t* bb = static_cast<const uint8_t*>(b);
    for (uint64_t i = 0; i < n; ++i) {
      if (a[i] != bb[i]) return i;
    }
    return n;
  }
  static std::string Hex(uint64_t v) {
    char buf[24];
    std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(v));
    return buf;
  }
};

}  // namespace kvcached::chaos
