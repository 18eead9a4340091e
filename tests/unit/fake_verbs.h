// FakeVerbs: an in-memory VerbsApi for the RDMA transport's unit tests. It
// models devices, ports and GID tables (configurable), protection domains,
// memory registrations (ranges and keys), completion channels (an eventfd
// per channel, so poll() works), CQs with arming, and RC queue pairs with
// the RESET -> INIT -> RTR -> RTS -> ERR state machine. post_send executes
// RDMA WRITE and READ by copying bytes between the local SGE and the peer's
// registered memory after checking lkey, rkey, ranges, PDs, access flags
// and that both queue pairs are connected to each other, so an engine and a
// target in one process move real bytes. Faults: no devices (errno), the
// Nth post refused, the Nth work request completing with an error status,
// a queue pair forced to ERR, registrations above a size refused, and
// holding every work request (never completing) until a QP leaves RTS.
// Thread-safe: one mutex guards everything; the table must not outlive it.
#pragma once

#include <infiniband/verbs.h>

#include <atomic>
#include <cstdint>
#include <deque>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/rdma_link.h"
#include "rdma/verbs_api.h"

namespace kvcached {

struct FakeGidSpec {
  RdmaGid gid{};
  ibv_gid_type type = IBV_GID_TYPE_ROCE_V2;
};

struct FakePortSpec {
  bool active = true;
  ibv_mtu mtu = IBV_MTU_4096;
  uint8_t link_layer = IBV_LINK_LAYER_ETHERNET;
  uint16_t lid = 0;
  std::vector<FakeGidSpec> gids;
};

struct FakeDeviceSpec {
  std::string name;
  std::vector<FakePortSpec> ports;
  uint64_t max_mr_size = 1ull << 40;
  int max_qp_wr = 4096;
  int max_qp_rd_atom = 16;
  int max_cqe = 1 << 16;
  int numa_node = -1;  // -1: unknown
};

// A RoCE device with one active port whose GID table is: [0] fe80:: link-
// local RoCE v1, [1] the same as v2, [2] ::ffff:ipv4 v1, [3] ::ffff:ipv4 v2.
FakeDeviceSpec FakeRoceDevice(const std::string& name, const std::string& ipv4);
RdmaGid FakeGid(const std::string& text);  // "::ffff:10.0.0.1"

class FakeVerbs {
 public:
  explicit FakeVerbs(std::vector<FakeDeviceSpec> devices);
  ~FakeVerbs();
  FakeVerbs(const FakeVerbs&) = delete;
  FakeVerbs& operator=(const FakeVerbs&) = delete;

  const VerbsApi& api() const { return api_; }

  // ---- faults --------------------------------------------------------------
  // get_device_list returns null with errno = err (ENOSYS: no kernel RDMA).
  void SetNoDevices(int err);
  // The nth post_send call from now (1 = the next) fails with `err`.
  void FailPostNumber(uint64_t n, int err = EIO);
  // The nth work request executed from now completes with `status`, and its
  // queue pair goes to ERR (the rest of its chain is flushed).
  void FailWrNumber(uint64_t n, ibv_wc_status status = IBV_WC_RETRY_EXC_ERR);
  // reg_mr of more than `bytes` fails with `err`.
  void SetMaxRegBytes(uint64_t bytes, int err = ENOMEM);
  // The node every address reports (memory_numa_node); -1: unknown.
  void SetMemoryNode(int node) { memory_node_ = node; }
  // While set, posted work requests are queued, never executed; leaving RTS
  // flushes them.
  void SetHold(bool hold);
  // Moves a queue pair to ERR as the hardware would (held work flushed).
  void ForceQpError(uint32_t qpn);

  // ---- introspection -------------------------------------------------------
  struct QpInfo {
    uint32_t qpn = 0;
    bool alive = true;
    std::string device;
    ibv_qp_state state = IBV_QPS_RESET;
    std::vector<ibv_qp_state> history;  // every state entered, RESET first
    uint32_t max_send_wr = 0;
    int access = 0;
    ibv_qp_attr rtr{};
    ibv_qp_attr rts{};
    int rtr_mask = 0;
    int rts_mask = 0;
    uint64_t wrs_executed = 0;
  };
  std::vector<QpInfo> Qps() const;  // every queue pair ever created
  std::optional<QpInfo> Qp(uint32_t qpn) const;
  size_t LiveQps() const;
  size_t LiveMrs() const;
  size_t LiveCqs() const;
  size_t LiveContexts() const;
  uint64_t PostCalls() const;
  uint64_t WrsExecuted() const;
  uint64_t Held() const;  // work requests waiting in hold mode

 private:
  struct Mr {
    ibv_mr* mr;
    ibv_pd* pd;
    uint64_t addr;
    uint64_t length;
    int access;
  };
  struct Cq {
    ibv_cq* cq;
    ibv_comp_channel* channel;
    bool armed = false;
    std::deque<std::pair<ibv_wc, uint32_t>> entries;  // CQE, send-queue slots it frees
  };
  struct Channel {
    ibv_comp_channel* channel;
    std::deque<ibv_cq*> events;
  };
  struct HeldWr {
    ibv_send_wr wr;
    ibv_sge sge;
  };
  struct QpState {
    ibv_qp* qp;
    QpInfo info;
    uint32_t dest_qpn = 0;
    uint32_t occupancy = 0;    // send-queue slots in use
    uint32_t unsignalled = 0;  // successful unsignalled WRs since the last CQE
    std::deque<HeldWr> held;
  };

  VerbsApi MakeApi();
  // All below run with mu_ held.
  int PostLocked(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad);
  ibv_wc_status Execute(QpState& qp, const ibv_send_wr& wr);
  void Complete(QpState& qp, const ibv_send_wr& wr, ibv_wc_status status);
  void EnterState(QpState& qp, ibv_qp_state state);
  void FlushHeld(QpState& qp);
  const Mr* FindMr(uint32_t key, bool remote) const;

  std::vector<FakeDeviceSpec> specs_;
  std::atomic<int> memory_node_{-1};
  std::vector<ibv_device*> devices_;
  VerbsApi api_;

  mutable std::mutex mu_;
  int no_devices_errno_ = 0;                                 // mu_
  uint64_t post_calls_ = 0, fail_post_at_ = 0;               // mu_
  int fail_post_errno_ = EIO;                                // mu_
  uint64_t wrs_executed_ = 0, fail_wr_at_ = 0;               // mu_
  ibv_wc_status fail_wr_status_ = IBV_WC_RETRY_EXC_ERR;      // mu_
  uint64_t max_reg_bytes_ = 0;                               // mu_ (0: no limit)
  int max_reg_errno_ = ENOMEM;                               // mu_
  bool hold_ = false;                                        // mu_
  uint32_t next_key_ = 0x100;                                // mu_
  uint32_t next_qpn_ = 0x11;                                 // mu_
  std::unordered_map<ibv_context*, size_t> contexts_;        // mu_: -> device index
  std::unordered_map<uint32_t, Mr> mrs_;                     // mu_: by lkey (== rkey)
  std::unordered_map<ibv_comp_channel*, Channel> channels_;  // mu_
  std::unordered_map<ibv_cq*, Cq> cqs_;                      // mu_
  std::map<uint32_t, QpState> qps_;                          // mu_: by qpn, dead ones kept
};

}  // namespace kvcached
