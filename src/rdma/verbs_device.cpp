#include "rdma/verbs_device.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvcached {
namespace {

struct DeviceSpec {
  std::string name;
  int port = 0;  // 0: every active port
};

Result<std::vector<DeviceSpec>> ParseSpecs(const std::vector<std::string>& names) {
  std::vector<DeviceSpec> out;
  for (const std::string& raw : names) {
    if (raw.empty()) continue;
    DeviceSpec spec;
    size_t colon = raw.find(':');
    spec.name = raw.substr(0, colon);
    if (colon != std::string::npos) {
      std::string port = raw.substr(colon + 1);
      char* end = nullptr;
      long value = std::strtol(port.c_str(), &end, 10);
      if (port.empty() || *end != '\0' || value < 1 || value > 255) {
        return Result<std::vector<DeviceSpec>>(ErrorCode::INVALID_PARAMS,
                                               "RDMA device '" + raw + "': port must be 1..255");
      }
      spec.port = static_cast<int>(value);
    }
    out.push_back(std::move(spec));
  }
  return out;
}

bool IsZero(const RdmaGid& gid) {
  return std::all_of(gid.begin(), gid.end(), [](uint8_t b) { return b == 0; });
}

bool IsIpv4Mapped(const RdmaGid& gid) {
  for (int i = 0; i < 10; ++i) {
    if (gid[i] != 0) return false;
  }
  return gid[10] == 0xff && gid[11] == 0xff;
}

const char* MtuText(ibv_mtu mtu) {
  switch (mtu) {
    case IBV_MTU_256:
      return "256";
    case IBV_MTU_512:
      return "512";
    case IBV_MTU_1024:
      return "1024";
    case IBV_MTU_2048:
      return "2048";
    case IBV_MTU_4096:
      return "4096";
  }
  return "?";
}

// The device list and, when it holds nothing, why.
struct DeviceList {
  DeviceListPtr devices;
  int num = 0;
  std::string why;
};

DeviceList ListDevices(const VerbsApi& verbs) {
  int num = 0;
  errno = 0;
  DeviceListPtr list(verbs.get_device_list(&num), VerbsDeleter<ibv_device*>{&verbs});
  const int list_errno = errno;
  if (list == nullptr) num = 0;
  std::string why = "no RDMA devices";
  if (num == 0 && list_errno != 0) {
    why += std::string(" (ibv_get_device_list: ") + std::strerror(list_errno) + ")";
  }
  return DeviceList{std::move(list), num, std::move(why)};
}

// The last device of that name, or null.
ibv_device* FindDevice(const VerbsApi& verbs, const DeviceList& list, const std::string& name) {
  ibv_device* device = nullptr;
  for (int i = 0; i < list.num; ++i) {
    if (name == verbs.get_device_name(list.devices.get()[i])) device = list.devices.get()[i];
  }
  return device;
}

// Which (device, port) pairs to try: the named ones, each of which must be
// listed, or every listed device's ports.
Result<std::vector<DeviceSpec>> WantedDevices(const VerbsApi& verbs, const DeviceList& list,
                                              const std::vector<DeviceSpec>& specs) {
  std::vector<DeviceSpec> wanted;
  if (!specs.empty()) {
    for (const DeviceSpec& spec : specs) {
      if (FindDevice(verbs, list, spec.name) == nullptr) {
        return Result<std::vector<DeviceSpec>>(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE,
                                               "RDMA device '" + spec.name + "' not found" +
                                                   (list.num == 0 ? " (" + list.why + ")" : ""));
      }
      wanted.push_back(spec);
    }
  } else {
    for (int i = 0; i < list.num; ++i) {
      wanted.push_back({verbs.get_device_name(list.devices.get()[i]), 0});
    }
  }
  return wanted;
}

Status DeviceUnavailable(const std::string& name, const std::string& what) {
  return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE, "RDMA device '" + name + "': " + what);
}

struct ChosenGid {
  int index = -1;
  int score = -1;
  RdmaGid gid{};
};

// The override `gid_index` when it is >= 0, else the best entry of the
// port's table by GidPreference.
ChosenGid ChooseGid(const VerbsApi& verbs, ibv_context* context, uint8_t port, int gid_tbl_len,
                    int gid_index) {
  ChosenGid best;
  for (int index = 0; index < gid_tbl_len; ++index) {
    if (gid_index >= 0 && index != gid_index) continue;
    ibv_gid gid{};
    if (verbs.query_gid(context, port, index, &gid) != 0) continue;
    RdmaGid g;
    std::memcpy(g.data(), gid.raw, g.size());
    ibv_gid_type type = IBV_GID_TYPE_IB;
    bool known = verbs.query_gid_type(context, port, index, &type) == 0;
    int score = GidPreference(g, known, type);
    if (score > best.score) {
      best.index = index;
      best.score = score;
      best.gid = g;
    }
  }
  return best;
}

}  // namespace

int GidPreference(const RdmaGid& gid, bool known_type, ibv_gid_type type) {
  if (IsZero(gid)) return -1;
  bool v2 = known_type && type == IBV_GID_TYPE_ROCE_V2;
  bool mapped = IsIpv4Mapped(gid);
  if (v2 && mapped) return 4;
  if (v2) return 3;
  if (mapped) return 2;
  return 1;
}

VerbsDevice::~VerbsDevice() {
  pd_.reset();
  context_.reset();
}

struct VerbsDevice::OpenRequest {
  const VerbsApi& verbs;
  const RdmaOptions& options;
  // Devices were named: a device or port that cannot be used is an error,
  // where discovery skips it with a warning.
  bool named = false;
  bool log_opened = false;
};

Result<std::vector<std::unique_ptr<VerbsDevice>>> OpenVerbsDevices(const VerbsApi& verbs,
                                                                   const RdmaOptions& options,
                                                                   std::string* why_none,
                                                                   bool log_opened) {
  auto specs = ParseSpecs(options.devices);
  if (!specs.ok()) return specs.status();
  const VerbsDevice::OpenRequest request{verbs, options, !specs->empty(), log_opened};
  const DeviceList list = ListDevices(verbs);
  auto wanted = WantedDevices(verbs, list, *specs);
  if (!wanted.ok()) return wanted.status();
  std::vector<std::unique_ptr<VerbsDevice>> out;
  for (const DeviceSpec& spec : *wanted) {
    Status opened = VerbsDevice::OpenPorts(request, FindDevice(verbs, list, spec.name), spec.name,
                                           spec.port, out);
    if (!opened.ok()) return opened;
  }
  if (out.empty() && why_none != nullptr) {
    *why_none = list.num == 0 ? list.why : "no RDMA device has an active port";
  }
  return out;
}

Status VerbsDevice::OpenPorts(const OpenRequest& request, ibv_device* device,
                              const std::string& name, int port,
                              std::vector<std::unique_ptr<VerbsDevice>>& out) {
  const VerbsApi& verbs = request.verbs;
  // The probe context only answers queries; OpenPort opens each port anew.
  ContextPtr probe(verbs.open_device(device), VerbsDeleter<ibv_context>{&verbs});
  if (probe == nullptr) {
    std::string what = std::string("ibv_open_device: ") + std::strerror(errno);
    if (request.named) return DeviceUnavailable(name, what);
    spdlog::warn("RDMA device {} skipped: {}", name, what);
    return Status::Ok();
  }
  ibv_device_attr attr{};
  if (int rc = verbs.query_device(probe.get(), &attr); rc != 0) {
    std::string what = std::string("ibv_query_device: ") + std::strerror(rc);
    if (request.named) return DeviceUnavailable(name, what);
    spdlog::warn("RDMA device {} skipped: {}", name, what);
    return Status::Ok();
  }
  int first = port != 0 ? port : 1;
  int last = port != 0 ? port : attr.phys_port_cnt;
  if (port > attr.phys_port_cnt) {
    return DeviceUnavailable(name, "has no port " + std::to_string(port) + " (it has " +
                                       std::to_string(attr.phys_port_cnt) + ")");
  }
  const size_t opened_before = out.size();
  for (int p = first; p <= last; ++p) {
    ibv_port_attr port_attr{};
    if (verbs.query_port(probe.get(), static_cast<uint8_t>(p), &port_attr) != 0 ||
        port_attr.state != IBV_PORT_ACTIVE) {
      continue;
    }
    Status opened = OpenPort(request, device, name, attr, p, port_attr, out);
    if (!opened.ok()) return opened;
  }
  if (out.size() == opened_before && request.named) {
    return DeviceUnavailable(
        name, port != 0 ? "port " + std::to_string(port) + " is not active" : "has no active port");
  }
  return Status::Ok();
}

Status VerbsDevice::OpenPort(const OpenRequest& request, ibv_device* device,
                             const std::string& name, const ibv_device_attr& attr, int port,
                             const ibv_port_attr& port_attr,
                             std::vector<std::unique_ptr<VerbsDevice>>& out) {
  const VerbsApi& verbs = request.verbs;
  // Each port gets its own context and PD: the owner of every object made
  // on a port is then one VerbsDevice.
  std::unique_ptr<VerbsDevice> dev(new VerbsDevice(verbs));
  dev->context_ = ContextPtr(verbs.open_device(device), VerbsDeleter<ibv_context>{&verbs});
  if (dev->context_ == nullptr) {
    return DeviceUnavailable(name, std::string("ibv_open_device: ") + std::strerror(errno));
  }
  dev->name_ = name;
  dev->port_ = static_cast<uint8_t>(port);
  dev->attr_ = attr;
  dev->lid_ = port_attr.lid;
  dev->ethernet_ = port_attr.link_layer != IBV_LINK_LAYER_INFINIBAND;
  dev->active_mtu_ = port_attr.active_mtu;

  const int gid_index = request.options.gid_index;
  const ChosenGid gid =
      ChooseGid(verbs, dev->context(), dev->port_, port_attr.gid_tbl_len, gid_index);
  if (gid_index >= 0 && (gid.index < 0 || gid.score < 0)) {
    return DeviceUnavailable(name, "port " + std::to_string(port) + " has no GID at index " +
                                       std::to_string(gid_index) + " (table has " +
                                       std::to_string(port_attr.gid_tbl_len) + " entries)");
  }
  // InfiniBand addresses a port by LID, so an empty GID does not rule it out.
  if (gid.index < 0 || (gid.score < 0 && dev->ethernet_)) {
    if (request.named) {
      return DeviceUnavailable(name, "port " + std::to_string(port) + " has no usable GID");
    }
    spdlog::warn("RDMA device {} port {} skipped: no usable GID", name, port);
    return Status::Ok();
  }
  dev->gid_index_ = gid.index;
  dev->gid_ = gid.gid;
  dev->pd_ = PdPtr(verbs.alloc_pd(dev->context()), VerbsDeleter<ibv_pd>{&verbs});
  if (dev->pd_ == nullptr) {
    return DeviceUnavailable(name, std::string("ibv_alloc_pd: ") + std::strerror(errno));
  }
  if (request.log_opened) {
    spdlog::info("RDMA device {} port {}: GID index {} ({}), MTU {}, max_mr_size {}{}", dev->name_,
                 port, dev->gid_index_, FormatGid(dev->gid_), MtuText(dev->active_mtu_),
                 dev->attr_.max_mr_size,
                 dev->ethernet_ ? "" : ", LID " + std::to_string(dev->lid_));
  }
  out.push_back(std::move(dev));
  return Status::Ok();
}

}  // namespace kvcached
