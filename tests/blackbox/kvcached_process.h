// Test-only: starts the real `kvcached` binary (path in $KVCACHED_BIN) with a
// NOTIFY_SOCKET owned by the test, waits for READY=1, and stops or kills it.
// The readiness datagram's STATUS names the listening addresses. Also the
// small HTTP helpers the tests read /metrics with.
#pragma once

#include <arpa/inet.h>
#include <dirent.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <memory>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <utility>
#include <vector>

namespace kvcached::testing {

// Polls `pred` until it holds or `limit` passes; for outcomes that have no
// readiness signal (a remount, an expiry). Returns the last answer.
template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return pred();
}

// GET http://address/path with a raw socket; returns the body ("" on error).
inline std::string HttpGet(const std::string& address, const std::string& path) {
  size_t colon = address.rfind(':');
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
  timeval tv{5, 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!send(fd, req.data(), req.size(), MSG_NOSIGNAL);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

// The value of a Prometheus sample without labels at http://admin/metrics, or -1.
inline long Metric(const std::string& admin, const std::string& name) {
  std::smatch m;
  std::string text = HttpGet(admin, "/metrics");
  if (!std::regex_search(text, m, std::regex("\n" + name + " ([0-9]+)"))) return -1;
  return std::stol(m[1]);
}

// The value of the Prometheus sample `name` whose labels include
// `label` (e.g. reason="per_peer"), or -1.
inline long LabeledMetric(const std::string& admin, const std::string& name,
                          const std::string& label) {
  std::smatch m;
  std::string text = HttpGet(admin, "/metrics");
  std::regex re("\n" + name + "\\{[^}]*" + label + "[^}]*\\} ([0-9]+)");
  if (!std::regex_search(text, m, re)) return -1;
  return std::stol(m[1]);
}

// Runs `kvcached ARGS...` to its end in a clean environment (stray
// KVCACHED_*/MOONCAKE_* settings must not count) plus `env` ("NAME=value"),
// for start-ups that fail: its exit code and its output.
inline std::pair<int, std::string> RunKvcached(const std::vector<std::string>& env,
                                               const std::vector<std::string>& args) {
  std::string cmd = "env -i PATH=/usr/bin:/bin";
  for (const std::string& e : env) cmd += " " + e;
  const char* bin = std::getenv("KVCACHED_BIN");
  if (bin == nullptr) throw std::runtime_error("KVCACHED_BIN is not set");
  cmd += " " + std::string(bin);
  for (const std::string& a : args) cmd += " " + a;
  FILE* p = popen((cmd + " 2>&1").c_str(), "r");
  if (p == nullptr) throw std::runtime_error("popen failed");
  std::string out;
  char buf[512];
  while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
  int rc = pclose(p);
  return {WEXITSTATUS(rc), out};
}

class KvcachedProcess {
 public:
  // Throws std::runtime_error (with the process's stderr) when it exits or
  // does not become ready within 20 s.
  explicit KvcachedProcess(std::vector<std::string> args, std::vector<std::string> extra_env = {}) {
    const char* bin = std::getenv("KVCACHED_BIN");
    if (bin == nullptr) throw std::runtime_error("KVCACHED_BIN is not set");
    char dir_template[] = "/tmp/kvcached-bb-XXXXXX";
    dir_ = mkdtemp(dir_template);
    notify_path_ = dir_ + "/notify.sock";
    log_path_ = dir_ + "/stderr.log";
    notify_fd_ = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    sockaddr_un addr{};
    addr.sun_family = AF_UNIX;
    std::snprintf(addr.sun_path, sizeof addr.sun_path, "%s", notify_path_.c_str());
    if (bind(notify_fd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      throw std::runtime_error("cannot bind the notify socket");
    }
    pid_ = fork();
    if (pid_ == 0) {
      // A process group of its own: when the test runs in a group the shell
      // has orphaned (started in the background), the exit of any other
      // member would have the kernel send SIGHUP and SIGCONT to a child the
      // test stopped on purpose, undoing the freeze.
      setpgid(0, 0);
      int log = ::open(log_path_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
      dup2(log, 2);
      std::vector<std::string> env_strings = {"NOTIFY_SOCKET=" + notify_path_,
                                              "PATH=/usr/bin:/bin"};
      for (auto& e : extra_env) env_strings.push_back(e);
      std::vector<char*> argv = {const_cast<char*>(bin)};
      for (auto& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      std::vector<char*> envp;
      for (auto& e : env_strings) envp.push_back(e.data());
      envp.push_back(nullptr);
      execve(bin, argv.data(), envp.data());
      _exit(127);
    }
    auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
    while (std::chrono::steady_clock::now() < deadline) {
      timeval tv{0, 200'000};
      setsockopt(notify_fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
      char buf[4096];
      ssize_t n = recv(notify_fd_, buf, sizeof buf - 1, 0);
      if (n > 0) {
        std::string msg(buf, static_cast<size_t>(n));
        if (msg.find("READY=1") != std::string::npos) {
          size_t at = msg.find("STATUS=");
          status_ = at == std::string::npos ? "" : msg.substr(at + 7);
          return;
        }
        continue;
      }
      int wstatus = 0;
      if (waitpid(pid_, &wstatus, WNOHANG) == pid_) {
        pid_ = -1;
        throw std::runtime_error("kvcached exited before ready:\n" + Log());
      }
    }
    throw std::runtime_error("kvcached did not become ready:\n" + Log());
  }

  ~KvcachedProcess() {
    if (pid_ > 0) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    close(notify_fd_);
    std::system(("rm -rf " + dir_).c_str());
  }

  // The first "host:port" after `word` in the readiness STATUS.
  std::string Address(const std::string& word) const {
    std::smatch m;
    std::regex re(word + R"( (?:http://|tcp://)?([0-9.]+:[0-9]+))");
    if (!std::regex_search(status_, m, re))
      throw std::runtime_error("no " + word + " in " + status_);
    return m[1];
  }
  // The readiness STATUS text, as the process sent it.
  const std::string& status() const { return status_; }
  uint16_t Port(const std::string& word) const {
    std::string a = Address(word);
    return static_cast<uint16_t>(std::stoi(a.substr(a.rfind(':') + 1)));
  }

  // Sends `sig` and returns the exit code (128+signal when killed by one).
  int Stop(int sig = SIGTERM) {
    kill(pid_, sig);
    int wstatus = 0;
    waitpid(pid_, &wstatus, 0);
    pid_ = -1;
    return WIFEXITED(wstatus) ? WEXITSTATUS(wstatus) : 128 + WTERMSIG(wstatus);
  }

  // Sends `sig` without waiting (SIGSTOP / SIGCONT to freeze and thaw it).
  void Signal(int sig) const {
    if (pid_ > 0) kill(pid_, sig);
  }

  // True once every thread of the process is stopped (SIGSTOP takes effect
  // asynchronously: kill() returns before the threads have stopped).
  bool Stopped() const {
    if (pid_ <= 0) return false;
    std::string tasks = "/proc/" + std::to_string(pid_) + "/task";
    std::unique_ptr<DIR, int (*)(DIR*)> dir(opendir(tasks.c_str()), closedir);
    if (!dir) return false;
    int seen = 0;
    while (dirent* e = readdir(dir.get())) {
      if (e->d_name[0] == '.') continue;
      std::ifstream stat(tasks + "/" + e->d_name + "/stat");
      std::string text((std::istreambuf_iterator<char>(stat)), std::istreambuf_iterator<char>());
      size_t paren = text.rfind(')');
      if (paren == std::string::npos || paren + 2 >= text.size()) return false;
      char state = text[paren + 2];
      if (state != 'T' && state != 't') return false;
      ++seen;
    }
    return seen > 0;
  }

  pid_t pid() const { return pid_; }

  // The process's resident memory (VmRSS in /proc/<pid>/status), in KiB; -1
  // when it cannot be read.
  long RssKiB() const {
    std::ifstream status("/proc/" + std::to_string(pid_) + "/status");
    std::string line;
    while (std::getline(status, line)) {
      if (line.rfind("VmRSS:", 0) == 0) return std::stol(line.substr(6));
    }
    return -1;
  }

  std::string Log() const {
    std::ifstream in(log_path_);
    std::stringstream s;
    s << in.rdbuf();
    return s.str();
  }

 private:
  pid_t pid_ = -1;
  int notify_fd_ = -1;
  std::string dir_, notify_path_, log_path_, status_;
};

}  // namespace kvcached::testing
