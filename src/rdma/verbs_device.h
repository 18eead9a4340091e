// VerbsDevice: one opened NIC port (a verbs context and protection domain)
// with what the transport needs to know about it: the GID peers address, the
// active MTU, max_mr_size and the queue-pair limits. OpenVerbsDevices turns
// RdmaOptions::devices (or discovery) into opened ports; ChooseRdmaDevices
// is built on it. Not responsible for memory or queue pairs. A VerbsDevice
// is immutable after opening and safe to share between threads; it owns its
// context and PD, which must outlive every MR, CQ and QP made from them.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/rdma_link.h"
#include "core/status.h"
#include "rdma/rdma_transport.h"
#include "rdma/verbs_api.h"

namespace kvcached {

class VerbsDevice {
 public:
  VerbsDevice(const VerbsDevice&) = delete;
  VerbsDevice& operator=(const VerbsDevice&) = delete;
  ~VerbsDevice();

  const VerbsApi& verbs() const { return *verbs_; }
  ibv_context* context() const { return context_.get(); }
  ibv_pd* pd() const { return pd_.get(); }
  const std::string& name() const { return name_; }
  uint8_t port() const { return port_; }
  int gid_index() const { return gid_index_; }
  const RdmaGid& gid() const { return gid_; }
  uint16_t lid() const { return lid_; }
  bool ethernet() const { return ethernet_; }  // RoCE: addressed by GID only
  ibv_mtu active_mtu() const { return active_mtu_; }
  uint64_t max_mr_size() const { return attr_.max_mr_size; }
  const ibv_device_attr& attr() const { return attr_; }
  RdmaNic nic() const { return RdmaNic{name_, gid_, lid_}; }

 private:
  friend Result<std::vector<std::unique_ptr<VerbsDevice>>> OpenVerbsDevices(const VerbsApi&,
                                                                            const RdmaOptions&,
                                                                            std::string*, bool);
  explicit VerbsDevice(const VerbsApi& verbs) : verbs_(&verbs) {}

  // The stages of OpenVerbsDevices that make VerbsDevices (verbs_device.cpp).
  // Each appends what it opened to `out`; a device or port that discovery
  // skips is logged and is not an error.
  struct OpenRequest;
  // The active ports of `device`: `port`, or every port when it is 0.
  static Status OpenPorts(const OpenRequest& request, ibv_device* device, const std::string& name,
                          int port, std::vector<std::unique_ptr<VerbsDevice>>& out);
  // One active port: its own context and PD, and its GID.
  static Status OpenPort(const OpenRequest& request, ibv_device* device, const std::string& name,
                         const ibv_device_attr& attr, int port, const ibv_port_attr& port_attr,
                         std::vector<std::unique_ptr<VerbsDevice>>& out);

  const VerbsApi* verbs_;
  ContextPtr context_;
  PdPtr pd_;
  std::string name_;
  uint8_t port_ = 1;
  int gid_index_ = 0;
  RdmaGid gid_{};
  uint16_t lid_ = 0;
  bool ethernet_ = true;
  ibv_mtu active_mtu_ = IBV_MTU_1024;
  ibv_device_attr attr_{};
};

// Opens the ports named in options.devices ("name" or "name:port"; empty:
// every active port of every device). A named device that is missing, has no
// such port, or whose port is not active is UNAVAILABLE_IN_CURRENT_MODE
// naming it (it may appear later: a driver still loading); so is a gid_index
// override outside the port's table. A malformed ":port" is INVALID_PARAMS. Finding nothing by
// discovery is not an error: the result is empty and `why_none` says why.
// With `log_opened`, one info line per opened port.
Result<std::vector<std::unique_ptr<VerbsDevice>>> OpenVerbsDevices(const VerbsApi& verbs,
                                                                   const RdmaOptions& options,
                                                                   std::string* why_none,
                                                                   bool log_opened);

// Higher is better: RoCE v2 with an IPv4-mapped address (::ffff:a.b.c.d)
// first, then RoCE v2, then an IPv4-mapped RoCE v1 GID, then anything else
// that is not zero. -1 for an empty entry. Exposed for tests.
int GidPreference(const RdmaGid& gid, bool known_type, ibv_gid_type type);

}  // namespace kvcached
