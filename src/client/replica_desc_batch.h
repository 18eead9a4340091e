// ReplicaDescBatch: where a batch of keys' objects live, without moving a
// byte (Client::GetReplicaDesc, Mooncake's get_replica_desc), in named
// stages (Run shows the sequence):
//   Validate  refuse bad keys
//   Locate    GetReplicaList (in chunks of kMaxBatchKeys), which takes a
//             read lease on every object found
//   Collect   per key its size, version and replicas: segment name, TCP
//             data port (read from the segment's descriptor) and offset
//   Release   ReleaseLeases for every object found, at once: asking where
//             an object lives pins nothing
// One batch per call; not thread-safe (a call runs on its caller's thread).
#pragma once

#include <string>
#include <vector>

#include "client/batch_context.h"
#include "kvcached/client.h"

namespace kvcached {

class ReplicaDescBatch {
 public:
  // `keys` must outlive the batch.
  ReplicaDescBatch(BatchContext& ctx, const std::vector<std::string>& keys);
  std::vector<Result<ObjectPlaces>> Run();

 private:
  void Validate();
  void Locate();
  void Collect();
  void Release();

  BatchContext& ctx_;
  const std::vector<std::string>& keys_;

  std::vector<Result<ObjectPlaces>> out_;   // per key
  std::vector<size_t> todo_;                // keys that go to the master
  std::vector<ReplicaListResponse> found_;  // answers, one per chunk
  Status locate_;                           // how the chunks went
  std::vector<ReleaseItem> leased_;         // objects found: their leases to end
};

}  // namespace kvcached
