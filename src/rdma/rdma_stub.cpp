// The RDMA transport of a build without rdma-core's development files: the
// build compiles this file instead of the verbs code (CMakeLists.txt), as
// leveldb picks a platform by which file it compiles. Every Open answers
// NOT_SUPPORTED, so no engine or target ever exists and the member functions
// below are never reached; they exist so that callers link unchanged.
#include "rdma/rdma_devices.h"
#include "rdma/rdma_transport.h"

namespace kvcached {

namespace {

constexpr const char* kNotCompiled =
    "RDMA is not compiled into this build (rdma-core's development files were missing)";

}  // namespace

std::vector<RdmaDeviceInfo> ListRdmaDevices(std::string* why_none) {
  if (why_none != nullptr) *why_none = kNotCompiled;
  return {};
}

struct RdmaTarget::Impl {};

Result<std::unique_ptr<RdmaTarget>> RdmaTarget::OpenSystem(RdmaOptions options, uint8_t*,
                                                           uint64_t) {
  if (!options.devices.empty()) {
    return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE,
                  "RDMA devices were named, but " + std::string(kNotCompiled));
  }
  return Status(ErrorCode::NOT_SUPPORTED, kNotCompiled);
}

RdmaTarget::~RdmaTarget() = default;

Result<RdmaConnectResponse> RdmaTarget::Accept(const RdmaConnectRequest&, uint64_t) {
  return Status(ErrorCode::NOT_SUPPORTED, kNotCompiled);
}

void RdmaTarget::Release(uint64_t) {}

RdmaSegmentInfo RdmaTarget::Describe() const { return {}; }

size_t RdmaTarget::queue_pairs() const { return 0; }

struct RdmaEngine::Impl {
  std::vector<RdmaNic> nics;
  RdmaCounters counters;
};

Result<std::unique_ptr<RdmaEngine>> RdmaEngine::OpenSystem(RdmaOptions, RdmaConnector) {
  return Status(ErrorCode::NOT_SUPPORTED, kNotCompiled);
}

RdmaEngine::~RdmaEngine() = default;

Status RdmaEngine::RegisterMemory(void*, uint64_t) {
  return Status(ErrorCode::NOT_SUPPORTED, kNotCompiled);
}

Status RdmaEngine::UnregisterMemory(void*) { return Status(ErrorCode::NOT_SUPPORTED, kNotCompiled); }

void RdmaEngine::Run(std::vector<RdmaOp*>& ops) {
  for (RdmaOp* op : ops) op->result = Status(ErrorCode::UNAVAILABLE_IN_CURRENT_MODE, kNotCompiled);
}

void RdmaEngine::Close() {}

const std::vector<RdmaNic>& RdmaEngine::nics() const { return impl_->nics; }

const RdmaCounters& RdmaEngine::counters() const { return impl_->counters; }

}  // namespace kvcached
