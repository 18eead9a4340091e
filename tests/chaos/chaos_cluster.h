// Test-only: the real cluster of a chaos pass, one `kvcached master` and N
// `kvcached store` processes on loopback, and the faults done to it. Every
// fault returns once its recovery has been observed through a readiness
// signal (READY=1, the master's /get_all_segments, a store's /metrics),
// never after a sleep, and records itself in the ClusterTimeline; a thread
// samples the master's eviction counters into it meanwhile. The processes'
// logs stay in the pass's directory. Waits have hang guards far above any
// recovery time; a guard that fires throws std::runtime_error naming what
// did not happen. Not thread-safe: one driving thread (the sampler is
// internal).
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "child_process.h"
#include "cluster_timeline.h"

namespace kvcached::chaos {

struct ClusterOptions {
  std::string bin;  // the kvcached binary
  std::string dir;  // logs and sockets
  std::string host_id = "chaos-host";
  int stores = 3;
  std::string segment_size = "24MiB";
  // Short, so that faults play out quickly.
  std::string client_ttl = "1s";
  std::string lease_ttl = "200ms";
  std::string ping_interval = "100ms";
  // The oracle's own check: store 0 flips a byte of every DataRead answer
  // (the KVCACHED_FAULT_CORRUPT_READS hook of a KVCACHED_FAULT_HOOKS build).
  bool corrupt_reads = false;
};

class ChaosCluster {
 public:
  ChaosCluster(ClusterOptions options, ClusterTimeline& timeline);
  ~ChaosCluster();  // stops the sampler, kills every process left
  ChaosCluster(const ChaosCluster&) = delete;
  ChaosCluster& operator=(const ChaosCluster&) = delete;

  // Starts the master and the stores; returns once every segment is mounted.
  void Start();

  const std::string& rpc() const { return rpc_; }
  const std::string& admin() const { return admin_; }
  const std::vector<std::string>& segments() const { return segments_; }

  // Barrier, kill -9 of the master, a new one on the same ports; returns
  // once every store has remounted there.
  void RestartMaster();
  // Kill -9 of store `i`; once the master has dropped its segment (client
  // TTL), a new store under the same segment name; returns once it is mounted.
  void KillStore(int i);
  // SIGSTOP of store `i` until the master has dropped its segment (past
  // the client TTL), then SIGCONT; returns once the store has remounted.
  void FreezeStore(int i);

  // A counter of the current master's /metrics; nullopt when unreachable.
  std::optional<uint64_t> MasterCounter(const std::string& name) const;
  // Throws when a daemon has exited that should be running.
  void CheckAlive();
  // SIGTERM to every process, then SIGKILL to those that do not stop.
  void Stop();

 private:
  struct Store {
    std::unique_ptr<ChildProcess> process;
    std::string admin;
    int starts = 0;
  };

  void StartMaster();
  void StartStore(int i);
  std::set<std::string> MountedSegments() const;
  // Waits until `pred` holds, polling; throws naming `what` after the guard.
  template <typename Pred>
  void WaitUntil(const std::string& what, Pred pred);
  // Proves that every update the master answered before now is in its
  // owner's table: a sentinel object of a size no worker uses is put in
  // each segment and seen in the store's kvcached_store_object_bytes, then
  // removed and seen gone. Table updates to one owner go out in order, so
  // every earlier one has arrived. Returns the time it began.
  int64_t Barrier();
  std::optional<uint64_t> StoreSample(int i, const std::string& name) const;
  void SampleEvictions();
  void SamplerLoop();

  ClusterOptions o_;
  ClusterTimeline& timeline_;
  std::vector<std::string> segments_;
  std::string rpc_, admin_;
  std::vector<std::string> master_args_;
  std::unique_ptr<ChildProcess> master_;
  int master_starts_ = 0;
  std::vector<Store> stores_;
  int barriers_ = 0;
  // The sampler: which master life it may attribute an answer to (-1 while
  // the master is down), and what it saw last of that life.
  std::atomic<int> life_{-1};
  std::atomic<bool> stop_sampler_{false};
  std::mutex sample_mu_;  // guards the fields below, and serialises SampleEvictions
  int64_t life_start_ns_ = 0;
  int sampled_life_ = -1;
  int64_t last_sample_ns_ = 0;
  uint64_t last_evictions_ = 0, last_refusals_ = 0;
  std::thread sampler_;
};

}  // namespace kvcached::chaos
