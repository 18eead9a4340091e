#include "net/rpc_client.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <thread>

namespace kvcached {
namespace {

int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, INT32_MAX));
}

// Splits "host:port" or "[v6]:port".
bool SplitHostPort(const std::string& address, std::string& host, std::string& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string::npos || colon + 1 >= address.size()) return false;
  host = address.substr(0, colon);
  port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return !host.empty();
}

}  // namespace

RpcClient::RpcClient(RpcClientOptions options) : options_(std::move(options)) {}

RpcClient::~RpcClient() { Close(); }

bool RpcClient::connected() const {
  std::lock_guard<std::mutex> lock(mu_);
  return fd_ >= 0;
}

HelloResponse RpcClient::hello() const {
  std::lock_guard<std::mutex> lock(mu_);
  return hello_;
}

void RpcClient::Close() {
  std::lock_guard<std::mutex> lock(mu_);
  CloseLocked();
}

void RpcClient::CloseLocked() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Status RpcClient::Connect() {
  std::lock_guard<std::mutex> lock(mu_);
  CloseLocked();
  return ConnectLocked();
}

Status RpcClient::ConnectLocked() {
  std::string address = options_.resolve_address ? options_.resolve_address() : options_.address;
  std::string host, port;
  if (!SplitHostPort(address, host, port)) {
    return Status(ErrorCode::INVALID_PARAMS, "master address '" + address + "' is not host:port");
  }
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0) {
    return Status(ErrorCode::RPC_FAIL,
                  "cannot resolve master '" + address + "': " + gai_strerror(rc));
  }
  Deadline deadline = std::chrono::steady_clock::now() + options_.connect_timeout;
  std::string last_error = "no address";
  for (addrinfo* ai = res; ai != nullptr && fd_ < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) continue;
    int rc = ::connect(fd, ai->ai_addr, ai->ai_addrlen);
    if (rc != 0 && errno == EINPROGRESS) {
      pollfd p{fd, POLLOUT, 0};
      rc = ::poll(&p, 1, RemainingMs(deadline));
      int err = 0;
      socklen_t len = sizeof err;
      if (rc == 1 && getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == 0 && err == 0) {
        rc = 0;
      } else {
        last_error = rc == 0 ? "connect timed out" : std::strerror(err ? err : errno);
        rc = -1;
      }
    } else if (rc != 0) {
      last_error = std::strerror(errno);
    }
    if (rc == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      fd_ = fd;
    } else {
      ::close(fd);
    }
  }
  freeaddrinfo(res);
  if (fd_ < 0) {
    return Status(ErrorCode::RPC_FAIL, "cannot connect to master " + address + ": " + last_error);
  }
  // Hello.
  uint64_t id = next_request_id_++;
  Deadline call_deadline = std::chrono::steady_clock::now() + options_.call_timeout;
  Status st = SendAll(EncodeFrame(MsgType::kHello, 0, id, options_.hello), call_deadline);
  FrameHeader head;
  std::string body;
  if (st.ok()) st = ReadFrame(head, body, call_deadline);
  if (!st.ok()) {
    CloseLocked();
    return st;
  }
  if (head.flags & kFlagError) {
    ErrorBody err;
    (void)DecodeBody(body, err);
    CloseLocked();
    return Status(ErrorCodeFromInt(err.code).value_or(ErrorCode::RPC_FAIL),
                  "master refused Hello: " + err.message);
  }
  HelloResponse hello;
  if (Status d = DecodeBody(body, hello); !d.ok()) {
    CloseLocked();
    return Status(ErrorCode::RPC_FAIL, "bad Hello answer: " + d.message());
  }
  if (hello.code != 0) {
    CloseLocked();
    return Status(ErrorCodeFromInt(hello.code).value_or(ErrorCode::RPC_FAIL),
                  "master refused Hello: " + hello.message);
  }
  hello_ = std::move(hello);
  return Status::Ok();
}

Status RpcClient::EnsureConnectedLocked() {
  if (fd_ >= 0) return Status::Ok();
  std::chrono::milliseconds backoff = options_.backoff_initial;
  Status st;
  for (int attempt = 0; attempt < std::max(1, options_.connect_attempts); ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(backoff);
      backoff = std::min(backoff * 2, options_.backoff_max);
    }
    st = ConnectLocked();
    // A refusal by the master (token, version) will not change by retrying.
    if (st.ok() || st.code() == ErrorCode::ILLEGAL_CLIENT ||
        st.code() == ErrorCode::INVALID_VERSION || st.code() == ErrorCode::INVALID_PARAMS) {
      return st;
    }
  }
  return st;
}

Status RpcClient::SendAll(const std::string& bytes, Deadline deadline) {
  size_t sent = 0;
  while (sent < bytes.size()) {
    ssize_t n = ::send(fd_, bytes.data() + sent, bytes.size() - sent, MSG_NOSIGNAL);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      pollfd p{fd_, POLLOUT, 0};
      int rc = ::poll(&p, 1, RemainingMs(deadline));
      if (rc == 0) return Status(ErrorCode::RPC_TIMEOUT, "timed out sending to the master");
      continue;
    }
    return Status(ErrorCode::RPC_FAIL,
                  std::string("send to master failed: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Status RpcClient::RecvExact(char* buf, size_t n, Deadline deadline) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(fd_, buf + got, n - got, 0);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r == 0) return Status(ErrorCode::RPC_FAIL, "the master closed the connection");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      pollfd p{fd_, POLLIN, 0};
      int rc = ::poll(&p, 1, RemainingMs(deadline));
      if (rc == 0) return Status(ErrorCode::RPC_TIMEOUT, "timed out waiting for the master");
      continue;
    }
    return Status(ErrorCode::RPC_FAIL,
                  std::string("receive from master failed: ") + std::strerror(errno));
  }
  return Status::Ok();
}

Status RpcClient::ReadOneFrame(FrameHeader& head, std::string& body, Deadline deadline) {
  unsigned char raw[kFrameHeaderBytes];
  if (Status st = RecvExact(reinterpret_cast<char*>(raw), sizeof raw, deadline); !st.ok()) {
    return st;
  }
  if (Status st = DecodeHeader(raw, kDefaultMaxBodyBytes * 4u, head); !st.ok()) {
    return Status(ErrorCode::RPC_FAIL, "bad frame from the master: " + st.message());
  }
  body.resize(head.body_bytes);
  return RecvExact(body.data(), body.size(), deadline);
}

void RpcClient::Dispatch(const FrameHeader& head, const std::string& body) {
  if (head.type == static_cast<uint16_t>(MsgType::kTableUpdate) && options_.on_table_update) {
    TableUpdate update;
    if (DecodeBody(body, update).ok()) options_.on_table_update(update);
  }
}

Status RpcClient::ReadFrame(FrameHeader& head, std::string& body, Deadline deadline) {
  while (true) {
    if (Status st = ReadOneFrame(head, body, deadline); !st.ok()) return st;
    if (!(head.flags & kFlagNotification)) return Status::Ok();
    Dispatch(head, body);
  }
}

Status RpcClient::RoundTrip(MsgType type, std::vector<std::string> bodies,
                            std::vector<std::string>& out) {
  std::lock_guard<std::mutex> lock(mu_);
  bool reused = fd_ >= 0;
  Status st = RoundTripLocked(type, bodies, out);
  // A connection that went stale while idle (the master restarted) fails on
  // first use. Requests that change nothing are sent again on a fresh one;
  // others report the failure, since the master may have acted on them.
  bool idempotent = type == MsgType::kExistKey || type == MsgType::kGetReplicaList ||
                    type == MsgType::kGetSize || type == MsgType::kPing;
  if (!st.ok() && st.code() == ErrorCode::RPC_FAIL && reused && idempotent) {
    st = RoundTripLocked(type, bodies, out);
  }
  return st;
}

Status RpcClient::RoundTripLocked(MsgType type, const std::vector<std::string>& bodies,
                                  std::vector<std::string>& out) {
  if (Status st = EnsureConnectedLocked(); !st.ok()) return st;
  Deadline deadline = std::chrono::steady_clock::now() + options_.call_timeout;
  uint64_t first_id = next_request_id_;
  std::string wire;
  for (const std::string& body : bodies) {
    FrameHeader h;
    h.type = static_cast<uint16_t>(type);
    h.request_id = next_request_id_++;
    h.body_bytes = static_cast<uint32_t>(body.size());
    size_t at = wire.size();
    wire.resize(at + kFrameHeaderBytes);
    EncodeHeader(h, reinterpret_cast<unsigned char*>(wire.data() + at));
    wire += body;
  }
  Status st = SendAll(wire, deadline);
  out.assign(bodies.size(), std::string());
  std::vector<bool> seen(bodies.size(), false);
  size_t pending = bodies.size();
  Status request_error;
  while (st.ok() && pending > 0) {
    FrameHeader head;
    std::string body;
    st = ReadFrame(head, body, deadline);
    if (!st.ok()) break;
    uint64_t idx = head.request_id - first_id;
    if (head.request_id < first_id || idx >= bodies.size() || seen[idx]) {
      st = Status(ErrorCode::RPC_FAIL, "the master answered an unknown request id");
      break;
    }
    seen[idx] = true;
    --pending;
    if (head.flags & kFlagError) {
      // The master refused this request as a whole; the connection is fine.
      ErrorBody err;
      (void)DecodeBody(body, err);
      if (request_error.ok()) {
        request_error = Status(ErrorCodeFromInt(err.code).value_or(ErrorCode::RPC_FAIL),
                               err.message.empty() ? "request refused" : err.message);
      }
      continue;
    }
    out[idx] = std::move(body);
  }
  if (!st.ok()) {
    CloseLocked();  // responses may be half read: start clean
    return st;
  }
  return request_error;
}

Status RpcClient::PollNotifications(std::chrono::milliseconds wait) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return Status(ErrorCode::RPC_FAIL, "not connected");
  Deadline deadline = std::chrono::steady_clock::now() + wait;
  while (true) {
    pollfd p{fd_, POLLIN, 0};
    int rc = ::poll(&p, 1, RemainingMs(deadline));
    if (rc <= 0) return Status::Ok();
    FrameHeader head;
    std::string body;
    // A frame is arriving: give it the call timeout to arrive whole.
    Status st = ReadOneFrame(head, body, std::chrono::steady_clock::now() + options_.call_timeout);
    if (st.ok() && !(head.flags & kFlagNotification)) {
      st = Status(ErrorCode::RPC_FAIL, "unexpected response from the master");
    }
    if (!st.ok()) {
      CloseLocked();
      return st;
    }
    Dispatch(head, body);
  }
}

}  // namespace kvcached
