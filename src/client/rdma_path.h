// RdmaPath: the RDMA data path. One-sided RDMA WRITE and READ into stores'
// registered segments through src/rdma's RdmaEngine; the engine asks a
// store for queue pairs over a TCP connection to its data port (Hello,
// RdmaConnect) that stays open for as long as they live. In a build without
// rdma-core, Open answers NOT_SUPPORTED (src/rdma/rdma_stub.cpp). Memory the
// caller registers is registered with every NIC. Thread-safe.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "client/data_path.h"

namespace kvcached {

class RdmaEngine;
class RdmaLink;
struct RdmaConnectRequest;
struct RdmaConnectResponse;
struct RdmaOptions;

class RdmaPath : public DataPath {
 public:
  // NOT_SUPPORTED (with the reason) when there is no device or no RDMA in
  // this build. `options` and `counters` must outlive the path.
  static Result<std::unique_ptr<RdmaPath>> Open(const TransportOptions& options,
                                                TransportCounters& counters,
                                                const RdmaOptions& rdma);
  ~RdmaPath() override;
  RdmaPath(const RdmaPath&) = delete;
  RdmaPath& operator=(const RdmaPath&) = delete;

  void Run(std::vector<TransferOp*>& ops) override;
  bool Reaches(const SegmentEndpoint& segment) override;
  Status RegisterMemory(void* data, uint64_t size) override;
  Status UnregisterMemory(void* data) override;
  void Close() override;

 private:
  RdmaPath(const TransportOptions& options, TransportCounters& counters);
  // The engine's connector: asks the store at data port `address` for a
  // queue pair over a TCP connection of its own, which `link` then keeps
  // open for as long as the queue pair lives.
  Result<RdmaConnectResponse> Handshake(const std::string& address,
                                        const RdmaConnectRequest& request,
                                        std::unique_ptr<RdmaLink>& link);

  const TransportOptions& options_;
  TransportCounters& counters_;
  std::unique_ptr<RdmaEngine> engine_;
};

}  // namespace kvcached
