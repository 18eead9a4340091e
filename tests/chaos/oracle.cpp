#include "oracle.h"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <tuple>

#include "kvcached/error_code.h"

namespace kvcached::chaos {
namespace {

constexpr size_t kMaxDetails = 25;

ErrorCode CodeOf(int32_t v) { return ErrorCodeFromInt(v).value_or(ErrorCode::INTERNAL_ERROR); }

std::string CodeName(int32_t v) {
  auto c = ErrorCodeFromInt(v);
  return c ? std::string(ErrorName(*c)) : "code " + std::to_string(v);
}

// Put outcomes that certainly stored nothing: refused before any byte
// moved, or the bytes did not all arrive and the put was never ended.
// Every other failure (an RPC error at PutEnd above all) may have stored it.
// An upsert the master refused before placing it: the key kept its object.
bool UpsertRefused(int32_t code) {
  switch (CodeOf(code)) {
    case ErrorCode::NO_AVAILABLE_HANDLE:
    case ErrorCode::INVALID_PARAMS:
    case ErrorCode::INVALID_KEY:
    case ErrorCode::REPLICA_IS_NOT_READY:
      return true;
    default:
      return false;
  }
}

bool PutHadNoEffect(int32_t code) {
  switch (CodeOf(code)) {
    case ErrorCode::NO_AVAILABLE_HANDLE:
    case ErrorCode::INVALID_PARAMS:
    case ErrorCode::INVALID_KEY:
    case ErrorCode::REPLICA_IS_NOT_READY:
    case ErrorCode::OBJECT_NOT_FOUND:  // PutEnd of a put the master lost in a restart
    case ErrorCode::TRANSFER_FAIL:
    case ErrorCode::INVALID_WRITE:
    case ErrorCode::INVALID_REPLICA:
    case ErrorCode::SEGMENT_NOT_FOUND:
      return true;
    default:
      return false;
  }
}

bool Contains(const std::vector<uint64_t>& v, uint64_t x) {
  return std::find(v.begin(), v.end(), x) != v.end();
}

void Merge(std::vector<uint64_t>& into, const std::vector<uint64_t>& from) {
  for (uint64_t x : from) {
    if (!Contains(into, x)) into.push_back(x);
  }
  std::sort(into.begin(), into.end());
}

std::string ValuesText(const std::vector<uint64_t>& v) {
  std::string s = "{";
  for (size_t i = 0; i < v.size(); ++i) {
    s += (i ? ", " : "") + (v[i] == 0 ? std::string("absent") : "v" + std::to_string(v[i]));
  }
  return s + "}";
}

const char* KindName(OpKind k) {
  switch (k) {
    case OpKind::kPut:
      return "put";
    case OpKind::kRemove:
      return "remove";
    case OpKind::kGet:
      return "get";
    case OpKind::kUpsert:
      return "upsert";
  }
  return "?";
}

bool Overlaps(int64_t a_from, int64_t a_to, int64_t b_from, int64_t b_to) {
  return a_from <= b_to && b_from <= a_to;
}

}  // namespace

Oracle::Oracle(const ClusterTimeline& timeline, std::vector<OpRecord> records)
    : t_(timeline), records_(std::move(records)) {}

void Oracle::Build() {
  std::map<std::tuple<uint32_t, uint32_t, uint64_t>, size_t> open;
  for (const OpRecord& r : records_) {
    auto id = std::make_tuple(r.worker, r.incarnation, r.seq);
    if (r.phase == OpPhase::kBegin) {
      Op op;
      op.kind = r.kind;
      op.key = r.key;
      op.worker = r.worker;
      op.incarnation = r.incarnation;
      op.version = r.version;
      op.begin = r.mono_ns;
      op.size = r.size;
      open[id] = ops_.size();
      ops_.push_back(op);
      continue;
    }
    auto it = open.find(id);
    if (it == open.end()) continue;
    Op& op = ops_[it->second];
    op.ended = true;
    op.end = r.mono_ns;
    op.code = r.code;
    op.read = r.read;
    op.segment = r.segment;
    if (op.kind == OpKind::kGet) {
      op.version = r.version;
      op.size = r.size;
    }
  }
  for (const Op& op : ops_) {
    if (op.kind != OpKind::kGet) keys_[op.key].writes.push_back(&op);
  }
  for (auto& [key, h] : keys_) {
    std::stable_sort(h.writes.begin(), h.writes.end(),
                     [](const Op* a, const Op* b) { return a->begin < b->begin; });
    Values prev = {0};
    bool prev_sure = true;
    for (const Op* w : h.writes) {
      Values now = prev;
      bool sure = prev_sure;
      ErrorCode c = CodeOf(w->code);
      if (w->kind == OpKind::kRemove) {
        if (w->ended && c == ErrorCode::OK) {
          now = {0};
          sure = true;
        } else if (w->ended && c == ErrorCode::OBJECT_NOT_FOUND) {
          // An observation, not a change: where the key should be present,
          // it may be lost, or not visible yet (its store not remounted at
          // a new master) and come back. Judge() says which; the history
          // keeps both.
          Merge(now, {0});
          sure = prev_sure && prev == Values{0};
        } else if (!w->ended ||
                   (c != ErrorCode::OBJECT_HAS_LEASE && c != ErrorCode::REPLICA_IS_NOT_READY)) {
          Merge(now, {0});
          sure = false;
        }
      } else if (w->ended && c == ErrorCode::OK) {
        now = {w->version};
        sure = true;
      } else if (w->kind == OpKind::kUpsert) {
        // Refused by the master before placement (PutHadNoEffect's first
        // codes): the key keeps what it had. Otherwise the old object may be
        // gone (replaced at placement) and the new one may or may not have
        // been committed.
        if (!w->ended || !UpsertRefused(w->code)) {
          Merge(now, {0});
          if (!w->ended || !PutHadNoEffect(w->code)) Merge(now, {w->version});
          sure = false;
        }
      } else if (!w->ended || !PutHadNoEffect(w->code)) {
        Merge(now, {w->version});
        sure = false;
      }
      h.after.push_back(now);
      h.sure.push_back(sure);
      prev = now;
      prev_sure = sure;
    }
  }
}

const Oracle::Op* Oracle::PutOf(const KeyHistory& h, uint64_t version) const {
  for (const Op* w : h.writes) {
    if (IsWriteOfValue(w->kind) && w->version == version) return w;
  }
  return nullptr;
}

std::string Oracle::Ms(int64_t ns) const {
  if (ns == kNever) return "never";
  char buf[32];
  std::snprintf(buf, sizeof buf, "+%.1f", static_cast<double>(ns - t_.start_ns) / 1e6);
  return buf;
}

std::string Oracle::ExplainMiss(const Op& read, const KeyHistory& h, const Values& values) const {
  for (uint64_t v : values) {
    if (v == 0) continue;
    const Op* p = PutOf(h, v);
    if (p == nullptr) continue;
    for (const EvictionWindow& e : t_.evictions) {
      if (Overlaps(e.from_ns, e.to_ns, p->begin, read.end)) return "eviction";
    }
    for (const Fault& f : t_.faults) {
      if (f.kind != FaultKind::kStoreKill && f.kind != FaultKind::kStoreFreeze) continue;
      if ((p->segment < 0 || p->segment == f.target) && f.start_ns <= read.end &&
          p->begin <= f.end_ns) {
        return p->segment < 0 ? "store killed or frozen (placement unknown)"
                              : "store killed or frozen";
      }
    }
    for (const MasterLife& m : t_.masters) {
      if (!Overlaps(m.start_ns, m.end_ns, read.begin, read.end)) continue;
      for (size_t s = 0; s < m.seen_ns.size(); ++s) {
        if ((p->segment < 0 || static_cast<size_t>(p->segment) == s) && m.seen_ns[s] > read.begin) {
          return "asked before its store remounted at a new master";
        }
      }
    }
    for (const MasterKill& k : t_.kills) {
      bool in_window = p->ended ? p->end >= k.barrier_ns : p->begin >= k.barrier_ns;
      if (in_window && p->begin <= k.kill_ns && k.kill_ns <= read.end) {
        return "documented window (put answered just before a master kill)";
      }
    }
  }
  return "";
}

std::string Oracle::ExplainValue(const Op& read, const KeyHistory& h, uint64_t version,
                                 bool* documented) const {
  auto erased_between = [&](int64_t from, int64_t to) {
    for (const Op* w : h.writes) {
      // A removal, or an upsert (it removes the object it replaces).
      if ((w->kind == OpKind::kRemove || w->kind == OpKind::kUpsert) && w->ended &&
          CodeOf(w->code) == ErrorCode::OK && w->begin >= from && w->end < to) {
        return true;
      }
    }
    return false;
  };
  // The documented window: a removal of the key (or an upsert, which
  // removes what it replaces) answered after the barrier before a master
  // kill; its table update may have died with the master, and the next
  // master rebuilds what the key held before.
  for (const MasterKill& k : t_.kills) {
    if (k.kill_ns > read.end) continue;
    Values candidates;
    for (size_t i = 0; i < h.writes.size(); ++i) {
      const Op* w = h.writes[i];
      bool removed = w->kind == OpKind::kRemove ? CodeOf(w->code) == ErrorCode::OK
                                                : w->kind == OpKind::kUpsert && !UpsertRefused(w->code);
      if (!removed || !w->ended || w->end < k.barrier_ns || w->begin > k.kill_ns) {
        continue;
      }
      Merge(candidates, i == 0 ? Values{0} : h.after[i - 1]);
    }
    if (Contains(candidates, version) && !erased_between(k.kill_ns, read.begin)) {
      *documented = true;
      return "documented window: a removal of the key was answered between the barrier at " +
             Ms(k.barrier_ns) + " ms and the master kill at " + Ms(k.kill_ns) + " ms";
    }
  }
  // A removal that found nothing because the segment holding the key had
  // not remounted yet at a new master; the key came back with it.
  const Op* p = PutOf(h, version);
  for (size_t i = h.writes.size(); i-- > 0;) {  // the latest such removal
    const Op* w = h.writes[i];
    if (w->kind != OpKind::kRemove || !w->ended || CodeOf(w->code) != ErrorCode::OBJECT_NOT_FOUND ||
        w->end >= read.begin) {
      continue;
    }
    if (!Contains(i == 0 ? Values{0} : h.after[i - 1], version)) continue;
    for (const MasterLife& m : t_.masters) {
      if (!Overlaps(m.start_ns, m.end_ns, w->begin, w->end)) continue;
      for (size_t s = 0; s < m.seen_ns.size(); ++s) {
        bool segment = p == nullptr || p->segment < 0 || static_cast<size_t>(p->segment) == s;
        if (segment && m.seen_ns[s] > w->begin && !erased_between(w->end, read.begin)) {
          *documented = false;
          return "the removal at " + Ms(w->begin) + ".." + Ms(w->end) +
                 " ms was answered OBJECT_NOT_FOUND by a master that " + t_.segments[s] +
                 " had not remounted at yet (seen " + Ms(m.seen_ns[s]) +
                 " ms); the key came back with the remount";
        }
      }
    }
  }
  return "";
}

std::string Oracle::Describe(const Op& read, const KeyHistory& h,
                             const std::string& verdict) const {
  std::string s = verdict + "\n      " + KindName(read.kind) + " of " + OpLog::KeyName(read.key) +
                  " by worker " + std::to_string(read.worker) + "." +
                  std::to_string(read.incarnation) + " " + Ms(read.begin) + ".." + Ms(read.end) +
                  " ms\n      its writes (slot " + std::to_string(OpLog::SlotOf(read.key)) + "):";
  size_t last = 0;
  for (size_t i = 0; i < h.writes.size(); ++i) {
    if (h.writes[i]->begin < read.end) last = i;
  }
  size_t first = last >= 7 ? last - 7 : 0;
  for (size_t i = first; i < h.writes.size() && i <= last + 2; ++i) {
    const Op* w = h.writes[i];
    s += "\n        " + std::string(KindName(w->kind)) +
         (IsWriteOfValue(w->kind) ? " v" + std::to_string(w->version) : "") + " " +
         (w->ended ? CodeName(w->code) : "never ended (worker killed)") + " " + Ms(w->begin) +
         ".." + Ms(w->end) + " ms";
    if (IsWriteOfValue(w->kind) && w->ended && w->code == 0) {
      s += w->segment >= 0 ? " in " + t_.segments[static_cast<size_t>(w->segment)]
                           : " (placement unknown)";
    }
    s += " -> " + ValuesText(h.after[i]);
  }
  std::string faults;
  for (const Fault& f : t_.faults) {
    if (f.start_ns > read.end || f.end_ns < read.begin - 30'000'000'000) continue;
    faults += "\n        " + std::string(FaultName(f.kind)) +
              (f.target >= 0 ? " " + std::to_string(f.target) : "") + " " + Ms(f.start_ns) + ".." +
              Ms(f.end_ns) + " ms" + (f.note.empty() ? "" : " (" + f.note + ")");
  }
  if (!faults.empty()) s += "\n      faults in the 30 s before:" + faults;
  return s;
}

void Oracle::Judge(const Op& read, const KeyHistory& h, size_t limit, OracleReport& r) {
  // What the key may hold during the read: its value after the last write
  // that ended before the read began, and after each write overlapping it.
  Values values = {0};
  bool sure = true;
  // writes[0, j) ended before the read began. The writes of a key are
  // sequential (one writer), so only the last one begun before the read
  // can still have been running.
  size_t j = static_cast<size_t>(
      std::partition_point(h.writes.begin(), h.writes.begin() + static_cast<ptrdiff_t>(limit),
                           [&](const Op* w) { return w->begin < read.begin; }) -
      h.writes.begin());
  if (j > 0 && !(h.writes[j - 1]->ended && h.writes[j - 1]->end < read.begin)) --j;
  if (j > 0) {
    values = h.after[j - 1];
    sure = h.sure[j - 1];
  }
  for (size_t i = j; i < limit; ++i) {
    if (h.writes[i]->begin < read.end) {
      Merge(values, h.after[i]);
      // An upsert in flight: from its placement to its commit the key
      // has no object (docs/guarantees.md, "Replaced or removed while read").
      if (h.writes[i]->kind == OpKind::kUpsert) Merge(values, {0});
      sure = false;
    }
  }
  auto anomaly = [&](uint64_t& counter, const std::string& verdict) {
    ++counter;
    Note(r.anomalies, read, h, verdict);
  };
  const bool observed_absent = read.kind == OpKind::kRemove || read.read == ReadResult::kAbsent;
  if (observed_absent) {
    if (Contains(values, 0)) {
      ++r.absent_ok;
      return;
    }
    std::string why = ExplainMiss(read, h, values);
    if (why.empty()) {
      anomaly(r.lost, "LOST: OBJECT_NOT_FOUND where the key holds " + ValuesText(values) +
                          " and no eviction, store fault, remount or documented window explains "
                          "the loss");
      return;
    }
    ++r.legit_misses[why];
    if (why.rfind("documented window", 0) == 0) {
      ++r.documented_window;
      Note(r.window_reads, read, h, "miss in the documented window: " + why);
    }
    return;
  }
  ++r.verified_gets;
  if (read.read == ReadResult::kWrong) {
    anomaly(r.wrong, "WRONG: " + std::to_string(read.size) +
                         " bytes that are no version of the key (header claims v" +
                         std::to_string(read.version) + "); the key holds " + ValuesText(values));
    return;
  }
  const uint64_t v = read.version;
  if (Contains(values, v)) {
    ++(sure && values.size() == 1 ? r.reads_exact : r.reads_allowed);
    return;
  }
  const Op* put = PutOf(h, v);
  if (put == nullptr || put->begin > read.end) {
    anomaly(r.wrong, "WRONG: read v" + std::to_string(v) +
                         ", a version never written; the key holds " + ValuesText(values));
    return;
  }
  bool documented = false;
  std::string why = ExplainValue(read, h, v, &documented);
  if (documented) {
    ++r.documented_window;
    ++r.legit_misses["documented window (removal lost with the master)"];
    Note(r.window_reads, read, h, "v" + std::to_string(v) + " back: " + why);
    return;
  }
  // Name it after the last write that succeeded before the read.
  const Op* last = nullptr;
  for (size_t i = 0; i < j; ++i) {
    const Op* w = h.writes[i];
    if (w->ended && w->code == 0) last = w;
  }
  std::string detail = why.empty() ? "" : "; " + why;
  if (put->ended && put->code != 0 && PutHadNoEffect(put->code)) {
    anomaly(r.wrong, "WRONG: read v" + std::to_string(v) + ", whose put failed with " +
                         CodeName(put->code) + " and stored nothing; the key holds " +
                         ValuesText(values) + detail);
  } else if (last != nullptr && last->kind == OpKind::kRemove) {
    anomaly(r.resurrected, "RESURRECTED: read v" + std::to_string(v) + " after the removal at " +
                               Ms(last->begin) + " ms; the key holds " + ValuesText(values) +
                               detail);
  } else if (last != nullptr && v < last->version) {
    anomaly(r.reverted, "REVERTED: read v" + std::to_string(v) + ", older than v" +
                            std::to_string(last->version) + " put at " + Ms(last->begin) +
                            " ms; the key holds " + ValuesText(values) + detail);
  } else {
    anomaly(r.wrong, "WRONG: read v" + std::to_string(v) +
                         ", a version whose put did not succeed; the key holds " +
                         ValuesText(values) + detail);
  }
}

void Oracle::Note(std::vector<std::string>& list, const Op& read, const KeyHistory& h,
                  const std::string& verdict) {
  // One paragraph per key and kind of verdict; later reads only count.
  auto [it, fresh] = noted_.try_emplace({&list, read.key, verdict.substr(0, verdict.find(':'))},
                                        std::make_pair(list.size(), uint64_t{0}));
  if (!fresh) {
    ++it->second.second;
    return;
  }
  if (list.size() >= kMaxDetails) {
    it->second.first = SIZE_MAX;
    return;
  }
  list.push_back(Describe(read, h, verdict));
}

void Oracle::Recovery(OracleReport& r) const {
  std::map<FaultKind, std::pair<std::vector<double>, std::vector<double>>> by_kind;
  for (const Fault& f : t_.faults) {
    int64_t put = kNever, get = kNever;
    for (const Op& op : ops_) {
      if (!op.ended || op.code != 0 || op.begin < f.start_ns) continue;
      if (IsWriteOfValue(op.kind)) put = std::min(put, op.end);
      if (op.kind == OpKind::kGet && op.read == ReadResult::kValue) get = std::min(get, op.end);
    }
    auto& [puts, gets] = by_kind[f.kind];
    puts.push_back(put == kNever ? -1 : static_cast<double>(put - f.start_ns) / 1e6);
    gets.push_back(get == kNever ? -1 : static_cast<double>(get - f.start_ns) / 1e6);
  }
  // Faults after which no put (or get) succeeded at all are counted apart.
  auto stats = [](std::vector<double> v) {
    size_t never = static_cast<size_t>(std::count(v.begin(), v.end(), -1.0));
    v.erase(std::remove(v.begin(), v.end(), -1.0), v.end());
    std::sort(v.begin(), v.end());
    std::string s = "none";
    if (!v.empty()) {
      char buf[96];
      std::snprintf(buf, sizeof buf, "min %.0f / median %.0f / max %.0f ms", v.front(),
                    v[v.size() / 2], v.back());
      s = buf;
    }
    if (never > 0) s += " (" + std::to_string(never) + " with none after)";
    return s;
  };
  for (auto& [kind, pg] : by_kind) {
    r.recovery.push_back(std::string(FaultName(kind)) + " (" + std::to_string(pg.first.size()) +
                         "): first put " + stats(pg.first) + "; first get " + stats(pg.second));
  }
}

OracleReport Oracle::Judge() {
  Build();
  OracleReport r;
  for (const Op& op : ops_) {
    if (!op.ended) {
      ++r.in_flight_at_kill;
      continue;
    }
    ++r.ops;
    if (IsWriteOfValue(op.kind)) {
      ++r.puts;
      r.puts_ok += op.code == 0;
      r.upserts += op.kind == OpKind::kUpsert;
    } else if (op.kind == OpKind::kRemove) {
      ++r.removes;
      r.removes_ok += op.code == 0;
    } else {
      ++r.gets;
    }
    if (op.code != 0) ++r.errors[std::string(KindName(op.kind)) + " " + CodeName(op.code)];
  }
  static const KeyHistory kNoWrites;
  for (const Op& op : ops_) {
    if (!op.ended) continue;
    auto it = keys_.find(op.key);
    const KeyHistory& h = it == keys_.end() ? kNoWrites : it->second;
    if (op.kind == OpKind::kGet) {
      if (op.read == ReadResult::kError) continue;
      Judge(op, h, h.writes.size(), r);
    } else if (op.kind == OpKind::kRemove && CodeOf(op.code) == ErrorCode::OBJECT_NOT_FOUND) {
      // A removal that found nothing is a read of absence, judged against
      // the writes before it.
      size_t index =
          static_cast<size_t>(std::find(h.writes.begin(), h.writes.end(), &op) - h.writes.begin());
      Judge(op, h, index, r);
    }
  }
  for (const auto& [what, seen] : noted_) {
    auto [index, more] = seen;
    std::vector<std::string>& list = *std::get<0>(what);
    if (index < list.size() && more > 0) {
      list[index] += "\n      (and " + std::to_string(more) + " later read(s) of this key alike)";
    }
  }
  Recovery(r);
  return r;
}

}  // namespace kvcached::chaos
