#include "net/data_server.h"

#include <array>
#include <atomic>
#include <cstdlib>
#include <string_view>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/tcp_stream.hpp>

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
                               "Data-plane connections closed for a malformed frame")) {}

  void OnAccept(tcp::socket socket);

  net::io_context& ioc;
  const DataServerOptions options;
  uint8_t* const segment;
  const uint64_t segment_bytes;
  std::shared_ptr<TcpListener> listener;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_id{1};
  ConnectionRegistry<Connection> connections;
  Gauge& open;
  Counter& received;
  Counter& served;
  Counter& writes;
  Counter& reads;
  Counter& refusals;
  Counter& malformed;
#ifdef KVCACHED_FAULT_HOOKS
  // Test builds only: KVCACHED_FAULT_CORRUPT_READS=1 makes every DataRead
  // answer carry one flipped byte, so the tests can prove a client (or
  // `kvcached bench --verify`) notices.
  const bool corrupt_reads = [] {
    const char* v = std::getenv("KVCACHED_FAULT_CORRUPT_READS");
    return v != nullptr && std::string_view(v) == "1";
  }();
#endif
};

// One peer, served one request at a time, all on the connection's strand.
class DataServer::Connection : public std::enable_shared_from_this<DataServer::Connection> {
 public:
  Connection(std::shared_ptr<State> st, tcp::socket&& socket, uint64_t id)
      : st_(std::move(st)), stream_(std::move(socket)), id_(id) {
    beast::error_code ec;
    tcp::endpoint ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? "?" : ep.address().to_string() + ":" + std::to_string(ep.port());
    ConfigurePeerSocket(stream_.socket());
    st_->open.Add(1);
  }

  ~Connection() {
    st_->open.Add(-1);
    st_->connections.Remove(id_);
  }

  void Start() {
    net::dispatch(stream_.get_executor(), [self = shared_from_this()] {
      self->stream_.expires_after(self->st_->options.hello_timeout);
      self->ReadHeader();
    });
  }

  void Stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

 private:
  void ReadHeader() {
    // After Hello every valid frame is a DataWrite or DataRead, which start
    // with a header and a range: one read usually takes both (anything else
    // closes the connection, so reading into a short frame's successor loses
    // nothing). The header alone is enough to judge the frame.
    size_t n = hello_done_ ? kFrameHeaderBytes + kDataRangeBytes : kFrameHeaderBytes;
    net::async_read(stream_, net::buffer(header_, n), net::transfer_at_least(kFrameHeaderBytes),
                    [self = shared_from_this()](beast::error_code ec, size_t got) {
                      if (ec) return self->Close();
                      self->head_got_ = got;
                      self->OnHeader();
                    });
  }

  void OnHeader() {
    uint32_t limit = hello_done_ ? UINT32_MAX : kMaxBodyBeforeHello;
    if (Status st = DecodeHeader(header_, limit, head_); !st.ok()) return Malformed(st.message());
    if (head_.version != kRpcVersion) {
      spdlog::warn("{} conn=#{} from {}: protocol version {} (this store speaks {}); closing",
                   st_->options.name, id_, peer_, head_.version, kRpcVersion);
      return ReplyAndClose(Error(ErrorCode::INVALID_VERSION,
                                 "protocol version mismatch: the peer speaks version " +
                                     std::to_string(head_.version) +
                                     ", this store speaks version " + std::to_string(kRpcVersion)));
    }
    if (head_.flags != 0) return Malformed("a peer sent a frame with response or other flags");
    MsgType type = static_cast<MsgType>(head_.type);
    if (type == MsgType::kHello) {
      if (hello_done_) return Malformed("a second Hello");
      body_.resize(head_.body_bytes);
      return Read(net::buffer(body_), [this] { OnHello(); });
    }
    if (!hello_done_) {
      spdlog::warn("{} conn=#{} from {}: {} before Hello; closing", st_->options.name, id_, peer_,
                   MsgTypeName(type));
      return ReplyAndClose(Error(ErrorCode::ILLEGAL_CLIENT, "send Hello first"));
    }
    if (type == MsgType::kDataWrite) {
      if (head_.body_bytes < kDataRangeBytes) return Malformed("DataWrite shorter than its range");
      return WithRange([this] { OnWriteRange(); });
    }
    if (type == MsgType::kDataRead) {
      if (head_.body_bytes != kDataRangeBytes) return Malformed("DataRead body is not a range");
      return WithRange([this] { OnReadRange(); });
    }
    Malformed("message type " + std::to_string(head_.type) + " is not served on the data port");
  }

  // Runs `then` once the range after the header has arrived whole.
  template <typename Then>
  void WithRange(Then then) {
    size_t want = kFrameHeaderBytes + kDataRangeBytes;
    if (head_got_ >= want) return then();
    Read(net::buffer(header_ + head_got_, want - head_got_), then);
  }

  void OnHello() {
    HelloRequest hello;
    if (Status st = DecodeBody(body_, hello); !st.ok()) return Malformed("Hello: " + st.message());
    HelloResponse res;
    if (st_->options.token && !st_->options.token->Matches(hello.token)) {
      spdlog::warn("{} conn=#{} from {}: Hello refused: missing or wrong cluster token",
                   st_->options.name, id_, peer_);
      res.code = static_cast<int32_t>(ErrorCode::ILLEGAL_CLIENT);
      res.message = "missing or wrong cluster token";
      return ReplyAndClose(Frame(kFlagResponse, EncodeBody(res)));
    }
    hello_done_ = true;
    client_ = hello.client_id;
    stream_.expires_never();
    Reply(Frame(kFlagResponse, EncodeBody(res)));
  }

  DataRange ParseRange() const {
    DataRange r;
    WireReader reader(std::string_view(reinterpret_cast<const char*>(header_) + kFrameHeaderBytes,
                                       kDataRangeBytes));
    reader.U64(r.offset);
    reader.U64(r.length);
    return r;
  }

  void OnWriteRange() {
    DataRange r = ParseRange();
    if (r.length != head_.body_bytes - kDataRangeBytes) {
      return Malformed("DataWrite announces " + std::to_string(r.length) + " bytes but carries " +
                       std::to_string(head_.body_bytes - kDataRangeBytes));
    }
    st_->writes.Inc();
    if (!RangeWithin(r, st_->segment_bytes)) {
      Refuse("write", r);
      // The payload still has to be read past to keep the stream in frame.
      discard_left_ = r.length;
      return Discard(ErrorCode::INVALID_WRITE, r);
    }
    Read(net::buffer(st_->segment + r.offset, r.length), [this, r] {
      st_->received.Inc(r.length);
      Reply(Frame(kFlagResponse, EncodeBody(StatusResponse{0, ""})));
    });
  }

  void OnReadRange() {
    DataRange r = ParseRange();
    st_->reads.Inc();
    if (!RangeWithin(r, st_->segment_bytes)) {
      Refuse("read", r);
      return Reply(Error(ErrorCode::INVALID_READ, RangeText(r)));
    }
    if (r.length > UINT32_MAX) {  // one frame body carries at most 4 GiB - 1
      st_->refusals.Inc();
      return Reply(Error(ErrorCode::INVALID_READ,
                         "a read of " + std::to_string(r.length) +
                             " bytes is over the 4 GiB - 1 a request may carry; split it"));
    }
    out_ = Header(kFlagResponse, static_cast<uint32_t>(r.length));
    std::array<net::const_buffer, 2> bufs{net::buffer(out_),
                                          net::buffer(st_->segment + r.offset, r.length)};
#ifdef KVCACHED_FAULT_HOOKS
    if (st_->corrupt_reads && r.length > 0) {
      scratch_.assign(st_->segment + r.offset, st_->segment + r.offset + r.length);
      scratch_[r.length / 2] ^= 0x5A;
      bufs[1] = net::buffer(scratch_.data(), scratch_.size());
    }
#endif
    net::async_write(stream_, bufs, [self = shared_from_this(), r](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      self->st_->served.Inc(r.length);
      self->ReadHeader();
    });
  }

  void Discard(ErrorCode code, DataRange r) {
    if (discard_left_ == 0) return Reply(Error(code, RangeText(r)));
    scratch_.resize(kDiscardChunk);
    size_t n = static_cast<size_t>(std::min<uint64_t>(discard_left_, kDiscardChunk));
    Read(net::buffer(scratch_.data(), n), [this, n, code, r] {
      discard_left_ -= n;
      Discard(code, r);
    });
  }

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
    net::async_read(stream_, buf, [self = shared_from_this(), then](beast::error_code ec, size_t) {
      if (ec) return self->Close();
      then();
    });
  }

  std::string Header(uint16_t flags, uint32_t body_bytes) const {
    FrameHeader h;
    h.type = head_.type;
    h.flags = flags;
    h.request_id = head_.request_id;
    h.body_bytes = body_bytes;
    std::string out(kFrameHeaderBytes, '\0');
    EncodeHeader(h, reinterpret_cast<unsigned char*>(out.data()));
    return out;
  }

  std::string Frame(uint16_t flags, const std::string& body) const {
    return Header(flags, static_cast<uint32_t>(body.size())) + body;
  }

  std::string Error(ErrorCode code, const std::string& message) const {
    return Frame(kFlagResponse | kFlagError,
                 EncodeBody(ErrorBody{static_cast<int32_t>(code), message}));
  }

  void Reply(std::string frame) {
    out_ = std::move(frame);
    net::async_write(stream_, net::buffer(out_),
                     [self = shared_from_this()](beast::error_code ec, size_t) {
                       if (ec) return self->Close();
                       self->ReadHeader();
                     });
  }

  void ReplyAndClose(std::string frame) {
    out_ = std::move(frame);
    net::async_write(stream_, net::buffer(out_),
                     [self = shared_from_this()](beast::error_code, size_t) { self->Close(); });
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
  std::string client_;
  unsigned char header_[kFrameHeaderBytes + kDataRangeBytes] = {};  // a data frame's head
  size_t head_got_ = 0;
  FrameHeader head_;
  std::string body_;
  std::string out_;
  std::vector<char> scratch_;
  uint64_t discard_left_ = 0;
  bool hello_done_ = false;
};

void DataServer::State::OnAccept(tcp::socket socket) {
  if (stopping) return;
  uint64_t id = next_id.fetch_add(1);
  auto conn = std::make_shared<Connection>(shared_from_this(), std::move(socket), id);
  if (!connections.Add(id, conn, options.max_connections)) {
    spdlog::warn("{} conn=#{}: refused, {} connections open", options.name, id,
                 options.max_connections);
    return;  // the socket closes with `conn`
  }
  conn->Start();
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
