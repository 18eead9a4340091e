// ShmServer: the store's shared-memory path. Clients on the same host
// connect to a Unix socket, say Hello (with the cluster token when one is
// set), send ShmAttach, and receive the segment's memfd as SCM_RIGHTS with
// the segment's name and size; they then map the segment once and copy
// bytes directly. The connection then stays open, idle, for as long as the
// client keeps the mapping, so the client learns from the hang-up that the
// store went away and drops the mapping. Bounds are the client's to check
// against the size it was given: a peer only ever gets a mapping of the
// segment, never of anything else in the store.
//
// Who may attach: every accepted peer's credentials (SO_PEERCRED) are
// checked against `access` (ShmAccessPolicy: the store's uid, root, an
// optional group) before anything else; a refused peer's Hello is answered
// with an error frame (ILLEGAL_CLIENT, naming its uid and the policy), and
// the connection is closed. This holds for every kind of socket name.
//
// Socket names: "@name" is Linux's abstract namespace (nothing on disk, gone
// with the process, no permissions); anything else is a filesystem path: a
// stale socket there is replaced at start (a live one, or a file that is not
// a socket, is refused), the file gets mode 0600 (0660 and the policy's
// group when it has one), and it is removed at shutdown.
//
// Threading: the caller's io_context; each connection on its own strand.
#pragma once

#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/auth_token.h"
#include "core/metrics.h"
#include "core/status.h"
#include "store/shm_access_policy.h"

namespace kvcached {

struct ShmServerOptions {
  std::string path;     // "@kvcached/..." or a filesystem path
  std::string segment;  // the segment's name, sent with the fd
  size_t max_connections = 4096;  // one per attached client
  std::chrono::milliseconds session_timeout{5000};  // Hello to hand-over
  std::optional<AuthToken> token;
  ShmAccessPolicy access{::geteuid()};  // who may attach; also the socket file's group
};

class ShmServer {
 public:
  ShmServer(boost::asio::io_context& ioc, ShmServerOptions options, int memfd,
            uint64_t segment_bytes, MetricsRegistry& metrics);
  ~ShmServer();
  ShmServer(const ShmServer&) = delete;
  ShmServer& operator=(const ShmServer&) = delete;

  // UNAVAILABLE_IN_CURRENT_STATUS when the socket cannot be bound (a live
  // store holds the name, permissions) or its file cannot be given its mode
  // and group, naming the path.
  Status Start();
  const std::string& path() const;
  const ShmAccessPolicy& access() const;
  void BeginShutdown();
  size_t open_connections() const;

 private:
  class Connection;
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace kvcached
