#include "net/metadata_client.h"

#include <utility>

#include "core/printable.h"
#include "core/units.h"
#include "net/http_call.h"

namespace kvcached {
namespace {

// curl_easy_escape's encoding (what Mooncake's clients send): everything but
// RFC 3986 unreserved characters becomes %XX, so '+', '/', '&', '#', '%' and
// any byte survive the server's form decoding unchanged.
std::string PercentEncode(std::string_view text) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(text.size() * 3);
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    bool unreserved = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                      c == '-' || c == '.' || c == '_' || c == '~';
    if (unreserved) {
      out.push_back(ch);
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

// Visible ASCII only: no spaces, no control bytes (which would let a value
// inject header lines), nothing a request line cannot carry.
bool IsVisibleAscii(std::string_view text) {
  for (char ch : text) {
    auto c = static_cast<unsigned char>(ch);
    if (c <= 0x20 || c >= 0x7f) return false;
  }
  return true;
}

std::string Lower(std::string_view text) {
  std::string out(text);
  for (char& c : out) {
    if (c >= 'A' && c <= 'Z') c = static_cast<char>(c - 'A' + 'a');
  }
  return out;
}

// The forms Create accepts, for its messages.
constexpr std::string_view kExpected =
    "http://HOST:PORT/metadata or etcd://HOST:PORT[;HOST:PORT...]";

Status BadUrl(std::string_view url, const std::string& why) {
  return Status(ErrorCode::INVALID_PARAMS, "metadata server URL '" + Printable(url) + "': " + why);
}

Status EmptyKey() { return Status(ErrorCode::INVALID_PARAMS, "metadata key must not be empty"); }

}  // namespace

Result<MetadataClient> MetadataClient::Create(MetadataClientOptions options) {
  if (!IsVisibleAscii(options.token)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "metadata token must not contain spaces or control characters");
  }
  if (options.timeout.count() <= 0) {
    return Status(ErrorCode::INVALID_PARAMS, "metadata client timeout must be positive");
  }
  MetadataClient c;
  c.options_ = std::move(options);
  const std::string& url = c.options_.url;
  Status parsed;
  if (url.empty()) {
    parsed = BadUrl(url, "empty; expected " + std::string(kExpected));
  } else if (url == "P2PHANDSHAKE") {
    // Mooncake's word for "no metadata server": a caller that gets it
    // publishes nothing, so reaching here is a caller's mistake.
    parsed =
        BadUrl(url, "P2PHANDSHAKE (no metadata server) names nothing to connect to; expected " +
                        std::string(kExpected));
  } else if (std::optional<std::string> endpoints = EtcdEndpointsOf(url)) {
    parsed = c.ParseEtcdAddress(*endpoints, /*bare=*/false);
  } else if (url.find("://") == std::string::npos) {
    // As Mooncake's parseConnectionString: no scheme means etcd.
    parsed = c.ParseEtcdAddress(url, /*bare=*/true);
  } else {
    parsed = c.ParseHttpUrl(url);
  }
  if (!parsed.ok()) return parsed;
  return c;
}

Status MetadataClient::ParseEtcdAddress(std::string_view endpoints, bool bare) {
  // The token is kvcached's secret and etcd another trust domain: sending it
  // (etcd's gateway reads an Authorization header as its own auth token)
  // would hand it to whoever runs etcd. Refusing a token would be no safer:
  // a store passes its one cluster token (master, data port, metadata), so
  // a token-protected cluster could then use etcd only by dropping the token
  // everywhere. So it stays unused, and guarding etcd (its network, its own
  // auth) is etcd's business; docs/metadata-service.md says so.
  Result<EtcdClient> etcd = EtcdClient::Create(endpoints, options_.timeout);
  if (!etcd.ok()) {
    std::string why = etcd.status().message();
    if (bare) {
      why +=
          "; a URL without a scheme is read as etcd members, as Mooncake reads it (for the "
          "HTTP service write http://HOST:PORT/metadata)";
    }
    return BadUrl(options_.url, why);
  }
  etcd_ = std::move(etcd).value();
  url_ = "etcd://" + etcd_->endpoints();
  return Status::Ok();
}

Status MetadataClient::ParseHttpUrl(std::string_view url) {
  size_t sep = url.find("://");
  std::string scheme = Lower(url.substr(0, sep));
  if (scheme != "http") {
    return BadUrl(url, "scheme '" + Printable(scheme) +
                           "://' is not supported; only http:// and etcd:// are (not https or "
                           "redis)");
  }
  std::string_view rest = url.substr(sep + 3);
  size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return BadUrl(url, "a query or fragment is not allowed; the client adds ?key=");
  }
  if (authority.find('@') != std::string_view::npos) {
    return BadUrl(url, "user info (USER@HOST) is not supported; set the token instead");
  }

  std::string_view host, port;
  bool bracketed = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return BadUrl(url, "unterminated '[' in the host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return BadUrl(url, "junk after the IPv6 address");
    port = after.empty() ? "80" : after.substr(1);
    bracketed = true;
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos &&
        authority.find(':', colon + 1) != std::string_view::npos) {
      return BadUrl(url,
                    "an IPv6 address must be written in brackets: http://[ADDR]:PORT/metadata");
    }
    host = authority.substr(0, colon);
    port = colon == std::string_view::npos ? "80" : authority.substr(colon + 1);
  }
  if (host.empty()) return BadUrl(url, "no host");
  if (!IsVisibleAscii(host) || host.find_first_of("[]") != std::string_view::npos) {
    return BadUrl(url, "bad characters in the host");
  }
  if (!ParsePort(port)) {
    return BadUrl(url, "port '" + Printable(port) + "' is not a number from 1 to 65535");
  }
  if (path.empty() || path == "/") path = "/metadata";
  if (!IsVisibleAscii(path)) return BadUrl(url, "bad characters in the path");

  host_ = std::string(host);
  port_ = std::to_string(*ParsePort(port));
  host_header_ = (bracketed ? "[" + host_ + "]" : host_) + ":" + port_;
  path_ = std::string(path);
  url_ = "http://" + host_header_ + path_;
  return Status::Ok();
}

Status MetadataClient::Put(std::string_view key, std::string_view value) const {
  if (key.empty()) return EmptyKey();
  if (etcd_) return EtcdPut(key, value);
  return RoundTrip(Method::kPut, key, value).status();
}

Result<std::optional<std::string>> MetadataClient::Get(std::string_view key) const {
  if (key.empty()) return EmptyKey();
  if (!etcd_) return RoundTrip(Method::kGet, key, {});
  Result<std::optional<EtcdKeyValue>> got = etcd_->Get(key);
  if (!got.ok()) return got.status();
  std::optional<EtcdKeyValue>& kv = got.value();
  if (!kv) return std::optional<std::string>();
  // EtcdClient bounds the answer at 4 MiB; the caller's own bound is on the
  // value, so both backends refuse the same values.
  if (kv->value.size() > options_.max_response_body_bytes) {
    return Status(ErrorCode::BUFFER_OVERFLOW,
                  "the value of '" + Printable(key) + "' in " + url_ + " (" +
                      std::to_string(kv->value.size()) + " bytes) exceeds " +
                      std::to_string(options_.max_response_body_bytes) + " bytes");
  }
  return std::optional<std::string>(std::move(kv->value));
}

Status MetadataClient::Delete(std::string_view key) const {
  if (key.empty()) return EmptyKey();
  if (etcd_) return etcd_->Delete(key).status();  // 0 keys deleted is OK: idempotent
  return RoundTrip(Method::kDelete, key, {}).status();
}

// The HTTP service's rpc_meta rule (core/metadata_store.h), kept so the two
// backends honour one contract: an rpc_meta key says where a live node is,
// and another writer must not move it silently. Mooncake's own etcd plugin
// does not check, so this guards only against writers using this client.
Status MetadataClient::EtcdPut(std::string_view key, std::string_view value) const {
  if (key.find("rpc_meta") == std::string_view::npos) return etcd_->Put(key, value).status();
  // One transaction: create, or read what is there; equal bytes leave it as
  // it is (a node republishing), so no second write can race this one.
  Result<EtcdCreateResult> res = etcd_->CreateIfAbsent(key, value, /*lease=*/0);
  if (!res.ok()) return res.status();
  if (res->created || (res->current && res->current->value == value)) return Status::Ok();
  return Status(ErrorCode::ETCD_OPERATION_ERROR,
                "rpc_meta key '" + Printable(key) + "' in " + url_ +
                    " already holds a different value; Delete it first");
}

// HTTP: one request on a fresh connection (net/http_call.h).
Result<std::optional<std::string>> MetadataClient::RoundTrip(Method method, std::string_view key,
                                                             std::string_view body) const {
  HttpCallRequest call;
  call.method = method == Method::kPut ? "PUT" : method == Method::kGet ? "GET" : "DELETE";
  call.what = call.method + " '" + Printable(key) + "'";
  call.peer = "metadata server " + url_;
  call.timeout = options_.timeout;
  call.deadline = std::chrono::steady_clock::now() + options_.timeout;
  call.host = host_;
  call.port = port_;
  call.host_header = host_header_;
  call.target = path_ + "?key=" + PercentEncode(key);
  if (!options_.token.empty()) call.authorization = "Bearer " + options_.token;
  if (method == Method::kPut) call.body.assign(body.data(), body.size());
  call.max_response_body_bytes = options_.max_response_body_bytes;
  Result<HttpAnswer> res = HttpCall(call);
  if (!res.ok()) return res.status();
  unsigned status = res->status;
  if (status >= 200 && status < 300) return std::optional<std::string>(std::move(res->body));
  // A PUT cannot be "not found": a 404 there means a wrong path.
  if (status == 404 && method != Method::kPut) return std::optional<std::string>();
  std::string answered =
      "metadata server " + url_ + " answered " + std::to_string(status) + " to " + call.what;
  if (status == 401 || status == 403) {
    return Status(
        ErrorCode::ILLEGAL_CLIENT,
        answered + (options_.token.empty() ? " (no token was sent): " : ": ") + res->reason);
  }
  return Status(ErrorCode::ETCD_OPERATION_ERROR, answered + ": " + res->reason);
}

}  // namespace kvcached
