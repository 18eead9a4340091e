// Child processes for the bench programs: a daemon started with its own
// NOTIFY_SOCKET and waited for until it says READY=1 (`kvcached master`,
// `kvcached store`, and `redis-server --supervised systemd`), and a watchdog
// that turns a hang into a clear failure.
#pragma once

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <iterator>
#include <mutex>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "bench/unique_fd.h"

extern char** environ;

namespace kvcached::bench {

using Clock = std::chrono::steady_clock;

// A daemon run as our child. READY=1 on our NOTIFY_SOCKET says it
// listens; its STATUS (kvcached's) names the addresses. Throws std::runtime_error (with
// the daemon's stderr) when it exits or is not ready within 20 s. The child
// has PR_SET_PDEATHSIG, so it never outlives the bench; the destructor stops
// it with SIGTERM (SIGKILL after 10 s) and removes its files.
class Daemon {
 public:
  Daemon(const std::string& bin, const std::string& dir, const std::string& name,
         std::vector<std::string> args)
      : notify_path_(dir + "/" + name + ".sock"), log_path_(dir + "/" + name + ".log") {
    UniqueFd notify(socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0));
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notify_path_.c_str());
    if (bind(notify.get(), reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("cannot bind " + notify_path_);
    }
    timeval tv{0, 200'000};
    setsockopt(notify.get(), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    // Everything the child needs is built before fork: only exec-safe calls after it.
    int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    std::vector<std::string> env = {"NOTIFY_SOCKET=" + notify_path_};
    for (char** e = environ; *e != nullptr; ++e) {
      if (std::strncmp(*e, "NOTIFY_SOCKET=", 14) != 0) env.emplace_back(*e);
    }
    args.insert(args.begin(), bin);
    std::vector<char*> argv, envp;
    for (std::string& a : args) argv.push_back(a.data());
    for (std::string& e : env) envp.push_back(e.data());
    argv.push_back(nullptr);
    envp.push_back(nullptr);
    pid_t parent = getpid();
    pid_ = fork();
    if (pid_ == 0) {
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      if (getppid() != parent) _exit(127);
      dup2(log, 1);
      dup2(log, 2);
      execve(argv[0], argv.data(), envp.data());
      _exit(127);
    }
    close(log);
    if (pid_ < 0) throw std::runtime_error("fork failed");
    auto deadline = Clock::now() + std::chrono::seconds(20);
    while (Clock::now() < deadline) {
      char buf[4096];
      ssize_t n = recv(notify.get(), buf, sizeof buf - 1, 0);
      std::string msg(buf, n > 0 ? static_cast<size_t>(n) : 0);
      if (msg.find("READY=1") != std::string::npos) {
        size_t at = msg.find("STATUS=");
        status_ = at == std::string::npos ? "" : msg.substr(at + 7);
        return;
      }
      if (waitpid(pid_, nullptr, WNOHANG) == pid_) {
        pid_ = -1;
        Fail(name + " exited before it was ready");
      }
    }
    Fail(name + " was not ready within 20 s");
  }

  ~Daemon() { Cleanup(); }
  Daemon(const Daemon&) = delete;
  Daemon& operator=(const Daemon&) = delete;

  // The "host:port" after `word` in the readiness STATUS ("master rpc 127.0.0.1:4321 ...").
  std::string Address(const std::string& word) const {
    size_t at = status_.find(word + " ");
    if (at == std::string::npos) throw std::runtime_error("no '" + word + "' in: " + status_);
    std::string a = status_.substr(at + word.size() + 1);
    a = a.substr(0, a.find(' '));
    if (size_t scheme = a.find("://"); scheme != std::string::npos) a = a.substr(scheme + 3);
    return a;
  }

  // SIGTERM, then SIGKILL after 10 s. Returns the exit code (128+signal when
  // killed), or 0 when already stopped.
  int Stop() {
    if (pid_ <= 0) return 0;
    kill(pid_, SIGTERM);
    int wstatus = 0;
    auto deadline = Clock::now() + std::chrono::seconds(10);
    while (waitpid(pid_, &wstatus, WNOHANG) != pid_) {
      if (Clock::now() > deadline) {
        kill(pid_, SIGKILL);
        waitpid(pid_, &wstatus, 0);
        break;
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    pid_ = -1;
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  }

  // The last `max_bytes` of the daemon's stdout and stderr.
  std::string Log(size_t max_bytes = 4000) const {
    std::ifstream in(log_path_);
    std::string s((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return s.size() > max_bytes ? "..." + s.substr(s.size() - max_bytes) : s;
  }
  const std::string& log_path() const { return log_path_; }

 private:
  void Cleanup() {
    (void)Stop();
    unlink(notify_path_.c_str());
    unlink(log_path_.c_str());
  }
  // The constructor's way out: no child or files outlive a failed start.
  [[noreturn]] void Fail(const std::string& what) {
    std::string log = Log();
    Cleanup();
    throw std::runtime_error(what + "; its output:\n" + log);
  }

  pid_t pid_ = -1;
  std::string notify_path_, log_path_, status_;
};

// Turns a hang into a clear failure: when a phase runs past its limit, it
// says which and exits 1 (the daemons die with us; their logs are kept).
// Enter() may be called from any thread; mu_ guards the phase and deadline.
class Watchdog {
 public:
  explicit Watchdog(std::string logs) : logs_(std::move(logs)), thread_([this] { Run(); }) {}
  ~Watchdog() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
  }
  void Enter(std::string phase, std::chrono::seconds limit) {
    std::lock_guard<std::mutex> lock(mu_);
    phase_ = std::move(phase);
    limit_ = limit;
    deadline_ = Clock::now() + limit;
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mu_);
    while (!cv_.wait_for(lock, std::chrono::seconds(1), [this] { return stop_; })) {
      if (Clock::now() > deadline_) {
        std::fprintf(stderr, "HANG: '%s' made no progress for %lld s; giving up. Daemon logs: %s\n",
                     phase_.c_str(), static_cast<long long>(limit_.count()), logs_.c_str());
        std::_Exit(1);
      }
    }
  }

  std::string logs_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::string phase_ = "start";
  std::chrono::seconds limit_{0};
  Clock::time_point deadline_ = Clock::time_point::max();
  bool stop_ = false;
  std::thread thread_;  // last: starts after the fields it reads
};

}  // namespace kvcached::bench
