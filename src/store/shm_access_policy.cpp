#include "store/shm_access_policy.h"

#include <grp.h>
#include <sys/socket.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace kvcached {
namespace {

std::string GroupText(gid_t gid, const std::string& name) {
  return "group '" + name + "' (gid " + std::to_string(gid) + ")";
}

// getgrnam_r / getgrgid_r with a buffer that grows until the entry fits.
// nullopt: no such group; a failed lookup (NSS down) reads as one too, and
// the caller's message names the group so the operator can check.
template <typename Lookup>
std::optional<std::pair<gid_t, std::string>> FindGroup(Lookup lookup) {
  std::vector<char> buf(1024);
  for (;;) {
    group entry{};
    group* found = nullptr;
    int err = lookup(&entry, buf.data(), buf.size(), &found);
    if (err == ERANGE && buf.size() < (1u << 20)) {
      buf.resize(buf.size() * 2);
      continue;
    }
    if (err != 0 || found == nullptr) return std::nullopt;
    return std::make_pair(found->gr_gid, std::string(found->gr_name));
  }
}

bool AllDigits(const std::string& s) {
  return !s.empty() && s.size() <= 10 &&
         std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; });
}

}  // namespace

Result<ShmAccessPolicy> ShmAccessPolicy::WithGroupNamed(uid_t owner_uid,
                                                        const std::string& group_name) {
  if (group_name.empty()) return ShmAccessPolicy(owner_uid);
  auto by_name = FindGroup([&](struct group* g, char* b, size_t n, struct group** out) {
    return getgrnam_r(group_name.c_str(), g, b, n, out);
  });
  if (by_name) return WithGroup(owner_uid, by_name->first, by_name->second);
  if (AllDigits(group_name)) {
    unsigned long number = std::stoul(group_name);
    if (number < static_cast<unsigned long>(static_cast<gid_t>(-1))) {
      // A gid without a name in the group database is still a group the
      // kernel reports: allowed, as chown(1) allows it.
      gid_t gid = static_cast<gid_t>(number);
      auto by_gid = FindGroup([&](struct group* g, char* b, size_t n, struct group** out) {
        return getgrgid_r(gid, g, b, n, out);
      });
      return WithGroup(owner_uid, gid, by_gid ? by_gid->second : group_name);
    }
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "--shm-group '" + group_name +
                    "': no such group (give a group name from /etc/group, or a numeric gid)");
}

ShmAccessPolicy ShmAccessPolicy::WithGroup(uid_t owner_uid, gid_t gid, std::string name) {
  ShmAccessPolicy p(owner_uid);
  p.group_ = gid;
  p.group_name_ = std::move(name);
  return p;
}

ShmAccessDecision ShmAccessPolicy::Decide(const PeerCredentials& peer) const {
  const std::string uid = "uid " + std::to_string(peer.uid);
  if (peer.uid == owner_uid_) return {true, uid + " is the store's own"};
  if (peer.uid == 0) return {true, uid + " is root"};
  if (group_) {
    bool member = peer.gid == *group_ ||
                  std::find(peer.groups.begin(), peer.groups.end(), *group_) != peer.groups.end();
    if (member) return {true, uid + " is a member of " + GroupText(*group_, group_name_)};
  }
  std::string hint = group_ ? "" : "; --shm-group admits a group's members";
  return {false, uid + " (gid " + std::to_string(peer.gid) +
                     ") may not attach to this shared-memory socket: it admits only " + Describe() +
                     hint};
}

std::string ShmAccessPolicy::Describe() const {
  std::string owner =
      owner_uid_ == 0 ? std::string("uid 0 (root, the store's own)")
                      : "uid 0 (root) and uid " + std::to_string(owner_uid_) + " (the store's own)";
  if (!group_) return owner;
  if (owner_uid_ != 0) owner.replace(owner.find(" and "), 5, ", ");
  return owner + " and members of " + GroupText(*group_, group_name_);
}

Result<PeerCredentials> ReadPeerCredentials(int fd) {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (::getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return Status(ErrorCode::RPC_FAIL, std::string("SO_PEERCRED: ") + std::strerror(errno));
  }
  PeerCredentials peer;
  peer.pid = cred.pid;
  peer.uid = cred.uid;
  peer.gid = cred.gid;
#ifdef SO_PEERGROUPS
  // The kernel answers ERANGE with the size it needs; groups can change
  // between the calls only for a new connection, not this one, so the
  // second call fits.
  std::vector<gid_t> groups(64);
  for (int attempt = 0; attempt < 2; ++attempt) {
    socklen_t bytes = static_cast<socklen_t>(groups.size() * sizeof(gid_t));
    if (::getsockopt(fd, SOL_SOCKET, SO_PEERGROUPS, groups.data(), &bytes) == 0) {
      groups.resize(bytes / sizeof(gid_t));
      peer.groups = std::move(groups);
      break;
    }
    if (errno != ERANGE) break;  // ENOPROTOOPT before Linux 4.13: no supplementary groups
    groups.resize(bytes / sizeof(gid_t) + 1);
  }
#endif
  return peer;
}

}  // namespace kvcached
