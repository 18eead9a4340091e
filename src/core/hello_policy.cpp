#include "core/hello_policy.h"

#include "core/tenant.h"

namespace kvcached {

const char* RoleName(uint8_t role) {
  switch (role) {
    case static_cast<uint8_t>(PeerRole::kClient):
      return "client";
    case static_cast<uint8_t>(PeerRole::kStore):
      return "store";
    case static_cast<uint8_t>(PeerRole::kAdmin):
      return "admin";
    default:
      return "unknown";
  }
}

HelloDecision CheckFrameVersion(uint16_t frame_version, const HelloPolicy& policy) {
  if (frame_version == policy.version) return {};
  return {ErrorCode::INVALID_VERSION,
          "protocol version mismatch: the peer speaks version " + std::to_string(frame_version) +
              ", this " + std::string(policy.server) + " speaks version " +
              std::to_string(policy.version),
          /*error_frame=*/true};
}

HelloDecision DecideHello(uint16_t frame_version, const HelloRequest& hello,
                          const HelloPolicy& policy) {
  if (HelloDecision d = CheckFrameVersion(frame_version, policy); !d.accepted()) return d;
  if (policy.token != nullptr && !policy.token->Matches(hello.token)) {
    return {ErrorCode::ILLEGAL_CLIENT, "missing or wrong cluster token"};
  }
  if (hello.client_id.empty()) return {ErrorCode::INVALID_PARAMS, "Hello needs a client id"};
  // The decoder already bounds it; a HelloRequest built in memory is not.
  if (hello.client_id.size() > kMaxIdBytes) {
    return {ErrorCode::INVALID_PARAMS, "client id of " + std::to_string(hello.client_id.size()) +
                                           " bytes (at most " + std::to_string(kMaxIdBytes) + ")"};
  }
  if (!RoleSet::IsKnownRole(hello.role)) {
    return {ErrorCode::INVALID_PARAMS, "unknown role " + std::to_string(hello.role)};
  }
  if (!policy.roles.Contains(hello.role)) {
    std::string admitted;
    for (uint8_t r = 1; RoleSet::IsKnownRole(r); ++r) {
      if (!policy.roles.Contains(r)) continue;
      if (!admitted.empty()) admitted += ", ";
      admitted += RoleName(r);
    }
    return {ErrorCode::ILLEGAL_CLIENT, "role " + std::to_string(hello.role) + " (" +
                                           RoleName(hello.role) + ") may not say Hello to this " +
                                           std::string(policy.server) + "; it admits " +
                                           (admitted.empty() ? "none" : admitted)};
  }
  if (Result<std::string> t = CanonicalTenant(hello.tenant); !t.ok()) {
    return {ErrorCode::INVALID_PARAMS, t.status().message()};
  }
  return {};
}

HelloResponse AnswerHello(const HelloDecision& decision, HelloResponse accepted) {
  if (decision.accepted()) {
    accepted.code = 0;
    accepted.message.clear();
    return accepted;
  }
  HelloResponse refused;
  refused.code = static_cast<int32_t>(decision.code);
  refused.server_version = accepted.server_version;
  refused.message = decision.reason;
  return refused;
}

}  // namespace kvcached
