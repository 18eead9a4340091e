// Threads that share the copies of one batch: a batch of shared-memory
// transfers is copied (and hashed) by the calling thread and the pool's
// helpers together, one transfer at a time each. One thread copying and
// hashing reaches about two thirds of this machine's memcpy bandwidth;
// two reach more than a single memcpy (docs/benchmarks.md). The helpers
// start on first use and wait on a condition variable in between.
// Thread-safe: batches from several threads share the helpers.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

namespace kvcached {

class CopyPool {
 public:
  // `helpers` threads besides the callers; 0 runs everything on the caller.
  explicit CopyPool(unsigned helpers);
  ~CopyPool();
  CopyPool(const CopyPool&) = delete;
  CopyPool& operator=(const CopyPool&) = delete;

  // Calls fn(i) once for every i in [0, n), on this thread and the helpers
  // that are free, and returns when every call has returned. The first
  // exception a call threw is rethrown here once all are done.
  void ForEach(size_t n, const std::function<void(size_t)>& fn);

 private:
  struct Job;
  void Work();
  // Runs items of `job` until none is left to take.
  static void Drain(Job& job);

  const unsigned helpers_;
  std::mutex mu_;  // guards everything below
  std::condition_variable wake_;
  std::deque<std::shared_ptr<Job>> jobs_;  // jobs with items not yet taken
  std::vector<std::thread> threads_;
  bool stopping_ = false;
};

}  // namespace kvcached
