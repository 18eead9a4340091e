// The client's data plane: a batch of transfers {segment, offset, local
// memory, length, read|write}, each completed over the path chosen for it —
// a shared mapping of a same-host segment, one-sided RDMA into the store's
// registered segment (src/rdma, when the client has an RDMA engine), or
// pooled TCP connections to the store's data port (large transfers split
// across several). Transfers to different stores overlap: one thread
// drives every TCP connection with poll(), the RDMA engine its queue pairs.
//
// Every wait is bounded: a connection on which nothing moved for
// `io_timeout` fails its outstanding transfers. A store that refuses a
// range fails that transfer only; a broken connection fails the transfers
// it carried. Thread-safe: any number of threads may run batches at once
// (connections are checked out of the pool for the length of a batch).
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "core/rpc_protocol.h"
#include "core/segment_endpoint.h"
#include "core/status.h"

namespace kvcached {

enum class Path { kShm, kTcp, kLocal, kRdma };

class CopyPool;
class RdmaEngine;
struct RdmaConnectRequest;
struct RdmaConnectResponse;
class RdmaLink;

struct TransferOp {
  std::shared_ptr<const SegmentEndpoint> segment;
  Path path = Path::kTcp;
  uint64_t offset = 0;  // in the segment
  uint64_t length = 0;
  uint8_t* local = nullptr;  // source of a write, destination of a read
  bool write = false;
  // Asks for ObjectChecksum() of the bytes moved, where it comes nearly
  // free with the move (shared-memory and own-segment copies, and TCP
  // reads, which hash each chunk right after receiving it); `checksum`
  // then has it once the op succeeded. TCP writes and RDMA leave it empty.
  bool want_checksum = false;
  std::optional<uint64_t> checksum;
  Status result;  // filled in by Run
};

struct TransportOptions {
  HelloRequest hello;  // identity and token for data ports and shm sockets
  std::chrono::milliseconds connect_timeout{3000};
  std::chrono::milliseconds io_timeout{5000};
  unsigned tcp_streams = 4;
  uint64_t tcp_split_bytes = 1 << 20;
  // Threads that copy a batch's shared-memory transfers, the caller
  // included (1: the caller alone).
  unsigned copy_threads = 1;
  // This process's own segment, reached by plain memcpy (Path::kLocal).
  std::string own_instance;
  uint8_t* own_base = nullptr;
  uint64_t own_size = 0;
};

struct TransportCounters {
  std::atomic<uint64_t> shm_transfers{0};
  std::atomic<uint64_t> tcp_transfers{0};
  std::atomic<uint64_t> tcp_connections_opened{0};
  std::atomic<uint64_t> shm_attaches{0};
  std::atomic<uint64_t> rdma_transfers{0};
};

class Transport {
 public:
  explicit Transport(TransportOptions options);
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Takes RDMA transfers from now on (Path::kRdma); before any Run.
  void SetRdma(std::shared_ptr<RdmaEngine> engine);
  RdmaEngine* rdma() const { return rdma_.get(); }
  // The RDMA engine's connector: asks the store at data port `address` for
  // a queue pair over a TCP connection of its own, which `link` then keeps
  // open for as long as the queue pair lives.
  Result<RdmaConnectResponse> RdmaHandshake(const std::string& address,
                                            const RdmaConnectRequest& request,
                                            std::unique_ptr<RdmaLink>& link);

  // True when a shared mapping of `segment` can be had (attaching on first
  // use); a failed attach is remembered for a few seconds.
  bool ShmAvailable(const SegmentEndpoint& segment);
  // Completes every op; each op's `result` says how it went.
  void Run(std::vector<TransferOp>& ops);
  // Drops pooled connections and mappings.
  void Close();

  const TransportCounters& counters() const { return counters_; }

 private:
  struct Mapping;
  struct Stream;
  struct TcpHash;
  std::shared_ptr<Mapping> Attach(const SegmentEndpoint& segment, Status& why);
  // Unmaps segments whose store hung up (at most once a second), so a
  // long-lived client does not keep a gone store's memory alive.
  void SweepMappings();
  void RunShm(TransferOp& op);
  void RunTcp(std::vector<TransferOp*>& ops);
  void RunRdma(std::vector<TransferOp*>& ops);
  Result<int> AcquireConnection(const std::string& address, const std::string& peer);
  void ReleaseConnection(const std::string& address, int fd);

  const TransportOptions options_;
  TransportCounters counters_;
  std::unique_ptr<CopyPool> copiers_;  // with copy_threads > 1

  std::mutex shm_mu_;  // guards mappings_ and shm_failures_
  std::map<std::string, std::shared_ptr<Mapping>> mappings_;  // by instance
  std::map<std::string, std::chrono::steady_clock::time_point> shm_failures_;
  std::chrono::steady_clock::time_point next_sweep_{};

  // Set once, before use. Shared so this header needs no verbs (the type
  // is complete only where RDMA is compiled).
  std::shared_ptr<RdmaEngine> rdma_;

  std::mutex pool_mu_;  // guards idle_
  std::map<std::string, std::vector<int>> idle_;  // by "host:port"
  // What the store at each "host:port" said it serves (its Hello answer):
  // segment name and size. Guarded by pool_mu_.
  std::map<std::string, std::pair<std::string, uint64_t>> served_;
};

}  // namespace kvcached
