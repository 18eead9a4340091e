#include "store/shm_server.h"

#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include <spdlog/spdlog.h>
#include <boost/asio/local/stream_protocol.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/read.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/asio/write.hpp>

#include "core/hello_policy.h"
#include "core/printable.h"
#include "core/rpc_protocol.h"
#include "net/connection_registry.h"
#include "net/socket_util.h"
#include "store/shm_access_policy.h"

namespace kvcached {
namespace {

namespace net = boost::asio;
using unix_stream = net::local::stream_protocol;

constexpr const char* kRefusalsHelp =
    "Shm connections refused: peer credentials outside the policy, sessions broken off (token, "
    "protocol, timeout), over --max-connections";

unix_stream::endpoint EndpointFor(const std::string& path) {
  if (!path.empty() && path[0] == '@')
    return unix_stream::endpoint(std::string(1, '\0') + path.substr(1));
  return unix_stream::endpoint(path);
}

}  // namespace

struct ShmServer::State : std::enable_shared_from_this<ShmServer::State> {
  State(net::io_context& io, ShmServerOptions o, int fd, uint64_t bytes, MetricsRegistry& m)
      : ioc(io),
        options(std::move(o)),
        memfd(fd),
        segment_bytes(bytes),
        acceptor(net::make_strand(io)),
        attaches(m.GetCounter("kvcached_store_shm_attaches_total",
                              "Segments handed to same-host clients over the shm socket")),
        refused_peer(m.GetCounter("kvcached_store_shm_refusals_total", kRefusalsHelp,
                                  {{"reason", "peer_credentials"}})),
        refused_session(m.GetCounter("kvcached_store_shm_refusals_total", kRefusalsHelp,
                                     {{"reason", "session"}})),
        refused_limit(m.GetCounter("kvcached_store_shm_refusals_total", kRefusalsHelp,
                                   {{"reason", "max_connections"}})) {}

  void Accept();

  net::io_context& ioc;
  const ShmServerOptions options;
  const int memfd;
  const uint64_t segment_bytes;
  unix_stream::acceptor acceptor;
  std::atomic<bool> stopping{false};
  bool bound = false;  // Start() bound a socket file at the path (removed at shutdown)
  std::atomic<uint64_t> next_id{1};
  ConnectionRegistry<Connection> connections;
  Counter& attaches;
  Counter& refused_peer;     // SO_PEERCRED outside options.access
  Counter& refused_session;  // token, protocol, timeout, failed hand-over
  Counter& refused_limit;    // over max_connections
};

// One hand-over: Hello, ShmAttach, the fd (all within one deadline); then
// the connection idles until the client closes it or the store stops.
class ShmServer::Connection : public std::enable_shared_from_this<ShmServer::Connection> {
 public:
  Connection(std::shared_ptr<State> st, unix_stream::socket socket, uint64_t id)
      : st_(std::move(st)), socket_(std::move(socket)), timer_(socket_.get_executor()), id_(id) {}

  ~Connection() { st_->connections.Remove(id_); }

  void Start() {
    timer_.expires_after(st_->options.session_timeout);
    timer_.async_wait([self = shared_from_this()](boost::system::error_code ec) {
      if (!ec) self->Fail("session timed out");
    });
    Admit();
    ReadHeader();
  }

  void Stop() {
    net::post(socket_.get_executor(), [self = shared_from_this()] { self->Close(); });
  }

 private:
  // The kernel's word on who connected, checked before a byte is read. A
  // refused peer is counted and logged here, once; its Hello then gets the
  // refusal as an error frame, and anything else it does just closes.
  void Admit() {
    Result<PeerCredentials> peer = ReadPeerCredentials(socket_.native_handle());
    ShmAccessDecision d =
        peer.ok() ? st_->options.access.Decide(*peer)
                  : ShmAccessDecision{false, "cannot tell who connected (" +
                                                 peer.status().message() + "): refused"};
    if (d.allowed) return;
    denied_ = d.reason;
    st_->refused_peer.Inc();
    spdlog::warn("shm conn=#{} on {}: refused peer pid {} uid {} gid {}: {}; closing", id_,
                 st_->options.path, peer.ok() ? peer->pid : 0, peer.ok() ? peer->uid : 0,
                 peer.ok() ? peer->gid : 0, d.reason);
  }

  void ReadHeader() {
    net::async_read(socket_, net::buffer(header_),
                    [self = shared_from_this()](boost::system::error_code ec, size_t) {
                      if (ec) return self->Close();
                      self->OnHeader();
                    });
  }

  void OnHeader() {
    if (Status st = DecodeHeader(header_, kMaxBodyBeforeHello, head_); !st.ok()) {
      return Fail(st.message());
    }
    if (HelloDecision v = CheckFrameVersion(head_.version, HelloRules()); !v.accepted()) {
      // Named in an error frame, as on the data port; a refused peer gets
      // nothing but its refusal (Refuse).
      if (!denied_.empty()) return Close();
      return AnswerAndFail(
          EncodeFrame(MsgType(head_.type), kFlagResponse | kFlagError, head_.request_id,
                      ErrorBody{static_cast<int32_t>(v.code), v.reason}),
          v.reason);
    }
    MsgType type = static_cast<MsgType>(head_.type);
    if (head_.flags != 0 || (type != MsgType::kHello && type != MsgType::kShmAttach) ||
        (type == MsgType::kHello) == hello_done_) {
      return Fail(std::string("unexpected ") + MsgTypeName(type));
    }
    body_.resize(head_.body_bytes);
    net::async_read(socket_, net::buffer(body_),
                    [self = shared_from_this(), type](boost::system::error_code ec, size_t) {
                      if (ec) return self->Close();
                      if (type == MsgType::kHello) return self->OnHello();
                      self->OnAttach();
                    });
  }

  void OnHello() {
    if (!denied_.empty()) return Refuse();
    HelloRequest hello;
    if (Status st = DecodeBody(body_, hello); !st.ok()) return Fail("Hello: " + st.message());
    client_ = Printable(hello.client_id);
    HelloDecision d = DecideHello(head_.version, hello, HelloRules());
    if (!d.accepted()) {
      return AnswerAndFail(
          d.error_frame
              ? EncodeFrame(MsgType::kHello, kFlagResponse | kFlagError, head_.request_id,
                            ErrorBody{static_cast<int32_t>(d.code), d.reason})
              : EncodeFrame(MsgType::kHello, kFlagResponse, head_.request_id, AnswerHello(d, {})),
          "Hello refused: " + d.reason);
    }
    out_ = EncodeFrame(MsgType::kHello, kFlagResponse, head_.request_id, AnswerHello(d, {}));
    hello_done_ = true;
    net::async_write(socket_, net::buffer(out_),
                     [self = shared_from_this()](boost::system::error_code ec, size_t) {
                       if (ec) return self->Close();
                       self->ReadHeader();
                     });
  }

  // The shared-memory socket's Hello rules (docs/protocol.md, "The store's
  // shared-memory socket"): those of the data port.
  HelloPolicy HelloRules() const {
    return HelloPolicy{st_->options.token ? &*st_->options.token : nullptr, kStorePortRoles,
                       kRpcVersion, "store"};
  }

  // Sends the last frame of a refused session, then closes it as Fail does.
  void AnswerAndFail(std::string frame, std::string why) {
    out_ = std::move(frame);
    net::async_write(socket_, net::buffer(out_),
                     [self = shared_from_this(), why = std::move(why)](
                         boost::system::error_code, size_t) { self->Fail(why); });
  }

  void OnAttach() {
    if (!body_.empty()) return Fail("ShmAttach with a body");
    std::string frame = EncodeFrame(MsgType::kShmAttach, kFlagResponse, head_.request_id,
                                    ShmAttachResponse{st_->options.segment, st_->segment_bytes});
    Status st = SendWithFd(socket_.native_handle(), frame, st_->memfd, "client '" + client_ + "'");
    if (!st.ok()) return Fail(st.message());
    st_->attaches.Inc();
    spdlog::debug("shm conn=#{}: segment '{}' handed to client '{}'", id_, st_->options.segment,
                  client_);
    // The connection stays open while the client keeps its mapping: when
    // this store goes away the client sees the hang-up and unmaps.
    timer_.cancel();
    net::async_read(
        socket_, net::buffer(header_, 1),
        [self = shared_from_this()](boost::system::error_code, size_t) { self->Close(); });
  }

  // The answer to a refused peer's Hello: the error frame a request before
  // a successful Hello gets elsewhere (ILLEGAL_CLIENT), then the close.
  void Refuse() {
    out_ = EncodeFrame(MsgType::kHello, kFlagResponse | kFlagError, head_.request_id,
                       ErrorBody{static_cast<int32_t>(ErrorCode::ILLEGAL_CLIENT), denied_});
    net::async_write(
        socket_, net::buffer(out_),
        [self = shared_from_this()](boost::system::error_code, size_t) { self->Close(); });
  }

  void Fail(const std::string& why) {
    if (closed_) return;
    if (!denied_.empty()) return Close();  // counted and logged once, at Admit
    st_->refused_session.Inc();
    spdlog::warn("shm conn=#{} (client '{}') on {}: {}; closing", id_, client_, st_->options.path,
                 why);
    Close();
  }

  void Close() {
    if (closed_) return;
    closed_ = true;
    timer_.cancel();
    boost::system::error_code ec;
    socket_.close(ec);
  }

  std::shared_ptr<State> st_;
  unix_stream::socket socket_;
  net::steady_timer timer_;
  const uint64_t id_;
  std::string client_;  // the peer's client id, escaped for the log (Printable)
  std::string denied_;  // why the peer is refused; empty: admitted
  unsigned char header_[kFrameHeaderBytes] = {};
  FrameHeader head_;
  std::string body_;
  std::string out_;
  bool hello_done_ = false;
  bool closed_ = false;
};

void ShmServer::State::Accept() {
  acceptor.async_accept(
      net::make_strand(ioc),
      [self = shared_from_this()](boost::system::error_code ec, unix_stream::socket socket) {
        if (self->stopping) return;
        if (ec) {
          if (ec == net::error::operation_aborted) return;
          spdlog::warn("shm socket {}: accept failed: {}", self->options.path, ec.message());
        } else {
          uint64_t id = self->next_id.fetch_add(1);
          auto conn = std::make_shared<Connection>(self, std::move(socket), id);
          if (self->connections.Add(id, conn, self->options.max_connections)) {
            conn->Start();
          } else {
            self->refused_limit.Inc();
            spdlog::warn("shm socket {}: refused a connection, {} open (--max-connections)",
                         self->options.path, self->options.max_connections);
          }
        }
        self->Accept();
      });
}

ShmServer::ShmServer(net::io_context& ioc, ShmServerOptions options, int memfd,
                     uint64_t segment_bytes, MetricsRegistry& metrics)
    : state_(std::make_shared<State>(ioc, std::move(options), memfd, segment_bytes, metrics)) {}

ShmServer::~ShmServer() { BeginShutdown(); }

Status ShmServer::Start() {
  const std::string& path = state_->options.path;
  if (path.empty() || path.size() >= sizeof(sockaddr_un::sun_path)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "shm socket path '" + path + "' is empty or longer than 107 bytes");
  }
  struct stat info {};
  if (path[0] != '@' && ::lstat(path.c_str(), &info) == 0) {
    if (!S_ISSOCK(info.st_mode)) {
      return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                    "shm socket path " + path + " exists and is not a socket; not replacing it");
    }
    // A socket file left by a dead store is replaced; a live one is not.
    Result<int> live = ConnectUnix(
        path, std::chrono::steady_clock::now() + std::chrono::milliseconds(500), "shm socket");
    if (live.ok()) {
      ::close(*live);
      return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                    "shm socket " + path + " is served by another live process");
    }
    ::unlink(path.c_str());
  }
  const bool on_disk = path[0] != '@';
  const std::optional<gid_t> group = state_->options.access.group();
  const mode_t mode = group ? 0660 : 0600;
  auto fail = [&](const std::string& why) {
    boost::system::error_code ignored;
    state_->acceptor.close(ignored);
    if (state_->bound) ::unlink(path.c_str());
    state_->bound = false;
    return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, why);
  };
  boost::system::error_code ec;
  state_->acceptor.open(unix_stream(), ec);
  // Linux creates the socket file with the socket's own mode (less the
  // umask): set before bind, the file is never more open than the owner's
  // rw, not even for the moment before the chmod below.
  if (!ec && on_disk && ::fchmod(state_->acceptor.native_handle(), 0600) != 0) {
    ec.assign(errno, boost::system::system_category());
  }
  if (!ec) state_->acceptor.bind(EndpointFor(path), ec);
  if (ec) return fail("cannot listen on shm socket " + path + ": " + ec.message());
  state_->bound = on_disk;
  // connect() needs write permission on the file: the group gets rw when
  // the policy admits one (the umask may have taken it away at bind). The
  // file is chowned only when it is not already the group's: systemd units
  // filter out chown (SystemCallFilter=~@privileged), and the store's own
  // group, the usual choice there, needs none.
  struct stat file {};
  bool regroup = on_disk && group && (::lstat(path.c_str(), &file) != 0 || file.st_gid != *group);
  if (regroup && ::chown(path.c_str(), static_cast<uid_t>(-1), *group) != 0) {
    return fail("cannot give shm socket " + path + " to group '" +
                state_->options.access.group_name() + "': " + std::strerror(errno) +
                " (the store's user must be a member of --shm-group)");
  }
  if (on_disk && ::chmod(path.c_str(), mode) != 0) {
    return fail("cannot chmod shm socket " + path + ": " + std::strerror(errno));
  }
  state_->acceptor.listen(net::socket_base::max_listen_connections, ec);
  if (ec) return fail("cannot listen on shm socket " + path + ": " + ec.message());
  state_->Accept();
  return Status::Ok();
}

const std::string& ShmServer::path() const { return state_->options.path; }

const ShmAccessPolicy& ShmServer::access() const { return state_->options.access; }

void ShmServer::BeginShutdown() {
  if (state_->stopping.exchange(true)) return;
  net::post(state_->acceptor.get_executor(), [st = state_] {
    boost::system::error_code ec;
    st->acceptor.close(ec);
  });
  // Only a socket this server bound is removed: never a live one of another.
  if (state_->bound) ::unlink(state_->options.path.c_str());
  for (auto& c : state_->connections.Live()) c->Stop();
}

size_t ShmServer::open_connections() const { return state_->connections.size(); }

}  // namespace kvcached
