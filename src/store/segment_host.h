// SegmentHost: everything it takes to contribute a segment to the pool —
// the memory (memfd), the TCP data port and the shared-memory socket that
// serve it (and, when set, the RDMA acceptor whose queue pairs reach it), the agent that mounts it at the master and keeps its object
// table, and the descriptor published to the metadata service. `kvcached
// store` is a SegmentHost with an admin port; a Client opened with
// global_segment_size > 0 runs one in-process.
//
// Life cycle: Create (memory) -> Serve (listeners on the caller's
// io_context) -> Mount (master, metadata service) -> BeginShutdown
// (listeners) -> Unmount [-> ReleaseMemory]. Each step fails with its own
// error so a command can say which went wrong. Not thread-safe: one owner
// drives the steps. A segment whose memory maps a file from a non-zero
// offset serves no shared memory (peers map the descriptor from offset 0).
#pragma once

#include <chrono>
#include <memory>
#include <optional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "core/auth_token.h"
#include "core/metrics.h"
#include "core/segment_endpoint.h"
#include "core/status.h"
#include "net/metadata_client.h"
#include "store/data_server.h"
#include "store/disk_tier.h"
#include "store/segment_memory.h"
#include "store/shm_server.h"
#include "store/store_agent.h"

namespace kvcached {

inline constexpr const char* kShmSocketOff = "off";

struct SegmentHostOptions {
  std::string master = "127.0.0.1:50051";  // or etcd://... (net/leader_lookup.h)
  std::string cluster_id;                  // with etcd://: the masters' (empty: the default)
  std::string client_id;  // owner identity at the master; unique per process
  // The secret that proves this process owns the segment (HelloRequest::
  // owner_proof). Empty: a new random one, so a restart waits for the TTL.
  std::string owner_proof;
  std::string host_id;
  std::string segment_name;
  SegmentMemoryOptions memory;  // size, huge pages, mlock (name is set from segment_name)
  std::string bind_host = "127.0.0.1";
  uint16_t data_port = 0;
  // Empty: <runtime dir>/<client id>.sock (ShmRuntimeDir, created and
  // checked); "off": no shm path; "@name": an abstract socket (only with
  // allow_abstract_shm); else a socket file at that path.
  std::string shm_socket;
  // --shm-group: a group whose members may attach besides the host's own
  // uid and root (ShmAccessPolicy); empty: none.
  std::string shm_group;
  // Abstract sockets have no permissions and their names can be taken by
  // any local user; Serve refuses "@name" (INVALID_PARAMS) unless this is set.
  bool allow_abstract_shm = false;
  std::optional<AuthToken> token;
  // Serve on a non-loopback data port without a token (Serve refuses it
  // otherwise, with INVALID_PARAMS).
  bool insecure = false;
  std::string metadata_server;  // http://... or etcd://...: publish the descriptor there
  std::chrono::milliseconds ping_interval{1000};
  std::chrono::milliseconds connect_timeout{1000};
  int connect_attempts = 2;
  size_t data_max_connections = 4096;
  size_t data_max_connections_per_peer = 256;
  std::chrono::milliseconds data_idle_timeout{600'000};
  size_t shm_max_connections = 4096;
  // The disk tier (docs/disk-tier.md); disk.dir empty: none. One that cannot
  // be opened is logged and the host runs on memory alone.
  DiskTierOptions disk;
};

class SegmentHost {
 public:
  // Allocates the segment (SegmentMemory's errors).
  static Result<std::unique_ptr<SegmentHost>> Create(SegmentHostOptions options);
  ~SegmentHost();
  SegmentHost(const SegmentHost&) = delete;
  SegmentHost& operator=(const SegmentHost&) = delete;

  // Serves RDMA next to TCP: `rdma` has registered this host's memory()
  // and sets up queue pairs for peers. Call before Serve.
  void SetRdma(std::shared_ptr<RdmaAcceptor> rdma) { rdma_ = std::move(rdma); }
  // Binds the data port and the shm socket on `ioc` (accepting once it runs).
  // INVALID_PARAMS for an unknown --shm-group, an abstract socket without
  // allow_abstract_shm, or a runtime directory that is not private
  // (ShmRuntimeDir::Prepare); the listeners' own errors otherwise.
  Status Serve(boost::asio::io_context& ioc, MetricsRegistry& metrics);
  // Mounts at the master (StoreAgent::Start's errors) and publishes the
  // descriptor to the metadata service (a failure there is logged, not fatal:
  // clients take descriptors from the master).
  Status Mount();
  void BeginShutdown();
  // Unpublishes and unmounts; the master drops the segment's objects. Idempotent.
  Status Unmount();
  // After BeginShutdown and Unmount, when this object must outlive them a
  // while (a server thread may still be finishing a transfer): gives the
  // segment's memory back now (SegmentMemory::Release). Idempotent.
  void ReleaseMemory();

  const std::string& name() const { return options_.segment_name; }
  const SegmentEndpoint& endpoint() const { return endpoint_; }
  std::string endpoint_text() const { return FormatEndpoint(endpoint_); }
  SegmentMemory& memory() const { return *memory_; }
  StoreAgent* agent() const { return agent_.get(); }
  // Null without a disk tier, or when it could not be opened (disk_error()).
  DiskTier* disk_tier() const { return tier_.get(); }
  const std::string& disk_error() const { return disk_error_; }
  DataServer* data_server() const { return data_.get(); }
  ShmServer* shm_server() const { return shm_.get(); }
  size_t open_connections() const;

 private:
  explicit SegmentHost(SegmentHostOptions options) : options_(std::move(options)) {}
  Result<MetadataClient> Metadata() const;  // a client of --metadata-server
  Status ServeShm(boost::asio::io_context& ioc, MetricsRegistry& metrics);
  void OpenDiskTier(StoreAgentOptions& agent);
  void Publish();
  void Unpublish();

  SegmentHostOptions options_;
  std::unique_ptr<SegmentMemory> memory_;
  std::unique_ptr<DataServer> data_;
  std::unique_ptr<ShmServer> shm_;
  std::unique_ptr<StoreAgent> agent_;
  // After agent_: stopped (its callbacks into the agent done) before the
  // agent and the memory it copies from go.
  std::unique_ptr<DiskTier> tier_;
  std::string disk_error_;
  std::shared_ptr<RdmaAcceptor> rdma_;
  SegmentEndpoint endpoint_;
  bool published_ = false;
};

}  // namespace kvcached
