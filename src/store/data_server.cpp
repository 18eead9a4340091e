#include "store/data_server.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string_view>
#include <unordered_map>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

#include "core/hello_policy.h"
#include "core/printable.h"
#include "core/rpc_protocol.h"
#include "core/wire.h"
#include "net/connection_registry.h"
#include "net/tcp_listener.h"

namespace kvcached {
namespace {

namespace net = boost::asio;
namespace beast = boost::beast;
using tcp = net::ip::tcp;

constexpr size_t kDiscardChunk = 64 << 10;

std::string PeerIp(const tcp::socket& socket) {
  beast::error_code ec;
  tcp::endpoint ep = socket.remote_endpoint(ec);
  return ec ? "?" : ep.address().to_string();
}

}  // namespace

struct DataServer::State : std::enable_shared_from_this<DataServer::State> {
  State(net::io_context& io, DataServerOptions o, uint8_t* seg, uint64_t seg_bytes,
        MetricsRegistry& m)
      : ioc(io),
        options(std::move(o)),
        segment(seg),
        segment_bytes(seg_bytes),
        listener(std::make_shared<TcpListener>(io, options.name)),
        open(m.GetGauge("kvcached_store_data_open_connections", "Open data-plane connections")),
        received(m.GetCounter("kvcached_store_bytes_received_total",
                              "Bytes written into the segment by peers")),
        served(m.GetCounter("kvcached_store_bytes_served_total",
                            "Bytes read from the segment by peers")),
        writes(m.GetCounter("kvcached_store_data_requests_total", "Data-plane requests",
                            {{"op", "write"}})),
        reads(m.GetCounter("kvcached_store_data_requests_total", "Data-plane requests",
                           {{"op", "read"}})),
        refusals(m.GetCounter("kvcached_store_data_refusals_total",
                              "Data-plane requests refused: range outside the segment")),
        malformed(m.GetCounter("kvcached_store_data_malformed_total",
                               "Data-plane connections closed for a malformed frame")),
        refused_max(m.GetCounter("kvcached_store_data_connections_refused_total",
                                 "Data-plane connections refused by a connection limit",
                                 {{"reason", "max_connections"}})),
        refused_per_peer(m.GetCounter("kvcached_store_data_connections_refused_total",
                                      "Data-plane connections refused by a connection limit",
                                      {{"reason", "per_peer"}})),
        idle_closed(m.GetCounter("kvcached_store_data_idle_closed_total",
                                 "Data-plane connections closed after --idle-timeout without "
                                 "a request")) {}

  void OnAccept(tcp::socket socket);
  // Counts a connection from `ip`; false over the per-peer limit.
  bool TakePeerSlot(const std::string& ip);
  void ReleasePeerSlot(const std::string& ip);

  net::io_context& ioc;
  const DataServerOptions options;
  uint8_t* const segment;
  const uint64_t segment_bytes;
  std::shared_ptr<TcpListener> listener;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};
  ConnectionRegistry<Connection> connections;
  std::mutex peers_mu;  // guards per_peer
  std::unordered_map<std::string, size_t> per_peer;
  Gauge& open;
  Counter& received;
  Counter& served;
  Counter& writes;
  Counter& reads;
  Counter& refusals;
  Counter& malformed;
  Counter& refused_max;
  Counter& refused_per_peer;
  Counter& idle_closed;
#ifdef KVCACHED_FAULT_HOOKS
  // Test builds only: KVCACHED_FAULT_CORRUPT_READS=1 makes every DataRead
  // answer carry one flipped byte, so the tests can prove a client (or
  // `kvcached bench --verify`) notices.
  const bool corrupt_reads = [] {
    const char* v = std::getenv("KVCACHED_FAULT_CORRUPT_READS");
    return v != nullptr && std::string_view(v) == "1";
  }();
  // KVCACHED_FAULT_RDMA_LINK_MS=N closes every connection that set up RDMA
  // queue pairs N ms after its first one: the store destroys them under a
  // client that is using them, which must rebuild and go on.
  const long rdma_link_ms = [] {
    const char* v = std::getenv("KVCACHED_FAULT_RDMA_LINK_MS");
    return v == nullptr ? 0L : std::strtol(v, nullptr, 10);
  }();
#endif
};

// One peer, all on the connection's strand. Requests are served in order:
// every request already received is handled before the connection reads
// again, and the answers to a run of DataReads leave in one gathered write,
// so a batch of small reads costs the store one recv and one sendmsg, and
// the peer one wake-up, instead of one of each per object. Only request
// heads pass through the input buffer; a DataWrite's bytes go straight from
// the socket into the segment (beyond the few that arrived with its head).
class DataServer::Connection : public std::enable_shared_from_this<DataServer::Connection> {
 public:
  Connection(std::shared_ptr<State> st, tcp::socket&& socket, uint64_t id)
      : st_(std::move(st)), stream_(std::move(socket)), id_(id) {
    beast::error_code ec;
    tcp::endpoint ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    ip_ = PeerIp(stream_.socket());
    ConfigurePeerSocket(stream_.socket());
    st_->open.Add(1);
  }

  ~Connection() {
    if (rdma_links_ > 0) {
      st_->options.rdma->Release(id_);
      spdlog::debug("{} conn=#{} from {}: released its {} RDMA queue pair(s)", st_->options.name,
                    id_, peer_, rdma_links_);
    }
    if (counted_) st_->ReleasePeerSlot(ip_);
    st_->open.Add(-1);
    st_->connections.Remove(id_);
  }

  const std::string& ip() const { return ip_; }
  const std::string& address() const { return peer_; }
  // On the accepting thread, before Start().
  bool TakePeerSlot() { return counted_ = st_->TakePeerSlot(ip_); }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(self->st_->options.hello_timeout);
      self->Next();
    });
  }

  void Stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

 private:
  // Holds a whole Hello (the largest frame allowed before it) and a few
  // hundred data request heads.
  static constexpr size_t kInBytes = kFrameHeaderBytes + kMaxBodyBeforeHello + 4096;
  // One gathered write carries at most this many answers or payload bytes.
  static constexpr size_t kMaxAnswers = 128;
  static constexpr uint64_t kMaxAnswerBytes = 16 << 20;
  static_assert(kFrameHeaderBytes + kDataRangeBytes <= kInBytes);
  static constexpr uint32_t kMaxRdmaConnectBytes = 1024;  // MaxRequestBodyBytes(kRdmaConnect)
  static_assert(kFrameHeaderBytes + kMaxRdmaConnectBytes <= kInBytes);

  struct Answer {
    // A DataRead's answer: its header here and the payload in the segment;
    // any other answer (status, error) is a whole frame in `frame`.
    std::array<unsigned char, kFrameHeaderBytes> head{};
    std::string frame;
    const uint8_t* payload = nullptr;
    uint64_t payload_bytes = 0;
    std::vector<char> corrupted;  // fault hook only: the payload with a flipped byte
  };

  size_t Buffered() const { return in_end_ - in_begin_; }
  const unsigned char* In() const { return in_.data() + in_begin_; }
  void Consume(size_t n) { in_begin_ += n; }

  // Serves every complete request in the input buffer; then sends the
  // answers gathered, or reads more.
  void Next() {
    while (Buffered() >= kFrameHeaderBytes) {
      // Every kind but DataWrite is bounded small, and all but DataWrite's
      // payload must fit the input buffer: nothing is allocated from a
      // length the peer announces.
      uint32_t limit = hello_done_ ? UINT32_MAX : kMaxBodyBeforeHello;
      if (Status st = DecodeRequestHeader(In(), limit, head_); !st.ok()) {
        return Malformed(st.message());
      }
      if (HelloDecision v = CheckFrameVersion(head_.version, HelloRules()); !v.accepted()) {
        spdlog::warn("{} conn=#{} from {}: {}; closing", st_->options.name, id_, peer_, v.reason);
        QueueFrame(Error(v.code, v.reason));
        return Flush(/*close_after=*/true);
      }
      if (head_.flags != 0) return Malformed("a peer sent a frame with response or other flags");
      MsgType type = static_cast<MsgType>(head_.type);
      if (type == MsgType::kHello) {
        if (hello_done_) return Malformed("a second Hello");
        if (Buffered() < kFrameHeaderBytes + head_.body_bytes) break;  // fits: see kInBytes
        switch (OnHello()) {
          case HelloOutcome::kServe:
            continue;
          case HelloOutcome::kRefused:
            return Flush(/*close_after=*/true);
          case HelloOutcome::kClosed:
            return;
        }
      }
      if (!hello_done_) {
        spdlog::warn("{} conn=#{} from {}: {} before Hello; closing", st_->options.name, id_, peer_,
                     MsgTypeName(type));
        QueueFrame(Error(ErrorCode::ILLEGAL_CLIENT, "send Hello first"));
        return Flush(/*close_after=*/true);
      }
      if (type == MsgType::kDataRead) {
        if (head_.body_bytes != kDataRangeBytes) return Malformed("DataRead body is not a range");
        if (Buffered() < kFrameHeaderBytes + kDataRangeBytes) break;
        OnRead(ParseRange());
        if (answers_.size() >= kMaxAnswers || answer_bytes_ >= kMaxAnswerBytes) return Flush();
        continue;
      }
      if (type == MsgType::kDataWrite) {
        if (head_.body_bytes < kDataRangeBytes)
          return Malformed("DataWrite shorter than its range");
        if (Buffered() < kFrameHeaderBytes + kDataRangeBytes) break;
        // Answers already gathered go first: the write may take a while.
        if (!answers_.empty()) return Flush();
        return OnWrite(ParseRange());
      }
      if (type == MsgType::kRdmaConnect) {
        if (head_.body_bytes > kMaxRdmaConnectBytes) {
          return Malformed("RdmaConnect body of " + std::to_string(head_.body_bytes) + " bytes");
        }
        if (Buffered() < kFrameHeaderBytes + head_.body_bytes) break;
        OnRdmaConnect();
        continue;
      }
      return Malformed("message type " + std::to_string(head_.type) +
                       " is not served on the data port");
    }
    if (!answers_.empty()) return Flush();
    ReadMore();
  }

  void ReadMore() {
    if (in_begin_ > 0) {
      std::memmove(in_.data(), In(), Buffered());
      in_end_ -= in_begin_;
      in_begin_ = 0;
    }
    if (in_end_ == kInBytes) return Malformed("a request head larger than the input buffer");
    ArmIdleTimeout();
    stream_.async_read_some(net::buffer(in_.data() + in_end_, kInBytes - in_end_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              if (ec) return self->OnReadError(ec);
                              self->in_end_ += n;
                              self->Next();
                            });
  }

  // After Hello every wait for the peer (the next request, a payload
  // arriving, an answer leaving) gets the idle timeout; before it, the hello
  // timeout set at Start() runs. A connection that holds RDMA queue pairs
  // is idle on TCP by design (the bytes move over RDMA) and has none.
  void ArmIdleTimeout() {
    if (!hello_done_ || fault_deadline_) return;
    if (rdma_links_ > 0) return stream_.expires_never();
    stream_.expires_after(st_->options.idle_timeout);
  }

  void OnReadError(beast::error_code ec) {
    if (ec == beast::error::timeout && hello_done_ && !fault_deadline_) {
      st_->idle_closed.Inc();
      spdlog::info("{} conn=#{} from {} (client '{}'): idle for {} ms (--idle-timeout); closing",
                   st_->options.name, id_, peer_, client_, st_->options.idle_timeout.count());
    }
    Close();
  }

  enum class HelloOutcome { kServe, kRefused, kClosed };
  // kRefused: the queued answer is the last; kClosed: nothing more to send.
  HelloOutcome OnHello() {
    HelloRequest hello;
    std::string_view body(reinterpret_cast<const char*>(In()) + kFrameHeaderBytes,
                          head_.body_bytes);
    Status decoded = DecodeBody(body, hello);
    Consume(kFrameHeaderBytes + head_.body_bytes);
    if (!decoded.ok()) {
      Malformed("Hello: " + decoded.message());
      return HelloOutcome::kClosed;
    }
    HelloDecision d = DecideHello(head_.version, hello, HelloRules());
    if (!d.accepted()) {
      spdlog::warn("{} conn=#{} from {} (client '{}'): Hello refused: {}", st_->options.name, id_,
                   peer_, Printable(hello.client_id), d.reason);
      QueueFrame(d.error_frame ? Error(d.code, d.reason)
                               : Frame(kFlagResponse, EncodeBody(AnswerHello(d, {}))));
      return HelloOutcome::kRefused;
    }
    hello_done_ = true;
    client_ = Printable(hello.client_id);
    stream_.expires_never();
    HelloResponse served;
    served.segment = st_->options.segment_name;
    served.segment_size = st_->segment_bytes;
    QueueFrame(Frame(kFlagResponse, EncodeBody(AnswerHello(d, std::move(served)))));
    return HelloOutcome::kServe;
  }

  // The data port's Hello rules (docs/protocol.md, "Frames and Hello"):
  // clients and stores, with the store's token when it has one.
  HelloPolicy HelloRules() const {
    return HelloPolicy{st_->options.token ? &*st_->options.token : nullptr, kStorePortRoles,
                       kRpcVersion, "store"};
  }

  // Sets up a queue pair for the peer. A refusal (no RDMA here, a bad NIC
  // index, another link version, a device error) is an error answer: the
  // connection goes on, so the client can fall back to TCP on it.
  void OnRdmaConnect() {
    std::string_view body(reinterpret_cast<const char*>(In()) + kFrameHeaderBytes,
                          head_.body_bytes);
    RdmaConnectRequest req;
    Status decoded = DecodeBody(body, req);
    Consume(kFrameHeaderBytes + head_.body_bytes);
    if (!decoded.ok()) {
      st_->refusals.Inc();
      spdlog::warn("{} conn=#{} from {} (client '{}'): RdmaConnect refused: {}", st_->options.name,
                   id_, peer_, client_, decoded.message());
      return QueueFrame(Error(ErrorCode::INVALID_PARAMS, "RdmaConnect: " + decoded.message()));
    }
    if (!st_->options.rdma) {
      st_->refusals.Inc();
      spdlog::warn(
          "{} conn=#{} from {} (client '{}'): RdmaConnect refused: this store does not "
          "serve RDMA",
          st_->options.name, id_, peer_, client_);
      return QueueFrame(Error(ErrorCode::TRANSFER_FAIL,
                              "this store does not serve RDMA (it runs with --protocol tcp or "
                              "found no RDMA device)"));
    }
    Result<RdmaConnectResponse> res = st_->options.rdma->Accept(req, id_);
    if (!res.ok()) {
      st_->refusals.Inc();
      spdlog::warn("{} conn=#{} from {} (client '{}'): RdmaConnect on NIC {} refused: {}",
                   st_->options.name, id_, peer_, client_, req.store_nic, res.status().ToString());
      return QueueFrame(Error(res.code(), res.status().message()));
    }
    ++rdma_links_;
#ifdef KVCACHED_FAULT_HOOKS
    if (st_->rdma_link_ms > 0 && rdma_links_ == 1) {
      stream_.expires_after(std::chrono::milliseconds(st_->rdma_link_ms));
      fault_deadline_ = true;
      spdlog::warn("{} conn=#{}: fault hook: closing this RDMA link in {} ms", st_->options.name,
                   id_, st_->rdma_link_ms);
    }
#endif
    spdlog::debug("{} conn=#{} from {} (client '{}'): RDMA queue pair {} on NIC {} to peer qp {}",
                  st_->options.name, id_, peer_, client_, res->store.qpn, req.store_nic,
                  req.client.qpn);
    QueueFrame(Frame(kFlagResponse, EncodeBody(*res)));
  }

  DataRange ParseRange() {
    DataRange r;
    WireReader reader(
        std::string_view(reinterpret_cast<const char*>(In()) + kFrameHeaderBytes, kDataRangeBytes));
    reader.U64(r.offset);
    reader.U64(r.length);
    Consume(kFrameHeaderBytes + kDataRangeBytes);
    return r;
  }

  void OnRead(DataRange r) {
    st_->reads.Inc();
    if (!RangeWithin(r, st_->segment_bytes)) {
      Refuse("read", r);
      return QueueFrame(Error(ErrorCode::INVALID_READ, RangeText(r)));
    }
    if (r.length > UINT32_MAX) {  // one frame body carries at most 4 GiB - 1
      st_->refusals.Inc();
      return QueueFrame(Error(ErrorCode::INVALID_READ,
                              "a read of " + std::to_string(r.length) +
                                  " bytes is over the 4 GiB - 1 a request may carry; split it"));
    }
    Answer& a = answers_.emplace_back();
    EncodeHeader(HeaderFor(kFlagResponse, static_cast<uint32_t>(r.length)), a.head.data());
    a.payload = st_->segment + r.offset;
    a.payload_bytes = r.length;
#ifdef KVCACHED_FAULT_HOOKS
    if (st_->corrupt_reads && r.length > 0) {
      a.corrupted.assign(a.payload, a.payload + r.length);
      a.corrupted[r.length / 2] ^= 0x5A;
      a.payload = reinterpret_cast<const uint8_t*>(a.corrupted.data());
    }
#endif
    answer_bytes_ += r.length;
  }

  void OnWrite(DataRange r) {
    if (r.length != head_.body_bytes - kDataRangeBytes) {
      return Malformed("DataWrite announces " + std::to_string(r.length) + " bytes but carries " +
                       std::to_string(head_.body_bytes - kDataRangeBytes));
    }
    st_->writes.Inc();
    // Bytes of the payload that arrived with the head.
    size_t early = static_cast<size_t>(std::min<uint64_t>(Buffered(), r.length));
    if (!RangeWithin(r, st_->segment_bytes)) {
      Refuse("write", r);
      // The payload still has to be read past to keep the stream in frame.
      Consume(early);
      discard_left_ = r.length - early;
      return Discard(ErrorCode::INVALID_WRITE, r);
    }
    std::memcpy(st_->segment + r.offset, In(), early);
    Consume(early);
    auto done = [this, r] {
      st_->received.Inc(r.length);
      QueueFrame(Frame(kFlagResponse, EncodeBody(StatusResponse{0, ""})));
      Next();
    };
    if (early == r.length) return done();
    Read(net::buffer(st_->segment + r.offset + early, r.length - early), done);
  }

  void Discard(ErrorCode code, DataRange r) {
    if (discard_left_ == 0) {
      QueueFrame(Error(code, RangeText(r)));
      return Next();
    }
    scratch_.resize(kDiscardChunk);
    size_t n = static_cast<size_t>(std::min<uint64_t>(discard_left_, kDiscardChunk));
    Read(net::buffer(scratch_.data(), n), [this, n, code, r] {
      discard_left_ -= n;
      Discard(code, r);
    });
  }

  // Sends every queued answer in one gathered write, then goes on serving
  // (or closes).
  void Flush(bool close_after = false) {
    out_bufs_.clear();
    uint64_t served = 0;
    for (const Answer& a : answers_) {
      out_bufs_.push_back(a.frame.empty() ? net::buffer(a.head) : net::buffer(a.frame));
      if (a.payload_bytes > 0) out_bufs_.push_back(net::buffer(a.payload, a.payload_bytes));
      served += a.payload_bytes;
    }
    ArmIdleTimeout();
    net::async_write(
        stream_, out_bufs_,
        [self = shared_from_this(), served, close_after](beast::error_code ec, size_t) {
          if (ec) return self->Close();
          self->st_->served.Inc(served);
          self->answers_.clear();
          self->answer_bytes_ = 0;
          if (close_after) return self->Close();
          self->Next();
        });
  }

  void QueueFrame(std::string frame) { answers_.emplace_back().frame = std::move(frame); }

  void Refuse(const char* op, DataRange r) {
    st_->refusals.Inc();
    spdlog::warn("{} conn=#{} from {} (client '{}'): refused {} of {}", st_->options.name, id_,
                 peer_, client_, op, RangeText(r));
  }

  std::string RangeText(DataRange r) const {
    return "[" + std::to_string(r.offset) + ", +" + std::to_string(r.length) +
           ") outside the segment of " + std::to_string(st_->segment_bytes) + " bytes";
  }

  template <typename Buffer, typename Then>
  void Read(Buffer buf, Then then) {
    ArmIdleTimeout();
    net::async_read(stream_, buf, [self = shared_from_this(), then](beast::error_code ec, size_t) {
      if (ec) return self->OnReadError(ec);
      then();
    });
  }

  FrameHeader HeaderFor(uint16_t flags, uint32_t body_bytes) const {
    FrameHeader h;
    h.type = head_.type;
    h.flags = flags;
    h.request_id = head_.request_id;
    h.body_bytes = body_bytes;
    return h;
  }

  std::string Frame(uint16_t flags, const std::string& body) const {
    std::string out(kFrameHeaderBytes, '\0');
    EncodeHeader(HeaderFor(flags, static_cast<uint32_t>(body.size())),
                 reinterpret_cast<unsigned char*>(out.data()));
    return out + body;
  }

  std::string Error(ErrorCode code, const std::string& message) const {
    return Frame(kFlagResponse | kFlagError,
                 EncodeBody(ErrorBody{static_cast<int32_t>(code), message}));
  }

  void Malformed(const std::string& why) {
    st_->malformed.Inc();
    spdlog::warn("{} conn=#{} from {} (client '{}'): malformed frame: {}; closing",
                 st_->options.name, id_, peer_, client_, why);
    Close();
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  std::shared_ptr<State> st_;
  beast::tcp_stream stream_;
  const uint64_t id_;
  std::string peer_;
  std::string ip_;
  bool counted_ = false;  // holds a per-peer slot
  std::string client_;    // the peer's client id, escaped for the log (Printable)
  std::array<unsigned char, kInBytes> in_{};  // request heads not yet served
  size_t in_begin_ = 0, in_end_ = 0;
  FrameHeader head_;
  std::vector<Answer> answers_;  // queued in request order
  uint64_t answer_bytes_ = 0;
  std::vector<net::const_buffer> out_bufs_;
  std::vector<char> scratch_;
  uint64_t discard_left_ = 0;
  bool hello_done_ = false;
  size_t rdma_links_ = 0;        // queue pairs set up for this connection
  bool fault_deadline_ = false;  // a fault hook set the stream's deadline
};

void DataServer::State::OnAccept(tcp::socket socket) {
  if (stopping) return;
  uint64_t id = next_id.fetch_add(1);
  auto conn = std::make_shared<Connection>(shared_from_this(), std::move(socket), id);
  if (!connections.Add(id, conn, options.max_connections)) {
    refused_max.Inc();
    spdlog::warn("{} conn=#{} from {}: refused, {} connections open (--max-connections)",
                 options.name, id, conn->address(), options.max_connections);
    return;  // the socket closes with `conn`
  }
  if (!conn->TakePeerSlot()) {
    refused_per_peer.Inc();
    spdlog::warn(
        "{} conn=#{} from {}: refused, {} connections open from {} "
        "(--max-connections-per-peer)",
        options.name, id, conn->address(), options.max_connections_per_peer, conn->ip());
    return;
  }
  conn->Start();
}

bool DataServer::State::TakePeerSlot(const std::string& ip) {
  std::lock_guard<std::mutex> lock(peers_mu);
  size_t& n = per_peer[ip];
  if (n >= options.max_connections_per_peer) {
    if (n == 0) per_peer.erase(ip);
    return false;
  }
  ++n;
  return true;
}

void DataServer::State::ReleasePeerSlot(const std::string& ip) {
  std::lock_guard<std::mutex> lock(peers_mu);
  auto it = per_peer.find(ip);
  if (it != per_peer.end() && --it->second == 0) per_peer.erase(it);
}

DataServer::DataServer(net::io_context& ioc, DataServerOptions options, uint8_t* segment,
                       uint64_t segment_bytes, MetricsRegistry& metrics)
    : state_(std::make_shared<State>(ioc, std::move(options), segment, segment_bytes, metrics)) {}

DataServer::~DataServer() { BeginShutdown(); }

Status DataServer::Start() {
  return ListenFor(*state_->listener, state_->options.host, state_->options.port, state_);
}

std::string DataServer::address() const { return state_->listener->address(); }
uint16_t DataServer::port() const { return state_->listener->port(); }
bool DataServer::bound_to_loopback() const { return state_->listener->loopback(); }
bool DataServer::bound_to_wildcard() const { return state_->listener->wildcard(); }

void DataServer::BeginShutdown() {
  if (state_->stopping.exchange(true)) return;
  state_->listener->Close();
  for (auto& c : state_->connections.Live()) c->Stop();
}

size_t DataServer::open_connections() const {
  return static_cast<size_t>(std::max<int64_t>(0, state_->open.Value()));
}

}  // namespace kvcached
