#include "client/transport.h"

#include "client/shm_path.h"
#include "client/tcp_path.h"

namespace kvcached {

Transport::Transport() : options_() {}

Transport::Transport(TransportOptions options) : options_(std::move(options)) {
  SetPath(Path::kShm, std::make_unique<ShmPath>(options_, counters_));
  SetPath(Path::kTcp, std::make_unique<TcpPath>(options_, counters_));
}

Transport::~Transport() { Close(); }

void Transport::SetPath(Path path, std::unique_ptr<DataPath> impl) {
  paths_[Slot(path)] = std::move(impl);
}

bool Transport::Reaches(Path path, const SegmentEndpoint& segment) {
  DataPath* p = paths_[Slot(path)].get();
  return p != nullptr && p->Reaches(segment);
}

void Transport::Close() {
  for (auto& p : paths_) {
    if (p) p->Close();
  }
}

Status Transport::RegisterMemory(void* data, uint64_t size) {
  for (auto& p : paths_) {
    if (!p) continue;
    if (Status st = p->RegisterMemory(data, size); !st.ok()) return st;
  }
  return Status::Ok();
}

Status Transport::UnregisterMemory(void* data) {
  Status first;
  for (auto& p : paths_) {
    if (!p) continue;
    if (Status st = p->UnregisterMemory(data); !st.ok() && first.ok()) first = st;
  }
  return first;
}

void Transport::Run(std::vector<TransferOp>& ops) {
  std::array<std::vector<TransferOp*>, kPathCount> by_path;
  for (TransferOp& op : ops) {
    op.result = Status::Ok();
    op.checksum.reset();
    if (op.length == 0) continue;
    // The segment's size came with its descriptor: a range outside it is
    // refused before any connection is made or piece is planned.
    if (!RangeWithin(DataRange{op.offset, op.length}, op.segment->size)) {
      FailOp(op, ErrorCode::INVALID_PARAMS,
             "replica [" + std::to_string(op.offset) + ", +" + std::to_string(op.length) +
                 ") lies outside segment '" + op.segment->name + "' of " +
                 std::to_string(op.segment->size) + " bytes");
      continue;
    }
    DataPath* p = paths_[Slot(op.path)].get();
    // (A copy's path finds out for itself, with the reason, when it attaches.)
    bool remote = op.path == Path::kTcp || op.path == Path::kRdma;
    if (p == nullptr || (remote && !p->Reaches(*op.segment))) {
      const char* how = op.path == Path::kTcp    ? "has no TCP data port"
                        : op.path == Path::kRdma ? "cannot be reached over RDMA from this client"
                                                 : "cannot be reached over shared memory";
      FailOp(op, ErrorCode::TRANSFER_FAIL, "segment '" + op.segment->name + "' " + how);
      continue;
    }
    by_path[Slot(op.path)].push_back(&op);
  }
  // Copies first: they finish fast and free the CPU for the TCP streams,
  // which then run all at once. RDMA next: the engine's completions do not
  // need this thread, but its Run waits for them (a batch mixing RDMA and
  // TCP stores moves them one after the other).
  for (Path path : {Path::kShm, Path::kRdma, Path::kTcp}) {
    std::vector<TransferOp*>& mine = by_path[Slot(path)];
    if (!mine.empty()) paths_[Slot(path)]->Run(mine);
  }
}

}  // namespace kvcached
