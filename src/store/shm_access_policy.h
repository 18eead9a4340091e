// ShmAccessPolicy: who may attach to a store's shared-memory socket, decided
// from the peer's credentials as the kernel reports them (SO_PEERCRED,
// SO_PEERGROUPS), never from anything the peer says. Allowed: the store's
// own uid, root (uid 0), and members of one optional group (--shm-group).
// Decide() is pure; ReadPeerCredentials() is the only call that touches a
// socket. The socket file's and its directory's permissions are another
// layer (ShmRuntimeDir, ShmServer), not this one's. Values only: copyable
// and safe to use from any thread.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>
#include <vector>

#include "core/status.h"

namespace kvcached {

// What the kernel recorded about the peer when it called connect().
struct PeerCredentials {
  pid_t pid = 0;
  uid_t uid = 0;
  gid_t gid = 0;              // effective gid
  std::vector<gid_t> groups;  // supplementary groups
};

struct ShmAccessDecision {
  bool allowed = false;
  // Allowed: which rule admitted the peer ("uid 1000 is the store's own").
  // Refused: the message for the peer and the log, naming its uid and the
  // policy.
  std::string reason;
};

class ShmAccessPolicy {
 public:
  // Admits `owner_uid` (the store's effective uid) and root.
  explicit ShmAccessPolicy(uid_t owner_uid) : owner_uid_(owner_uid) {}

  // The policy of --shm-group: `group` is empty (no group), a group name, or
  // a decimal gid. INVALID_PARAMS naming it when no such group exists.
  static Result<ShmAccessPolicy> WithGroupNamed(uid_t owner_uid, const std::string& group);
  // Also admits members of `gid` (as effective or supplementary group);
  // `name` is how messages show it.
  static ShmAccessPolicy WithGroup(uid_t owner_uid, gid_t gid, std::string name);

  ShmAccessDecision Decide(const PeerCredentials& peer) const;
  // "uid 0 (root), uid 1000 (the store's own) and members of group
  // 'kvcached' (gid 998)": for logs and refusals.
  std::string Describe() const;

  uid_t owner_uid() const { return owner_uid_; }
  std::optional<gid_t> group() const { return group_; }
  const std::string& group_name() const { return group_name_; }

 private:
  uid_t owner_uid_;
  std::optional<gid_t> group_;
  std::string group_name_;
};

// The peer of the connected Unix socket `fd`: SO_PEERCRED, and SO_PEERGROUPS
// for the supplementary groups (empty on a kernel without it, before 4.13).
// RPC_FAIL with the system's reason when SO_PEERCRED cannot be read.
Result<PeerCredentials> ReadPeerCredentials(int fd);

}  // namespace kvcached
