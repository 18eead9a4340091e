#include "core/master_index.h"

#include <algorithm>
#include <functional>
#include <set>

namespace kvcached {
namespace {

constexpr int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }

struct Loc {
  uint32_t seg;
  uint64_t offset;
};

enum class State : uint8_t { kPending, kComplete };

struct Object {
  const std::string* key = nullptr;  // the map's own key
  uint64_t size = 0;
  uint64_t checksum = 0;
  int64_t lease_until_ms = 0;
  int64_t started_ms = 0;  // PutStart time, while pending
  uint64_t writer = 0;     // hash of the writer's client id, while pending
  std::vector<Loc> locs;
  Object* lru_prev = nullptr;  // complete objects only; head = least recently used
  Object* lru_next = nullptr;
  State state = State::kPending;
  bool doomed = false;  // chosen for eviction: no new leases, freed when the lease ends
};

struct Segment {
  Segment(std::string n, uint64_t capacity, uint64_t alignment)
      : name(std::move(n)), alloc(capacity, alignment) {}
  std::string name;
  std::string owner;
  std::string host_id;
  std::string endpoint;
  uint64_t base = 0;
  OffsetAllocator alloc;
  bool mounted = true;
  int64_t quarantine_until_ms = 0;
  uint64_t objects = 0;
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

}  // namespace

struct MasterIndex::Impl {
  explicit Impl(const MasterOptions& o)
      : opts(o), rng(o.random_seed ? o.random_seed : std::random_device{}()) {}

  const MasterOptions& opts;
  std::mt19937_64 rng;
  std::unordered_map<std::string, Object> objects;
  Object* lru_head = nullptr;
  Object* lru_tail = nullptr;
  std::vector<std::unique_ptr<Segment>> segments;  // index = segment id
  std::unordered_map<std::string, uint32_t> segment_ids;
  std::unordered_map<std::string, Client> clients;
  std::set<std::pair<int64_t, std::string>> pending_by_time;  // (started, key) of pending puts
  std::multimap<int64_t, Zombie> zombies;                     // release time -> range
  std::vector<std::string> doomed;
  std::map<std::string, std::map<uint32_t, TableUpdate>> updates;  // owner -> seg -> update

  // ---- LRU ----
  void LruAppend(Object* o) {
    o->lru_prev = lru_tail;
    o->lru_next = nullptr;
    if (lru_tail) lru_tail->lru_next = o;
    lru_tail = o;
    if (!lru_head) lru_head = o;
  }
  void LruUnlink(Object* o) {
    if (o->lru_prev) o->lru_prev->lru_next = o->lru_next;
    if (o->lru_next) o->lru_next->lru_prev = o->lru_prev;
    if (lru_head == o) lru_head = o->lru_next;
    if (lru_tail == o) lru_tail = o->lru_prev;
    o->lru_prev = o->lru_next = nullptr;
  }
  void LruTouch(Object* o) {
    if (lru_tail == o) return;
    LruUnlink(o);
    LruAppend(o);
  }

  // ---- owner notifications ----
  void Queue(uint32_t seg_id, TableOp op, const Object& o, const Loc& loc) {
    Segment& s = *segments[seg_id];
    TableUpdate& u = updates[s.owner][seg_id];
    u.segment = s.name;
    u.changes.push_back({static_cast<uint8_t>(op), {*o.key, loc.offset, o.size, o.checksum}});
  }

  bool Live(const Segment& s) const { return s.mounted; }

  // Frees every replica's range. `notify`: tell owners the object is gone.
  void ReleaseLocs(Object& o, bool notify) {
    for (const Loc& l : o.locs) {
      Segment& s = *segments[l.seg];
      if (!s.mounted) continue;
      if (notify && o.state == State::kComplete) Queue(l.seg, TableOp::kRemove, o, l);
      (void)s.alloc.Free(l.offset, o.size);
      --s.objects;
    }
    o.locs.clear();
  }

  void Drop(std::unordered_map<std::string, Object>::iterator it, bool notify) {
    Object& o = it->second;
    ReleaseLocs(o, notify);
    if (o.state == State::kComplete) {
      LruUnlink(&o);
    } else {
      pending_by_time.erase({o.started_ms, it->first});
    }
    objects.erase(it);
  }

  uint64_t Capacity() const {
    uint64_t c = 0;
    for (const auto& s : segments) {
      if (s->mounted) c += s->alloc.capacity_bytes();
    }
    return c;
  }
  uint64_t Used() const {
    uint64_t u = 0;
    for (const auto& s : segments) {
      if (s->mounted) u += s->alloc.used_bytes();
    }
    return u;
  }

  // Frees at least `target_bytes` by LRU order: unleased objects go now;
  // leased ones are doomed (no new leases) and go when their lease ends, so
  // a constant stream of ExistKey cannot keep the pool full forever.
  void Evict(uint64_t target_bytes, int64_t now_ms, MasterCounters& counters) {
    uint64_t counted = 0;
    Object* o = lru_head;
    while (o != nullptr && counted < target_bytes) {
      Object* next = o->lru_next;
      uint64_t bytes = o->size * o->locs.size();
      if (o->doomed) {
        counted += bytes;
      } else if (o->lease_until_ms > now_ms) {
        o->doomed = true;
        doomed.push_back(*o->key);
        counted += bytes;
      } else {
        counted += bytes;
        counters.evicted_objects++;
        counters.evicted_bytes += o->size;
        Drop(objects.find(*o->key), /*notify=*/true);
      }
      o = next;
    }
  }

  // Segments to try for a new object, best first.
  std::vector<uint32_t> Candidates(const Caller& caller, const std::string& preferred,
                                   int64_t now_ms) {
    std::vector<uint32_t> out;
    for (uint32_t id = 0; id < segments.size(); ++id) {
      const Segment& s = *segments[id];
      if (s.mounted && s.quarantine_until_ms <= now_ms) out.push_back(id);
    }
    auto free_ratio = [&](uint32_t id) {
      const OffsetAllocator& a = segments[id]->alloc;
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
    for (uint32_t id : Candidates(caller, preferred, now_ms)) {
      if (locs.size() >= replicas) break;
      if (auto off = segments[id]->alloc.Allocate(size)) {
        locs.push_back({id, *off});
        segments[id]->objects++;
      }
    }
    return locs;
  }

  uint32_t SegmentIndexIn(ReplicaListResponse& res, std::map<uint32_t, uint32_t>& refs,
                          uint32_t seg_id) {
    auto [it, inserted] = refs.emplace(seg_id, static_cast<uint32_t>(res.segments.size()));
    if (inserted) res.segments.push_back({segments[seg_id]->name, segments[seg_id]->endpoint});
    return it->second;
  }

  void DropSegmentReplicas(uint32_t seg_id) {
    for (auto it = objects.begin(); it != objects.end();) {
      Object& o = it->second;
      auto pos =
          std::find_if(o.locs.begin(), o.locs.end(), [&](const Loc& l) { return l.seg == seg_id; });
      if (pos == o.locs.end()) {
        ++it;
        continue;
      }
      o.locs.erase(pos);
      if (o.locs.empty()) {
        if (o.state == State::kComplete) {
          LruUnlink(&o);
        } else {
          pending_by_time.erase({o.started_ms, it->first});
        }
        it = objects.erase(it);
      } else {
        ++it;
      }
    }
    for (auto it = zombies.begin(); it != zombies.end();) {
      it = it->second.seg == seg_id ? zombies.erase(it) : std::next(it);
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
    if (s.owner == caller.client_id && s.alloc.capacity_bytes() == seg.size /
                                                                       options_.alignment_bytes *
                                                                       options_.alignment_bytes) {
      return Status::Ok();  // a retried mount
    }
    return Status(ErrorCode::SEGMENT_ALREADY_EXISTS,
                  "segment '" + seg.name + "' is already mounted by " + s.owner);
  }
  auto fresh = std::make_unique<Segment>(seg.name, seg.size, options_.alignment_bytes);
  fresh->owner = caller.client_id;
  fresh->host_id = caller.host_id;
  fresh->endpoint = seg.endpoint;
  fresh->base = seg.base;
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
  auto it = m.segment_ids.find(seg.name);
  if (it != m.segment_ids.end() && m.segments[it->second]->mounted) {
    if (m.segments[it->second]->owner != caller.client_id) {
      return Status(ErrorCode::SEGMENT_ALREADY_EXISTS,
                    "segment '" + seg.name + "' is mounted by " + m.segments[it->second]->owner);
    }
    m.DropSegmentReplicas(it->second);
  }
  if (Status st = Mount(caller, seg, now_ms); !st.ok()) return st;
  uint32_t id = m.segment_ids.at(seg.name);
  Segment& s = *m.segments[id];
  s.quarantine_until_ms = now_ms + options_.lease_ttl_ms;
  for (const ObjectEntry& e : entries) {
    if (e.key.empty() || e.size == 0 || !s.alloc.Reserve(e.offset, e.size).ok()) {
      counters_.remount_objects_rejected++;
      continue;
    }
    auto [oit, inserted] = m.objects.try_emplace(e.key);
    Object& o = oit->second;
    if (!inserted) {
      // Another replica of a known object: keep it only if it is the same object.
      if (o.state != State::kComplete || o.size != e.size || o.checksum != e.checksum ||
          o.locs.size() >= kMaxReplicas) {
        (void)s.alloc.Free(e.offset, e.size);
        counters_.remount_objects_rejected++;
        continue;
      }
      o.locs.push_back({id, e.offset});
      s.objects++;
      continue;
    }
    o.key = &oit->first;
    o.size = e.size;
    o.checksum = e.checksum;
    o.state = State::kComplete;
    o.locs.push_back({id, e.offset});
    s.objects++;
    m.LruAppend(&o);
  }
  return Status::Ok();
}

Status MasterIndex::Unmount(const Caller& caller, const std::string& name, int64_t now_ms) {
  Impl& m = *impl_;
  auto it = m.segment_ids.find(name);
  if (it == m.segment_ids.end() || !m.segments[it->second]->mounted) {
    return Status(ErrorCode::SEGMENT_NOT_FOUND, "no mounted segment '" + name + "'");
  }
  if (m.segments[it->second]->owner != caller.client_id) {
    return Status(ErrorCode::ILLEGAL_CLIENT,
                  "segment '" + name + "' belongs to " + m.segments[it->second]->owner);
  }
  m.DropSegmentReplicas(it->second);
  return Status::Ok();
}

PingResponse MasterIndex::Ping(const Caller& caller, uint32_t segments_owned, int64_t now_ms) {
  Impl& m = *impl_;
  Client& c = m.clients[caller.client_id];
  c.host_id = caller.host_id;
  c.last_ping_ms = now_ms;
  uint32_t mounted = 0;
  for (const auto& s : m.segments) {
    if (s->mounted && s->owner == caller.client_id) ++mounted;
  }
  PingResponse r;
  r.remount_needed = mounted < segments_owned;
  return r;
}

std::vector<std::string> MasterIndex::ExpireClients(int64_t now_ms) {
  Impl& m = *impl_;
  std::vector<std::string> expired;
  for (auto it = m.clients.begin(); it != m.clients.end();) {
    if (it->second.last_ping_ms + options_.client_ttl_ms > now_ms) {
      ++it;
      continue;
    }
    for (uint32_t id = 0; id < m.segments.size(); ++id) {
      if (m.segments[id]->mounted && m.segments[id]->owner == it->first) {
        m.DropSegmentReplicas(id);
      }
    }
    m.updates.erase(it->first);
    expired.push_back(it->first);
    counters_.clients_expired++;
    it = m.clients.erase(it);
  }
  return expired;
}

CodesResponse MasterIndex::ExistKeys(const std::vector<std::string>& keys, int64_t now_ms) {
  Impl& m = *impl_;
  CodesResponse r;
  r.lease_ttl_ms = static_cast<uint64_t>(options_.lease_ttl_ms);
  r.codes.reserve(keys.size());
  for (const std::string& k : keys) {
    auto it = m.objects.find(k);
    if (it == m.objects.end() || it->second.state != State::kComplete) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
      continue;
    }
    Object& o = it->second;
    if (o.doomed) {
      counters_.lease_refusals++;
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
      continue;
    }
    o.lease_until_ms = std::max(o.lease_until_ms, now_ms + options_.lease_ttl_ms);
    m.LruTouch(&o);
    r.codes.push_back(Code(ErrorCode::OK));
  }
  return r;
}

ReplicaListResponse MasterIndex::GetReplicaLists(const std::vector<std::string>& keys,
                                                 int64_t now_ms) {
  Impl& m = *impl_;
  ReplicaListResponse r;
  r.lease_ttl_ms = static_cast<uint64_t>(options_.lease_ttl_ms);
  r.items.resize(keys.size());
  std::map<uint32_t, uint32_t> refs;
  for (size_t i = 0; i < keys.size(); ++i) {
    ReplicaItem& item = r.items[i];
    auto it = m.objects.find(keys[i]);
    if (it == m.objects.end() || it->second.state != State::kComplete) {
      item.code = Code(ErrorCode::OBJECT_NOT_FOUND);
      continue;
    }
    Object& o = it->second;
    if (o.doomed) {
      counters_.lease_refusals++;
      item.code = Code(ErrorCode::OBJECT_NOT_FOUND);
      continue;
    }
    o.lease_until_ms = std::max(o.lease_until_ms, now_ms + options_.lease_ttl_ms);
    m.LruTouch(&o);
    item.size = o.size;
    item.checksum = o.checksum;
    for (const Loc& l : o.locs)
      item.replicas.push_back({m.SegmentIndexIn(r, refs, l.seg), l.offset});
  }
  return r;
}

ReplicaListResponse MasterIndex::PutStart(const Caller& caller, const PutStartRequest& req,
                                          int64_t now_ms) {
  Impl& m = *impl_;
  ReplicaListResponse r;
  r.lease_ttl_ms = static_cast<uint64_t>(options_.lease_ttl_ms);
  r.items.resize(req.items.size());
  std::map<uint32_t, uint32_t> refs;
  bool bad_replicas = req.replica_num == 0 || req.replica_num > kMaxReplicas;
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
    auto it = m.objects.find(in.key);
    if (it != m.objects.end()) {
      Object& o = it->second;
      if (o.state == State::kComplete) {
        item.code = Code(ErrorCode::OBJECT_ALREADY_EXISTS);
        continue;
      }
      if (now_ms - o.started_ms < options_.put_start_discard_timeout_ms) {
        item.code = Code(ErrorCode::REPLICA_IS_NOT_READY);
        continue;
      }
      // Take over an abandoned put. The old writer may still be writing, so
      // its ranges are reused only after the release timeout.
      for (const Loc& l : o.locs) {
        m.zombies.emplace(o.started_ms + options_.put_start_release_timeout_ms,
                          Zombie{l.seg, l.offset, o.size});
      }
      o.locs.clear();
      counters_.put_takeovers++;
      m.pending_by_time.erase({o.started_ms, it->first});
      m.objects.erase(it);
    }
    std::vector<Loc> locs =
        m.Place(caller, req.preferred_segment, req.replica_num, in.size, now_ms);
    if (locs.empty()) {
      uint64_t cap = m.Capacity();
      uint64_t target = std::max<uint64_t>(
          in.size * req.replica_num,
          static_cast<uint64_t>(options_.eviction_ratio * static_cast<double>(cap)));
      m.Evict(target, now_ms, counters_);
      locs = m.Place(caller, req.preferred_segment, req.replica_num, in.size, now_ms);
    }
    if (locs.empty()) {
      item.code = Code(ErrorCode::NO_AVAILABLE_HANDLE);
      continue;
    }
    auto [oit, inserted] = m.objects.try_emplace(in.key);
    Object& o = oit->second;
    o.key = &oit->first;
    o.size = in.size;
    o.state = State::kPending;
    o.started_ms = now_ms;
    o.writer = WriterHash(caller.client_id);
    o.locs = std::move(locs);
    m.pending_by_time.emplace(now_ms, in.key);
    item.size = in.size;
    for (const Loc& l : o.locs)
      item.replicas.push_back({m.SegmentIndexIn(r, refs, l.seg), l.offset});
  }
  return r;
}

CodesResponse MasterIndex::PutEnd(const Caller& caller, const PutEndRequest& req, int64_t now_ms) {
  Impl& m = *impl_;
  CodesResponse r;
  r.codes.reserve(req.items.size());
  uint64_t writer = WriterHash(caller.client_id);
  for (const PutEndItem& in : req.items) {
    auto it = m.objects.find(in.key);
    if (it == m.objects.end()) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
      continue;
    }
    Object& o = it->second;
    if (o.state == State::kComplete) {
      r.codes.push_back(Code(ErrorCode::OBJECT_ALREADY_EXISTS));
      continue;
    }
    if (o.writer != writer) {
      r.codes.push_back(Code(ErrorCode::INVALID_WRITE));  // taken over by another writer
      continue;
    }
    m.pending_by_time.erase({o.started_ms, in.key});
    o.state = State::kComplete;
    o.checksum = in.checksum;
    o.started_ms = 0;
    o.writer = 0;
    m.LruAppend(&o);
    for (const Loc& l : o.locs) m.Queue(l.seg, TableOp::kAdd, o, l);
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
    auto it = m.objects.find(k);
    if (it == m.objects.end()) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
    } else if (it->second.state == State::kComplete || it->second.writer != writer) {
      r.codes.push_back(Code(ErrorCode::INVALID_WRITE));
    } else {
      m.Drop(it, /*notify=*/false);
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
    auto it = m.objects.find(k);
    if (it == m.objects.end()) {
      r.codes.push_back(Code(ErrorCode::OBJECT_NOT_FOUND));
    } else if (it->second.state != State::kComplete) {
      r.codes.push_back(Code(ErrorCode::REPLICA_IS_NOT_READY));
    } else if (!force && it->second.lease_until_ms > now_ms) {
      r.codes.push_back(Code(ErrorCode::OBJECT_HAS_LEASE));
    } else {
      m.Drop(it, /*notify=*/true);
      r.codes.push_back(Code(ErrorCode::OK));
    }
  }
  return r;
}

uint64_t MasterIndex::RemoveAll(bool force, int64_t now_ms) {
  Impl& m = *impl_;
  uint64_t removed = 0;
  for (auto it = m.objects.begin(); it != m.objects.end();) {
    Object& o = it->second;
    if (o.state != State::kComplete || (!force && o.lease_until_ms > now_ms)) {
      ++it;
      continue;
    }
    auto next = std::next(it);
    m.Drop(it, /*notify=*/true);
    it = next;
    ++removed;
  }
  return removed;
}

SizesResponse MasterIndex::GetSizes(const std::vector<std::string>& keys) const {
  const Impl& m = *impl_;
  SizesResponse r;
  for (const std::string& k : keys) {
    auto it = m.objects.find(k);
    if (it == m.objects.end() || it->second.state != State::kComplete) {
      r.items.push_back({Code(ErrorCode::OBJECT_NOT_FOUND), 0});
    } else {
      r.items.push_back({Code(ErrorCode::OK), it->second.size});
    }
  }
  return r;
}

void MasterIndex::Tick(int64_t now_ms) {
  Impl& m = *impl_;
  // Abandoned puts: space back after the release timeout.
  while (!m.pending_by_time.empty() &&
         m.pending_by_time.begin()->first + options_.put_start_release_timeout_ms <= now_ms) {
    std::string key = m.pending_by_time.begin()->second;
    auto it = m.objects.find(key);
    if (it == m.objects.end()) {  // cannot happen: every exit path erases its entry
      m.pending_by_time.erase(m.pending_by_time.begin());
      continue;
    }
    counters_.put_reclaims++;
    m.Drop(it, /*notify=*/false);
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
  // Doomed objects whose leases ended.
  std::vector<std::string> still;
  for (std::string& k : m.doomed) {
    auto it = m.objects.find(k);
    if (it == m.objects.end() || !it->second.doomed) continue;
    if (it->second.lease_until_ms > now_ms) {
      still.push_back(std::move(k));
      continue;
    }
    counters_.evicted_objects++;
    counters_.evicted_bytes += it->second.size;
    m.Drop(it, /*notify=*/true);
  }
  m.doomed = std::move(still);
  // High watermark.
  uint64_t cap = m.Capacity();
  uint64_t used = m.Used();
  double hw = options_.eviction_high_watermark_ratio * static_cast<double>(cap);
  if (cap > 0 && static_cast<double>(used) > hw) {
    uint64_t target = static_cast<uint64_t>(static_cast<double>(used) - hw +
                                            options_.eviction_ratio * static_cast<double>(cap));
    m.Evict(target, now_ms, counters_);
  }
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

std::vector<SegmentStats> MasterIndex::Segments() const {
  std::vector<SegmentStats> out;
  for (const auto& s : impl_->segments) {
    if (!s->mounted) continue;
    out.push_back({s->name, s->owner, s->host_id, s->endpoint, s->alloc.capacity_bytes(),
                   s->alloc.used_bytes(), s->objects, s->quarantine_until_ms > 0});
  }
  return out;
}

std::optional<MasterIndex::ObjectView> MasterIndex::Lookup(const std::string& key,
                                                           int64_t now_ms) const {
  auto it = impl_->objects.find(key);
  if (it == impl_->objects.end()) return std::nullopt;
  const Object& o = it->second;
  ObjectView v{o.size,
               o.checksum,
               o.state == State::kComplete,
               o.doomed,
               std::max<int64_t>(0, o.lease_until_ms - now_ms),
               {}};
  for (const Loc& l : o.locs) v.replicas.emplace_back(impl_->segments[l.seg]->name, l.offset);
  return v;
}

}  // namespace kvcached
