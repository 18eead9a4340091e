#include "core/units.h"

#include <doctest/doctest.h>

namespace kvcached {
namespace {

using std::chrono::milliseconds;

TEST_CASE("ParseSize accepts the spellings users type") {
  CHECK(*ParseSize("4294967296") == 4294967296ull);
  CHECK(*ParseSize("4gb") == (4ull << 30));
  CHECK(*ParseSize("4 GiB") == (4ull << 30));
  CHECK(*ParseSize("4G") == (4ull << 30));
  CHECK(*ParseSize("512MB") == (512ull << 20));
  CHECK(*ParseSize("1.5GB") == (3ull << 29));
  CHECK(*ParseSize("16KiB") == 16384);
  CHECK(*ParseSize("  7 b ") == 7);
  CHECK(*ParseSize("0") == 0);
  CHECK(*ParseSize("1tb") == (1ull << 40));
  CHECK(*ParseSize("0.5k") == 512);
}

TEST_CASE("ParseSize rejects garbage, signs and overflow with a message") {
  for (const char* bad : {"", " ", "abc", "4 gigs", "-1", "-4gb", "+4", "4..5GB", "1.5", "4gbb",
                          "gb", "4 g b", "0x10", "1e9", ".5GB", "5.GB"}) {
    CAPTURE(bad);
    Result<uint64_t> r = ParseSize(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.code() == ErrorCode::INVALID_PARAMS);
    CHECK(r.status().message().find("not a valid size") != std::string::npos);
  }
  CHECK(ParseSize("18446744073709551615").ok());
  CHECK_FALSE(ParseSize("18446744073709551616").ok());
  CHECK_FALSE(ParseSize("99999999999999999999999").ok());
  CHECK_FALSE(ParseSize("16384 PiB").ok());
  CHECK(ParseSize("16383 PiB").ok());
  CHECK(ParseSize("17179869184GB").status().message().find("2^64") != std::string::npos);
}

TEST_CASE("ParseDuration accepts ms, s, m, h and bare numbers in the given unit") {
  CHECK(*ParseDuration("500ms") == milliseconds(500));
  CHECK(*ParseDuration("10s") == milliseconds(10'000));
  CHECK(*ParseDuration("5m") == milliseconds(300'000));
  CHECK(*ParseDuration("1h") == milliseconds(3'600'000));
  CHECK(*ParseDuration("1.5s") == milliseconds(1500));
  CHECK(*ParseDuration("10") == milliseconds(10'000));
  CHECK(*ParseDuration("10000", DurationUnit::kMilliseconds) == milliseconds(10'000));
  CHECK(*ParseDuration(" 2 S ") == milliseconds(2000));
}

TEST_CASE("ParseDuration rejects garbage") {
  for (const char* bad : {"", "s", "-1s", "10 years", "10d", "1e3ms", "ms10", "999999999h"}) {
    CAPTURE(bad);
    CHECK_FALSE(ParseDuration(bad).ok());
  }
}

TEST_CASE("Format round-trips through Parse") {
  for (uint64_t v : {0ull, 1ull, 1023ull, 1024ull, 4ull << 30, 3ull << 29}) {
    std::string text = FormatSize(v);
    CAPTURE(text);
    if (text.find('.') == std::string::npos) CHECK(*ParseSize(text) == v);
  }
  CHECK(FormatSize(4ull << 30) == "4 GiB");
  CHECK(FormatSize(1536) == "1.5 KiB");
  CHECK(FormatDuration(milliseconds(500)) == "500ms");
  CHECK(FormatDuration(milliseconds(5'400'000)) == "90m");
  for (int64_t ms : {1, 999, 1000, 61'000, 3'600'000, 5'400'000, 86'400'001}) {
    CAPTURE(ms);
    CHECK(*ParseDuration(FormatDuration(milliseconds(ms))) == milliseconds(ms));
  }
}

}  // namespace
}  // namespace kvcached
