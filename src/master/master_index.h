// MasterIndex: the master's whole state and the object lifecycle of
// ARCHITECTURE.md ("Object lifecycle and invariants"): mounted segments and
// their allocators, every object and its replicas, put start/end/revoke with
// takeover and reclaim timeouts, read leases, LRU eviction that makes
// progress under a storm of ExistKey, owner liveness, and the rebuild of the
// index from the owners' object tables after a restart. It never touches
// object bytes and does no I/O: the RPC server feeds it requests and sends
// the table updates it queues for segment owners.
//
// Time is passed in explicitly (`now_ms`, a monotonic clock in
// milliseconds), so tests drive it without sleeping. Not thread-safe: the
// server serialises every call (one mutex).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/offset_allocator.h"
#include "core/rpc_protocol.h"
#include "core/status.h"

namespace kvcached {

enum class AllocationStrategy { kRandom, kFreeRatio, kLocalFirst };
Result<AllocationStrategy> ParseAllocationStrategy(const std::string& name);

struct MasterOptions {
  AllocationStrategy strategy = AllocationStrategy::kRandom;
  int64_t lease_ttl_ms = 10'000;
  // How long a segment rebuilt from its owner's table hands out no new
  // space (docs/master.md, "The wait after a rebuild"); negative: one
  // lease_ttl_ms. A leader elected in etcd needs less (docs/ha.md).
  int64_t remount_quarantine_ms = -1;
  int64_t put_start_discard_timeout_ms = 30'000;   // a pending put may be taken over
  int64_t put_start_release_timeout_ms = 600'000;  // a pending put's space is reclaimed
  double eviction_high_watermark_ratio = 0.90;
  double eviction_ratio = 0.05;
  int64_t client_ttl_ms = 10'000;
  uint64_t alignment_bytes = 64;
  uint64_t random_seed = 0;  // 0: from std::random_device
  // Object versions start here and then follow the clock passed in (one
  // microsecond per microsecond, at least one per put): the master passes
  // the wall clock in microseconds at its start, so a restarted master's
  // versions are above its predecessor's (docs/master.md, "Versions").
  uint64_t version_base_us = 0;
  // Keys removed or evicted (and the records of expired owners) are
  // remembered with their version, so a record offered later by an owner
  // that missed the change is refused. Past this many the oldest are
  // forgotten and every record at or below the forgotten versions is refused.
  size_t max_tombstones = 1u << 20;
  // Byte quotas by canonical tenant name ("" the default tenant; none:
  // unlimited). Each object counts once, pending ones included, whatever
  // its replicas. A put past its tenant's quota evicts the tenant's own
  // least recently used objects first (docs/master.md, "Tenants").
  std::map<std::string, uint64_t> tenant_quota_bytes;
  // Pins (PutStartRequest::pin). A soft pin lasts this long after the put
  // and after every read; while it lasts the object is evicted only when
  // unpinned objects are not enough, and not at all when
  // allow_evict_soft_pinned is false. A hard pin is never evicted.
  int64_t soft_pin_ttl_ms = 30 * 60'000;
  bool allow_evict_soft_pinned = true;
  // Replica tasks: unfinished ones at most (more are refused with
  // TASK_PENDING_LIMIT_EXCEEDED), finished ones remembered for QueryTask
  // (the oldest forgotten first). A task not started or not ended
  // put_start_release_timeout_ms after it began fails, and its target
  // ranges are freed.
  size_t max_pending_tasks = 10'000;
  size_t max_finished_tasks = 10'000;
};

struct TenantStats {
  uint64_t objects = 0;
  uint64_t bytes = 0;
  uint64_t quota_bytes = 0;        // 0: none
  uint64_t quota_refusals = 0;     // puts refused: the quota was full of leased objects
  uint64_t evicted_for_quota = 0;  // the tenant's objects evicted to make room in its quota
};

// Who is calling: the connection's Hello identity.
struct Caller {
  std::string client_id;
  std::string host_id;
  // A digest of the Hello's owner proof (0: none). A segment belongs to the
  // client id and the proof that mounted it.
  uint64_t proof = 0;
};

struct SegmentStats {
  std::string name;
  std::string owner;
  std::string host_id;
  std::string endpoint;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;
  uint64_t objects = 0;
  bool quarantined = false;  // rebuilt after a restart and no new allocations yet
  bool unreachable = false;  // a client reported it; no placements until its owner pings
  uint64_t disk_capacity_bytes = 0;  // the owner's disk tier (0: none)
  uint64_t disk_objects = 0;         // objects only on disk
  uint64_t disk_bytes = 0;
};

struct MasterCounters {
  uint64_t evicted_objects = 0;
  uint64_t evicted_bytes = 0;
  uint64_t lease_refusals = 0;  // leases refused to objects chosen for eviction
  uint64_t put_too_large = 0;   // puts larger than every segment: refused, nothing evicted
  uint64_t put_takeovers = 0;
  uint64_t upserts_replaced = 0;  // complete objects replaced by an upsert
  uint64_t soft_pinned_evicted = 0;  // soft-pinned objects evicted (of evicted_objects)
  uint64_t put_reclaims = 0;  // pending puts whose space was reclaimed
  uint64_t clients_expired = 0;
  uint64_t remount_objects_rejected = 0;    // out of bounds, overlapping, stale or removed
  uint64_t remount_objects_superseded = 0;  // records replaced by a newer one of the same key
  uint64_t reconcile_changes = 0;           // table changes sent to owners whose tables had drifted
  uint64_t owner_restarts = 0;  // segments mounted again by a new process proving the same owner
  uint64_t unreachable_reports = 0;  // segments reported unreachable by clients
  uint64_t leases_released = 0;      // read leases ended early by their readers
  uint64_t tasks_created = 0;        // replica tasks
  uint64_t tasks_succeeded = 0;
  uint64_t tasks_failed = 0;
  uint64_t replicas_copied = 0;  // replicas added to objects by tasks
  // Disk tier (docs/disk-tier.md).
  uint64_t demotions = 0;        // objects eviction asked an owner to write to disk
  uint64_t demoted = 0;          // ... that reached it (their ranges freed)
  uint64_t demote_failures = 0;  // ... that did not (the object was evicted)
  uint64_t clean_drops = 0;      // DRAM copies dropped whose disk record stayed
  uint64_t promotions = 0;       // reads of objects on disk: loads asked of owners
  uint64_t promoted = 0;
  uint64_t promote_failures = 0;  // the record was gone or corrupt: the object is removed
  uint64_t promote_no_room = 0;   // reads refused: no range for the load
  uint64_t disk_dropped = 0;      // objects gone with a record its owner dropped
};

class MasterIndex {
 public:
  explicit MasterIndex(MasterOptions options);
  ~MasterIndex();
  MasterIndex(const MasterIndex&) = delete;
  MasterIndex& operator=(const MasterIndex&) = delete;

  const MasterOptions& options() const { return options_; }

  // ---- segments and liveness ----
  // SEGMENT_ALREADY_EXISTS when another owner has the name (idempotent for
  // the same owner and size); INVALID_PARAMS for an empty name or size 0.
  Status Mount(const Caller& caller, const SegmentInfo& segment, int64_t now_ms);
  // Mounts the segment with the objects its owner holds (after a master
  // restart, or after the owner expired). Records are taken newest version
  // first: one older than the index's record of its key, at or below a
  // tombstone, out of bounds or over a range already taken is refused; one
  // newer than the index's record replaces it (the older replicas are
  // dropped and their owners told). New allocations in the segment wait one
  // lease TTL, so readers holding leases from the old master finish first.
  // When the caller already has the segment mounted here, nothing is
  // rebuilt: the index is authoritative and the differences are sent back.
  // Either way every record the index does not keep is queued to the owner
  // as a TableUpdate removal, so its table ends exactly as the index's
  // (docs/master.md, "Restart without loss").
  Status Remount(const Caller& caller, const SegmentInfo& segment,
                 const std::vector<ObjectEntry>& objects, int64_t now_ms);
  // Whether a Hello claiming `client_id` with `proof` may be taken: not when
  // that id owns a mounted segment and the proof differs (ILLEGAL_CLIENT,
  // naming the segment), so no peer can act as another's identity.
  Status AdmitOwner(const std::string& client_id, uint64_t proof) const;
  // Ownership (docs/master.md, "Segment owners"): Mount, Remount and
  // Unmount of a mounted segment need its owner's client id and proof
  // (ILLEGAL_CLIENT for the id with another proof). A Mount by another id
  // with the same proof is the owner's new process: it replaces the mount.
  // SEGMENT_NOT_FOUND; ILLEGAL_CLIENT when the caller does not own it. Drops
  // the segment's replicas; objects left without a replica are removed.
  Status Unmount(const Caller& caller, const std::string& name, int64_t now_ms);
  // Records liveness. remount_needed when the master holds fewer of the
  // caller's segments than it says it owns (e.g. the master restarted).
  // A new master: for one client TTL from `now_ms` (by then every live owner
  // has remounted) a Remove of a key the index does not know leaves a
  // tombstone, so the key's record, remounted later, is refused.
  void Started(int64_t now_ms);
  // A reader is done with these objects (key and the version its
  // GetReplicaList answer gave): each releases one lease. When an object's
  // last reader is done its lease ends at once, so eviction and Remove may
  // take it; an object chosen for eviction while read goes then. Releases
  // of leases already run out, and of another version of the key, do
  // nothing. Returns how many leases were released.
  uint64_t ReleaseLeases(const std::vector<ReleaseItem>& items, int64_t now_ms);
  // A ping also brings the caller's segments back from being unreachable.
  PingResponse Ping(const Caller& caller, uint32_t segments_owned, int64_t now_ms);
  // A client could not reach these segments: nothing new is placed there
  // until their owner's next ping (objects already there stay readable
  // through other replicas, or fail to read until the owner comes back or
  // expires). One code per name: OK, or SEGMENT_NOT_FOUND.
  CodesResponse ReportUnreachable(const std::vector<std::string>& segments);
  // Unmounts the segments of owners silent for client_ttl; returns the
  // expired client ids with how many segments each lost.
  std::vector<std::pair<std::string, size_t>> ExpireClients(int64_t now_ms);

  // ---- objects (one result per key, in order) ----
  CodesResponse ExistKeys(const std::vector<std::string>& keys, int64_t now_ms);
  // An object only on its owner's disk is loaded into a new range first
  // (the owner is asked by a kPromote table change): its item is answered
  // as if loaded, and its index goes to `promoting`, whose caller waits for
  // PromotionOf before sending the answer. Without `promoting` such
  // objects are answered OBJECT_NOT_FOUND.
  ReplicaListResponse GetReplicaLists(const std::vector<std::string>& keys, int64_t now_ms,
                                      std::vector<size_t>* promoting = nullptr);
  enum class Promotion { kPending, kReady, kFailed };
  Promotion PromotionOf(const std::string& key, uint64_t version) const;
  // An owner's TierReport (TableUpdate of TierEvents) for its segment:
  // demotions done or failed, loads done or failed, disk records dropped.
  // SEGMENT_NOT_FOUND; ILLEGAL_CLIENT for a caller that does not own it.
  Status TierReport(const Caller& caller, const TableUpdate& report, int64_t now_ms);
  // Bytes of objects being written to disk (their ranges free soon).
  uint64_t demoting_bytes() const;
  // `upsert`: a complete object of a key is replaced (it leaves the index
  // now; its ranges are reused once its read leases end) instead of kept
  // with OBJECT_ALREADY_EXISTS.
  ReplicaListResponse PutStart(const Caller& caller, const PutStartRequest& req, int64_t now_ms,
                               bool upsert = false);
  CodesResponse PutEnd(const Caller& caller, const PutEndRequest& req, int64_t now_ms);
  CodesResponse PutRevoke(const Caller& caller, const std::vector<std::string>& keys,
                          int64_t now_ms);
  CodesResponse Remove(const std::vector<std::string>& keys, bool force, int64_t now_ms);
  // Removes the complete objects of one tenant ("" the default).
  uint64_t RemoveAll(std::string_view tenant, bool force, int64_t now_ms);
  // A walk over one tenant's complete objects in slices, so that a caller
  // can test keys without holding the index (remove by regex): up to `max`
  // user keys with their versions from `cursor` on. Returns false once
  // the walk is over. Objects put or removed between slices may be seen
  // or missed.
  struct KeyVersion {
    std::string key;  // the user's key
    uint64_t version = 0;
  };
  bool ScanTenant(std::string_view tenant, uint32_t& cursor, size_t max,
                  std::vector<KeyVersion>& out) const;
  // Removes those of `items` that are still the same version (as Remove:
  // without force, objects under a read lease are kept).
  uint64_t RemoveVersions(std::string_view tenant, const std::vector<KeyVersion>& items, bool force,
                          int64_t now_ms);
  SizesResponse GetSizes(const std::vector<std::string>& keys) const;

  // ---- replica tasks (docs/master.md, "Replica tasks") ----
  // Keys are internal (tenant-scoped) keys. `wall_ms`: the wall clock, ms
  // since the epoch, for the task's times. A task belongs to the client
  // that created it: only it may start and end it, and QueryTask finds it
  // only for callers of the key's tenant.
  // CreateTask checks the request against the index now (OBJECT_NOT_FOUND,
  // SEGMENT_NOT_FOUND, INVALID_REPLICA for a move whose source holds no
  // replica, INVALID_PARAMS) and records the task pending.
  TaskInfo CreateTask(const Caller& caller, const CreateTaskRequest& req, int64_t now_ms,
                      uint64_t wall_ms);
  // Checks again, takes a read lease on the object and allocates a range in
  // every target that lacks a replica: item 0 of the answer is the object
  // (as GetReplicaList), item 1 the ranges to write (none: nothing to copy).
  // A failure here fails the task (its code in item 0).
  ReplicaListResponse TaskStart(const Caller& caller, const TaskRef& ref, int64_t now_ms,
                                uint64_t wall_ms);
  // The bytes are in the targets (code 0): the new replicas join the object
  // if it is still the version copied, and a move drops its source replica
  // (its range reused once the object's read leases end). Otherwise, or
  // with a code, the ranges are freed and the task fails with the message.
  StatusResponse TaskEnd(const Caller& caller, const TaskEndRequest& req, int64_t now_ms,
                         uint64_t wall_ms);
  TaskInfo QueryTask(std::string_view tenant, const TaskRef& ref) const;

  // Periodic work: reclaims abandoned puts, evicts doomed objects whose
  // leases ran out, and evicts past the high watermark.
  void Tick(int64_t now_ms);

  // Table updates queued for segment owners since the last call, by owner
  // client id. The server sends each as a TableUpdate notification.
  std::vector<std::pair<std::string, TableUpdate>> TakeTableUpdates();

  // ---- introspection ----
  size_t object_count() const;
  uint64_t capacity_bytes() const;
  uint64_t used_bytes() const;
  size_t client_count() const;
  std::vector<SegmentStats> Segments(int64_t now_ms) const;
  const MasterCounters& counters() const { return counters_; }
  // For the admin API: nullopt when absent.
  struct ObjectView {
    uint64_t size;
    uint64_t checksum;
    bool complete;
    bool doomed;
    int64_t lease_left_ms;
    std::vector<std::pair<std::string, uint64_t>> replicas;  // segment, offset
  };
  std::optional<ObjectView> Lookup(const std::string& key, int64_t now_ms) const;
  // Keys of one tenant's complete objects as its clients gave them, least
  // recently used first, those only in disk tiers before all others (at
  // most `limit`); what a get could find now.
  std::vector<std::string> CompleteKeys(std::string_view tenant, size_t limit) const;
  // Every tenant with objects, a quota or a quota event.
  std::map<std::string, TenantStats> Tenants() const;

 private:
  friend class MasterIndexTestPeer;
  struct Impl;
  // Remount of a segment the caller has mounted: queues the changes that
  // make the owner's table (`entries`) equal the index's view of it.
  void Reconcile(uint32_t segment_id, const std::vector<ObjectEntry>& entries, int64_t now_ms);
  const MasterOptions options_;  // before impl_, which refers to it
  MasterCounters counters_;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcached
