// BatchContext: what the put and get stages (put_batch.h, get_batch.h)
// work with — the master link, the data paths, the router, the settings
// they read and the counters they keep. Owned by the client (or a test);
// every member outlives the batches that use it. The counters are atomic;
// the rest is thread-safe by its own contract.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "client/master_link.h"
#include "client/router.h"
#include "client/transport.h"

namespace kvcached {

struct ClientCounters {
  std::atomic<uint64_t> puts{0}, gets{0}, bytes_written{0}, bytes_read{0};
  std::atomic<uint64_t> checksum_mismatches{0}, lease_expirations{0};
};

struct BatchContext {
  MasterLink& master;
  Transport& transport;
  Router& router;
  ClientCounters& counters;
  bool checksums = true;  // ClientConfig::checksums
  // What read leases are timed by; tests drive it by hand.
  std::function<std::chrono::steady_clock::time_point()> clock = std::chrono::steady_clock::now;
};

// Refuses what no master would take: an empty key, one over kMaxKeyBytes,
// one beginning with NUL (core/tenant.h).
Status CheckKey(std::string_view key);
// The Status for a per-key code from the master (0 is OK), naming the key.
Status FromCode(int32_t code, const std::string& key, const char* what);
// GetReplicaList of keys[todo[0]], keys[todo[1]], ... in chunks of
// kMaxBatchKeys: one answer per chunk appended to `found`, the last of them
// unusable when the returned Status is not OK. Takes a read lease on every
// object found.
Status LookUpReplicas(MasterLink& master, const std::vector<std::string>& keys,
                      const std::vector<size_t>& todo, std::vector<ReplicaListResponse>& found);
// Ends the read leases of `items` (ReleaseLeases, one-way, in chunks of
// kMaxBatchKeys). Each names the version seen, so a release that arrives
// late cannot end a lease on a newer object of the key. One not sent is
// logged at debug: its lease ends with its TTL.
void ReleaseReads(MasterLink& master, const std::vector<ReleaseItem>& items);

}  // namespace kvcached
