#include "net/http_call.h"

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

#include "core/build_info.h"
#include "core/printable.h"

namespace kvcached {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace http = beast::http;
using tcp = asio::ip::tcp;

constexpr size_t kMaxResponseHeaderBytes = 16 << 10;

// The first line of an error answer, which is all kvcached, Mooncake and
// etcd put there; falls back to the status line's reason phrase.
std::string Reason(const http::response<http::string_body>& res) {
  std::string_view body = res.body();
  body = body.substr(0, body.find('\n'));
  while (!body.empty() && (body.back() == '\r' || body.back() == ' ')) body.remove_suffix(1);
  if (body.empty()) body = std::string_view(res.reason().data(), res.reason().size());
  return Printable(body);
}

}  // namespace

// The I/O is asynchronous on a private io_context only because Beast's
// tcp_stream enforces its expiry on asynchronous operations alone; the
// caller still just blocks in run(). Long because it is one blocking
// exchange (resolve, connect, write, read, answer) whose steps share one
// deadline and one error wording; split, each step would need both passed in.
Result<HttpAnswer> HttpCall(const HttpCallRequest& r) {
  const std::string within = " within " + std::to_string(r.timeout.count()) + " ms";
  asio::io_context ioc;
  beast::error_code ec;
  tcp::resolver resolver(ioc);
  tcp::resolver::results_type endpoints = resolver.resolve(r.host, r.port, ec);
  if (ec) {
    return Status(ErrorCode::RPC_FAIL, "cannot resolve the host of " + r.peer + ": " + ec.message());
  }
  if (std::chrono::steady_clock::now() >= r.deadline) {
    return Status(ErrorCode::RPC_TIMEOUT,
                  "resolving the host of " + r.peer + " did not finish" + within);
  }

  http::request<http::string_body> req;
  req.method(http::string_to_verb(r.method));
  req.target(r.target);
  req.version(11);
  req.set(http::field::host, r.host_header);
  req.set(http::field::user_agent, std::string("kvcached/") + GetBuildInfo().version);
  if (!r.authorization.empty()) req.set(http::field::authorization, r.authorization);
  if (!r.content_type.empty()) req.set(http::field::content_type, r.content_type);
  req.body() = r.body;
  req.keep_alive(false);
  req.prepare_payload();

  beast::tcp_stream stream(ioc);
  stream.expires_at(r.deadline);  // covers connect, write and read together
  beast::flat_buffer buffer;
  http::response_parser<http::string_body> parser;
  parser.header_limit(kMaxResponseHeaderBytes);
  parser.body_limit(r.max_response_body_bytes);

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
            *parser.content_length() > r.max_response_body_bytes) {
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
                  "cannot connect to " + r.peer + within + " (" + r.what + ")");
  }
  if (connect_ec) {
    return Status(ErrorCode::RPC_FAIL, "cannot connect to " + r.peer + ": " +
                                           connect_ec.message() + " (" + r.what + ")");
  }
  if (write_ec == beast::error::timeout) {
    return Status(ErrorCode::RPC_TIMEOUT, "could not send " + r.what + " to " + r.peer + within);
  }
  if (!read_done || read_ec) {
    if (write_ec) {
      return Status(ErrorCode::RPC_FAIL, "lost the connection to " + r.peer + " while sending " +
                                             r.what + ": " + write_ec.message());
    }
    if (read_ec == beast::error::timeout) {
      return Status(ErrorCode::RPC_TIMEOUT, "no answer from " + r.peer + " to " + r.what + within);
    }
    if (read_ec == http::error::body_limit) {
      return Status(ErrorCode::BUFFER_OVERFLOW,
                    "the answer of " + r.peer + " to " + r.what + " exceeds " +
                        std::to_string(r.max_response_body_bytes) + " bytes");
    }
    return Status(ErrorCode::RPC_FAIL, "bad or no answer from " + r.peer + " to " + r.what + ": " +
                                           read_ec.message());
  }
  beast::error_code ignored;
  stream.socket().shutdown(tcp::socket::shutdown_both, ignored);

  http::response<http::string_body> res = parser.release();
  HttpAnswer answer;
  answer.status = res.result_int();
  answer.reason = Reason(res);
  answer.body = std::move(res.body());
  return answer;
}

}  // namespace kvcached
