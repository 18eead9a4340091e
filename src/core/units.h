// Parsing and printing of the human units kvcached's configuration accepts:
// byte sizes ("4294967296", "4gb", "4 GiB", "512MB", "1.5GB") and durations
// ("500ms", "10s", "5m"). Pure functions, thread-safe. Sizes use binary
// multiples for every spelling (1 GB == 1 GiB == 2^30 bytes), as Mooncake
// and SGLang do for MOONCAKE_GLOBAL_SEGMENT_SIZE="4gb".
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kvcached {

// A TCP/UDP port written in decimal, 1 to 65535 (at most five digits, no
// sign, no spaces); nullopt for anything else.
std::optional<uint16_t> ParsePort(std::string_view text);

// `s` without the white space (std::isspace) at either end.
std::string_view Trim(std::string_view s);

// Accepts an unsigned decimal number, optionally with a fraction, optional
// spaces, and an optional case-insensitive unit: b, k/kb/kib, m/mb/mib,
// g/gb/gib, t/tb/tib, p/pb/pib. A fraction must come with a unit and is
// truncated to whole bytes. Fails with INVALID_PARAMS on garbage, a sign,
// an empty string, or a value that does not fit in 64 bits.
Result<uint64_t> ParseSize(std::string_view text);

// Accepts "<number><unit>" with unit ms, s, m, h (a fraction is allowed:
// "1.5s"); a bare number is taken in `bare_unit`. Fails with INVALID_PARAMS
// on garbage, a sign, or a value above ten years.
enum class DurationUnit { kMilliseconds, kSeconds };
Result<std::chrono::milliseconds> ParseDuration(std::string_view text,
                                                DurationUnit bare_unit = DurationUnit::kSeconds);

// "4 GiB", "1.5 MiB", "512 B": exact for whole multiples, else one decimal.
std::string FormatSize(uint64_t size_bytes);
// "500ms", "10s", "5m", "90m": one unit, readable by ParseDuration.
std::string FormatDuration(std::chrono::milliseconds d);

}  // namespace kvcached
