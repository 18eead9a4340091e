// Test-only: one pass of the chaos test. A ChaosRun starts a ChaosCluster,
// runs worker processes against it (half forced to TCP, half to shared
// memory, each the only writer of its keys), injects a seeded schedule of
// faults under that load (master kill -9 and restart, store kill -9 and
// restart, store SIGSTOP past the client TTL, worker kill -9 mid-operation
// and its replacement, a pool-full phase), each after the workers have
// made progress since the last one, then stops everything, has the Oracle
// judge every operation, and prints the report. Not thread-safe.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "child_process.h"
#include "cluster_timeline.h"
#include "op_log.h"
#include "worker.h"

namespace kvcached::chaos {

class ChaosCluster;

struct RunOptions {
  std::string bin;   // the kvcached binary
  std::string self;  // this program, started again as `worker`
  uint64_t seed = 1;
  bool checksums = true;
  int stores = 3;
  int workers = 4;     // even slots TCP, odd slots shared memory
  uint32_t keys = 48;  // per worker
  int master_restarts = 2, store_kills = 1, store_freezes = 1, worker_kills = 1, pool_fulls = 1;
  uint64_t ops_between = 100;  // successful operations before each fault, and at the end
  bool keep_logs = false;
  bool corrupt_reads = false;  // ClusterOptions::corrupt_reads
};

struct PassResult {
  bool ok = false;          // nothing WRONG, REVERTED, RESURRECTED or LOST, and no breakdown
  bool broke_down = false;  // a process died or a wait's guard fired
  uint64_t wrong = 0;
  std::string dir;  // kept when the pass failed
};

class ChaosRun {
 public:
  explicit ChaosRun(RunOptions options);
  ~ChaosRun();
  // Runs the pass and prints its report.
  PassResult Run();

 private:
  struct Slot {
    WorkerOptions options;
    std::unique_ptr<ChildProcess> process;
    uint64_t offset = 0;  // how far its log has been read
    int open = 0;         // operations the current incarnation has begun and not ended
    bool done = false;    // stopped on purpose
  };
  struct Planned {
    FaultKind kind;
    int target;
  };

  std::vector<Planned> Plan() const;
  void Spawn(Slot& slot);
  Slot& AddSlot(bool filler);
  // Reads what the workers have logged since the last call; throws when a
  // worker exited that was not told to.
  void Collect();
  void WaitProgress(int64_t since_ns);
  template <typename Pred>
  void WaitUntil(const std::string& what, Pred pred);
  void KillWorker(int slot);
  void FillPool();
  void StopWorkers();

  RunOptions o_;
  std::string dir_;
  ClusterTimeline timeline_;
  std::unique_ptr<ChaosCluster> cluster_;
  std::vector<Slot> slots_;
  std::vector<OpRecord> records_;
  std::vector<std::string> environment_;  // the workers'
};

}  // namespace kvcached::chaos
