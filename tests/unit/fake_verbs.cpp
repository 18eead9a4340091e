#include "fake_verbs.h"

#include <arpa/inet.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <stdexcept>

namespace kvcached {

RdmaGid FakeGid(const std::string& text) {
  RdmaGid gid{};
  if (inet_pton(AF_INET6, text.c_str(), gid.data()) != 1) {
    throw std::invalid_argument("bad GID " + text);
  }
  return gid;
}

FakeDeviceSpec FakeRoceDevice(const std::string& name, const std::string& ipv4) {
  FakeDeviceSpec spec;
  spec.name = name;
  FakePortSpec port;
  port.gids = {{FakeGid("fe80::1"), IBV_GID_TYPE_ROCE_V1},
               {FakeGid("fe80::1"), IBV_GID_TYPE_ROCE_V2},
               {FakeGid("::ffff:" + ipv4), IBV_GID_TYPE_ROCE_V1},
               {FakeGid("::ffff:" + ipv4), IBV_GID_TYPE_ROCE_V2}};
  spec.ports.push_back(port);
  return spec;
}

FakeVerbs::FakeVerbs(std::vector<FakeDeviceSpec> devices) : specs_(std::move(devices)) {
  for (size_t i = 0; i < specs_.size(); ++i) devices_.push_back(new ibv_device());
  api_ = MakeApi();
}

FakeVerbs::~FakeVerbs() {
  // Whatever the code under test leaked: free it so ASan reports only the
  // real leaks (tests check the Live*() counts instead).
  for (auto& [qpn, qp] : qps_) {
    if (qp.info.alive) delete qp.qp;
  }
  for (auto& [key, mr] : mrs_) delete mr.mr;
  for (auto& [cq, state] : cqs_) delete cq;
  for (auto& [ch, state] : channels_) {
    close(ch->fd);
    delete ch;
  }
  for (auto& [ctx, index] : contexts_) delete ctx;
  for (ibv_device* d : devices_) delete d;
}

void FakeVerbs::SetNoDevices(int err) {
  std::lock_guard<std::mutex> lock(mu_);
  no_devices_errno_ = err;
}
void FakeVerbs::FailPostNumber(uint64_t n, int err) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_post_at_ = post_calls_ + n;
  fail_post_errno_ = err;
}
void FakeVerbs::FailWrNumber(uint64_t n, ibv_wc_status status) {
  std::lock_guard<std::mutex> lock(mu_);
  fail_wr_at_ = wrs_executed_ + n;
  fail_wr_status_ = status;
}
void FakeVerbs::SetMaxRegBytes(uint64_t bytes, int err) {
  std::lock_guard<std::mutex> lock(mu_);
  max_reg_bytes_ = bytes;
  max_reg_errno_ = err;
}
void FakeVerbs::SetHold(bool hold) {
  std::lock_guard<std::mutex> lock(mu_);
  hold_ = hold;
}
void FakeVerbs::ForceQpError(uint32_t qpn) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = qps_.find(qpn);
  if (it != qps_.end() && it->second.info.alive) EnterState(it->second, IBV_QPS_ERR);
}

std::vector<FakeVerbs::QpInfo> FakeVerbs::Qps() const {
  std::lock_guard<std::mutex> lock(mu_);
  std::vector<QpInfo> out;
  for (const auto& [qpn, qp] : qps_) out.push_back(qp.info);
  return out;
}
std::optional<FakeVerbs::QpInfo> FakeVerbs::Qp(uint32_t qpn) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = qps_.find(qpn);
  if (it == qps_.end()) return std::nullopt;
  return it->second.info;
}
size_t FakeVerbs::LiveQps() const {
  std::lock_guard<std::mutex> lock(mu_);
  size_t n = 0;
  for (const auto& [qpn, qp] : qps_) n += qp.info.alive;
  return n;
}
size_t FakeVerbs::LiveMrs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return mrs_.size();
}
size_t FakeVerbs::LiveCqs() const {
  std::lock_guard<std::mutex> lock(mu_);
  return cqs_.size();
}
size_t FakeVerbs::LiveContexts() const {
  std::lock_guard<std::mutex> lock(mu_);
  return contexts_.size();
}
uint64_t FakeVerbs::PostCalls() const {
  std::lock_guard<std::mutex> lock(mu_);
  return post_calls_;
}
uint64_t FakeVerbs::WrsExecuted() const {
  std::lock_guard<std::mutex> lock(mu_);
  return wrs_executed_;
}
uint64_t FakeVerbs::Held() const {
  std::lock_guard<std::mutex> lock(mu_);
  uint64_t n = 0;
  for (const auto& [qpn, qp] : qps_) n += qp.held.size();
  return n;
}

const FakeVerbs::Mr* FakeVerbs::FindMr(uint32_t key, bool remote) const {
  auto it = mrs_.find(key);
  return it == mrs_.end() ? nullptr : &it->second;
}

void FakeVerbs::Complete(QpState& qp, const ibv_send_wr& wr, ibv_wc_status status) {
  const bool signalled = (wr.send_flags & IBV_SEND_SIGNALED) != 0 || qp.qp->qp_type != IBV_QPT_RC;
  if (status == IBV_WC_SUCCESS && !signalled) {
    qp.unsignalled++;
    return;
  }
  ibv_wc wc{};
  wc.wr_id = wr.wr_id;
  wc.status = status;
  wc.opcode = wr.opcode == IBV_WR_RDMA_READ ? IBV_WC_RDMA_READ : IBV_WC_RDMA_WRITE;
  wc.qp_num = qp.info.qpn;
  wc.byte_len = wr.num_sge > 0 ? wr.sg_list[0].length : 0;
  wc.vendor_err = status == IBV_WC_SUCCESS ? 0 : 0x42;
  Cq& cq = cqs_.at(qp.qp->send_cq);
  cq.entries.emplace_back(wc, qp.unsignalled + 1);
  qp.unsignalled = 0;
  if (cq.armed && cq.channel != nullptr) {
    cq.armed = false;
    Channel& ch = channels_.at(cq.channel);
    ch.events.push_back(cq.cq);
    uint64_t one = 1;
    ssize_t n = write(ch.channel->fd, &one, sizeof one);
    (void)n;
  }
}

void FakeVerbs::FlushHeld(QpState& qp) {
  while (!qp.held.empty()) {
    HeldWr h = qp.held.front();
    qp.held.pop_front();
    h.wr.sg_list = &h.sge;
    h.wr.send_flags |= IBV_SEND_SIGNALED;  // flushed work always completes
    Complete(qp, h.wr, IBV_WC_WR_FLUSH_ERR);
  }
}

void FakeVerbs::EnterState(QpState& qp, ibv_qp_state state) {
  qp.info.state = state;
  qp.qp->state = state;
  qp.info.history.push_back(state);
  if (state == IBV_QPS_ERR) FlushHeld(qp);
}

ibv_wc_status FakeVerbs::Execute(QpState& qp, const ibv_send_wr& wr) {
  wrs_executed_++;
  qp.info.wrs_executed++;
  if (fail_wr_at_ != 0 && wrs_executed_ == fail_wr_at_) return fail_wr_status_;
  if (wr.opcode != IBV_WR_RDMA_WRITE && wr.opcode != IBV_WR_RDMA_READ) return IBV_WC_LOC_QP_OP_ERR;
  if (wr.num_sge != 1) return IBV_WC_LOC_LEN_ERR;
  const ibv_sge& sge = wr.sg_list[0];
  const bool read = wr.opcode == IBV_WR_RDMA_READ;
  const Mr* local = FindMr(sge.lkey, false);
  if (local == nullptr || local->pd != qp.qp->pd || sge.addr < local->addr ||
      sge.addr + sge.length > local->addr + local->length ||
      (read && !(local->access & IBV_ACCESS_LOCAL_WRITE))) {
    return IBV_WC_LOC_PROT_ERR;
  }
  auto peer_it = qps_.find(qp.dest_qpn);
  if (peer_it == qps_.end() || !peer_it->second.info.alive ||
      (peer_it->second.info.state != IBV_QPS_RTR && peer_it->second.info.state != IBV_QPS_RTS) ||
      peer_it->second.dest_qpn != qp.info.qpn) {
    return IBV_WC_RETRY_EXC_ERR;  // nobody answers
  }
  QpState& peer = peer_it->second;
  const Mr* remote = FindMr(wr.wr.rdma.rkey, true);
  const int need = read ? IBV_ACCESS_REMOTE_READ : IBV_ACCESS_REMOTE_WRITE;
  if (remote == nullptr || remote->pd != peer.qp->pd || wr.wr.rdma.remote_addr < remote->addr ||
      wr.wr.rdma.remote_addr + sge.length > remote->addr + remote->length ||
      !(remote->access & need) || !(peer.info.access & need)) {
    return IBV_WC_REM_ACCESS_ERR;
  }
  auto* l = reinterpret_cast<uint8_t*>(sge.addr);
  auto* r = reinterpret_cast<uint8_t*>(wr.wr.rdma.remote_addr);
  if (read) {
    std::memmove(l, r, sge.length);
  } else {
    std::memmove(r, l, sge.length);
  }
  return IBV_WC_SUCCESS;
}

int FakeVerbs::PostLocked(ibv_qp* ibqp, ibv_send_wr* wr, ibv_send_wr** bad) {
  post_calls_++;
  QpState& qp = qps_.at(ibqp->qp_num);
  if (fail_post_at_ != 0 && post_calls_ == fail_post_at_) {
    *bad = wr;
    return fail_post_errno_;
  }
  if (qp.info.state != IBV_QPS_RTS && qp.info.state != IBV_QPS_ERR) {
    *bad = wr;
    return EINVAL;
  }
  uint32_t count = 0;
  for (ibv_send_wr* w = wr; w != nullptr; w = w->next) count++;
  if (qp.occupancy + count > qp.info.max_send_wr) {
    *bad = wr;
    return ENOMEM;
  }
  qp.occupancy += count;
  for (ibv_send_wr* w = wr; w != nullptr; w = w->next) {
    if (qp.info.state == IBV_QPS_ERR) {
      ibv_send_wr copy = *w;
      copy.send_flags |= IBV_SEND_SIGNALED;
      Complete(qp, copy, IBV_WC_WR_FLUSH_ERR);
      continue;
    }
    if (hold_) {
      HeldWr h{*w, w->num_sge > 0 ? w->sg_list[0] : ibv_sge{}};
      h.wr.next = nullptr;
      qp.held.push_back(h);
      continue;
    }
    ibv_wc_status status = Execute(qp, *w);
    if (status != IBV_WC_SUCCESS) {
      ibv_send_wr copy = *w;
      copy.send_flags |= IBV_SEND_SIGNALED;  // errors always complete
      Complete(qp, copy, status);
      EnterState(qp, IBV_QPS_ERR);
      continue;
    }
    Complete(qp, *w, IBV_WC_SUCCESS);
  }
  return 0;
}

VerbsApi FakeVerbs::MakeApi() {
  VerbsApi v;
  v.get_device_list = [this](int* num) -> ibv_device** {
    std::lock_guard<std::mutex> lock(mu_);
    if (no_devices_errno_ != 0) {
      if (num) *num = 0;
      errno = no_devices_errno_;
      return nullptr;
    }
    auto** list = new ibv_device*[devices_.size() + 1];
    for (size_t i = 0; i < devices_.size(); ++i) list[i] = devices_[i];
    list[devices_.size()] = nullptr;
    if (num) *num = static_cast<int>(devices_.size());
    return list;
  };
  v.free_device_list = [](ibv_device** list) { delete[] list; };
  v.device_numa_node = [this](const char* name) {
    for (const FakeDeviceSpec& spec : specs_) {
      if (spec.name == name) return spec.numa_node;
    }
    return -1;
  };
  v.memory_numa_node = [this](const void*) { return memory_node_.load(); };
  v.get_device_name = [this](ibv_device* d) -> const char* {
    for (size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i] == d) return specs_[i].name.c_str();
    }
    return nullptr;
  };
  v.open_device = [this](ibv_device* d) -> ibv_context* {
    std::lock_guard<std::mutex> lock(mu_);
    for (size_t i = 0; i < devices_.size(); ++i) {
      if (devices_[i] != d) continue;
      auto* ctx = new ibv_context();
      ctx->device = d;
      ctx->num_comp_vectors = 1;
      contexts_[ctx] = i;
      return ctx;
    }
    errno = ENODEV;
    return nullptr;
  };
  v.close_device = [this](ibv_context* ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    contexts_.erase(ctx);
    delete ctx;
    return 0;
  };
  v.query_device = [this](ibv_context* ctx, ibv_device_attr* attr) {
    std::lock_guard<std::mutex> lock(mu_);
    const FakeDeviceSpec& spec = specs_[contexts_.at(ctx)];
    *attr = ibv_device_attr{};
    attr->phys_port_cnt = static_cast<uint8_t>(spec.ports.size());
    attr->max_mr_size = spec.max_mr_size;
    attr->max_qp_wr = spec.max_qp_wr;
    attr->max_qp_rd_atom = spec.max_qp_rd_atom;
    attr->max_qp_init_rd_atom = spec.max_qp_rd_atom;
    attr->max_cqe = spec.max_cqe;
    attr->max_sge = 30;
    return 0;
  };
  v.query_port = [this](ibv_context* ctx, uint8_t port, ibv_port_attr* attr) {
    std::lock_guard<std::mutex> lock(mu_);
    const FakeDeviceSpec& spec = specs_[contexts_.at(ctx)];
    if (port < 1 || port > spec.ports.size()) return EINVAL;
    const FakePortSpec& p = spec.ports[port - 1];
    *attr = ibv_port_attr{};
    attr->state = p.active ? IBV_PORT_ACTIVE : IBV_PORT_DOWN;
    attr->active_mtu = p.mtu;
    attr->max_mtu = IBV_MTU_4096;
    attr->link_layer = p.link_layer;
    attr->lid = p.lid;
    attr->gid_tbl_len = static_cast<int>(p.gids.size());
    return 0;
  };
  v.query_gid = [this](ibv_context* ctx, uint8_t port, int index, ibv_gid* gid) {
    std::lock_guard<std::mutex> lock(mu_);
    const FakeDeviceSpec& spec = specs_[contexts_.at(ctx)];
    if (port < 1 || port > spec.ports.size()) return EINVAL;
    const FakePortSpec& p = spec.ports[port - 1];
    if (index < 0 || static_cast<size_t>(index) >= p.gids.size()) return EINVAL;
    std::memcpy(gid->raw, p.gids[index].gid.data(), 16);
    return 0;
  };
  v.query_gid_type = [this](ibv_context* ctx, uint8_t port, int index, ibv_gid_type* type) {
    std::lock_guard<std::mutex> lock(mu_);
    const FakeDeviceSpec& spec = specs_[contexts_.at(ctx)];
    if (port < 1 || port > spec.ports.size()) return EINVAL;
    const FakePortSpec& p = spec.ports[port - 1];
    if (index < 0 || static_cast<size_t>(index) >= p.gids.size()) return EINVAL;
    *type = p.gids[index].type;
    return 0;
  };
  v.alloc_pd = [](ibv_context* ctx) {
    auto* pd = new ibv_pd();
    pd->context = ctx;
    return pd;
  };
  v.dealloc_pd = [](ibv_pd* pd) {
    delete pd;
    return 0;
  };
  v.reg_mr = [this](ibv_pd* pd, void* addr, size_t length, int access) -> ibv_mr* {
    std::lock_guard<std::mutex> lock(mu_);
    const FakeDeviceSpec& spec = specs_[contexts_.at(pd->context)];
    if (max_reg_bytes_ != 0 && length > max_reg_bytes_) {
      errno = max_reg_errno_;
      return nullptr;
    }
    if (length == 0 || length > spec.max_mr_size) {
      errno = EINVAL;
      return nullptr;
    }
    auto* mr = new ibv_mr();
    mr->context = pd->context;
    mr->pd = pd;
    mr->addr = addr;
    mr->length = length;
    mr->lkey = mr->rkey = next_key_++;
    mrs_[mr->lkey] = Mr{mr, pd, reinterpret_cast<uint64_t>(addr), length, access};
    return mr;
  };
  v.dereg_mr = [this](ibv_mr* mr) {
    std::lock_guard<std::mutex> lock(mu_);
    mrs_.erase(mr->lkey);
    delete mr;
    return 0;
  };
  v.create_comp_channel = [this](ibv_context* ctx) -> ibv_comp_channel* {
    std::lock_guard<std::mutex> lock(mu_);
    auto* ch = new ibv_comp_channel();
    ch->context = ctx;
    ch->fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    Channel state;
    state.channel = ch;
    channels_[ch] = std::move(state);
    return ch;
  };
  v.destroy_comp_channel = [this](ibv_comp_channel* ch) {
    std::lock_guard<std::mutex> lock(mu_);
    channels_.erase(ch);
    close(ch->fd);
    delete ch;
    return 0;
  };
  v.create_cq = [this](ibv_context* ctx, int cqe, void* cq_context, ibv_comp_channel* ch,
                       int) -> ibv_cq* {
    std::lock_guard<std::mutex> lock(mu_);
    auto* cq = new ibv_cq();
    cq->context = ctx;
    cq->channel = ch;
    cq->cq_context = cq_context;
    cq->cqe = cqe;
    Cq state;
    state.cq = cq;
    state.channel = ch;
    cqs_[cq] = std::move(state);
    return cq;
  };
  v.destroy_cq = [this](ibv_cq* cq) {
    std::lock_guard<std::mutex> lock(mu_);
    Cq& state = cqs_.at(cq);
    if (state.channel != nullptr) {
      // As the kernel does: events not yet read for this CQ go with it.
      auto& events = channels_.at(state.channel).events;
      for (auto it = events.begin(); it != events.end();) {
        it = *it == cq ? events.erase(it) : it + 1;
      }
    }
    cqs_.erase(cq);
    delete cq;
    return 0;
  };
  v.req_notify_cq = [this](ibv_cq* cq, int) {
    std::lock_guard<std::mutex> lock(mu_);
    cqs_.at(cq).armed = true;
    return 0;
  };
  v.get_cq_event = [this](ibv_comp_channel* ch, ibv_cq** cq, void** ctx) {
    std::lock_guard<std::mutex> lock(mu_);
    Channel& state = channels_.at(ch);
    if (state.events.empty()) {
      uint64_t value;
      ssize_t n = read(ch->fd, &value, sizeof value);  // reset the eventfd
      (void)n;
      errno = EAGAIN;
      return -1;
    }
    *cq = state.events.front();
    *ctx = (*cq)->cq_context;
    state.events.pop_front();
    return 0;
  };
  v.ack_cq_events = [](ibv_cq*, unsigned int) {};
  v.poll_cq = [this](ibv_cq* cq, int n, ibv_wc* wc) {
    std::lock_guard<std::mutex> lock(mu_);
    Cq& state = cqs_.at(cq);
    int got = 0;
    while (got < n && !state.entries.empty()) {
      auto [entry, slots] = state.entries.front();
      state.entries.pop_front();
      auto it = qps_.find(entry.qp_num);
      if (it != qps_.end()) it->second.occupancy -= std::min(it->second.occupancy, slots);
      wc[got++] = entry;
    }
    return got;
  };
  v.create_qp = [this](ibv_pd* pd, ibv_qp_init_attr* attr) -> ibv_qp* {
    std::lock_guard<std::mutex> lock(mu_);
    const FakeDeviceSpec& spec = specs_[contexts_.at(pd->context)];
    if (attr->qp_type != IBV_QPT_RC || attr->send_cq == nullptr ||
        attr->cap.max_send_wr > static_cast<uint32_t>(spec.max_qp_wr)) {
      errno = EINVAL;
      return nullptr;
    }
    auto* qp = new ibv_qp();
    qp->context = pd->context;
    qp->pd = pd;
    qp->send_cq = attr->send_cq;
    qp->recv_cq = attr->recv_cq;
    qp->qp_type = attr->qp_type;
    qp->qp_num = next_qpn_++;
    qp->state = IBV_QPS_RESET;
    QpState state;
    state.qp = qp;
    state.info.qpn = qp->qp_num;
    state.info.device = spec.name;
    state.info.max_send_wr = attr->cap.max_send_wr;
    state.info.history.push_back(IBV_QPS_RESET);
    qps_[qp->qp_num] = std::move(state);
    return qp;
  };
  v.modify_qp = [this](ibv_qp* ibqp, ibv_qp_attr* attr, int mask) {
    std::lock_guard<std::mutex> lock(mu_);
    QpState& qp = qps_.at(ibqp->qp_num);
    if (!(mask & IBV_QP_STATE)) return EINVAL;
    const ibv_qp_state from = qp.info.state;
    const ibv_qp_state to = attr->qp_state;
    switch (to) {
      case IBV_QPS_INIT:
        if (from != IBV_QPS_RESET && from != IBV_QPS_INIT) return EINVAL;
        if ((mask & (IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) !=
            (IBV_QP_PKEY_INDEX | IBV_QP_PORT | IBV_QP_ACCESS_FLAGS)) {
          return EINVAL;
        }
        qp.info.access = attr->qp_access_flags;
        break;
      case IBV_QPS_RTR:
        if (from != IBV_QPS_INIT) return EINVAL;
        if (!(mask & IBV_QP_DEST_QPN) || !(mask & IBV_QP_AV) || !(mask & IBV_QP_PATH_MTU)) {
          return EINVAL;
        }
        qp.dest_qpn = attr->dest_qp_num;
        qp.info.rtr = *attr;
        qp.info.rtr_mask = mask;
        break;
      case IBV_QPS_RTS:
        if (from != IBV_QPS_RTR) return EINVAL;
        qp.info.rts = *attr;
        qp.info.rts_mask = mask;
        break;
      case IBV_QPS_ERR:
      case IBV_QPS_RESET:
        break;
      default:
        return EINVAL;
    }
    EnterState(qp, to);
    return 0;
  };
  v.destroy_qp = [this](ibv_qp* ibqp) {
    std::lock_guard<std::mutex> lock(mu_);
    QpState& qp = qps_.at(ibqp->qp_num);
    qp.held.clear();
    qp.info.alive = false;
    delete ibqp;
    qp.qp = nullptr;
    return 0;
  };
  v.post_send = [this](ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
    std::lock_guard<std::mutex> lock(mu_);
    return PostLocked(qp, wr, bad);
  };
  return v;
}

}  // namespace kvcached
