#include "master/master_index.h"

#include <algorithm>
#include <deque>
#include <functional>
#include <numeric>
#include <optional>
#include <set>

#include "master/key_table.h"
#include "core/tenant.h"

namespace kvcached {
namespace {

constexpr int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }

struct Loc {
  uint32_t seg;
  uint64_t offset;
};

enum class State : uint8_t { kPending, kComplete };

constexpr uint32_t kNil = KeyTable<int>::kNone;

// Replica locations: the first inline (nearly every object has one), the
// rest in a heap array, to keep an object's record small.
class Locs {
 public:
  size_t size() const { return count_; }
  bool empty() const { return count_ == 0; }
  Loc operator[](size_t i) const { return i == 0 ? Loc{first_seg_, first_offset_} : more_[i - 1]; }
  void push_back(Loc l) {
    if (count_ == 0) {
      first_seg_ = l.seg;
      first_offset_ = l.offset;
    } else {
      std::unique_ptr<Loc[]> grown(new Loc[count_]);
      for (size_t i = 1; i < count_; ++i) grown[i - 1] = more_[i - 1];
      grown[count_ - 1] = l;
      more_ = std::move(grown);
    }
    ++count_;
  }
  void erase(size_t i) {
    std::vector<Loc> rest;
    for (size_t j = 0; j < count_; ++j) {
      if (j != i) rest.push_back((*this)[j]);
    }
    clear();
    for (Loc l : rest) push_back(l);
  }
  void clear() {
    more_.reset();
    count_ = 0;
  }
  std::vector<Loc> ToVector() const {
    std::vector<Loc> out;
    for (size_t i = 0; i < count_; ++i) out.push_back((*this)[i]);
    return out;
  }

 private:
  uint64_t first_offset_ = 0;
  std::unique_ptr<Loc[]> more_;
  uint32_t first_seg_ = 0;
  uint8_t count_ = 0;
};

struct Object {
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t version = 0;  // assigned at PutStart; orders records of one key
  int64_t lease_until_ms = 0;
  uint32_t readers = 0;    // leases granted and not released (while lease_until_ms is ahead)
  int64_t started_ms = 0;  // PutStart time, while pending
  uint64_t writer = 0;     // hash of the writer's client id, while pending
  Locs locs;
  uint32_t lru_prev = kNil;  // complete objects only; head = least recently used
  uint32_t lru_next = kNil;
  State state = State::kPending;
  bool doomed = false;  // chosen for eviction: no new leases, freed when the lease ends
  uint8_t tier = 0;     // kTier* bits (disk tier; docs/disk-tier.md)
  Pin pin = Pin::kNone;
  int64_t soft_pin_until_ms = 0;  // a soft pin's end; renewed by each read
};

// Object::tier. An object is tiered when its one replica is in a segment
// whose owner keeps a disk tier: eviction demotes it instead of dropping it.
// Its Loc's offset is kOnDiskOffset while it is only on disk.
constexpr uint8_t kTierDisk = 1;       // the owner has a disk record of this version
constexpr uint8_t kTierDemoting = 2;   // the owner is writing it to disk; the range is kept
constexpr uint8_t kTierPromoting = 4;  // the owner is reading it into the range at the Loc

struct Segment {
  Segment(std::string n, uint64_t capacity, uint64_t alignment)
      : name(std::move(n)), alloc(capacity, alignment) {}
  std::string name;
  std::string owner;
  uint64_t owner_proof = 0;  // the owner's Hello proof digest (Caller::proof)
  std::string host_id;
  std::string endpoint;
  uint64_t base = 0;
  OffsetAllocator alloc;
  bool mounted = true;
  int64_t quarantine_until_ms = 0;
  bool unreachable = false;  // reported by a client; cleared by the owner's next ping
  uint64_t objects = 0;
  uint64_t disk_capacity = 0;  // the owner's disk tier (0: none)
  uint64_t disk_objects = 0;   // objects only on disk
  uint64_t disk_bytes = 0;
};

struct Client {
  std::string host_id;
  int64_t last_ping_ms = 0;
};

struct Zombie {  // space of a taken-over put, reused only after the release timeout
  uint32_t seg;
  uint64_t offset;
  uint64_t size;
};

uint64_t WriterHash(const std::string& client_id) { return std::hash<std::string>{}(client_id); }

// `other_owner`: the code when another client id owns the segment.
Status CheckOwner(const Segment& s, const Caller& caller,
                  ErrorCode other_owner = ErrorCode::SEGMENT_ALREADY_EXISTS) {
  if (s.owner != caller.client_id) {
    return Status(other_owner, "segment '" + s.name + "' belongs to " + s.owner);
  }
  if (s.owner_proof != caller.proof) {
    return Status(ErrorCode::ILLEGAL_CLIENT,
                  "segment '" + s.name + "' belongs to client '" + s.owner +
                      "' and this connection did not prove it is that process");
  }
  return Status::Ok();
}

// A new process of the segment's owner: another client id, the same proof.
bool RestartedOwner(const Segment& s, const Caller& caller) {
  return caller.proof != 0 && s.owner != caller.client_id && s.owner_proof == caller.proof;
}

}  // namespace

struct MasterIndex::Impl {
  explicit Impl(const MasterOptions& o)
      : opts(o), rng(o.random_seed ? o.random_seed : std::random_device{}()) {}

  using Id = uint32_t;
  const MasterOptions& opts;
  std::mt19937_64 rng;
  KeyTable<Object> objects;
  Id lru_head = kNil;
  Id lru_tail = kNil;
  std::vector<std::unique_ptr<Segment>> segments;  // index = segment id
  std::unordered_map<std::string, uint32_t> segment_ids;
  std::unordered_map<std::string, Client> clients;
  std::set<std::pair<int64_t, Id>> pending_by_time;  // (started, id) of pending puts
  std::multimap<int64_t, Zombie> zombies;            // release time -> range
  std::vector<std::string> doomed;
  std::map<std::string, std::map<uint32_t, TableUpdate>> updates;  // owner -> seg -> update
  // Disk tier: bytes being demoted (their ranges still held), and ranges
  // whose object left while its owner was writing or reading them: freed
  // when the owner reports (segment, offset) -> (size, lease end).
  uint64_t demoting_bytes = 0;
  std::map<std::pair<uint32_t, uint64_t>, std::pair<uint64_t, int64_t>> busy_ranges;
  // The memory copies of objects now on disk that readers still hold
  // leases on, by object id: freed when the last reader releases (or the
  // lease runs out), not at the lease's end like other zombies.
  struct Parked {
    Loc loc;
    uint64_t size;
    int64_t until_ms;
  };
  std::unordered_map<Id, Parked> parked;
  void FreeParked(Id id) {
    auto p = parked.find(id);
    if (p == parked.end()) return;
    FreeRange(p->second.loc.seg, p->second.loc.offset, p->second.size, 0, 0);
    parked.erase(p);
  }
  // Versions: the last one handed out, and the clock they follow.
  uint64_t version = 0;
  int64_t version_origin_ms = 0;
  bool version_started = false;
  // Tombstones: a record of the key below this version is refused at rebuild.
  std::unordered_map<std::string, uint64_t> tombstones;
  std::deque<std::pair<std::string, uint64_t>> tombstone_order;  // oldest first
  uint64_t tombstone_floor = 0;  // the highest version forgotten with a tombstone
  // Per tenant ("" the default): a record of its keys below this version is
  // refused at rebuild (the tenant removed all its objects then).
  std::unordered_map<std::string, uint64_t> tenant_floors;
  // Objects and bytes (each object once, pending ones included) per tenant
  // that has any, and quota refusals per tenant that had one.
  std::map<std::string, TenantStats> tenants;
  // Until then the index may lack objects whose owners have not remounted
  // yet (a new master): a Remove of a key it does not know leaves a
  // tombstone, so a record remounted later cannot bring the key back.
  int64_t rebuild_until_ms = 0;

  // ---- replica tasks ----
  using TaskKey = std::pair<uint64_t, uint64_t>;
  struct Task {
    TaskInfo info;  // code unused; message: why it failed
    std::string key;
    std::string source;
    std::vector<std::string> targets;
    uint64_t version = 0;     // of the object copied, from TaskStart
    uint64_t size = 0;
    std::vector<Loc> ranges;  // allocated by TaskStart, not yet the object's
    bool leased = false;      // TaskStart's read lease not yet given back
    int64_t deadline_ms = 0;  // fails unless started (pending) or ended by then
  };
  std::map<TaskKey, Task> tasks;
  std::deque<TaskKey> finished_tasks;  // oldest first
  size_t unfinished_tasks = 0;
  int64_t wall_offset_ms = 0;  // wall clock minus the monotonic one, as last seen

  // The task, when it is the caller's to start and end; nullptr otherwise.
  Task* CallersTask(const Caller& caller, const TaskKey& k) {
    auto it = tasks.find(k);
    if (it == tasks.end() || it->second.info.assigned_client != caller.client_id) return nullptr;
    return &it->second;
  }
  static bool Unfinished(const Task& t) {
    return t.info.state == static_cast<uint8_t>(TaskState::kPending) ||
           t.info.state == static_cast<uint8_t>(TaskState::kProcessing);
  }
  // A complete object not chosen for eviction, or kNil.
  Id LiveObject(std::string_view key) const {
    Id id = Find(key);
    if (id == kNil) return kNil;
    const Object& o = objects[id];
    return o.state == State::kComplete && !o.doomed ? id : kNil;
  }
  // The segment id of a mounted segment, or kNil.
  uint32_t MountedSegment(const std::string& name) const {
    auto it = segment_ids.find(name);
    return it != segment_ids.end() && segments[it->second]->mounted ? it->second : kNil;
  }
  static bool InDram(const Object& o) {
    return o.locs.size() > 0 && o.locs[0].offset != kOnDiskOffset;
  }
  // Eviction demotes the object (or drops its DRAM copy) instead of
  // dropping it: one replica, in a segment with a disk tier.
  bool Tiered(const Object& o) const {
    return o.state == State::kComplete && o.locs.size() == 1 &&
           segments[o.locs[0].seg]->disk_capacity > 0;
  }
  // Frees a range now, or once its read leases end.
  void FreeRange(uint32_t seg, uint64_t offset, uint64_t size, int64_t lease_until_ms,
                 int64_t now_ms) {
    Segment& s = *segments[seg];
    if (!s.mounted) return;
    if (lease_until_ms > now_ms) {
      zombies.emplace(lease_until_ms, Zombie{seg, offset, size});
      return;
    }
    (void)s.alloc.Free(offset, size);
    --s.objects;
  }
  // The object's DRAM copy goes; its disk record stays (kTierDisk). Readers
  // holding leases keep reading the range until they end.
  void DropDramCopy(Id id, int64_t now_ms) {
    Object& o = objects[id];
    Loc l = o.locs[0];
    if (o.lease_until_ms > now_ms && o.readers > 0) {
      if (auto p = parked.find(id);
          p != parked.end()) {  // an older copy's readers: to the lease end
        zombies.emplace(p->second.until_ms,
                        Zombie{p->second.loc.seg, p->second.loc.offset, p->second.size});
      }
      parked[id] = {l, o.size, o.lease_until_ms};
    } else {
      FreeRange(l.seg, l.offset, o.size, o.lease_until_ms, now_ms);
    }
    o.locs.clear();
    o.locs.push_back({l.seg, kOnDiskOffset});
    Segment& s = *segments[l.seg];
    s.disk_objects++;
    s.disk_bytes += o.size;
    LruUnlink(id);
    Queue(l.seg, TableOp::kAdd, id, o.locs[0]);  // the owner's table: on disk only
  }
  // Eviction's choice for a tiered object: no wait for its readers (the
  // bytes stay where their leases point until they end).
  void Demote(Id id, MasterCounters& counters, int64_t now_ms) {
    Object& o = objects[id];
    if (o.tier & (kTierDemoting | kTierPromoting)) return;
    if (o.tier & kTierDisk) {
      counters.clean_drops++;
      DropDramCopy(id, now_ms);
      return;
    }
    o.tier |= kTierDemoting;
    o.doomed = false;
    demoting_bytes += o.size;
    counters.demotions++;
    Queue(o.locs[0].seg, TableOp::kDemote, id, o.locs[0]);
  }
  // A read of an object only on disk: a range in its segment (evicting
  // there when needed), and the owner is asked to load it. The read's
  // answer waits for the owner's report (MasterService).
  Status Promote(Id id, int64_t now_ms, MasterCounters& counters) {
    Object& o = objects[id];
    uint32_t sid = o.locs[0].seg;
    Segment& s = *segments[sid];
    if (s.quarantine_until_ms > now_ms || s.unreachable) {
      counters.promote_no_room++;
      return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                    "the object is on disk and its segment takes no new ranges now");
    }
    std::optional<uint64_t> off = s.alloc.Allocate(o.size);
    if (!off) {
      std::vector<bool> eligible(segments.size(), false);
      eligible[sid] = true;
      uint64_t target = std::max<uint64_t>(
          o.size, static_cast<uint64_t>(opts.eviction_ratio *
                                        static_cast<double>(s.alloc.capacity_bytes())));
      // Bytes on their way to disk free their ranges soon: not chosen again.
      if (target > demoting_bytes) Evict(target - demoting_bytes, now_ms, counters, &eligible);
      off = s.alloc.Allocate(o.size);
    }
    if (!off) {
      counters.promote_no_room++;
      return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                    "the object is on disk and its segment has no room to load it now");
    }
    s.objects++;
    s.disk_objects--;
    s.disk_bytes -= o.size;
    o.locs.clear();
    o.locs.push_back({sid, *off});
    o.tier |= kTierPromoting;
    counters.promotions++;
    Queue(sid, TableOp::kPromote, id, o.locs[0]);
    return Status::Ok();
  }
  static bool Holds(const Object& o, uint32_t seg) {
    for (size_t i = 0; i < o.locs.size(); ++i) {
      if (o.locs[i].seg == seg) return true;
    }
    return false;
  }
  // Checks a task's request against the index now: OK, or why not.
  Status CheckTask(TaskType type, const std::string& key, const std::string& source,
                   const std::vector<std::string>& targets) const {
    Id id = LiveObject(key);
    if (id == kNil) {
      return Status(ErrorCode::OBJECT_NOT_FOUND,
                    "no object under '" + std::string(UserKeyOf(key)) + "'");
    }
    const Object& o = objects[id];
    if (!InDram(o) || (o.tier & (kTierDemoting | kTierPromoting))) {
      return Status(ErrorCode::INVALID_REPLICA,
                    "the object is in (or on its way to or from) its owner's disk tier");
    }
    size_t adds = 0;
    for (const std::string& t : targets) {
      uint32_t sid = MountedSegment(t);
      if (sid == kNil) return Status(ErrorCode::SEGMENT_NOT_FOUND, "no mounted segment '" + t + "'");
      adds += !Holds(o, sid);
    }
    if (type == TaskType::kReplicaMove) {
      uint32_t src = MountedSegment(source);
      if (src == kNil) {
        return Status(ErrorCode::SEGMENT_NOT_FOUND, "no mounted segment '" + source + "'");
      }
      if (!Holds(o, src)) {
        return Status(ErrorCode::INVALID_REPLICA,
                      "segment '" + source + "' holds no replica of the object");
      }
    }
    if (o.locs.size() + adds > kMaxReplicas) {
      return Status(ErrorCode::INVALID_PARAMS, "the object would have more than " +
                                                   std::to_string(kMaxReplicas) + " replicas");
    }
    return Status::Ok();
  }
  void FreeRanges(Task& t) {
    for (Loc l : t.ranges) {
      Segment& s = *segments[l.seg];
      if (!s.mounted) continue;
      (void)s.alloc.Free(l.offset, t.size);
      --s.objects;
    }
    t.ranges.clear();
  }
  // Gives back the read lease TaskStart took (as ReleaseLeases does).
  void EndTaskLease(Task& t, int64_t now_ms, MasterCounters& counters) {
    if (!t.leased) return;
    t.leased = false;
    Id id = Find(t.key);
    if (id == kNil) return;
    Object& o = objects[id];
    if (o.version != t.version || o.state != State::kComplete || o.readers == 0 ||
        o.lease_until_ms <= now_ms) {
      return;
    }
    if (--o.readers > 0) return;
    o.lease_until_ms = now_ms;
    if (o.doomed) EvictNow(id, counters);
  }
  void FinishTask(const TaskKey& k, Task& t, TaskState state, std::string message,
                  uint64_t wall_ms, MasterCounters& counters) {
    t.info.state = static_cast<uint8_t>(state);
    t.info.updated_ms = wall_ms;
    t.info.message = std::move(message);
    (state == TaskState::kSuccess ? counters.tasks_succeeded : counters.tasks_failed)++;
    --unfinished_tasks;
    finished_tasks.push_back(k);
    while (finished_tasks.size() > std::max<size_t>(1, opts.max_finished_tasks)) {
      tasks.erase(finished_tasks.front());
      finished_tasks.pop_front();
    }
  }

  Id Find(std::string_view key) const { return objects.Find(key); }

  uint64_t NextVersion(int64_t now_ms) {
    if (!version_started) {
      version_started = true;
      version_origin_ms = now_ms;
      version = std::max(version, opts.version_base_us);
    }
    uint64_t clock = opts.version_base_us +
                     static_cast<uint64_t>(std::max<int64_t>(0, now_ms - version_origin_ms)) * 1000;
    version = std::max(version + 1, clock);
    return version;
  }
  // A record seen at rebuild: versions handed out later must be above it.
  void WitnessVersion(uint64_t v) { version = std::max(version, v); }

  // Records of `key` below `below` are stale from now on.
  void Bury(std::string_view key, uint64_t below) {
    auto [it, fresh] = tombstones.try_emplace(std::string(key), below);
    if (!fresh) {
      it->second = std::max(it->second, below);
      return;
    }
    tombstone_order.emplace_back(it->first, below);
    while (tombstones.size() > opts.max_tombstones && !tombstone_order.empty()) {
      auto& [k, v] = tombstone_order.front();
      auto t = tombstones.find(k);
      if (t != tombstones.end()) {
        tombstone_floor = std::max(tombstone_floor, t->second);
        tombstones.erase(t);
      }
      tombstone_order.pop_front();
    }
  }
  bool Buried(const ObjectEntry& e) const {
    if (e.version < tombstone_floor) return true;
    if (auto f = tenant_floors.find(std::string(TenantOfInternalKey(e.key)));
        f != tenant_floors.end() && e.version < f->second) {
      return true;
    }
    auto it = tombstones.find(e.key);
    return it != tombstones.end() && e.version < it->second;
  }

  // Removed or evicted: gone for good, so a record of it that an owner
  // remounts later is refused. Owners are told.
  void Retire(Id id) {
    Bury(objects.Key(id), objects[id].version + 1);
    Drop(id, /*notify=*/true);
  }
  // Retire for an object that readers may still be reading (a forced
  // remove, an upsert): it leaves the index now and owners are told, but
  // each range is reused only when the last read lease ends, so a reader
  // never finds another object's bytes where its lease pointed.
  void RetireAfterLeases(Id id, int64_t now_ms) {
    Object& o = objects[id];
    if (o.lease_until_ms <= now_ms) return Retire(id);
    Bury(objects.Key(id), o.version + 1);
    ReleaseLocs(id, /*notify=*/true, o.lease_until_ms);
    Forget(id);
  }
  void EvictNow(Id id, MasterCounters& counters) {
    counters.evicted_objects++;
    counters.evicted_bytes += objects[id].size;
    Retire(id);
  }

  // ---- LRU over complete objects, by id ----
  void LruAppend(Id id) {
    Object& o = objects[id];
    o.lru_prev = lru_tail;
    o.lru_next = kNil;
    if (lru_tail != kNil) objects[lru_tail].lru_next = id;
    lru_tail = id;
    if (lru_head == kNil) lru_head = id;
  }
  void LruUnlink(Id id) {
    Object& o = objects[id];
    if (o.lru_prev != kNil) objects[o.lru_prev].lru_next = o.lru_next;
    if (o.lru_next != kNil) objects[o.lru_next].lru_prev = o.lru_prev;
    if (lru_head == id) lru_head = o.lru_next;
    if (lru_tail == id) lru_tail = o.lru_prev;
    o.lru_prev = o.lru_next = kNil;
  }
  void LruTouch(Id id) {
    if (lru_tail == id || !InDram(objects[id]) || (objects[id].tier & kTierPromoting)) return;
    LruUnlink(id);
    LruAppend(id);
  }

  // ---- owner notifications ----
  void Queue(uint32_t seg_id, TableOp op, Id id, const Loc& loc) {
    const Object& o = objects[id];
    QueueEntry(seg_id, op,
               {std::string(objects.Key(id)), loc.offset, o.size, o.checksum, o.version,
                static_cast<uint8_t>(o.pin)});
  }
  void QueueEntry(uint32_t seg_id, TableOp op, ObjectEntry entry) {
    Segment& s = *segments[seg_id];
    TableUpdate& u = updates[s.owner][seg_id];
    u.segment = s.name;
    u.changes.push_back({static_cast<uint8_t>(op), std::move(entry)});
  }

  // Frees every replica's range. `notify`: tell owners the object is gone.
  void ReleaseLocs(Id id, bool notify, int64_t lease_until_ms = 0) {
    Object& o = objects[id];
    if (o.tier & kTierDemoting) demoting_bytes -= o.size;
    for (size_t i = 0; i < o.locs.size(); ++i) {
      Loc l = o.locs[i];
      Segment& s = *segments[l.seg];
      if (!s.mounted) continue;
      if (notify && o.state == State::kComplete) Queue(l.seg, TableOp::kRemove, id, l);
      if (l.offset == kOnDiskOffset) {
        s.disk_objects--;
        s.disk_bytes -= o.size;
        continue;
      }
      if (o.tier & (kTierDemoting | kTierPromoting)) {
        // The owner is copying the range: it is freed when the owner reports.
        busy_ranges[{l.seg, l.offset}] = {o.size, lease_until_ms};
        continue;
      }
      if (lease_until_ms > 0) {
        zombies.emplace(lease_until_ms, Zombie{l.seg, l.offset, o.size});
        continue;
      }
      (void)s.alloc.Free(l.offset, o.size);
      --s.objects;
    }
    o.tier = 0;
    o.locs.clear();
  }

  // A new object of `size` bytes under `key` (counted to its tenant).
  Id NewObject(std::string_view key, uint64_t size) {
    Id id = objects.Insert(key);
    objects[id].size = size;
    TenantStats& t = tenants[std::string(TenantOfInternalKey(key))];
    t.objects++;
    t.bytes += size;
    return id;
  }

  // Removes an object from every structure that knows it.
  void Forget(Id id) {
    Object& o = objects[id];
    if (auto p = parked.find(id); p != parked.end()) {  // its readers may still be reading
      zombies.emplace(p->second.until_ms,
                      Zombie{p->second.loc.seg, p->second.loc.offset, p->second.size});
      parked.erase(p);
    }
    auto t = tenants.find(std::string(TenantOfInternalKey(objects.Key(id))));
    if (t != tenants.end()) {
      t->second.objects--;
      t->second.bytes -= o.size;
      if (t->second.objects == 0 && t->second.quota_refusals == 0 &&
          t->second.evicted_for_quota == 0) {
        tenants.erase(t);
      }
    }
    if (o.state == State::kComplete) {
      LruUnlink(id);
    } else {
      pending_by_time.erase({o.started_ms, id});
    }
    objects.Erase(id);
  }

  void Drop(Id id, bool notify) {
    ReleaseLocs(id, notify);
    Forget(id);
  }

  uint64_t Capacity() const {
    uint64_t c = 0;
    for (const auto& s : segments) {
      if (s->mounted) c += s->alloc.capacity_bytes();
    }
    return c;
  }
  // The largest mounted segment, quarantined ones included: an object larger
  // than this can never be placed, however much is evicted.
  uint64_t LargestSegment() const {
    uint64_t largest = 0;
    for (const auto& s : segments) {
      if (s->mounted) largest = std::max(largest, s->alloc.capacity_bytes());
    }
    return largest;
  }
  uint64_t Used() const {
    uint64_t u = 0;
    for (const auto& s : segments) {
      if (s->mounted) u += s->alloc.used_bytes();
    }
    return u;
  }

  // Whether eviction may take the object now: pass 0 takes unpinned
  // objects (and soft pins that ran out), pass 1 objects whose soft pin
  // lasts; a hard pin is never taken.
  bool InPass(const Object& o, int pass, int64_t now_ms) const {
    bool soft = o.pin == Pin::kSoft && o.soft_pin_until_ms > now_ms;
    if (o.pin == Pin::kHard) return false;
    return pass == 0 ? !soft : soft;
  }
  int Passes() const { return opts.allow_evict_soft_pinned ? 2 : 1; }

  // One walk of the LRU list from its head until `counted` reaches
  // `target`: each object `weight` gives bytes to is chosen. Unleased
  // objects go now (on_evict first); leased ones are doomed (no new leases)
  // and go when their lease ends, so a constant stream of reads cannot keep
  // the pool full forever.
  // `demote`: for room in DRAM, tiered objects go to their owner's disk
  // tier (a quota counts every tier: there they must go).
  template <typename Weight, typename OnEvict>
  void EvictWalk(uint64_t target, uint64_t& counted, int64_t now_ms, MasterCounters& counters,
                 Weight weight, OnEvict on_evict, bool demote = true) {
    for (Id id = lru_head; id != kNil && counted < target;) {
      Object& o = objects[id];
      Id next = o.lru_next;
      uint64_t bytes = weight(id);
      if (bytes != 0) {
        counted += bytes;
        if (demote && Tiered(o)) {
          Demote(id, counters, now_ms);
        } else if (o.doomed) {
          // already on its way out
        } else if (o.lease_until_ms > now_ms) {
          o.doomed = true;
          doomed.emplace_back(objects.Key(id));
        } else {
          if (o.pin == Pin::kSoft && o.soft_pin_until_ms > now_ms) counters.soft_pinned_evicted++;
          on_evict(id);
          EvictNow(id, counters);
        }
      }
      id = next;
    }
  }

  // Frees at least `target_bytes` by LRU order, unpinned objects before
  // soft-pinned ones (EvictWalk). `eligible` (by segment id), when given:
  // only objects with a replica in one of those segments go, and only those
  // replicas count, so a put cannot evict objects from segments it could
  // not use anyway.
  void Evict(uint64_t target_bytes, int64_t now_ms, MasterCounters& counters,
             const std::vector<bool>* eligible = nullptr) {
    uint64_t counted = 0;
    for (int pass = 0; pass < Passes() && counted < target_bytes; ++pass) {
      auto weight = [&](Id id) -> uint64_t {
        const Object& o = objects[id];
        if (!InPass(o, pass, now_ms)) return 0;
        uint64_t bytes = 0;
        for (size_t i = 0; i < o.locs.size(); ++i) {
          if (eligible == nullptr || (*eligible)[o.locs[i].seg]) bytes += o.size;
        }
        return bytes;
      };
      EvictWalk(target_bytes, counted, now_ms, counters, weight, [](Id) {});
    }
  }

  // Whether a new object of `size` bytes under `key` fits its tenant's
  // quota (MasterOptions::tenant_quota_bytes), after evicting the tenant's
  // own least recently used objects to make room (pins as in Evict).
  // Objects under a read lease are only doomed: the put is refused now and
  // fits once they go.
  bool WithinQuota(std::string_view key, uint64_t size, int64_t now_ms, MasterCounters& counters) {
    if (opts.tenant_quota_bytes.empty()) return true;
    std::string tenant(TenantOfInternalKey(key));
    auto q = opts.tenant_quota_bytes.find(tenant);
    if (q == opts.tenant_quota_bytes.end()) return true;
    TenantStats& t = tenants[tenant];
    if (size <= q->second && t.bytes + size > q->second) {
      uint64_t target = t.bytes + size - q->second;
      uint64_t counted = 0;
      for (int pass = 0; pass < Passes() && counted < target; ++pass) {
        auto weight = [&](Id id) -> uint64_t {
          const Object& o = objects[id];
          bool mine = TenantOfInternalKey(objects.Key(id)) == tenant;
          return mine && InPass(o, pass, now_ms) ? o.size : 0;
        };
        // Counted first: it keeps `t` in `tenants` while Forget runs.
        EvictWalk(
            target, counted, now_ms, counters, weight, [&](Id) { t.evicted_for_quota++; },
            /*demote=*/false);
      }
    }
    if (t.bytes + size <= q->second) return true;
    t.quota_refusals++;
    return false;
  }

  // Segments to try for a new object, best first.
  std::vector<uint32_t> Candidates(const Caller& caller, const std::string& preferred,
                                   int64_t now_ms) {
    std::vector<uint32_t> out;
    for (uint32_t sid = 0; sid < segments.size(); ++sid) {
      const Segment& s = *segments[sid];
      if (s.mounted && s.quarantine_until_ms <= now_ms && !s.unreachable) out.push_back(sid);
    }
    auto free_ratio = [&](uint32_t sid) {
      const OffsetAllocator& a = segments[sid]->alloc;
      return a.capacity_bytes() == 0
                 ? 0.0
                 : static_cast<double>(a.free_bytes()) / static_cast<double>(a.capacity_bytes());
    };
    switch (opts.strategy) {
      case AllocationStrategy::kRandom:
        std::shuffle(out.begin(), out.end(), rng);
        break;
      case AllocationStrategy::kFreeRatio:
        std::stable_sort(out.begin(), out.end(),
                         [&](uint32_t a, uint32_t b) { return free_ratio(a) > free_ratio(b); });
        break;
      case AllocationStrategy::kLocalFirst:
        std::stable_sort(out.begin(), out.end(), [&](uint32_t a, uint32_t b) {
          bool la = segments[a]->host_id == caller.host_id;
          bool lb = segments[b]->host_id == caller.host_id;
          if (la != lb) return la;
          return free_ratio(a) > free_ratio(b);
        });
        break;
    }
    if (!preferred.empty()) {
      auto it = segment_ids.find(preferred);
      if (it != segment_ids.end()) {
        auto pos = std::find(out.begin(), out.end(), it->second);
        if (pos != out.end()) std::rotate(out.begin(), pos, pos + 1);
      }
    }
    return out;
  }

  std::vector<Loc> Place(const Caller& caller, const std::string& preferred, uint32_t replicas,
                         uint64_t size, int64_t now_ms) {
    std::vector<Loc> locs;
    for (uint32_t sid : Candidates(caller, preferred, now_ms)) {
      if (locs.size() >= replicas) break;
      if (auto off = segments[sid]->alloc.Allocate(size)) {
        locs.push_back({sid, *off});
        segments[sid]->objects++;
      }
    }
    return locs;
  }

  // A response names each segment once; replicas point at it by index. A
  // response rarely names more than a handful, so a linear scan wins.
  using SegmentRefs = std::vector<std::pair<uint32_t, uint32_t>>;  // segment id -> index
  uint32_t SegmentIndexIn(ReplicaListResponse& res, SegmentRefs& refs, uint32_t seg_id) {
    for (const auto& [sid, index] : refs) {
      if (sid == seg_id) return index;
    }
    uint32_t index = static_cast<uint32_t>(res.segments.size());
    refs.emplace_back(seg_id, index);
    res.segments.push_back({segments[seg_id]->name, segments[seg_id]->endpoint});
    return index;
  }

  void FillReplicas(ReplicaListResponse& res, SegmentRefs& refs, const Locs& locs,
                    ReplicaItem& item) {
    item.replicas.reserve(locs.size());
    for (size_t i = 0; i < locs.size(); ++i) {
      item.replicas.push_back({SegmentIndexIn(res, refs, locs[i].seg), locs[i].offset});
    }
  }

  // `bury`: the owner expired and may come back with these records; a
  // record older than the one dropped here must not win then.
  void DropSegmentReplicas(uint32_t seg_id, bool bury) {
    objects.ForEach([&](Id id) {
      Object& o = objects[id];
      for (size_t i = 0; i < o.locs.size(); ++i) {
        if (o.locs[i].seg != seg_id) continue;
        if (bury && o.state == State::kComplete) Bury(objects.Key(id), o.version);
        if (o.tier & kTierDemoting) demoting_bytes -= o.size;
        o.tier = 0;
        o.locs.erase(i);
        if (o.locs.empty()) Forget(id);
        return;
      }
    });
    for (auto it = zombies.begin(); it != zombies.end();) {
      it = it->second.seg == seg_id ? zombies.erase(it) : std::next(it);
    }
    for (auto it = busy_ranges.begin(); it != busy_ranges.end();) {
      it = it->first.first == seg_id ? busy_ranges.erase(it) : std::next(it);
    }
    for (auto it = parked.begin(); it != parked.end();) {
      it = it->second.loc.seg == seg_id ? parked.erase(it) : std::next(it);
    }
    // Task ranges there go with the segment's allocator.
    for (auto& [k, t] : tasks) {
      t.ranges.erase(std::remove_if(t.ranges.begin(), t.ranges.end(),
                                    [&](const Loc& l) { return l.seg == seg_id; }),
                     t.ranges.end());
    }
    Segment& s = *segments[seg_id];
    s.mounted = false;
    s.objects = 0;
    for (auto& [owner, per_seg] : updates) per_seg.erase(seg_id);
  }
};

Result<AllocationStrategy> ParseAllocationStrategy(const std::string& name) {
  if (name == "random") return AllocationStrategy::kRandom;
  if (name == "free-ratio") return AllocationStrategy::kFreeRatio;
  if (name == "local-first") return AllocationStrategy::kLocalFirst;
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown allocation strategy '" + name + "' (random, free-ratio, local-first)");
}

MasterIndex::MasterIndex(MasterOptions options)
    : options_(options), impl_(std::make_unique<Impl>(options_)) {}

MasterIndex::~MasterIndex() = default;

Status MasterIndex::Mount(const Caller& caller, const SegmentInfo& seg, int64_t now_ms) {
  Impl& m = *impl_;
  if (seg.name.empty()) return Status(ErrorCode::INVALID_PARAMS, "segment name is empty");
  if (seg.size < options_.alignment_bytes) {
    return Status(ErrorCode::INVALID_PARAMS, "segment '" + seg.name + "' is too small");
  }
  auto it = m.segment_ids.find(seg.name);
  if (it != m.segment_ids.end() && m.segments[it->second]->mounted) {
    Segment& s = *m.segments[it->second];
    if (Status st = CheckOwner(s, caller); !st.ok()) {
      if (!RestartedOwner(s, caller)) return st;
      // The same owner in a new process (it kept its proof): the old
      // process's memory is gone with it, and so are its objects.
      counters_.owner_restarts++;
      m.DropSegmentReplicas(it->second, /*bury=*/false);
    } else if (s.alloc.capacity_bytes() ==
               seg.size / options_.alignment_bytes * options_.alignment_bytes) {
      s.endpoint = seg.endpoint;  // a retried mount may carry a new endpoint
      s.base = seg.base;
      s.disk_capacity = seg.disk_bytes;  // its disk tier may have gone offline
      return Status::Ok();
    } else {
      return Status(ErrorCode::SEGMENT_ALREADY_EXISTS,
                    "segment '" + seg.name + "' is already mounted with another size");
    }
  }
  auto fresh = std::make_unique<Segment>(seg.name, seg.size, options_.alignment_bytes);
  fresh->owner = caller.client_id;
  fresh->owner_proof = caller.proof;
  fresh->host_id = caller.host_id;
  fresh->endpoint = seg.endpoint;
  fresh->base = seg.base;
  fresh->disk_capacity = seg.disk_bytes;
  if (it != m.segment_ids.end()) {
    m.segments[it->second] = std::move(fresh);
  } else {
    m.segment_ids[seg.name] = static_cast<uint32_t>(m.segments.size());
    m.segments.push_back(std::move(fresh));
  }
  Client& c = m.clients[caller.client_id];
  c.host_id = caller.host_id;
  c.last_ping_ms = now_ms;
  return Status::Ok();
}

Status MasterIndex::Remount(const Caller& caller, const SegmentInfo& seg,
                            const std::vector<ObjectEntry>& entries, int64_t now_ms) {
  Impl& m = *impl_;
  if (seg.name.empty() || seg.size < options_.alignment_bytes) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "segment '" + seg.name + "' has no name or is too small");
  }
  bool fresh_memory = seg.flags & kSegmentFreshMemory;
  auto it = m.segment_ids.find(seg.name);
  if (it != m.segment_ids.end() && m.segments[it->second]->mounted) {
    // Only a fresh start replaces another process of the same owner (a
    // MountSegment, or the first RemountSegment of a store that found
    // records in its disk tier); an older process that remounts is
    // refused, so two processes given one owner file cannot take the
    // segment in turns.
    const Segment& had = *m.segments[it->second];
    if (Status st = CheckOwner(had, caller); !st.ok()) {
      if (!fresh_memory || !RestartedOwner(had, caller)) return st;
    } else {
      if (Status st = Mount(caller, seg, now_ms); !st.ok()) return st;  // endpoint change
      Reconcile(it->second, entries, now_ms);
      return Status::Ok();
    }
  }
  if (Status st = Mount(caller, seg, now_ms); !st.ok()) return st;
  uint32_t sid = m.segment_ids.at(seg.name);
  Segment& s = *m.segments[sid];
  // New memory holds no range an earlier reader's lease points into.
  if (!fresh_memory) {
    s.quarantine_until_ms =
        now_ms + (options_.remount_quarantine_ms < 0 ? options_.lease_ttl_ms
                                                     : options_.remount_quarantine_ms);
  }
  // Newest first: of two records over one range, or of one key, the newer wins.
  std::vector<size_t> order(entries.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return entries[a].version > entries[b].version; });
  auto refuse = [&](const ObjectEntry& e) {
    counters_.remount_objects_rejected++;
    m.QueueEntry(sid, TableOp::kRemove, e);
  };
  for (size_t i : order) {
    const ObjectEntry& e = entries[i];
    if (e.key.empty() || e.size == 0 || m.Buried(e)) {
      refuse(e);
      continue;
    }
    bool on_disk = e.offset == kOnDiskOffset;
    if (on_disk && s.disk_capacity == 0) {  // a disk record needs the owner's disk tier
      refuse(e);
      continue;
    }
    uint32_t id = m.Find(e.key);
    if (id != kNil) {
      Object& o = m.objects[id];
      // A put in progress is newer than any record from before it started;
      // a complete record of a higher version wins; at the same version it is
      // another replica of the same object.
      bool keep_other = o.state != State::kComplete || o.version > e.version ||
                        (o.version == e.version && (o.size != e.size || o.checksum != e.checksum ||
                                                    o.locs.size() >= kMaxReplicas));
      if (keep_other) {
        refuse(e);
        continue;
      }
      if (o.version == e.version) {
        // Another replica of a tiered object, or a disk record beside
        // replicas elsewhere: the index keeps what it has.
        if (on_disk || m.Tiered(o) || !m.InDram(o) || !s.alloc.Reserve(e.offset, e.size).ok()) {
          refuse(e);
          continue;
        }
        o.locs.push_back({sid, e.offset});
        s.objects++;
        continue;
      }
    }
    if (!on_disk && !s.alloc.Reserve(e.offset, e.size).ok()) {
      refuse(e);
      continue;
    }
    if (id != kNil) {  // an older record of the key: this one replaces it everywhere
      counters_.remount_objects_superseded++;
      m.Drop(id, /*notify=*/true);
    }
    m.WitnessVersion(e.version);
    id = m.NewObject(e.key, e.size);
    Object& o = m.objects[id];
    o.checksum = e.checksum;
    o.version = e.version;
    o.state = State::kComplete;
    o.pin = static_cast<Pin>(e.pin);  // bounded by the decoder
    o.soft_pin_until_ms = now_ms + options_.soft_pin_ttl_ms;
    o.locs.push_back({sid, e.offset});
    if (on_disk) {
      o.tier = kTierDisk;
      s.disk_objects++;
      s.disk_bytes += e.size;
      continue;
    }
    s.objects++;
    m.LruAppend(id);
  }
  return Status::Ok();
}

void MasterIndex::Reconcile(uint32_t sid, const std::vector<ObjectEntry>& entries, int64_t now_ms) {
  Impl& m = *impl_;
  std::unordered_map<std::string_view, const ObjectEntry*> theirs;
  theirs.reserve(entries.size());
  for (const ObjectEntry& e : entries) theirs[e.key] = &e;
  uint64_t changes = 0;
  m.objects.ForEach([&](uint32_t id) {
    Object& o = m.objects[id];
    if (o.state != State::kComplete) return;  // its PutEnd will add it
    if ((o.tier & (kTierDemoting | kTierPromoting)) && o.locs[0].seg == sid) {
      // The owner's report of a demotion or load may have been lost with its
      // connection: its table says how far it got.
      auto t = theirs.find(m.objects.Key(id));
      bool theirs_now = t != theirs.end() && t->second->version == o.version;
      if (o.tier & kTierDemoting) {
        o.tier &= static_cast<uint8_t>(~kTierDemoting);
        m.demoting_bytes -= o.size;
        if (theirs_now && t->second->offset == kOnDiskOffset) {  // written: done
          o.tier |= kTierDisk;
          counters_.demoted++;
          m.DropDramCopy(id, now_ms);
        }
      } else if (theirs_now && t->second->offset == o.locs[0].offset) {  // loaded: done
        o.tier &= static_cast<uint8_t>(~kTierPromoting);
        counters_.promoted++;
        m.LruAppend(id);
      } else {
        // Not loaded (yet): back on disk only; the range waits for the
        // owner's report, in case its read is still under way.
        Loc l = o.locs[0];
        m.busy_ranges[{l.seg, l.offset}] = {o.size, 0};
        o.tier &= static_cast<uint8_t>(~kTierPromoting);
        o.locs.clear();
        o.locs.push_back({l.seg, kOnDiskOffset});
        Segment& s = *m.segments[l.seg];
        s.disk_objects++;
        s.disk_bytes += o.size;
      }
    }
    for (size_t i = 0; i < o.locs.size(); ++i) {
      if (o.locs[i].seg != sid) continue;
      // A promotion's range is the owner's only once it reports it loaded.
      Loc l = o.locs[i];
      if (o.tier & kTierPromoting) l.offset = kOnDiskOffset;
      auto t = theirs.find(m.objects.Key(id));
      bool same = t != theirs.end() && t->second->offset == l.offset && t->second->size == o.size &&
                  t->second->version == o.version && t->second->checksum == o.checksum;
      if (t != theirs.end()) theirs.erase(t);
      if (!same) {
        m.Queue(sid, TableOp::kAdd, id, l);  // replaces theirs, if any
        ++changes;
      }
      return;
    }
  });
  for (const auto& [key, e] : theirs) {
    m.QueueEntry(sid, TableOp::kRemove, *e);
    ++changes;
  }
  counters_.reconcile_changes += changes;
}

Status MasterIndex::Unmount(const Caller& caller, const std::string& name, int64_t now_ms) {
  Impl& m = *impl_;
  auto it = m.segment_ids.find(name);
  if (it == m.segment_ids.end() || !m.segments[it->second]->mounted) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND, "no mounted segment '" + name + "'");
  }
  if (Status st = CheckOwner(*m.segments[it->second], caller, ErrorCode::ILLEGAL_CLIENT);
      !st.ok()) {
    return st;
  }
  m.DropSegmentReplicas(it->second, /*bury=*/false);
  return Status::Ok();
}

void MasterIndex::Started(int64_t now_ms) {
  impl_->rebuild_until_ms = now_ms + options_.client_ttl_ms;
}

uint64_t MasterIndex::ReleaseLeases(const std::vector<ReleaseItem>& items, int64_t now_ms) {
  Impl& m = *impl_;
  uint64_t released = 0;
  for (const ReleaseItem& it : items) {
    uint32_t id = m.Find(it.key);
    if (id == kNil) continue;
    Object& o = m.objects[id];
    // Another version of the key (the one read was removed or evicted and
    // the key put again): its readers' leases are not this reader's.
    if (o.version != it.version) continue;
    if (o.state != State::kComplete || o.readers == 0 || o.lease_until_ms <= now_ms) continue;
    ++released;
    if (--o.readers > 0) continue;
    o.lease_until_ms = now_ms;  // the last reader is done: evictable, removable
    m.FreeParked(id);           // a memory copy left for its readers goes now
    if (o.doomed) m.EvictNow(id, counters_);
  }
  counters_.leases_released += released;
  return released;
}

CodesResponse MasterIndex::ReportUnreachable(const std::vector<std::string>& names) {
  Impl& m = *impl_;
  CodesResponse r;
  for (const std::string& name : names) {
    auto it = m.segment_ids.find(name);
    if (it == m.segment_ids.end() || !m.segments[it->second]->mounted) {
      r.codes.push_back(Code(ErrorCode::SEGMENT_NOT_FOUND));
      continue;
    }
    Segment& s = *m.segments[it->second];
    if (!s.unreachable) counters_.unreachable_reports++;
    s.unreachable = true;
    r.codes.push_back(Code(ErrorCode::OK));
  }
  return r;
}

Status MasterIndex::AdmitOwner(const std::string& client_id, uint64_t proof) const {
  for (const auto& s : impl_->segments) {
    if (s->mounted && s->owner == client_id && s->owner_proof != proof) {
      return Status(ErrorCode::ILLEGAL_CLIENT,
                    "client id '" + client_id + "' owns segment '" + s->name +
                        "' and this Hello does not prove it is that process");
    }
  }
  return Status::Ok();
}

PingResponse MasterIndex::Ping(const Caller& caller, uint32_t segments_owned, int64_t now_ms) {
  Impl& m = *impl_;
  Client& c = m.clients[caller.client_id];
  c.host_id = caller.host_id;
  c.last_ping_ms = now_ms;
  uint32_t mounted = 0;
  for (const auto& s : m.segments) {
    if (s->mounted && s->owner == caller.client_id) {
      ++mounted;
      s->unreachable = false;
    }
  }
  PingResponse r;
  r.remount_needed = mounted < segments_owned;
  r.client_ttl_ms = static_cast<uint64_t>(options_.client_ttl_ms);
  return r;
}

std::vector<std::pair<std::string, size_t>> MasterIndex::ExpireClients(int64_t now_ms) {
  Impl& m = *impl_;
  std::vector<std::pair<std::string, size_t>> expired;
  for (auto it = m.clients.begin(); it != m.clients.end();) {
    if (it->second.last_ping_ms + options_.client_ttl_ms > now_ms) {
      ++it;
      continue;
    }
    size_t lost = 0;
    for (uint32_t id = 0; id < m.segments.size(); ++id) {
      if (m.segments[id]->mounted && m.segments[id]->owner == it->first) {
        m.DropSegmentReplicas(id, /*bury=*/true);
        ++lost;
      }
    }
    m.updates.erase(it->first);
    expired.emplace_back(it->first, lost);
    counters_.clients_expired++;
    it = m.clients.erase(it);
  }
  return expired;
}

CodesResponse MasterIndex::ExistKeys(const std::vector<std::string>& keys, int64_t now_ms) {
  Impl& m = *impl_;
  CodesResponse r;
  r.lease_ttl_ms = 0;  // no lease granted (below)
  r.codes.reserve(keys.size());
  for (const std::string& k : keys) {
    uint32_t id = m.Find(k);
    if (id == kNil || m.objects[id].state != State::kComplete) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
      continue;
    }
    Object& o = m.objects[id];
    if (o.doomed) {  // on its way out: a get would not find it
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
      continue;
    }
    // No lease: a check pins nothing. SGLang checks every page of a request
    // and reads only some; leasing each check kept a full pool from evicting
    // anything (Mooncake's issue #2187). The read's GetReplicaList leases.
    m.LruTouch(id);
    r.codes.push_back(Code(ErrorCode::OK));
  }
  return r;
}

ReplicaListResponse MasterIndex::GetReplicaLists(const std::vector<std::string>& keys,
                                                 int64_t now_ms, std::vector<size_t>* promoting) {
  Impl& m = *impl_;
  ReplicaListResponse r;
  r.lease_ttl_ms = static_cast<uint64_t>(options_.lease_ttl_ms);
  r.items.resize(keys.size());
  Impl::SegmentRefs refs;
  for (size_t i = 0; i < keys.size(); ++i) {
    ReplicaItem& item = r.items[i];
    uint32_t id = m.Find(keys[i]);
    if (id == kNil || m.objects[id].state != State::kComplete) {
      item.code = Code(ErrorCode::OBJECT_NOT_FOUND);
      continue;
    }
    Object& o = m.objects[id];
    if (o.doomed) {
      counters_.lease_refusals++;
      item.code = Code(ErrorCode::OBJECT_NOT_FOUND);
      continue;
    }
    if (!Impl::InDram(o) || (o.tier & kTierPromoting)) {
      if (promoting == nullptr) {  // a caller that cannot wait for a load
        item.code = Code(ErrorCode::OBJECT_NOT_FOUND);
        continue;
      }
      if (!(o.tier & kTierPromoting)) {
        if (Status st = m.Promote(id, now_ms, counters_); !st.ok()) {
          item.code = Code(st.code());
          continue;
        }
      }
      promoting->push_back(i);
    }
    if (o.lease_until_ms <= now_ms) o.readers = 0;  // earlier readers' leases ran out
    o.readers++;
    o.lease_until_ms = std::max(o.lease_until_ms, now_ms + options_.lease_ttl_ms);
    if (o.pin == Pin::kSoft) o.soft_pin_until_ms = now_ms + options_.soft_pin_ttl_ms;
    m.LruTouch(id);
    item.size = o.size;
    item.checksum = o.checksum;
    item.version = o.version;
    m.FillReplicas(r, refs, o.locs, item);
  }
  return r;
}

ReplicaListResponse MasterIndex::PutStart(const Caller& caller, const PutStartRequest& req,
                                          int64_t now_ms, bool upsert) {
  Impl& m = *impl_;
  ReplicaListResponse r;
  r.lease_ttl_ms = static_cast<uint64_t>(options_.lease_ttl_ms);
  r.items.resize(req.items.size());
  Impl::SegmentRefs refs;
  bool bad_replicas =
      req.replica_num == 0 || req.replica_num > kMaxReplicas || req.pin > kMaxPin;
  for (size_t i = 0; i < req.items.size(); ++i) {
    const PutStartItem& in = req.items[i];
    ReplicaItem& item = r.items[i];
    if (bad_replicas || in.size == 0) {
      item.code = Code(ErrorCode::INVALID_PARAMS);
      continue;
    }
    if (in.key.empty()) {
      item.code = Code(ErrorCode::INVALID_KEY);
      continue;
    }
    // An object no segment could hold even when empty fails before anything
    // is evicted for it (an empty pool is NO_AVAILABLE_HANDLE, as any put).
    if (uint64_t largest = m.LargestSegment(); largest != 0 && in.size > largest) {
      counters_.put_too_large++;
      item.code = Code(ErrorCode::INVALID_PARAMS);
      continue;
    }
    uint32_t existing = m.Find(in.key);
    if (existing != kNil) {
      Object& o = m.objects[existing];
      if (o.state == State::kComplete && !upsert) {
        item.code = Code(ErrorCode::OBJECT_ALREADY_EXISTS);
        continue;
      }
      if (o.state == State::kComplete) {
        // An upsert: the object is replaced once the new one is placed.
      } else if (now_ms - o.started_ms < options_.put_start_discard_timeout_ms) {
        item.code = Code(ErrorCode::REPLICA_IS_NOT_READY);
        continue;
      } else {
        // Take over an abandoned put. The old writer may still be writing,
        // so its ranges are reused only after the release timeout.
        for (size_t j = 0; j < o.locs.size(); ++j) {
          m.zombies.emplace(o.started_ms + options_.put_start_release_timeout_ms,
                            Zombie{o.locs[j].seg, o.locs[j].offset, o.size});
        }
        o.locs.clear();
        counters_.put_takeovers++;
        m.Forget(existing);
      }
    }
    if (!m.WithinQuota(in.key, in.size, now_ms, counters_)) {
      item.code = Code(ErrorCode::NO_AVAILABLE_HANDLE);
      continue;
    }
    std::vector<Loc> locs =
        m.Place(caller, req.preferred_segment, req.replica_num, in.size, now_ms);
    // Out of space: evict and try once more, only from segments this put
    // may use (not quarantined after a rebuild, not reported unreachable):
    // evicting elsewhere would free objects for nothing. One pass frees the
    // configured ratio of the pool, or this object's replicas where they
    // need more: bounded, since the object fits in a segment (checked
    // above) and replicas are at most kMaxReplicas.
    std::vector<bool> eligible;
    if (locs.empty()) {
      eligible.assign(m.segments.size(), false);
      for (uint32_t sid : m.Candidates(caller, "", now_ms)) eligible[sid] = true;
    }
    if (std::find(eligible.begin(), eligible.end(), true) != eligible.end()) {
      uint64_t cap = m.Capacity();
      uint64_t target = std::max<uint64_t>(
          in.size * req.replica_num,
          static_cast<uint64_t>(options_.eviction_ratio * static_cast<double>(cap)));
      // Demotions under way free ranges soon (the put may wait for them).
      if (target > m.demoting_bytes)
        m.Evict(target - m.demoting_bytes, now_ms, counters_, &eligible);
      locs = m.Place(caller, req.preferred_segment, req.replica_num, in.size, now_ms);
    }
    if (locs.empty()) {
      item.code = Code(ErrorCode::NO_AVAILABLE_HANDLE);
      continue;
    }
    // An upsert replaces the object of the key (unless eviction just took
    // it): readers holding a lease keep reading the old bytes.
    if (uint32_t old = upsert ? m.Find(in.key) : kNil; old != kNil) {
      counters_.upserts_replaced++;
      m.RetireAfterLeases(old, now_ms);
    }
    uint32_t id = m.NewObject(in.key, in.size);
    Object& o = m.objects[id];
    o.state = State::kPending;
    o.started_ms = now_ms;
    o.version = m.NextVersion(now_ms);
    o.writer = WriterHash(caller.client_id);
    o.pin = static_cast<Pin>(req.pin);
    for (Loc l : locs) o.locs.push_back(l);
    m.pending_by_time.emplace(now_ms, id);
    item.size = in.size;
    item.version = o.version;
    m.FillReplicas(r, refs, o.locs, item);
  }
  return r;
}

CodesResponse MasterIndex::PutEnd(const Caller& caller, const PutEndRequest& req, int64_t now_ms) {
  Impl& m = *impl_;
  CodesResponse r;
  r.codes.reserve(req.items.size());
  uint64_t writer = WriterHash(caller.client_id);
  for (const PutEndItem& in : req.items) {
    uint32_t id = m.Find(in.key);
    if (id == kNil) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
      continue;
    }
    Object& o = m.objects[id];
    if (o.state == State::kComplete) {
      r.codes.push_back(Code(ErrorCode::OBJECT_ALREADY_EXISTS));
      continue;
    }
    if (o.writer != writer) {
      r.codes.push_back(Code(ErrorCode::INVALID_WRITE));  // taken over by another writer
      continue;
    }
    m.pending_by_time.erase({o.started_ms, id});
    o.state = State::kComplete;
    o.checksum = in.checksum;
    o.started_ms = 0;
    o.writer = 0;
    o.soft_pin_until_ms = now_ms + options_.soft_pin_ttl_ms;
    m.LruAppend(id);
    for (size_t i = 0; i < o.locs.size(); ++i) m.Queue(o.locs[i].seg, TableOp::kAdd, id, o.locs[i]);
    r.codes.push_back(Code(ErrorCode::OK));
  }
  return r;
}

CodesResponse MasterIndex::PutRevoke(const Caller& caller, const std::vector<std::string>& keys,
                                     int64_t now_ms) {
  Impl& m = *impl_;
  CodesResponse r;
  uint64_t writer = WriterHash(caller.client_id);
  for (const std::string& k : keys) {
    uint32_t id = m.Find(k);
    if (id == kNil) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
    } else if (m.objects[id].state == State::kComplete || m.objects[id].writer != writer) {
      r.codes.push_back(Code(ErrorCode::INVALID_WRITE));
    } else {
      m.Drop(id, /*notify=*/false);
      r.codes.push_back(Code(ErrorCode::OK));
    }
  }
  return r;
}

CodesResponse MasterIndex::Remove(const std::vector<std::string>& keys, bool force,
                                  int64_t now_ms) {
  Impl& m = *impl_;
  CodesResponse r;
  for (const std::string& k : keys) {
    uint32_t id = m.Find(k);
    if (id == kNil) {
      // A new master may not have the key yet; an owner that expired holding
      // it (its tombstone) may offer it again, from memory or from a disk
      // tier that outlived a restart: either way the remove must stick.
      if (now_ms < m.rebuild_until_ms || m.tombstones.count(k) > 0) {
        m.Bury(k, m.NextVersion(now_ms));
      }
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
    } else if (m.objects[id].state != State::kComplete) {
      r.codes.push_back(Code(ErrorCode::REPLICA_IS_NOT_READY));
    } else if (!force && m.objects[id].lease_until_ms > now_ms) {
      r.codes.push_back(Code(ErrorCode::OBJECT_HAS_LEASE));
    } else {
      m.RetireAfterLeases(id, now_ms);
      r.codes.push_back(Code(ErrorCode::OK));
    }
  }
  return r;
}

uint64_t MasterIndex::RemoveAll(std::string_view tenant, bool force, int64_t now_ms) {
  Impl& m = *impl_;
  uint64_t removed = 0;
  bool skipped = false;
  m.objects.ForEach([&](uint32_t id) {
    const Object& o = m.objects[id];
    if (TenantOfInternalKey(m.objects.Key(id)) != tenant) return;
    if (o.state != State::kComplete || (!force && o.lease_until_ms > now_ms)) {
      skipped = true;
      return;
    }
    m.RetireAfterLeases(id, now_ms);
    ++removed;
  });
  // Nothing of the tenant kept: no record of its keys from before now may
  // come back either, also one of an owner that has not remounted yet.
  if (!skipped) {
    uint64_t& floor = m.tenant_floors[std::string(tenant)];
    floor = std::max(floor, m.NextVersion(now_ms));
  }
  return removed;
}

bool MasterIndex::ScanTenant(std::string_view tenant, uint32_t& cursor, size_t max,
                             std::vector<KeyVersion>& out) const {
  const Impl& m = *impl_;
  cursor = m.objects.ForEachFrom(cursor, [&](uint32_t id) {
    const Object& o = m.objects[id];
    std::string_view key = m.objects.Key(id);
    if (o.state == State::kComplete && TenantOfInternalKey(key) == tenant) {
      out.push_back({std::string(UserKeyOf(key)), o.version});
    }
    return out.size() < max;
  });
  return cursor < m.objects.end_id();
}

uint64_t MasterIndex::RemoveVersions(std::string_view tenant, const std::vector<KeyVersion>& items,
                                     bool force, int64_t now_ms) {
  Impl& m = *impl_;
  uint64_t removed = 0;
  std::string prefix = TenantPrefix(tenant);
  for (const KeyVersion& kv : items) {
    uint32_t id = m.Find(prefix + kv.key);
    if (id == kNil) continue;
    const Object& o = m.objects[id];
    if (o.version != kv.version || o.state != State::kComplete) continue;
    if (!force && o.lease_until_ms > now_ms) continue;
    m.RetireAfterLeases(id, now_ms);
    ++removed;
  }
  return removed;
}

SizesResponse MasterIndex::GetSizes(const std::vector<std::string>& keys) const {
  const Impl& m = *impl_;
  SizesResponse r;
  for (const std::string& k : keys) {
    uint32_t id = m.Find(k);
    if (id == kNil || m.objects[id].state != State::kComplete || m.objects[id].doomed) {
      r.items.push_back({Code(ErrorCode::OBJECT_NOT_FOUND), 0});
    } else {
      r.items.push_back({Code(ErrorCode::OK), m.objects[id].size});
    }
  }
  return r;
}

void MasterIndex::Tick(int64_t now_ms) {
  Impl& m = *impl_;
  // Abandoned puts: space back after the release timeout.
  while (!m.pending_by_time.empty() &&
         m.pending_by_time.begin()->first + options_.put_start_release_timeout_ms <= now_ms) {
    counters_.put_reclaims++;
    m.Drop(m.pending_by_time.begin()->second, /*notify=*/false);  // erases the entry
  }
  while (!m.zombies.empty() && m.zombies.begin()->first <= now_ms) {
    const Zombie& z = m.zombies.begin()->second;
    Segment& s = *m.segments[z.seg];
    if (s.mounted) {
      (void)s.alloc.Free(z.offset, z.size);
      --s.objects;
    }
    m.zombies.erase(m.zombies.begin());
  }
  // Memory copies parked for readers whose leases ran out.
  for (auto it = m.parked.begin(); it != m.parked.end();) {
    if (it->second.until_ms > now_ms) {
      ++it;
      continue;
    }
    m.FreeRange(it->second.loc.seg, it->second.loc.offset, it->second.size, 0, 0);
    it = m.parked.erase(it);
  }
  // Doomed objects whose leases ended.
  std::vector<std::string> still;
  for (std::string& k : m.doomed) {
    uint32_t id = m.Find(k);
    if (id == kNil || !m.objects[id].doomed) continue;
    if (m.objects[id].lease_until_ms > now_ms) {
      still.push_back(std::move(k));
      continue;
    }
    m.EvictNow(id, counters_);
  }
  m.doomed = std::move(still);
  // Replica tasks never started, or never ended, in time.
  if (m.unfinished_tasks > 0) {
    uint64_t wall = static_cast<uint64_t>(now_ms + m.wall_offset_ms);
    std::vector<Impl::TaskKey> late;
    for (const auto& [k, t] : m.tasks) {
      if (Impl::Unfinished(t) && t.deadline_ms <= now_ms) late.push_back(k);
    }
    for (const Impl::TaskKey& k : late) {  // finishing may forget old tasks: not while iterating
      Impl::Task& t = m.tasks.at(k);
      bool started = t.info.state == static_cast<uint8_t>(TaskState::kProcessing);
      m.FreeRanges(t);
      m.EndTaskLease(t, now_ms, counters_);
      m.FinishTask(k, t, TaskState::kFailed,
                   started ? "timed out: not ended within --put-start-release-timeout"
                           : "timed out: not started within --put-start-release-timeout",
                   wall, counters_);
    }
  }
  // High watermark.
  uint64_t cap = m.Capacity();
  uint64_t used = m.Used();
  double hw = options_.eviction_high_watermark_ratio * static_cast<double>(cap);
  if (cap > 0 && static_cast<double>(used) > hw) {
    uint64_t target = static_cast<uint64_t>(static_cast<double>(used) - hw +
                                            options_.eviction_ratio * static_cast<double>(cap));
    // Bytes on their way to disk free their ranges soon: not chosen again.
    if (target > m.demoting_bytes) m.Evict(target - m.demoting_bytes, now_ms, counters_);
  }
}

// ---- replica tasks ----------------------------------------------------------

TaskInfo MasterIndex::CreateTask(const Caller& caller, const CreateTaskRequest& req,
                                 int64_t now_ms, uint64_t wall_ms) {
  Impl& m = *impl_;
  m.wall_offset_ms = static_cast<int64_t>(wall_ms) - now_ms;
  TaskInfo r;
  auto fail = [&](ErrorCode c, std::string why) {
    r.code = Code(c);
    r.message = std::move(why);
    return r;
  };
  auto type = static_cast<TaskType>(req.type);
  if (type != TaskType::kReplicaCopy && type != TaskType::kReplicaMove) {
    return fail(ErrorCode::INVALID_PARAMS, "unknown task type " + std::to_string(req.type));
  }
  if (req.key.empty()) return fail(ErrorCode::INVALID_KEY, "empty key");
  if (req.targets.empty()) return fail(ErrorCode::INVALID_PARAMS, "no target segment");
  std::set<std::string> seen;
  for (const std::string& t : req.targets) {
    if (t.empty()) return fail(ErrorCode::INVALID_PARAMS, "an empty target segment name");
    if (!seen.insert(t).second) {
      return fail(ErrorCode::INVALID_PARAMS, "target segment '" + t + "' named twice");
    }
  }
  if (type == TaskType::kReplicaMove) {
    if (req.targets.size() != 1) {
      return fail(ErrorCode::INVALID_PARAMS, "a move has exactly one target segment");
    }
    if (req.source.empty()) return fail(ErrorCode::INVALID_PARAMS, "a move needs a source segment");
    if (req.source == req.targets[0]) {
      return fail(ErrorCode::INVALID_PARAMS, "the source and the target are the same segment");
    }
  }
  if (Status st = m.CheckTask(type, req.key, req.source, req.targets); !st.ok()) {
    return fail(st.code(), st.message());
  }
  if (m.unfinished_tasks >= options_.max_pending_tasks) {
    return fail(ErrorCode::TASK_PENDING_LIMIT_EXCEEDED,
                std::to_string(m.unfinished_tasks) + " tasks are unfinished (--max-pending-tasks)");
  }
  Impl::TaskKey k;
  do {
    k = {m.rng(), m.rng()};
  } while ((k.first == 0 && k.second == 0) || m.tasks.count(k) != 0);
  Impl::Task& t = m.tasks[k];
  t.info.task = {k.first, k.second};
  t.info.type = req.type;
  t.info.state = static_cast<uint8_t>(TaskState::kPending);
  t.info.created_ms = t.info.updated_ms = wall_ms;
  t.info.assigned_client = caller.client_id;
  t.key = req.key;
  t.source = req.source;
  t.targets = req.targets;
  t.deadline_ms = now_ms + options_.put_start_release_timeout_ms;
  m.unfinished_tasks++;
  counters_.tasks_created++;
  r = t.info;
  return r;
}

ReplicaListResponse MasterIndex::TaskStart(const Caller& caller, const TaskRef& ref,
                                           int64_t now_ms, uint64_t wall_ms) {
  Impl& m = *impl_;
  m.wall_offset_ms = static_cast<int64_t>(wall_ms) - now_ms;
  ReplicaListResponse r;
  r.lease_ttl_ms = static_cast<uint64_t>(options_.lease_ttl_ms);
  r.items.resize(2);
  ReplicaItem& object = r.items[0];
  ReplicaItem& targets = r.items[1];
  Impl::TaskKey k{ref.id_hi, ref.id_lo};
  Impl::Task* found = m.CallersTask(caller, k);
  if (found == nullptr) {
    object.code = Code(ErrorCode::TASK_NOT_FOUND);
    return r;
  }
  Impl::Task& t = *found;
  if (t.info.state != static_cast<uint8_t>(TaskState::kPending)) {
    object.code = Code(ErrorCode::INVALID_PARAMS);  // started already, or finished
    return r;
  }
  auto type = static_cast<TaskType>(t.info.type);
  auto fail = [&](ErrorCode c, std::string why) {
    m.FreeRanges(t);
    m.EndTaskLease(t, now_ms, counters_);
    m.FinishTask(k, t, TaskState::kFailed, std::move(why), wall_ms, counters_);
    object.code = Code(c);
    return r;
  };
  if (Status st = m.CheckTask(type, t.key, t.source, t.targets); !st.ok()) {
    return fail(st.code(), st.message());
  }
  uint32_t id = m.LiveObject(t.key);
  {
    Object& o = m.objects[id];
    if (o.lease_until_ms <= now_ms) o.readers = 0;
    o.readers++;
    o.lease_until_ms = std::max(o.lease_until_ms, now_ms + options_.lease_ttl_ms);
    t.leased = true;
    t.version = o.version;
    t.size = o.size;
  }
  for (const std::string& name : t.targets) {
    uint32_t sid = m.MountedSegment(name);
    if (Impl::Holds(m.objects[id], sid)) continue;
    Segment& s = *m.segments[sid];
    if (s.quarantine_until_ms > now_ms || s.unreachable) {
      return fail(ErrorCode::NO_AVAILABLE_HANDLE,
                  "segment '" + name +
                      "' takes no new objects now (waiting after a rebuild, or reported "
                      "unreachable)");
    }
    std::optional<uint64_t> off = s.alloc.Allocate(t.size);
    if (!off) {
      // Room as a put would make it, in this segment only. The object is
      // leased, so it is not evicted itself.
      std::vector<bool> eligible(m.segments.size(), false);
      eligible[sid] = true;
      m.Evict(std::max<uint64_t>(t.size, static_cast<uint64_t>(
                                             options_.eviction_ratio *
                                             static_cast<double>(s.alloc.capacity_bytes()))),
              now_ms, counters_, &eligible);
      off = s.alloc.Allocate(t.size);
    }
    if (!off) return fail(ErrorCode::NO_AVAILABLE_HANDLE, "no room in segment '" + name + "'");
    s.objects++;
    t.ranges.push_back({sid, *off});
  }
  if (m.LiveObject(t.key) != id) {  // eviction took it after all
    return fail(ErrorCode::OBJECT_NOT_FOUND, "the object was evicted");
  }
  Object& o = m.objects[id];
  t.info.state = static_cast<uint8_t>(TaskState::kProcessing);
  t.info.updated_ms = wall_ms;
  t.deadline_ms = now_ms + options_.put_start_release_timeout_ms;
  Impl::SegmentRefs refs;
  object.size = o.size;
  object.checksum = o.checksum;
  object.version = o.version;
  m.FillReplicas(r, refs, o.locs, object);
  targets.size = o.size;
  targets.checksum = o.checksum;
  targets.version = o.version;
  for (Loc l : t.ranges) targets.replicas.push_back({m.SegmentIndexIn(r, refs, l.seg), l.offset});
  return r;
}

StatusResponse MasterIndex::TaskEnd(const Caller& caller, const TaskEndRequest& req,
                                    int64_t now_ms, uint64_t wall_ms) {
  Impl& m = *impl_;
  m.wall_offset_ms = static_cast<int64_t>(wall_ms) - now_ms;
  StatusResponse r;
  Impl::TaskKey k{req.task.id_hi, req.task.id_lo};
  Impl::Task* found = m.CallersTask(caller, k);
  if (found == nullptr) {
    r.code = Code(ErrorCode::TASK_NOT_FOUND);
    r.message = "no such task of this client";
    return r;
  }
  Impl::Task& t = *found;
  auto state = static_cast<TaskState>(t.info.state);
  if (state == TaskState::kPending && req.code != 0) {  // given up before it started
    m.FinishTask(k, t, TaskState::kFailed, req.message, wall_ms, counters_);
    return r;
  }
  if (state != TaskState::kProcessing) {
    r.code = Code(ErrorCode::INVALID_PARAMS);
    r.message = state == TaskState::kPending ? "the task was not started"
                                             : "the task is over: " + t.info.message;
    return r;
  }
  auto fail = [&](std::string why) {
    m.FreeRanges(t);
    m.EndTaskLease(t, now_ms, counters_);
    m.FinishTask(k, t, TaskState::kFailed, std::move(why), wall_ms, counters_);
    return r;
  };
  if (req.code != 0) return fail(req.message.empty() ? "the copy failed" : req.message);
  uint32_t id = m.LiveObject(t.key);
  if (id == kNil || m.objects[id].version != t.version) {
    return fail("the object was removed, replaced or evicted during the copy");
  }
  Object& o = m.objects[id];
  for (Loc l : t.ranges) {  // ranges in segments unmounted meanwhile are gone already
    if (Impl::Holds(o, l.seg) || o.locs.size() >= kMaxReplicas) {
      (void)m.segments[l.seg]->alloc.Free(l.offset, t.size);
      --m.segments[l.seg]->objects;
      continue;
    }
    o.locs.push_back(l);
    m.Queue(l.seg, TableOp::kAdd, id, l);
    counters_.replicas_copied++;
  }
  t.ranges.clear();
  m.EndTaskLease(t, now_ms, counters_);
  if (static_cast<TaskType>(t.info.type) == TaskType::kReplicaMove) {
    id = m.Find(t.key);  // the lease's end may have evicted it
    uint32_t target = m.MountedSegment(t.targets[0]);
    uint32_t source = m.MountedSegment(t.source);
    if (id == kNil || m.objects[id].version != t.version || target == kNil ||
        !Impl::Holds(m.objects[id], target)) {
      m.FinishTask(k, t, TaskState::kFailed,
                   "the target segment was unmounted, or the object evicted, during the move",
                   wall_ms, counters_);
      return r;
    }
    Object& moved = m.objects[id];
    for (size_t i = 0; source != kNil && i < moved.locs.size(); ++i) {
      Loc l = moved.locs[i];
      if (l.seg != source) continue;
      m.Queue(l.seg, TableOp::kRemove, id, l);
      if (moved.lease_until_ms > now_ms) {  // readers may be reading there
        m.zombies.emplace(moved.lease_until_ms, Zombie{l.seg, l.offset, moved.size});
      } else {
        (void)m.segments[l.seg]->alloc.Free(l.offset, moved.size);
        --m.segments[l.seg]->objects;
      }
      moved.locs.erase(i);
      break;
    }
  }
  m.FinishTask(k, t, TaskState::kSuccess, "", wall_ms, counters_);
  return r;
}

TaskInfo MasterIndex::QueryTask(std::string_view tenant, const TaskRef& ref) const {
  const Impl& m = *impl_;
  auto it = m.tasks.find({ref.id_hi, ref.id_lo});
  if (it == m.tasks.end() || TenantOfInternalKey(it->second.key) != tenant) {
    TaskInfo r;
    r.code = Code(ErrorCode::TASK_NOT_FOUND);
    r.message = "no such task";
    return r;
  }
  return it->second.info;
}

std::vector<std::pair<std::string, TableUpdate>> MasterIndex::TakeTableUpdates() {
  Impl& m = *impl_;
  std::vector<std::pair<std::string, TableUpdate>> out;
  for (auto& [owner, per_seg] : m.updates) {
    for (auto& [seg, update] : per_seg) out.emplace_back(owner, std::move(update));
  }
  m.updates.clear();
  return out;
}

size_t MasterIndex::object_count() const { return impl_->objects.size(); }
uint64_t MasterIndex::capacity_bytes() const { return impl_->Capacity(); }
uint64_t MasterIndex::used_bytes() const { return impl_->Used(); }
size_t MasterIndex::client_count() const { return impl_->clients.size(); }

Status MasterIndex::TierReport(const Caller& caller, const TableUpdate& report, int64_t now_ms) {
  Impl& m = *impl_;
  auto it = m.segment_ids.find(report.segment);
  if (it == m.segment_ids.end() || !m.segments[it->second]->mounted) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND, "no mounted segment '" + report.segment + "'");
  }
  uint32_t sid = it->second;
  if (Status st = CheckOwner(*m.segments[sid], caller, ErrorCode::ILLEGAL_CLIENT); !st.ok()) {
    return st;
  }
  for (const TableChange& c : report.changes) {
    const ObjectEntry& e = c.entry;
    // A range whose object left while the owner was copying it: free now.
    auto release_busy = [&] {
      auto b = m.busy_ranges.find({sid, e.offset});
      if (b == m.busy_ranges.end()) return;
      m.FreeRange(sid, e.offset, b->second.first, b->second.second, now_ms);
      m.busy_ranges.erase(b);
    };
    uint32_t id = m.Find(e.key);
    Object* o = nullptr;
    if (id != kNil) {
      Object& cand = m.objects[id];
      if (cand.version == e.version && cand.locs.size() == 1 && cand.locs[0].seg == sid) o = &cand;
    }
    switch (static_cast<TierEvent>(c.op)) {
      case TierEvent::kDemoted:
        if (o == nullptr || !(o->tier & kTierDemoting)) {
          release_busy();
          if (o == nullptr) {  // removed meanwhile: the owner drops the record
            ObjectEntry gone = e;
            gone.offset = kOnDiskOffset;
            m.QueueEntry(sid, TableOp::kRemove, gone);
          }
          break;
        }
        o->tier = static_cast<uint8_t>((o->tier & ~kTierDemoting) | kTierDisk);
        m.demoting_bytes -= o->size;
        counters_.demoted++;
        m.DropDramCopy(id, now_ms);
        break;
      case TierEvent::kDemoteFailed:
        if (o == nullptr || !(o->tier & kTierDemoting)) {
          release_busy();
          break;
        }
        o->tier &= static_cast<uint8_t>(~kTierDemoting);
        m.demoting_bytes -= o->size;
        counters_.demote_failures++;
        m.EvictNow(id, counters_);  // as without a disk tier (readers keep their range)
        break;
      case TierEvent::kPromoted:
        if (o == nullptr || !(o->tier & kTierPromoting) || o->locs[0].offset != e.offset) {
          release_busy();
          break;
        }
        o->tier &= static_cast<uint8_t>(~kTierPromoting);
        counters_.promoted++;
        m.LruAppend(id);
        break;
      case TierEvent::kPromoteFailed:
        if (o == nullptr || !(o->tier & kTierPromoting) || o->locs[0].offset != e.offset) {
          release_busy();
          break;
        }
        // Nobody was given the range (the reads waited): it is free now.
        o->tier = 0;
        counters_.promote_failures++;
        m.Retire(id);
        break;
      case TierEvent::kDiskDropped:
        if (o == nullptr || (o->tier & (kTierDemoting | kTierPromoting))) break;
        if (Impl::InDram(*o)) {  // the DRAM copy is all there is now
          o->tier &= static_cast<uint8_t>(~kTierDisk);
          break;
        }
        counters_.disk_dropped++;
        m.Retire(id);
        break;
      default:
        break;  // bounded by the decoder
    }
  }
  return Status::Ok();
}

MasterIndex::Promotion MasterIndex::PromotionOf(const std::string& key, uint64_t version) const {
  const Impl& m = *impl_;
  uint32_t id = m.Find(key);
  if (id == kNil) return Promotion::kFailed;
  const Object& o = m.objects[id];
  if (o.version != version || o.state != State::kComplete) return Promotion::kFailed;
  if (o.tier & kTierPromoting) return Promotion::kPending;
  return Impl::InDram(o) ? Promotion::kReady : Promotion::kFailed;
}

uint64_t MasterIndex::demoting_bytes() const { return impl_->demoting_bytes; }

std::vector<SegmentStats> MasterIndex::Segments(int64_t now_ms) const {
  std::vector<SegmentStats> out;
  for (const auto& s : impl_->segments) {
    if (!s->mounted) continue;
    out.push_back({s->name, s->owner, s->host_id, s->endpoint, s->alloc.capacity_bytes(),
                   s->alloc.used_bytes(), s->objects, s->quarantine_until_ms > now_ms,
                   s->unreachable, s->disk_capacity, s->disk_objects, s->disk_bytes});
  }
  return out;
}

std::optional<MasterIndex::ObjectView> MasterIndex::Lookup(const std::string& key,
                                                           int64_t now_ms) const {
  uint32_t id = impl_->Find(key);
  if (id == kNil) return std::nullopt;
  const Object& o = impl_->objects[id];
  ObjectView v{o.size,
               o.checksum,
               o.state == State::kComplete,
               o.doomed,
               std::max<int64_t>(0, o.lease_until_ms - now_ms),
               {}};
  for (size_t i = 0; i < o.locs.size(); ++i) {
    v.replicas.emplace_back(impl_->segments[o.locs[i].seg]->name, o.locs[i].offset);
  }
  return v;
}

std::vector<std::string> MasterIndex::CompleteKeys(std::string_view tenant, size_t limit) const {
  std::vector<std::string> keys;
  // Objects only in a disk tier first (they left the memory's LRU order,
  // the least recently used), then the memory's LRU order.
  (void)impl_->objects.ForEachFrom(0, [&](uint32_t id) {
    if (keys.size() >= limit) return false;
    const Object& o = impl_->objects[id];
    if (o.state != State::kComplete || (Impl::InDram(o) && !(o.tier & kTierPromoting))) return true;
    std::string_view key = impl_->objects.Key(id);
    if (TenantOfInternalKey(key) == tenant) keys.emplace_back(UserKeyOf(key));
    return true;
  });
  for (uint32_t id = impl_->lru_head; id != kNil && keys.size() < limit;
       id = impl_->objects[id].lru_next) {
    std::string_view key = impl_->objects.Key(id);
    if (TenantOfInternalKey(key) == tenant) keys.emplace_back(UserKeyOf(key));
  }
  return keys;
}

std::map<std::string, TenantStats> MasterIndex::Tenants() const {
  std::map<std::string, TenantStats> out = impl_->tenants;
  for (const auto& [tenant, quota] : options_.tenant_quota_bytes) out[tenant].quota_bytes = quota;
  return out;
}

}  // namespace kvcached
