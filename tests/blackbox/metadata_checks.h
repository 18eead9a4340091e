// Test-only checks shared by the metadata client's tests over the HTTP
// service (metadata_client_test.cpp) and over etcd (metadata_etcd_test.cpp).
#pragma once

#include <doctest/doctest.h>

#include <atomic>
#include <functional>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "net/metadata_client.h"

namespace kvcached::testing {

// `threads` threads share one client, each putting, reading back and
// deleting `per_thread` keys of its own: the number of calls that failed or
// read back other bytes (0 when calls share nothing).
inline int RoundTripsFromThreads(const MetadataClient& c, int threads, int per_thread) {
  std::atomic<int> failures{0};
  std::vector<std::thread> running;
  for (int t = 0; t < threads; ++t) {
    running.emplace_back([&, t] {
      for (int i = 0; i < per_thread; ++i) {
        std::string key = "mooncake/ram/t" + std::to_string(t) + "-" + std::to_string(i);
        if (!c.Put(key, key).ok()) ++failures;
        Result<std::optional<std::string>> v = c.Get(key);
        if (!v.ok() || !v->has_value() || **v != key) ++failures;
        if (!c.Delete(key).ok()) ++failures;
      }
    });
  }
  for (auto& t : running) t.join();
  return failures.load();
}

// The contract of Put, Get and Delete on `key`, whatever the backend: a
// value put reads back, is replaced by bytes that are not text and by an
// empty value; Delete removes it and is idempotent. `stored`, when given,
// reads the key behind the client's back (etcd: what Mooncake's plugin sees)
// and must agree after each step.
inline void CheckValueContract(
    const MetadataClient& c, const std::string& key,
    const std::function<std::optional<std::string>(const std::string&)>& stored = nullptr) {
  auto agrees = [&](const std::optional<std::string>& want) {
    if (stored) CHECK(stored(key) == want);
  };
  const std::string descriptor = R"({"name":"seg-0","buffers":[{"addr":4096,"length":65536}]})";
  CHECK(c.Put(key, descriptor).ok());
  Result<std::optional<std::string>> got = c.Get(key);
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK(**got == descriptor);
  agrees(descriptor);

  // Replacing, then bytes that are not text, then an empty value.
  const std::string binary("\x00\xff\r\n{\"x\"}\x01", 10);
  CHECK(c.Put(key, binary).ok());
  CHECK(c.Get(key)->value() == binary);
  agrees(binary);
  CHECK(c.Put(key, "").ok());
  got = c.Get(key);
  REQUIRE(got.ok());
  REQUIRE(got->has_value());
  CHECK((*got)->empty());

  CHECK(c.Delete(key).ok());
  got = c.Get(key);
  REQUIRE(got.ok());
  CHECK_FALSE(got->has_value());
  agrees(std::nullopt);
  // Delete is idempotent: a missing key is OK.
  CHECK(c.Delete(key).ok());
  CHECK(c.Delete("never-put").ok());
  got = c.Get("never-put");
  REQUIRE(got.ok());
  CHECK_FALSE(got->has_value());
}

}  // namespace kvcached::testing
