#include "core/hello_policy.h"

#include <doctest/doctest.h>

#include <string>

namespace kvcached {
namespace {

constexpr char kSecret[] = "0123456789abcdef-cluster";

AuthToken Token() {
  Result<AuthToken> t = AuthToken::FromString(kSecret);
  REQUIRE(t.ok());
  return *t;
}

HelloRequest Hello(PeerRole role, std::string id, std::string token = "") {
  return HelloRequest{
      static_cast<uint8_t>(role), std::move(id), "host-a", std::move(token), "", ""};
}

HelloPolicy StorePort(const AuthToken* token) {
  return HelloPolicy{token, kStorePortRoles, kRpcVersion, "store"};
}

TEST_CASE("Hello policy: a well-formed Hello is accepted by every server") {
  AuthToken token = Token();
  const AuthToken* with_token = &token;
  for (const AuthToken* t : {static_cast<const AuthToken*>(nullptr), with_token}) {
    CAPTURE(t != nullptr);
    HelloDecision master = DecideHello(kRpcVersion, Hello(PeerRole::kStore, "store-1", kSecret),
                                       HelloPolicy{t, kMasterRoles, kRpcVersion, "master"});
    CHECK(master.accepted());
    CHECK(master.reason.empty());
    CHECK(
        DecideHello(kRpcVersion, Hello(PeerRole::kClient, "c", kSecret), StorePort(t)).accepted());
    CHECK(DecideHello(kRpcVersion, Hello(PeerRole::kStore, "s", kSecret), StorePort(t)).accepted());
  }
}

TEST_CASE("Hello policy: without a token the field is ignored") {
  CHECK(
      DecideHello(kRpcVersion, Hello(PeerRole::kClient, "c", "anything at all"), StorePort(nullptr))
          .accepted());
}

TEST_CASE("Hello policy: a version mismatch names both versions and goes as an error frame") {
  HelloDecision d = DecideHello(7, Hello(PeerRole::kClient, "c"), StorePort(nullptr));
  CHECK(d.code == ErrorCode::INVALID_VERSION);
  CHECK(d.error_frame);
  CHECK(d.reason ==
        "protocol version mismatch: the peer speaks version 7, this store speaks version " +
            std::to_string(kRpcVersion));
  HelloDecision m = CheckFrameVersion(1, HelloPolicy{});
  CHECK(m.code == ErrorCode::INVALID_VERSION);
  CHECK(m.reason ==
        "protocol version mismatch: the peer speaks version 1, this master speaks version " +
            std::to_string(kRpcVersion));
  CHECK(CheckFrameVersion(kRpcVersion, HelloPolicy{}).accepted());
}

TEST_CASE("Hello policy: a tenant id outside the rule is refused with the rule") {
  HelloRequest h = Hello(PeerRole::kClient, "c");
  h.tenant = "team a";
  HelloDecision d = DecideHello(kRpcVersion, h, HelloPolicy{});
  CHECK(d.code == ErrorCode::INVALID_PARAMS);
  CHECK(d.reason.find("letters, digits") != std::string::npos);
  h.tenant = "team-a";
  CHECK(DecideHello(kRpcVersion, h, HelloPolicy{}).accepted());
  h.tenant = "default";
  CHECK(DecideHello(kRpcVersion, h, HelloPolicy{}).accepted());
}

TEST_CASE("Hello policy: a wrong or missing token is refused before anything else is looked at") {
  AuthToken token = Token();
  for (std::string wrong :
       {std::string(), std::string("0123456789abcdef-clusteR"), std::string(kSecret) + "x"}) {
    CAPTURE(wrong);
    // Even with no client id and an unknown role, the token is what is named.
    HelloRequest h = Hello(PeerRole::kClient, "", wrong);
    h.role = 9;
    HelloDecision d = DecideHello(kRpcVersion, h, StorePort(&token));
    CHECK(d.code == ErrorCode::ILLEGAL_CLIENT);
    CHECK_FALSE(d.error_frame);
    CHECK(d.reason == "missing or wrong cluster token");
  }
}

TEST_CASE("Hello policy: a Hello needs a client id of at most kMaxIdBytes") {
  HelloDecision empty = DecideHello(kRpcVersion, Hello(PeerRole::kClient, ""), StorePort(nullptr));
  CHECK(empty.code == ErrorCode::INVALID_PARAMS);
  CHECK(empty.reason == "Hello needs a client id");
  CHECK(DecideHello(kRpcVersion, Hello(PeerRole::kClient, std::string(kMaxIdBytes, 'c')),
                    StorePort(nullptr))
            .accepted());
  HelloDecision longer = DecideHello(
      kRpcVersion, Hello(PeerRole::kClient, std::string(kMaxIdBytes + 1, 'c')), HelloPolicy{});
  CHECK(longer.code == ErrorCode::INVALID_PARAMS);
  CHECK(longer.reason == "client id of 257 bytes (at most 256)");
}

TEST_CASE(
    "Hello policy: roles: unknown ones are invalid, known ones outside the set are not admitted") {
  for (uint8_t role : {0, 4, 255}) {
    CAPTURE(static_cast<int>(role));
    HelloRequest h = Hello(PeerRole::kClient, "c");
    h.role = role;
    HelloDecision d = DecideHello(kRpcVersion, h, HelloPolicy{});
    CHECK(d.code == ErrorCode::INVALID_PARAMS);
    CHECK(d.reason == "unknown role " + std::to_string(role));
  }
  // The master admits admins; a store's ports do not.
  CHECK(DecideHello(kRpcVersion, Hello(PeerRole::kAdmin, "ops"), HelloPolicy{}).accepted());
  HelloDecision d = DecideHello(kRpcVersion, Hello(PeerRole::kAdmin, "ops"), StorePort(nullptr));
  CHECK(d.code == ErrorCode::ILLEGAL_CLIENT);
  CHECK(d.reason == "role 3 (admin) may not say Hello to this store; it admits client, store");
}

TEST_CASE("Hello policy: RoleSet holds exactly the roles it was given") {
  constexpr RoleSet only_store{PeerRole::kStore};
  static_assert(only_store.Contains(2) && !only_store.Contains(1) && !only_store.Contains(3));
  static_assert(!only_store.Contains(10));  // 10 & 7 == 2: no aliasing of wire values
  static_assert(kMasterRoles.Contains(1) && kMasterRoles.Contains(2) && kMasterRoles.Contains(3));
  static_assert(!kMasterRoles.Contains(0) && !kMasterRoles.Contains(4));
  CHECK(std::string(RoleName(1)) == "client");
  CHECK(std::string(RoleName(3)) == "admin");
  CHECK(std::string(RoleName(200)) == "unknown");
}

TEST_CASE(
    "Hello policy: AnswerHello: the server's fields when accepted, nothing about the cluster when "
    "not") {
  HelloResponse served;
  served.master_id = "m-1";
  served.lease_ttl_ms = 5000;
  served.segment = "seg";
  served.segment_size = 4096;
  served.message = "stale";
  HelloResponse ok = AnswerHello(HelloDecision{}, served);
  CHECK(ok.code == 0);
  CHECK(ok.master_id == "m-1");
  CHECK(ok.lease_ttl_ms == 5000);
  CHECK(ok.segment == "seg");
  CHECK(ok.segment_size == 4096);
  CHECK(ok.message.empty());

  HelloDecision refused{ErrorCode::ILLEGAL_CLIENT, "missing or wrong cluster token"};
  HelloResponse no = AnswerHello(refused, served);
  CHECK(no.code == static_cast<int32_t>(ErrorCode::ILLEGAL_CLIENT));
  CHECK(no.server_version == kRpcVersion);
  CHECK(no.message == "missing or wrong cluster token");
  CHECK(no.master_id.empty());
  CHECK(no.lease_ttl_ms == 0);
  CHECK(no.segment.empty());
  CHECK(no.segment_size == 0);
}

}  // namespace
}  // namespace kvcached
