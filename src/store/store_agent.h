// StoreAgent: a segment owner's side of the control plane. It mounts the
// segment at the master, pings every interval, keeps the table of the
// objects in its segment from the master's TableUpdate notifications, and
// remounts with that table whenever the master says it lacks the segment
// (a restarted master rebuilds its index this way) or the connection was
// re-opened (updates sent on the old one may be lost; the master answers
// a remount with the changes that make the table equal its view). A process
// that finds it was stopped longer than the master's client TTL forgets its
// table first: the master dropped those objects and may have removed or
// replaced them since (docs/master.md, "Restart without loss"). Stop()
// unmounts.
//
// Threading: one background thread owns the RPC connection; the table is
// guarded by table_mu_ and may be read from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <map>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "core/rpc_protocol.h"
#include "core/status.h"
#include "net/rpc_client.h"

namespace kvcached {

class DiskTier;

struct StoreAgentOptions {
  RpcClientOptions rpc;  // master address, identity (role store), timeouts
  SegmentInfo segment;
  std::chrono::milliseconds ping_interval{1000};
  // The disk tier (docs/disk-tier.md), or null: the agent demotes and
  // promotes as the master asks, between the tier and `memory` (the
  // segment's bytes, segment.size of them), and reports each outcome.
  DiskTier* tier = nullptr;
  uint8_t* memory = nullptr;
  // Records the tier found at start: the first mount offers them (a
  // RemountSegment of fresh memory) so the master takes them back.
  std::vector<ObjectEntry> disk_records;
};

class StoreAgent {
 public:
  explicit StoreAgent(StoreAgentOptions options);
  ~StoreAgent();
  StoreAgent(const StoreAgent&) = delete;
  StoreAgent& operator=(const StoreAgent&) = delete;

  // Connects and mounts, then starts the ping thread. Fails with the
  // master's refusal (SEGMENT_ALREADY_EXISTS, ILLEGAL_CLIENT, ...) or the
  // transport error; a master that is down is not retried here (the caller
  // decides whether to wait), except that a store following a leader in
  // etcd waits up to 15 s for one (an election at start).
  Status Start();
  // Stops pinging and unmounts: the master drops the segment's objects.
  // Idempotent; returns the unmount's outcome.
  Status Stop();

  size_t objects() const;
  uint64_t table_bytes() const;
  uint64_t remounts() const { return remounts_; }
  // Table entries forgotten after this process was stopped past the TTL.
  uint64_t forgotten() const { return forgotten_; }
  bool master_reachable() const { return reachable_; }
  std::vector<ObjectEntry> Table() const;
  // The disk tier dropped this record on its own (its LRU made room, it was
  // corrupt, the disk failed): out of the table, and the master is told.
  void OnDiskDropped(const ObjectEntry& e);

 private:
  void Run();
  void Apply(const TableUpdate& update);
  // Disk tier: the master's kDemote and kPromote, and what the tier dropped.
  void Demote(const ObjectEntry& e);
  void Promote(const ObjectEntry& e);
  // Sets the table's entry of e.key to `offset` if it still is e.version.
  void MoveEntry(const ObjectEntry& e, uint64_t offset);
  void Report(TierEvent event, ObjectEntry e);
  void SendReports();  // Run only
  Status Remount();
  // One RemountSegment with the table as it is; `arrived`: TableUpdates
  // applied while the call was in flight.
  Status SendTable(uint64_t& arrived);
  void Forget(int64_t silent_ms, uint64_t client_ttl_ms);

  const StoreAgentOptions options_;
  RpcClient client_;  // used by Start() before the thread exists, then by Run() only
  std::thread thread_;
  std::mutex stop_mu_;  // guards stopping_ for the condition variable
  std::condition_variable stop_cv_;
  bool stopping_ = false;
  bool started_ = false;
  std::atomic<uint64_t> remounts_{0};
  std::atomic<uint64_t> forgotten_{0};
  std::atomic<uint64_t> updates_applied_{0};  // TableUpdates for this segment, ever
  uint64_t synced_connection_ = 0;  // the connection the table is known in line on (Run only)
  std::atomic<bool> reachable_{false};

  mutable std::mutex table_mu_;  // guards table_ and table_bytes_
  std::map<std::string, ObjectEntry> table_;
  uint64_t table_bytes_ = 0;

  SegmentInfo segment_;  // options_.segment; kSegmentFreshMemory until the first mount is done
  int wake_fd_ = -1;     // an eventfd: reports wait to be sent
  std::mutex reports_mu_;
  std::vector<TableChange> reports_;  // TierReport changes not yet sent
};

}  // namespace kvcached
