// MetadataService: the metadata HTTP service, protocol-compatible with
// Mooncake's http_metadata_server so Mooncake clients and recipes work
// unchanged:
//   GET    /metadata?key=K  200 + stored bytes (application/json) | 404
//   PUT    /metadata?key=K  200, stores the body as-is; a key containing
//                           "rpc_meta" that holds different bytes -> 400
//   DELETE /metadata?key=K  200 | 404
//   the key is stripped of blanks as the reference does (" k " is "k");
//   a missing or blank key -> 400, checked before the method; other
//   methods on /metadata -> 405. Every /metadata answer is labelled
//   application/json, its body a short text (as the reference's).
//   GET /health -> 200, GET /metrics -> Prometheus text
// `kvcached meta` runs it alone; `kvcached master` embeds the same class.
// Threading: Handle() is thread-safe; Start()/BeginShutdown() as HttpServer.
#pragma once

#include <memory>

#include <boost/asio/io_context.hpp>

#include "core/metadata_store.h"
#include "core/metrics.h"
#include "net/http_server.h"

namespace kvcached {

class MetadataService {
 public:
  MetadataService(boost::asio::io_context& ioc, HttpServerOptions http, MetadataLimits limits,
                  MetricsRegistry& metrics);

  // Binds and serves; see HttpServer::Start for the errors.
  Status Start();
  void BeginShutdown() { server_.BeginShutdown(); }
  size_t open_connections() const { return server_.open_connections(); }
  const HttpServer& server() const { return server_; }
  MetadataStore& store() { return store_; }

  // The request handling itself, without sockets (also what the fuzzer
  // drives). Thread-safe.
  void Handle(const HttpRequest& req, const HttpRequestContext& ctx, HttpResponse& res);

 private:
  void HandleMetadata(const HttpRequest& req, const HttpRequestContext& ctx, HttpResponse& res);

  MetricsRegistry& metrics_;
  MetadataStore store_;
  HttpServer server_;
};

}  // namespace kvcached
