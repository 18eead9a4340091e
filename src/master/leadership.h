// Leadership: one master's part in the election of the cluster's leader in
// etcd (--etcd-endpoints, --cluster-id). A master claims the key
// kvcached/<cluster>/leader with a create-if-absent transaction bound to its
// etcd lease; the claim's revision is its epoch (higher for every later
// leader). While it leads it renews the lease every TTL/4 and may serve only
// until the fence: the send time of the last renewal etcd acknowledged, plus
// the TTL, minus `grant_margin`. Every read lease and placement it granted
// therefore ends before etcd can expire its claim and elect another master,
// which needs to wait only (kv lease TTL - grant_margin) before handing out
// space in remounted segments. Past the fence, or when etcd says the lease
// is gone, it calls on_lost once: the master steps down.
//
// Thread-safe; Campaign blocks its caller, the renewals run on a thread of
// their own.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "core/status.h"
#include "net/etcd_client.h"
#include "net/leader_lookup.h"  // LeaderKey

namespace kvcached {

struct LeadershipOptions {
  std::string cluster_id = "mooncake_cluster";
  int64_t lease_ttl_s = 2;
  // How long before the lease could end the leader stops serving.
  std::chrono::milliseconds grant_margin{1000};
  // How often a standby looks at the leader key.
  std::chrono::milliseconds poll_interval{100};
  std::string value;  // published under the key: the leader's addresses (JSON)
};

class Leadership {
 public:
  using Clock = std::chrono::steady_clock;
  Leadership(EtcdClient etcd, LeadershipOptions options);
  ~Leadership();

  // Campaigns until this master leads (OK, epoch set) or `stop` is
  // requested (UNAVAILABLE_IN_CURRENT_STATUS). etcd errors are logged and
  // retried. `on_leader` is told each leader seen while waiting (its value
  // and epoch), once per change.
  Status Campaign(const std::function<void(const std::string&, int64_t)>& on_leader);
  // Starts the renewals; on_lost(reason) runs once, on the renewal thread,
  // when the fence passes or the lease is gone.
  void StartRenewals(std::function<void(const std::string&)> on_lost);
  // True while this master leads and the fence has not passed.
  bool MayServe(Clock::time_point now = Clock::now()) const;
  // Gives the claim up (a clean shutdown): stops the renewals and waits for
  // them, then deletes the claim and revokes the lease so a standby takes
  // over at once. Not to be called from on_lost.
  void Resign();
  // Stops a Campaign in progress and the renewals.
  void Stop();

  int64_t epoch() const { return epoch_.load(); }
  bool leading() const { return leading_.load(); }
  Clock::time_point fence() const { return Clock::time_point(Clock::duration(fence_.load())); }

 private:
  void RenewLoop(std::function<void(const std::string&)> on_lost);
  bool Sleep(std::chrono::milliseconds d);  // false when stopped
  // The fence for a renewal (or grant) whose request left at `asked`.
  void SetFence(Clock::time_point asked);

  EtcdClient etcd_;
  const LeadershipOptions options_;
  const std::string key_;
  int64_t lease_ = 0;
  int64_t ttl_s_ = 0;
  std::atomic<int64_t> epoch_{0};
  std::atomic<bool> leading_{false};
  std::atomic<Clock::rep> fence_{0};
  std::mutex mu_;
  std::condition_variable cv_;
  bool stopping_ = false;  // guarded by mu_
  std::thread renewer_;
};

}  // namespace kvcached
