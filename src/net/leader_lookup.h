// The master a client or store talks to when its master address names etcd
// ("etcd://h1:p1;h2:p2", as in Mooncake's HA deployments): the leader of the
// cluster, as the elected master publishes itself under
// kvcached/<cluster-id>/leader (master/leadership.h). The value is JSON:
// {"rpc":"host:port","admin":"host:port","master_id":"..."}; the epoch is
// the key's create revision, higher for every later leader.
//
// ApplyMasterAddress is the one place the RPC clients learn this: for an
// etcd address it sets RpcClientOptions::resolve_address to a lookup made
// before every (re)connect, so a client whose master died connects to the
// next leader on its next call. Thread-safe.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/status.h"
#include "net/etcd_client.h"

namespace kvcached {

struct RpcClientOptions;

// The cluster id a master address means when none is given (Mooncake's).
inline constexpr std::string_view kDefaultClusterId = "mooncake_cluster";

// "kvcached/<cluster>/leader".
std::string LeaderKey(std::string_view cluster_id);
// INVALID_PARAMS unless 1 to 128 bytes of [A-Za-z0-9._-].
Status CheckClusterId(std::string_view cluster_id);

struct LeaderInfo {
  std::string rpc;    // host:port of the RPC port
  std::string admin;  // host:port of /health and /metrics
  std::string master_id;
  int64_t epoch = 0;
};

std::string EncodeLeaderInfo(const LeaderInfo& info);  // the JSON (no epoch)
// ETCD_OPERATION_ERROR for a value that is not the JSON above.
Result<LeaderInfo> DecodeLeaderInfo(std::string_view value, int64_t epoch);

class LeaderLookup {
 public:
  LeaderLookup(EtcdClient etcd, std::string cluster_id);
  // The leader now. UNAVAILABLE_IN_CURRENT_STATUS when no master leads
  // (none runs, or an election is under way); etcd's errors otherwise.
  Result<LeaderInfo> Find() const;
  const EtcdClient& etcd() const { return etcd_; }
  const std::string& cluster_id() const { return cluster_id_; }

 private:
  EtcdClient etcd_;
  std::string cluster_id_;
};

// Points `o` at `address`: a plain "host:port" as it is; "etcd://..." (the
// cluster `cluster_id`, empty: the default) through a LeaderLookup before
// every connect, each lookup bounded by `lookup_timeout`. INVALID_PARAMS
// for a bad etcd address or cluster id.
Status ApplyMasterAddress(RpcClientOptions& o, const std::string& address,
                          std::string_view cluster_id,
                          std::chrono::milliseconds lookup_timeout = std::chrono::milliseconds(2000));

}  // namespace kvcached
