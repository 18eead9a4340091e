// Test-only: a blocking client of a store's data port that speaks the frames
// over a raw socket, so tests can read and write a segment's bytes directly
// and also send what no real client would. Failures stop the test (doctest
// REQUIRE); a closed connection is reported, not failed.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <string>

#include <doctest/doctest.h>

#include "core/rpc_protocol.h"

namespace kvcached::testing {

// A blocking client of the store's data port, speaking the frames raw so
// tests can also send what no real client would.
class DataClient {
 public:
  explicit DataClient(const std::string& address) {
    size_t colon = address.rfind(':');
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
    inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
    REQUIRE(connect(fd_, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{10, 0};
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~DataClient() { close(fd_); }
  DataClient(const DataClient&) = delete;
  DataClient& operator=(const DataClient&) = delete;

  void SendFrame(MsgType type, const std::string& body, uint32_t body_bytes_override = 0) {
    FrameHeader h;
    h.type = static_cast<uint16_t>(type);
    h.request_id = ++id_;
    h.body_bytes = body_bytes_override ? body_bytes_override : static_cast<uint32_t>(body.size());
    std::string frame(kFrameHeaderBytes, '\0');
    EncodeHeader(h, reinterpret_cast<unsigned char*>(frame.data()));
    frame += body;
    REQUIRE(send(fd_, frame.data(), frame.size(), MSG_NOSIGNAL) ==
            static_cast<ssize_t>(frame.size()));
  }
  // Reads one answer; false when the store closed the connection instead.
  bool ReadFrame(FrameHeader& h, std::string& body) {
    unsigned char raw[kFrameHeaderBytes];
    if (!RecvAll(reinterpret_cast<char*>(raw), sizeof raw)) return false;
    REQUIRE(DecodeHeader(raw, UINT32_MAX, h).ok());
    body.resize(h.body_bytes);
    return RecvAll(body.data(), body.size());
  }
  void Hello(const std::string& token = "") {
    SendFrame(MsgType::kHello, EncodeBody(HelloRequest{1, "data-test", "h", token, "", ""}));
    FrameHeader h;
    std::string body;
    REQUIRE(ReadFrame(h, body));
    HelloResponse r;
    REQUIRE(DecodeBody(body, r).ok());
    REQUIRE(r.code == 0);
  }
  // Says `hello` and returns the answer's code: 0, a HelloResponse's
  // refusal, or an error frame's code.
  int32_t HelloCode(const HelloRequest& hello) {
    SendFrame(MsgType::kHello, EncodeBody(hello));
    FrameHeader h;
    std::string body;
    REQUIRE(ReadFrame(h, body));
    if (h.flags & kFlagError) return Code(h, body);
    HelloResponse r;
    REQUIRE(DecodeBody(body, r).ok());
    return r.code;
  }
  // Returns 0 or the refusal's error code.
  int32_t Write(uint64_t offset, const std::string& bytes, uint64_t announced = UINT64_MAX) {
    SendFrame(
        MsgType::kDataWrite,
        EncodeBody(DataRange{offset, announced == UINT64_MAX ? bytes.size() : announced}) + bytes);
    FrameHeader h;
    std::string body;
    REQUIRE(ReadFrame(h, body));
    return Code(h, body);
  }
  int32_t Read(uint64_t offset, uint64_t length, std::string& out) {
    SendFrame(MsgType::kDataRead, EncodeBody(DataRange{offset, length}));
    FrameHeader h;
    REQUIRE(ReadFrame(h, out));
    return Code(h, out);
  }
  bool Closed() {
    char c;
    return recv(fd_, &c, 1, 0) == 0;
  }

 private:
  static int32_t Code(const FrameHeader& h, const std::string& body) {
    if (h.flags & kFlagError) {
      ErrorBody e;
      REQUIRE(DecodeBody(body, e).ok());
      return e.code;
    }
    if (h.type == static_cast<uint16_t>(MsgType::kDataWrite)) {
      StatusResponse r;
      REQUIRE(DecodeBody(body, r).ok());
      return r.code;
    }
    return 0;
  }
  bool RecvAll(char* p, size_t n) {
    size_t got = 0;
    while (got < n) {
      ssize_t r = recv(fd_, p + got, n - got, 0);
      if (r <= 0) return false;
      got += static_cast<size_t>(r);
    }
    return true;
  }
  int fd_ = -1;
  uint64_t id_ = 0;
};

}  // namespace kvcached::testing
