// DataServer: the store's TCP data port. After a Hello (with the cluster
// token when one is set) a peer writes bytes into the segment (DataWrite:
// received straight into the segment memory, no intermediate buffer) and
// reads them back (DataRead: sent straight from it). Every (offset,
// length) is checked against the segment, overflow-safe, before a byte
// moves: an out-of-range request is refused with an error frame, logged
// and counted, and the connection goes on; a malformed frame closes the
// connection. A peer may also ask for an RDMA queue pair (RdmaConnect); it
// lives as long as the connection that asked. The frame format is the RPC
// protocol's (docs/protocol.md).
//
// Limits: every frame kind's body is bounded from its header
// (MaxRequestBodyBytes) and only request heads are buffered, so a peer
// cannot make the store allocate from a length it announces; after Hello a
// connection with no request for the idle timeout is closed (unless it holds
// RDMA queue pairs); at most max_connections in all and
// max_connections_per_peer from one IP address.
//
// Threading: the caller's io_context, any number of threads, one strand
// per connection. Requests on one connection are served in order. The
// segment memory must outlive the server.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/auth_token.h"
#include "core/metrics.h"
#include "core/rdma_link.h"
#include "core/status.h"

namespace kvcached {

struct DataServerOptions {
  std::string name = "data";
  std::string segment_name;  // told to clients in the Hello answer, with the size
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  size_t max_connections = 4096;
  size_t max_connections_per_peer = 256;  // from one IP address
  std::chrono::milliseconds hello_timeout{10'000};
  // After Hello: a connection that sends no request this long is closed.
  std::chrono::milliseconds idle_timeout{600'000};
  std::optional<AuthToken> token;
  // Serves RdmaConnect when set (the store has RDMA): the queue pairs a
  // connection set up are released when it closes.
  std::shared_ptr<RdmaAcceptor> rdma;
};

class DataServer {
 public:
  DataServer(boost::asio::io_context& ioc, DataServerOptions options, uint8_t* segment,
             uint64_t segment_bytes, MetricsRegistry& metrics);
  ~DataServer();
  DataServer(const DataServer&) = delete;
  DataServer& operator=(const DataServer&) = delete;

  Status Start();
  std::string address() const;
  uint16_t port() const;
  bool bound_to_loopback() const;
  bool bound_to_wildcard() const;  // 0.0.0.0 or ::
  void BeginShutdown();
  size_t open_connections() const;

 private:
  class Connection;
  struct State;
  std::shared_ptr<State> state_;
};

}  // namespace kvcached
