// HelloPolicy and DecideHello: the one decision on a peer's Hello, shared by
// every server that speaks the frame protocol (the master's RPC port, a
// store's data port and its shared-memory socket). Given the frame's version,
// the decoded HelloRequest and what the server requires, it says accept or
// refuse with an ErrorCode and a reason. It does no I/O and keeps no state;
// checks only one server can make (the master's owner proof, its per-peer
// slots, a shm peer's credentials) stay in that server, after this decision.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <string_view>

#include "core/auth_token.h"
#include "core/rpc_protocol.h"

namespace kvcached {

// Which PeerRole values may say Hello to a server.
class RoleSet {
 public:
  constexpr RoleSet(std::initializer_list<PeerRole> roles) {
    for (PeerRole r : roles) bits_ |= Bit(static_cast<uint8_t>(r));
  }
  // Any wire value; values outside the known roles are never contained.
  constexpr bool Contains(uint8_t role) const { return IsKnownRole(role) && (bits_ & Bit(role)); }
  static constexpr bool IsKnownRole(uint8_t role) {
    return role >= static_cast<uint8_t>(PeerRole::kClient) &&
           role <= static_cast<uint8_t>(PeerRole::kAdmin);
  }

 private:
  static constexpr uint8_t Bit(uint8_t role) { return static_cast<uint8_t>(1u << (role & 7)); }
  uint8_t bits_ = 0;
};

// The master serves every role; a store's data port and shared-memory socket
// serve clients and stores (a store is a client that hosts a segment). No
// administrative tool has business with a segment's bytes.
inline constexpr RoleSet kMasterRoles{PeerRole::kClient, PeerRole::kStore, PeerRole::kAdmin};
inline constexpr RoleSet kStorePortRoles{PeerRole::kClient, PeerRole::kStore};

// "client", "store", "admin"; "unknown" for other values.
const char* RoleName(uint8_t role);

// What a server requires of a Hello. `token` is borrowed and must outlive the
// call; null means the server has no token and ignores the field.
struct HelloPolicy {
  const AuthToken* token = nullptr;
  RoleSet roles = kMasterRoles;
  uint16_t version = kRpcVersion;
  std::string_view server = "master";  // names this side in messages: "this store speaks ..."
};

// The outcome. When refused, `reason` (at most kMaxMessageBytes, no
// peer-supplied text) goes to the log and into the answer, and
// `error_frame` says how to answer: an ErrorBody frame (flags kFlagResponse |
// kFlagError; a version mismatch, where the peer may not read a HelloResponse
// of this version) or a HelloResponse whose code is `code` (everything else).
// Either way the server closes the connection after the answer.
struct HelloDecision {
  ErrorCode code = ErrorCode::OK;
  std::string reason;
  bool error_frame = false;

  bool accepted() const { return code == ErrorCode::OK; }
};

// Checks, in this order, and stops at the first failure:
//   1. frame_version == policy.version, else INVALID_VERSION (error frame),
//      "protocol version mismatch: the peer speaks version N, this <server>
//      speaks version M";
//   2. the token, when the policy has one (constant-time), else ILLEGAL_CLIENT,
//      "missing or wrong cluster token";
//   3. a client id, else INVALID_PARAMS, "Hello needs a client id"; one of at
//      most kMaxIdBytes, else INVALID_PARAMS;
//   4. a known role, else INVALID_PARAMS, "unknown role N"; one in
//      policy.roles, else ILLEGAL_CLIENT, naming the role and those admitted.
// The token comes before identity so that a peer without it learns nothing
// about what else the server wants.
HelloDecision DecideHello(uint16_t frame_version, const HelloRequest& hello,
                          const HelloPolicy& policy);

// Step 1 alone, for every frame after Hello (the version is checked on all).
HelloDecision CheckFrameVersion(uint16_t frame_version, const HelloPolicy& policy);

// The HelloResponse to send for a decision that is not an error frame: for an
// accepted Hello, `accepted` with code 0 (the server fills in its master id,
// lease or segment); for a refused one, only the code, this side's version and
// the reason: nothing about the cluster goes to a refused peer.
HelloResponse AnswerHello(const HelloDecision& decision, HelloResponse accepted);

}  // namespace kvcached
