// Test-only: one real etcd member (Debian's etcd-server, /usr/bin/etcd) on
// free loopback ports in a temp dir, for the tests of the code that speaks
// etcd (the etcd client, leader election, the metadata client's etcd
// backend). Killed and removed when destroyed; not thread-safe.
#pragma once

#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "kvcached_process.h"

namespace kvcached::testing {

constexpr const char* kEtcdBinary = "/usr/bin/etcd";
constexpr const char* kEtcdMissing =
    "/usr/bin/etcd is missing: apt-get install etcd-server "
    "(scripts/quickstart.sh test installs it)";

// A loopback port free now (nothing listens on it: connections are refused).
inline uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a);
  socklen_t len = sizeof a;
  getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len);
  close(fd);
  return ntohs(a.sin_port);
}

class EtcdMember {
 public:
  EtcdMember() {
    char tmpl[] = "/tmp/kvcached-etcd-XXXXXX";
    dir_ = mkdtemp(tmpl);
    client_ = "127.0.0.1:" + std::to_string(FreePort());
    std::string peer = "127.0.0.1:" + std::to_string(FreePort());
    std::vector<std::string> args = {kEtcdBinary,
                                     "--name=m0",
                                     "--data-dir=" + dir_ + "/data",
                                     "--listen-client-urls=http://" + client_,
                                     "--advertise-client-urls=http://" + client_,
                                     "--listen-peer-urls=http://" + peer,
                                     "--initial-advertise-peer-urls=http://" + peer,
                                     "--initial-cluster=m0=http://" + peer};
    pid_ = fork();
    if (pid_ == 0) {
      std::string log = dir_ + "/etcd.log";
      if (!freopen(log.c_str(), "w", stderr)) _exit(126);
      std::vector<char*> argv;
      for (std::string& a : args) argv.push_back(a.data());
      argv.push_back(nullptr);
      execv(argv[0], argv.data());
      _exit(127);
    }
    // Polls /health (it answers "true" once the member serves) until then,
    // or until etcd exits (a port taken under us: the log says why).
    ready_ = WaitFor(
                 [&] {
                   if (waitpid(pid_, nullptr, WNOHANG) == pid_) return exited_ = true;
                   return HttpGet(client_, "/health").find("\"true\"") != std::string::npos;
                 },
                 std::chrono::milliseconds(30000)) &&
             !exited_;
  }
  ~EtcdMember() {
    if (!exited_) {
      kill(pid_, SIGKILL);
      waitpid(pid_, nullptr, 0);
    }
    std::string rm = "rm -rf '" + dir_ + "'";
    (void)!std::system(rm.c_str());
  }
  EtcdMember(const EtcdMember&) = delete;
  EtcdMember& operator=(const EtcdMember&) = delete;

  bool ready() const { return ready_; }
  void Kill() {
    if (!exited_) kill(pid_, SIGKILL), waitpid(pid_, nullptr, 0), exited_ = true;
  }
  // "127.0.0.1:PORT", the client URL without its scheme.
  const std::string& client() const { return client_; }

 private:
  std::string dir_, client_;
  pid_t pid_ = -1;
  bool ready_ = false;
  bool exited_ = false;
};

}  // namespace kvcached::testing
