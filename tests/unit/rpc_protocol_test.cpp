#include "core/rpc_protocol.h"

#include <doctest/doctest.h>

#include "core/wire.h"

namespace kvcached {
namespace {

template <typename T>
T RoundTrip(const T& in) {
  std::string body = EncodeBody(in);
  T out;
  Status st = DecodeBody(body, out);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(EncodeBody(out) == body);
  // Every strict prefix is refused, never read past.
  for (size_t n = 0; n < body.size(); ++n) {
    T partial;
    CHECK_FALSE(DecodeBody(std::string_view(body).substr(0, n), partial).ok());
  }
  // Trailing bytes are refused.
  T trailing;
  CHECK(DecodeBody(body + "x", trailing).code() == ErrorCode::INVALID_PARAMS);
  return out;
}

SegmentInfo Seg() { return {"store-a/seg0", 0x7f0000000000, 4ull << 30, "tcp://127.0.0.1:7000"}; }

TEST_CASE("every message round-trips and every prefix is refused") {
  HelloRequest hello{2, "client-1", "host-a", "token", "proof", "team-a"};
  CHECK(RoundTrip(hello).client_id == "client-1");
  CHECK(RoundTrip(hello).owner_proof == "proof");
  CHECK(RoundTrip(hello).tenant == "team-a");
  HelloResponse hr{0, kRpcVersion, "master-xyz", 10000, "welcome", "seg-a", 1 << 20};
  CHECK(RoundTrip(hr).lease_ttl_ms == 10000);
  CHECK(RoundTrip(hr).segment == "seg-a");
  CHECK(RoundTrip(hr).segment_size == (1u << 20));
  CHECK(RoundTrip(ErrorBody{-601, "no"}).code == -601);
  CHECK(RoundTrip(MountRequest{Seg()}).segment.size == (4ull << 30));
  CHECK(RoundTrip(UnmountRequest{"s"}).name == "s");
  RemountRequest rm{Seg(), {{"k1", 0, 100, 7}, {"k2", 4096, 200, 8}}};
  CHECK(RoundTrip(rm).objects[1].checksum == 8);
  CHECK(RoundTrip(StatusResponse{-704, "gone"}).message == "gone");
  CHECK(RoundTrip(PingRequest{3}).segments_owned == 3);
  CHECK(RoundTrip(PingResponse{0, "m", true}).remount_needed);
  CHECK(RoundTrip(KeysRequest{{"a", "b", ""}}).keys.size() == 3);
  CHECK(RoundTrip(RemoveRequest{true, {"a"}}).force);
  CHECK(RoundTrip(CodesResponse{10000, {0, -704}}).codes[1] == -704);
  ReplicaListResponse rl{10000,
                         {{"s0", "tcp://a"}, {"s1", "tcp://b"}},
                         {{0, 10, 99, 1234, {{0, 64}, {1, 128}}}, {-704, 0, 0, 0, {}}}};
  CHECK(RoundTrip(rl).items[0].replicas[1].offset == 128);
  CHECK(RoundTrip(rl).items[0].version == 1234);
  CHECK(RoundTrip(PutStartRequest{2, "s0", {{"k", 1 << 20}}}).items[0].size == (1 << 20));
  CHECK(RoundTrip(PutEndRequest{{{"k", 42}}}).items[0].checksum == 42);
  CHECK(RoundTrip(ReleaseLeasesRequest{{{"k", 77}}}).items[0].version == 77);
  CHECK(RoundTrip(RemoveAllRequest{true}).force);
  CHECK(RoundTrip(RemoveAllResponse{0, 12}).removed == 12);
  CHECK(RoundTrip(SizesResponse{{{0, 5}, {-704, 0}}}).items[0].size == 5);
  TableUpdate tu{"s0", {{1, {"k", 0, 5, 9}}, {2, {"k", 0, 5, 0}}}};
  CHECK(RoundTrip(tu).changes[1].op == 2);
}

TEST_CASE("RDMA connect messages round-trip; other versions and odd parameters are refused") {
  RdmaQpParams qp;
  REQUIRE(ParseGid("::ffff:10.0.0.1", qp.gid).ok());
  qp.lid = 7;
  qp.qpn = 0x123456;
  qp.psn = 0xABCDEF;
  qp.mtu = 3;
  RdmaConnectRequest req{kRdmaLinkVersion, 2, qp};
  RdmaConnectRequest req_back = RoundTrip(req);
  CHECK(req_back.store_nic == 2);
  CHECK(req_back.client.gid == qp.gid);
  CHECK(req_back.client.qpn == 0x123456);
  CHECK(req_back.client.psn == 0xABCDEF);
  CHECK(RoundTrip(RdmaConnectResponse{kRdmaLinkVersion, qp}).store.lid == 7);

  auto refused = [](RdmaConnectRequest r, const char* why) {
    RdmaConnectRequest out;
    Status st = DecodeBody(EncodeBody(r), out);
    CHECK(st.code() == ErrorCode::INVALID_PARAMS);
    CHECK_MESSAGE(st.message().find(why) != std::string::npos, st.message());
  };
  RdmaConnectRequest v2 = req;
  v2.version = 2;
  refused(v2, "RDMA link version 2");
  RdmaConnectRequest big_psn = req;
  big_psn.client.psn = 0x1000000;
  refused(big_psn, "PSN");
  RdmaConnectRequest big_qpn = req;
  big_qpn.client.qpn = 0x1000000;
  refused(big_qpn, "queue pair number");
  for (uint8_t mtu : {0, 6, 255}) {
    RdmaConnectRequest m = req;
    m.client.mtu = mtu;
    refused(m, "MTU");
  }
}

TEST_CASE("limits are enforced before allocation") {
  SUBCASE("a huge list count in a tiny frame") {
    WireWriter w;
    w.U32(0xFFFFFFFF);
    KeysRequest out;
    Status st = DecodeBody(w.buffer(), out);
    CHECK(st.code() == ErrorCode::INVALID_PARAMS);
    CHECK(st.message().find("over the limit") != std::string::npos);
  }
  SUBCASE("a list count that cannot fit in the bytes left") {
    WireWriter w;
    w.U32(1000);
    w.U32(0);
    KeysRequest out;
    CHECK(DecodeBody(w.buffer(), out).message().find("cannot fit") != std::string::npos);
  }
  SUBCASE("a string length past the end") {
    WireWriter w;
    w.U32(1);
    w.U32(100);
    w.buffer() += "abc";
    KeysRequest out;
    CHECK(DecodeBody(w.buffer(), out).message().find("past the end") != std::string::npos);
  }
  SUBCASE("a key over the protocol limit") {
    KeysRequest big{{std::string(kMaxKeyBytes + 1, 'k')}};
    KeysRequest out;
    CHECK(DecodeBody(EncodeBody(big), out).message().find("over the limit") != std::string::npos);
  }
  SUBCASE("a boolean that is not 0 or 1") {
    std::string body = EncodeBody(RemoveAllRequest{true});
    body[0] = 2;
    RemoveAllRequest out;
    CHECK_FALSE(DecodeBody(body, out).ok());
  }
  SUBCASE("a replica pointing outside the segment list") {
    ReplicaListResponse rl{1, {{"s0", "e"}}, {{0, 1, 1, 1, {{1, 0}}}}};
    ReplicaListResponse out;
    CHECK(DecodeBody(EncodeBody(rl), out).message().find("segment index") != std::string::npos);
  }
  SUBCASE("an unknown table operation") {
    TableUpdate tu{"s", {{9, {"k", 0, 1, 0}}}};
    TableUpdate out;
    CHECK(DecodeBody(EncodeBody(tu), out).message().find("table operation") != std::string::npos);
  }
}

TEST_CASE("RangeWithin is exact at the edges and never overflows") {
  constexpr uint64_t kSize = 1000;
  CHECK(RangeWithin({0, 0}, kSize));
  CHECK(RangeWithin({0, kSize}, kSize));
  CHECK(RangeWithin({kSize, 0}, kSize));
  CHECK(RangeWithin({kSize - 1, 1}, kSize));
  CHECK_FALSE(RangeWithin({kSize - 1, 2}, kSize));
  CHECK_FALSE(RangeWithin({kSize, 1}, kSize));
  CHECK_FALSE(RangeWithin({kSize + 1, 0}, kSize));
  CHECK_FALSE(RangeWithin({0, kSize + 1}, kSize));
  CHECK_FALSE(RangeWithin({UINT64_MAX, 1}, kSize));
  CHECK_FALSE(RangeWithin({1, UINT64_MAX}, kSize));       // offset + length wraps to 0
  CHECK_FALSE(RangeWithin({UINT64_MAX - 5, 16}, kSize));  // wraps to 10
  CHECK(RangeWithin({UINT64_MAX - 5, 5}, UINT64_MAX));
  CHECK_FALSE(RangeWithin({UINT64_MAX - 5, 6}, UINT64_MAX));
  DataRange out;
  CHECK(DecodeBody(EncodeBody(DataRange{7, 9}), out).ok());
  CHECK(out.offset == 7);
  CHECK(out.length == 9);
  CHECK(EncodeBody(DataRange{}).size() == kDataRangeBytes);
}

TEST_CASE("frame headers") {
  FrameHeader h;
  h.type = static_cast<uint16_t>(MsgType::kPutStart);
  h.flags = kFlagResponse;
  h.request_id = 0x1122334455667788ull;
  h.body_bytes = 77;
  unsigned char buf[kFrameHeaderBytes];
  EncodeHeader(h, buf);
  CHECK(buf[0] == 'K');
  CHECK(buf[1] == 'V');
  CHECK(buf[2] == 'C');
  CHECK(buf[3] == '1');
  FrameHeader out;
  REQUIRE(DecodeHeader(buf, 100, out).ok());
  CHECK(out.request_id == h.request_id);
  CHECK(out.type == h.type);
  CHECK(out.body_bytes == 77);
  CHECK(DecodeHeader(buf, 76, out).message().find("over the limit") != std::string::npos);
  unsigned char bad[kFrameHeaderBytes];
  std::memcpy(bad, buf, sizeof bad);
  bad[0] = 'G';
  CHECK(DecodeHeader(bad, 100, out).message().find("magic") != std::string::npos);
  std::memcpy(bad, buf, sizeof bad);
  bad[10] = 1;  // reserved
  CHECK_FALSE(DecodeHeader(bad, 100, out).ok());
  std::memcpy(bad, buf, sizeof bad);
  bad[8] = 0x80;  // unknown flag
  CHECK_FALSE(DecodeHeader(bad, 100, out).ok());
  // The version is reported, not judged, so the caller can name both.
  std::memcpy(bad, buf, sizeof bad);
  bad[4] = 9;
  REQUIRE(DecodeHeader(bad, 100, out).ok());
  CHECK(out.version == 9);
  std::string frame = EncodeFrame(MsgType::kPing, 0, 5, PingRequest{2});
  CHECK(frame.size() == kFrameHeaderBytes + 4);
  CHECK(std::string(MsgTypeName(MsgType::kGetReplicaList)) == "GetReplicaList");
  CHECK(std::string(MsgTypeName(static_cast<MsgType>(999))) == "Unknown");
}

// The largest request of each kind that the field limits allow must fit its
// kind's maximum exactly; one byte more is refused from the header alone.
TEST_CASE("each request kind has a maximum body derived from its fields") {
  auto header = [](MsgType type, uint32_t body_bytes) {
    FrameHeader h;
    h.type = static_cast<uint16_t>(type);
    h.body_bytes = body_bytes;
    return h;
  };
  std::string key(kMaxKeyBytes, 'k');
  KeysRequest keys;
  keys.keys.assign(kMaxBatchKeys, key);
  PutStartRequest start{1, std::string(kMaxIdBytes, 's'), {}};
  start.items.assign(kMaxBatchKeys, PutStartItem{key, 1});
  PutEndRequest end;
  end.items.assign(kMaxBatchKeys, PutEndItem{key, 1});
  RemoveRequest remove{true, keys.keys};
  MountRequest mount{{std::string(kMaxIdBytes, 'n'), 1, 2, std::string(kMaxEndpointBytes, 'e')}};
  HelloRequest hello{1,
                     std::string(kMaxIdBytes, 'c'),
                     std::string(kMaxIdBytes, 'h'),
                     std::string(kMaxTokenBytes, 't'),
                     std::string(kMaxOwnerProofBytes, 'p'),
                     std::string(kMaxIdBytes, 'n')};
  const std::vector<std::pair<MsgType, std::string>> largest = {
      {MsgType::kPing, EncodeBody(PingRequest{1})},
      {MsgType::kExistKey, EncodeBody(keys)},
      {MsgType::kGetReplicaList, EncodeBody(keys)},
      {MsgType::kGetSize, EncodeBody(keys)},
      {MsgType::kPutRevoke, EncodeBody(keys)},
      {MsgType::kPutStart, EncodeBody(start)},
      {MsgType::kPutEnd, EncodeBody(end)},
      {MsgType::kRemove, EncodeBody(remove)},
      {MsgType::kRemoveAll, EncodeBody(RemoveAllRequest{true})},
      {MsgType::kMountSegment, EncodeBody(mount)},
      {MsgType::kUnmountSegment, EncodeBody(UnmountRequest{std::string(kMaxIdBytes, 'n')})},
      {MsgType::kDataRead, EncodeBody(DataRange{1, 2})},
  };
  for (const auto& entry : largest) {
    // Named copies, not structured bindings: clang 14 cannot capture those.
    const MsgType type = entry.first;
    const std::string& body = entry.second;
    const char* name = MsgTypeName(type);
    CAPTURE(name);
    CHECK(MaxRequestBodyBytes(type) == body.size());
    CHECK(CheckRequestBodyLimit(header(type, body.size()), UINT32_MAX).ok());
    Status over = CheckRequestBodyLimit(header(type, body.size() + 1), UINT32_MAX);
    CHECK(over.code() == ErrorCode::INVALID_PARAMS);
    CHECK(over.message().find(MsgTypeName(type)) != std::string::npos);
  }
  CHECK(EncodeBody(hello).size() <= MaxRequestBodyBytes(MsgType::kHello));
  CHECK(MaxRequestBodyBytes(MsgType::kShmAttach) == 0);
  // Small kinds are small; only RemountSegment and DataWrite are left to the
  // server's configured maximum.
  CHECK(MaxRequestBodyBytes(MsgType::kPing) == 4);
  CHECK(MaxRequestBodyBytes(MsgType::kRemountSegment) == UINT32_MAX);
  CHECK(MaxRequestBodyBytes(static_cast<MsgType>(99)) == kMaxUnknownBodyBytes);
  Status capped = CheckRequestBodyLimit(header(MsgType::kRemountSegment, 65u << 20), 64u << 20);
  CHECK(capped.message().find("connection's limit of 67108864") != std::string::npos);
  Status ping = CheckRequestBodyLimit(header(MsgType::kPing, 5), UINT32_MAX);
  CHECK(ping.message() == "Ping frame body of 5 bytes over the limit for this kind of 4 bytes");
  // The header decoder applies the same rule.
  unsigned char raw[kFrameHeaderBytes];
  EncodeHeader(header(MsgType::kPing, 64u << 20), raw);
  FrameHeader out;
  CHECK_FALSE(DecodeRequestHeader(raw, UINT32_MAX, out).ok());
  CHECK(out.body_bytes == 64u << 20);
}

}  // namespace
}  // namespace kvcached
