#include "client/router.h"

namespace kvcached {
namespace {

constexpr size_t kMaxCachedEndpoints = 4096;  // segments come and go

}  // namespace

Router::Router(TransportMode mode, std::string host_id, std::string own_instance,
               Transport& transport)
    : mode_(mode),
      host_id_(std::move(host_id)),
      own_instance_(std::move(own_instance)),
      transport_(transport) {}

std::shared_ptr<const SegmentEndpoint> Router::Resolve(const std::string& text, Status& why) {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = endpoints_.find(text);
  if (it != endpoints_.end()) return it->second;
  Result<SegmentEndpoint> parsed = ParseEndpoint(text);
  if (!parsed.ok()) {
    why = Status(ErrorCode::INVALID_REPLICA, parsed.status().message());
    return nullptr;
  }
  if (endpoints_.size() > kMaxCachedEndpoints) endpoints_.clear();
  auto e = std::make_shared<const SegmentEndpoint>(std::move(parsed).value());
  endpoints_.emplace(text, e);
  return e;
}

Result<Path> Router::Choose(const SegmentEndpoint& segment) {
  if (!own_instance_.empty() && segment.instance == own_instance_) return Path::kLocal;
  bool same_host = segment.host_id == host_id_ && !segment.shm.empty();
  bool rdma = transport_.Reaches(Path::kRdma, segment);
  switch (mode_) {
    case TransportMode::kRdma:
      if (!rdma) {
        return Status(ErrorCode::TRANSFER_FAIL,
                      "transport rdma: segment '" + segment.name + "' does not serve RDMA");
      }
      return Path::kRdma;
    case TransportMode::kTcp:
      if (segment.tcp.empty()) break;
      return Path::kTcp;
    case TransportMode::kShm:
      if (!same_host) {
        return Status(ErrorCode::TRANSFER_FAIL, "transport shm: segment '" + segment.name +
                                                    "' is on host '" + segment.host_id +
                                                    "', not this host '" + host_id_ + "'");
      }
      return Path::kShm;
    case TransportMode::kAuto:
      if (same_host && transport_.Reaches(Path::kShm, segment)) return Path::kShm;
      if (rdma) return Path::kRdma;
      if (segment.tcp.empty()) break;
      return Path::kTcp;
  }
  return Status(ErrorCode::TRANSFER_FAIL,
                "segment '" + segment.name + "' offers no path this client may use");
}

Result<Route> Router::To(const ReplicaListResponse& res, const Replica& r) {
  if (r.segment >= res.segments.size()) {
    return Status(ErrorCode::INVALID_REPLICA, "the master named a replica in no segment");
  }
  Status why;
  std::shared_ptr<const SegmentEndpoint> seg = Resolve(res.segments[r.segment].endpoint, why);
  if (!seg) return why;
  Result<Path> path = Choose(*seg);
  if (!path.ok()) return path.status();
  return Route{std::move(seg), *path};
}

}  // namespace kvcached
