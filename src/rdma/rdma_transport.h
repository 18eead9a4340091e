// The RDMA data path: one-sided RDMA WRITE (put) and RDMA READ (get)
// between a caller's memory and a store segment's registered memory over
// RC queue pairs. Two halves share the device handling:
//
//  - RdmaTarget (store side): registers the segment on every NIC in chunks
//    below the device's max_mr_size and answers RdmaConnect requests that
//    the data port hands it (core/rdma_link.h). After that the store's CPU
//    does nothing per transfer.
//  - RdmaEngine (client side): registers caller buffers, connects queue
//    pairs to stores lazily through an RdmaConnector (the client's TCP
//    handshake over the store's data port), slices large transfers across
//    queue pairs and NICs, posts chains of work requests with selective
//    signalling, and collects completions on its own thread.
//
// Every verbs call goes through a VerbsApi table (verbs_api.h), so the
// bookkeeping runs in unit tests against a scripted fake.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "core/rdma_link.h"
#include "core/status.h"

namespace kvcached {

struct VerbsApi;

struct RdmaOptions {
  // Device names ("mlx5_0,mlx5_1"), each optionally ":port"; empty: every
  // device with an active port (RdmaTarget keeps those on the NUMA node of
  // its memory, when that node has any). A named device that is missing or
  // has no active port is an error; finding none by discovery is not (Open
  // says NOT_SUPPORTED and the caller falls back to TCP).
  std::vector<std::string> devices;
  int gid_index = -1;  // -1: choose (RoCE v2, IPv4-mapped preferred)
  std::chrono::milliseconds connect_timeout{3000};
  // A transfer fails with TRANSFER_FAIL when it has waited this long for a
  // completion.
  std::chrono::milliseconds io_timeout{5000};
  uint64_t slice_bytes = 1 << 20;  // larger transfers are sliced
  unsigned qps_per_nic_pair = 2;   // queue pairs per (local NIC, remote NIC)
  unsigned max_send_wr = 128;      // outstanding work requests per queue pair
  uint64_t max_chunk_bytes = 1ull << 30;  // registration chunk (below max_mr_size)
};

// Discovery result for logs: which devices and ports were taken, or why
// none. Thread-safe.
struct RdmaDeviceChoice {
  std::vector<RdmaNic> nics;
  std::string why_none;  // set when nics is empty
};
Result<RdmaDeviceChoice> ChooseRdmaDevices(const VerbsApi& verbs, const RdmaOptions& options);

// ---- store side ------------------------------------------------------------

class RdmaTarget : public RdmaAcceptor {
 public:
  // Opens the NICs and registers [base, base + size) on each.
  // UNAVAILABLE_IN_CURRENT_MODE names a missing or inactive device;
  // NOT_SUPPORTED says why discovery found none; TRANSFER_FAIL names the
  // refused registration (with RLIMIT_MEMLOCK in the message when that is
  // why). `verbs` must outlive
  // the target (RealVerbs() does).
  static Result<std::unique_ptr<RdmaTarget>> Open(const VerbsApi& verbs, RdmaOptions options,
                                                   uint8_t* base, uint64_t size);
  // Open with the host's libibverbs. In a build without rdma-core
  // (rdma_stub.cpp): NOT_SUPPORTED, or UNAVAILABLE_IN_CURRENT_MODE when
  // `options` names devices.
  static Result<std::unique_ptr<RdmaTarget>> OpenSystem(RdmaOptions options, uint8_t* base,
                                                         uint64_t size);
  ~RdmaTarget() override;

  Result<RdmaConnectResponse> Accept(const RdmaConnectRequest& request, uint64_t link) override;
  void Release(uint64_t link) override;
  RdmaSegmentInfo Describe() const override;

  size_t queue_pairs() const override;

 private:
  RdmaTarget() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

// ---- client side -----------------------------------------------------------

// Keeps a store's side of a queue pair alive; destroying it (closing the TCP
// connection behind it) lets the store destroy its queue pair.
class RdmaLink {
 public:
  virtual ~RdmaLink() = default;
  // False once the store's side is known to be gone (its process ended and
  // the connection closed): the queue pair is then rebuilt, or the store
  // reported unreachable, at once instead of after the NIC's retries.
  virtual bool Alive() const { return true; }
};

// Sends `request` to the store whose data port is `address` and returns its
// answer, with `link` set to what keeps the store's queue pair alive. Must
// give up within the engine's connect_timeout. Called on the caller's thread.
using RdmaConnector = std::function<Result<RdmaConnectResponse>(
    const std::string& address, const RdmaConnectRequest& request, std::unique_ptr<RdmaLink>& link)>;

struct RdmaOp {
  const RdmaSegmentInfo* remote = nullptr;  // the segment's descriptor
  std::string address;                      // the store's data port: where to handshake
  std::string instance;  // the store process (SegmentEndpoint::instance): queue pairs are per instance
  uint64_t offset = 0;   // in the segment
  uint64_t length = 0;
  uint8_t* local = nullptr;  // source of a write, destination of a read
  bool write = false;
  Status result;  // filled in by Run
};

struct RdmaCounters {
  std::atomic<uint64_t> transfers{0};
  std::atomic<uint64_t> bytes{0};
  std::atomic<uint64_t> queue_pairs_created{0};
  std::atomic<uint64_t> queue_pairs_rebuilt{0};
  std::atomic<uint64_t> slices_retried{0};
  std::atomic<uint64_t> temporary_registrations{0};
};

class RdmaEngine {
 public:
  // NOT_SUPPORTED (with the reason) when there is no device. `verbs` must
  // outlive the engine (RealVerbs() does).
  static Result<std::unique_ptr<RdmaEngine>> Open(const VerbsApi& verbs, RdmaOptions options,
                                                  RdmaConnector connector);
  // Open with the host's libibverbs; NOT_SUPPORTED in a build without
  // rdma-core (rdma_stub.cpp).
  static Result<std::unique_ptr<RdmaEngine>> OpenSystem(RdmaOptions options,
                                                        RdmaConnector connector);
  ~RdmaEngine();

  // Registers caller memory on every local NIC; transfers from or into it
  // need no registration of their own. Idempotent for the same range.
  Status RegisterMemory(void* addr, uint64_t length);
  Status UnregisterMemory(void* addr);

  // Completes every op (thread-safe: many threads may run batches at once).
  // Memory not registered is registered for the length of the call.
  // TRANSFER_FAIL when a slice failed on every path or waited io_timeout.
  void Run(std::vector<RdmaOp*>& ops);
  void Close();

  const std::vector<RdmaNic>& nics() const;
  const RdmaCounters& counters() const;

 private:
  RdmaEngine() = default;
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcached
