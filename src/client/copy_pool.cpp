#include "client/copy_pool.h"

#include <atomic>
#include <exception>
#include <system_error>

namespace kvcached {

struct CopyPool::Job {
  const std::function<void(size_t)>* fn = nullptr;
  size_t n = 0;
  std::atomic<size_t> next{0};  // the next item to take
  std::mutex mu;                // guards finished, error; with all_done
  std::condition_variable all_done;
  size_t finished = 0;
  std::exception_ptr error;
};

CopyPool::CopyPool(unsigned helpers) : helpers_(helpers) {}

CopyPool::~CopyPool() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  wake_.notify_all();
  for (std::thread& t : threads_) t.join();
}

void CopyPool::Drain(Job& job) {
  size_t done = 0;
  std::exception_ptr error;
  for (size_t i; (i = job.next.fetch_add(1)) < job.n;) {
    try {
      (*job.fn)(i);
    } catch (...) {
      if (!error) error = std::current_exception();
    }
    ++done;
  }
  if (done == 0) return;
  std::lock_guard<std::mutex> lock(job.mu);
  job.finished += done;
  if (error && !job.error) job.error = error;
  if (job.finished == job.n) job.all_done.notify_all();
}

void CopyPool::Work() {
  std::unique_lock<std::mutex> lock(mu_);
  while (true) {
    wake_.wait(lock, [this] { return stopping_ || !jobs_.empty(); });
    if (stopping_) return;
    std::shared_ptr<Job> job = jobs_.front();
    lock.unlock();
    Drain(*job);
    lock.lock();
    // Every item is taken: the job leaves the queue (if its caller has
    // not already removed it).
    if (!jobs_.empty() && jobs_.front() == job) jobs_.pop_front();
  }
}

void CopyPool::ForEach(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (helpers_ == 0 || n == 1) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  auto job = std::make_shared<Job>();
  job->fn = &fn;
  job->n = n;
  {
    std::lock_guard<std::mutex> lock(mu_);
    try {
      while (threads_.size() < helpers_) threads_.emplace_back([this] { Work(); });
    } catch (const std::system_error&) {
      // No more threads to be had: those there are share the work, or the
      // caller does it alone.
    }
    if (!threads_.empty()) jobs_.push_back(job);
  }
  wake_.notify_all();
  Drain(*job);
  {
    std::lock_guard<std::mutex> lock(mu_);
    for (auto it = jobs_.begin(); it != jobs_.end(); ++it) {
      if (*it == job) {
        jobs_.erase(it);
        break;
      }
    }
  }
  std::unique_lock<std::mutex> lock(job->mu);
  job->all_done.wait(lock, [&] { return job->finished == job->n; });
  if (job->error) std::rethrow_exception(job->error);
}

}  // namespace kvcached
