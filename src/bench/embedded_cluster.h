// EmbeddedCluster: a master and one store running inside this process on
// loopback, for `kvcached bench` with no cluster given. The master (without
// a metadata service) runs on one thread, the store's data port and
// shared-memory socket on `store_threads` threads of their own, exactly the
// code `kvcached master` and `kvcached store` run. Clients reach it through
// master_address() like any pool.
//
// With options.disk the store has a disk tier, as `kvcached store
// --disk-path` does; the caller owns its directory.
//
// Not thread-safe: one owner starts and stops it, except the read-only
// calls (MasterMetrics, disk_tier()->stats()), which any thread may make
// while it runs. Stop() (also the destructor) unmounts the store, then
// stops the master.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/auth_token.h"
#include "core/rdma_link.h"
#include "kvcached/status.h"
#include "store/disk_tier.h"

namespace kvcached {

struct EmbeddedClusterOptions {
  uint64_t segment_bytes = uint64_t{1} << 30;
  unsigned store_threads = 2;
  std::string host_id;       // the store's host id (clients with the same one use shm)
  std::string segment_name;  // default: "<host id>:bench"
  std::optional<AuthToken> token;
  // Serves the segment over RDMA too: called with the segment's memory once
  // it is allocated; a null acceptor means TCP and shared memory only.
  std::function<Result<std::shared_ptr<RdmaAcceptor>>(uint8_t* base, uint64_t size)> rdma;
  // The store's disk tier; disk.dir empty: none.
  DiskTierOptions disk;
};

class EmbeddedCluster {
 public:
  // Binds the master's RPC port and the store's ports on 127.0.0.1 (any
  // free port), allocates the segment and mounts it. The first failure is
  // returned with what failed.
  static Result<std::unique_ptr<EmbeddedCluster>> Start(const EmbeddedClusterOptions& options);
  ~EmbeddedCluster();
  EmbeddedCluster(const EmbeddedCluster&) = delete;
  EmbeddedCluster& operator=(const EmbeddedCluster&) = delete;

  void Stop();  // idempotent
  const std::string& master_address() const;
  const std::string& segment_name() const;
  const std::string& data_address() const;
  uint64_t segment_bytes() const;
  // The master's /metrics text (its registry rendered in-process).
  std::string MasterMetrics() const;
  // The store's disk tier: null without one, or when it could not be
  // opened (disk_error() says why; the store then runs on memory alone).
  // Valid until Stop().
  const DiskTier* disk_tier() const;
  const std::string& disk_error() const;

  struct Parts;

 private:
  explicit EmbeddedCluster(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace kvcached
