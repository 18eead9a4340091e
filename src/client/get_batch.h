// GetBatch: one batch get, in named stages (Run shows the sequence):
//   Validate  refuse bad keys and null buffers
//   Locate    GetReplicaList (in chunks of kMaxBatchKeys); the read lease
//             runs from the moment the request leaves
//   Order     per key, the replicas in the order to try them: same host
//             first, then the master's order; a buffer too small refuses
//   Rounds    every key's next replica until each has its bytes or none is
//             left; an answer counts only within the lease and, with
//             checksums on, when its checksum matches
//   Release   ReleaseLeases for the keys whose lease still runs, so that
//             eviction may take them at once
// One object per call; not thread-safe (a call runs on its caller's thread).
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "client/batch_context.h"
#include "kvcached/client.h"

namespace kvcached {

class GetBatch {
 public:
  // The vectors must outlive the batch; `keys` and `buffers` pair up.
  GetBatch(BatchContext& ctx, const std::vector<std::string>& keys,
           const std::vector<Slice>& buffers);
  std::vector<Result<uint64_t>> Run();

 private:
  struct Try {
    Route route;
    uint64_t offset;
  };
  struct Want {
    size_t key;
    const ReplicaItem* item;
    const ReplicaListResponse* res;
    std::vector<Try> tries;  // in the order to try them
    size_t next = 0;
    Status last;
  };

  void Validate();
  void Locate();
  void Order();
  void Rounds();
  // How one transfer of a round ended, after the lease and checksum checks.
  Status Judge(const Want& w, const TransferOp& op);
  void Release();
  bool LeaseRunning(const ReplicaListResponse& res) const;

  BatchContext& ctx_;
  const std::vector<std::string>& keys_;
  const std::vector<Slice>& buffers_;

  std::vector<Result<uint64_t>> out_;            // per key
  std::vector<size_t> todo_;                     // keys that go to the master
  std::chrono::steady_clock::time_point asked_;  // when GetReplicaList left
  std::vector<ReplicaListResponse> found_;       // answers, one per chunk
  Status locate_;                                // how the chunks went
  std::vector<Want> wants_;                      // keys with replicas to read
  std::vector<Want> unread_;  // found (so leased) but not read: buffer too small, no route
};

}  // namespace kvcached
