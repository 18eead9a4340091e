// libFuzzer target: the value parsers every setting goes through (sizes,
// durations, percent-decoding, query parameters) and the segment
// descriptors clients receive from the master. They must never crash; a
// size they accept must print and parse back to itself, and so must a
// descriptor.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "core/segment_endpoint.h"
#include "core/units.h"
#include "core/url_query.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::string_view text(reinterpret_cast<const char*>(data), size);
  kvcached::Result<uint64_t> s = kvcached::ParseSize(text);
  if (s.ok()) {
    std::string printed = kvcached::FormatSize(*s);
    if (printed.find('.') == std::string::npos) {
      kvcached::Result<uint64_t> again = kvcached::ParseSize(printed);
      if (!again.ok() || *again != *s) __builtin_trap();
    }
  }
  (void)kvcached::ParseDuration(text);
  (void)kvcached::ParseDuration(text, kvcached::DurationUnit::kMilliseconds);
  (void)kvcached::PercentDecode(text);
  (void)kvcached::QueryParam(text, "key");
  kvcached::Result<kvcached::SegmentEndpoint> e = kvcached::ParseEndpoint(text);
  if (e.ok()) {
    kvcached::Result<kvcached::SegmentEndpoint> again =
        kvcached::ParseEndpoint(kvcached::FormatEndpoint(*e));
    if (!again.ok() || again->name != e->name || again->size != e->size ||
        again->tcp != e->tcp || again->shm != e->shm || again->instance != e->instance) {
      __builtin_trap();
    }
  }
  std::string host;
  uint16_t port = 0;
  (void)kvcached::SplitHostPort(text, host, port);
  return 0;
}
