#include "master/leadership.h"

#include <spdlog/spdlog.h>

namespace kvcached {

Leadership::Leadership(EtcdClient etcd, LeadershipOptions options)
    : etcd_(std::move(etcd)), options_(std::move(options)), key_(LeaderKey(options_.cluster_id)) {}

Leadership::~Leadership() {
  Stop();
  if (renewer_.joinable()) renewer_.join();
}

bool Leadership::Sleep(std::chrono::milliseconds d) {
  std::unique_lock<std::mutex> lock(mu_);
  return !cv_.wait_for(lock, d, [&] { return stopping_; });
}

void Leadership::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
  }
  cv_.notify_all();
}

Status Leadership::Campaign(const std::function<void(const std::string&, int64_t)>& on_leader) {
  int64_t seen_epoch = -1;
  std::string last_error;
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(mu_);
      if (stopping_) return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "campaign stopped");
    }
    if (lease_ == 0) {
      // The renewal clock starts before the grant is asked for: the fence
      // may only be earlier than etcd's view of the lease, never later.
      Clock::time_point asked = Clock::now();
      Result<int64_t> lease = etcd_.LeaseGrant(options_.lease_ttl_s, &ttl_s_);
      if (lease.ok()) {
        lease_ = *lease;
        SetFence(asked);
      } else if (lease.status().message() != last_error) {
        last_error = lease.status().message();
        spdlog::warn("leader election in etcd {}: {}; retrying", etcd_.endpoints(), last_error);
      }
    }
    if (lease_ != 0) {
      Result<EtcdCreateResult> claim = etcd_.CreateIfAbsent(key_, options_.value, lease_);
      if (claim.ok() && claim->created) {
        // The grant (or the last renewal) set the fence; a claim made after
        // the fence already passed is given up by the first renewal.
        epoch_ = claim->revision;
        leading_ = true;
        return Status::Ok();
      }
      if (claim.ok() && claim->current && claim->current->create_revision != seen_epoch) {
        seen_epoch = claim->current->create_revision;
        on_leader(claim->current->value, seen_epoch);
      }
      if (!claim.ok() && claim.status().message() != last_error) {
        last_error = claim.status().message();
        spdlog::warn("leader election in etcd {}: {}; retrying", etcd_.endpoints(), last_error);
      }
      // Keep the standby's own lease alive so a claim can be made at once.
      Clock::time_point asked = Clock::now();
      Result<int64_t> ttl = etcd_.LeaseKeepAlive(lease_);
      if (ttl.ok() && *ttl == 0) lease_ = 0;
      if (ttl.ok() && *ttl > 0) {
        SetFence(asked);
      }
    }
    if (!Sleep(options_.poll_interval)) {
      return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS, "campaign stopped");
    }
  }
}

void Leadership::SetFence(Clock::time_point asked) {
  fence_ = (asked + std::chrono::seconds(ttl_s_) - options_.grant_margin).time_since_epoch().count();
}

void Leadership::StartRenewals(std::function<void(const std::string&)> on_lost) {
  renewer_ = std::thread([this, on_lost = std::move(on_lost)] { RenewLoop(on_lost); });
}

bool Leadership::MayServe(Clock::time_point now) const {
  return leading_.load() && now.time_since_epoch().count() < fence_.load();
}

void Leadership::RenewLoop(std::function<void(const std::string&)> on_lost) {
  const auto interval = std::chrono::milliseconds(ttl_s_ * 1000 / 4);
  std::string lost;
  bool failing = false;  // log a failed renewal once per outage
  while (lost.empty()) {
    Clock::time_point asked = Clock::now();
    Result<int64_t> ttl = etcd_.LeaseKeepAlive(lease_);
    Clock::time_point now = Clock::now();
    if (ttl.ok() && *ttl > 0) {
      SetFence(asked);
      if (failing) spdlog::info("renewing the leader's lease in etcd {} works again", etcd_.endpoints());
      failing = false;
    } else if (ttl.ok()) {
      lost = "etcd says the leader's lease is gone";
    } else if (!failing) {
      failing = true;
      spdlog::warn("renewing the leader's lease in etcd {}: {} (retrying every {} ms; serving "
                   "until the fence)", etcd_.endpoints(), ttl.status().message(), interval.count());
    }
    if (lost.empty() && !MayServe(now)) {
      lost = "the leader's lease was not renewed in time (etcd unreachable or this process "
             "stalled)";
    }
    if (!lost.empty()) break;
    // Wake at the next renewal or at the fence, whichever comes first.
    auto fence = this->fence();
    auto until_fence = std::chrono::duration_cast<std::chrono::milliseconds>(fence - Clock::now());
    if (!Sleep(std::max(std::chrono::milliseconds(1), std::min(interval, until_fence)))) return;
  }
  leading_ = false;
  on_lost(lost);
}

void Leadership::Resign() {
  // The renewals must be over before the lease goes: Stop, then join.
  Stop();
  if (renewer_.joinable() && renewer_.get_id() != std::this_thread::get_id()) renewer_.join();
  if (leading_.exchange(false)) {
    (void)etcd_.DeleteIfCreatedAt(key_, epoch_.load());
  }
  if (lease_ != 0) (void)etcd_.LeaseRevoke(lease_);
  lease_ = 0;
}

}  // namespace kvcached
