// Test-only: judges every read of a chaos pass once it is over, from the
// workers' op logs and the ClusterTimeline. Each worker slot is the only
// writer of its keys, so the writes of a key form one sequence; from it
// the Oracle knows, at any moment, which values a key may hold (a version,
// or absent), counting an operation whose outcome is unknown (in flight at
// a kill, or failed in a way that may have taken effect) as either. A read
// is then:
//   exact / allowed   a value the history allows (exact: nothing in doubt);
//   legitimate miss   OBJECT_NOT_FOUND for a key that was lost in a way the
//                     product documents: evicted, on a store killed or
//                     stopped past the client TTL, asked before its store
//                     remounted at a new master, or put in the documented
//                     window before a master kill;
//   WRONG             bytes that are no version of the key, or a version
//                     never successfully put;
//   REVERTED          an older version than the latest successful put;
//   RESURRECTED       a version after a successful remove;
//   LOST              OBJECT_NOT_FOUND with no such explanation.
// A version brought back by the documented window (a removal whose table
// update died with the master) is counted with the documented window, not
// hidden. Removals answered OBJECT_NOT_FOUND are checked like reads.
// Single-threaded; works on copies.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <tuple>
#include <vector>

#include "cluster_timeline.h"
#include "op_log.h"

namespace kvcached::chaos {

struct OracleReport {
  uint64_t ops = 0;                // operations with an outcome
  uint64_t in_flight_at_kill = 0;  // begun by a worker that was killed before they ended
  uint64_t puts = 0, puts_ok = 0, removes = 0, removes_ok = 0, gets = 0;
  uint64_t upserts = 0;  // of puts: those that replaced the key's object (BatchUpsert)
  uint64_t verified_gets = 0;  // gets whose bytes were checked against the key's versions
  uint64_t reads_exact = 0;    // the one value the history allows
  uint64_t reads_allowed = 0;  // one of several values the history allows
  uint64_t absent_ok = 0;      // OBJECT_NOT_FOUND where the key is absent
  std::map<std::string, uint64_t> legit_misses;  // by reason
  uint64_t documented_window = 0;                // legit misses and values explained only by it
  std::map<std::string, uint64_t> errors;        // "get RPC_FAIL" -> count
  uint64_t wrong = 0, reverted = 0, resurrected = 0, lost = 0;
  std::vector<std::string> anomalies;     // a paragraph per key and verdict (25 at most)
  std::vector<std::string> window_reads;  // the documented-window ones, alike
  std::vector<std::string> recovery;      // one line per fault kind

  bool ok() const { return wrong + reverted + resurrected + lost == 0; }
};

class Oracle {
 public:
  Oracle(const ClusterTimeline& timeline, std::vector<OpRecord> records);
  OracleReport Judge();

 private:
  struct Op {
    OpKind kind = OpKind::kGet;
    uint32_t key = 0, worker = 0, incarnation = 0;
    uint64_t version = 0;
    int64_t begin = 0, end = kNever;
    bool ended = false;
    int32_t code = 0;
    ReadResult read = ReadResult::kNone;
    int32_t segment = -1;
    uint32_t size = 0;
  };
  // The values a key may hold: sorted versions, 0 for absent.
  using Values = std::vector<uint64_t>;
  struct KeyHistory {
    std::vector<const Op*> writes;  // in order
    std::vector<Values> after;      // after[i]: the values after writes[i]
    std::vector<bool> sure;         // sure[i]: after[i] follows from known outcomes only
  };

  void Build();
  void Judge(const Op& read, const KeyHistory& h, size_t limit, OracleReport& r);
  // Why OBJECT_NOT_FOUND may be right although `values` hold no absence;
  // empty when nothing explains it.
  std::string ExplainMiss(const Op& read, const KeyHistory& h, const Values& values) const;
  // The documented window (a removal lost with the master) or the
  // undocumented restart window (a removal answered before the segment
  // remounted) that lets `version` come back; empty when neither does.
  std::string ExplainValue(const Op& read, const KeyHistory& h, uint64_t version,
                           bool* documented) const;
  const Op* PutOf(const KeyHistory& h, uint64_t version) const;
  std::string Describe(const Op& read, const KeyHistory& h, const std::string& verdict) const;
  // Adds the paragraph of `read` to `list`, once per key and verdict.
  void Note(std::vector<std::string>& list, const Op& read, const KeyHistory& h,
            const std::string& verdict);
  std::string Ms(int64_t ns) const;
  void Recovery(OracleReport& r) const;

  const ClusterTimeline& t_;
  std::vector<OpRecord> records_;
  std::vector<Op> ops_;
  std::map<uint32_t, KeyHistory> keys_;
  // (list, key, verdict) -> (index in the list, later reads alike)
  std::map<std::tuple<std::vector<std::string>*, uint32_t, std::string>,
           std::pair<size_t, uint64_t>>
      noted_;
};

}  // namespace kvcached::chaos
