// EtcdClient: a blocking client of etcd's v3 API through its JSON gateway
// (POST /v3/kv/range, /v3/kv/put, /v3/kv/txn, /v3/kv/deleterange,
// /v3/lease/grant, /v3/lease/keepalive, /v3/lease/revoke), which every etcd
// since 3.3 serves on its client port; no gRPC library is needed. Used by
// the master's leader election (master/leadership.h), the clients' leader
// lookup behind `etcd://` master addresses, and the etcd metadata backend.
//
// Endpoints: a call goes to the endpoint that answered last and, when that
// one cannot be reached or answers an error (a member without quorum
// answers 503), to the next one, all within one deadline: each try gets an
// equal share of the time left, at least 200 ms. Keys and values are any
// bytes (base64 on the wire). Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "core/status.h"

namespace kvcached {

struct EtcdKeyValue {
  std::string key;
  std::string value;
  int64_t create_revision = 0;
  int64_t mod_revision = 0;
  int64_t lease = 0;
};

struct EtcdCreateResult {
  bool created = false;
  // created: the revision of the put (the key's create_revision);
  // otherwise the key as it is (absent only when it went away between the
  // compare and the read, which one transaction rules out).
  int64_t revision = 0;
  std::optional<EtcdKeyValue> current;
};

class EtcdClient {
 public:
  // `endpoints`: "host:port" items separated by ';' or ',' (Mooncake's
  // "etcd://h1:p1;h2:p2" with or without the scheme; "http://" per item is
  // accepted too). INVALID_PARAMS for an empty list, a bad item, https or
  // a timeout that is not positive.
  static Result<EtcdClient> Create(std::string_view endpoints, std::chrono::milliseconds timeout);
  EtcdClient(const EtcdClient& other);
  EtcdClient& operator=(const EtcdClient& other);

  // Errors of every call, the message naming each endpoint tried and its
  // reason: ETCD_OPERATION_ERROR when an endpoint answered with an error
  // (no quorum, a request over etcd's limit, a refusal in the answer) and
  // none did the call; RPC_FAIL when none could be reached (refused, no
  // route, connection lost); RPC_TIMEOUT when every one tried stayed silent
  // until the deadline; BUFFER_OVERFLOW for an answer over 4 MiB.

  Result<std::optional<EtcdKeyValue>> Get(std::string_view key) const;
  // Every key that starts with `prefix`, in key order (at most `limit`).
  Result<std::vector<EtcdKeyValue>> GetPrefix(std::string_view prefix, int64_t limit = 0) const;
  // The revision of the put. lease 0: none.
  Result<int64_t> Put(std::string_view key, std::string_view value, int64_t lease = 0) const;
  // The number of keys deleted (0 or 1).
  Result<int64_t> Delete(std::string_view key) const;
  // One transaction: puts `value` under `key` bound to `lease` only if the
  // key does not exist; otherwise reads it.
  Result<EtcdCreateResult> CreateIfAbsent(std::string_view key, std::string_view value,
                                          int64_t lease) const;
  // One transaction: deletes `key` only while its create_revision is
  // `create_revision` (a leader giving up only its own claim).
  Result<bool> DeleteIfCreatedAt(std::string_view key, int64_t create_revision) const;

  // A new lease of `ttl_seconds`; its id. etcd may grant a longer TTL than
  // asked (its minimum is about 1.5 election timeouts).
  Result<int64_t> LeaseGrant(int64_t ttl_seconds, int64_t* granted_ttl = nullptr) const;
  // Renews the lease; the TTL it has now, 0 when the lease is gone.
  Result<int64_t> LeaseKeepAlive(int64_t id) const;
  Status LeaseRevoke(int64_t id) const;

  // "h1:p1;h2:p2", for messages.
  const std::string& endpoints() const { return text_; }
  std::chrono::milliseconds timeout() const { return timeout_; }

  // base64 (RFC 4648, padded), as the gateway encodes bytes.
  static std::string Base64Encode(std::string_view bytes);
  static std::optional<std::string> Base64Decode(std::string_view text);

 private:
  struct Endpoint {
    std::string host, port, host_header;
  };
  EtcdClient() = default;
  // POSTs `body` (JSON) to `path` on the endpoints in turn; the answer's JSON.
  Result<std::string> Post(std::string_view path, const std::string& body,
                           std::string_view what) const;

  // Post + the answer parsed: etcd's error field becomes ETCD_OPERATION_ERROR.
  Result<nlohmann::json> Call(std::string_view path, const nlohmann::json& request,
                              std::string_view what) const;

  std::vector<Endpoint> endpoints_;
  std::string text_;
  std::chrono::milliseconds timeout_{1000};
  mutable std::atomic<size_t> preferred_{0};
};

// Splits an address that may name etcd: "etcd://h1:p1;h2:p2" -> the list
// "h1:p1;h2:p2"; nullopt for anything else (a plain "host:port").
std::optional<std::string> EtcdEndpointsOf(std::string_view address);

}  // namespace kvcached
