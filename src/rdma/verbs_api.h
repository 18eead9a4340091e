// VerbsApi: the table of libibverbs calls the RDMA transport makes, so that
// the transport's bookkeeping runs against a scripted fake in unit tests
// (tests/unit/fake_verbs.h) and against libibverbs in the product
// (RealVerbs()). Several verbs (ibv_post_send, ibv_poll_cq,
// ibv_req_notify_cq, ibv_query_port) are static inline in verbs.h, so link-
// time substitution cannot work; everything goes through this table.
// Each member has the signature and error convention of the ibv_* call it
// names (int results are 0 or an errno value; pointer results are null with
// errno set). The table itself is immutable after construction and may be
// used from any thread; what each call may do concurrently is libibverbs'
// contract (all of these are thread-safe there).
#pragma once

#include <infiniband/verbs.h>

#include <cstdint>
#include <functional>
#include <memory>

namespace kvcached {

struct VerbsApi {
  std::function<ibv_device**(int* num_devices)> get_device_list;
  std::function<void(ibv_device** list)> free_device_list;
  std::function<const char*(ibv_device* device)> get_device_name;
  std::function<ibv_context*(ibv_device* device)> open_device;
  std::function<int(ibv_context* context)> close_device;
  std::function<int(ibv_context* context, ibv_device_attr* attr)> query_device;
  std::function<int(ibv_context* context, uint8_t port, ibv_port_attr* attr)> query_port;
  std::function<int(ibv_context* context, uint8_t port, int index, ibv_gid* gid)> query_gid;
  // The GID's type (IBV_GID_TYPE_IB, _ROCE_V1, _ROCE_V2); ibv_query_gid_ex
  // underneath. Non-zero for an empty table entry.
  std::function<int(ibv_context* context, uint8_t port, int index, ibv_gid_type* type)>
      query_gid_type;
  std::function<ibv_pd*(ibv_context* context)> alloc_pd;
  std::function<int(ibv_pd* pd)> dealloc_pd;
  std::function<ibv_mr*(ibv_pd* pd, void* addr, size_t length, int access)> reg_mr;
  std::function<int(ibv_mr* mr)> dereg_mr;
  std::function<ibv_comp_channel*(ibv_context* context)> create_comp_channel;
  std::function<int(ibv_comp_channel* channel)> destroy_comp_channel;
  std::function<ibv_cq*(ibv_context* context, int cqe, void* cq_context, ibv_comp_channel* channel,
                        int comp_vector)>
      create_cq;
  std::function<int(ibv_cq* cq)> destroy_cq;
  std::function<int(ibv_cq* cq, int solicited_only)> req_notify_cq;
  // Returns 0 or -1 with errno (EAGAIN on a non-blocking channel with no event).
  std::function<int(ibv_comp_channel* channel, ibv_cq** cq, void** cq_context)> get_cq_event;
  std::function<void(ibv_cq* cq, unsigned int nevents)> ack_cq_events;
  // Returns the number of completions (>= 0) or a negative value on error.
  std::function<int(ibv_cq* cq, int num_entries, ibv_wc* wc)> poll_cq;
  std::function<ibv_qp*(ibv_pd* pd, ibv_qp_init_attr* attr)> create_qp;
  std::function<int(ibv_qp* qp, ibv_qp_attr* attr, int attr_mask)> modify_qp;
  std::function<int(ibv_qp* qp)> destroy_qp;
  std::function<int(ibv_qp* qp, ibv_send_wr* wr, ibv_send_wr** bad_wr)> post_send;
  // Not verbs, but the same kind of seam: the NUMA node a device hangs off
  // (sysfs) and the node backing an address (get_mempolicy); -1 unknown.
  std::function<int(const char* device_name)> device_numa_node;
  std::function<int(const void* addr)> memory_numa_node;
};

// The table over libibverbs. Never fails; on a host without RDMA the calls
// report no devices.
const VerbsApi& RealVerbs();

// Owning handles for verbs objects: each calls its destroy verb through the
// table the object came from. The table must outlive the handle.
template <typename T>
struct VerbsDeleter {
  const VerbsApi* verbs = nullptr;
  void operator()(T* object) const;
};
template <>
inline void VerbsDeleter<ibv_context>::operator()(ibv_context* o) const {
  verbs->close_device(o);
}
template <>
inline void VerbsDeleter<ibv_pd>::operator()(ibv_pd* o) const {
  verbs->dealloc_pd(o);
}
template <>
inline void VerbsDeleter<ibv_mr>::operator()(ibv_mr* o) const {
  verbs->dereg_mr(o);
}
template <>
inline void VerbsDeleter<ibv_comp_channel>::operator()(ibv_comp_channel* o) const {
  verbs->destroy_comp_channel(o);
}
template <>
inline void VerbsDeleter<ibv_cq>::operator()(ibv_cq* o) const {
  verbs->destroy_cq(o);
}
template <>
inline void VerbsDeleter<ibv_qp>::operator()(ibv_qp* o) const {
  verbs->destroy_qp(o);
}
template <>
inline void VerbsDeleter<ibv_device*>::operator()(ibv_device** o) const {
  verbs->free_device_list(o);
}

using ContextPtr = std::unique_ptr<ibv_context, VerbsDeleter<ibv_context>>;
using PdPtr = std::unique_ptr<ibv_pd, VerbsDeleter<ibv_pd>>;
using MrPtr = std::unique_ptr<ibv_mr, VerbsDeleter<ibv_mr>>;
using CompChannelPtr = std::unique_ptr<ibv_comp_channel, VerbsDeleter<ibv_comp_channel>>;
using CqPtr = std::unique_ptr<ibv_cq, VerbsDeleter<ibv_cq>>;
using QpPtr = std::unique_ptr<ibv_qp, VerbsDeleter<ibv_qp>>;
using DeviceListPtr = std::unique_ptr<ibv_device*, VerbsDeleter<ibv_device*>>;

}  // namespace kvcached
