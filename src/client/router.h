// Router: where a replica lives and how this client reaches it. Parses the
// segment descriptors the master hands out (cached by their text) and
// chooses a path per replica: the client's own segment, shared memory on
// the same host, RDMA, or TCP, as the configured TransportMode allows.
// Thread-safe.
#pragma once

#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <utility>

#include "client/transport.h"
#include "kvcached/client.h"

namespace kvcached {

struct Route {
  std::shared_ptr<const SegmentEndpoint> segment;
  Path path = Path::kTcp;
};

class Router {
 public:
  // `own_instance`: the instance of the segment this client contributes
  // ("" when none). `transport` must outlive the router.
  Router(TransportMode mode, std::string host_id, std::string own_instance, Transport& transport);

  // The replica `r` of an answer `res` (PutStart or GetReplicaList):
  // INVALID_REPLICA when its segment is missing or unreadable,
  // TRANSFER_FAIL when the transport mode rules every path out.
  Result<Route> To(const ReplicaListResponse& res, const Replica& r);
  // The path to `segment`, or why there is none this client may use.
  Result<Path> Choose(const SegmentEndpoint& segment);

  const std::string& host_id() const { return host_id_; }

 private:
  std::shared_ptr<const SegmentEndpoint> Resolve(const std::string& text, Status& why);

  const TransportMode mode_;
  const std::string host_id_;
  const std::string own_instance_;
  Transport& transport_;
  std::mutex mu_;  // guards endpoints_
  std::unordered_map<std::string, std::shared_ptr<const SegmentEndpoint>> endpoints_;
};

}  // namespace kvcached
