// ChooseRdmaDevices and the store side (RdmaTarget). The client side,
// RdmaEngine, is in rdma_engine.cpp.
#include "rdma/rdma_transport.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <map>
#include <mutex>

#include "core/segment_endpoint.h"
#include "rdma/memory_registry.h"
#include "rdma/queue_pair.h"
#include "rdma/verbs_api.h"
#include "rdma/verbs_device.h"

namespace kvcached {

namespace {

// Discovery found several NICs: keep those on the NUMA node of the segment's
// memory, when that node is known and has any, so DMA does not cross the
// inter-socket link. Named devices are taken as named.
void PreferLocalNics(const VerbsApi& verbs, const uint8_t* base,
                     std::vector<std::unique_ptr<VerbsDevice>>& devices) {
  if (devices.size() < 2 || !verbs.memory_numa_node || !verbs.device_numa_node) return;
  int node = verbs.memory_numa_node(base);
  if (node < 0) return;
  std::vector<std::unique_ptr<VerbsDevice>> local, remote;
  for (auto& dev : devices) {
    (verbs.device_numa_node(dev->name().c_str()) == node ? local : remote).push_back(std::move(dev));
  }
  if (local.empty()) {
    devices = std::move(remote);
    return;
  }
  std::string skipped;
  for (const auto& dev : remote) skipped += (skipped.empty() ? "" : ", ") + dev->name();
  if (!skipped.empty()) {
    spdlog::info("RDMA target: the segment is on NUMA node {}; serving it from the NICs there "
                 "and not from {} (name them in --device to use them too)",
                 node, skipped);
  }
  devices = std::move(local);
}

}  // namespace

Result<RdmaDeviceChoice> ChooseRdmaDevices(const VerbsApi& verbs, const RdmaOptions& options) {
  RdmaDeviceChoice choice;
  auto devices = OpenVerbsDevices(verbs, options, &choice.why_none, /*log_opened=*/false);
  if (!devices.ok()) return devices.status();
  for (const auto& dev : *devices) choice.nics.push_back(dev->nic());
  if (!choice.nics.empty()) choice.why_none.clear();
  return choice;
}

struct RdmaTarget::Impl {
  RdmaOptions options;
  // Destruction runs bottom-up: queue pairs, the region's MRs, the CQs,
  // then the devices (PDs and contexts).
  std::vector<std::unique_ptr<VerbsDevice>> devices;
  std::vector<CqPtr> cqs;  // one per device, shared by its queue pairs
  std::shared_ptr<RegisteredRegion> region;
  mutable std::mutex mu;
  std::multimap<uint64_t, std::unique_ptr<QueuePair>> qps;  // by link; mu
};

Result<std::unique_ptr<RdmaTarget>> RdmaTarget::Open(const VerbsApi& verbs, RdmaOptions options,
                                                     uint8_t* base, uint64_t size) {
  using Out = Result<std::unique_ptr<RdmaTarget>>;
  if (base == nullptr || size == 0) {
    return Out(ErrorCode::INVALID_PARAMS, "RDMA target needs a non-empty segment");
  }
  std::unique_ptr<RdmaTarget> target(new RdmaTarget());
  target->impl_ = std::make_unique<Impl>();
  Impl& impl = *target->impl_;
  impl.options = std::move(options);
  std::string why_none;
  auto devices = OpenVerbsDevices(verbs, impl.options, &why_none, /*log_opened=*/true);
  if (!devices.ok()) return devices.status();
  if (devices->empty()) return Out(ErrorCode::NOT_SUPPORTED, why_none);
  if (impl.options.devices.empty()) PreferLocalNics(verbs, base, devices.value());
  if (devices->size() > kMaxRdmaNics) devices.value().resize(kMaxRdmaNics);
  impl.devices = std::move(devices).value();

  std::vector<VerbsDevice*> raw;
  for (auto& dev : impl.devices) {
    raw.push_back(dev.get());
    errno = 0;
    CqPtr cq(verbs.create_cq(dev->context(), 16, nullptr, nullptr, 0),
             VerbsDeleter<ibv_cq>{&verbs});
    if (cq == nullptr) {
      return Out(ErrorCode::TRANSFER_FAIL,
                 "ibv_create_cq on " + dev->name() + ": " + std::strerror(errno));
    }
    impl.cqs.push_back(std::move(cq));
  }
  // The descriptor carries one key per chunk and NIC, at most kMaxRdmaKeys
  // in all: a very large segment takes larger chunks, up to the devices'
  // max_mr_size.
  uint64_t chunk = RegistrationChunkBytes(raw, impl.options.max_chunk_bytes);
  const uint64_t max_rows = std::min<uint64_t>(kMaxRdmaChunks, kMaxRdmaKeys / raw.size());
  if (size / chunk + (size % chunk != 0) > max_rows) {
    uint64_t wanted = size / max_rows + (size % max_rows != 0);
    wanted = (wanted + 4095) / 4096 * 4096;
    chunk = std::max(chunk, std::min(wanted, RegistrationChunkBytes(raw, UINT64_MAX)));
  }
  if (size / chunk + (size % chunk != 0) > max_rows) {
    return Out(ErrorCode::INVALID_PARAMS,
               fmt::format("segment of {} bytes needs more than {} registration chunks of {} bytes "
                           "(the devices' max_mr_size) on {} NIC(s)",
                           size, max_rows, chunk, raw.size()));
  }
  auto region = RegisteredRegion::Register(
      raw, base, size, chunk,
      IBV_ACCESS_LOCAL_WRITE | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_REMOTE_READ, "the segment");
  if (!region.ok()) return region.status();
  impl.region = std::move(region).value();
  spdlog::info("RDMA target: segment of {} bytes registered in {} chunk(s) on {} NIC(s)", size,
               impl.region->chunks(), impl.devices.size());
  return target;
}

RdmaTarget::~RdmaTarget() {
  if (impl_ == nullptr) return;
  std::lock_guard<std::mutex> lock(impl_->mu);
  impl_->qps.clear();
}

Result<std::unique_ptr<RdmaTarget>> RdmaTarget::OpenSystem(RdmaOptions options, uint8_t* base,
                                                           uint64_t size) {
  return Open(RealVerbs(), std::move(options), base, size);
}

Result<RdmaConnectResponse> RdmaTarget::Accept(const RdmaConnectRequest& request, uint64_t link) {
  using Out = Result<RdmaConnectResponse>;
  Impl& impl = *impl_;
  if (request.version != kRdmaLinkVersion) {
    return Out(ErrorCode::INVALID_PARAMS, "RDMA connect version " +
                                              std::to_string(request.version) + " (expected " +
                                              std::to_string(kRdmaLinkVersion) + ")");
  }
  if (request.store_nic >= impl.devices.size()) {
    return Out(ErrorCode::INVALID_PARAMS, "RDMA connect names NIC " +
                                              std::to_string(request.store_nic) + " of " +
                                              std::to_string(impl.devices.size()));
  }
  VerbsDevice& dev = *impl.devices[request.store_nic];
  QueuePair::Config config;
  config.max_send_wr = 1;  // the store posts nothing; it only answers
  config.shared_cq = impl.cqs[request.store_nic].get();
  auto qp = QueuePair::Create(dev, config);
  if (!qp.ok()) return qp.status();
  Status s = qp.value()->Connect(
      IBV_ACCESS_REMOTE_READ | IBV_ACCESS_REMOTE_WRITE | IBV_ACCESS_LOCAL_WRITE, request.client);
  if (!s.ok()) return s;
  RdmaConnectResponse response;
  response.store = qp.value()->local();
  SPDLOG_DEBUG("RDMA target: link {} QP {} on {} connected to client QP {}", link,
               response.store.qpn, dev.name(), request.client.qpn);
  std::lock_guard<std::mutex> lock(impl.mu);
  impl.qps.emplace(link, std::move(qp).value());
  return response;
}

void RdmaTarget::Release(uint64_t link) {
  std::lock_guard<std::mutex> lock(impl_->mu);
  size_t n = impl_->qps.erase(link);
  if (n > 0) SPDLOG_DEBUG("RDMA target: link {} released {} QP(s)", link, n);
}

RdmaSegmentInfo RdmaTarget::Describe() const {
  const Impl& impl = *impl_;
  RdmaSegmentInfo info;
  info.base = reinterpret_cast<uint64_t>(impl.region->base());
  info.chunk_bytes = impl.region->chunk_bytes();
  for (const auto& dev : impl.devices) info.nics.push_back(dev->nic());
  info.rkeys.resize(impl.region->chunks());
  for (size_t c = 0; c < impl.region->chunks(); ++c) {
    for (size_t n = 0; n < impl.devices.size(); ++n)
      info.rkeys[c].push_back(impl.region->rkey(c, n));
  }
  return info;
}

size_t RdmaTarget::queue_pairs() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->qps.size();
}

}  // namespace kvcached
