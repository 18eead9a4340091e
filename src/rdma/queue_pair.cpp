#include "rdma/queue_pair.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <random>

namespace kvcached {
namespace {

uint32_t RandomPsn() {
  thread_local std::mt19937 rng(std::random_device{}());
  return rng() & 0xffffff;
}

bool IsZeroGid(const RdmaGid& gid) {
  return std::all_of(gid.begin(), gid.end(), [](uint8_t b) { return b == 0; });
}

}  // namespace

Result<std::unique_ptr<QueuePair>> QueuePair::Create(VerbsDevice& device, const Config& config) {
  using Out = Result<std::unique_ptr<QueuePair>>;
  const VerbsApi& verbs = device.verbs();
  std::unique_ptr<QueuePair> qp(new QueuePair(device));
  const ibv_device_attr& caps = device.attr();
  uint32_t max_wr = std::max<uint32_t>(1, config.max_send_wr);
  if (caps.max_qp_wr > 0)
    max_wr = std::min<uint32_t>(max_wr, static_cast<uint32_t>(caps.max_qp_wr));
  qp->max_send_wr_ = max_wr;

  if (config.shared_cq != nullptr) {
    qp->cq_ = config.shared_cq;
  } else {
    // Every work request may complete (errors and flushes are always
    // reported), so the CQ holds a full send queue and then some.
    int cqe = static_cast<int>(max_wr) + 16;
    if (caps.max_cqe > 0) cqe = std::min(cqe, caps.max_cqe);
    errno = 0;
    qp->own_cq_ =
        CqPtr(verbs.create_cq(device.context(), cqe, config.cq_context, config.channel, 0),
              VerbsDeleter<ibv_cq>{&verbs});
    if (qp->own_cq_ == nullptr) {
      return Out(ErrorCode::TRANSFER_FAIL,
                 "ibv_create_cq on " + device.name() + ": " + std::strerror(errno));
    }
    qp->cq_ = qp->own_cq_.get();
    if (config.channel != nullptr) {
      if (int rc = verbs.req_notify_cq(qp->cq_, 0); rc != 0) {
        return Out(ErrorCode::TRANSFER_FAIL,
                   "ibv_req_notify_cq on " + device.name() + ": " + std::strerror(rc));
      }
    }
  }

  ibv_qp_init_attr init{};
  init.send_cq = qp->cq_;
  init.recv_cq = qp->cq_;
  init.qp_type = IBV_QPT_RC;
  init.sq_sig_all = 0;  // selective signalling
  init.cap.max_send_wr = max_wr;
  init.cap.max_recv_wr = 1;
  init.cap.max_send_sge = 1;
  init.cap.max_recv_sge = 1;
  errno = 0;
  qp->qp_ = QpPtr(verbs.create_qp(device.pd(), &init), VerbsDeleter<ibv_qp>{&verbs});
  if (qp->qp_ == nullptr) {
    return Out(ErrorCode::TRANSFER_FAIL,
               "ibv_create_qp on " + device.name() + ": " + std::strerror(errno));
  }
  qp->local_.qpn = qp->qp_->qp_num;
  qp->local_.psn = RandomPsn();
  qp->local_.gid = device.gid();
  qp->local_.lid = device.lid();
  qp->local_.mtu = static_cast<uint8_t>(device.active_mtu());
  return qp;
}

QueuePair::~QueuePair() {
  qp_.reset();
  own_cq_.reset();
}

Status QueuePair::Modify(ibv_qp_attr& attr, int mask, const char* state) {
  if (int rc = device_->verbs().modify_qp(qp_.get(), &attr, mask); rc != 0) {
    return Status(ErrorCode::TRANSFER_FAIL,
                  std::string("ibv_modify_qp to ") + state + " on " + device_->name() + " (QP " +
                      std::to_string(local_.qpn) + "): " + std::strerror(rc));
  }
  return Status::Ok();
}

Status QueuePair::Connect(int access, const RdmaQpParams& peer) {
  if (peer.mtu < IBV_MTU_256 || peer.mtu > IBV_MTU_4096 || peer.qpn == 0 || peer.qpn > 0xffffff) {
    return Status(ErrorCode::INVALID_PARAMS, "peer queue-pair parameters are invalid (qpn " +
                                                 std::to_string(peer.qpn) + ", mtu " +
                                                 std::to_string(peer.mtu) + ")");
  }
  const ibv_device_attr& caps = device_->attr();
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_INIT;
  attr.pkey_index = 0;
  attr.port_num = device_->port();
  attr.qp_access_flags = access;
  Status s =
      Modify(attr, IBV_QP_STATE | IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS, "INIT");
  if (!s.ok()) return s;

  attr = {};
  attr.qp_state = IBV_QPS_RTR;
  attr.path_mtu = static_cast<ibv_mtu>(std::min<uint8_t>(local_.mtu, peer.mtu));
  attr.dest_qp_num = peer.qpn;
  attr.rq_psn = peer.psn & 0xffffff;
  attr.max_dest_rd_atomic = static_cast<uint8_t>(
      caps.max_qp_rd_atom > 0 ? std::min(kWantedRdAtomic, caps.max_qp_rd_atom) : kWantedRdAtomic);
  attr.min_rnr_timer = kQpMinRnrTimer;
  attr.ah_attr.port_num = device_->port();
  attr.ah_attr.dlid = peer.lid;
  attr.ah_attr.sl = 0;
  attr.ah_attr.src_path_bits = 0;
  // RoCE is routed by GID only; InfiniBand uses the LID unless the peer
  // has none.
  if (device_->ethernet() || peer.lid == 0) {
    if (IsZeroGid(peer.gid)) {
      return Status(ErrorCode::INVALID_PARAMS, "peer has neither GID nor LID");
    }
    attr.ah_attr.is_global = 1;
    std::memcpy(attr.ah_attr.grh.dgid.raw, peer.gid.data(), peer.gid.size());
    attr.ah_attr.grh.sgid_index = static_cast<uint8_t>(device_->gid_index());
    attr.ah_attr.grh.hop_limit = kQpHopLimit;
    attr.ah_attr.grh.traffic_class = 0;
    attr.ah_attr.grh.flow_label = 0;
  }
  s = Modify(attr,
             IBV_QP_STATE | IBV_QP_AV | IBV_QP_PATH_MTU | IBV_QP_DEST_QPN | IBV_QP_RQ_PSN |
                 IBV_QP_MAX_DEST_RD_ATOMIC | IBV_QP_MIN_RNR_TIMER,
             "RTR");
  if (!s.ok()) return s;
  const int path_mtu = attr.path_mtu;

  attr = {};
  attr.qp_state = IBV_QPS_RTS;
  attr.timeout = kQpTimeout;
  attr.retry_cnt = kQpRetryCount;
  attr.rnr_retry = kQpRnrRetry;
  attr.sq_psn = local_.psn;
  attr.max_rd_atomic = static_cast<uint8_t>(
      caps.max_qp_init_rd_atom > 0 ? std::min(kWantedRdAtomic, caps.max_qp_init_rd_atom)
                                   : kWantedRdAtomic);
  s = Modify(attr,
             IBV_QP_STATE | IBV_QP_TIMEOUT | IBV_QP_RETRY_CNT | IBV_QP_RNR_RETRY | IBV_QP_SQ_PSN |
                 IBV_QP_MAX_QP_RD_ATOMIC,
             "RTS");
  if (!s.ok()) return s;
  SPDLOG_DEBUG("RDMA QP {} on {} port {} connected to QP {} ({}), mtu {}", local_.qpn,
               device_->name(), device_->port(), peer.qpn, FormatGid(peer.gid), path_mtu);
  return Status::Ok();
}

void QueuePair::ToError() {
  ibv_qp_attr attr{};
  attr.qp_state = IBV_QPS_ERR;
  (void)device_->verbs().modify_qp(qp_.get(), &attr, IBV_QP_STATE);
}

}  // namespace kvcached
