#include "store/shm_access_policy.h"

#include <doctest/doctest.h>

#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>

namespace kvcached {
namespace {

PeerCredentials Peer(uid_t uid, gid_t gid, std::vector<gid_t> groups = {}) {
  PeerCredentials p;
  p.pid = 4242;
  p.uid = uid;
  p.gid = gid;
  p.groups = std::move(groups);
  return p;
}

TEST_CASE("shm access: the store's own uid and root are admitted, anyone else is refused") {
  ShmAccessPolicy policy(1000);
  ShmAccessDecision own = policy.Decide(Peer(1000, 1000));
  CHECK(own.allowed);
  CHECK(own.reason == "uid 1000 is the store's own");
  ShmAccessDecision root = policy.Decide(Peer(0, 0));
  CHECK(root.allowed);
  CHECK(root.reason == "uid 0 is root");

  ShmAccessDecision other = policy.Decide(Peer(1001, 1000, {1000, 27}));
  CHECK_FALSE(other.allowed);
  // The refusal names the peer's uid and what the store admits, and how to
  // admit more.
  CHECK(other.reason ==
        "uid 1001 (gid 1000) may not attach to this shared-memory socket: it admits only uid 0 "
        "(root) and uid 1000 (the store's own); --shm-group admits a group's members");
  // Sharing the store's gid is not enough without a --shm-group.
  CHECK_FALSE(policy.Decide(Peer(65534, 1000)).allowed);
}

TEST_CASE("shm access: a group admits its members by effective or supplementary gid") {
  ShmAccessPolicy policy = ShmAccessPolicy::WithGroup(1000, 998, "kvcached");
  CHECK(policy.group() == std::optional<gid_t>(998));
  CHECK(policy.group_name() == "kvcached");

  ShmAccessDecision effective = policy.Decide(Peer(2000, 998));
  CHECK(effective.allowed);
  CHECK(effective.reason == "uid 2000 is a member of group 'kvcached' (gid 998)");
  CHECK(policy.Decide(Peer(2000, 2000, {5, 998, 100})).allowed);
  CHECK(policy.Decide(Peer(1000, 1000)).allowed);
  CHECK(policy.Decide(Peer(0, 0)).allowed);

  ShmAccessDecision stranger = policy.Decide(Peer(65534, 65534, {100, 999}));
  CHECK_FALSE(stranger.allowed);
  CHECK(stranger.reason ==
        "uid 65534 (gid 65534) may not attach to this shared-memory socket: it admits only uid 0 "
        "(root), uid 1000 (the store's own) and members of group 'kvcached' (gid 998)");
}

TEST_CASE("shm access: the policy describes itself for a root store too") {
  CHECK(ShmAccessPolicy(0).Describe() == "uid 0 (root, the store's own)");
  CHECK(ShmAccessPolicy::WithGroup(0, 100, "users").Describe() ==
        "uid 0 (root, the store's own) and members of group 'users' (gid 100)");
  CHECK(ShmAccessPolicy(7).Describe() == "uid 0 (root) and uid 7 (the store's own)");
  ShmAccessDecision d = ShmAccessPolicy(0).Decide(Peer(65534, 65534));
  CHECK_FALSE(d.allowed);
  CHECK(d.reason.find("uid 65534 (gid 65534)") == 0);
}

TEST_CASE("shm access: --shm-group takes a name or a gid and refuses an unknown group") {
  Result<ShmAccessPolicy> none = ShmAccessPolicy::WithGroupNamed(1000, "");
  REQUIRE(none.ok());
  CHECK_FALSE(none->group().has_value());

  // Group 0 is "root" on every Linux system.
  Result<ShmAccessPolicy> by_name = ShmAccessPolicy::WithGroupNamed(1000, "root");
  REQUIRE(by_name.ok());
  CHECK(by_name->group() == std::optional<gid_t>(0));
  CHECK(by_name->group_name() == "root");
  Result<ShmAccessPolicy> by_gid = ShmAccessPolicy::WithGroupNamed(1000, "0");
  REQUIRE(by_gid.ok());
  CHECK(by_gid->group() == std::optional<gid_t>(0));
  CHECK(by_gid->group_name() == "root");
  // A gid the group database does not know is still a gid.
  Result<ShmAccessPolicy> bare = ShmAccessPolicy::WithGroupNamed(1000, "3999999");
  REQUIRE(bare.ok());
  CHECK(bare->group() == std::optional<gid_t>(3999999));

  Result<ShmAccessPolicy> unknown = ShmAccessPolicy::WithGroupNamed(1000, "no-such-group-kvc");
  REQUIRE_FALSE(unknown.ok());
  CHECK(unknown.code() == ErrorCode::INVALID_PARAMS);
  CHECK(unknown.status().message().find("'no-such-group-kvc': no such group") != std::string::npos);
  CHECK_FALSE(ShmAccessPolicy::WithGroupNamed(1000, "99999999999").ok());  // past gid_t
}

TEST_CASE("shm access: peer credentials come from the kernel") {
  int fds[2];
  REQUIRE(::socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) == 0);
  Result<PeerCredentials> peer = ReadPeerCredentials(fds[0]);
  REQUIRE(peer.ok());
  CHECK(peer->pid == ::getpid());
  CHECK(peer->uid == ::geteuid());
  CHECK(peer->gid == ::getegid());
  std::vector<gid_t> mine(static_cast<size_t>(::getgroups(0, nullptr)));
  mine.resize(static_cast<size_t>(::getgroups(static_cast<int>(mine.size()), mine.data())));
  std::vector<gid_t> theirs = peer->groups;
  std::sort(mine.begin(), mine.end());
  std::sort(theirs.begin(), theirs.end());
  CHECK(theirs == mine);
  ::close(fds[0]);
  ::close(fds[1]);

  Result<PeerCredentials> not_a_socket = ReadPeerCredentials(-1);
  CHECK(not_a_socket.code() == ErrorCode::RPC_FAIL);
}

}  // namespace
}  // namespace kvcached
