#include "core/url_query.h"

#include <doctest/doctest.h>

namespace kvcached {
namespace {

TEST_CASE("PercentDecode decodes escapes of either case and '+' in queries") {
  CHECK(*PercentDecode("mooncake%2Fram%2Fseg") == "mooncake/ram/seg");
  CHECK(*PercentDecode("a%2fb") == "a/b");
  CHECK(*PercentDecode("a+b") == "a b");
  CHECK(*PercentDecode("a+b", false) == "a+b");
  CHECK(*PercentDecode("a%2Bb") == "a+b");
  CHECK(*PercentDecode("%00") == std::string(1, '\0'));
  CHECK(*PercentDecode("%E2%9C%93") == "\xE2\x9C\x93");
  CHECK(*PercentDecode("") == "");
}

TEST_CASE("PercentDecode rejects broken escapes") {
  for (const char* bad : {"%", "%2", "%zz", "a%g1", "%%", "abc%"}) {
    CAPTURE(bad);
    CHECK(PercentDecode(bad).code() == ErrorCode::INVALID_PARAMS);
  }
}

TEST_CASE("QueryParam finds the first named parameter") {
  CHECK(**QueryParam("key=abc", "key") == "abc");
  CHECK(**QueryParam("x=1&key=a%20b&key=zzz", "key") == "a b");
  CHECK(**QueryParam("key=", "key") == "");
  CHECK(**QueryParam("key", "key") == "");
  CHECK(**QueryParam("k%65y=v", "key") == "v");
  CHECK_FALSE(QueryParam("keys=1&akey=2", "key")->has_value());
  CHECK_FALSE(QueryParam("", "key")->has_value());
  CHECK(QueryParam("key=%zz", "key").code() == ErrorCode::INVALID_PARAMS);
  CHECK(**QueryParam("key=a=b", "key") == "a=b");
}

}  // namespace
}  // namespace kvcached
