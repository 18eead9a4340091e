// Black-box tests of the connection and frame limits of `kvcached master`
// and `kvcached store` (docs/protocol.md, "Limits"): the real binary on free
// loopback ports, driven by raw sockets that behave as hostile or idle
// peers, and by the RPC client and client library as real peers.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <string>
#include <vector>

#include "core/rpc_protocol.h"
#include "kvcached/client.h"
#include "kvcached_process.h"
#include "net/rpc_client.h"

namespace kvcached {
namespace {

using testing::KvcachedProcess;
using testing::LabeledMetric;
using testing::WaitFor;
using namespace std::chrono_literals;

std::vector<std::string> MasterArgs(std::vector<std::string> extra = {}) {
  std::vector<std::string> a = {"master", "--port", "0", "--admin-port", "0", "--no-meta"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// A raw TCP connection to 127.0.0.1:port; reads wait at most 20 s.
struct RawPeer {
  explicit RawPeer(uint16_t port) {
    fd = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    REQUIRE(connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0);
    timeval tv{20, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
  }
  ~RawPeer() {
    if (fd >= 0) close(fd);
  }
  RawPeer(const RawPeer&) = delete;
  RawPeer& operator=(const RawPeer&) = delete;

  bool Send(const std::string& bytes) {
    return send(fd, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
  }
  void SendHeader(MsgType type, uint32_t body_bytes) {
    FrameHeader h;
    h.type = static_cast<uint16_t>(type);
    h.request_id = 7;
    h.body_bytes = body_bytes;
    std::string raw(kFrameHeaderBytes, '\0');
    EncodeHeader(h, reinterpret_cast<unsigned char*>(raw.data()));
    REQUIRE(Send(raw));
  }
  // Reads one whole frame; false on EOF, error or timeout.
  bool ReadFrame(FrameHeader& head, std::string& body) {
    std::string raw = ReadExact(kFrameHeaderBytes);
    if (raw.size() != kFrameHeaderBytes) return false;
    if (!DecodeHeader(reinterpret_cast<const unsigned char*>(raw.data()), 1 << 20, head).ok())
      return false;
    body = ReadExact(head.body_bytes);
    return body.size() == head.body_bytes;
  }
  // Says Hello as `role` and returns the answer's code (-1: no answer).
  int32_t Hello(PeerRole role, const std::string& id) {
    REQUIRE(
        Send(EncodeFrame(MsgType::kHello, 0, 1,
                         HelloRequest{static_cast<uint8_t>(role), id, "limits-host", "", "", ""})));
    FrameHeader head;
    std::string body;
    if (!ReadFrame(head, body)) return -1;
    HelloResponse res;
    REQUIRE(DecodeBody(body, res).ok());
    last_message = res.message;
    return res.code;
  }
  // True when the server closed the connection (a read returns EOF or a
  // reset) within the read timeout; bytes before it are skipped.
  bool ClosedByServer() {
    char buf[4096];
    while (true) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n == 0) return true;
      if (n < 0) return errno == ECONNRESET;
    }
  }
  std::string ReadExact(size_t n) {
    std::string out(n, '\0');
    size_t got = 0;
    while (got < n) {
      ssize_t r = recv(fd, out.data() + got, n - got, 0);
      if (r <= 0) break;
      got += static_cast<size_t>(r);
    }
    out.resize(got);
    return out;
  }

  int fd = -1;
  std::string last_message;
};

std::unique_ptr<RpcClient> Client(const std::string& address, const std::string& id,
                                  PeerRole role = PeerRole::kClient) {
  RpcClientOptions o;
  o.address = address;
  o.hello.role = static_cast<uint8_t>(role);
  o.hello.client_id = id;
  o.hello.host_id = "limits-host";
  o.connect_attempts = 1;
  return std::make_unique<RpcClient>(o);
}

TEST_CASE("limits: a frame's announced length allocates nothing; each kind has a maximum") {
  KvcachedProcess master(MasterArgs());
  uint16_t port = master.Port("rpc");
  long before_kib = master.RssKiB();
  REQUIRE(before_kib > 0);

  // 32 peers say Hello, then announce a 64 MiB RemountSegment (the one kind
  // allowed that big) and send nothing more.
  constexpr int kPeers = 32;
  constexpr uint32_t kAnnounced = 64u << 20;
  std::vector<std::unique_ptr<RawPeer>> flood;
  for (int i = 0; i < kPeers; ++i) {
    flood.push_back(std::make_unique<RawPeer>(port));
    REQUIRE(flood.back()->Hello(PeerRole::kClient, "flood-" + std::to_string(i)) == 0);
    flood.back()->SendHeader(MsgType::kRemountSegment, kAnnounced);
  }
  // A real client is served meanwhile.
  auto good = Client(master.Address("rpc"), "good");
  CodesResponse codes;
  REQUIRE(good->Call(MsgType::kExistKey, KeysRequest{{"k"}}, codes).ok());

  // Had the master allocated what was announced it would hold 2 GiB; it
  // must stay within +64 MiB while the announcements are pending.
  const long bound_kib = before_kib + (64 << 10);
  long peak_kib = 0;
  bool over = WaitFor(
      [&] {
        peak_kib = std::max(peak_kib, master.RssKiB());
        return peak_kib > bound_kib;
      },
      2s);
  MESSAGE("master RSS " << before_kib << " KiB before, peak " << peak_kib << " KiB with " << kPeers
                        << " peers announcing " << kAnnounced << " bytes each");
  CHECK_FALSE(over);

  // A Ping over its kind's limit is refused from its header: an error
  // answer naming the limit, then the connection is closed.
  RawPeer ping(port);
  REQUIRE(ping.Hello(PeerRole::kClient, "pinger") == 0);
  ping.SendHeader(MsgType::kPing, 1u << 20);
  FrameHeader head;
  std::string body;
  REQUIRE(ping.ReadFrame(head, body));
  CHECK((head.flags & kFlagError) != 0);
  ErrorBody err;
  REQUIRE(DecodeBody(body, err).ok());
  MESSAGE("limit hit: " << err.message);
  CHECK(err.code == static_cast<int32_t>(ErrorCode::INVALID_PARAMS));
  CHECK(err.message.find("Ping") != std::string::npos);
  CHECK(err.message.find("limit") != std::string::npos);
  CHECK(ping.ClosedByServer());
  CHECK(good->Call(MsgType::kExistKey, KeysRequest{{"k"}}, codes).ok());
  CHECK(master.Log().find("over the limit for this kind") != std::string::npos);
}

TEST_CASE("limits: reserved slots let a store connect when clients fill the rest") {
  KvcachedProcess master(MasterArgs({"--max-connections", "40", "--reserved-store-connections", "8",
                                     "--max-connections-per-peer", "1000"}));
  uint16_t port = master.Port("rpc");
  std::vector<std::unique_ptr<RawPeer>> idle;
  for (int i = 0; i < 32; ++i) {
    idle.push_back(std::make_unique<RawPeer>(port));
    REQUIRE(idle.back()->Hello(PeerRole::kClient, "idle-" + std::to_string(i)) == 0);
  }
  // The 33rd client is refused with a reason.
  RawPeer extra(port);
  CHECK(extra.Hello(PeerRole::kClient, "one-too-many") ==
        static_cast<int32_t>(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS));
  MESSAGE("limit hit: " << extra.last_message);
  CHECK(extra.last_message.find("--reserved-store-connections") != std::string::npos);
  CHECK(extra.ClosedByServer());
  auto late = Client(master.Address("rpc"), "late-client");
  Status refused = late->Connect();
  CHECK(refused.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);

  // A store still connects and mounts.
  auto store = Client(master.Address("rpc"), "store-1", PeerRole::kStore);
  REQUIRE(store->Connect().ok());
  StatusResponse mounted;
  REQUIRE(store
              ->Call(MsgType::kMountSegment,
                     MountRequest{{"seg-1", 0x10000, 1 << 20, "tcp://127.0.0.1:1"}}, mounted)
              .ok());
  CHECK(mounted.code == 0);
  CHECK(LabeledMetric(master.Address("admin"), "kvcached_rpc_connections_refused_total",
                      "reason=\"reserved\"") >= 2);
}

TEST_CASE("limits: the per-peer connection cap refuses the 6th connection and counts it") {
  KvcachedProcess master(MasterArgs({"--max-connections-per-peer", "5"}));
  std::vector<std::unique_ptr<RpcClient>> held;
  for (int i = 0; i < 5; ++i) {
    held.push_back(Client(master.Address("rpc"), "peer-" + std::to_string(i)));
    REQUIRE(held.back()->Connect().ok());
  }
  auto sixth = Client(master.Address("rpc"), "peer-6");
  Status st = sixth->Connect();
  MESSAGE("limit hit: " << st.ToString());
  CHECK(st.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  CHECK(st.message().find("--max-connections-per-peer 5") != std::string::npos);
  CHECK(LabeledMetric(master.Address("admin"), "kvcached_rpc_connections_refused_total",
                      "reason=\"per_peer\"") == 1);
  // Freed slots are taken again.
  held.pop_back();
  CHECK(WaitFor([&] { return sixth->Connect().ok(); }, 10s));
}

TEST_CASE("limits: idle connections are closed; a pooled client reconnects on its next call") {
  KvcachedProcess master(MasterArgs({"--idle-timeout", "300ms"}));
  std::string admin = master.Address("admin");
  RawPeer idle(master.Port("rpc"));
  REQUIRE(idle.Hello(PeerRole::kClient, "sleepy") == 0);
  CHECK(idle.ClosedByServer());
  // The stream closes the socket before its handler counts the close: wait
  // for the count rather than read it at once.
  long closed = 0;
  CHECK(WaitFor(
      [&] {
        closed = LabeledMetric(admin, "kvcached_rpc_idle_closed_total", "server=\"rpc\"");
        return closed >= 1;
      },
      10s));
  MESSAGE("limit hit: --idle-timeout 300ms closed " << closed << " connection(s)");

  auto client = Client(master.Address("rpc"), "pooled");
  REQUIRE(client->Connect().ok());
  // Wait until the master has closed the client's idle connection too.
  REQUIRE(WaitFor(
      [&] {
        return LabeledMetric(admin, "kvcached_rpc_idle_closed_total", "server=\"rpc\"") >=
               closed + 1;
      },
      20s));
  // PutStart is not idempotent: it must go out on a fresh connection, not
  // fail on the closed one.
  ReplicaListResponse placed;
  CHECK(client->Call(MsgType::kPutStart, PutStartRequest{1, "", {{"k", 1}}}, placed).ok());
}

TEST_CASE("limits: the client library survives its master and data connections closed as idle") {
  KvcachedProcess master(MasterArgs({"--idle-timeout", "300ms"}));
  std::string admin = master.Address("admin");
  KvcachedProcess store({"store", "--master", master.Address("rpc"), "--segment-size", "8MiB",
                         "--segment-name", "s1", "--host-id", "limits-host", "--ping-interval",
                         "100ms", "--idle-timeout", "300ms"});
  ClientConfig config;
  config.master_server_addr = master.Address("rpc");
  config.local_hostname = "limits-host";
  config.transport = TransportMode::kTcp;
  auto opened = kvcached::Client::Open(config);
  REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  auto c = std::move(opened).value();
  std::string value(4096, 'v');
  REQUIRE(c->Put("before", value.data(), value.size()).ok());
  long closed = LabeledMetric(admin, "kvcached_rpc_idle_closed_total", "server=\"rpc\"");
  REQUIRE(WaitFor(
      [&] {
        return LabeledMetric(admin, "kvcached_rpc_idle_closed_total", "server=\"rpc\"") > closed;
      },
      20s));
  // The store's data port closes the client's pooled TCP connection too.
  REQUIRE(WaitFor(
      [&] {
        return testing::Metric(store.Address("admin"), "kvcached_store_data_idle_closed_total") >=
               1;
      },
      20s));
  MESSAGE(
      "limit hit: --idle-timeout 300ms closed the client's pooled master and data "
      "connections");
  CHECK(c->Put("after", value.data(), value.size()).ok());
  std::string back(4096, '\0');
  Result<uint64_t> got = c->Get("before", back.data(), back.size());
  REQUIRE(got.ok());
  CHECK(back == value);
}

TEST_CASE("limits: the store's data port closes idle connections and caps each peer") {
  KvcachedProcess master(MasterArgs());
  KvcachedProcess store({"store", "--master", master.Address("rpc"), "--segment-size", "4MiB",
                         "--segment-name", "idle", "--idle-timeout", "300ms"});
  uint16_t data = store.Port("data");
  std::string admin = store.Address("admin");

  RawPeer idle(data);
  REQUIRE(idle.Hello(PeerRole::kClient, "sleepy") == 0);
  CHECK(idle.ClosedByServer());
  CHECK(WaitFor(
      [&] { return testing::Metric(admin, "kvcached_store_data_idle_closed_total") >= 1; }, 10s));
  MESSAGE("limit hit: data port --idle-timeout 300ms");

  // A second store whose idle timeout is long, so held connections stay.
  KvcachedProcess capped({"store", "--master", master.Address("rpc"), "--segment-size", "4MiB",
                          "--segment-name", "capped", "--max-connections-per-peer", "2"});
  data = capped.Port("data");
  admin = capped.Address("admin");
  RawPeer a(data), b(data);
  REQUIRE(a.Hello(PeerRole::kClient, "a") == 0);
  REQUIRE(b.Hello(PeerRole::kClient, "b") == 0);
  RawPeer c(data);
  CHECK(c.ClosedByServer());
  long refused =
      LabeledMetric(admin, "kvcached_store_data_connections_refused_total", "reason=\"per_peer\"");
  MESSAGE("limit hit: data port --max-connections-per-peer 2, refused " << refused);
  CHECK(refused == 1);
}

}  // namespace
}  // namespace kvcached
