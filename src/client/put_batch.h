// PutBatch: one batch put, in named stages (Run shows the sequence):
//   Validate  refuse bad keys, empty values and a bad replica count; a
//             repeated key shares its first occurrence's outcome
//   Start     PutStart: the master places every replica (in chunks of
//             kMaxBatchKeys; a key that exists already is OK as it is),
//             or UpsertStart: the same, replacing a key that exists
//   Transfer  the bytes to every replica, checksums computed on the way
//   Commit    PutEnd for the keys whose every replica arrived whole
//   Revoke    PutRevoke for the rest, so their space is freed at once
//   Retry     stores that could not be reached are reported
//             (ReportUnreachable) and their keys put again elsewhere
// One object per call; not thread-safe (a call runs on its caller's thread).
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "client/batch_context.h"
#include "kvcached/client.h"

namespace kvcached {

class PutBatch {
 public:
  // The vectors must outlive the batch; `keys` and `values` pair up.
  // `upsert`: a key that exists is replaced (UpsertStart) rather than kept.
  PutBatch(BatchContext& ctx, const std::vector<std::string>& keys,
           const std::vector<Slice>& values, const ReplicateConfig& rc, bool upsert = false);
  // `retries`: how many more times keys whose store could not be reached
  // are put again elsewhere within this call.
  std::vector<Status> Run(int retries);

 private:
  void Validate();
  void Start();
  void Transfer(bool may_retry);
  void Commit();
  void Revoke();
  // True when an answer to a request sent at `asked` came after the lease:
  // a master that lost its leadership meanwhile may have sent it.
  bool Late(std::chrono::steady_clock::time_point asked, uint64_t lease_ttl_ms) const;
  void Retry(int retries);

  BatchContext& ctx_;
  const std::vector<std::string>& keys_;
  const std::vector<Slice>& values_;
  const ReplicateConfig& rc_;
  const bool upsert_;

  std::vector<Status> out_;                         // per key
  std::vector<size_t> todo_;                        // keys that go to the master
  std::vector<std::pair<size_t, size_t>> repeats_;  // (index, index of the first)
  std::vector<ReplicaListResponse> placed_;         // PutStart answers, one per chunk
  Status start_;                                    // how the PutStart chunks went
  std::vector<bool> started_;                       // placed, so committed or revoked
  std::vector<uint64_t> sums_;                      // checksums to commit
  std::vector<bool> again_;                         // put again elsewhere
  std::vector<std::string> unreachable_;            // segments to report
  std::vector<std::string> revoke_;                 // keys to give back
  uint64_t lease_ttl_ms_ = 0;                       // the master's read lease, from PutStart
};

}  // namespace kvcached
