// Transport: the client's data plane. Completes a batch of transfers
// {segment, offset, local memory, length, read|write}, each over the
// DataPath chosen for it (data_path.h): copies first (shared memory and the
// client's own segment), then RDMA, then TCP, so that transfers to
// different stores overlap. Every range is checked against the segment's
// descriptor before anything moves.
//
// The real paths are built from TransportOptions; RDMA is added with
// SetPath once an engine opened. Tests install fakes with SetPath.
// Thread-safe once set up: paths are installed before the first Run, and
// any number of threads may then run batches at once.
#pragma once

#include <array>
#include <memory>
#include <vector>

#include "client/data_path.h"

namespace kvcached {

class Transport {
 public:
  // With the shared-memory (and own-segment) and TCP paths.
  explicit Transport(TransportOptions options);
  // With no path at all: tests install theirs with SetPath.
  Transport();
  ~Transport();
  Transport(const Transport&) = delete;
  Transport& operator=(const Transport&) = delete;

  // Installs (or with nullptr removes) the path for `path`; before any Run.
  // Path::kLocal and Path::kShm are one path (both are copies).
  void SetPath(Path path, std::unique_ptr<DataPath> impl);
  bool Has(Path path) const { return paths_[Slot(path)] != nullptr; }
  // Whether `path` is installed and can reach `segment` now.
  bool Reaches(Path path, const SegmentEndpoint& segment);

  // Completes every op; each op's `result` says how it went.
  void Run(std::vector<TransferOp>& ops);
  // Offered to every path (RDMA registers the range with its NICs).
  Status RegisterMemory(void* data, uint64_t size);
  Status UnregisterMemory(void* data);
  // Drops pooled connections and mappings.
  void Close();

  const TransportOptions& options() const { return options_; }
  TransportCounters& counters() { return counters_; }
  const TransportCounters& counters() const { return counters_; }

 private:
  static size_t Slot(Path path) {
    return path == Path::kLocal ? static_cast<size_t>(Path::kShm) : static_cast<size_t>(path);
  }
  const TransportOptions options_;
  TransportCounters counters_;
  std::array<std::unique_ptr<DataPath>, kPathCount> paths_;
};

}  // namespace kvcached
