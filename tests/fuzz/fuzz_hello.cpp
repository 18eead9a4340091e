// libFuzzer target: the one Hello decision (core/hello_policy.h). The first
// two bytes pick what the server requires (a token or none, which roles,
// the frame's version); the rest is decoded as a HelloRequest body, as every
// server does, and decided. The decision must agree with a model written
// from docs/protocol.md: in particular, accept implies the version matched,
// the token matched when one is required, a client id of 1 to kMaxIdBytes
// bytes and an admitted role. A refusal must carry a bounded reason with no
// peer-supplied text, and its answer must encode and decode to itself.
#include <cctype>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/hello_policy.h"

namespace {

using kvcached::PeerRole;
using kvcached::RoleSet;

constexpr char kSecret[] = "fuzz-cluster-token-0123456789";

// Indexed by a mask: bit 0 admits clients, bit 1 stores, bit 2 admins.
constexpr RoleSet kRoleSets[8] = {
    RoleSet{},
    RoleSet{PeerRole::kClient},
    RoleSet{PeerRole::kStore},
    RoleSet{PeerRole::kClient, PeerRole::kStore},
    RoleSet{PeerRole::kAdmin},
    RoleSet{PeerRole::kClient, PeerRole::kAdmin},
    RoleSet{PeerRole::kStore, PeerRole::kAdmin},
    RoleSet{PeerRole::kClient, PeerRole::kStore, PeerRole::kAdmin},
};

const kvcached::AuthToken& Token() {
  static const kvcached::AuthToken token = *kvcached::AuthToken::FromString(kSecret);
  return token;
}

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

// What docs/protocol.md says the answer must be, written without the code
// under test.
kvcached::ErrorCode Expected(uint16_t version, const kvcached::HelloRequest& h, bool token_required,
                             uint8_t role_mask) {
  using kvcached::ErrorCode;
  if (version != kvcached::kRpcVersion) return ErrorCode::INVALID_VERSION;
  if (token_required && h.token != kSecret) return ErrorCode::ILLEGAL_CLIENT;
  if (h.client_id.empty() || h.client_id.size() > kvcached::kMaxIdBytes) {
    return ErrorCode::INVALID_PARAMS;
  }
  if (h.role < 1 || h.role > 3) return ErrorCode::INVALID_PARAMS;
  if ((role_mask & (1u << (h.role - 1))) == 0) return ErrorCode::ILLEGAL_CLIENT;
  // The tenant: white space around it ignored; empty or "default", else 1
  // to 64 of [A-Za-z0-9._-].
  std::string_view t = h.tenant;
  auto blank = [](char c) { return std::isspace(static_cast<unsigned char>(c)) != 0; };
  while (!t.empty() && blank(t.front())) t.remove_prefix(1);
  while (!t.empty() && blank(t.back())) t.remove_suffix(1);
  if (t.size() > 64) return ErrorCode::INVALID_PARAMS;
  for (char c : t) {
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') {
      return ErrorCode::INVALID_PARAMS;
    }
  }
  return ErrorCode::OK;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvcached;
  if (size < 2) return 0;
  // Byte 0: bit 0 a token is required; bits 1-3 the role mask; bit 7 the
  // frame's version is byte 1 instead of kRpcVersion.
  const uint8_t knobs = data[0];
  const bool token_required = (knobs & 1) != 0;
  const uint8_t role_mask = (knobs >> 1) & 7;
  const uint16_t version = (knobs & 0x80) ? data[1] : kRpcVersion;
  HelloPolicy policy{token_required ? &Token() : nullptr, kRoleSets[role_mask], kRpcVersion,
                     "store"};

  std::string_view body(reinterpret_cast<const char*>(data + 2), size - 2);
  HelloRequest hello;
  if (!DecodeBody(body, hello).ok()) return 0;  // a server closes without deciding
  // The codec is canonical: what decoded encodes back to the same bytes.
  Require(EncodeBody(hello) == body);

  HelloDecision d = DecideHello(version, hello, policy);
  Require(d.code == Expected(version, hello, token_required, role_mask));
  HelloDecision again = DecideHello(version, hello, policy);
  Require(again.code == d.code && again.reason == d.reason && again.error_frame == d.error_frame);

  if (d.accepted()) {
    Require(version == kRpcVersion);
    Require(!token_required || hello.token == kSecret);
    Require(!hello.client_id.empty() && hello.client_id.size() <= kMaxIdBytes);
    Require(policy.roles.Contains(hello.role));
    Require(d.reason.empty() && !d.error_frame);
    HelloResponse served;
    served.segment = "seg";
    served.segment_size = 1;
    HelloResponse res = AnswerHello(d, served);
    Require(res.code == 0 && res.segment == "seg" && res.message.empty());
    return 0;
  }
  Require(!d.reason.empty() && d.reason.size() <= kMaxMessageBytes);
  Require(d.error_frame == (d.code == ErrorCode::INVALID_VERSION));
  // No peer-supplied text in a reason: the same Hello with other bytes in
  // every string (the same lengths, the token still right or wrong) gets
  // the same reason.
  HelloRequest neutral;
  neutral.role = hello.role;
  neutral.client_id.assign(hello.client_id.size(), 'c');
  neutral.token = hello.token == kSecret ? kSecret : "";
  // The tenant, as valid or not as it was: white space kept, allowed bytes
  // 't', others '/'.
  for (char c : hello.tenant) {
    auto u = static_cast<unsigned char>(c);
    bool allowed = std::isalnum(u) || c == '.' || c == '_' || c == '-';
    neutral.tenant += std::isspace(u) ? c : allowed ? 't' : '/';
  }
  HelloDecision n = DecideHello(version, neutral, policy);
  Require(n.code == d.code && n.reason == d.reason);
  if (!d.error_frame) {
    HelloResponse served;
    served.master_id = "master-secret-id";
    served.lease_ttl_ms = 5000;
    HelloResponse res = AnswerHello(d, served);
    HelloResponse decoded;
    Require(DecodeBody(EncodeBody(res), decoded).ok());
    Require(decoded.code == static_cast<int32_t>(d.code) && decoded.code != 0);
    Require(decoded.message == d.reason);
    Require(decoded.master_id.empty() && decoded.lease_ttl_ms == 0 && decoded.segment.empty());
  }
  return 0;
}
