// Test-only: one process the chaos test started, a `kvcached` daemon or a
// worker. Its stdout and stderr go to a log file that outlives it (the
// chaos test keeps the logs of every process it ran); a daemon gets a
// NOTIFY_SOCKET of its own and WaitReady() returns the STATUS of its
// READY=1 datagram. Everything the child needs is prepared before fork(),
// so starting one from a process with threads is safe. Not thread-safe:
// one owner thread.
#pragma once

#include <dirent.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace kvcached::chaos {

class ChildProcess {
 public:
  // Starts argv[0] with `argv` and exactly `env`, its output appended to
  // `log_path`. With a non-empty `notify_path`, binds a datagram socket
  // there and passes it as NOTIFY_SOCKET. Throws std::runtime_error.
  ChildProcess(const std::vector<std::string>& argv, std::vector<std::string> env,
               const std::string& log_path, const std::string& notify_path = "")
      : log_path_(log_path) {
    if (!notify_path.empty()) {
      notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
      sockaddr_un addr{};
      addr.sun_family = AF_UNIX;
      if (notify_path.size() >= sizeof addr.sun_path) {
        throw std::runtime_error("notify socket path too long: " + notify_path);
      }
      unlink(notify_path.c_str());
      std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notify_path.c_str());
      if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
        throw std::runtime_error("cannot bind the notify socket " + notify_path);
      }
      env.push_back("NOTIFY_SOCKET=" + notify_path);
    }
    int log = ::open(log_path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (log < 0) throw std::runtime_error("cannot open " + log_path);
    std::vector<char*> cargv, cenv;
    for (const std::string& a : argv) cargv.push_back(const_cast<char*>(a.c_str()));
    cargv.push_back(nullptr);
    for (const std::string& e : env) cenv.push_back(const_cast<char*>(e.c_str()));
    cenv.push_back(nullptr);
    pid_ = fork();
    if (pid_ < 0) throw std::runtime_error("fork failed");
    if (pid_ == 0) {  // only async-signal-safe calls from here on
      // A process group of its own: when the test runs in a group the shell
      // has orphaned (started in the background), the exit of any other
      // member would have the kernel send SIGHUP and SIGCONT to a child the
      // test stopped on purpose, undoing the freeze.
      setpgid(0, 0);
      dup2(log, 1);
      dup2(log, 2);
      execve(cargv[0], cargv.data(), cenv.data());
      _exit(127);
    }
    ::close(log);
  }

  ~ChildProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    if (notify_fd_ >= 0) ::close(notify_fd_);
  }
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  // Waits for READY=1 and returns the STATUS= text. Throws, with the end of
  // the log, when the process exits first or `guard` passes (a hang guard,
  // far above any start-up time).
  std::string WaitReady(std::chrono::seconds guard) {
    auto deadline = std::chrono::steady_clock::now() + guard;
    while (std::chrono::steady_clock::now() < deadline) {
      timeval tv{0, 100'000};
      setsockopt(notify_fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      ssize_t n = recv(notify_fd_, buf, sizeof buf - 1, 0);
      if (n > 0) {
        std::string msg(buf, static_cast<size_t>(n));
        if (msg.find("READY=1") == std::string::npos) continue;
        size_t at = msg.find("STATUS=");
        if (at == std::string::npos) return "";
        size_t end = msg.find('\n', at);
        return msg.substr(at + 7, end == std::string::npos ? std::string::npos : end - at - 7);
      }
      if (auto code = Poll()) {
        throw std::runtime_error("process exited with " + std::to_string(*code) +
                                 " before it was ready; log " + log_path_ + ":\n" + LogTail());
      }
    }
    throw std::runtime_error("process not ready after " + std::to_string(guard.count()) +
                             " s; log " + log_path_ + ":\n" + LogTail());
  }

  void Signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }

  // Sends `sig` and reaps the process; returns its exit code (128+signal
  // when a signal ended it).
  int StopWith(int sig) {
    if (pid_ <= 0) return exit_code_;
    kill(pid_, sig);
    return Reap(0);
  }

  // Reaps the process if it has exited; its exit code, or nullopt while it runs.
  std::optional<int> Poll() {
    if (pid_ <= 0) return exit_code_;
    int code = Reap(WNOHANG);
    if (pid_ > 0) return std::nullopt;
    return code;
  }

  // Waits up to `guard` for the process to exit by itself.
  std::optional<int> Wait(std::chrono::seconds guard) {
    auto deadline = std::chrono::steady_clock::now() + guard;
    while (std::chrono::steady_clock::now() < deadline) {
      if (auto code = Poll()) return code;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return Poll();
  }

  // True once every thread of the process is stopped (SIGSTOP takes effect
  // asynchronously).
  bool Stopped() const {
    if (pid_ <= 0) return false;
    std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
    DIR* dir = opendir(tasks.c_str());
    if (dir == nullptr) return false;
    int seen = 0;
    bool all = true;
    while (dirent* e = readdir(dir)) {
      if (e->d_name[0] == '.') continue;
      std::ifstream stat(tasks + "/" + e->d_name + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      size_t paren = text.rfind(')');
      if (paren == std::string::npos || paren + 2 >= text.size()) {
        all = false;
        break;
      }
      char state = text[paren + 2];
      if (state != 'T' && state != 't') {
        all = false;
        break;
      }
      ++seen;
    }
    closedir(dir);
    return all && seen > 0;
  }

  pid_t pid() const { return pid_; }
  const std::string& log_path() const { return log_path_; }

  // The last `bytes` of the log.
  std::string LogTail(size_t bytes = 4000) const {
    std::ifstream in(log_path_);
    std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    return text.size() > bytes ? text.substr(text.size() - bytes) : text;
  }

 private:
  int Reap(int flags) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, flags);
    if (r != pid_) return -1;
    pid_ = -1;
    exit_code_ = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
    return exit_code_;
  }

  pid_t pid_ = -1;
  int exit_code_ = -1;
  int notify_fd_ = -1;
  std::string log_path_;
};

}  // namespace kvcached::chaos
