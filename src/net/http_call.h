// HttpCall: one blocking HTTP/1.1 exchange on a fresh connection, bounded by
// one deadline (resolve, connect, send and the whole answer), with the
// answer's header and body sizes limited before anything is buffered. The
// small HTTP clients (the metadata client, the etcd client) are built on it.
// Thread-safe: each call has its own io_context and socket.
#pragma once

#include <chrono>
#include <cstddef>
#include <string>

#include "core/status.h"

namespace kvcached {

struct HttpCallRequest {
  std::string host;         // name, IPv4 or IPv6 address (no brackets)
  std::string port;         // decimal
  std::string host_header;  // "host:port", "[v6]:port"
  std::string method;       // "GET", "PUT", "POST", "DELETE"
  std::string target;       // "/path?query", already escaped
  std::string body;
  std::string content_type;   // sent when not empty
  std::string authorization;  // sent as-is when not empty ("Bearer ...")
  std::chrono::steady_clock::time_point deadline;
  size_t max_response_body_bytes = 1 << 20;
  // For messages: the server ("metadata server http://h:p/metadata") and
  // the request ("GET 'key'"); `timeout` is what the deadline was set from.
  std::string peer;
  std::string what;
  std::chrono::milliseconds timeout{0};
};

struct HttpAnswer {
  unsigned status = 0;
  std::string body;
  // The first line of the body, printable, or the status line's reason
  // phrase when the body is empty: what error messages quote.
  std::string reason;
};

// The answer, whatever its status. Errors are the transport's:
//   RPC_FAIL         cannot resolve or connect, connection lost, or an
//                    answer that is not valid HTTP (the message names the
//                    peer, the request and the OS error);
//   RPC_TIMEOUT      not done by the deadline;
//   BUFFER_OVERFLOW  an answer body over max_response_body_bytes.
Result<HttpAnswer> HttpCall(const HttpCallRequest& request);

}  // namespace kvcached
