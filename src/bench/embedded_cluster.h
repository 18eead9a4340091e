// EmbeddedCluster: a master and one store running inside this process on
// loopback, for `kvcached bench` with no cluster given. The master (without
// a metadata service) runs on one thread, the store's data port and
// shared-memory socket on `store_threads` threads of their own, exactly the
// code `kvcached master` and `kvcached store` run. Clients reach it through
// master_address() like any pool.
//
// Not thread-safe: one owner starts and stops it. Stop() (also the
// destructor) unmounts the store, then stops the master.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>

#include "core/auth_token.h"
#include "core/rdma_link.h"
#include "kvcached/status.h"

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

  struct Parts;

 private:
  explicit EmbeddedCluster(std::unique_ptr<Parts> parts);
  std::unique_ptr<Parts> parts_;
};

}  // namespace kvcached
