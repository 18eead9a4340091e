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

Result<std::vector<std::unique_ptr<VerbsDevice>>> OpenVerbsDevices(const VerbsApi& verbs,
                                                                   const RdmaOptions& options,
                                                                   std::string* why_none,
                                                                   bool log_opened) {
  using Out = Result<std::vector<std::unique_ptr<VerbsDevice>>>;
  auto specs = ParseSpecs(options.devices);
  if (!specs.ok()) return specs.status();
  const bool named = !specs->empty();

  int num = 0;
  errno = 0;
  DeviceListPtr list(verbs.get_device_list(&num), VerbsDeleter<ibv_device*>{&verbs});
  const int list_errno = errno;
  if (list == nullptr) num = 0;
  std::string why = "no RDMA devices";
  if (num == 0 && list_errno != 0) {
    why += std::string(" (ibv_get_device_list: ") + std::strerror(list_errno) + ")";
  }

  // Which (device, port) pairs to try: named ones, or every device's ports.
  std::vector<DeviceSpec> wanted;
  if (named) {
    for (const DeviceSpec& spec : *specs) {
      bool found = false;
      for (int i = 0; i < num; ++i) found |= spec.name == verbs.get_device_name(list.get()[i]);
      if (!found) {
        return Out(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE,
                   "RDMA device '" + spec.name + "' not found" +
                                                  (num == 0 ? " (" + why + ")" : ""));
      }
      wanted.push_back(spec);
    }
  } else {
    for (int i = 0; i < num; ++i) wanted.push_back({verbs.get_device_name(list.get()[i]), 0});
  }

  std::vector<std::unique_ptr<VerbsDevice>> out;
  for (const DeviceSpec& spec : wanted) {
    ibv_device* device = nullptr;
    for (int i = 0; i < num; ++i) {
      if (spec.name == verbs.get_device_name(list.get()[i])) device = list.get()[i];
    }
    auto fail = [&](const std::string& what) {
      return Out(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE, "RDMA device '" + spec.name + "': " + what);
    };
    ContextPtr probe(verbs.open_device(device), VerbsDeleter<ibv_context>{&verbs});
    if (probe == nullptr) {
      std::string what = std::string("ibv_open_device: ") + std::strerror(errno);
      if (named) return fail(what);
      spdlog::warn("RDMA device {} skipped: {}", spec.name, what);
      continue;
    }
    ibv_device_attr attr{};
    if (int rc = verbs.query_device(probe.get(), &attr); rc != 0) {
      std::string what = std::string("ibv_query_device: ") + std::strerror(rc);
      if (named) return fail(what);
      spdlog::warn("RDMA device {} skipped: {}", spec.name, what);
      continue;
    }
    int first = spec.port != 0 ? spec.port : 1;
    int last = spec.port != 0 ? spec.port : attr.phys_port_cnt;
    if (spec.port > attr.phys_port_cnt) {
      return fail("has no port " + std::to_string(spec.port) + " (it has " +
                  std::to_string(attr.phys_port_cnt) + ")");
    }
    bool any_active = false;
    for (int port = first; port <= last; ++port) {
      ibv_port_attr port_attr{};
      if (verbs.query_port(probe.get(), static_cast<uint8_t>(port), &port_attr) != 0 ||
          port_attr.state != IBV_PORT_ACTIVE) {
        continue;
      }
      // Each port gets its own context and PD (the probe context only
      // answers queries): the owner of every object made on a port is then
      // one VerbsDevice.
      std::unique_ptr<VerbsDevice> dev(new VerbsDevice(verbs));
      dev->context_ = ContextPtr(verbs.open_device(device), VerbsDeleter<ibv_context>{&verbs});
      if (dev->context_ == nullptr) {
        return fail(std::string("ibv_open_device: ") + std::strerror(errno));
      }
      dev->name_ = spec.name;
      dev->port_ = static_cast<uint8_t>(port);
      dev->attr_ = attr;
      dev->lid_ = port_attr.lid;
      dev->ethernet_ = port_attr.link_layer != IBV_LINK_LAYER_INFINIBAND;
      dev->active_mtu_ = port_attr.active_mtu;

      // GID: the override, else the best entry of the table.
      int best = -1;
      int best_score = -1;
      RdmaGid best_gid{};
      for (int index = 0; index < port_attr.gid_tbl_len; ++index) {
        if (options.gid_index >= 0 && index != options.gid_index) continue;
        ibv_gid gid{};
        if (verbs.query_gid(dev->context(), dev->port_, index, &gid) != 0) continue;
        RdmaGid g;
        std::memcpy(g.data(), gid.raw, g.size());
        ibv_gid_type type = IBV_GID_TYPE_IB;
        bool known = verbs.query_gid_type(dev->context(), dev->port_, index, &type) == 0;
        int score = GidPreference(g, known, type);
        if (score > best_score) {
          best = index;
          best_score = score;
          best_gid = g;
        }
      }
      if (options.gid_index >= 0 && (best < 0 || best_score < 0)) {
        return fail("port " + std::to_string(port) + " has no GID at index " +
                    std::to_string(options.gid_index) + " (table has " +
                    std::to_string(port_attr.gid_tbl_len) + " entries)");
      }
      if (best < 0 || (best_score < 0 && dev->ethernet_)) {
        if (named) return fail("port " + std::to_string(port) + " has no usable GID");
        spdlog::warn("RDMA device {} port {} skipped: no usable GID", spec.name, port);
        continue;
      }
      dev->gid_index_ = best;
      dev->gid_ = best_gid;
      dev->pd_ = PdPtr(verbs.alloc_pd(dev->context()), VerbsDeleter<ibv_pd>{&verbs});
      if (dev->pd_ == nullptr) {
        return fail(std::string("ibv_alloc_pd: ") + std::strerror(errno));
      }
      any_active = true;
      if (log_opened) {
        spdlog::info("RDMA device {} port {}: GID index {} ({}), MTU {}, max_mr_size {}{}",
                     dev->name_, port, dev->gid_index_, FormatGid(dev->gid_),
                     MtuText(dev->active_mtu_), dev->attr_.max_mr_size,
                     dev->ethernet_ ? "" : ", LID " + std::to_string(dev->lid_));
      }
      out.push_back(std::move(dev));
    }
    if (!any_active && named) {
      return fail(spec.port != 0 ? "port " + std::to_string(spec.port) + " is not active"
                                 : "has no active port");
    }
  }
  if (out.empty() && why_none != nullptr) {
    *why_none = num == 0 ? why : "no RDMA device has an active port";
  }
  return out;
}

}  // namespace kvcached
