// Test-only: what the chaos test did to the cluster and what it observed of
// it, on the clock of OpLog::NowNs() (CLOCK_MONOTONIC, shared with the
// workers' records). The Oracle judges every read against it: which master
// served when, when each segment was back after a master restart, which
// faults hit which store, when evictions happened. Plain data: ChaosCluster
// and ChaosRun fill it (the eviction windows from ChaosCluster's sampler
// thread, under `mu`); the Oracle reads it once everything has stopped.
#pragma once

#include <cstdint>
#include <limits>
#include <mutex>
#include <string>
#include <vector>

namespace kvcached::chaos {

inline constexpr int64_t kNever = std::numeric_limits<int64_t>::max();

enum class FaultKind { kMasterRestart, kStoreKill, kStoreFreeze, kWorkerKill, kPoolFull };

inline const char* FaultName(FaultKind k) {
  switch (k) {
    case FaultKind::kMasterRestart:
      return "master restart";
    case FaultKind::kStoreKill:
      return "store kill -9";
    case FaultKind::kStoreFreeze:
      return "store freeze";
    case FaultKind::kWorkerKill:
      return "worker kill -9";
    case FaultKind::kPoolFull:
      return "pool full";
  }
  return "?";
}

struct Fault {
  FaultKind kind = FaultKind::kMasterRestart;
  int target = -1;          // the store (segment index) or worker slot; -1 for the master
  int64_t start_ns = 0;     // the signal sent, or the filler started
  int64_t end_ns = kNever;  // recovery observed (the readiness signal the test waited for)
  std::string note;         // what was seen, for the report
};

// One master process: from its start to its kill. `seen_ns[s]` is the first
// time the test saw segment s mounted there (at or after the remount);
// kNever when it never did.
struct MasterLife {
  int64_t start_ns = 0;
  int64_t end_ns = kNever;
  std::vector<int64_t> seen_ns;
};

// A master kill -9 and the barrier before it. Every put and remove whose
// answer a worker had before `barrier_ns` was in its owner's table when
// the master died (ChaosCluster::Barrier proves it); those answered later,
// up to `kill_ns`, are in the documented window: their table update may
// have died with the master.
struct MasterKill {
  int64_t barrier_ns = 0;
  int64_t kill_ns = 0;
};

// The master's eviction counters rose (objects evicted, or leases refused
// to objects chosen for eviction) somewhere in [from_ns, to_ns].
struct EvictionWindow {
  int64_t from_ns = 0;
  int64_t to_ns = 0;
  uint64_t evictions = 0;
  uint64_t lease_refusals = 0;
};

struct ClusterTimeline {
  int64_t start_ns = 0;  // the pass began: times in the report are relative to it
  std::vector<std::string> segments;
  std::vector<MasterLife> masters;
  std::vector<MasterKill> kills;
  std::vector<Fault> faults;
  std::mutex mu;  // guards `evictions` while the sampler runs
  std::vector<EvictionWindow> evictions;
};

}  // namespace kvcached::chaos
