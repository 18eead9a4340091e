// HttpServer: the HTTP/1.1 front end shared by `kvcached meta` and the
// master's admin port. Keep-alive, pipelining-safe sessions on Asio strands;
// every limit enforced before the bytes it guards are buffered: header size
// (431), body size (413, answered before the body is read, also for
// "Expect: 100-continue"), idle and slow clients (closed after
// read_timeout), concurrent connections (503 beyond the limit), bearer
// token (401). Malformed HTTP gets a 400 and the connection is closed; no
// input can crash the server.
//
// Threading: the server runs on the io_context the caller supplies and
// drives with any number of threads. The Handler is called on a session's
// strand, concurrently for different connections, so it must be
// thread-safe. Start() and BeginShutdown() may be called from any thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <boost/asio/io_context.hpp>
#include <boost/beast/http/message.hpp>
#include <boost/beast/http/string_body.hpp>

#include "core/auth_token.h"
#include "core/metrics.h"
#include "core/status.h"

namespace kvcached {

struct HttpServerOptions {
  std::string name = "http";  // for logs and the metrics label `server`
  std::string host = "127.0.0.1";
  uint16_t port = 0;  // 0: any free port (see port())
  size_t max_body_bytes = 16 << 20;
  size_t max_header_bytes = 16 << 10;
  size_t max_connections = 1024;
  std::chrono::milliseconds read_timeout{30'000};
  std::optional<AuthToken> token;  // when set, every path but public_paths needs it
  std::vector<std::string> public_paths{"/health"};
};

using HttpRequest = boost::beast::http::request<boost::beast::http::string_body>;
using HttpResponse = boost::beast::http::response<boost::beast::http::string_body>;

// Per-request facts a handler may log.
struct HttpRequestContext {
  uint64_t connection_id;
  uint64_t request_seq;  // 1 for the first request on the connection
  std::string peer;      // "127.0.0.1:53211"
};

// Must fill status and body; the server sets version, keep-alive, Server and
// Content-Length. Called on a session strand; must not block for long.
using HttpHandler =
    std::function<void(const HttpRequest&, const HttpRequestContext&, HttpResponse&)>;

class HttpServer {
 public:
  HttpServer(boost::asio::io_context& ioc, HttpServerOptions options, HttpHandler handler,
             MetricsRegistry& metrics);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Resolves, binds and listens, then accepts in the background. Fails with
  // INVALID_PARAMS (bad host) or UNAVAILABLE_IN_CURRENT_STATUS (bind/listen
  // failed: address in use, permission), the message naming the address and
  // the OS error.
  Status Start();
  // The bound address, valid after Start(): "127.0.0.1:8080".
  std::string address() const;
  uint16_t port() const;
  bool bound_to_loopback() const;

  // Stops accepting, closes idle connections, and lets requests being
  // handled finish with "Connection: close". Idempotent.
  void BeginShutdown();
  // Connections still open (including those finishing their last request).
  size_t open_connections() const;

  const HttpServerOptions& options() const;

  // Fills a plain-text error response (used for server-made errors too).
  static void SetError(HttpResponse& res, int status, const std::string& text);
  // Answers GET/HEAD /health ("OK") and /metrics (Prometheus text from
  // `metrics`), 405 for other methods there. Returns false for other paths.
  static bool ServeHealthOrMetrics(const HttpRequest& req, const MetricsRegistry& metrics,
                                   HttpResponse& res);

 private:
  class Session;
  struct State;  // shared with sessions, so it outlives the server object
  std::shared_ptr<State> state_;
};

}  // namespace kvcached
