#include "bench/baseline.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <deque>
#include <thread>
#include <vector>

#include "bench/arena.h"
#include "bench/unique_fd.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kMemcpyBytes = 256 * kMiB;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// `streams` sender/receiver thread pairs, each over its own 127.0.0.1
// connection, all at once: the bytes every receiver got over the time from
// the first sender's start to the last receiver's end.
Result<double> TcpStreams(double seconds, unsigned streams) {
  streams = std::max(streams, 1u);
  std::deque<UniqueFd> listeners;  // UniqueFd does not move
  std::vector<sockaddr_in> addrs(streams);
  for (sockaddr_in& addr : addrs) {
    UniqueFd& listener = listeners.emplace_back(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    if (listener.get() < 0 ||
        bind(listener.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
        listen(listener.get(), 1) != 0 ||
        getsockname(listener.get(), reinterpret_cast<sockaddr*>(&addr), &len) != 0) {
      return Status(ErrorCode::TRANSFER_FAIL,
                    std::string("loopback listener for the TCP baseline: ") + std::strerror(errno));
    }
  }
  struct Pair {
    uint64_t received = 0;
    Clock::time_point start, end;
  };
  std::vector<Pair> pairs(streams);
  std::atomic<bool> failed{false};
  std::vector<std::thread> threads;
  for (unsigned i = 0; i < streams; ++i) {
    Pair& pair = pairs[i];
    int listener = listeners[i].get();
    const sockaddr_in& addr = addrs[i];
    threads.emplace_back([&pair, &failed, listener] {
      UniqueFd conn(accept(listener, nullptr, nullptr));
      std::vector<uint8_t> buf(kMiB, 1);
      ssize_t n = -1;
      while (conn.get() >= 0 && (n = read(conn.get(), buf.data(), buf.size())) > 0) {
        pair.received += static_cast<uint64_t>(n);
      }
      if (n < 0) failed = true;
      pair.end = Clock::now();
    });
    threads.emplace_back([&pair, &failed, listener, &addr, seconds] {
      UniqueFd conn(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
      pair.start = Clock::now();
      if (connect(conn.get(), reinterpret_cast<const sockaddr*>(&addr), sizeof addr) != 0) {
        failed = true;
        shutdown(listener, SHUT_RDWR);  // wakes the receiver's accept
        return;
      }
      std::vector<uint8_t> buf(kMiB, 2);
      while (!failed && Seconds(Clock::now() - pair.start) < seconds) {
        for (size_t off = 0; off < buf.size();) {
          ssize_t n = write(conn.get(), buf.data() + off, buf.size() - off);
          if (n <= 0) {
            failed = true;
            break;
          }
          off += static_cast<size_t>(n);
        }
      }
      shutdown(conn.get(), SHUT_WR);
    });
  }
  for (std::thread& t : threads) t.join();
  Clock::time_point first = pairs[0].start, last = pairs[0].end;
  uint64_t received = 0;
  for (const Pair& p : pairs) {
    first = std::min(first, p.start);
    last = std::max(last, p.end);
    received += p.received;
  }
  if (failed || last <= first) {
    return Status(ErrorCode::TRANSFER_FAIL, "the loopback TCP baseline could not be measured");
  }
  return static_cast<double>(received) / Seconds(last - first) / 1e9;
}

}  // namespace

Result<double> MeasureMemcpyGBps(int runs) {
  Result<Arena> src = Arena::Create(kMemcpyBytes, 1);
  if (!src.ok()) return src.status();
  Result<Arena> dst = Arena::Create(kMemcpyBytes, 2);
  if (!dst.ok()) return dst.status();
  double best = 1e9;
  for (int run = 0; run < std::max(runs, 1); ++run) {
    auto t0 = Clock::now();
    std::memcpy(dst->data(), src->data(), kMemcpyBytes);
    best = std::min(best, Seconds(Clock::now() - t0));
  }
  // Reading the result keeps the copies from being optimised away.
  if (std::memcmp(dst->data(), src->data(), 4096) != 0) {
    return Status(ErrorCode::INTERNAL_ERROR, "memcpy produced different bytes");
  }
  return static_cast<double>(kMemcpyBytes) / best / 1e9;
}

Result<double> MeasureLoopbackTcpGBps(double seconds, int runs, unsigned streams) {
  double best = 0;
  for (int run = 0; run < std::max(runs, 1); ++run) {
    Result<double> r = TcpStreams(seconds, streams);
    if (!r.ok()) return r.status();
    best = std::max(best, *r);
  }
  return best;
}

std::string TcpCongestionControl() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  char name[64] = {};
  socklen_t len = sizeof name - 1;
  if (fd.get() < 0 || getsockopt(fd.get(), IPPROTO_TCP, TCP_CONGESTION, name, &len) != 0 ||
      name[0] == '\0') {
    return "unknown";
  }
  return std::string(name, strnlen(name, len));
}

Result<Baseline> MeasureBaseline() {
  Baseline b;
  constexpr int kMemcpyRuns = 5, kTcpRuns = 3;
  Result<double> m = MeasureMemcpyGBps(kMemcpyRuns);
  if (!m.ok()) return m.status();
  Result<double> t = MeasureLoopbackTcpGBps(1.0, kTcpRuns);
  if (!t.ok()) return t.status();
  b.memcpy_gb_per_s = *m;
  b.loopback_tcp_gb_per_s = *t;
  b.memcpy_method =
      "1 thread, 256 MiB to 256 MiB, pre-faulted, best of " + std::to_string(kMemcpyRuns);
  b.loopback_tcp_method = "1 stream over 127.0.0.1, 1 MiB writes, 1 s, best of " +
                          std::to_string(kTcpRuns) + ", congestion control " +
                          TcpCongestionControl();
  return b;
}

}  // namespace kvcached
