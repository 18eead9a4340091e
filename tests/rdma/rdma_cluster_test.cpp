// Black-box tests of the RDMA data path against real `kvcached master` and
// `kvcached store --protocol rdma` processes, for a machine with an RDMA
// device: the Soft-RoCE VM (tests/rdma/softroce.sh runs this inside it,
// through tests/rdma/guest_suite.sh). Clients force the RDMA path
// (TransportMode::kRdma), so every byte below moved by one-sided RDMA WRITE
// and READ. Every byte a get returns is compared with the pattern that was
// put. Nothing here is about speed: the VM's CPUs are emulated.
//
// KVCACHED_RDMA_DEVICE names the device (default rxe0); KVCACHED_BB_LOGS=1
// prints the stores' and master's stderr at the end of each test.
#include <doctest/doctest.h>
#include <signal.h>

#include <atomic>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvcached/client.h"
#include "kvcached_process.h"
#include "object_pattern.h"

namespace kvcached {
namespace {

using testing::FillPattern;
using testing::FirstMismatch;
using testing::KvcachedProcess;
using testing::Metric;
using testing::WaitFor;
using namespace std::chrono_literals;

constexpr uint64_t kMiB = 1 << 20;

std::string Device() {
  const char* d = std::getenv("KVCACHED_RDMA_DEVICE");
  return d != nullptr && *d != '\0' ? d : "rxe0";
}

// A master and RDMA stores, each on its own host id so nothing could take
// the shared-memory path even if it were allowed.
class RdmaCluster {
 public:
  explicit RdmaCluster(int stores, std::vector<std::string> store_env = {})
      : store_env_(std::move(store_env)) {
    master_ = std::make_unique<KvcachedProcess>(std::vector<std::string>{
        "master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
    for (int i = 0; i < stores; ++i) AddStore("rdma-seg-" + std::to_string(i));
  }
  ~RdmaCluster() {
    if (std::getenv("KVCACHED_BB_LOGS") == nullptr) return;
    std::cerr << "---- master\n" << master_->Log();
    for (auto& s : stores_) {
      if (s) std::cerr << "---- store\n" << s->Log();
    }
  }

  void AddStore(const std::string& name) {
    stores_.push_back(std::make_unique<KvcachedProcess>(
        std::vector<std::string>{"store", "--master", rpc(), "--segment-size", "160MiB",
                                 "--segment-name", name, "--host-id", name + "-host",
                                 "--protocol", "rdma", "--device", Device(), "--admin-port", "0"},
        store_env_));
    CHECK_MESSAGE(stores_.back()->Log().find("rdma " + Device()) != std::string::npos,
                  stores_.back()->Log());
  }
  KvcachedProcess& store(size_t i) { return *stores_.at(i); }
  void Kill(size_t i) {
    stores_.at(i)->Stop(SIGKILL);
  }
  std::string rpc() const { return master_->Address("rpc"); }

  std::unique_ptr<Client> Open() const {
    ClientConfig c;
    c.master_server_addr = rpc();
    c.local_hostname = "rdma-client-host";
    c.protocol = "rdma";
    c.transport = TransportMode::kRdma;
    c.device_names = Device();
    // Emulated CPUs: generous waits, never asserted on.
    c.io_timeout = 30s;
    c.rpc_timeout = 15s;
    c.connect_timeout = 15s;
    Result<std::unique_ptr<Client>> opened = Client::Open(c);
    REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
    return std::move(opened).value();
  }

 private:
  std::vector<std::string> store_env_;
  std::unique_ptr<KvcachedProcess> master_;
  std::vector<std::unique_ptr<KvcachedProcess>> stores_;
};

std::vector<uint8_t> Bytes(const std::string& key, uint64_t size) {
  std::vector<uint8_t> v(size);
  FillPattern(key, v.data(), size);
  return v;
}

TEST_CASE("rdma: every size from 1 byte to 64 MiB, put and read back exact") {
  RdmaCluster cluster(2);
  std::unique_ptr<Client> client = cluster.Open();
  const uint64_t sizes[] = {1,       2,       4095,     4096,     4097,         65535,
                            65536,   65537,   kMiB - 1, kMiB,     4 * kMiB + 3, 16 * kMiB,
                            64 * kMiB};
  std::vector<uint8_t> buffer(64 * kMiB + 4096);
  // A registered buffer for half the gets; the rest read into memory the
  // engine registers for the call.
  REQUIRE(client->RegisterBuffer(buffer.data(), buffer.size()).ok());
  std::vector<uint8_t> unregistered(64 * kMiB);
  int n = 0;
  for (uint64_t size : sizes) {
    std::string key = "size-" + std::to_string(size);
    CAPTURE(key);
    std::vector<uint8_t> value = Bytes(key, size);
    Status put = client->Put(key, value.data(), size);
    REQUIRE_MESSAGE(put.ok(), put.ToString());
    uint8_t* into = (n++ % 2 == 0) ? buffer.data() : unregistered.data();
    Result<uint64_t> got = client->Get(key, into, size);
    REQUIRE_MESSAGE(got.ok(), got.status().ToString());
    CHECK(*got == size);
    CHECK(FirstMismatch(key, into, size) == -1);
  }
  ClientStats s = client->stats();
  CHECK(s.rdma_transfers == 2 * std::size(sizes));
  CHECK(s.tcp_transfers == 0);
  CHECK(s.shm_transfers == 0);
  CHECK(client->UnregisterBuffer(buffer.data()).ok());
  // The stores hold queue pairs for this client until it goes.
  long held = Metric(cluster.store(0).Address("admin"), "kvcached_store_rdma_queue_pairs") +
              Metric(cluster.store(1).Address("admin"), "kvcached_store_rdma_queue_pairs");
  CHECK(held > 0);
  client.reset();
  CHECK(WaitFor(
      [&] {
        return Metric(cluster.store(0).Address("admin"), "kvcached_store_rdma_queue_pairs") == 0 &&
               Metric(cluster.store(1).Address("admin"), "kvcached_store_rdma_queue_pairs") == 0;
      },
      30s));
}

TEST_CASE("rdma: batches of 256 keys over two stores, two replicas each") {
  RdmaCluster cluster(2);
  std::unique_ptr<Client> client = cluster.Open();
  constexpr size_t kKeys = 256;
  constexpr uint64_t kSize = 24 * 1024 + 5;
  std::vector<std::string> keys;
  std::vector<std::vector<uint8_t>> values;
  std::vector<Slice> slices;
  for (size_t i = 0; i < kKeys; ++i) {
    keys.push_back("batch-" + std::to_string(i));
    values.push_back(Bytes(keys.back(), kSize + i));
  }
  for (auto& v : values) slices.push_back({v.data(), v.size()});
  ReplicateConfig two;
  two.replica_num = 2;
  std::vector<Status> put = client->BatchPut(keys, slices, two);
  for (size_t i = 0; i < kKeys; ++i) REQUIRE_MESSAGE(put[i].ok(), keys[i], put[i].ToString());

  std::vector<std::vector<uint8_t>> into(kKeys, std::vector<uint8_t>(kSize + kKeys));
  std::vector<Slice> buffers;
  for (auto& b : into) buffers.push_back({b.data(), b.size()});
  std::vector<Result<uint64_t>> got = client->BatchGet(keys, buffers);
  for (size_t i = 0; i < kKeys; ++i) {
    CAPTURE(keys[i]);
    REQUIRE_MESSAGE(got[i].ok(), got[i].status().ToString());
    CHECK(*got[i] == kSize + i);
    CHECK(FirstMismatch(keys[i], into[i].data(), kSize + i) == -1);
  }
  CHECK(client->stats().tcp_transfers == 0);

  // Each store holds one replica of every key: with one store gone, the
  // other's copies still come back exact.
  cluster.Kill(0);
  for (auto& b : into) std::fill(b.begin(), b.end(), 0);
  got = client->BatchGet(keys, buffers);
  size_t exact = 0;
  std::string first_error;
  for (size_t i = 0; i < kKeys; ++i) {
    if (!got[i].ok()) {
      if (first_error.empty()) first_error = keys[i] + ": " + got[i].status().ToString();
      continue;
    }
    CHECK(FirstMismatch(keys[i], into[i].data(), kSize + i) == -1);
    ++exact;
  }
  CHECK_MESSAGE(exact == kKeys, first_error);
}

TEST_CASE("rdma: a store killed mid-transfer: every get exact or an error") {
  RdmaCluster cluster(2);
  std::unique_ptr<Client> writer = cluster.Open();
  constexpr uint64_t kSize = 2 * kMiB + 17;
  std::vector<std::string> keys;
  for (int i = 0; i < 24; ++i) {
    keys.push_back("kill-" + std::to_string(i));
    std::vector<uint8_t> v = Bytes(keys.back(), kSize);
    REQUIRE(writer->Put(keys.back(), v.data(), kSize).ok());
  }
  std::atomic<bool> stop{false};
  std::atomic<int> exact{0}, failed{0}, corrupt{0};
  std::thread reader([&] {
    std::unique_ptr<Client> c = cluster.Open();
    std::vector<uint8_t> buf(kSize);
    for (int round = 0; !stop; ++round) {
      const std::string& key = keys[round % keys.size()];
      std::fill(buf.begin(), buf.end(), 0);
      Result<uint64_t> got = c->Get(key, buf.data(), buf.size());
      if (!got.ok()) {
        failed++;
      } else if (FirstMismatch(key, buf.data(), kSize) == -1) {
        exact++;
      } else {
        corrupt++;
      }
    }
  });
  REQUIRE(WaitFor([&] { return exact.load() >= 4; }, 60s));
  cluster.Kill(1);
  int before = exact + failed;
  REQUIRE(WaitFor([&] { return exact + failed >= before + 30; }, 120s));
  stop = true;
  reader.join();
  CHECK(corrupt == 0);
  CHECK(exact > 0);
  MESSAGE("gets exact: " << exact.load() << ", failed: " << failed.load());

  // The surviving store goes on taking and serving objects.
  std::vector<uint8_t> v = Bytes("after-kill", kSize);
  bool stored = false;
  REQUIRE(WaitFor(
      [&] {
        stored = writer->Put("after-kill", v.data(), kSize).ok();
        return stored;
      },
      60s));
  std::vector<uint8_t> back(kSize);
  Result<uint64_t> got = writer->Get("after-kill", back.data(), kSize);
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(FirstMismatch("after-kill", back.data(), kSize) == -1);
}

TEST_CASE("rdma: queue pairs destroyed under a client are rebuilt") {
  // The stores (a fault-hook build) close each RDMA link 1.5 s after it is
  // made, which destroys its queue pairs while the client is using them.
  RdmaCluster cluster(1, {"KVCACHED_FAULT_RDMA_LINK_MS=1500"});
  std::unique_ptr<Client> client = cluster.Open();
  constexpr uint64_t kSize = 512 * 1024 + 3;
  std::vector<uint8_t> buf(kSize);
  int ok = 0, failed = 0;
  auto until = std::chrono::steady_clock::now() + 6s;
  for (int i = 0; std::chrono::steady_clock::now() < until; ++i) {
    std::string key = "rebuild-" + std::to_string(i);
    std::vector<uint8_t> v = Bytes(key, kSize);
    Status put = client->Put(key, v.data(), kSize);
    if (!put.ok()) {
      failed++;
      continue;
    }
    std::fill(buf.begin(), buf.end(), 0);
    Result<uint64_t> got = client->Get(key, buf.data(), kSize);
    if (!got.ok()) {
      failed++;
      continue;
    }
    CHECK(FirstMismatch(key, buf.data(), kSize) == -1);
    ok++;
  }
  MESSAGE("round trips ok: " << ok << ", failed: " << failed);
  // Links were destroyed and made again, and round trips went on exact.
  std::string log = cluster.store(0).Log();
  size_t closes = 0;
  for (size_t at = 0; (at = log.find("fault hook: closing this RDMA link", at)) != std::string::npos;
       ++at) {
    ++closes;
  }
  REQUIRE_MESSAGE(closes > 0, "the store was not built with fault hooks:\n" << log);
  CHECK(closes >= 2);
  CHECK(ok > failed);
}

}  // namespace
}  // namespace kvcached
