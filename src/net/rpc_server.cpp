#include "net/rpc_server.h"

#include <algorithm>
#include <atomic>
#include <deque>
#include <mutex>
#include <unordered_map>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/hello_policy.h"
#include "core/printable.h"
#include "core/tenant.h"
#include "net/connection_registry.h"
#include "net/tcp_listener.h"

namespace kvcached {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

// A connection whose unsent frames pass this is too slow to keep: it is
// closed, and its owner reconnects and remounts.
constexpr size_t kMaxQueuedBytes = 256u << 20;

// A frame body is read in pieces of at most this, the buffer growing by
// what arrived: a peer that announces a big body and sends nothing costs
// the server no more than this.
constexpr size_t kBodyChunkBytes = 64u << 10;
// A body buffer larger than this is given back after its frame is served.
constexpr size_t kKeepBodyBytes = 1u << 20;

// The IP address of a connected socket ("?" when it is already gone): the
// unit of the per-peer connection limit.
std::string PeerIp(const tcp::socket& socket) {
  beast::error_code ec;
  tcp::endpoint ep = socket.remote_endpoint(ec);
  return ec ? "?" : ep.address().to_string();
}

}  // namespace

namespace {
// The request being dispatched on this thread, for RpcServer::Defer().
thread_local RpcServer::DeferredReply* current_request = nullptr;
}  // namespace

struct RpcServer::State : std::enable_shared_from_this<RpcServer::State> {
  State(net::io_context& io, RpcServerOptions o, RpcDispatcher d, MetricsRegistry& m)
      : ioc(io),
        options(std::move(o)),
        dispatch(std::move(d)),
        listener(std::make_shared<TcpListener>(io, options.name)),
        open(m.GetGauge("kvcached_rpc_open_connections", "Open RPC connections",
                        {{"server", options.name}})),
        accepted(m.GetCounter("kvcached_rpc_connections_total", "RPC connections accepted",
                              {{"server", options.name}})),
        refused_max(m.GetCounter("kvcached_rpc_connections_refused_total",
                                 "RPC connections refused by a connection limit",
                                 {{"server", options.name}, {"reason", "max_connections"}})),
        refused_per_peer(m.GetCounter("kvcached_rpc_connections_refused_total",
                                      "RPC connections refused by a connection limit",
                                      {{"server", options.name}, {"reason", "per_peer"}})),
        refused_reserved(m.GetCounter("kvcached_rpc_connections_refused_total",
                                      "RPC connections refused by a connection limit",
                                      {{"server", options.name}, {"reason", "reserved"}})),
        idle_closed(m.GetCounter("kvcached_rpc_idle_closed_total",
                                 "RPC connections closed after --idle-timeout without a frame",
                                 {{"server", options.name}})),
        malformed(m.GetCounter("kvcached_rpc_malformed_frames_total",
                               "RPC connections closed for a malformed or oversized frame",
                               {{"server", options.name}})),
        hello_failures(m.GetCounter("kvcached_rpc_hello_failures_total",
                                    "Hello refused: wrong version, bad token or no identity",
                                    {{"server", options.name}})) {}

  // The slot a connection holds in the limits: pre-Hello, or after Hello
  // a store or a non-store (client, admin) connection.
  enum class Slot { kNone, kPending, kStore, kClient };
  struct PeerSlots {
    size_t pending = 0;
    size_t clients = 0;
  };

  void OnAccept(tcp::socket socket);
  // A pre-Hello slot for a peer at `ip`; false over the per-peer limit.
  bool TakePending(const std::string& ip);
  // Turns the pending slot of a peer that said Hello as `role` into a store
  // or client slot. On refusal returns why (the slot stays pending until
  // the connection closes) and counts it.
  std::string Promote(const std::string& ip, PeerRole role, Slot& slot);
  void Release(const std::string& ip, Slot slot);
  // What this server requires of a Hello: every role, the token if set.
  HelloPolicy hello_policy() const {
    return HelloPolicy{options.token ? &*options.token : nullptr, kMasterRoles, kRpcVersion,
                       "master"};
  }

  net::io_context& ioc;
  const RpcServerOptions options;
  const RpcDispatcher dispatch;
  std::shared_ptr<TcpListener> listener;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};

  ConnectionRegistry<Connection> connections;
  std::mutex mu;  // guards by_client
  std::unordered_map<std::string, std::weak_ptr<Connection>> by_client;
  std::mutex slots_mu;  // guards per_peer, clients
  std::unordered_map<std::string, PeerSlots> per_peer;
  size_t clients = 0;  // hello'd non-store connections

  Gauge& open;
  Counter& accepted;
  Counter& refused_max;
  Counter& refused_per_peer;
  Counter& refused_reserved;
  Counter& idle_closed;
  Counter& malformed;
  Counter& hello_failures;
};

// One peer. Every member is touched only on the connection's strand.
class RpcServer::Connection : public std::enable_shared_from_this<RpcServer::Connection> {
 public:
  Connection(std::shared_ptr<State> st, tcp::socket&& socket, uint64_t id)
      : st_(std::move(st)), stream_(std::move(socket)) {
    peer_.connection_id = id;
    beast::error_code ec;
    tcp::endpoint ep = stream_.socket().remote_endpoint(ec);
    peer_.address = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    ip_ = PeerIp(stream_.socket());
    ConfigurePeerSocket(stream_.socket());
    st_->open.Add(1);
  }

  ~Connection() {
    st_->Release(ip_, slot_);
    st_->open.Add(-1);
    st_->connections.Remove(peer_.connection_id);
    std::lock_guard<std::mutex> lock(st_->mu);
    auto it = st_->by_client.find(peer_.client_id);
    if (it != st_->by_client.end() && it->second.expired()) st_->by_client.erase(it);
  }

  const std::string& ip() const { return ip_; }
  const std::string& address() const { return peer_.address; }
  // On the accepting thread, before Start().
  bool TakePendingSlot() {
    if (!st_->TakePending(ip_)) return false;
    slot_ = State::Slot::kPending;
    return true;
  }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(self->st_->options.hello_timeout);
      self->ReadHeader();
    });
  }

  // A notification numbered in this connection's sequence (the caller
  // serialises calls, so the numbers go out in order).
  uint64_t SendSequenced(MsgType type, std::string body) {
    uint64_t seq = ++sequence_;
    Send(FrameFor(static_cast<uint16_t>(type), kFlagNotification, seq, body));
    return seq;
  }
  uint64_t id() const { return peer_.connection_id; }
  void SendResponse(uint16_t type, uint16_t flags, uint64_t request_id, std::string body) {
    Send(FrameFor(type, flags, request_id, body));
  }

  void Send(std::string frame) {
    net::post(stream_.get_executor(), [self = shared_from_this(), f = std::move(frame)]() mutable {
      self->Enqueue(std::move(f));
    });
  }

  void Stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      // Answers already queued still go out; the read side stops now.
      self->close_after_write_ = true;
      if (!self->writing_) self->Close();
    });
  }

 private:
  void ReadHeader() {
    // Before Hello the hello timeout set at Start() runs; after it, each
    // frame restarts the idle timeout.
    if (hello_done_) stream_.expires_after(st_->options.idle_timeout);
    net::async_read(
        stream_, net::buffer(header_),
        [self = shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    if (body_.capacity() > kKeepBodyBytes) {
      std::string().swap(body_);
    } else {
      body_.clear();
    }
    if (Status st = DecodeHeader(header_, UINT32_MAX, head_); !st.ok()) {
      return Malformed(st.message());
    }
    if (HelloDecision v = CheckFrameVersion(head_.version, st_->hello_policy()); !v.accepted()) {
      st_->hello_failures.Inc();
      spdlog::warn("{} conn=#{} from {}: {}", st_->options.name, peer_.connection_id, peer_.address,
                   v.reason);
      return ReplyErrorAndClose(v.code, v.reason);
    }
    if ((head_.flags & (kFlagResponse | kFlagNotification | kFlagError)) != 0) {
      return Malformed("a peer sent a frame flagged as a response or notification");
    }
    uint32_t limit = hello_done_ ? st_->options.max_body_bytes : kMaxBodyBeforeHello;
    if (Status st = CheckRequestBodyLimit(head_, limit); !st.ok()) {
      // Refused from the header alone: nothing was allocated for the body.
      st_->malformed.Inc();
      spdlog::warn("{} conn=#{} from {} (client '{}'): {}; closing", st_->options.name,
                   peer_.connection_id, peer_.address, shown_id_, st.message());
      return ReplyErrorAndClose(ErrorCode::INVALID_PARAMS, st.message());
    }
    ReadBody();
  }

  // Reads the body a piece at a time, growing the buffer by what arrived.
  void ReadBody() {
    size_t have = body_.size();
    if (have == head_.body_bytes) return OnBody();
    size_t chunk = std::min<size_t>(head_.body_bytes - have, kBodyChunkBytes);
    body_.resize(have + chunk);
    stream_.async_read_some(net::buffer(body_.data() + have, chunk),
                            [self = shared_from_this(), have](beast::error_code ec, size_t n) {
                              self->body_.resize(have + n);
                              if (ec) return self->OnReadError(ec);
                              self->ReadBody();
                            });
  }

  void OnBody() {
    MsgType type = static_cast<MsgType>(head_.type);
    if (!hello_done_) {
      if (type != MsgType::kHello) {
        st_->hello_failures.Inc();
        spdlog::warn("{} conn=#{} from {}: {} before Hello; closing", st_->options.name,
                     peer_.connection_id, peer_.address, MsgTypeName(type));
        return ReplyErrorAndClose(ErrorCode::ILLEGAL_CLIENT, "send Hello first");
      }
      return OnHello();
    }
    if (type == MsgType::kHello) {
      Enqueue(ErrorFrame(ErrorCode::INVALID_PARAMS, "Hello was already done on this connection"));
      return ReadHeader();
    }
    std::string response;
    uint16_t flags = 0;
    DeferredReply later;
    later.conn_ = weak_from_this();
    later.type_ = head_.type;
    later.request_id_ = head_.request_id;
    current_request = &later;
    Status st = st_->dispatch(peer_, type, body_, response, flags);
    current_request = nullptr;
    if (!st.ok()) return Malformed(std::string(MsgTypeName(type)) + ": " + st.message());
    if (!IsOneWay(type) && !(flags & kFlagDeferred)) {
      Enqueue(Frame(head_.type, static_cast<uint16_t>(kFlagResponse | flags), response));
    }
    ReadHeader();
  }

  void OnHello() {
    HelloRequest hello;
    if (Status st = DecodeBody(body_, hello); !st.ok()) return Malformed("Hello: " + st.message());
    // The common rules first (docs/protocol.md, "Connection and handshake");
    // then what only the master checks: the owner proof, the client slots.
    HelloDecision d = DecideHello(head_.version, hello, st_->hello_policy());
    if (!d.accepted() && d.error_frame) {
      st_->hello_failures.Inc();
      spdlog::warn("{} conn=#{} from {}: Hello refused: {}", st_->options.name, peer_.connection_id,
                   peer_.address, d.reason);
      return ReplyErrorAndClose(d.code, d.reason);
    }
    if (d.accepted() && st_->options.admit) {
      if (std::string why =
              st_->options.admit(hello.client_id, OwnerProofDigest(hello.owner_proof));
          !why.empty()) {
        d = {ErrorCode::ILLEGAL_CLIENT, std::move(why)};
      }
    }
    if (d.accepted()) {
      if (std::string why = st_->Promote(ip_, static_cast<PeerRole>(hello.role), slot_);
          !why.empty()) {
        d = {ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, std::move(why)};
      }
    }
    HelloResponse accepted;
    accepted.master_id = st_->options.master_id;
    accepted.lease_ttl_ms = st_->options.lease_ttl_ms;
    HelloResponse res = AnswerHello(d, std::move(accepted));
    if (!d.accepted()) {
      st_->hello_failures.Inc();
      spdlog::warn("{} conn=#{} from {} (client '{}'): Hello refused: {}", st_->options.name,
                   peer_.connection_id, peer_.address, Printable(hello.client_id), d.reason);
      Enqueue(Frame(head_.type, kFlagResponse, EncodeBody(res)));
      close_after_write_ = true;
      return;
    }
    hello_done_ = true;
    peer_.role = static_cast<PeerRole>(hello.role);
    peer_.client_id = std::move(hello.client_id);
    peer_.host_id = std::move(hello.host_id);
    peer_.proof = OwnerProofDigest(hello.owner_proof);
    peer_.tenant = CanonicalTenant(hello.tenant).value();  // DecideHello checked it
    {
      std::lock_guard<std::mutex> lock(st_->mu);
      st_->by_client[peer_.client_id] = weak_from_this();
    }
    shown_id_ = Printable(peer_.client_id);
    spdlog::info("{} conn=#{} from {}: hello from client '{}' on host '{}' (role {}{}{})",
                 st_->options.name, peer_.connection_id, peer_.address, shown_id_,
                 Printable(peer_.host_id), RoleName(hello.role),
                 peer_.tenant.empty() ? "" : ", tenant ", peer_.tenant);
    Enqueue(Frame(head_.type, kFlagResponse, EncodeBody(res)));
    ReadHeader();
  }

  std::string Frame(uint16_t type, uint16_t flags, std::string_view body) const {
    return FrameFor(type, flags, head_.request_id, body);
  }
  static std::string FrameFor(uint16_t type, uint16_t flags, uint64_t request_id,
                              std::string_view body) {
    FrameHeader h;
    h.type = type;
    h.flags = flags;
    h.request_id = request_id;
    h.body_bytes = static_cast<uint32_t>(body.size());
    std::string frame(kFrameHeaderBytes, '\0');
    EncodeHeader(h, reinterpret_cast<unsigned char*>(frame.data()));
    frame.append(body);
    return frame;
  }

  std::string ErrorFrame(ErrorCode code, const std::string& message) const {
    return Frame(head_.type, kFlagResponse | kFlagError,
                 EncodeBody(ErrorBody{static_cast<int32_t>(code), message}));
  }

  void ReplyErrorAndClose(ErrorCode code, const std::string& message) {
    Enqueue(ErrorFrame(code, message));
    close_after_write_ = true;
  }

  void Malformed(const std::string& why) {
    st_->malformed.Inc();
    spdlog::warn("{} conn=#{} from {} (client '{}'): malformed frame: {}; closing",
                 st_->options.name, peer_.connection_id, peer_.address, shown_id_, why);
    Close();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == beast::error::timeout && hello_done_) {
      st_->idle_closed.Inc();
      spdlog::info("{} conn=#{} from {} (client '{}'): idle for {} ms (--idle-timeout); closing",
                   st_->options.name, peer_.connection_id, peer_.address, shown_id_,
                   st_->options.idle_timeout.count());
    } else if (ec == beast::error::timeout) {
      spdlog::info("{} conn=#{} from {}: no Hello within {} ms; closing", st_->options.name,
                   peer_.connection_id, peer_.address, st_->options.hello_timeout.count());
    } else if (ec != net::error::eof && ec != net::error::operation_aborted) {
      SPDLOG_DEBUG("{} conn=#{} read failed: {}", st_->options.name, peer_.connection_id,
                   ec.message());
    }
    Close();
  }

  void Enqueue(std::string frame) {
    if (closed_) return;
    queued_bytes_ += frame.size();
    if (queued_bytes_ > kMaxQueuedBytes) {
      spdlog::warn("{} conn=#{} (client '{}'): {} bytes unsent, peer too slow; closing",
                   st_->options.name, peer_.connection_id, shown_id_, queued_bytes_);
      return Close();
    }
    out_.push_back(std::move(frame));
    if (!writing_) DoWrite();
  }

  void DoWrite() {
    writing_ = true;
    // The stream keeps a deadline per direction, and expires_after re-arms
    // only a direction with nothing in flight: ReadHeader, which runs while
    // an answer is being written, leaves the write's deadline where it was.
    // So each write arms its own (after Hello the idle timeout: a peer that
    // reads nothing that long is gone). Without this a peer that never sent
    // a one-way frame (a store: pings, remounts) was cut off when the hello
    // timeout, armed at connect, ran out under its next answer.
    stream_.expires_after(hello_done_ ? st_->options.idle_timeout : st_->options.hello_timeout);
    net::async_write(stream_, net::buffer(out_.front()),
                     [self = shared_from_this()](beast::error_code ec, size_t n) {
                       self->queued_bytes_ -= self->out_.front().size();
                       self->out_.pop_front();
                       if (ec) return self->Close();
                       if (!self->out_.empty()) return self->DoWrite();
                       self->writing_ = false;
                       if (self->close_after_write_) self->Close();
                     });
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  std::shared_ptr<State> st_;
  std::atomic<uint64_t> sequence_{0};  // the last SendSequenced number
  beast::tcp_stream stream_;
  std::string ip_;
  State::Slot slot_ = State::Slot::kNone;
  unsigned char header_[kFrameHeaderBytes] = {};
  FrameHeader head_;
  std::string body_;
  std::deque<std::string> out_;
  size_t queued_bytes_ = 0;
  RpcPeer peer_;
  std::string shown_id_;  // peer_.client_id escaped for the log (Printable)
  bool hello_done_ = false;
  bool writing_ = false;
  bool close_after_write_ = false;
  bool closed_ = false;
};

void RpcServer::State::OnAccept(tcp::socket socket) {
  if (stopping) return;
  accepted.Inc();
  uint64_t id = next_id.fetch_add(1);
  auto conn = std::make_shared<Connection>(shared_from_this(), std::move(socket), id);
  if (!connections.Add(id, conn, options.max_connections)) {
    refused_max.Inc();
    spdlog::warn("{} conn=#{} from {}: refused, {} connections open (--max-connections)",
                 options.name, id, conn->address(), options.max_connections);
    return;  // the socket closes with `conn`
  }
  if (!conn->TakePendingSlot()) {
    refused_per_peer.Inc();
    spdlog::warn(
        "{} conn=#{} from {}: refused, {} connections from {} not past Hello yet "
        "(--max-connections-per-peer)",
        options.name, id, conn->address(), options.max_connections_per_peer, conn->ip());
    return;
  }
  conn->Start();
}

bool RpcServer::State::TakePending(const std::string& ip) {
  std::lock_guard<std::mutex> lock(slots_mu);
  PeerSlots& p = per_peer[ip];
  if (p.pending >= options.max_connections_per_peer) {
    if (p.pending == 0 && p.clients == 0) per_peer.erase(ip);
    return false;
  }
  ++p.pending;
  return true;
}

std::string RpcServer::State::Promote(const std::string& ip, PeerRole role, Slot& slot) {
  std::lock_guard<std::mutex> lock(slots_mu);
  PeerSlots& p = per_peer[ip];
  if (role == PeerRole::kStore) {
    --p.pending;
    if (p.pending == 0 && p.clients == 0) per_peer.erase(ip);
    slot = Slot::kStore;
    return "";
  }
  size_t client_slots = options.max_connections -
                        std::min(options.max_connections, options.reserved_store_connections);
  if (clients >= client_slots) {
    refused_reserved.Inc();
    return "the master has " + std::to_string(clients) +
           " client connections open, all it takes (--max-connections " +
           std::to_string(options.max_connections) + " less --reserved-store-connections " +
           std::to_string(options.reserved_store_connections) + " kept for stores); try later";
  }
  if (p.clients >= options.max_connections_per_peer) {
    refused_per_peer.Inc();
    return "the master has " + std::to_string(p.clients) + " client connections open from " + ip +
           " (--max-connections-per-peer " + std::to_string(options.max_connections_per_peer) +
           "); try later";
  }
  --p.pending;
  ++p.clients;
  ++clients;
  slot = Slot::kClient;
  return "";
}

void RpcServer::State::Release(const std::string& ip, Slot slot) {
  if (slot == Slot::kNone) return;
  std::lock_guard<std::mutex> lock(slots_mu);
  auto it = per_peer.find(ip);
  if (it == per_peer.end()) return;
  PeerSlots& p = it->second;
  if (slot == Slot::kPending) --p.pending;
  if (slot == Slot::kClient) {
    --p.clients;
    --clients;
  }
  if (p.pending == 0 && p.clients == 0) per_peer.erase(it);
}

RpcServer::RpcServer(net::io_context& ioc, RpcServerOptions options, RpcDispatcher dispatch,
                     MetricsRegistry& metrics)
    : state_(std::make_shared<State>(ioc, std::move(options), std::move(dispatch), metrics)) {}

RpcServer::~RpcServer() { BeginShutdown(); }

Status RpcServer::Start() {
  return ListenFor(*state_->listener, state_->options.host, state_->options.port, state_);
}

std::string RpcServer::address() const { return state_->listener->address(); }
uint16_t RpcServer::port() const { return state_->listener->port(); }
bool RpcServer::bound_to_loopback() const { return state_->listener->loopback(); }

std::shared_ptr<RpcServer::Connection> RpcServer::ConnectionOf(const std::string& client_id) const {
  std::lock_guard<std::mutex> lock(state_->mu);
  auto it = state_->by_client.find(client_id);
  return it == state_->by_client.end() ? nullptr : it->second.lock();
}

bool RpcServer::Notify(const std::string& client_id, std::string frame) {
  std::shared_ptr<Connection> conn = ConnectionOf(client_id);
  if (!conn) return false;
  conn->Send(std::move(frame));
  return true;
}

RpcServer::Sequenced RpcServer::NotifySequenced(const std::string& client_id, MsgType type,
                                                std::string body) {
  std::shared_ptr<Connection> conn = ConnectionOf(client_id);
  if (!conn) return {};
  uint64_t seq = conn->SendSequenced(type, std::move(body));
  return {conn->id(), seq};
}

RpcServer::DeferredReply RpcServer::Defer() {
  return current_request ? *current_request : DeferredReply();
}

void RpcServer::DeferredReply::Reply(uint16_t flags, std::string body) {
  std::shared_ptr<Connection> conn = conn_.lock();
  if (!conn) return;
  conn->SendResponse(type_, static_cast<uint16_t>(kFlagResponse | flags), request_id_,
                     std::move(body));
}

void RpcServer::BeginShutdown() {
  if (state_->stopping.exchange(true)) return;
  state_->listener->Close();
  for (auto& c : state_->connections.Live()) c->Stop();
}

size_t RpcServer::open_connections() const {
  return static_cast<size_t>(std::max<int64_t>(0, state_->open.Value()));
}

}  // namespace kvcached
