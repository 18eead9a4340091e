// HaRole: what `kvcached master --etcd-endpoints` adds to a master (docs/ha.md).
// Before it leads, the master is a standby: it campaigns in etcd
// (Leadership), serves only /health and /metrics, and does not listen on its
// RPC port, so clients that look for the leader cannot reach it. Once
// elected it serves while its lease holds (MayServe); past the fence, or
// when a request finds it deposed, it steps down by executing itself anew:
// no state of the old leadership survives, and the fresh process campaigns
// as a standby. A clean stop resigns, so a standby takes over at once.
//
// /health gains role, epoch and the time since the last failover this
// process saw; /metrics gains kvcached_master_leader,
// kvcached_master_epoch and kvcached_master_seconds_since_failover.
// Thread-safe.
#pragma once

#include <atomic>
#include <chrono>
#include <memory>
#include <mutex>
#include <string>

#include "core/metrics.h"
#include "core/status.h"
#include "master/leadership.h"
#include "net/leader_lookup.h"

namespace kvcached {

struct HaRoleOptions {
  std::string etcd_endpoints;  // "h:p;h:p" (or etcd://...)
  std::string cluster_id{kDefaultClusterId};
  int64_t lease_ttl_s = 5;
  // The leader stops serving this long before its lease could end; the
  // master passes its --default-kv-lease-ttl (docs/ha.md, "The fence").
  std::chrono::milliseconds grant_margin{1000};
  LeaderInfo self;  // what this master publishes when it leads
};

class HaRole {
 public:
  static Result<std::unique_ptr<HaRole>> Create(HaRoleOptions options, MetricsRegistry& metrics);
  ~HaRole();

  // Blocks until this master leads (OK) or Stop() (UNAVAILABLE_IN_CURRENT_STATUS).
  Status Campaign();
  // Starts the renewals; past the fence the process steps down.
  void Lead();
  bool MayServe() const { return leadership_.MayServe(); }
  // A request found this master past its fence: step down (once).
  void Deposed();
  // Ends a Campaign in progress (a signal while standby).
  void Stop() { leadership_.Stop(); }
  // A clean stop of the leader: the claim is given up.
  void Resign();

  // "role: leader\nepoch: 42\n..." for /health.
  std::string HealthDetail() const;
  const HaRoleOptions& options() const { return options_; }
  int64_t epoch() const { return leadership_.epoch(); }

 private:
  HaRole(HaRoleOptions options, EtcdClient etcd, MetricsRegistry& metrics);
  [[noreturn]] void StepDown(const std::string& why);
  void SawLeader(const std::string& value, int64_t epoch);

  const HaRoleOptions options_;
  Leadership leadership_;
  std::atomic<bool> stepping_down_{false};
  std::atomic<int64_t> last_change_ns_{0};  // steady clock; 0: never seen
  mutable std::mutex mu_;               // guards leader_seen_
  std::string leader_seen_;             // standby: the leader's rpc address
};

}  // namespace kvcached
