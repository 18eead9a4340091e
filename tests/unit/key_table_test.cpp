#include "master/key_table.h"

#include <doctest/doctest.h>

#include <random>
#include <string>
#include <unordered_map>

namespace kvcached {
namespace {

TEST_CASE("insert, find, erase and id reuse") {
  KeyTable<int> t;
  CHECK(t.Find("a") == KeyTable<int>::kNone);
  uint32_t a = t.Insert("a");
  t[a] = 1;
  uint32_t b = t.Insert("b");
  t[b] = 2;
  CHECK(t.Find("a") == a);
  CHECK(t.Key(b) == "b");
  CHECK(t.size() == 2);
  t.Erase(a);
  CHECK(t.Find("a") == KeyTable<int>::kNone);
  CHECK(t.Find("b") == b);
  uint32_t c = t.Insert("c");
  CHECK(c == a);  // the freed id is reused
  CHECK(t[c] == 0);  // with a fresh value
  CHECK(t.size() == 2);
  uint32_t empty = t.Insert("");
  CHECK(t.Find("") == empty);
  std::string binary("k\0ey", 4);
  uint32_t bin = t.Insert(binary);
  CHECK(t.Find(binary) == bin);
  CHECK(t.Find("k") == KeyTable<int>::kNone);
}

TEST_CASE("random operations match std::unordered_map, through growth and deletions") {
  KeyTable<uint64_t> t;
  std::unordered_map<std::string, uint64_t> model;
  std::mt19937_64 rng(7);
  for (int step = 0; step < 200'000; ++step) {
    std::string key = "key-" + std::to_string(rng() % 5000);
    uint32_t id = t.Find(key);
    auto it = model.find(key);
    REQUIRE((id == KeyTable<uint64_t>::kNone) == (it == model.end()));
    if (it != model.end()) REQUIRE(t[id] == it->second);
    if (rng() % 3 == 0 && it != model.end()) {
      t.Erase(id);
      model.erase(it);
    } else if (it == model.end()) {
      uint64_t v = rng();
      t[t.Insert(key)] = v;
      model[key] = v;
    }
    REQUIRE(t.size() == model.size());
  }
  size_t seen = 0;
  t.ForEach([&](uint32_t id) {
    ++seen;
    CHECK(model.at(std::string(t.Key(id))) == t[id]);
  });
  CHECK(seen == model.size());
  // Erasing during ForEach is allowed.
  t.ForEach([&](uint32_t id) { t.Erase(id); });
  CHECK(t.size() == 0);
}

}  // namespace
}  // namespace kvcached
