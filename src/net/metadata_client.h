// MetadataClient: a blocking client of the metadata HTTP service
// (docs/metadata-service.md; `kvcached meta`, or Mooncake's
// http_metadata_server), with which stores publish segment descriptors
// (`mooncake/ram/<segment>`) and remove them at shutdown. Not a cache and not
// a watcher: every call is one request on a fresh connection, bounded by one
// deadline. Thread-safe: after Create() the object is immutable, and calls
// from any number of threads share nothing.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kvcached {

struct MetadataClientOptions {
  // "http://HOST:PORT/metadata", the form of MOONCAKE_TE_META_DATA_SERVER.
  // "http://HOST:PORT" and "http://HOST:PORT/" mean the path /metadata; the
  // port defaults to 80; HOST may be a name, an IPv4 address or "[v6]".
  std::string url;
  // When not empty, sent as "Authorization: Bearer <token>" (the form
  // `kvcached meta --token-file` checks). No spaces or control characters.
  std::string token;
  // Deadline of a whole request: connect, send, and read the answer.
  std::chrono::milliseconds timeout{3000};
  // Largest answer body accepted (a GET's value, an error text; PUT and
  // DELETE answers are a few bytes); a larger one is refused before it is
  // buffered, so a hostile server cannot make us allocate without limit.
  size_t max_response_body_bytes = 1 << 20;
};

class MetadataClient {
 public:
  // Checks the options. INVALID_PARAMS for a URL that is not http:// (https,
  // etcd, redis and Mooncake's bare "host:port" etcd form and P2PHANDSHAKE
  // are named as unsupported), a bad host or port, a URL with user info, a
  // query or a fragment, a token with spaces or control characters, or a
  // timeout that is not positive. Does not contact the server.
  static Result<MetadataClient> Create(MetadataClientOptions options);

  // Stores `value` (any bytes, empty allowed) under `key`, replacing the old
  // value; idempotent. The server refuses to replace an `rpc_meta` key with
  // different bytes (ETCD_OPERATION_ERROR; Delete it first). Keys are sent
  // percent-encoded as curl_easy_escape does, so any bytes are allowed; an
  // empty key is INVALID_PARAMS.
  Status Put(std::string_view key, std::string_view value) const;
  // The stored value, or nullopt when the server answers 404.
  Result<std::optional<std::string>> Get(std::string_view key) const;
  // Removes `key`. Idempotent: OK also when the server answers 404 (the key
  // is absent either way, which is what a store shutting down wants).
  Status Delete(std::string_view key) const;

  // The normalised URL, "http://HOST:PORT/PATH"; error messages name it.
  const std::string& url() const { return url_; }

  // Errors of Put, Get and Delete:
  //   RPC_FAIL              cannot resolve or connect (the message names the
  //                         URL and the OS error), connection lost, or an
  //                         answer that is not valid HTTP;
  //   RPC_TIMEOUT           the request did not complete within `timeout`;
  //   BUFFER_OVERFLOW       answer body over max_response_body_bytes;
  //   ILLEGAL_CLIENT        401 or 403: the token is missing or wrong;
  //   ETCD_OPERATION_ERROR  any other answer that is not 2xx (and a 404 to a
  //                         Put), with the status and the server's one-line
  //                         reason;
  //   INVALID_PARAMS        an empty key.
  // Host names are resolved by the system resolver (getaddrinfo), whose own
  // timeouts apply before the deadline is checked; give an IP address where
  // a strict bound matters.

 private:
  enum class Method { kGet, kPut, kDelete };
  MetadataClient() = default;
  // The body of a 2xx answer; nullopt for a 404 to a GET or DELETE.
  Result<std::optional<std::string>> RoundTrip(Method method, std::string_view key,
                                               std::string_view body) const;

  MetadataClientOptions options_;
  std::string url_;          // normalised
  std::string host_;         // for the resolver, without IPv6 brackets
  std::string port_;         // decimal
  std::string host_header_;  // "HOST:PORT", brackets kept
  std::string path_;         // "/metadata"
};

}  // namespace kvcached
