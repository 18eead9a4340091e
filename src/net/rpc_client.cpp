#include "net/rpc_client.h"

#include <poll.h>
#include <unistd.h>

#include <thread>

#include "net/socket_util.h"

namespace kvcached {

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
  std::string address = options_.address;
  if (options_.resolve_address) {
    Result<std::string> resolved = options_.resolve_address();
    if (!resolved.ok()) return resolved.status();
    address = *resolved;
  }
  connected_to_ = address;
  std::string peer = "master " + address;
  Result<int> fd = ConnectTcp(address, Clock::now() + options_.connect_timeout, peer);
  if (!fd.ok()) return fd.status();
  fd_ = *fd;
  Result<HelloResponse> hello =
      SayHello(fd_, options_.hello, Clock::now() + options_.call_timeout, peer);
  if (!hello.ok()) {
    CloseLocked();
    return hello.status();
  }
  hello_ = *hello;
  ++connections_;
  return Status::Ok();
}

uint64_t RpcClient::connections() const {
  std::lock_guard<std::mutex> lock(mu_);
  return connections_;
}

Status RpcClient::EnsureConnectedLocked() {
  if (fd_ >= 0) return Status::Ok();
  const bool window = options_.reconnect_window.count() > 0;
  const Deadline give_up = Clock::now() + options_.reconnect_window;
  const auto cap = window ? std::min(options_.backoff_max, std::chrono::milliseconds(200))
                          : options_.backoff_max;
  std::chrono::milliseconds backoff = options_.backoff_initial;
  Status st;
  for (int attempt = 0;; ++attempt) {
    if (attempt > 0) {
      std::this_thread::sleep_for(window ? std::min(backoff, std::chrono::duration_cast<
                                                                 std::chrono::milliseconds>(
                                                                 give_up - Clock::now()))
                                         : backoff);
      backoff = std::min(backoff * 2, cap);
    }
    st = ConnectLocked();
    // A refusal by the master (token, version) will not change by retrying.
    if (st.ok() || st.code() == ErrorCode::ILLEGAL_CLIENT ||
        st.code() == ErrorCode::INVALID_VERSION || st.code() == ErrorCode::INVALID_PARAMS) {
      return st;
    }
    bool attempts_left = attempt + 1 < std::max(1, options_.connect_attempts);
    if (!attempts_left && (!window || Clock::now() >= give_up)) return st;
  }
}

Status RpcClient::ReadOneFrame(FrameHeader& head, std::string& body, Deadline deadline) {
  return RecvFrame(fd_, head, body, kDefaultMaxBodyBytes * 4u, deadline, PeerName());
}

std::string RpcClient::PeerName() const {
  return "master " + (connected_to_.empty() ? options_.address : connected_to_);
}

void RpcClient::Dispatch(const FrameHeader& head, const std::string& body) {
  if (head.type != static_cast<uint16_t>(MsgType::kTableUpdate) || !options_.on_table_update) {
    return;
  }
  TableUpdate update;
  if (!DecodeBody(body, update).ok()) return;
  options_.on_table_update(update);
  if (options_.ack_table_updates && head.request_id != 0 && fd_ >= 0) {
    // On the connection the update came on, in the middle of whatever this
    // thread is waiting for: the master does not answer it.
    std::string wire = FrameWithBody(MsgType::kTableUpdateAck, 0, next_request_id_++,
                                     EncodeBody(TableUpdateAck{head.request_id}));
    if (Status st = SendAll(fd_, wire.data(), wire.size(), Clock::now() + options_.call_timeout,
                            PeerName());
        !st.ok()) {
      CloseLocked();  // the caller's read fails next and reconnects
    }
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
                            std::vector<std::string>& out, Clock::time_point* sent) {
  std::lock_guard<std::mutex> lock(mu_);
  // The master closes connections idle past its --idle-timeout (and a
  // restarted master has closed them all): one it already hung up on is
  // replaced before the request is sent, so that no request, idempotent or
  // not, is lost to it.
  if (fd_ >= 0 && PeerClosed(fd_)) CloseLocked();
  bool reused = fd_ >= 0;
  Status st = RoundTripLocked(type, bodies, out, sent);
  // A connection that went stale while idle (the master restarted) fails on
  // first use. Requests that change nothing are sent again on a fresh one;
  // others report the failure, since the master may have acted on them.
  bool idempotent = type == MsgType::kExistKey || type == MsgType::kGetReplicaList ||
                    type == MsgType::kGetSize || type == MsgType::kPing;
  if (!st.ok() && st.code() == ErrorCode::RPC_FAIL && reused && idempotent) {
    st = RoundTripLocked(type, bodies, out, sent);
  }
  // A deposed leader refuses every request without applying it: ask the
  // resolver for the leader now and send it there.
  // (A master's refusal leaves the connection open; a failed connect does not.)
  if (st.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS && options_.resolve_address &&
      fd_ >= 0) {
    CloseLocked();
    st = RoundTripLocked(type, bodies, out, sent);
    if (st.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS) CloseLocked();
  }
  return st;
}

Status RpcClient::SendOneWay(MsgType type, const std::string& body) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ >= 0 && PeerClosed(fd_)) CloseLocked();
  if (Status st = EnsureConnectedLocked(); !st.ok()) return st;
  std::string wire = FrameWithBody(type, 0, next_request_id_++, body);
  Status st =
      SendAll(fd_, wire.data(), wire.size(), Clock::now() + options_.call_timeout, PeerName());
  if (!st.ok()) CloseLocked();
  return st;
}

Status RpcClient::RoundTripLocked(MsgType type, const std::vector<std::string>& bodies,
                                  std::vector<std::string>& out, Clock::time_point* sent) {
  if (Status st = EnsureConnectedLocked(); !st.ok()) return st;
  if (sent) *sent = Clock::now();
  Deadline deadline = Clock::now() + options_.call_timeout;
  uint64_t first_id = next_request_id_;
  std::string wire;
  for (const std::string& body : bodies) wire += FrameWithBody(type, 0, next_request_id_++, body);
  Status st = SendAll(fd_, wire.data(), wire.size(), deadline, PeerName());
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

Status RpcClient::PollNotifications(std::chrono::milliseconds wait, int wake_fd) {
  std::lock_guard<std::mutex> lock(mu_);
  if (fd_ < 0) return Status(ErrorCode::RPC_FAIL, "not connected");
  Deadline deadline = Clock::now() + wait;
  while (true) {
    pollfd p[2] = {{fd_, POLLIN, 0}, {wake_fd, POLLIN, 0}};
    int rc = ::poll(p, wake_fd >= 0 ? 2 : 1, RemainingMs(deadline));
    if (rc <= 0) return Status::Ok();
    if (wake_fd >= 0 && (p[1].revents & POLLIN) && !(p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
      return Status::Ok();
    }
    FrameHeader head;
    std::string body;
    // A frame is arriving: give it the call timeout to arrive whole.
    Status st = ReadOneFrame(head, body, Clock::now() + options_.call_timeout);
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
