// libFuzzer target: the value parsers every setting goes through (sizes,
// durations, percent-decoding, query parameters). They must never crash,
// and a size they accept must print and parse back to itself.
#include <cstddef>
#include <cstdint>
#include <string_view>

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
  return 0;
}
