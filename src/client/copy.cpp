#include "client/copy.h"

#include <cstring>

#define XXH_STATIC_LINKING_ONLY  // XXH3_state_t on the stack
#include "client/checksum.h"

#if defined(__x86_64__)
#include <emmintrin.h>
#endif

namespace kvcached {
namespace {

// From here on non-temporal stores: batches of 64 KiB objects moved a
// third more with them than with memcpy (docs/benchmarks.md).
constexpr size_t kStreamThreshold = 64 << 10;
constexpr size_t kHashChunk = 64 << 10;         // stays in L2 between copy and hash

// Non-temporal copy of any length.
void Stream(void* dst, const void* src, size_t n) {
#if defined(__x86_64__)
  {
    auto* d = static_cast<char*>(dst);
    auto* s = static_cast<const char*>(src);
    size_t head = (16 - (reinterpret_cast<uintptr_t>(d) & 15)) & 15;
    if (head > n) head = n;
    std::memcpy(d, s, head);
    d += head;
    s += head;
    n -= head;
    for (size_t blocks = n / 64; blocks > 0; --blocks) {
      __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s));
      __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 16));
      __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 32));
      __m128i e = _mm_loadu_si128(reinterpret_cast<const __m128i*>(s + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(d), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(d + 48), e);
      s += 64;
      d += 64;
    }
    _mm_sfence();  // streamed stores are visible before anyone is told
    std::memcpy(d, s, n % 64);
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

}  // namespace

void StreamCopy(void* dst, const void* src, size_t n) {
  if (n >= kStreamThreshold) {
    Stream(dst, src, n);
  } else {
    std::memcpy(dst, src, n);
  }
}

uint64_t CopyAndChecksum(void* dst, const void* src, size_t n) {
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  auto* d = static_cast<char*>(dst);
  auto* s = static_cast<const char*>(src);
  bool stream = n >= kStreamThreshold;
  for (size_t at = 0; at < n; at += kHashChunk) {
    size_t len = n - at < kHashChunk ? n - at : kHashChunk;
    if (stream) {
      Stream(d + at, s + at, len);
    } else {
      std::memcpy(d + at, s + at, len);
    }
    KVCACHED_XXH3_UPDATE(&state, s + at, len);  // the source chunk is still cached
  }
  uint64_t h = XXH3_64bits_digest(&state);
  return h == 0 ? 1 : h;
}

}  // namespace kvcached
