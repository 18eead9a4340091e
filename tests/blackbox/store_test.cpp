// Black-box tests of `kvcached store` with a real master: mounting, the
// object table it keeps, remounting after a master kill -9, and unmounting
// on SIGTERM.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <regex>
#include <thread>

#include "core/rpc_protocol.h"
#include "core/segment_endpoint.h"
#include "data_client.h"
#include "kvcached_process.h"
#include "net/metadata_client.h"
#include "net/rpc_client.h"

namespace kvcached {
namespace {

using testing::DataClient;
using testing::HttpGet;
using testing::KvcachedProcess;
using testing::Metric;
using testing::WaitFor;
using namespace std::chrono_literals;

constexpr int32_t Code(ErrorCode c) { return static_cast<int32_t>(c); }

std::unique_ptr<RpcClient> Writer(const std::string& master) {
  RpcClientOptions o;
  o.address = master;
  o.hello.client_id = "writer";
  o.hello.host_id = "host-writer";
  auto c = std::make_unique<RpcClient>(o);
  REQUIRE(c->Connect().ok());
  return c;
}

int Found(RpcClient& c, const std::vector<std::string>& keys) {
  ReplicaListResponse r;
  if (!c.Call(MsgType::kGetReplicaList, KeysRequest{keys}, r).ok()) return -1;
  int found = 0;
  for (const ReplicaItem& it : r.items) found += it.code == 0;
  return found;
}

TEST_CASE("a store mounts, keeps its table, remounts after a master kill -9, unmounts on SIGTERM") {
  auto master = std::make_unique<KvcachedProcess>(
      std::vector<std::string>{"master", "--port", "0", "--admin-port", "0", "--meta-port", "0",
                               "--default-kv-lease-ttl", "300ms"});
  std::string rpc = master->Address("rpc");
  std::string port = std::to_string(master->Port("rpc"));
  KvcachedProcess store({"store", "--master", rpc, "--segment-size", "64MiB", "--segment-name",
                         "seg-a", "--ping-interval", "100ms"});
  std::string admin = store.Address("admin");
  CHECK(HttpGet(admin, "/health") == "OK\n");

  auto writer = Writer(rpc);
  std::vector<std::string> keys;
  PutStartRequest start{1, "seg-a", {}};
  PutEndRequest end;
  for (int i = 0; i < 50; ++i) {
    keys.push_back("obj-" + std::to_string(i));
    start.items.push_back({keys.back(), 64 << 10});
    end.items.push_back({keys.back(), static_cast<uint64_t>(1000 + i)});
  }
  ReplicaListResponse placed;
  REQUIRE(writer->Call(MsgType::kPutStart, start, placed).ok());
  REQUIRE(placed.segments.size() == 1);
  CHECK(placed.segments[0].name == "seg-a");
  CodesResponse ended;
  REQUIRE(writer->Call(MsgType::kPutEnd, end, ended).ok());
  // The store learns its table from the master.
  REQUIRE(WaitFor([&] { return Metric(admin, "kvcached_store_objects") == 50; }, 10s));
  CHECK(Metric(admin, "kvcached_store_object_bytes") == 50 * (64 << 10));

  CHECK(master->Stop(SIGKILL) == 128 + SIGKILL);
  master.reset();
  KvcachedProcess restarted({"master", "--port", port, "--admin-port", "0", "--meta-port", "0",
                             "--default-kv-lease-ttl", "300ms"});
  // Nobody but the store knows the objects now; it remounts by itself.
  REQUIRE(WaitFor([&] { return Found(*writer, keys) == 50; }, 10s));
  // The store counts the remount once the master's answer is back, which
  // may be a moment after the master has applied it.
  CHECK(WaitFor([&] { return Metric(admin, "kvcached_store_remounts_total") == 1; }, 10s));
  ReplicaListResponse after;
  REQUIRE(writer->Call(MsgType::kGetReplicaList, KeysRequest{{"obj-7"}}, after).ok());
  CHECK(after.items[0].checksum == 1007);

  CHECK(store.Stop(SIGTERM) == 0);
  CHECK(Found(*writer, keys) == 0);  // unmounted: its objects are gone
  CHECK(restarted.Log().find("unmount of segment 'seg-a' by client") != std::string::npos);
}

// Puts each key into `segment` with checksum `checksum` (metadata only: the
// master and the stores' tables are what this is about).
void PutInto(RpcClient& writer, const std::string& segment, const std::vector<std::string>& keys,
             uint64_t checksum) {
  PutStartRequest start{1, segment, {}};
  PutEndRequest end;
  for (const std::string& k : keys) {
    start.items.push_back({k, 64 << 10});
    end.items.push_back({k, checksum});
  }
  ReplicaListResponse placed;
  REQUIRE(writer.Call(MsgType::kPutStart, start, placed).ok());
  for (const ReplicaItem& it : placed.items) REQUIRE(it.code == 0);
  REQUIRE(placed.segments.size() == 1);
  REQUIRE(placed.segments[0].name == segment);
  CodesResponse ended;
  REQUIRE(writer.Call(MsgType::kPutEnd, end, ended).ok());
  for (int32_t code : ended.codes) REQUIRE(code == 0);
}

TEST_CASE(
    "a store stopped past the client TTL comes back empty: nothing removed meanwhile returns") {
  // Store a holds "moved" and "gone". It is stopped past the TTL; meanwhile
  // "moved" is put again on b and "gone" is put on b and removed; then the
  // master is killed and restarted before a resumes. Before a store forgot
  // its table in that case, the new master rebuilt "gone" (removed) and the
  // old "moved" from a's table.
  std::vector<std::string> master_args{
      "master", "--port",       "0",  "--admin-port",           "0",    "--meta-port",
      "0",      "--client-ttl", "1s", "--default-kv-lease-ttl", "200ms"};
  auto master = std::make_unique<KvcachedProcess>(master_args);
  std::string rpc = master->Address("rpc");
  std::string port = std::to_string(master->Port("rpc"));
  master_args[2] = port;
  KvcachedProcess a({"store", "--master", rpc, "--segment-size", "16MiB", "--segment-name", "seg-a",
                     "--ping-interval", "100ms"});
  KvcachedProcess b({"store", "--master", rpc, "--segment-size", "16MiB", "--segment-name", "seg-b",
                     "--ping-interval", "100ms"});
  std::string admin_a = a.Address("admin");
  std::string admin_b = b.Address("admin");
  auto writer = Writer(rpc);
  PutInto(*writer, "seg-a", {"moved", "gone", "kept"}, 1);
  REQUIRE(WaitFor([&] { return Metric(admin_a, "kvcached_store_objects") == 3; }, 10s));

  a.Signal(SIGSTOP);
  // The master drops a's objects once its TTL has passed.
  REQUIRE(WaitFor([&] { return Found(*writer, {"moved", "gone", "kept"}) == 0; }, 20s));
  PutInto(*writer, "seg-b", {"moved", "gone"}, 2);
  CodesResponse removed;
  REQUIRE(writer->Call(MsgType::kRemove, RemoveRequest{false, {"gone"}}, removed).ok());
  REQUIRE(removed.codes[0] == 0);
  REQUIRE(WaitFor([&] { return Metric(admin_b, "kvcached_store_objects") == 1; }, 10s));

  CHECK(master->Stop(SIGKILL) == 128 + SIGKILL);
  master.reset();
  KvcachedProcess restarted(master_args);
  REQUIRE(WaitFor([&] { return Found(*writer, {"moved"}) == 1; }, 10s));  // b remounted
  a.Signal(SIGCONT);
  // a finds it was stopped past the TTL, forgets its three entries, remounts empty.
  REQUIRE(WaitFor(
      [&] { return Metric(admin_a, "kvcached_store_table_entries_forgotten_total") == 3; }, 10s));
  REQUIRE(WaitFor([&] { return Metric(admin_a, "kvcached_store_remounts_total") >= 1; }, 10s));
  REQUIRE(WaitFor(
      [&] {
        return HttpGet(restarted.Address("admin"), "/get_all_segments").find("seg-a") !=
               std::string::npos;
      },
      10s));
  ReplicaListResponse r;
  REQUIRE(writer->Call(MsgType::kGetReplicaList, KeysRequest{{"moved", "gone", "kept"}}, r).ok());
  REQUIRE(r.items[0].code == 0);
  CHECK(r.items[0].checksum == 2);  // the newer put, not a's older one
  CHECK(r.segments[r.items[0].replicas[0].segment].name == "seg-b");
  CHECK(r.items[1].code == Code(ErrorCode::OBJECT_NOT_FOUND));  // removed stays removed
  CHECK(r.items[2].code == Code(ErrorCode::OBJECT_NOT_FOUND));  // dropped at the expiry
  CHECK(Metric(admin_a, "kvcached_store_objects") == 0);
  CHECK(a.Log().find("longer than the master's client TTL") != std::string::npos);
}

TEST_CASE("a peer claiming a store's client id is refused at Hello and changes nothing") {
  // A store's client id is public (`owner` in /api/v1/segments). Before
  // owner proofs, a token holder claiming it could remount the segment with
  // an empty table, unmount it, or mount a fake 1 TiB one under its name.
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  std::string rpc = master.Address("rpc");
  KvcachedProcess store({"store", "--master", rpc, "--segment-size", "16MiB", "--segment-name",
                         "seg-a", "--ping-interval", "100ms"});
  std::string admin = store.Address("admin");
  auto writer = Writer(rpc);
  std::vector<std::string> keys;
  for (int i = 0; i < 20; ++i) keys.push_back("obj-" + std::to_string(i));
  PutInto(*writer, "seg-a", keys, 5);
  REQUIRE(WaitFor([&] { return Metric(admin, "kvcached_store_objects") == 20; }, 10s));
  std::smatch owner;
  std::string segments = HttpGet(master.Address("admin"), "/api/v1/segments");
  REQUIRE(std::regex_search(segments, owner, std::regex("\"owner\":\"(store-[0-9a-f]+)\"")));
  MESSAGE("the store's public client id: " << owner[1].str());

  for (std::string proof : {std::string(), std::string("a-guess")}) {
    RpcClientOptions o;
    o.address = rpc;
    o.hello.client_id = owner[1].str();
    o.hello.host_id = "elsewhere";
    o.hello.role = static_cast<uint8_t>(PeerRole::kStore);
    o.hello.owner_proof = proof;
    o.connect_attempts = 1;
    RpcClient impostor(o);
    Status st = impostor.Connect();
    CAPTURE(proof);
    CHECK(st.code() == ErrorCode::ILLEGAL_CLIENT);
    CHECK(st.message().find("does not prove") != std::string::npos);
    // Nothing it could send reaches the master.
    StatusResponse r;
    CHECK_FALSE(impostor
                    .Call(MsgType::kRemountSegment,
                          RemountRequest{{"seg-a", 0, 1ull << 40, "tcp://evil"}, {}}, r)
                    .ok());
    CHECK_FALSE(impostor.Call(MsgType::kUnmountSegment, UnmountRequest{"seg-a"}, r).ok());
  }
  CHECK(Found(*writer, keys) == 20);
  CHECK(Metric(admin, "kvcached_store_objects") == 20);
  CHECK(HttpGet(master.Address("admin"), "/api/v1/segments").find(std::to_string(16 << 20)) !=
        std::string::npos);
  CHECK(master.Log().find("this Hello does not prove it is that process") != std::string::npos);
  // The real store is unaffected: it still pings, and unmounts on SIGTERM.
  CHECK(store.Stop(SIGTERM) == 0);
  CHECK(Found(*writer, keys) == 0);
}

TEST_CASE("a store restarted with its owner file takes its segment back at once") {
  // Without it a restarted store's mount of its --segment-name is refused
  // until the master's client TTL (here a minute) drops the dead process's.
  KvcachedProcess master(
      {"master", "--port", "0", "--admin-port", "0", "--meta-port", "0", "--client-ttl", "60s"});
  std::string rpc = master.Address("rpc");
  char tmpl[] = "/tmp/kvcached-owner-XXXXXX";
  REQUIRE(mkdtemp(tmpl) != nullptr);
  std::string owner_file = std::string(tmpl) + "/owner-proof";
  std::vector<std::string> args{"store",    "--master",        rpc,     "--segment-size",
                                "16MiB",    "--segment-name",  "seg-r", "--owner-file",
                                owner_file, "--ping-interval", "100ms"};
  auto first = std::make_unique<KvcachedProcess>(args);
  auto writer = Writer(rpc);
  std::vector<std::string> old_keys{"old-1", "old-2", "old-3"};
  PutInto(*writer, "seg-r", old_keys, 3);
  REQUIRE(
      WaitFor([&] { return Metric(first->Address("admin"), "kvcached_store_objects") == 3; }, 10s));

  auto run = [&](std::vector<std::string> extra) {
    std::vector<std::string> args{"store", "--master", rpc, "--segment-size", "16MiB",
                                  "--segment-name", "seg-r"};
    args.insert(args.end(), extra.begin(), extra.end());
    return testing::RunKvcached({}, args);
  };
  // Two stores cannot share one owner file: they would take the segment in turns.
  auto [rc_shared, out_shared] = run({"--owner-file", owner_file});
  CHECK(rc_shared != 0);
  CHECK(out_shared.find("is held by another running store") != std::string::npos);
  // A store without the proof cannot take the name while its owner lives.
  auto [rc_other, out_other] = run({});
  CHECK(rc_other != 0);
  CHECK(out_other.find("seg-r") != std::string::npos);
  CHECK(Found(*writer, old_keys) == 3);

  CHECK(first->Stop(SIGKILL) == 128 + SIGKILL);
  first.reset();
  // Ready means mounted: long before the 60 s TTL.
  KvcachedProcess second(args);
  CHECK(second.Log().find("owner proof read from " + owner_file) != std::string::npos);
  CHECK(Metric(master.Address("admin"), "kvcached_master_owner_restarts_total") == 1);
  CHECK(Found(*writer, old_keys) == 0);  // they lived in the dead process's memory
  PutInto(*writer, "seg-r", {"new-1"}, 4);
  CHECK(
      WaitFor([&] { return Metric(second.Address("admin"), "kvcached_store_objects") == 1; }, 10s));
  CHECK(second.Stop(SIGTERM) == 0);
  (void)std::system(("rm -rf '" + std::string(tmpl) + "'").c_str());
}

TEST_CASE("the data port moves bytes and bounds-checks every range") {
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  constexpr uint64_t kSize = 64ull << 20;
  KvcachedProcess store({"store", "--master", master.Address("rpc"), "--segment-size", "64MiB",
                         "--segment-name", "seg-d"});
  std::string data = store.Address("data");
  std::string admin = store.Address("admin");

  // The endpoint clients will use is published with the segment.
  RpcClientOptions o;
  o.address = master.Address("rpc");
  o.hello.client_id = "reader";
  RpcClient rpc(o);
  REQUIRE(rpc.Connect().ok());
  ReplicaListResponse placed;
  REQUIRE(rpc.Call(MsgType::kPutStart, PutStartRequest{1, "", {{"k", 1}}}, placed).ok());
  Result<SegmentEndpoint> endpoint = ParseEndpoint(placed.segments[0].endpoint);
  REQUIRE(endpoint.ok());
  CHECK(endpoint->name == "seg-d");
  CHECK(endpoint->tcp == data);
  CHECK(endpoint->size == 64u << 20);
  // The default shm socket: a file named after the store's client id in the
  // runtime directory (this environment sets neither $RUNTIME_DIRECTORY nor
  // $XDG_RUNTIME_DIR).
  std::string runtime_dir =
      ::geteuid() == 0 ? "/run/kvcached/root" : "/tmp/kvcached-" + std::to_string(::geteuid());
  CHECK(endpoint->shm == runtime_dir + "/" + endpoint->instance + ".sock");

  DataClient c(data);
  c.Hello();
  std::string payload(1 << 20, '\0');
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<char>(i * 131 + 7);
  REQUIRE(c.Write(4096, payload) == 0);
  std::string back;
  REQUIRE(c.Read(4096, payload.size(), back) == 0);
  CHECK(back == payload);
  REQUIRE(c.Write(kSize - 3, "end") == 0);  // the last bytes of the segment
  REQUIRE(c.Read(kSize - 3, 3, back) == 0);
  CHECK(back == "end");

  // Every overflow class is refused, the connection goes on, nothing moves.
  const int32_t bad_write = Code(ErrorCode::INVALID_WRITE);
  const int32_t bad_read = Code(ErrorCode::INVALID_READ);
  CHECK(c.Write(kSize, "x") == bad_write);              // starts at the end
  CHECK(c.Write(kSize - 2, "xyz") == bad_write);        // runs past the end
  CHECK(c.Write(UINT64_MAX - 1, "xyzw") == bad_write);  // offset + length wraps
  CHECK(c.Write(kSize + 4096, std::string(100, 'z')) == bad_write);
  CHECK(c.Read(kSize, 1, back) == bad_read);
  CHECK(c.Read(kSize - 1, 2, back) == bad_read);
  CHECK(c.Read(UINT64_MAX - 7, 16, back) == bad_read);
  CHECK(c.Read(0, UINT64_MAX, back) == bad_read);
  REQUIRE(c.Read(4096, payload.size(), back) == 0);
  CHECK(back == payload);
  REQUIRE(c.Read(kSize - 3, 3, back) == 0);
  CHECK(back == "end");
  CHECK(Metric(admin, "kvcached_store_data_refusals_total") == 8);  // RDMA ones come below

  // Malformed frames close that connection only.
  {
    DataClient m(data);  // a request before Hello
    std::string r;
    m.SendFrame(MsgType::kDataRead, EncodeBody(DataRange{0, 1}));
    FrameHeader h;
    REQUIRE(m.ReadFrame(h, r));
    CHECK((h.flags & kFlagError) != 0);
    CHECK(m.Closed());
  }
  {
    DataClient m(data);  // a write whose range disagrees with its body
    m.Hello();
    m.SendFrame(MsgType::kDataWrite, EncodeBody(DataRange{0, 10}) + "abc");
    CHECK(m.Closed());
  }
  {
    DataClient m(data);  // a read with a body that is not a range
    m.Hello();
    m.SendFrame(MsgType::kDataRead, EncodeBody(DataRange{0, 1}) + "x");
    CHECK(m.Closed());
  }
  {
    DataClient m(data);  // a control-plane message on the data port
    m.Hello();
    m.SendFrame(MsgType::kExistKey, EncodeBody(KeysRequest{{"k"}}));
    CHECK(m.Closed());
  }
  {
    DataClient m(data);  // an oversized body before Hello
    m.SendFrame(MsgType::kHello, "", 1 << 20);
    CHECK(m.Closed());
  }
  {
    // RDMA asked of a TCP store, and a request of another link version:
    // each refused with a reason, and the connection goes on.
    DataClient m(data);
    m.Hello();
    RdmaConnectRequest req;
    req.client.mtu = 3;
    req.client.qpn = 17;
    std::string r;
    FrameHeader h;
    m.SendFrame(MsgType::kRdmaConnect, EncodeBody(req));
    REQUIRE(m.ReadFrame(h, r));
    REQUIRE((h.flags & kFlagError) != 0);
    ErrorBody err;
    REQUIRE(DecodeBody(r, err).ok());
    CHECK(err.code == Code(ErrorCode::TRANSFER_FAIL));
    CHECK(err.message.find("does not serve RDMA") != std::string::npos);
    std::string v9 = EncodeBody(req);
    v9[0] = 9;
    m.SendFrame(MsgType::kRdmaConnect, v9);
    REQUIRE(m.ReadFrame(h, r));
    REQUIRE(DecodeBody(r, err).ok());
    CHECK(err.code == Code(ErrorCode::INVALID_PARAMS));
    CHECK(err.message.find("RDMA link version 9") != std::string::npos);
    std::string back2;
    REQUIRE(m.Read(4096, 16, back2) == 0);
    CHECK(back2 == payload.substr(0, 16));
    // A body far larger than any RdmaConnect is malformed.
    m.SendFrame(MsgType::kRdmaConnect, std::string(2048, '\0'));
    CHECK(m.Closed());
  }
  REQUIRE(c.Read(4096, 16, back) == 0);  // the first client is unharmed
  CHECK(back == payload.substr(0, 16));
  CHECK(Metric(admin, "kvcached_store_data_malformed_total") == 5);
  CHECK(Metric(admin, "kvcached_store_bytes_received_total") ==
        static_cast<long>(payload.size() + 3));
  CHECK(store.Stop() == 0);
}

TEST_CASE("the data port applies the same Hello rules as the master") {
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store({"store", "--master", master.Address("rpc"), "--segment-size", "8MiB",
                         "--segment-name", "seg-h"});
  std::string data = store.Address("data");
  std::string admin = store.Address("admin");
  SUBCASE("an admin peer may not use a data port") {
    DataClient c(data);
    CHECK(c.HelloCode(HelloRequest{static_cast<uint8_t>(PeerRole::kAdmin), "adm", "h", "", "",
                                   ""}) == Code(ErrorCode::ILLEGAL_CLIENT));
    CHECK(c.Closed());
  }
  SUBCASE("an empty client id is refused") {
    DataClient c(data);
    CHECK(c.HelloCode(HelloRequest{1, "", "h", "", "", ""}) == Code(ErrorCode::INVALID_PARAMS));
    CHECK(c.Closed());
  }
  SUBCASE("an unknown role is refused") {
    DataClient c(data);
    CHECK(c.HelloCode(HelloRequest{77, "x", "h", "", "", ""}) == Code(ErrorCode::INVALID_PARAMS));
    CHECK(c.Closed());
  }
  // A client and a store (a client that hosts a segment reads other
  // stores) are served.
  for (PeerRole role : {PeerRole::kClient, PeerRole::kStore}) {
    DataClient c(data);
    REQUIRE(c.HelloCode(HelloRequest{static_cast<uint8_t>(role), "peer", "h", "", "", ""}) == 0);
    REQUIRE(c.Write(0, "abc") == 0);
    std::string back;
    REQUIRE(c.Read(0, 3, back) == 0);
    CHECK(back == "abc");
  }
}

TEST_CASE("store start-up errors are clear") {
  auto run = [](std::vector<std::string> args) {
    args.insert(args.begin(), "store");
    return testing::RunKvcached({}, args);
  };
  // A device named and absent stops the store (69: it may appear later); a
  // bad name is a configuration error. (This host has no RDMA devices.)
  auto [rc1, out1] = run({"--protocol", "rdma", "--device", "mlx5_9", "--master", "127.0.0.1:1"});
  CHECK(rc1 == 69);
  CHECK(out1.find("RDMA device 'mlx5_9' not found") != std::string::npos);
  auto [rc1b, out1b] = run({"--protocol", "rdma", "--device", "'a;b'"});
  CHECK(rc1b == 78);
  CHECK(out1b.find("--device: RDMA device name 'a;b'") != std::string::npos);
  auto [rc2, out2] = run({"--segment-size", "100TiB"});
  CHECK(rc2 == 78);
  CHECK(out2.find("MemAvailable") != std::string::npos);
  auto [rc3, out3] = run({"--master", "127.0.0.1:1", "--segment-size", "1MiB"});
  CHECK(rc3 == 69);
  CHECK(out3.find("cannot connect to master 127.0.0.1:1") != std::string::npos);
  auto [rc4, out4] = run({"--segment-size", "12", "--master", "127.0.0.1:1"});
  CHECK(rc4 == 2);
  CHECK(out4.find("--segment-size") != std::string::npos);
}

}  // namespace
}  // namespace kvcached

namespace kvcached {
namespace {

TEST_CASE("a store publishes its segment descriptor to the metadata service and removes it") {
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  std::string meta_url = "http://" + master.Address("meta") + "/metadata";
  KvcachedProcess store({"store", "--master", master.Address("rpc"), "--segment-size", "8MiB",
                         "--segment-name", "seg-pub", "--metadata-server", meta_url});
  MetadataClientOptions options;
  options.url = meta_url;
  Result<MetadataClient> meta = MetadataClient::Create(options);
  REQUIRE(meta.ok());
  Result<std::optional<std::string>> value = meta->Get("mooncake/ram/seg-pub");
  REQUIRE(value.ok());
  REQUIRE(value->has_value());
  Result<SegmentEndpoint> e = ParseEndpoint(**value);
  REQUIRE(e.ok());
  CHECK(e->name == "seg-pub");
  CHECK(e->size == 8u << 20);
  CHECK(e->tcp == store.Address("data"));
  CHECK(store.Stop(SIGTERM) == 0);
  value = meta->Get("mooncake/ram/seg-pub");
  REQUIRE(value.ok());
  CHECK_FALSE(value->has_value());
}

}  // namespace
}  // namespace kvcached
