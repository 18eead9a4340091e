// UniqueFd: a file descriptor that closes itself; for the benchmarks' own
// sockets (the baseline's loopback stream, bench_data's notify socket).
// Not copyable; -1 means none.
#pragma once

#include <unistd.h>

namespace kvcached {

class UniqueFd {
 public:
  explicit UniqueFd(int fd = -1) : fd_(fd) {}
  ~UniqueFd() {
    if (fd_ >= 0) close(fd_);
  }
  UniqueFd(const UniqueFd&) = delete;
  UniqueFd& operator=(const UniqueFd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

}  // namespace kvcached
