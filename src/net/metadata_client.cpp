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

}  // namespace

Result<MetadataClient> MetadataClient::Create(MetadataClientOptions options) {
  const std::string url = options.url;
  auto bad = [&url](const std::string& why) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "metadata server URL '" + Printable(url) + "': " + why);
  };
  if (url.empty()) return bad("empty; expected http://HOST:PORT/metadata");
  size_t sep = url.find("://");
  if (sep == std::string::npos) {
    if (url == "P2PHANDSHAKE") {
      return bad(
          "P2PHANDSHAKE (no metadata server) is not supported; expected "
          "http://HOST:PORT/metadata");
    }
    return bad(
        "no scheme; Mooncake reads a bare HOST:PORT as an etcd address, which is not supported; "
        "expected http://HOST:PORT/metadata");
  }
  std::string scheme = Lower(std::string_view(url).substr(0, sep));
  if (scheme != "http") {
    return bad("scheme '" + Printable(scheme) +
               "://' is not supported; only http:// is (not https, etcd or redis)");
  }
  std::string_view rest = std::string_view(url).substr(sep + 3);
  size_t authority_end = rest.find_first_of("/?#");
  std::string_view authority = rest.substr(0, authority_end);
  std::string_view path =
      authority_end == std::string_view::npos ? std::string_view() : rest.substr(authority_end);
  if (path.find_first_of("?#") != std::string_view::npos) {
    return bad("a query or fragment is not allowed; the client adds ?key=");
  }
  if (authority.find('@') != std::string_view::npos) {
    return bad("user info (USER@HOST) is not supported; set the token instead");
  }

  std::string_view host, port;
  bool bracketed = false;
  if (!authority.empty() && authority.front() == '[') {
    size_t close = authority.find(']');
    if (close == std::string_view::npos) return bad("unterminated '[' in the host");
    host = authority.substr(1, close - 1);
    std::string_view after = authority.substr(close + 1);
    if (!after.empty() && after.front() != ':') return bad("junk after the IPv6 address");
    port = after.empty() ? "80" : after.substr(1);
    bracketed = true;
  } else {
    size_t colon = authority.find(':');
    if (colon != std::string_view::npos &&
        authority.find(':', colon + 1) != std::string_view::npos) {
      return bad("an IPv6 address must be written in brackets: http://[ADDR]:PORT/metadata");
    }
    host = authority.substr(0, colon);
    port = colon == std::string_view::npos ? "80" : authority.substr(colon + 1);
  }
  if (host.empty()) return bad("no host");
  if (!IsVisibleAscii(host) || host.find_first_of("[]") != std::string_view::npos) {
    return bad("bad characters in the host");
  }
  if (!ParsePort(port)) {
    return bad("port '" + Printable(port) + "' is not a number from 1 to 65535");
  }
  if (path.empty() || path == "/") path = "/metadata";
  if (!IsVisibleAscii(path)) return bad("bad characters in the path");

  if (!IsVisibleAscii(options.token)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "metadata token must not contain spaces or control characters");
  }
  if (options.timeout.count() <= 0) {
    return Status(ErrorCode::INVALID_PARAMS, "metadata client timeout must be positive");
  }

  MetadataClient c;
  c.host_ = std::string(host);
  c.port_ = std::to_string(std::stoul(std::string(port)));
  c.host_header_ = (bracketed ? "[" + c.host_ + "]" : c.host_) + ":" + c.port_;
  c.path_ = std::string(path);
  c.url_ = "http://" + c.host_header_ + c.path_;
  c.options_ = std::move(options);
  return c;
}

Status MetadataClient::Put(std::string_view key, std::string_view value) const {
  return RoundTrip(Method::kPut, key, value).status();
}

Result<std::optional<std::string>> MetadataClient::Get(std::string_view key) const {
  return RoundTrip(Method::kGet, key, {});
}

Status MetadataClient::Delete(std::string_view key) const {
  return RoundTrip(Method::kDelete, key, {}).status();
}

// One request on a fresh connection (net/http_call.h).
Result<std::optional<std::string>> MetadataClient::RoundTrip(Method method, std::string_view key,
                                                             std::string_view body) const {
  if (key.empty()) return Status(ErrorCode::INVALID_PARAMS, "metadata key must not be empty");
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
