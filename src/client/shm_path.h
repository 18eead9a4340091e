// ShmPath: the shared-memory data path. A same-host store hands its
// segment's memfd over its Unix socket (Hello, ShmAttach); the segment is
// mapped on first use, kept per store instance, and unmapped when the store
// hangs up (the socket stays open for that). A failed attach is remembered
// for 5 s. Also copies into this process's own segment (Path::kLocal).
// Copies of one batch are shared with the CopyPool's threads when worth it.
// Thread-safe.
#pragma once

#include <chrono>
#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "client/data_path.h"

namespace kvcached {

class CopyPool;

class ShmPath : public DataPath {
 public:
  // `options` and `counters` must outlive the path.
  ShmPath(const TransportOptions& options, TransportCounters& counters);
  ~ShmPath() override;
  ShmPath(const ShmPath&) = delete;
  ShmPath& operator=(const ShmPath&) = delete;

  void Run(std::vector<TransferOp*>& ops) override;
  // True when a shared mapping of `segment` can be had (attaching on first use).
  bool Reaches(const SegmentEndpoint& segment) override;
  void Close() override;

 private:
  struct Mapping;
  std::shared_ptr<Mapping> Attach(const SegmentEndpoint& segment, Status& why);
  // Unmaps segments whose store hung up (at most once a second), so a
  // long-lived client does not keep a gone store's memory alive.
  void SweepMappings();
  void Copy(TransferOp& op);

  const TransportOptions& options_;
  TransportCounters& counters_;
  std::unique_ptr<CopyPool> copiers_;  // with copy_threads > 1

  std::mutex mu_;  // guards mappings_, failures_ and next_sweep_
  std::map<std::string, std::shared_ptr<Mapping>> mappings_;  // by instance
  std::map<std::string, std::chrono::steady_clock::time_point> failures_;
  std::chrono::steady_clock::time_point next_sweep_{};
};

}  // namespace kvcached
