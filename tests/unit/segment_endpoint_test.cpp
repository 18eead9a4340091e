#include <doctest/doctest.h>

#include "core/segment_endpoint.h"

namespace kvcached {
namespace {

TEST_CASE("segment endpoints print and parse back") {
  SegmentEndpoint e;
  e.name = "h1:4242";
  e.host_id = "h1";
  e.instance = "store-1";
  e.size = 1ull << 40;
  e.tcp = "[::1]:40123";
  e.shm = "@kvcached/store-1";
  Result<SegmentEndpoint> back = ParseEndpoint(FormatEndpoint(e));
  REQUIRE(back.ok());
  CHECK(back->name == e.name);
  CHECK(back->host_id == e.host_id);
  CHECK(back->instance == e.instance);
  CHECK(back->size == e.size);
  CHECK(back->protocol == "tcp");
  CHECK(back->tcp == e.tcp);
  CHECK(back->shm == e.shm);

  e.shm.clear();  // absent paths stay absent
  back = ParseEndpoint(FormatEndpoint(e));
  REQUIRE(back.ok());
  CHECK(back->shm.empty());
}

TEST_CASE("segment endpoints that cannot be used are refused with the reason") {
  const char* bad[] = {
      "",
      "tcp://127.0.0.1:5",                                   // the old form
      "[]",                                                  // not an object
      R"({"size":1,"tcp":"a:1"})",                           // no name
      R"({"name":"s","tcp":"a:1"})",                         // no size
      R"({"name":"s","size":-1,"tcp":"a:1"})",               // negative size
      R"({"name":"s","size":"1","tcp":"a:1"})",              // size as a string
      R"({"name":"s","size":1})",                            // no way to reach it
      R"({"name":7,"size":1,"tcp":"a:1"})",                  // name not a string
      R"({"name":"s","size":1,"tcp":["a:1"]})",              // tcp not a string
      R"({"name":"s","size":1,"tcp":"a:1")",                 // truncated
  };
  for (const char* text : bad) {
    CAPTURE(text);
    Result<SegmentEndpoint> e = ParseEndpoint(text);
    CHECK_FALSE(e.ok());
    CHECK(e.code() == ErrorCode::INVALID_PARAMS);
  }
  std::string huge = R"({"name":")" + std::string(2000, 'n') + R"(","size":1,"tcp":"a:1"})";
  CHECK_FALSE(ParseEndpoint(huge).ok());
}

TEST_CASE("host:port splitting") {
  std::string host;
  uint16_t port = 0;
  REQUIRE(SplitHostPort("127.0.0.1:8080", host, port).ok());
  CHECK(host == "127.0.0.1");
  CHECK(port == 8080);
  REQUIRE(SplitHostPort("[fe80::1]:1", host, port).ok());
  CHECK(host == "fe80::1");
  CHECK(port == 1);
  REQUIRE(SplitHostPort("store-a:65535", host, port).ok());
  CHECK(host == "store-a");
  for (const char* bad : {"", "host", "host:", ":80", "host:0", "host:65536", "host:8x",
                          "[::1:80", "[]:80", "host:-1"}) {
    CAPTURE(bad);
    CHECK(SplitHostPort(bad, host, port).code() == ErrorCode::INVALID_PARAMS);
  }
}

}  // namespace
}  // namespace kvcached
