// Black-box tests of `kvcached store` with a real master: mounting, the
// object table it keeps, remounting after a master kill -9, and unmounting
// on SIGTERM.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <regex>
#include <thread>

#include "core/rpc_protocol.h"
#include "kvcached_process.h"
#include "net/rpc_client.h"

namespace kvcached {
namespace {

using testing::KvcachedProcess;
using namespace std::chrono_literals;

// GET http://address/path with a raw socket; returns the body ("" on error).
std::string HttpGet(const std::string& address, const std::string& path) {
  size_t colon = address.rfind(':');
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_port = htons(static_cast<uint16_t>(std::stoi(address.substr(colon + 1))));
  inet_pton(AF_INET, address.substr(0, colon).c_str(), &a.sin_addr);
  if (connect(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
    close(fd);
    return "";
  }
  std::string req = "GET " + path + " HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  (void)!send(fd, req.data(), req.size(), 0);
  std::string out;
  char buf[4096];
  ssize_t n;
  while ((n = recv(fd, buf, sizeof buf, 0)) > 0) out.append(buf, static_cast<size_t>(n));
  close(fd);
  size_t body = out.find("\r\n\r\n");
  return body == std::string::npos ? "" : out.substr(body + 4);
}

long Metric(const std::string& admin, const std::string& name) {
  std::smatch m;
  std::string text = HttpGet(admin, "/metrics");
  if (!std::regex_search(text, m, std::regex("\n" + name + " ([0-9]+)"))) return -1;
  return std::stol(m[1]);
}

template <typename Pred>
bool WaitFor(Pred pred, std::chrono::milliseconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  while (std::chrono::steady_clock::now() < deadline) {
    if (pred()) return true;
    std::this_thread::sleep_for(20ms);  // polling an outcome, bounded by `limit`
  }
  return pred();
}

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
  CHECK(Metric(admin, "kvcached_store_remounts") == 1);
  ReplicaListResponse after;
  REQUIRE(writer->Call(MsgType::kGetReplicaList, KeysRequest{{"obj-7"}}, after).ok());
  CHECK(after.items[0].checksum == 1007);

  CHECK(store.Stop(SIGTERM) == 0);
  CHECK(Found(*writer, keys) == 0);  // unmounted: its objects are gone
  CHECK(restarted.Log().find("unmount of segment 'seg-a' by client") != std::string::npos);
}

TEST_CASE("store start-up errors are clear") {
  auto run = [](std::vector<std::string> args) {
    std::string cmd = std::string(std::getenv("KVCACHED_BIN")) + " store";
    for (auto& a : args) cmd += " " + a;
    cmd += " 2>&1";
    FILE* p = popen(cmd.c_str(), "r");
    std::string out;
    char buf[512];
    while (fgets(buf, sizeof buf, p) != nullptr) out += buf;
    int rc = pclose(p);
    return std::make_pair(WEXITSTATUS(rc), out);
  };
  auto [rc1, out1] = run({"--protocol", "rdma"});
  CHECK(rc1 == 69);
  CHECK(out1.find("RDMA transport is not in this build") != std::string::npos);
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
