#include "rdma/rdma_devices.h"

#include <infiniband/verbs.h>

#include <cerrno>
#include <cstring>

namespace kvcached {

std::vector<RdmaDeviceInfo> ListRdmaDevices(std::string* why_none) {
  std::vector<RdmaDeviceInfo> out;
  int num = 0;
  errno = 0;
  ibv_device** list = ibv_get_device_list(&num);
  if (list == nullptr) {
    if (why_none != nullptr) {
      *why_none = errno == ENOSYS ? "the kernel has no RDMA support"
                                  : std::string("ibv_get_device_list: ") + std::strerror(errno);
    }
    return out;
  }
  for (int i = 0; i < num; ++i) {
    RdmaDeviceInfo info;
    info.name = ibv_get_device_name(list[i]);
    if (ibv_context* ctx = ibv_open_device(list[i])) {
      ibv_device_attr attr{};
      if (ibv_query_device(ctx, &attr) == 0) info.ports = attr.phys_port_cnt;
      ibv_close_device(ctx);
    }
    out.push_back(std::move(info));
  }
  ibv_free_device_list(list);
  if (out.empty() && why_none != nullptr) *why_none = "no RDMA devices found";
  return out;
}

}  // namespace kvcached
