#include "core/units.h"

#include <cctype>
#include <cstdio>

namespace kvcached {

std::string_view Trim(std::string_view s) {
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.front()))) s.remove_prefix(1);
  while (!s.empty() && std::isspace(static_cast<unsigned char>(s.back()))) s.remove_suffix(1);
  return s;
}

namespace {

std::string Lower(std::string_view s) {
  std::string out(s);
  for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return out;
}

// A decimal number split into its whole part and up to 18 fraction digits.
struct Decimal {
  uint64_t whole = 0;
  uint64_t frac = 0;        // fraction digits as an integer
  uint64_t frac_scale = 1;  // 10^(number of fraction digits)
  bool has_fraction = false;
};

// Reads [0-9]+(\.[0-9]+)? from the front of `s`, advancing it. Returns an
// error message, or empty on success.
std::string ReadDecimal(std::string_view& s, Decimal& out) {
  size_t i = 0;
  if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) {
    return "expected a number";
  }
  while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
    uint64_t digit = static_cast<uint64_t>(s[i] - '0');
    if (__builtin_mul_overflow(out.whole, 10, &out.whole) ||
        __builtin_add_overflow(out.whole, digit, &out.whole)) {
      return "number too large";
    }
    ++i;
  }
  if (i < s.size() && s[i] == '.') {
    ++i;
    if (i >= s.size() || !std::isdigit(static_cast<unsigned char>(s[i]))) {
      return "expected digits after the decimal point";
    }
    out.has_fraction = true;
    int digits = 0;
    while (i < s.size() && std::isdigit(static_cast<unsigned char>(s[i]))) {
      if (digits < 18) {  // further digits cannot change a 64-bit result
        out.frac = out.frac * 10 + static_cast<uint64_t>(s[i] - '0');
        out.frac_scale *= 10;
        ++digits;
      }
      ++i;
    }
  }
  s.remove_prefix(i);
  return {};
}

// whole * mult + frac * mult / frac_scale, or false on overflow.
bool Scale(const Decimal& d, uint64_t mult, uint64_t& out) {
  if (__builtin_mul_overflow(d.whole, mult, &out)) return false;
  if (d.has_fraction) {
    unsigned __int128 part = static_cast<unsigned __int128>(d.frac) * mult / d.frac_scale;
    if (__builtin_add_overflow(out, static_cast<uint64_t>(part), &out)) return false;
  }
  return true;
}

Status Invalid(std::string_view what, std::string_view text, std::string_view why,
               std::string_view examples) {
  std::string msg;
  msg += "'";
  msg += text;
  msg += "' is not a valid ";
  msg += what;
  msg += " (";
  msg += why;
  msg += "; examples: ";
  msg += examples;
  msg += ")";
  return Status(ErrorCode::INVALID_PARAMS, std::move(msg));
}

constexpr std::string_view kSizeExamples = "4294967296, 512MB, 4 GiB, 1.5GB";
constexpr std::string_view kDurationExamples = "500ms, 10s, 5m, 1h";

// Splits "<unsigned decimal> <unit>" into the number and the lower-cased
// unit; the shared front half of ParseSize and ParseDuration.
Status SplitNumberAndUnit(std::string_view text, std::string_view what, std::string_view examples,
                          Decimal& number, std::string& unit) {
  std::string_view s = Trim(text);
  if (s.empty()) return Invalid(what, text, "empty", examples);
  if (s.front() == '-' || s.front() == '+') {
    return Invalid(what, text, "a sign is not allowed", examples);
  }
  if (std::string err = ReadDecimal(s, number); !err.empty()) {
    return Invalid(what, text, err, examples);
  }
  unit = Lower(Trim(s));
  return Status::Ok();
}

}  // namespace

std::optional<uint16_t> ParsePort(std::string_view text) {
  if (text.empty() || text.size() > 5) return std::nullopt;
  uint32_t v = 0;
  for (char c : text) {
    if (c < '0' || c > '9') return std::nullopt;
    v = v * 10 + static_cast<uint32_t>(c - '0');
  }
  if (v == 0 || v > 65535) return std::nullopt;
  return static_cast<uint16_t>(v);
}

Result<uint64_t> ParseSize(std::string_view text) {
  Decimal d;
  std::string unit;
  if (Status st = SplitNumberAndUnit(text, "size", kSizeExamples, d, unit); !st.ok()) return st;
  uint64_t mult = 0;
  if (unit.empty() || unit == "b") {
    mult = 1;
  } else {
    // k, kb, kib (and so on): all binary multiples.
    static constexpr std::string_view kPrefixes = "kmgtp";
    size_t pos = kPrefixes.find(unit[0]);
    std::string_view rest = std::string_view(unit).substr(1);
    if (pos == std::string_view::npos || !(rest.empty() || rest == "b" || rest == "ib")) {
      return Invalid("size", text, "unknown unit '" + unit + "'", kSizeExamples);
    }
    mult = uint64_t{1} << (10 * (pos + 1));
  }
  if (d.has_fraction && mult == 1) {
    return Invalid("size", text, "a fraction of a byte", kSizeExamples);
  }
  uint64_t out = 0;
  if (!Scale(d, mult, out)) {
    return Invalid("size", text, "larger than 2^64-1 bytes", kSizeExamples);
  }
  return out;
}

Result<std::chrono::milliseconds> ParseDuration(std::string_view text, DurationUnit bare_unit) {
  Decimal d;
  std::string unit;
  if (Status st = SplitNumberAndUnit(text, "duration", kDurationExamples, d, unit); !st.ok()) {
    return st;
  }
  uint64_t mult_ms = 0;
  if (unit.empty()) {
    mult_ms = bare_unit == DurationUnit::kMilliseconds ? 1 : 1000;
  } else if (unit == "ms") {
    mult_ms = 1;
  } else if (unit == "s" || unit == "sec") {
    mult_ms = 1000;
  } else if (unit == "m" || unit == "min") {
    mult_ms = 60'000;
  } else if (unit == "h") {
    mult_ms = 3'600'000;
  } else {
    return Invalid("duration", text, "unknown unit '" + unit + "'", kDurationExamples);
  }
  constexpr uint64_t kMaxMs = uint64_t{10} * 365 * 24 * 3'600'000;
  uint64_t ms = 0;
  if (!Scale(d, mult_ms, ms) || ms > kMaxMs) {
    return Invalid("duration", text, "longer than ten years", kDurationExamples);
  }
  return std::chrono::milliseconds(static_cast<int64_t>(ms));
}

std::string FormatSize(uint64_t size_bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  int u = 0;
  while (u < 5 && size_bytes >= (uint64_t{1} << (10 * (u + 1)))) ++u;
  uint64_t mult = uint64_t{1} << (10 * u);
  char buf[48];
  if (size_bytes % mult == 0) {
    std::snprintf(buf, sizeof buf, "%llu %s", static_cast<unsigned long long>(size_bytes / mult),
                  kUnits[u]);
  } else {
    std::snprintf(buf, sizeof buf, "%.1f %s",
                  static_cast<double>(size_bytes) / static_cast<double>(mult), kUnits[u]);
  }
  return buf;
}

std::string FormatDuration(std::chrono::milliseconds d) {
  // One unit, the largest that divides exactly, so ParseDuration reads it back.
  int64_t ms = d.count();
  if (ms == 0) return "0s";
  if (ms % 3'600'000 == 0) return std::to_string(ms / 3'600'000) + "h";
  if (ms % 60'000 == 0) return std::to_string(ms / 60'000) + "m";
  if (ms % 1000 == 0) return std::to_string(ms / 1000) + "s";
  return std::to_string(ms) + "ms";
}

}  // namespace kvcached
