#include "net/http_server.h"

#include <atomic>
#include <mutex>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

#include "core/build_info.h"
#include "net/connection_registry.h"
#include "net/tcp_listener.h"

namespace kvcached {
namespace {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

constexpr std::chrono::milliseconds kLingerTimeout{2000};
constexpr size_t kLingerMaxBytes = 4 << 20;

std::string ServerHeader() { return std::string("kvcached/") + GetBuildInfo().version; }

bool IEquals(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(a[i])) !=
        std::tolower(static_cast<unsigned char>(b[i]))) {
      return false;
    }
  }
  return true;
}

std::string_view PathOf(std::string_view target) {
  size_t q = target.find('?');
  return q == std::string_view::npos ? target : target.substr(0, q);
}

}  // namespace

struct HttpServer::State : std::enable_shared_from_this<HttpServer::State> {
  State(net::io_context& ioc, HttpServerOptions opts, HttpHandler h, MetricsRegistry& m)
      : ioc(ioc),
        options(std::move(opts)),
        handler(std::move(h)),
        metrics(m),
        listener(std::make_shared<TcpListener>(ioc, "http/" + options.name)),
        open_gauge(m.GetGauge("kvcached_http_open_connections", "Open HTTP connections",
                              {{"server", options.name}})),
        accepted_total(m.GetCounter("kvcached_http_connections_total", "HTTP connections accepted",
                                    {{"server", options.name}})),
        rejected_total(m.GetCounter("kvcached_http_connections_rejected_total",
                                    "HTTP connections refused over --max-connections",
                                    {{"server", options.name}})),
        timeouts_total(m.GetCounter("kvcached_http_read_timeouts_total",
                                    "HTTP connections closed after the read timeout",
                                    {{"server", options.name}})),
        malformed_total(m.GetCounter("kvcached_http_malformed_requests_total",
                                     "HTTP requests refused as malformed or over a limit",
                                     {{"server", options.name}})),
        latency(m.GetHistogram("kvcached_http_request_duration_seconds",
                               "Time from a complete request header to the response written",
                               LatencyBucketsSeconds(), {{"server", options.name}})) {}

  void OnAccept(tcp::socket socket);

  net::io_context& ioc;
  const HttpServerOptions options;
  const HttpHandler handler;
  MetricsRegistry& metrics;
  std::shared_ptr<TcpListener> listener;
  std::atomic<bool> stopping{false};
  std::atomic<uint64_t> next_connection_id{1};

  ConnectionRegistry<Session> sessions;

  Gauge& open_gauge;
  Counter& accepted_total;
  Counter& rejected_total;
  Counter& timeouts_total;
  Counter& malformed_total;
  Histogram& latency;
};

// One connection. Every member is touched only on the connection's strand.
class HttpServer::Session : public std::enable_shared_from_this<HttpServer::Session> {
 public:
  Session(std::shared_ptr<State> st, tcp::socket&& socket, uint64_t id)
      : st_(std::move(st)), stream_(std::move(socket)), id_(id) {
    beast::error_code ec;
    tcp::endpoint ep = stream_.socket().remote_endpoint(ec);
    peer_ = ec ? std::string("?") : ep.address().to_string() + ":" + std::to_string(ep.port());
    stream_.socket().set_option(tcp::no_delay(true), ec);
    st_->open_gauge.Add(1);
  }

  ~Session() {
    st_->open_gauge.Add(-1);
    st_->sessions.Remove(id_);
  }

  void Start(bool reject) {
    net::dispatch(stream_.get_executor(), [self = shared_from_this(), reject] {
      SPDLOG_DEBUG("http/{} conn=#{} open from {}", self->st_->options.name, self->id_,
                   self->peer_);
      if (reject) {
        spdlog::warn("http/{} conn=#{} from {} refused: {} connections open (--max-connections)",
                     self->st_->options.name, self->id_, self->peer_,
                     self->st_->options.max_connections);
        self->SendError(503, "too many connections", /*linger=*/false);
        return;
      }
      self->ReadHeader();
    });
  }

  void Stop() {
    net::post(stream_.get_executor(), [self = shared_from_this()] {
      self->stopping_ = true;
      // A connection waiting for its next request is closed now; one in the
      // middle of a request finishes it and closes after the response.
      if (self->idle_) self->stream_.cancel();
    });
  }

 private:
  void ReadHeader() {
    if (stopping_ || st_->stopping) {
      Close();
      return;
    }
    parser_.emplace();
    parser_->header_limit(
        static_cast<uint32_t>(std::min<size_t>(st_->options.max_header_bytes, UINT32_MAX)));
    parser_->body_limit(st_->options.max_body_bytes);
    idle_ = buffer_.size() == 0;
    method_ = "-";
    target_.clear();
    stream_.expires_after(st_->options.read_timeout);
    http::async_read_header(stream_, buffer_, *parser_,
                            beast::bind_front_handler(&Session::OnHeader, shared_from_this()));
  }

  void OnHeader(beast::error_code ec, size_t) {
    idle_ = false;
    if (ec) return OnReadError(ec);
    ++seq_;
    started_ = std::chrono::steady_clock::now();
    const auto& req = parser_->get();
    method_ = std::string(req.method_string());
    target_ = std::string(req.target().substr(0, 200));
    if (st_->options.token && !IsPublic(req.target())) {
      auto auth = req.find(http::field::authorization);
      if (auth == req.end() || !st_->options.token->VerifyBearer(auth->value())) {
        spdlog::warn("http/{} conn=#{} req=#{} from {} {} {}: missing or wrong bearer token",
                     st_->options.name, id_, seq_, peer_, method_,
                     std::string(PathOf(req.target())));
        SendError(401, "a valid 'Authorization: Bearer <token>' header is required",
                  /*linger=*/!parser_->is_done(), "Bearer realm=\"kvcached\"");
        return;
      }
    }
    if (parser_->is_done()) return OnRequest({}, 0);
    auto expect = req.find(http::field::expect);
    if (expect != req.end() && IEquals(expect->value(), "100-continue")) {
      continue_ = std::make_shared<http::response<http::empty_body>>(http::status::continue_,
                                                                     req.version());
      http::async_write(stream_, *continue_,
                        [self = shared_from_this()](beast::error_code wec, size_t) {
                          if (wec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    stream_.expires_after(st_->options.read_timeout);
    http::async_read(stream_, buffer_, *parser_,
                     beast::bind_front_handler(&Session::OnRequest, shared_from_this()));
  }

  void OnRequest(beast::error_code ec, size_t) {
    if (ec) return OnReadError(ec);
    HttpRequest req = parser_->release();
    res_ = std::make_shared<HttpResponse>();
    res_->version(req.version());
    HttpRequestContext ctx{id_, seq_, peer_};
    try {
      st_->handler(req, ctx, *res_);
    } catch (const std::exception& e) {
      // Handlers return statuses; an exception here is a bug, not the
      // client's fault, and must not take the connection's thread down.
      spdlog::error("http/{} conn=#{} req=#{} handler failed: {}", st_->options.name, id_, seq_,
                    e.what());
      SetError(*res_, 500, "internal error");
    }
    keep_alive_ = req.keep_alive() && !stopping_ && !st_->stopping;
    res_->keep_alive(keep_alive_);
    res_->set(http::field::server, ServerHeader());
    res_->prepare_payload();
    if (req.method() == http::verb::head) res_->body().clear();  // length stays
    Write();
  }

  void Write() {
    stream_.expires_after(st_->options.read_timeout);
    http::async_write(stream_, *res_,
                      beast::bind_front_handler(&Session::OnWrite, shared_from_this()));
  }

  void OnWrite(beast::error_code ec, size_t) {
    Record(res_->result_int());
    if (ec) {
      SPDLOG_DEBUG("http/{} conn=#{} write failed: {}", st_->options.name, id_, ec.message());
      return Close();
    }
    if (!keep_alive_) return Close();
    ReadHeader();
  }

  void OnReadError(beast::error_code ec) {
    if (ec == http::error::end_of_stream || ec == net::error::eof ||
        ec == net::error::connection_reset || ec == net::error::operation_aborted ||
        ec == http::error::partial_message) {
      return Close();
    }
    if (ec == beast::error::timeout) {
      st_->timeouts_total.Inc();
      spdlog::info("http/{} conn=#{} from {}: closed after {} ms without a complete request",
                   st_->options.name, id_, peer_, st_->options.read_timeout.count());
      return Close();
    }
    if (ec.category() != http::make_error_code(http::error::bad_target).category()) {
      SPDLOG_DEBUG("http/{} conn=#{} read failed: {}", st_->options.name, id_, ec.message());
      return Close();
    }
    st_->malformed_total.Inc();
    if (ec == http::error::header_limit) {
      spdlog::warn("http/{} conn=#{} from {}: request header over {} bytes (--max-header-size)",
                   st_->options.name, id_, peer_, st_->options.max_header_bytes);
      return SendError(431, "request header fields too large", true);
    }
    if (ec == http::error::body_limit) {
      spdlog::warn("http/{} conn=#{} from {}: request body over {} bytes (--max-body-size)",
                   st_->options.name, id_, peer_, st_->options.max_body_bytes);
      return SendError(
          413, "request body larger than " + std::to_string(st_->options.max_body_bytes) + " bytes",
          true);
    }
    spdlog::warn("http/{} conn=#{} from {}: malformed HTTP request: {}", st_->options.name, id_,
                 peer_, ec.message());
    SendError(400, "malformed HTTP request: " + ec.message(), true);
  }

  // Answers with `status` and closes. With `linger`, the unread rest of the
  // request is drained for a moment first, so the client reads the answer
  // instead of a connection reset.
  void SendError(int status, const std::string& text, bool linger,
                 const char* www_authenticate = nullptr) {
    res_ = std::make_shared<HttpResponse>();
    res_->version(11);
    SetError(*res_, status, text);
    if (www_authenticate != nullptr) res_->set(http::field::www_authenticate, www_authenticate);
    res_->keep_alive(false);
    res_->set(http::field::server, ServerHeader());
    res_->prepare_payload();
    stream_.expires_after(st_->options.read_timeout);
    http::async_write(stream_, *res_,
                      [self = shared_from_this(), linger, status](beast::error_code ec, size_t) {
                        self->Record(status);
                        if (ec || !linger) return self->Close();
                        self->Linger();
                      });
  }

  void Linger() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_send, ec);
    stream_.expires_after(kLingerTimeout);
    drain_.resize(64 << 10);
    DrainSome();
  }

  void DrainSome() {
    stream_.async_read_some(net::buffer(drain_),
                            [self = shared_from_this()](beast::error_code ec, size_t n) {
                              self->drained_ += n;
                              if (ec || self->drained_ > kLingerMaxBytes) return self->Close();
                              self->DrainSome();
                            });
  }

  void Close() {
    beast::error_code ec;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ec);
    stream_.socket().close(ec);
  }

  // Counts and times one answered request and logs it at debug level: the
  // one line per request a person follows with --log-level debug.
  void Record(int status) {
    SPDLOG_DEBUG("http/{} conn=#{} req=#{} {} {} -> {} ({} bytes)", st_->options.name, id_, seq_,
                 method_, target_.empty() ? "-" : target_, status, res_ ? res_->body().size() : 0);
    st_->metrics
        .GetCounter(
            "kvcached_http_requests_total", "HTTP requests answered, by method and status",
            {{"server", st_->options.name}, {"method", method_}, {"code", std::to_string(status)}})
        .Inc();
    if (started_ != std::chrono::steady_clock::time_point{}) {
      st_->latency.ObserveSeconds(
          std::chrono::duration<double>(std::chrono::steady_clock::now() - started_).count());
      started_ = {};
    }
  }

  bool IsPublic(std::string_view target) const {
    std::string_view path = PathOf(target);
    for (const std::string& p : st_->options.public_paths) {
      if (path == p) return true;
    }
    return false;
  }

  std::shared_ptr<State> st_;
  beast::tcp_stream stream_;
  beast::flat_buffer buffer_;
  std::optional<http::request_parser<http::string_body>> parser_;
  std::shared_ptr<HttpResponse> res_;
  std::shared_ptr<http::response<http::empty_body>> continue_;
  std::vector<char> drain_;
  size_t drained_ = 0;
  const uint64_t id_;
  uint64_t seq_ = 0;
  std::string peer_;
  std::string method_ = "-";
  std::string target_;  // first 200 bytes, for the log
  std::chrono::steady_clock::time_point started_{};
  bool idle_ = false;
  bool keep_alive_ = false;
  bool stopping_ = false;
};

void HttpServer::State::OnAccept(tcp::socket socket) {
  if (stopping) return;
  accepted_total.Inc();
  uint64_t id = next_connection_id.fetch_add(1);
  auto session = std::make_shared<Session>(shared_from_this(), std::move(socket), id);
  // Over the limit the session still answers 503 before it closes.
  bool reject = !sessions.Add(id, session, options.max_connections);
  if (reject) rejected_total.Inc();
  session->Start(reject);
}

HttpServer::HttpServer(net::io_context& ioc, HttpServerOptions options, HttpHandler handler,
                       MetricsRegistry& metrics)
    : state_(std::make_shared<State>(ioc, std::move(options), std::move(handler), metrics)) {}

HttpServer::~HttpServer() { BeginShutdown(); }

Status HttpServer::Start() {
  return ListenFor(*state_->listener, state_->options.host, state_->options.port, state_);
}

std::string HttpServer::address() const { return state_->listener->address(); }
uint16_t HttpServer::port() const { return state_->listener->port(); }
bool HttpServer::bound_to_loopback() const { return state_->listener->loopback(); }
const HttpServerOptions& HttpServer::options() const { return state_->options; }

void HttpServer::BeginShutdown() {
  if (state_->stopping.exchange(true)) return;
  state_->listener->Close();
  for (auto& s : state_->sessions.Live()) s->Stop();
}

size_t HttpServer::open_connections() const {
  return static_cast<size_t>(std::max<int64_t>(0, state_->open_gauge.Value()));
}

bool HttpServer::ServeHealthOrMetrics(const HttpRequest& req, const MetricsRegistry& metrics,
                                      HttpResponse& res) {
  std::string_view path = PathOf(req.target());
  if (path != "/health" && path != "/metrics") return false;
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    res.set(http::field::allow, "GET, HEAD");
    SetError(res, 405, "method not allowed");
    return true;
  }
  res.result(http::status::ok);
  if (path == "/health") {
    res.set(http::field::content_type, "text/plain; charset=utf-8");
    res.body() = "OK\n";
  } else {
    res.set(http::field::content_type, "text/plain; version=0.0.4; charset=utf-8");
    res.body() = metrics.Render();
  }
  return true;
}

void HttpServer::SetError(HttpResponse& res, int status, const std::string& text) {
  res.result(static_cast<unsigned>(status));
  res.set(http::field::content_type, "text/plain; charset=utf-8");
  res.body() = text + "\n";
}

}  // namespace kvcached
