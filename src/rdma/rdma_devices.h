// RDMA device discovery through libibverbs (for `kvcached --version` and
// logs). In a build without rdma-core (rdma_stub.cpp) the list is empty and
// the reason says so. A host without RDMA (ibv_get_device_list returning
// nothing, errno ENOSYS) is not an error: the caller gets an empty list and
// a reason to log. Goes through a VerbsApi table (RealVerbs() by default).
// Thread-safe.
#pragma once

#include <string>
#include <vector>

namespace kvcached {

struct VerbsApi;

struct RdmaDeviceInfo {
  std::string name;  // "mlx5_0", "rxe0"
  int ports = 0;
};

// Lists the verbs devices; when none, `why_none` (if given) says why.
std::vector<RdmaDeviceInfo> ListRdmaDevices(std::string* why_none = nullptr);
std::vector<RdmaDeviceInfo> ListRdmaDevices(const VerbsApi& verbs, std::string* why_none);

}  // namespace kvcached
