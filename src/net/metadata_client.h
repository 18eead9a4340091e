// MetadataClient: a blocking client of the store where segment descriptors
// (`mooncake/ram/<segment>`) are published: the metadata HTTP service
// (docs/metadata-service.md; `kvcached meta`, Mooncake's http_metadata_server)
// or etcd, picked by the URL as Mooncake's transfer engine picks its plugin.
// Not a cache and not a watcher: every call is one request under one deadline.
// Thread-safe: immutable after Create() but for the etcd backend's atomic
// memory of which endpoint answered last.
#pragma once

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"
#include "net/etcd_client.h"

namespace kvcached {

struct MetadataClientOptions {
  // The form of MOONCAKE_TE_META_DATA_SERVER:
  //   "http://HOST:PORT/metadata": the HTTP service. "http://HOST:PORT" and
  //     "http://HOST:PORT/" mean the path /metadata; the port defaults to 80;
  //     HOST may be a name, an IPv4 address or "[v6]".
  //   "etcd://HOST:PORT[;HOST:PORT...]" (';' or ','), or the same list with
  //     no scheme (Mooncake reads a bare "HOST:PORT" as etcd): etcd's v3 API
  //     on each member's client port, plain HTTP (no TLS, no etcd auth).
  std::string url;
  // HTTP service: when not empty, sent as "Authorization: Bearer <token>"
  // (the form `kvcached meta --token-file` checks). No spaces or control
  // characters. etcd: never sent and not refused; access control is etcd's
  // own (docs/metadata-service.md, "Descriptors in etcd", says why).
  std::string token;
  // Deadline of a whole call: connect, send, and read the answer; for etcd,
  // over every endpoint tried.
  std::chrono::milliseconds timeout{3000};
  // Largest value Get accepts; a larger one is BUFFER_OVERFLOW. HTTP: also
  // any answer body (an error text; PUT and DELETE answers are a few bytes),
  // refused before it is buffered, so a hostile server cannot make us
  // allocate without limit. etcd: checked on the decoded value; the answer
  // on the wire is bounded at 4 MiB by EtcdClient, whatever this says.
  size_t max_response_body_bytes = 1 << 20;
};

class MetadataClient {
 public:
  // Checks the options. INVALID_PARAMS for P2PHANDSHAKE (no metadata store:
  // callers publish nothing and create no client), a scheme other than
  // http:// or etcd:// (https and redis are named as unsupported), a bad
  // host or port, an http URL with user info, a query or a fragment, an etcd
  // list with an empty, portless or https item or a path, a token with
  // spaces or control characters, or a timeout that is not positive.
  // Contacts no server.
  static Result<MetadataClient> Create(MetadataClientOptions options);

  // Stores `value` (any bytes, empty allowed) under `key`, replacing the old
  // value; idempotent. An `rpc_meta` key (any key containing "rpc_meta") is
  // not replaced with different bytes (ETCD_OPERATION_ERROR; Delete it
  // first): the HTTP server enforces it, and the etcd backend does too, in
  // one transaction (create if absent, else compare). Keys may hold any
  // bytes (percent-encoded for HTTP as curl_easy_escape does, base64 for
  // etcd); an empty key is INVALID_PARAMS.
  Status Put(std::string_view key, std::string_view value) const;
  // The stored value, or nullopt when the key is absent (HTTP: a 404).
  Result<std::optional<std::string>> Get(std::string_view key) const;
  // Removes `key`. Idempotent: OK also when the key is absent (an HTTP 404),
  // which is what a store shutting down wants.
  Status Delete(std::string_view key) const;

  // The normalised URL, "http://HOST:PORT/PATH" or "etcd://H1:P1;H2:P2"
  // (also for a bare list); error messages name it.
  const std::string& url() const { return url_; }

  // Errors of Put, Get and Delete, HTTP service:
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
  // etcd (EtcdClient's codes, passed through; each message names every
  // endpoint tried and its reason):
  //   RPC_FAIL              no endpoint could be reached;
  //   RPC_TIMEOUT           every endpoint tried stayed silent until the
  //                         deadline;
  //   ETCD_OPERATION_ERROR  an endpoint answered an error (no quorum, a value
  //                         over etcd's request limit), and the rpc_meta
  //                         rule above;
  //   BUFFER_OVERFLOW       an answer over 4 MiB, or a value over
  //                         max_response_body_bytes;
  //   INVALID_PARAMS        an empty key.
  // Host names are resolved by the system resolver (getaddrinfo), whose own
  // timeouts apply before the deadline is checked; give an IP address where
  // a strict bound matters.

 private:
  enum class Method { kGet, kPut, kDelete };
  MetadataClient() = default;
  // Create's two halves: fill in the members for one backend.
  Status ParseHttpUrl(std::string_view url);
  Status ParseEtcdAddress(std::string_view endpoints, bool bare);

  // HTTP: the body of a 2xx answer; nullopt for a 404 to a GET or DELETE.
  Result<std::optional<std::string>> RoundTrip(Method method, std::string_view key,
                                               std::string_view body) const;
  // etcd: Put with the rpc_meta rule.
  Status EtcdPut(std::string_view key, std::string_view value) const;

  MetadataClientOptions options_;
  std::string url_;  // normalised
  // Set: the etcd backend. Empty: the HTTP service, reached through these.
  std::optional<EtcdClient> etcd_;
  std::string host_;         // for the resolver, without IPv6 brackets
  std::string port_;         // decimal
  std::string host_header_;  // "HOST:PORT", brackets kept
  std::string path_;         // "/metadata"
};

}  // namespace kvcached
