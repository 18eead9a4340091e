#include "net/socket_util.h"

#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

#include "core/printable.h"
#include "core/segment_endpoint.h"

namespace kvcached {
namespace {

// Waits for a non-blocking connect to finish. 0 or an errno value.
int FinishConnect(int fd, Deadline deadline) {
  pollfd p{fd, POLLOUT, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, RemainingMs(deadline));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return ETIMEDOUT;
  if (rc < 0) return errno;
  int err = 0;
  socklen_t len = sizeof err;
  if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) != 0) return errno;
  return err;
}

// Waits until `fd` is ready for `events`: OK, or RPC_TIMEOUT.
Status Wait(int fd, short events, Deadline deadline, const std::string& peer, const char* what) {
  pollfd p{fd, events, 0};
  int rc;
  do {
    rc = ::poll(&p, 1, RemainingMs(deadline));
  } while (rc < 0 && errno == EINTR);
  if (rc == 0) return Status(ErrorCode::RPC_TIMEOUT, std::string("timed out ") + what + " " + peer);
  return Status::Ok();
}

}  // namespace

int RemainingMs(Deadline deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                  deadline - std::chrono::steady_clock::now())
                  .count();
  return left <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left, INT32_MAX));
}

Result<int> ConnectTcp(const std::string& address, Deadline deadline, const std::string& peer) {
  std::string host;
  uint16_t port = 0;
  if (Status st = SplitHostPort(address, host, port); !st.ok()) return st;
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  addrinfo* res = nullptr;
  std::string service = std::to_string(port);
  if (int rc = getaddrinfo(host.c_str(), service.c_str(), &hints, &res); rc != 0) {
    return Status(ErrorCode::RPC_FAIL, "cannot resolve " + peer + ": " + gai_strerror(rc));
  }
  std::string last_error = "no address";
  int connected = -1;
  for (addrinfo* ai = res; ai != nullptr && connected < 0; ai = ai->ai_next) {
    int fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
      last_error = std::strerror(errno);
      continue;
    }
    int err = ::connect(fd, ai->ai_addr, ai->ai_addrlen) == 0 ? 0 : errno;
    if (err == EINPROGRESS) err = FinishConnect(fd, deadline);
    if (err == 0) {
      int one = 1;
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      connected = fd;
    } else {
      last_error = err == ETIMEDOUT ? "connect timed out" : std::strerror(err);
      ::close(fd);
    }
  }
  freeaddrinfo(res);
  if (connected < 0) return Status(ErrorCode::RPC_FAIL, "cannot connect to " + peer + ": " + last_error);
  return connected;
}

Result<int> ConnectUnix(const std::string& path, Deadline deadline, const std::string& peer) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof addr.sun_path) {
    return Status(ErrorCode::INVALID_PARAMS, "Unix socket path of " + peer + " is empty or too long");
  }
  std::memcpy(addr.sun_path, path.data(), path.size());
  socklen_t len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + path.size());
  if (path[0] == '@') {
    addr.sun_path[0] = '\0';  // abstract namespace: no terminating NUL counted
  } else {
    len += 1;
  }
  int fd = ::socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status(ErrorCode::RPC_FAIL, std::string("socket: ") + std::strerror(errno));
  int err = ::connect(fd, reinterpret_cast<sockaddr*>(&addr), len) == 0 ? 0 : errno;
  if (err == EINPROGRESS || err == EAGAIN) err = FinishConnect(fd, deadline);
  if (err != 0) {
    ::close(fd);
    return Status(ErrorCode::RPC_FAIL, "cannot connect to " + peer + " at " + path + ": " +
                                           (err == ETIMEDOUT ? "timed out" : std::strerror(err)));
  }
  return fd;
}

Status SendAll(int fd, const void* data, size_t n, Deadline deadline, const std::string& peer) {
  const char* p = static_cast<const char*>(data);
  size_t sent = 0;
  while (sent < n) {
    ssize_t k = ::send(fd, p + sent, n - sent, MSG_NOSIGNAL);
    if (k > 0) {
      sent += static_cast<size_t>(k);
      continue;
    }
    if (k < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) {
      if (Status st = Wait(fd, POLLOUT, deadline, peer, "sending to"); !st.ok()) return st;
      continue;
    }
    return Status(ErrorCode::RPC_FAIL, "send to " + peer + " failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

Status RecvExact(int fd, void* data, size_t n, Deadline deadline, const std::string& peer) {
  char* p = static_cast<char*>(data);
  size_t got = 0;
  while (got < n) {
    ssize_t k = ::recv(fd, p + got, n - got, 0);
    if (k > 0) {
      got += static_cast<size_t>(k);
      continue;
    }
    if (k == 0) return Status(ErrorCode::RPC_FAIL, peer + " closed the connection");
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (Status st = Wait(fd, POLLIN, deadline, peer, "waiting for"); !st.ok()) return st;
      continue;
    }
    return Status(ErrorCode::RPC_FAIL, "receive from " + peer + " failed: " + std::strerror(errno));
  }
  return Status::Ok();
}

Status RecvFrame(int fd, FrameHeader& head, std::string& body, uint32_t max_body,
                 Deadline deadline, const std::string& peer) {
  unsigned char raw[kFrameHeaderBytes];
  if (Status st = RecvExact(fd, raw, sizeof raw, deadline, peer); !st.ok()) return st;
  if (Status st = DecodeHeader(raw, max_body, head); !st.ok()) {
    return Status(ErrorCode::RPC_FAIL, "bad frame from " + peer + ": " + st.message());
  }
  // The body grows as it arrives, never ahead of it by more than a chunk:
  // the header's length alone decides no allocation.
  constexpr size_t kChunk = 64u << 10;
  body.clear();
  while (body.size() < head.body_bytes) {
    size_t have = body.size();
    size_t n = std::min<size_t>(head.body_bytes - have, kChunk);
    body.resize(have + n);
    if (Status st = RecvExact(fd, body.data() + have, n, deadline, peer); !st.ok()) return st;
  }
  return Status::Ok();
}

Status RecvFrameWithFd(int fd, FrameHeader& head, std::string& body, int* fd_out,
                       size_t max_bytes, Deadline deadline, const std::string& peer) {
  *fd_out = -1;
  std::string buf(max_bytes, '\0');
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))];
  ssize_t n;
  while (true) {
    iovec iov{buf.data(), buf.size()};
    msghdr msg{};
    msg.msg_iov = &iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control;
    msg.msg_controllen = sizeof control;
    n = ::recvmsg(fd, &msg, MSG_CMSG_CLOEXEC);
    if (n >= 0) {
      for (cmsghdr* c = CMSG_FIRSTHDR(&msg); c != nullptr; c = CMSG_NXTHDR(&msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
            c->cmsg_len >= CMSG_LEN(sizeof(int))) {
          std::memcpy(fd_out, CMSG_DATA(c), sizeof(int));
        }
      }
      if (msg.msg_flags & (MSG_CTRUNC | MSG_TRUNC)) {
        if (*fd_out >= 0) ::close(*fd_out);
        *fd_out = -1;
        return Status(ErrorCode::RPC_FAIL, "oversized or truncated message from " + peer);
      }
      break;
    }
    if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR) {
      if (Status st = Wait(fd, POLLIN, deadline, peer, "waiting for"); !st.ok()) return st;
      continue;
    }
    return Status(ErrorCode::RPC_FAIL, "receive from " + peer + " failed: " + std::strerror(errno));
  }
  auto fail = [&](std::string why) {
    if (*fd_out >= 0) ::close(*fd_out);
    *fd_out = -1;
    return Status(ErrorCode::RPC_FAIL, std::move(why));
  };
  if (n == 0) return fail(peer + " closed the connection");
  if (static_cast<size_t>(n) < kFrameHeaderBytes) return fail("short frame from " + peer);
  if (Status st = DecodeHeader(reinterpret_cast<const unsigned char*>(buf.data()),
                               static_cast<uint32_t>(max_bytes), head);
      !st.ok()) {
    return fail("bad frame from " + peer + ": " + st.message());
  }
  if (head.body_bytes != static_cast<size_t>(n) - kFrameHeaderBytes) {
    return fail("frame from " + peer + " did not arrive in one message");
  }
  body.assign(buf.data() + kFrameHeaderBytes, head.body_bytes);
  return Status::Ok();
}

Status SendWithFd(int fd, const std::string& bytes, int pass_fd, const std::string& peer) {
  iovec iov{const_cast<char*>(bytes.data()), bytes.size()};
  alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr msg{};
  msg.msg_iov = &iov;
  msg.msg_iovlen = 1;
  msg.msg_control = control;
  msg.msg_controllen = sizeof control;
  cmsghdr* c = CMSG_FIRSTHDR(&msg);
  c->cmsg_level = SOL_SOCKET;
  c->cmsg_type = SCM_RIGHTS;
  c->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(c), &pass_fd, sizeof(int));
  ssize_t n;
  do {
    n = ::sendmsg(fd, &msg, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (n < 0 && errno == EINTR);
  if (n != static_cast<ssize_t>(bytes.size())) {
    return Status(ErrorCode::RPC_FAIL, "cannot send the segment to " + peer + ": " +
                                           (n < 0 ? std::strerror(errno) : "short write"));
  }
  return Status::Ok();
}

Result<HelloResponse> SayHello(int fd, const HelloRequest& hello, Deadline deadline,
                               const std::string& peer) {
  std::string frame = EncodeFrame(MsgType::kHello, 0, 0, hello);
  if (Status st = SendAll(fd, frame.data(), frame.size(), deadline, peer); !st.ok()) return st;
  FrameHeader head;
  std::string body;
  if (Status st = RecvFrame(fd, head, body, kMaxBodyBeforeHello, deadline, peer); !st.ok()) {
    return st;
  }
  if (head.flags & kFlagError) {
    ErrorBody err;
    (void)DecodeBody(body, err);
    return Status(ErrorCodeFromInt(err.code).value_or(ErrorCode::RPC_FAIL),
                  peer + " refused Hello: " + Printable(err.message));
  }
  HelloResponse res;
  if (Status d = DecodeBody(body, res); !d.ok()) {
    return Status(ErrorCode::RPC_FAIL, "bad Hello answer from " + peer + ": " + d.message());
  }
  if (res.code != 0) {
    return Status(ErrorCodeFromInt(res.code).value_or(ErrorCode::RPC_FAIL),
                  peer + " refused Hello: " + Printable(res.message));
  }
  return res;
}

bool PeerClosed(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  if (n > 0) return false;  // a frame is waiting: still open
  return n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

bool IdleConnectionAlive(int fd) {
  char c;
  ssize_t n = ::recv(fd, &c, 1, MSG_PEEK | MSG_DONTWAIT);
  return n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK);
}

}  // namespace kvcached
