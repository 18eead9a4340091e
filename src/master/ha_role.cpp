#include "master/ha_role.h"

#include <fcntl.h>
#include <linux/close_range.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include <vector>

#include <spdlog/spdlog.h>

namespace kvcached {
namespace {

int64_t SteadyNs() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace

Result<std::unique_ptr<HaRole>> HaRole::Create(HaRoleOptions options, MetricsRegistry& metrics) {
  if (Status st = CheckClusterId(options.cluster_id); !st.ok()) return st;
  if (options.lease_ttl_s < 1) {
    return Status(ErrorCode::INVALID_PARAMS, "the etcd lease TTL must be at least 1 s");
  }
  if (options.grant_margin >= std::chrono::seconds(options.lease_ttl_s)) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "the read lease (" + std::to_string(options.grant_margin.count()) +
                      " ms) must be shorter than the etcd lease (" +
                      std::to_string(options.lease_ttl_s) + " s)");
  }
  // Each etcd call must end well before the next renewal is due.
  auto timeout = std::max(std::chrono::milliseconds(200),
                          std::chrono::milliseconds(options.lease_ttl_s * 1000 / 4));
  Result<EtcdClient> etcd = EtcdClient::Create(options.etcd_endpoints, timeout);
  if (!etcd.ok()) return etcd.status();
  return std::unique_ptr<HaRole>(new HaRole(std::move(options), std::move(etcd).value(), metrics));
}

HaRole::HaRole(HaRoleOptions options, EtcdClient etcd, MetricsRegistry& metrics)
    : options_(std::move(options)),
      leadership_(std::move(etcd), [&] {
        LeadershipOptions o;
        o.cluster_id = options_.cluster_id;
        o.lease_ttl_s = options_.lease_ttl_s;
        o.grant_margin = options_.grant_margin;
        o.value = EncodeLeaderInfo(options_.self);
        return o;
      }()) {
  metrics.AddGaugeCallback("kvcached_master_leader",
                           "1 while this master leads its cluster in etcd and may serve, 0 as a "
                           "standby",
                           {}, [this] { return MayServe() ? 1.0 : 0.0; });
  metrics.AddGaugeCallback("kvcached_master_epoch",
                           "The epoch of this master's leadership (etcd revision of its claim); "
                           "0 as a standby",
                           {}, [this] { return static_cast<double>(leadership_.epoch()); });
  metrics.AddGaugeCallback(
      "kvcached_master_seconds_since_failover",
      "Seconds since this process saw the leadership change (its own election, or another "
      "master's); -1 before any",
      {}, [this] {
        int64_t at = last_change_ns_.load();
        return at == 0 ? -1.0 : static_cast<double>(SteadyNs() - at) / 1e9;
      });
}

HaRole::~HaRole() { leadership_.Stop(); }

void HaRole::SawLeader(const std::string& value, int64_t epoch) {
  Result<LeaderInfo> info = DecodeLeaderInfo(value, epoch);
  std::string rpc = info.ok() ? info->rpc : "?";
  {
    std::lock_guard<std::mutex> lock(mu_);
    leader_seen_ = rpc;
  }
  last_change_ns_ = SteadyNs();
  if (info.ok()) {
    spdlog::info("standby: master {} at {} leads cluster '{}' (epoch {})", info->master_id,
                 info->rpc, options_.cluster_id, epoch);
  } else {
    spdlog::warn("standby: the leader key of cluster '{}' holds something else: {}",
                 options_.cluster_id, info.status().message());
  }
}

Status HaRole::Campaign() {
  spdlog::info(
      "standby: campaigning for cluster '{}' in etcd {} (lease {} s); RPC port {} stays closed "
      "until elected",
      options_.cluster_id, options_.etcd_endpoints, options_.lease_ttl_s, options_.self.rpc);
  Status st = leadership_.Campaign(
      [this](const std::string& value, int64_t epoch) { SawLeader(value, epoch); });
  if (!st.ok()) return st;
  last_change_ns_ = SteadyNs();
  spdlog::info("elected leader of cluster '{}' (epoch {}); serving on {}", options_.cluster_id,
               leadership_.epoch(), options_.self.rpc);
  return Status::Ok();
}

void HaRole::Lead() {
  leadership_.StartRenewals([this](const std::string& why) { StepDown(why); });
}

void HaRole::Deposed() {
  StepDown("a request arrived after the leader's fence (its etcd lease could not be renewed "
           "in time)");
}

void HaRole::Resign() {
  leadership_.Resign();
  spdlog::info("resigned the leadership of cluster '{}'", options_.cluster_id);
}

std::string HaRole::HealthDetail() const {
  std::string out;
  bool leads = MayServe();
  out += std::string("role: ") + (leads ? "leader" : "standby") + "\n";
  out += "cluster: " + options_.cluster_id + "\n";
  out += "epoch: " + std::to_string(leads ? leadership_.epoch() : 0) + "\n";
  if (!leads) {
    std::lock_guard<std::mutex> lock(mu_);
    out += "leader: " + (leader_seen_.empty() ? std::string("unknown") : leader_seen_) + "\n";
  }
  int64_t at = last_change_ns_.load();
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.3f", at == 0 ? -1.0 : static_cast<double>(SteadyNs() - at) / 1e9);
  out += std::string("seconds_since_failover: ") + buf + "\n";
  return out;
}

void HaRole::StepDown(const std::string& why) {
  if (stepping_down_.exchange(true)) {
    // Another thread is executing the process anew; this one waits for it.
    for (;;) pause();
  }
  spdlog::error("stepping down as leader of cluster '{}' (epoch {}): {}; restarting as a standby",
                options_.cluster_id, leadership_.epoch(), why);
  spdlog::default_logger()->flush();
  // The arguments this process was started with, from the kernel's copy.
  std::ifstream in("/proc/self/cmdline", std::ios::binary);
  std::string cmdline((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  std::vector<char*> argv;
  for (size_t at = 0; at < cmdline.size();) {
    argv.push_back(cmdline.data() + at);
    at = cmdline.find('\0', at);
    if (at == std::string::npos) break;
    ++at;
  }
  argv.push_back(nullptr);
  // Every socket and file of this leadership closes with the old image
  // (Asio does not open them close-on-exec); 0, 1 and 2 stay.
  if (syscall(SYS_close_range, 3u, ~0u, CLOSE_RANGE_CLOEXEC) != 0) {
    for (int fd = 3; fd < 65536; ++fd) (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
  }
  execv("/proc/self/exe", argv.data());
  std::fprintf(stderr, "kvcached master: could not execute itself anew to step down (%s); exiting\n",
               std::strerror(errno));
  _exit(75);  // EX_TEMPFAIL: a supervisor restarts it
}

}  // namespace kvcached
