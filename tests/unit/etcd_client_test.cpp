// EtcdClient's parts that need no server: endpoint lists and base64 (the
// exchange with a real etcd is tests/blackbox/etcd_client_test.cpp).
#include <doctest/doctest.h>

#include "net/etcd_client.h"

namespace kvcached {
namespace {

using std::chrono::milliseconds;

TEST_CASE("etcd client: endpoint lists in Mooncake's and etcd's spellings") {
  auto c = EtcdClient::Create("etcd://10.0.0.1:2379;10.0.0.2:2379", milliseconds(500));
  REQUIRE(c.ok());
  CHECK(c->endpoints() == "10.0.0.1:2379;10.0.0.2:2379");
  c = EtcdClient::Create("http://a:1, http://b:2/ ,c:3", milliseconds(500));
  REQUIRE(c.ok());
  CHECK(c->endpoints() == "a:1;b:2;c:3");
  c = EtcdClient::Create("[::1]:2379", milliseconds(500));
  REQUIRE(c.ok());
  CHECK(c->endpoints() == "[::1]:2379");
}

TEST_CASE("etcd client: a bad endpoint list is refused with the reason") {
  for (const char* bad : {"", ";;", "etcd://", "host", "host:0", "host:70000", "host:x",
                          "https://h:1", "h:1/path"}) {
    auto c = EtcdClient::Create(bad, milliseconds(500));
    CAPTURE(bad);
    REQUIRE_FALSE(c.ok());
    CHECK(c.code() == ErrorCode::INVALID_PARAMS);
    CHECK(c.status().message().find("host:port") != std::string::npos);
  }
  CHECK(EtcdClient::Create("h:1", milliseconds(0)).code() == ErrorCode::INVALID_PARAMS);
}

TEST_CASE("etcd client: etcd:// addresses are told apart from host:port") {
  CHECK(EtcdEndpointsOf("etcd://h:1;g:2") == std::optional<std::string>("h:1;g:2"));
  CHECK(EtcdEndpointsOf("ETCD://h:1") == std::optional<std::string>("h:1"));
  CHECK_FALSE(EtcdEndpointsOf("h:1").has_value());
  CHECK_FALSE(EtcdEndpointsOf("etcd:/h").has_value());
}

TEST_CASE("etcd client: base64 round-trips every byte and refuses junk") {
  std::string all;
  for (int i = 0; i < 256; ++i) all += static_cast<char>(i);
  for (size_t n : {0, 1, 2, 3, 4, 5, 255, 256}) {
    std::string in = all.substr(0, n);
    std::string enc = EtcdClient::Base64Encode(in);
    CHECK(enc.size() % 4 == 0);
    CHECK(EtcdClient::Base64Decode(enc) == std::optional<std::string>(in));
  }
  CHECK(EtcdClient::Base64Encode("foo") == "Zm9v");
  CHECK(EtcdClient::Base64Encode("fo") == "Zm8=");
  CHECK_FALSE(EtcdClient::Base64Decode("Zm9v!").has_value());
  CHECK_FALSE(EtcdClient::Base64Decode("Z").has_value());
}

}  // namespace
}  // namespace kvcached
