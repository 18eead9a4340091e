#include "master/metadata_service.h"

#include <spdlog/spdlog.h>
#include <boost/beast/http.hpp>

#include "core/printable.h"
#include "core/url_query.h"

namespace kvcached {
namespace {

namespace http = boost::beast::http;

// Mooncake's reference server takes the key with Python's str.strip(): a
// key of blanks is no key, and " k " names "k". These are the ASCII
// characters str.strip() removes.
std::string_view StripBlanks(std::string_view key) {
  constexpr std::string_view kBlanks = " \t\n\r\v\f\x1c\x1d\x1e\x1f";
  size_t first = key.find_first_not_of(kBlanks);
  if (first == std::string_view::npos) return {};
  return key.substr(first, key.find_last_not_of(kBlanks) - first + 1);
}

// Every answer on /metadata is labelled application/json, as the reference
// server labels its own; the body is a short text, as there.
void Answer(HttpResponse& res, int status, const std::string& text) {
  res.result(static_cast<unsigned>(status));
  res.set(http::field::content_type, "application/json");
  res.body() = text;
}

}  // namespace

MetadataService::MetadataService(boost::asio::io_context& ioc, HttpServerOptions http,
                                 MetadataLimits limits, MetricsRegistry& metrics)
    : metrics_(metrics),
      store_(limits),
      server_(
          ioc, std::move(http),
          [this](const HttpRequest& req, const HttpRequestContext& ctx, HttpResponse& res) {
            Handle(req, ctx, res);
          },
          metrics) {
  metrics_.AddGaugeCallback("kvcached_meta_keys", "Keys held by the metadata service", {},
                            [this] { return static_cast<double>(store_.KeyCount()); });
  metrics_.AddGaugeCallback("kvcached_meta_stored_bytes",
                            "Bytes of keys and values held by the metadata service", {},
                            [this] { return static_cast<double>(store_.TotalBytes()); });
  metrics_.AddGaugeCallback(
      "kvcached_meta_capacity_bytes",
      "Limit on the bytes the metadata service holds (--max-total-size)", {},
      [this] { return static_cast<double>(store_.limits().max_total_bytes); });
}

Status MetadataService::Start() { return server_.Start(); }

void MetadataService::Handle(const HttpRequest& req, const HttpRequestContext& ctx,
                             HttpResponse& res) {
  std::string_view target(req.target().data(), req.target().size());
  std::string_view path = target.substr(0, target.find('?'));
  if (path == "/metadata") return HandleMetadata(req, ctx, res);

  if (HttpServer::ServeHealthOrMetrics(req, metrics_, res)) return;
  HttpServer::SetError(res, 404, "no such path; the metadata API is /metadata?key=K");
}

void MetadataService::HandleMetadata(const HttpRequest& req, const HttpRequestContext& ctx,
                                     HttpResponse& res) {
  const char* op = nullptr;
  switch (req.method()) {
    case http::verb::get:
    case http::verb::head:
      op = "get";
      break;
    case http::verb::put:
      op = "put";
      break;
    case http::verb::delete_:
      op = "delete";
      break;
    default:
      op = "other";
      break;
  }
  auto count = [&](const char* result) {
    metrics_
        .GetCounter("kvcached_meta_operations_total", "Metadata operations by result",
                    {{"op", op}, {"result", result}})
        .Inc();
  };

  // The key first, then the method: the reference server's order (a POST
  // without a key is 400, with one 405).
  std::string_view target(req.target().data(), req.target().size());
  size_t q = target.find('?');
  std::string_view query = q == std::string_view::npos ? std::string_view() : target.substr(q + 1);
  Result<std::optional<std::string>> key = QueryParam(query, "key");
  if (!key.ok()) {
    count("bad_request");
    return Answer(res, 400, "bad key escaping: " + key.status().message());
  }
  const std::string k(key->has_value() ? StripBlanks(**key) : std::string_view());
  if (k.empty()) {
    count("bad_request");
    return Answer(res, 400, "metadata key is required (the 'key' query parameter, not blank)");
  }
  if (std::string_view(op) == "other") {
    count("bad_request");
    res.set(http::field::allow, "GET, HEAD, PUT, DELETE");
    return Answer(res, 405, "Method not allowed; use GET, PUT or DELETE");
  }

  Status st;
  const char* done = "metadata updated";
  if (std::string_view(op) == "get") {
    Result<MetadataStore::Value> v = store_.Get(k);
    if (v.ok()) {
      Answer(res, 200, **v);
      count("ok");
      return;
    }
    st = v.status();
  } else if (std::string_view(op) == "put") {
    st = store_.Put(k, req.body());
  } else {
    st = store_.Remove(k);
    done = "metadata deleted";
    if (st.ok()) {
      spdlog::info("metadata conn=#{} req=#{} from {} deleted key='{}'", ctx.connection_id,
                   ctx.request_seq, ctx.peer, Printable(k));
    }
  }
  if (st.ok()) {
    count("ok");
    return Answer(res, 200, done);
  }

  int status = HttpStatus(st.code());
  switch (st.code()) {
    case ErrorCode::OBJECT_NOT_FOUND:
      count("not_found");
      return Answer(res, 404, "metadata not found");
    case ErrorCode::OBJECT_ALREADY_EXISTS:
      // Mooncake answers 400 here; clients treat any non-200 as failure.
      status = 400;
      spdlog::warn("metadata conn=#{} req=#{} from {} refused to overwrite key='{}': {}",
                   ctx.connection_id, ctx.request_seq, ctx.peer, Printable(k), st.message());
      count("conflict");
      break;
    case ErrorCode::NO_AVAILABLE_HANDLE:
      spdlog::warn("metadata conn=#{} req=#{} put key='{}' refused: {}", ctx.connection_id,
                   ctx.request_seq, Printable(k), st.message());
      count("full");
      break;
    default:
      count("bad_request");
      break;
  }
  Answer(res, status, st.message());
}

}  // namespace kvcached
