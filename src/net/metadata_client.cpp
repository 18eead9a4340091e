#include "net/metadata_client.h"

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/core/tcp_stream.hpp>
#include <boost/beast/http/error.hpp>
#include <boost/beast/http/parser.hpp>
#include <boost/beast/http/read.hpp>
#include <boost/beast/http/string_body.hpp>
#include <boost/beast/http/write.hpp>

#include <utility>

#include "core/build_info.h"
#include "core/printable.h"

namespace kvcached {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxResponseHeaderBytes = 16 << 10;

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

bool IsDigits(std::string_view text) {
  if (text.empty()) return false;
  for (char c : text) {
    if (c < '0' || c > '9') return false;
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

// The first line of an error answer, which is all kvcached and Mooncake put
// there; falls back to the status line's reason phrase.
std::string Reason(const http::response<http::string_body>& res) {
  std::string_view body = res.body();
  body = body.substr(0, body.find('\n'));
  while (!body.empty() && (body.back() == '\r' || body.back() == ' ')) body.remove_suffix(1);
  if (body.empty()) body = std::string_view(res.reason().data(), res.reason().size());
  return Printable(body);
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
  if (!IsDigits(port) || port.size() > 5 || std::stoul(std::string(port)) == 0 ||
      std::stoul(std::string(port)) > 65535) {
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

// One request on a fresh connection. The I/O is asynchronous on a private
// io_context only because Beast's tcp_stream enforces its expiry on
// asynchronous operations alone; the caller still just blocks in run().
// Long because it is one blocking exchange (resolve, connect, write, read,
// answer) whose steps share one deadline and one error wording; split, each
// step would need both passed in.
Result<std::optional<std::string>> MetadataClient::RoundTrip(Method method, std::string_view key,
                                                             std::string_view body) const {
  if (key.empty()) return Status(ErrorCode::INVALID_PARAMS, "metadata key must not be empty");
  const auto deadline = std::chrono::steady_clock::now() + options_.timeout;
  const char* method_name = method == Method::kPut   ? "PUT"
                            : method == Method::kGet ? "GET"
                                                     : "DELETE";
  const std::string request = std::string(method_name) + " '" + Printable(key) + "'";
  const std::string within = " within " + std::to_string(options_.timeout.count()) + " ms";

  asio::io_context ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  tcp::resolver::results_type endpoints = resolver.resolve(host_, port_, ec);
  if (ec) {
    return Status(ErrorCode::RPC_FAIL,
                  "cannot resolve the host of metadata server " + url_ + ": " + ec.message());
  }
  if (std::chrono::steady_clock::now() >= deadline) {
    return Status(ErrorCode::RPC_TIMEOUT,
                  "resolving the host of metadata server " + url_ + " did not finish" + within);
  }

  http::request<http::string_body> req;
  req.method(method == Method::kPut   ? http::verb::put
             : method == Method::kGet ? http::verb::get
                                      : http::verb::delete_);
  req.target(path_ + "?key=" + PercentEncode(key));
  req.version(11);
  req.set(http::field::host, host_header_);
  req.set(http::field::user_agent, std::string("kvcached/") + GetBuildInfo().version);
  if (!options_.token.empty()) req.set(http::field::authorization, "Bearer " + options_.token);
  if (method == Method::kPut) req.body().assign(body.data(), body.size());
  req.keep_alive(false);
  req.prepare_payload();

  beast::tcp_stream stream(ioc);
  stream.expires_at(deadline);  // covers connect, write and read together
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxResponseHeaderBytes);
  parser.body_limit(options_.max_response_body_bytes);

  beast::error_code connect_ec, write_ec, read_ec;
  bool read_done = false;
  stream.async_connect(endpoints, [&](const beast::error_code& e, const tcp::endpoint&) {
    connect_ec = e;
    if (e) return;
    http::async_write(stream, req, [&](const beast::error_code& e, size_t) {
      write_ec = e;
      if (e == beast::error::timeout) return;
      // Even when the write failed the server may have answered: it refuses
      // an oversized or unauthorised request from its header and drains the
      // rest, so its reason is worth reading.
      //
      // The header is read on its own first: Beast 1.74's eager parse (what
      // async_read does) loses the body_limit error when body bytes follow
      // the header in the same read, and string_body then reserves whatever
      // Content-Length the server claims.
      http::async_read_header(stream, buffer, parser, [&](const beast::error_code& e, size_t) {
        read_ec = e;
        if (!e && parser.content_length() &&
            *parser.content_length() > options_.max_response_body_bytes) {
          read_ec = http::error::body_limit;
        }
        if (read_ec) {
          read_done = true;
          return;
        }
        http::async_read(stream, buffer, parser, [&](const beast::error_code& e, size_t) {
          read_ec = e;
          read_done = true;
        });
      });
    });
  });
  ioc.run();

  if (connect_ec == beast::error::timeout) {
    return Status(ErrorCode::RPC_TIMEOUT,
                  "cannot connect to metadata server " + url_ + within + " (" + request + ")");
  }
  if (connect_ec) {
    return Status(ErrorCode::RPC_FAIL, "cannot connect to metadata server " + url_ + ": " +
                                           connect_ec.message() + " (" + request + ")");
  }
  if (write_ec == beast::error::timeout) {
    return Status(ErrorCode::RPC_TIMEOUT,
                  "could not send " + request + " to metadata server " + url_ + within);
  }
  if (!read_done || read_ec) {
    if (write_ec) {
      return Status(ErrorCode::RPC_FAIL, "lost the connection to metadata server " + url_ +
                                             " while sending " + request + ": " +
                                             write_ec.message());
    }
    if (read_ec == beast::error::timeout) {
      return Status(ErrorCode::RPC_TIMEOUT,
                    "no answer from metadata server " + url_ + " to " + request + within);
    }
    if (read_ec == http::error::body_limit) {
      return Status(ErrorCode::BUFFER_OVERFLOW,
                    "the answer of metadata server " + url_ + " to " + request + " exceeds " +
                        std::to_string(options_.max_response_body_bytes) + " bytes");
    }
    return Status(ErrorCode::RPC_FAIL, "bad or no answer from metadata server " + url_ + " to " +
                                           request + ": " + read_ec.message());
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  http::response<http::string_body> res = parser.release();
  unsigned status = res.result_int();
  if (status >= 200 && status < 300) return std::optional<std::string>(std::move(res.body()));
  // A PUT cannot be "not found": a 404 there means a wrong path.
  if (status == 404 && method != Method::kPut) return std::optional<std::string>();
  std::string answered =
      "metadata server " + url_ + " answered " + std::to_string(status) + " to " + request;
  if (status == 401 || status == 403) {
    return Status(
        ErrorCode::ILLEGAL_CLIENT,
        answered + (options_.token.empty() ? " (no token was sent): " : ": ") + Reason(res));
  }
  return Status(ErrorCode::ETCD_OPERATION_ERROR, answered + ": " + Reason(res));
}

}  // namespace kvcached
