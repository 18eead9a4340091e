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

TEST_CASE("an RDMA descriptor prints and parses back, and a bad one is refused with the reason") {
  SegmentEndpoint e;
  e.name = "h1:4242";
  e.size = 5ull << 30;
  e.tcp = "10.0.0.1:40123";
  RdmaSegmentInfo r;
  r.base = 0x7f0000000000;
  r.chunk_bytes = 2ull << 30;
  RdmaNic a{"mlx5_0", {}, 0}, b{"mlx5_1", {}, 9};
  REQUIRE(ParseGid("::ffff:10.0.0.1", a.gid).ok());
  REQUIRE(ParseGid("fe80::1", b.gid).ok());
  r.nics = {a, b};
  r.rkeys = {{1, 2}, {3, 4}, {5, 0xFFFFFFFF}};  // three chunks cover 5 GiB
  e.rdma = r;
  Result<SegmentEndpoint> back = ParseEndpoint(FormatEndpoint(e));
  REQUIRE_MESSAGE(back.ok(), back.status().ToString());
  REQUIRE(back->rdma.has_value());
  CHECK(back->rdma->base == r.base);
  CHECK(back->rdma->chunk_bytes == r.chunk_bytes);
  CHECK(back->rdma->nics.size() == 2);
  CHECK(back->rdma->nics[0].gid == a.gid);
  CHECK(back->rdma->nics[1].lid == 9);
  CHECK(FormatGid(back->rdma->nics[0].gid) == "::ffff:10.0.0.1");
  CHECK(back->rdma->rkeys == r.rkeys);

  const std::string head = R"({"name":"s","size":4096,"tcp":"a:1","rdma":)";
  const std::string nic = R"("nics":[{"name":"rxe0","gid":"::ffff:10.0.0.1"}])";
  struct Case {
    std::string rdma;
    const char* why;
  } bad[] = {
      {"[]", "not an object"},
      {R"({"chunk":4096,)" + nic + R"(,"rkeys":[[1]]})", "'base'"},
      {R"({"base":0,"chunk":0,)" + nic + R"(,"rkeys":[[1]]})", "non-zero 'chunk'"},
      {R"({"base":18446744073709551615,"chunk":4096,)" + nic + R"(,"rkeys":[[1]]})", "overflows"},
      {R"({"base":0,"chunk":4096,"nics":[],"rkeys":[[1]]})", "'nics'"},
      {R"({"base":0,"chunk":4096,"nics":[{"name":"rxe0","gid":"10.0.0.1"}],"rkeys":[[1]]})",
       "IPv6"},
      {R"({"base":0,"chunk":4096,"nics":[{"name":"rxe0","gid":"::1","lid":70000}],"rkeys":[[1]]})",
       "lid"},
      {R"({"base":0,"chunk":1024,)" + nic + R"(,"rkeys":[[1],[2]]})", "do not cover"},
      {R"({"base":0,"chunk":4096,)" + nic + R"(,"rkeys":[[1,2]]})", "one key per NIC"},
      {R"({"base":0,"chunk":4096,)" + nic + R"(,"rkeys":[[4294967296]]})", "32-bit"},
      {R"({"base":0,"chunk":4096,)" + nic + R"(,"rkeys":[[-1]]})", "32-bit"},
      {R"({"base":0,"chunk":4096,)" + nic + R"(,"rkeys":[]})", "'rkeys'"},
  };
  for (const Case& c : bad) {
    std::string text = head + c.rdma + "}";
    CAPTURE(text);
    Result<SegmentEndpoint> got = ParseEndpoint(text);
    REQUIRE_FALSE(got.ok());
    CHECK(got.code() == ErrorCode::INVALID_PARAMS);
    CHECK_MESSAGE(got.status().message().find(c.why) != std::string::npos, got.status().message());
  }
  // Too many keys in all, refused before they are kept.
  std::string rows;
  for (size_t i = 0; i <= kMaxRdmaKeys; ++i) rows += (i ? ",[1]" : "[1]");
  std::string many = head + R"({"base":0,"chunk":1,)" + nic + R"(,"rkeys":[)" + rows + "]}}";
  CHECK(ParseEndpoint(many).code() == ErrorCode::INVALID_PARAMS);
  // RDMA is set up over the data port, so it needs one.
  CHECK_FALSE(ParseEndpoint(R"({"name":"s","size":1,"shm":"@x","rdma":{"base":0,"chunk":1,)" +
                            nic + R"(,"rkeys":[[1]]}})")
                  .ok());
}

TEST_CASE("RDMA device lists: comma lists, Mooncake's rank map, and bad names") {
  using V = std::vector<std::string>;
  auto ok = [](std::string_view text) {
    Result<V> r = ParseRdmaDeviceList(text);
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    return r.value();
  };
  CHECK(ok("").empty());
  CHECK(ok("  ").empty());
  CHECK(ok("mlx5_0") == V{"mlx5_0"});
  CHECK(ok("mlx5_0, mlx5_1,,mlx5_0") == V{"mlx5_0", "mlx5_1"});
  CHECK(ok(R"({"0":"mlx5_0,mlx5_1","1":"mlx5_1, mlx5_2"})") == V{"mlx5_0", "mlx5_1", "mlx5_2"});
  for (std::string_view bad : {"mlx5_0;rm -rf", "a/b", R"({"0":1})", R"({"0":"x")", "[\"a\"]"}) {
    CAPTURE(bad);
    CHECK(ParseRdmaDeviceList(bad).code() == ErrorCode::INVALID_PARAMS);
  }
  std::string many;
  for (int i = 0; i <= static_cast<int>(kMaxRdmaNics); ++i) many += "d" + std::to_string(i) + ",";
  CHECK(ParseRdmaDeviceList(many).code() == ErrorCode::INVALID_PARAMS);
  CHECK(ParseRdmaDeviceList(std::string(65, 'a')).code() == ErrorCode::INVALID_PARAMS);
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
