// DataPath: one way of moving an object's bytes between this process and a
// segment — shared memory (shm_path.h, which also copies into the client's
// own segment), TCP to the store's data port (tcp_path.h) or one-sided RDMA
// (rdma_path.h). `Transport` (transport.h) hands each path the transfers
// chosen for it; tests substitute a fake path (tests/unit/fake_data_path.h).
//
// A path completes every op it is given and says how each went in
// `op.result`; it never throws. Ops reach it with a non-zero length and a
// range already checked against the segment's descriptor. Paths are
// thread-safe: several threads may run batches at once.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "core/rpc_protocol.h"
#include "core/segment_endpoint.h"
#include "core/status.h"

namespace kvcached {

enum class Path { kShm, kTcp, kLocal, kRdma };
inline constexpr size_t kPathCount = 4;

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
  Status result;  // filled in by the path
};

// Records the first failure of an op (a later one does not overwrite it).
inline void FailOp(TransferOp& op, ErrorCode code, const std::string& why) {
  if (op.result.ok()) op.result = Status(code, why);
}

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

class DataPath {
 public:
  virtual ~DataPath() = default;

  // Completes every op; each op's `result` (and `checksum`, when asked and
  // the path computes it) says how it went.
  virtual void Run(std::vector<TransferOp*>& ops) = 0;
  // Whether this path can reach `segment` now (the shm path attaches on
  // first use). Cheap after the first call.
  virtual bool Reaches(const SegmentEndpoint& segment) { return true; }
  // Memory the caller will move objects from or into; a path that must
  // prepare memory (RDMA registration) does so here. Idempotent.
  virtual Status RegisterMemory(void* data, uint64_t size) { return Status::Ok(); }
  virtual Status UnregisterMemory(void* data) { return Status::Ok(); }
  // Drops pooled connections and mappings.
  virtual void Close() {}
};

}  // namespace kvcached
