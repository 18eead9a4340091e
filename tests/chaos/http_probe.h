// Test-only: a blocking HTTP/1.1 GET over loopback for the chaos test's
// probes (the master's and stores' /metrics, /get_all_segments,
// /api/v1/key). Every wait is bounded by the timeout. Stateless; any thread.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <optional>
#include <regex>
#include <string>

namespace kvcached::chaos {

class HttpProbe {
 public:
  struct Answer {
    int status = 0;
    std::string body;
  };

  // GET http://address/path ("127.0.0.1:9003"). nullopt when the server
  // cannot be reached or does not answer in full within `timeout`.
  static std::optional<Answer> Get(const std::string& address, const std::string& path,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(5)) {
    size_t colon = address.rfind(':');
    if (colon == std::string::npos) return std::nullopt;
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    if (inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr) != 1) {
      return std::nullopt;
    }
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return std::nullopt;
    timeval tv{static_cast<time_t>(timeout.count() / 1000),
               static_cast<suseconds_t>((timeout.count() % 1000) * 1000)};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    std::optional<Answer> out;
    if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0) {
      std::string req = "GET " + path + " HTTP/1.1\r\nHost: chaos\r\nConnection: close\r\n\r\n";
      if (send(fd, req.data(), req.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(req.size())) {
        std::string text;
        char buf[8192];
        ssize_t n;
        while ((n = recv(fd, buf, sizeof buf, 0)) > 0) text.append(buf, static_cast<size_t>(n));
        out = Parse(text);
      }
    }
    close(fd);
    return out;
  }

  // The value of the unlabelled Prometheus sample `name` in a /metrics
  // body, or nullopt.
  static std::optional<uint64_t> Sample(const std::string& metrics, const std::string& name) {
    std::smatch m;
    if (!std::regex_search(metrics, m, std::regex("(^|\n)" + name + " ([0-9.e+]+)"))) {
      return std::nullopt;
    }
    return static_cast<uint64_t>(std::stod(m[2]));
  }

 private:
  // A complete response: status line, headers, and a body of
  // Content-Length bytes (or up to the close).
  static std::optional<Answer> Parse(const std::string& text) {
    size_t head_end = text.find("\r\n\r\n");
    if (text.rfind("HTTP/1.", 0) != 0 || head_end == std::string::npos) return std::nullopt;
    Answer a;
    a.status = std::atoi(text.c_str() + 9);
    a.body = text.substr(head_end + 4);
    std::smatch m;
    std::string head = text.substr(0, head_end);
    if (std::regex_search(head, m, std::regex("[Cc]ontent-[Ll]ength: *([0-9]+)"))) {
      if (a.body.size() != std::stoull(m[1])) return std::nullopt;
    }
    return a;
  }
};

}  // namespace kvcached::chaos
