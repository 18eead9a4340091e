#include "rdma/rdma_devices.h"

#include <cerrno>
#include <cstring>

#include "rdma/verbs_api.h"

namespace kvcached {

std::vector<RdmaDeviceInfo> ListRdmaDevices(std::string* why_none) {
  return ListRdmaDevices(RealVerbs(), why_none);
}

std::vector<RdmaDeviceInfo> ListRdmaDevices(const VerbsApi& verbs, std::string* why_none) {
  std::vector<RdmaDeviceInfo> out;
  int num = 0;
  errno = 0;
  DeviceListPtr list(verbs.get_device_list(&num), VerbsDeleter<ibv_device*>{&verbs});
  const int err = errno;
  if (list == nullptr) num = 0;
  for (int i = 0; i < num; ++i) {
    RdmaDeviceInfo info;
    info.name = verbs.get_device_name(list.get()[i]);
    ContextPtr ctx(verbs.open_device(list.get()[i]), VerbsDeleter<ibv_context>{&verbs});
    if (ctx != nullptr) {
      ibv_device_attr attr{};
      if (verbs.query_device(ctx.get(), &attr) == 0) info.ports = attr.phys_port_cnt;
    }
    out.push_back(std::move(info));
  }
  if (out.empty() && why_none != nullptr) {
    *why_none =
        err != 0 ? std::string("no RDMA devices (ibv_get_device_list: ") + std::strerror(err) + ")"
                 : "no RDMA devices found";
  }
  return out;
}

}  // namespace kvcached
