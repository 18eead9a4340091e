#include "client/copy_pool.h"

#include <doctest/doctest.h>

#include <atomic>
#include <set>
#include <stdexcept>
#include <thread>
#include <vector>

namespace kvcached {
namespace {

TEST_CASE("copy pool: every item runs exactly once, on the caller and the helpers") {
  for (unsigned helpers : {0u, 1u, 3u}) {
    CAPTURE(helpers);
    CopyPool pool(helpers);
    for (size_t n : {0u, 1u, 2u, 7u, 1000u}) {
      CAPTURE(n);
      std::vector<std::atomic<int>> runs(n);
      std::mutex mu;
      std::set<std::thread::id> threads;
      pool.ForEach(n, [&](size_t i) {
        runs[i]++;
        std::lock_guard<std::mutex> lock(mu);
        threads.insert(std::this_thread::get_id());
      });
      for (size_t i = 0; i < n; ++i) CHECK(runs[i] == 1);
      CHECK(threads.size() <= helpers + 1);
      if (helpers == 0 && n > 0) CHECK(threads == std::set{std::this_thread::get_id()});
    }
  }
}

TEST_CASE("copy pool: a helper takes work while the caller is busy") {
  CopyPool pool(1);
  // Item 0 waits until some other item ran: with the caller stuck in it,
  // only a helper can run item 1.
  std::atomic<bool> other_ran{false};
  std::atomic<int> on_caller{0};
  const auto caller = std::this_thread::get_id();
  pool.ForEach(2, [&](size_t i) {
    if (std::this_thread::get_id() == caller) on_caller++;
    if (i == 0) {
      while (!other_ran) std::this_thread::yield();
    } else {
      other_ran = true;
    }
  });
  CHECK(other_ran);
  CHECK(on_caller == 1);
}

TEST_CASE("copy pool: batches from several threads at once share the helpers") {
  CopyPool pool(2);
  std::atomic<uint64_t> sum{0};
  std::vector<std::thread> callers;
  for (int t = 0; t < 4; ++t) {
    callers.emplace_back([&] {
      for (int round = 0; round < 200; ++round) {
        pool.ForEach(16, [&](size_t i) { sum += i + 1; });
      }
    });
  }
  for (std::thread& t : callers) t.join();
  CHECK(sum == 4u * 200u * (16u * 17u / 2u));
}

TEST_CASE("copy pool: an exception reaches the caller once every item is done") {
  CopyPool pool(2);
  std::atomic<int> ran{0};
  CHECK_THROWS_AS(pool.ForEach(50,
                               [&](size_t i) {
                                 ran++;
                                 if (i == 10) throw std::runtime_error("item 10");
                               }),
                  std::runtime_error);
  CHECK(ran == 50);
  // The pool goes on working.
  ran = 0;
  pool.ForEach(5, [&](size_t) { ran++; });
  CHECK(ran == 5);
}

}  // namespace
}  // namespace kvcached
