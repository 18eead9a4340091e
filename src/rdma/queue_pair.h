// QueuePair: one RC queue pair on a VerbsDevice, and the state machine that
// connects it to a peer's (RESET -> INIT -> RTR -> RTS, and ERR to stop it).
// It may own its completion queue (the client's: one per queue pair, on the
// engine's completion channel) or use a shared one (the store's, which never
// sees completions). Not thread-safe: the owner serialises calls; posting
// goes through qp() under the owner's lock. The device (and a shared CQ)
// must outlive it; destruction destroys the QP, then its own CQ.
#pragma once

#include <cstdint>
#include <memory>

#include "core/rdma_link.h"
#include "core/status.h"
#include "rdma/verbs_api.h"
#include "rdma/verbs_device.h"

namespace kvcached {

inline constexpr uint8_t kQpTimeout = 14;  // 4.096 us * 2^14 = 67 ms per try
inline constexpr uint8_t kQpRetryCount = 7;
inline constexpr uint8_t kQpRnrRetry = 7;
inline constexpr uint8_t kQpMinRnrTimer = 12;
inline constexpr uint8_t kQpHopLimit = 64;
inline constexpr int kWantedRdAtomic = 16;

class QueuePair {
 public:
  struct Config {
    uint32_t max_send_wr = 128;
    ibv_cq* shared_cq = nullptr;          // use this CQ, or ...
    ibv_comp_channel* channel = nullptr;  // ... own one on this channel
    void* cq_context = nullptr;           // handed back by get_cq_event
  };

  // Creates the CQ (unless shared) and the QP, in RESET. TRANSFER_FAIL
  // naming the verb and device when the device refuses.
  static Result<std::unique_ptr<QueuePair>> Create(VerbsDevice& device, const Config& config);
  ~QueuePair();
  QueuePair(const QueuePair&) = delete;
  QueuePair& operator=(const QueuePair&) = delete;

  // This side's parameters for the peer (qpn, a random PSN, GID, LID, MTU).
  const RdmaQpParams& local() const { return local_; }
  // RESET -> INIT (with `access` as qp_access_flags) -> RTR (to `peer`) ->
  // RTS. TRANSFER_FAIL names the state that was refused.
  Status Connect(int access, const RdmaQpParams& peer);
  // Moves to ERR: outstanding work requests complete with flush errors.
  void ToError();

  ibv_qp* qp() const { return qp_.get(); }
  ibv_cq* cq() const { return cq_; }
  const VerbsDevice& device() const { return *device_; }
  uint32_t max_send_wr() const { return max_send_wr_; }

 private:
  explicit QueuePair(VerbsDevice& device) : device_(&device) {}
  Status Modify(ibv_qp_attr& attr, int mask, const char* state);

  VerbsDevice* device_;
  CqPtr own_cq_;  // destroyed after qp_ (declared before it)
  ibv_cq* cq_ = nullptr;
  QpPtr qp_;
  RdmaQpParams local_;
  uint32_t max_send_wr_ = 0;
};

}  // namespace kvcached
