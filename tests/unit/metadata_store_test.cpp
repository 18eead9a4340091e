#include "core/metadata_store.h"

#include <doctest/doctest.h>

#include <thread>
#include <vector>

namespace kvcached {
namespace {

TEST_CASE("put, get, remove") {
  MetadataStore s;
  CHECK(s.Get("a").code() == ErrorCode::OBJECT_NOT_FOUND);
  REQUIRE(s.Put("a", "{\"x\":1}").ok());
  CHECK(**s.Get("a") == "{\"x\":1}");
  REQUIRE(s.Put("a", "other").ok());  // ordinary keys may be replaced
  CHECK(**s.Get("a") == "other");
  CHECK(s.KeyCount() == 1);
  CHECK(s.TotalBytes() == 1 + 5);
  REQUIRE(s.Remove("a").ok());
  CHECK(s.Remove("a").code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(s.KeyCount() == 0);
  CHECK(s.TotalBytes() == 0);
}

TEST_CASE("rpc_meta keys refuse different bytes and accept identical ones") {
  MetadataStore s;
  REQUIRE(s.Put("mooncake/rpc_meta/node1", "A").ok());
  CHECK(s.Put("mooncake/rpc_meta/node1", "A").ok());
  CHECK(s.Put("mooncake/rpc_meta/node1", "B").code() == ErrorCode::OBJECT_ALREADY_EXISTS);
  CHECK(**s.Get("mooncake/rpc_meta/node1") == "A");
  REQUIRE(s.Remove("mooncake/rpc_meta/node1").ok());
  CHECK(s.Put("mooncake/rpc_meta/node1", "B").ok());
}

TEST_CASE("limits are enforced without changing state") {
  MetadataLimits limits;
  limits.max_key_bytes = 8;
  limits.max_value_bytes = 10;
  limits.max_total_bytes = 30;
  MetadataStore s(limits);
  CHECK(s.Put("", "v").code() == ErrorCode::INVALID_KEY);
  CHECK(s.Put("123456789", "v").code() == ErrorCode::INVALID_KEY);
  CHECK(s.Put("12345678", "v").ok());
  CHECK(s.Put("k", std::string(11, 'x')).code() == ErrorCode::BUFFER_OVERFLOW);
  CHECK(s.Put("k", std::string(10, 'x')).ok());  // 8+1 + 1+10 = 20
  CHECK(s.Put("k2", std::string(10, 'x')).code() == ErrorCode::NO_AVAILABLE_HANDLE);
  CHECK(s.TotalBytes() == 20);
  CHECK(s.Get("k2").code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(s.Put("k", "y").ok());  // replacing frees the old bytes
  CHECK(s.TotalBytes() == 11);
  CHECK(s.Put("k2", std::string(10, 'x')).ok());
}

TEST_CASE("concurrent writers and readers keep the byte count exact") {
  MetadataStore s;
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&s, t] {
      for (int i = 0; i < 2000; ++i) {
        std::string key = "k" + std::to_string(i % 50);
        REQUIRE(s.Put(key, std::string(static_cast<size_t>(t + 1), 'v')).ok());
        (void)s.Get(key);
        if (i % 7 == 0) (void)s.Remove(key);
      }
    });
  }
  for (auto& th : threads) th.join();
  uint64_t expect = 0;
  for (int i = 0; i < 50; ++i) {
    std::string key = "k" + std::to_string(i);
    auto v = s.Get(key);
    if (v.ok()) expect += key.size() + (*v)->size();
  }
  CHECK(s.TotalBytes() == expect);
}

}  // namespace
}  // namespace kvcached
