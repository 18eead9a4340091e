// RpcServer: the TCP front end of the master's binary protocol
// (core/rpc_protocol.h, docs/protocol.md). It owns framing, the Hello
// handshake (protocol version, cluster token, identity), limits and
// connection bookkeeping; decoded requests go to an RpcDispatcher.
//
// Before Hello succeeds a peer can make the server hold at most one header
// and a kMaxBodyBeforeHello body (a few KB), and must finish within the
// hello timeout. Every frame's body is bounded by its kind
// (MaxRequestBodyBytes) before anything is allocated, and the body buffer
// grows only as bytes arrive. A malformed or oversized frame closes that
// connection with a log line; others are unaffected. After Hello a
// connection that sends no frame for the idle timeout is closed. Slots:
// at most max_connections in all, max_connections_per_peer pre-Hello and
// as many hello'd non-store connections per peer address, and
// reserved_store_connections of max_connections that only peers whose
// Hello says role store may take, so a flood of clients cannot stop stores
// from reconnecting. Requests on one connection may be pipelined;
// responses carry the request id.
//
// Threading: runs on the caller's io_context with any number of threads;
// one strand per connection. The dispatcher is called on connection strands
// concurrently and must be thread-safe. Notify() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/auth_token.h"
#include "core/metrics.h"
#include "core/rpc_protocol.h"
#include "core/status.h"

namespace kvcached {

struct RpcServerOptions {
  std::string name = "rpc";
  std::string host = "127.0.0.1";
  uint16_t port = 0;
  uint32_t max_body_bytes = kDefaultMaxBodyBytes;
  size_t max_connections = 4096;
  // Of max_connections, this many only store-role peers may take.
  size_t reserved_store_connections = 64;
  // Per peer IP address: pre-Hello connections, and hello'd non-store ones.
  size_t max_connections_per_peer = 256;
  std::chrono::milliseconds hello_timeout{10'000};
  // After Hello: a connection that sends no frame this long is closed.
  std::chrono::milliseconds idle_timeout{600'000};
  std::optional<AuthToken> token;
  // Asked about each Hello that passed the other checks (client id, the
  // digest of its owner proof): a non-empty answer refuses it with
  // ILLEGAL_CLIENT and that message. Called on an I/O thread.
  std::function<std::string(const std::string& client_id, uint64_t proof)> admit;
  std::string master_id;      // sent in HelloResponse
  uint64_t lease_ttl_ms = 0;  // sent in HelloResponse
};

// The identity a connection proved in Hello.
struct RpcPeer {
  uint64_t connection_id = 0;
  std::string address;  // "127.0.0.1:5000"
  PeerRole role = PeerRole::kClient;
  std::string client_id;
  std::string host_id;
  uint64_t proof = 0;  // OwnerProofDigest of the Hello's owner proof
  std::string tenant;  // canonical (core/tenant.h): "" is the default tenant
};

// Handles one decoded request: fills `response_body` (an encoded body) and
// returns the flags (0, or kFlagError with an ErrorBody). Returning a failed
// Status means the body did not decode: the connection is closed.
using RpcDispatcher = std::function<Status(const RpcPeer& peer, MsgType type, std::string_view body,
                                           std::string& response_body, uint16_t& flags)>;

// Set in a dispatcher's `flags` (never sent): the answer comes later,
// through RpcServer::Defer().
inline constexpr uint16_t kFlagDeferred = 0x8000;

class RpcServer {
  class Connection;
  struct State;

 public:
  RpcServer(boost::asio::io_context& ioc, RpcServerOptions options, RpcDispatcher dispatch,
            MetricsRegistry& metrics);
  ~RpcServer();
  RpcServer(const RpcServer&) = delete;
  RpcServer& operator=(const RpcServer&) = delete;

  // Binds and listens. INVALID_PARAMS (bad host), UNAVAILABLE_IN_CURRENT_STATUS
  // (bind failed).
  Status Start();
  std::string address() const;
  uint16_t port() const;
  bool bound_to_loopback() const;

  // Sends a notification frame to the newest connection of `client_id`
  // that said Hello; false when it has none.
  bool Notify(const std::string& client_id, std::string frame);
  // The same for a notification the owner acknowledges: the frame (type,
  // body) gets the connection's next sequence number as its request id.
  // The connection id and that number, or {0, 0} when `client_id` has no
  // connection. Calls for one connection must be serialised by the caller
  // (the sequence is the order the frames go out in).
  struct Sequenced {
    uint64_t connection_id = 0;
    uint64_t seq = 0;
  };
  Sequenced NotifySequenced(const std::string& client_id, MsgType type, std::string body);

  // An answer given later. A dispatcher that cannot answer at once calls
  // Defer() (on the dispatching thread, during the call), returns with
  // kFlagDeferred in `flags`, and later calls Reply once, from any thread;
  // the answer goes out on the request's connection with its request id
  // (responses to pipelined requests may then come out of order). A reply
  // to a connection that closed meanwhile is dropped.
  class DeferredReply {
   public:
    DeferredReply() = default;
    void Reply(uint16_t flags, std::string body);

   private:
    friend class RpcServer;
    std::weak_ptr<Connection> conn_;
    uint16_t type_ = 0;
    uint64_t request_id_ = 0;
  };
  static DeferredReply Defer();

  void BeginShutdown();
  size_t open_connections() const;

 private:
  // The newest hello'd connection of `client_id`, or null.
  std::shared_ptr<Connection> ConnectionOf(const std::string& client_id) const;
  std::shared_ptr<State> state_;
};

}  // namespace kvcached
