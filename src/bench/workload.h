// Workload: the load `kvcached bench` puts on a pool through one Client, and
// what it measured. Threads share the client (as an inference server's
// workers share its store object); each records per-call latencies into
// its own histograms, merged at the end.
//
// Objects are identified by a number; object i of size s holds the bytes
// of a shared random arena at an offset derived from i, so a get can check
// every byte it read (--verify) without the bench keeping copies, and a
// get that returns another object's bytes is caught too. Puts send straight
// from that arena; gets land in registered per-thread buffers.
//
// The six kinds:
//   put     batches of fresh keys (the pool evicts as it fills)
//   get     batches of random keys among `keys` written before the clock starts
//   mixed   each call a batch of gets (share read_ratio) or of fresh puts
//   exist   batches of keys, half written before, half never written
//   sglang  what SGLang's HiCache does per request: batch exist over the
//           request's page keys, batch get of the leading hits into a
//           registered host buffer, batch put of the rest (objects_per_page
//           objects per page: K and V for MHA models, one for MLA)
//   tiered  a working set of `keys` objects (meant to be several times the
//           pool's DRAM, the rest on its disk tiers) put once, then every
//           object read back once in random order and checked byte for
//           byte; with `tier_counters`, the master's and the stores' tier
//           counters split the gets into DRAM hits and loads from disk.
//           Ignores duration, ops and warmup: each pass covers the set once.
//
// Not thread-safe: one caller runs a workload at a time.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <string>
#include <vector>

#include "bench/arena.h"
#include "bench/latency_histogram.h"
#include "bench/tier_counters.h"
#include "kvcached/client.h"

namespace kvcached {

enum class WorkloadKind { kPut, kGet, kMixed, kExist, kSglang, kTiered };
const char* WorkloadName(WorkloadKind kind);
// INVALID_PARAMS naming the choices for anything else.
Result<WorkloadKind> ParseWorkload(const std::string& name);

struct WorkloadOptions {
  WorkloadKind kind = WorkloadKind::kPut;
  std::vector<uint64_t> object_sizes = {1 << 20};  // object i has object_sizes[i % n] bytes
  size_t batch = 16;                               // keys per call
  unsigned threads = 1;
  std::chrono::milliseconds duration{3000};
  uint64_t ops = 0;  // > 0: stop after this many calls (all threads) instead of `duration`
  std::chrono::milliseconds warmup{1000};  // the same load, unmeasured, first
  uint64_t keys = 1024;  // objects written before the clock for get/mixed/exist; sglang: objects;
                         // tiered: the working set
  double read_ratio = 0.9;        // mixed
  bool verify = false;            // check every byte of every get (and every exist answer)
  size_t pages = 128;             // sglang: pages per request (SGLang's chunk)
  unsigned objects_per_page = 2;  // sglang: 2 (K and V) for MHA, 1 for MLA
  ReplicateConfig replicate;
  std::string key_prefix = "kvbench";  // unique per run, so runs on one pool never collide
  bool remove_all_at_end =
      false;              // true: RemoveAll (a pool the bench owns); false: remove our keys
  bool progress = false;  // interval throughput on stderr once a second
  // tiered: a snapshot of the pool's tier counters, taken between passes
  // (from the calling thread); null: the per-tier split is unknown.
  std::function<TierCounters()> tier_counters;
};

struct OpStats {
  std::string name;    // "put", "get", "exist", "request"
  double seconds = 0;  // > 0: how long this op's own pass took (tiered); else the workload's
  uint64_t calls = 0;
  uint64_t handled = 0;  // keys asked for, whatever their result
  uint64_t objects = 0;  // keys that succeeded: stored, read, or answered (exist)
  uint64_t bytes = 0;    // bytes of objects moved successfully
  // get: not found (evicted) where that is no error; exist: answered false;
  // sglang put: another request was storing the same page (REPLICA_IS_NOT_READY)
  uint64_t misses = 0;
  std::map<std::string, uint64_t> errors;  // ErrorName -> objects that failed with it
  LatencyHistogram latency;                // per call

  uint64_t error_count() const;
  void Merge(const OpStats& other);
};

struct WorkloadResult {
  WorkloadKind kind = WorkloadKind::kPut;
  double seconds = 0;              // the measured part (tiered: both passes)
  std::vector<OpStats> ops;        // fixed order per kind
  uint64_t prefilled_objects = 0;  // written before the clock
  uint64_t verified_objects = 0;   // warm-up included: a wrong byte then counts too
  uint64_t wrong_objects = 0;
  std::vector<std::string> wrong_examples;      // the first few, described
  uint64_t pages_requested = 0, pages_hit = 0;  // sglang
  ClientStats client;                           // the client's counters over the measured part
  std::vector<std::string> notes;

  // tiered: what each pass did. put_tier covers the put pass and the wait
  // for the disk writes it caused, which went on settle_seconds after the
  // last put (to within 20 ms); get_tier covers the get pass.
  struct Tiered {
    uint64_t working_set_objects = 0, working_set_bytes = 0;
    double put_seconds = 0, settle_seconds = 0, get_seconds = 0;
    // CPU time of this whole process (an embedded pool's master and store
    // included) over each pass, user and system.
    double put_cpu_seconds = 0, get_cpu_seconds = 0;
    uint64_t hits = 0;    // gets that returned exactly the bytes put
    uint64_t misses = 0;  // gets that failed: not found, or any error
    uint64_t wrong = 0;   // gets that returned other bytes
    TierCounters put_tier, get_tier;
  } tiered;

  uint64_t handled() const;  // asked for (sglang: by its gets and puts)
  uint64_t objects() const;  // succeeded (sglang: moved by its gets and puts)
  uint64_t bytes() const;
  uint64_t errors() const;
};

// Runs one workload: prefill (untimed), warm-up, the measured part, and
// removal of what it wrote. A failure to set up (memory, a prefill that
// could not write) is returned as a Status; failures of measured calls are
// counted in the result, not returned.
Result<WorkloadResult> RunWorkload(Client& client, const WorkloadOptions& options,
                                   const Arena& source);

// The smallest source arena RunWorkload accepts for these options.
uint64_t SourceArenaBytes(const WorkloadOptions& options);

}  // namespace kvcached
