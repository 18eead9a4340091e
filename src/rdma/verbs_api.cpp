#include "rdma/verbs_api.h"

#include <sys/syscall.h>
#include <unistd.h>

#include <cerrno>
#include <fstream>
#include <string>

namespace kvcached {
namespace {

VerbsApi MakeRealVerbs() {
  VerbsApi v;
  v.get_device_list = [](int* num) { return ibv_get_device_list(num); };
  v.free_device_list = [](ibv_device** list) { ibv_free_device_list(list); };
  v.get_device_name = [](ibv_device* d) { return ibv_get_device_name(d); };
  v.open_device = [](ibv_device* d) { return ibv_open_device(d); };
  v.close_device = [](ibv_context* c) { return ibv_close_device(c); };
  v.query_device = [](ibv_context* c, ibv_device_attr* a) { return ibv_query_device(c, a); };
  v.query_port = [](ibv_context* c, uint8_t port, ibv_port_attr* a) {
    return ibv_query_port(c, port, a);
  };
  v.query_gid = [](ibv_context* c, uint8_t port, int index, ibv_gid* gid) {
    return ibv_query_gid(c, port, index, gid);
  };
  v.query_gid_type = [](ibv_context* c, uint8_t port, int index, ibv_gid_type* type) {
    ibv_gid_entry entry{};
    int rc = ibv_query_gid_ex(c, port, static_cast<uint32_t>(index), &entry, 0);
    if (rc == 0) *type = static_cast<ibv_gid_type>(entry.gid_type);
    return rc;
  };
  v.alloc_pd = [](ibv_context* c) { return ibv_alloc_pd(c); };
  v.dealloc_pd = [](ibv_pd* pd) { return ibv_dealloc_pd(pd); };
  v.reg_mr = [](ibv_pd* pd, void* addr, size_t length, int access) {
    return ibv_reg_mr(pd, addr, length, access);
  };
  v.dereg_mr = [](ibv_mr* mr) { return ibv_dereg_mr(mr); };
  v.create_comp_channel = [](ibv_context* c) { return ibv_create_comp_channel(c); };
  v.destroy_comp_channel = [](ibv_comp_channel* ch) { return ibv_destroy_comp_channel(ch); };
  v.create_cq = [](ibv_context* c, int cqe, void* cq_context, ibv_comp_channel* ch, int vec) {
    return ibv_create_cq(c, cqe, cq_context, ch, vec);
  };
  v.destroy_cq = [](ibv_cq* cq) { return ibv_destroy_cq(cq); };
  v.req_notify_cq = [](ibv_cq* cq, int solicited) { return ibv_req_notify_cq(cq, solicited); };
  v.get_cq_event = [](ibv_comp_channel* ch, ibv_cq** cq, void** ctx) {
    return ibv_get_cq_event(ch, cq, ctx);
  };
  v.ack_cq_events = [](ibv_cq* cq, unsigned int n) { ibv_ack_cq_events(cq, n); };
  v.poll_cq = [](ibv_cq* cq, int n, ibv_wc* wc) { return ibv_poll_cq(cq, n, wc); };
  v.create_qp = [](ibv_pd* pd, ibv_qp_init_attr* a) { return ibv_create_qp(pd, a); };
  v.modify_qp = [](ibv_qp* qp, ibv_qp_attr* a, int mask) { return ibv_modify_qp(qp, a, mask); };
  v.destroy_qp = [](ibv_qp* qp) { return ibv_destroy_qp(qp); };
  v.post_send = [](ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad) {
    return ibv_post_send(qp, wr, bad);
  };
  v.device_numa_node = [](const char* name) {
    std::ifstream in(std::string("/sys/class/infiniband/") + name + "/device/numa_node");
    int node = -1;
    return (in >> node) ? node : -1;
  };
  v.memory_numa_node = [](const void* addr) {
    // get_mempolicy(MPOL_F_NODE | MPOL_F_ADDR): the node of the page at
    // `addr` (faulted in: segments are committed when allocated).
    constexpr unsigned long kNodeOfAddress = 1 | 2;
    int node = -1;
    long rc = ::syscall(SYS_get_mempolicy, &node, nullptr, 0UL, addr, kNodeOfAddress);
    return rc == 0 ? node : -1;
  };
  return v;
}

}  // namespace

const VerbsApi& RealVerbs() {
  static const VerbsApi verbs = MakeRealVerbs();
  return verbs;
}

}  // namespace kvcached
