// TierCounters: a snapshot of the counters that say what a pool's disk
// tiers did — the master's demotions and loads (kvcached_master_*_total)
// and the stores' own disk reads and writes (kvcached_store_disk_*) — so
// the bench can split a workload's gets into those served from DRAM and
// those loaded from disk, and give the disk's share in GB/s. Filled from
// Prometheus text (an embedded master's registry, or a scraped /metrics)
// or from a DiskTier's stats. Plain values; no thread-safety concerns.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvcached/status.h"
#include "store/disk_tier.h"

namespace kvcached {

struct TierCounters {
  // The master's (docs/disk-tier.md): valid when master_known.
  bool master_known = false;
  uint64_t demotions = 0, demoted = 0, demote_failures = 0, clean_drops = 0;
  uint64_t promotions = 0, promoted = 0, promote_failures = 0, promote_no_room = 0;
  uint64_t disk_dropped = 0;
  // kvcached_master_tier_wait_seconds: answers held for loads (gets) or for
  // demotions to free room (puts), their count and summed wait.
  uint64_t tier_waits = 0, tier_wait_ns = 0;
  // The stores' disk tiers, summed: valid when disk_known.
  bool disk_known = false;
  uint64_t disk_reads = 0, disk_read_bytes = 0, disk_read_ns = 0;
  uint64_t disk_writes = 0, disk_write_bytes = 0, disk_write_ns = 0;
  uint64_t disk_evictions = 0, disk_corrupt = 0, disk_read_errors = 0, disk_write_errors = 0;
  // Why a part is unknown (a scrape failed, a master without a disk tier's
  // counters); empty when all asked for is known.
  std::string problem;

  // Counter deltas; a part is known in the result when known in both.
  TierCounters operator-(const TierCounters& earlier) const;
};

// Reads the master's counters out of a /metrics text; sets master_known
// when the disk tier's counters are there (a master that predates them
// leaves it false).
void ReadMasterMetrics(std::string_view prometheus_text, TierCounters& into);
// Adds one store's kvcached_store_disk_* counters; sets disk_known when found.
void AddStoreMetrics(std::string_view prometheus_text, TierCounters& into);
// Adds one DiskTier's stats; sets disk_known.
void AddDiskTierStats(const DiskTierStats& stats, TierCounters& into);

// GET http://<host_port>/metrics, with the pool's token as a bearer token
// when not empty; 5 s deadline. RPC_FAIL / RPC_TIMEOUT from the transport;
// RPC_FAIL too for a status other than 200 (the message names it).
Result<std::string> ScrapeMetrics(const std::string& host_port, const std::string& token);

}  // namespace kvcached
