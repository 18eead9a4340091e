// Blocking socket primitives with deadlines, for the clients that speak the
// RPC frame format from a caller's thread (RpcClient, the client library's
// transports). Sockets are non-blocking underneath; every wait is a poll()
// bounded by the deadline, so no call outlives it. `peer` names the other
// side in error messages ("master 10.0.0.1:50051", "store s1 (tcp 1.2.3.4:5)").
// Free functions over plain fds; thread-safe as far as the fd's use is.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "core/rpc_protocol.h"
#include "core/status.h"

namespace kvcached {

using Deadline = std::chrono::steady_clock::time_point;

// Milliseconds left until `deadline`, clamped to [0, INT32_MAX], for poll().
int RemainingMs(Deadline deadline);

// A connected non-blocking TCP socket (TCP_NODELAY, close-on-exec) to
// "host:port". INVALID_PARAMS for a malformed address; RPC_FAIL with the
// reason (refused, unresolvable, timed out).
Result<int> ConnectTcp(const std::string& address, Deadline deadline, const std::string& peer);
// The same for a Unix stream socket; "@name" is the abstract namespace.
Result<int> ConnectUnix(const std::string& path, Deadline deadline, const std::string& peer);

// RPC_TIMEOUT at the deadline; RPC_FAIL when the peer closes or errs.
Status SendAll(int fd, const void* data, size_t n, Deadline deadline, const std::string& peer);
Status RecvExact(int fd, void* data, size_t n, Deadline deadline, const std::string& peer);

// Reads one frame: header (body limited to max_body) and body.
Status RecvFrame(int fd, FrameHeader& head, std::string& body, uint32_t max_body,
                 Deadline deadline, const std::string& peer);

// Reads one frame that may carry one file descriptor as SCM_RIGHTS
// (received into *fd_out, close-on-exec; -1 when none came). The frame must
// arrive in one message of at most `max_bytes`.
Status RecvFrameWithFd(int fd, FrameHeader& head, std::string& body, int* fd_out,
                       size_t max_bytes, Deadline deadline, const std::string& peer);
// Sends `bytes` in one message with `pass_fd` attached. The socket must be
// able to take the whole message at once (a small frame on a fresh socket).
Status SendWithFd(int fd, const std::string& bytes, int pass_fd, const std::string& peer);

// Sends Hello and reads its answer; the peer's refusal comes back as its
// code (ILLEGAL_CLIENT for a bad token, INVALID_VERSION) with its message.
Result<HelloResponse> SayHello(int fd, const HelloRequest& hello, Deadline deadline,
                               const std::string& peer);

// True when the peer has closed (or reset) the connection. Unlike
// IdleConnectionAlive, a frame waiting to be read counts as open.
bool PeerClosed(int fd);

// True when a pooled idle connection is still open: nothing to read and no
// EOF or error pending.
bool IdleConnectionAlive(int fd);

}  // namespace kvcached
