// Black-box tests of the client library (include/kvcached/client.h) against
// real `kvcached master` and `kvcached store` processes on loopback: every
// object size over TCP and over shared memory, the API's contracts, settings
// from the environment, and the failures a pool meets (a store killed,
// frozen, slowed or restarted; a master killed or frozen; a full pool; a
// writer dying mid-put; bytes corrupted in a segment; a lease running out; a
// cluster token; Close racing other threads). Every byte a get returns is
// compared with the per-key pattern that was put. The raw RPC client and the
// store's data port are used only to look inside (where did a replica go)
// and to do what no well-behaved client does (die mid-put, overwrite a
// segment's bytes). No assertion is about speed; sleeps only inject faults.
//
// KVCACHED_BB_LOGS=1 prints the stderr of every master and store a test
// started, when the test ends.
#include <doctest/doctest.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <fstream>
#include <future>
#include <iostream>
#include <map>
#include <mutex>
#include <random>
#include <regex>
#include <sstream>
#include <thread>

#include "core/rpc_protocol.h"
#include "core/segment_endpoint.h"
#include "data_client.h"
#include "kvcached/client.h"
#include "kvcached_process.h"
#include "object_pattern.h"
#include "net/rpc_client.h"

namespace kvcached {
namespace {

using testing::DataClient;
using testing::FillPattern;
using testing::FirstMismatch;
using testing::Pattern;
using testing::HttpGet;
using testing::KvcachedProcess;
using testing::Metric;
using testing::WaitFor;
using namespace std::chrono_literals;

constexpr uint64_t kKiB = 1024;
constexpr uint64_t kMiB = 1024 * 1024;
// Every store and client of these tests claims this host id, so kAuto and
// kShm take the shared-memory path.
const char* const kHost = "bb-client-host";
const char* const kToken = "0123456789abcdef0123456789abcdef";

std::string CodeName(ErrorCode c) { return std::string(ErrorName(c)); }

bool IsKeyError(ErrorCode c) {
  return c == ErrorCode::INVALID_KEY || c == ErrorCode::INVALID_PARAMS;
}

// ---- processes ---------------------------------------------------------------

std::vector<std::string> MasterArgs(const std::string& port,
                                    const std::vector<std::string>& extra) {
  std::vector<std::string> a = {"master", "--port", port, "--admin-port", "0", "--meta-port", "0"};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// A master and named stores on loopback. The master can be killed and
// started again on the same RPC port.
class Cluster {
 public:
  explicit Cluster(std::vector<std::string> master_extra = {})
      : master_extra_(std::move(master_extra)) {
    master_ = std::make_unique<KvcachedProcess>(MasterArgs("0", master_extra_));
    rpc_ = master_->Address("rpc");
    port_ = std::to_string(master_->Port("rpc"));
  }
  ~Cluster() {
    if (std::getenv("KVCACHED_BB_LOGS") == nullptr) return;
    for (auto& p : retired_) std::cerr << "---- stopped process ----\n" << p->Log();
    if (master_) std::cerr << "---- master ----\n" << master_->Log();
    for (auto& [name, s] : stores_) std::cerr << "---- store " << name << " ----\n" << s->Log();
  }

  KvcachedProcess& AddStore(const std::string& name, const std::string& size,
                            std::vector<std::string> extra = {},
                            const std::string& host_id = kHost) {
    std::vector<std::string> args = {"store", "--master",        rpc_,   "--segment-size",
                                     size,    "--segment-name",  name,   "--host-id",
                                     host_id, "--ping-interval", "200ms"};
    args.insert(args.end(), extra.begin(), extra.end());
    auto& slot = stores_[name];
    if (slot) retired_.push_back(std::move(slot));  // a restart: keep the old log
    slot = std::make_unique<KvcachedProcess>(args);
    return *slot;
  }
  KvcachedProcess& store(const std::string& name) { return *stores_.at(name); }
  KvcachedProcess& master() { return *master_; }

  void KillMaster() {
    CHECK(master_->Stop(SIGKILL) == 128 + SIGKILL);
    retired_.push_back(std::move(master_));
  }
  void StartMasterAgain() {
    master_ = std::make_unique<KvcachedProcess>(MasterArgs(port_, master_extra_));
  }

  const std::string& rpc() const { return rpc_; }

  ClientConfig Config(TransportMode mode) const {
    ClientConfig c;
    c.master_server_addr = rpc_;
    c.local_hostname = kHost;
    c.transport = mode;
    return c;
  }

 private:
  std::vector<std::string> master_extra_;
  std::unique_ptr<KvcachedProcess> master_;
  std::vector<std::unique_ptr<KvcachedProcess>> retired_;  // replaced masters and stores
  std::map<std::string, std::unique_ptr<KvcachedProcess>> stores_;
  std::string rpc_, port_;
};

std::unique_ptr<Client> OpenClient(const ClientConfig& config) {
  auto r = Client::Open(config);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  return std::move(r).value();
}

Status PutPattern(Client& c, const std::string& key, uint64_t size,
                  const ReplicateConfig& rc = {}) {
  std::vector<uint8_t> v = Pattern(key, size);
  return c.Put(key, v.data(), size, rc);
}

// Gets `key` and compares every byte with its pattern (CHECKs).
void CheckGet(Client& c, const std::string& key, uint64_t size) {
  CAPTURE(key);
  std::vector<uint8_t> buf(size);
  auto r = c.Get(key, buf.data(), buf.size());
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(*r == size);
  CHECK(FirstMismatch(key, buf.data(), size) == -1);
}

// The outcome of one get, for load threads (which do not assert).
enum class Read { kExact, kCorrupt, kFailed };

Read GetVerify(Client& c, const std::string& key, uint64_t size, std::vector<uint8_t>& buf,
               ErrorCode& code) {
  auto r = c.Get(key, buf.data(), buf.size());
  code = r.code();
  if (!r.ok()) return Read::kFailed;
  if (*r != size || FirstMismatch(key, buf.data(), size) != -1) return Read::kCorrupt;
  return Read::kExact;
}

// ---- looking inside: the raw RPC client, the store's ports -----------------

std::unique_ptr<RpcClient> RawRpc(const std::string& address, const std::string& id,
                                  const std::string& token = "") {
  RpcClientOptions o;
  o.address = address;
  o.hello.client_id = id;
  o.hello.host_id = "raw-host";
  o.hello.token = token;
  o.call_timeout = 5s;
  auto c = std::make_unique<RpcClient>(o);
  Status st = c->Connect();
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  return c;
}

struct Placement {
  int32_t code = 0;
  uint64_t size = 0;
  std::vector<std::pair<std::string, uint64_t>> replicas;  // segment name, offset
};

// Where the master says `key` lives (grants a read lease, like any lookup).
Placement Locate(RpcClient& rpc, const std::string& key) {
  ReplicaListResponse r;
  Status st = rpc.Call(MsgType::kGetReplicaList, KeysRequest{{key}}, r);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  REQUIRE(r.items.size() == 1);
  Placement p;
  p.code = r.items[0].code;
  p.size = r.items[0].size;
  for (const Replica& rep : r.items[0].replicas) {
    REQUIRE(rep.segment < r.segments.size());
    p.replicas.emplace_back(r.segments[rep.segment].name, rep.offset);
  }
  return p;
}

// True when some established TCP connection whose local port is `port`
// has bytes its process has not read yet: a frozen store's data port that
// a client has sent a request to.
bool UnreadBytesAtPort(uint16_t port) {
  std::ifstream in("/proc/net/tcp");
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::istringstream s(line);
    std::string slot, local, remote, state, queues;
    s >> slot >> local >> remote >> state >> queues;
    if (state != "01") continue;  // ESTABLISHED
    size_t colon = local.find(':');
    if (colon == std::string::npos) continue;
    if (std::stoul(local.substr(colon + 1), nullptr, 16) != port) continue;
    size_t q = queues.find(':');
    if (q != std::string::npos && std::stoul(queues.substr(q + 1), nullptr, 16) > 0) return true;
  }
  return false;
}

std::string TokenFile() {
  char path[] = "/tmp/kvcached-client-token-XXXXXX";
  int fd = mkstemp(path);  // mode 0600
  REQUIRE(fd >= 0);
  REQUIRE(write(fd, kToken, std::strlen(kToken)) == static_cast<ssize_t>(std::strlen(kToken)));
  close(fd);
  return path;
}

// ---- a mixed load: threads putting new objects and reading known ones -------

struct Object {
  std::string key;
  uint64_t size = 0;
};

class Load {
 public:
  // Starts one thread per client; each puts fresh keys and gets objects
  // from `known` and from its own successful puts, verifying every byte.
  Load(std::vector<Client*> clients, std::vector<Object> known, uint64_t max_size)
      : known_(std::move(known)), max_size_(max_size), buffer_bytes_(max_size) {
    for (const Object& o : known_) buffer_bytes_ = std::max(buffer_bytes_, o.size);
    for (size_t i = 0; i < clients.size(); ++i) {
      threads_.emplace_back([this, c = clients[i], i] { Run(*c, static_cast<int>(i)); });
    }
  }
  ~Load() { Stop(); }

  void Stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  std::atomic<uint64_t> ops{0}, puts_ok{0}, puts_failed{0}, gets_exact{0}, gets_failed{0},
      corrupt{0};

  std::string Summary() {
    std::lock_guard<std::mutex> lock(mu_);
    std::string s = "ops " + std::to_string(ops) + ", puts ok " + std::to_string(puts_ok) +
                    ", puts failed " + std::to_string(puts_failed) + ", gets exact " +
                    std::to_string(gets_exact) + ", gets failed " + std::to_string(gets_failed) +
                    ", corrupt " + std::to_string(corrupt) + "; failures:";
    for (auto& [what, n] : failures_) s += " " + what + " x" + std::to_string(n);
    for (auto& c : corrupt_keys_) s += "; corrupt read of " + c;
    return s;
  }

 private:
  void Run(Client& c, int id) {
    std::mt19937_64 rng(static_cast<uint64_t>(id) * 7919 + 1);
    std::vector<Object> mine;
    std::vector<uint8_t> buf(buffer_bytes_);
    uint64_t n = 0;
    while (!stop_) {
      if (rng() % 2 == 0) {
        Object o{"load-" + std::to_string(id) + "-" + std::to_string(n++), 1 + rng() % max_size_};
        Status st = PutPattern(c, o.key, o.size);
        if (st.ok()) {
          puts_ok++;
          mine.push_back(o);
        } else {
          puts_failed++;
          Note("put " + CodeName(st.code()));
        }
      } else {
        size_t pick = rng() % (known_.size() + mine.size());
        const Object& o = pick < known_.size() ? known_[pick] : mine[pick - known_.size()];
        ErrorCode code = ErrorCode::OK;
        switch (GetVerify(c, o.key, o.size, buf, code)) {
          case Read::kExact:
            gets_exact++;
            break;
          case Read::kFailed:
            gets_failed++;
            Note("get " + CodeName(code));
            break;
          case Read::kCorrupt: {
            corrupt++;
            std::lock_guard<std::mutex> lock(mu_);
            corrupt_keys_.push_back(o.key);
            break;
          }
        }
      }
      ops++;
    }
  }
  void Note(const std::string& what) {
    std::lock_guard<std::mutex> lock(mu_);
    failures_[what]++;
  }

  const std::vector<Object> known_;
  const uint64_t max_size_;
  uint64_t buffer_bytes_;  // the largest object a thread may read
  std::atomic<bool> stop_{false};
  std::vector<std::thread> threads_;
  std::mutex mu_;  // guards failures_ and corrupt_keys_
  std::map<std::string, uint64_t> failures_;
  std::vector<std::string> corrupt_keys_;
};

const char* ModeName(TransportMode m) {
  switch (m) {
    case TransportMode::kTcp:
      return "tcp";
    case TransportMode::kShm:
      return "shm";
    default:
      return "auto";
  }
}

// ---- 1. every size, both transports, batches, replicas, placement ----------

TEST_CASE("client: every size over TCP and over shared memory, batches, replicas, placement") {
  Cluster cl;
  std::map<std::string, std::string> data_address;
  for (int i = 0; i < 3; ++i) {
    std::string name = "seg-" + std::to_string(i);
    data_address[name] = cl.AddStore(name, "256MiB").Address("data");
  }
  auto inspector = RawRpc(cl.rpc(), "inspector");
  const std::vector<uint64_t> sizes = {1, 4 * kKiB, 64 * kKiB, kMiB + 7, 4 * kMiB, 64 * kMiB};
  uint64_t total = 0;
  for (uint64_t s : sizes) total += s;

  std::map<TransportMode, std::unique_ptr<Client>> clients;
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string tag = ModeName(mode);
    CAPTURE(tag);
    ClientConfig config = cl.Config(mode);
    // Batches of copies shared with two helper threads, on any machine.
    if (mode == TransportMode::kShm) config.copy_threads = 3;
    auto c = OpenClient(config);
    CHECK(c->host_id() == kHost);
    CHECK(c->segment_name().empty());
    for (uint64_t size : sizes) {
      std::string key = tag + "/size-" + std::to_string(size);
      CAPTURE(key);
      Status st = PutPattern(*c, key, size);
      REQUIRE_MESSAGE(st.ok(), st.ToString());
      // A buffer larger than the object: its size comes back, nothing past it is written.
      std::vector<uint8_t> buf(size + 64, 0xA5);
      auto got = c->Get(key, buf.data(), buf.size());
      REQUIRE_MESSAGE(got.ok(), got.status().ToString());
      CHECK(*got == size);
      CHECK(FirstMismatch(key, buf.data(), size) == -1);
      CHECK(std::all_of(buf.begin() + static_cast<std::ptrdiff_t>(size), buf.end(),
                        [](uint8_t b) { return b == 0xA5; }));
      auto sz = c->GetSize(key);
      REQUIRE(sz.ok());
      CHECK(*sz == size);
    }
    ClientStats s = c->stats();
    CHECK(s.puts == sizes.size());
    CHECK(s.gets == sizes.size());
    CHECK(s.bytes_written == total);
    CHECK(s.bytes_read == total);
    CHECK(s.checksum_mismatches == 0);
    CHECK(s.lease_expirations == 0);
    if (mode == TransportMode::kTcp) {
      CHECK(s.tcp_transfers >= 2 * sizes.size());
      CHECK(s.shm_transfers == 0);
      CHECK(s.tcp_connections_opened >= 1);
    } else {
      CHECK(s.shm_transfers >= 2 * sizes.size());
      CHECK(s.tcp_transfers == 0);
      CHECK(s.tcp_connections_opened == 0);
    }
    clients[mode] = std::move(c);
  }
  Client& tcp = *clients[TransportMode::kTcp];
  Client& shm = *clients[TransportMode::kShm];

  // What one transport wrote, the other reads.
  for (uint64_t size : sizes) {
    CheckGet(tcp, "shm/size-" + std::to_string(size), size);
    CheckGet(shm, "tcp/size-" + std::to_string(size), size);
  }

  // Batches of 256 keys, written through one transport and read through the other.
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string tag = ModeName(mode);
    CAPTURE(tag);
    Client& writer = *clients[mode];
    Client& reader = mode == TransportMode::kTcp ? shm : tcp;
    std::vector<std::string> keys;
    std::vector<std::vector<uint8_t>> values;
    std::vector<Slice> slices;
    for (uint64_t i = 0; i < 256; ++i) {
      keys.push_back(tag + "/batch-" + std::to_string(i));
      values.push_back(Pattern(keys.back(), 1 + (i * 7919) % (64 * kKiB)));
    }
    for (auto& v : values) slices.push_back({v.data(), v.size()});
    std::vector<Status> put = writer.BatchPut(keys, slices);
    REQUIRE(put.size() == keys.size());
    for (size_t i = 0; i < keys.size(); ++i) {
      CHECK_MESSAGE(put[i].ok(), (keys[i] + ": " + put[i].ToString()));
    }

    std::vector<std::vector<uint8_t>> bufs(keys.size(), std::vector<uint8_t>(64 * kKiB));
    std::vector<Slice> out;
    for (auto& b : bufs) out.push_back({b.data(), b.size()});
    for (Client* c : {&reader, &writer}) {
      for (auto& b : bufs) std::fill(b.begin(), b.end(), 0);
      std::vector<Result<uint64_t>> got = c->BatchGet(keys, out);
      REQUIRE(got.size() == keys.size());
      for (size_t i = 0; i < keys.size(); ++i) {
        CAPTURE(keys[i]);
        REQUIRE_MESSAGE(got[i].ok(), got[i].status().ToString());
        CHECK(*got[i] == values[i].size());
        CHECK(FirstMismatch(keys[i], bufs[i].data(), values[i].size()) == -1);
      }
    }
    // Missing keys fail alone, in their place.
    std::vector<std::string> mixed = {keys[3], tag + "/no-such-key", keys[200]};
    std::vector<Slice> mixed_out = {out[3], out[4], out[200]};
    std::vector<Result<uint64_t>> got = reader.BatchGet(mixed, mixed_out);
    REQUIRE(got.size() == 3);
    CHECK(got[0].ok());
    CHECK(got[1].code() == ErrorCode::OBJECT_NOT_FOUND);
    CHECK(got[2].ok());
    CHECK(FirstMismatch(keys[200], bufs[200].data(), values[200].size()) == -1);
    std::vector<Result<bool>> exist = reader.BatchExist(mixed);
    REQUIRE(exist.size() == 3);
    CHECK((exist[0].ok() && *exist[0]));
    CHECK((exist[1].ok() && !*exist[1]));
    CHECK((exist[2].ok() && *exist[2]));
  }
  CHECK(tcp.stats().shm_transfers == 0);
  CHECK(shm.stats().tcp_transfers == 0);
  CHECK(tcp.stats().checksum_mismatches == 0);
  CHECK(shm.stats().checksum_mismatches == 0);

  // Two replicas: two segments, and each holds every byte (read raw from the data ports).
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string key = std::string(ModeName(mode)) + "/two-replicas";
    CAPTURE(key);
    const uint64_t size = kMiB + 3;
    Status st = PutPattern(*clients[mode], key, size, ReplicateConfig{2, ""});
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    Placement where = Locate(*inspector, key);
    REQUIRE(where.code == 0);
    REQUIRE(where.replicas.size() == 2);
    CHECK(where.replicas[0].first != where.replicas[1].first);
    for (const auto& replica : where.replicas) {
      const std::string& segment = replica.first;
      CAPTURE(segment);
      DataClient port(data_address.at(segment));
      port.Hello();
      std::string bytes;
      REQUIRE(port.Read(replica.second, size, bytes) == 0);
      REQUIRE(bytes.size() == size);
      CHECK(FirstMismatch(key, reinterpret_cast<const uint8_t*>(bytes.data()), size) == -1);
    }
    CheckGet(tcp, key, size);
    CheckGet(shm, key, size);
  }

  // A preferred segment is where the object goes (the segments are far from full).
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    for (int i = 0; i < 4; ++i) {
      const std::string key = std::string(ModeName(mode)) + "/preferred-" + std::to_string(i);
      CAPTURE(key);
      Status st = PutPattern(*clients[mode], key, 100 * kKiB, ReplicateConfig{1, "seg-2"});
      REQUIRE_MESSAGE(st.ok(), st.ToString());
      Placement where = Locate(*inspector, key);
      REQUIRE(where.replicas.size() == 1);
      CHECK(where.replicas[0].first == "seg-2");
      CheckGet(*clients[mode], key, 100 * kKiB);
    }
    const std::string key = std::string(ModeName(mode)) + "/preferred-two";
    REQUIRE(PutPattern(*clients[mode], key, 10 * kKiB, ReplicateConfig{2, "seg-1"}).ok());
    Placement where = Locate(*inspector, key);
    REQUIRE(where.replicas.size() == 2);
    CHECK((where.replicas[0].first == "seg-1" || where.replicas[1].first == "seg-1"));
  }
}

// ---- 2. the API's contracts --------------------------------------------------

TEST_CASE("client: semantics of put, get, exist, size, remove, bad arguments and Close") {
  Cluster cl;
  cl.AddStore("seg-0", "64MiB");
  auto c = OpenClient(cl.Config(TransportMode::kAuto));

  // A put of an existing key is OK and leaves the object as it was.
  REQUIRE(PutPattern(*c, "k", 10000).ok());
  std::vector<uint8_t> other = Pattern("something else", 10000);
  CHECK(c->Put("k", other.data(), other.size()).ok());
  CHECK(c->Put("k", other.data(), 500).ok());  // another size too
  CheckGet(*c, "k", 10000);
  auto size = c->GetSize("k");
  REQUIRE(size.ok());
  CHECK(*size == 10000);

  // A buffer too small: INVALID_PARAMS, nothing written.
  std::vector<uint8_t> small(9999, 0x5A);
  CHECK(c->Get("k", small.data(), small.size()).code() == ErrorCode::INVALID_PARAMS);
  CHECK(std::all_of(small.begin(), small.end(), [](uint8_t b) { return b == 0x5A; }));
  std::vector<Slice> small_slice = {{small.data(), small.size()}};
  std::vector<Result<uint64_t>> small_batch = c->BatchGet({"k"}, small_slice);
  REQUIRE(small_batch.size() == 1);
  CHECK(small_batch[0].code() == ErrorCode::INVALID_PARAMS);
  CHECK(std::all_of(small.begin(), small.end(), [](uint8_t b) { return b == 0x5A; }));

  // In a batch only the key whose buffer is too small fails.
  {
    REQUIRE(PutPattern(*c, "fits", 3000).ok());
    std::vector<uint8_t> fits(3000);
    std::vector<Slice> slices = {{small.data(), small.size()}, {fits.data(), fits.size()}};
    std::vector<Result<uint64_t>> got = c->BatchGet({"k", "fits"}, slices);
    REQUIRE(got.size() == 2);
    CHECK(got[0].code() == ErrorCode::INVALID_PARAMS);
    CHECK(std::all_of(small.begin(), small.end(), [](uint8_t b) { return b == 0x5A; }));
    REQUIRE(got[1].ok());
    CHECK(*got[1] == 3000);
    CHECK(FirstMismatch("fits", fits.data(), 3000) == -1);
    REQUIRE(c->Remove("fits", true).ok());
  }

  // An empty object: refused, or stored and read back as empty; never a crash.
  {
    uint8_t byte = 0;
    Status st = c->Put("empty", &byte, 0);
    MESSAGE("put of 0 bytes: " << st.ToString());
    if (st.ok()) {
      auto r = c->Get("empty", &byte, 1);
      REQUIRE(r.ok());
      CHECK(*r == 0);
      REQUIRE(c->Remove("empty", true).ok());
    }
  }

  // Unknown keys.
  std::vector<uint8_t> buf(10000);
  CHECK(c->Get("nope", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(c->GetSize("nope").code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(c->Remove("nope").code() == ErrorCode::OBJECT_NOT_FOUND);
  auto nope = c->Exist("nope");
  REQUIRE(nope.ok());
  CHECK_FALSE(*nope);
  auto yes = c->Exist("k");
  REQUIRE(yes.ok());
  CHECK(*yes);
  std::vector<Result<bool>> exist = c->BatchExist({"k", "nope", "k"});
  REQUIRE(exist.size() == 3);
  CHECK((exist[0].ok() && *exist[0]));
  CHECK((exist[1].ok() && !*exist[1]));
  CHECK((exist[2].ok() && *exist[2]));

  // Keys: empty and longer than 4096 bytes are refused by every call; 4096 is fine.
  const std::string longest(4096, 'y');
  REQUIRE(PutPattern(*c, longest, 3000).ok());
  CheckGet(*c, longest, 3000);
  for (const std::string& bad : {std::string(), std::string(4097, 'x')}) {
    CAPTURE(bad.size());
    std::vector<uint8_t> v = Pattern("v", 100);
    CHECK(IsKeyError(c->Put(bad, v.data(), v.size()).code()));
    CHECK(IsKeyError(c->Get(bad, buf.data(), buf.size()).code()));
    CHECK(IsKeyError(c->Exist(bad).code()));
    CHECK(IsKeyError(c->GetSize(bad).code()));
    CHECK(IsKeyError(c->Remove(bad).code()));
    CHECK(IsKeyError(c->Remove(bad, true).code()));
    // In a batch, only the bad key fails.
    std::vector<std::string> keys = {"batch-a-" + std::to_string(bad.size()), bad,
                                     "batch-b-" + std::to_string(bad.size())};
    std::vector<std::vector<uint8_t>> vals;
    std::vector<Slice> slices;
    for (auto& k : keys) vals.push_back(Pattern(k, 777));
    for (auto& x : vals) slices.push_back({x.data(), x.size()});
    std::vector<Status> put = c->BatchPut(keys, slices);
    REQUIRE(put.size() == 3);
    CHECK(put[0].ok());
    CHECK(IsKeyError(put[1].code()));
    CHECK(put[2].ok());
    std::vector<std::vector<uint8_t>> outs(3, std::vector<uint8_t>(777));
    std::vector<Slice> out_slices;
    for (auto& o : outs) out_slices.push_back({o.data(), o.size()});
    std::vector<Result<uint64_t>> got = c->BatchGet(keys, out_slices);
    REQUIRE(got.size() == 3);
    CHECK(got[0].ok());
    CHECK(IsKeyError(got[1].code()));
    CHECK(got[2].ok());
    CHECK(FirstMismatch(keys[0], outs[0].data(), 777) == -1);
    CHECK(FirstMismatch(keys[2], outs[2].data(), 777) == -1);
    std::vector<Result<bool>> ex = c->BatchExist(keys);
    REQUIRE(ex.size() == 3);
    CHECK((ex[0].ok() && *ex[0]));
    CHECK(IsKeyError(ex[1].code()));
    CHECK((ex[2].ok() && *ex[2]));
  }

  // Batches whose lengths disagree: every key INVALID_PARAMS, nothing stored.
  {
    std::vector<std::string> keys = {"m1", "m2", "m3"};
    std::vector<uint8_t> v = Pattern("m", 64);
    std::vector<Slice> two = {{v.data(), v.size()}, {v.data(), v.size()}};
    std::vector<Status> put = c->BatchPut(keys, two);
    REQUIRE(put.size() == 3);
    for (const Status& st : put) CHECK(st.code() == ErrorCode::INVALID_PARAMS);
    std::vector<Result<uint64_t>> got = c->BatchGet({"k", "k", "k"}, two);
    REQUIRE(got.size() == 3);
    for (const auto& r : got) CHECK(r.code() == ErrorCode::INVALID_PARAMS);
    std::vector<Result<bool>> ex = c->BatchExist(keys);
    for (const auto& r : ex) CHECK((r.ok() && !*r));
    CHECK(c->BatchPut({}, {}).empty());
    CHECK(c->BatchGet({}, {}).empty());
    CHECK(c->BatchExist({}).empty());
  }

  // One key twice in a batch: one of the two values is stored, whole.
  {
    std::vector<uint8_t> first = Pattern("dup-first", 5000), second = Pattern("dup-second", 5000);
    std::vector<Slice> slices = {{first.data(), first.size()}, {second.data(), second.size()}};
    std::vector<Status> put = c->BatchPut({"dup", "dup"}, slices);
    REQUIRE(put.size() == 2);
    MESSAGE("BatchPut of one key twice: " << put[0].ToString() << ", " << put[1].ToString());
    CHECK((put[0].ok() || put[1].ok()));
    std::vector<uint8_t> a(5000), b(5000);
    std::vector<Slice> outs = {{a.data(), a.size()}, {b.data(), b.size()}};
    std::vector<Result<uint64_t>> got = c->BatchGet({"dup", "dup"}, outs);
    REQUIRE(got.size() == 2);
    REQUIRE(got[0].ok());
    REQUIRE(got[1].ok());
    CHECK(a == b);
    CHECK((a == first || a == second));
    REQUIRE(c->Remove("dup", true).ok());
  }

  // Registered buffers: any memory works; bad ranges are refused.
  {
    std::vector<uint8_t> reg(64 * kKiB);
    CHECK(c->RegisterBuffer(reg.data(), reg.size()).ok());
    CHECK(c->RegisterBuffer(reg.data() + 100, 10).code() == ErrorCode::INVALID_PARAMS);
    CHECK(c->RegisterBuffer(nullptr, 10).code() == ErrorCode::INVALID_PARAMS);
    CHECK(c->RegisterBuffer(buf.data(), 0).code() == ErrorCode::INVALID_PARAMS);
    auto r = c->Get("k", reg.data(), reg.size());
    REQUIRE(r.ok());
    CHECK(FirstMismatch("k", reg.data(), 10000) == -1);
    CHECK(c->UnregisterBuffer(reg.data()).ok());
  }

  // Remove and RemoveAll. Objects nobody looked up carry no lease; a reader
  // that looked one up and is not done (a raw GetReplicaList here; a get
  // ends its leases when it is done) holds it.
  for (int i = 1; i <= 5; ++i) REQUIRE(PutPattern(*c, "r" + std::to_string(i), 4096).ok());
  CHECK(c->Remove("r1").ok());
  auto r1 = c->Exist("r1");
  CHECK((r1.ok() && !*r1));
  CHECK(c->Get("r1", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
  auto reader = RawRpc(cl.rpc(), "reader");
  REQUIRE(Locate(*reader, "r2").code == 0);  // leases it
  CHECK(c->Remove("r2").code() == ErrorCode::OBJECT_HAS_LEASE);
  CheckGet(*c, "r2", 4096);
  CHECK(c->Remove("r2", true).ok());
  CHECK(c->Get("r2", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
  auto r3 = c->Exist("r3");  // a check leases nothing
  CHECK((r3.ok() && *r3));
  REQUIRE(Locate(*reader, "r3").code == 0);
  // Left: k, the 4096-byte key, batch-a-0, batch-b-0, batch-a-4097, batch-b-4097, r3, r4, r5.
  auto removed = c->RemoveAll();
  REQUIRE(removed.ok());
  CHECK(*removed >= 2);  // r4 and r5 at least; the leased ones stay
  CHECK(*removed < 9);
  auto r4 = c->Exist("r4");
  CHECK((r4.ok() && !*r4));
  CheckGet(*c, "r3", 4096);
  auto rest = c->RemoveAll(true);
  REQUIRE(rest.ok());
  CHECK(*removed + *rest == 9);
  for (const char* k : {"k", "r3", "r5"}) {
    auto e = c->Exist(k);
    CHECK((e.ok() && !*e));
  }
  auto none = c->RemoveAll(true);
  REQUIRE(none.ok());
  CHECK(*none == 0);

  // After Close every call fails UNAVAILABLE_IN_CURRENT_STATUS; Close again is harmless.
  REQUIRE(PutPattern(*c, "after", 100).ok());
  c->Close();
  const ErrorCode closed = ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS;
  std::vector<uint8_t> v = Pattern("after", 100);
  CHECK(c->Put("after2", v.data(), v.size()).code() == closed);
  CHECK(c->Get("after", buf.data(), buf.size()).code() == closed);
  CHECK(c->Exist("after").code() == closed);
  CHECK(c->GetSize("after").code() == closed);
  CHECK(c->Remove("after").code() == closed);
  CHECK(c->RemoveAll(true).code() == closed);
  CHECK(c->RegisterBuffer(buf.data(), buf.size()).code() == closed);
  std::vector<Slice> one = {{v.data(), v.size()}};
  std::vector<Status> bp = c->BatchPut({"after3"}, one);
  REQUIRE(bp.size() == 1);
  CHECK(bp[0].code() == closed);
  std::vector<Result<uint64_t>> bg = c->BatchGet({"after"}, one);
  REQUIRE(bg.size() == 1);
  CHECK(bg[0].code() == closed);
  std::vector<Result<bool>> be = c->BatchExist({"after", "x"});
  REQUIRE(be.size() == 2);
  CHECK(be[0].code() == closed);
  CHECK(be[1].code() == closed);
  c->Close();
  CHECK(c->stats().puts >= 1);
  // The object outlived its writer's Close (the writer contributed no segment).
  auto again = OpenClient(cl.Config(TransportMode::kTcp));
  CheckGet(*again, "after", 100);
}

// ---- 3. a store killed under load ------------------------------------------

TEST_CASE(
    "client: a store killed with SIGKILL under load: exact bytes or an error, then recovery") {
  Cluster cl({"--client-ttl", "2s"});  // ten pings of the live stores
  // Room for everything the load writes: no eviction may take a survivor.
  for (int i = 0; i < 3; ++i) cl.AddStore("seg-" + std::to_string(i), "256MiB");
  auto inspector = RawRpc(cl.rpc(), "inspector");
  auto setup = OpenClient(cl.Config(TransportMode::kTcp));

  // Objects on the store that will die, and on the two that live.
  std::vector<Object> victims, survivors, known;
  for (int i = 0; i < 16; ++i) {
    victims.push_back({"victim-" + std::to_string(i), 64 * kKiB + static_cast<uint64_t>(i)});
    REQUIRE(PutPattern(*setup, victims.back().key, victims.back().size, {1, "seg-1"}).ok());
    REQUIRE(Locate(*inspector, victims.back().key).replicas.at(0).first == "seg-1");
    survivors.push_back({"survivor-" + std::to_string(i), 32 * kKiB + static_cast<uint64_t>(i)});
    std::string where = i % 2 ? "seg-0" : "seg-2";
    REQUIRE(PutPattern(*setup, survivors.back().key, survivors.back().size, {1, where}).ok());
    REQUIRE(Locate(*inspector, survivors.back().key).replicas.at(0).first == where);
  }
  known = victims;
  known.insert(known.end(), survivors.begin(), survivors.end());

  ClientConfig tcp_config = cl.Config(TransportMode::kTcp);
  tcp_config.io_timeout = 2s;
  tcp_config.connect_timeout = 2s;
  ClientConfig auto_config = cl.Config(TransportMode::kAuto);
  auto_config.io_timeout = 2s;
  auto_config.connect_timeout = 2s;
  auto tcp = OpenClient(tcp_config);
  auto local = OpenClient(auto_config);
  {
    Load load({tcp.get(), local.get()}, known, 64 * kKiB);
    REQUIRE_MESSAGE(WaitFor([&] { return load.ops >= 200; }, 30s), load.Summary());
    CHECK(cl.store("seg-1").Stop(SIGKILL) == 128 + SIGKILL);
    const uint64_t at_kill = load.ops;
    // The master drops the dead store's objects after --client-ttl.
    CHECK(WaitFor(
        [&] {
          std::vector<std::string> keys;
          for (auto& o : victims) keys.push_back(o.key);
          for (auto& r : setup->BatchExist(keys)) {
            if (!r.ok() || *r) return false;
          }
          return true;
        },
        15s));
    CHECK(WaitFor([&] { return load.ops >= at_kill + 200; }, 30s));
    load.Stop();
    MESSAGE(load.Summary());
    CHECK(load.corrupt == 0);
    CHECK(load.gets_exact > 0);
    CHECK(load.puts_ok > 0);
    // A put that found the store dead went to another one in the same call.
    CHECK(load.puts_failed == 0);
  }

  std::vector<uint8_t> buf(256 * kKiB);
  for (Client* c : {tcp.get(), local.get()}) {
    for (const Object& o : victims) {
      CHECK(c->Get(o.key, buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
      auto e = c->Exist(o.key);
      CHECK((e.ok() && !*e));
    }
    for (const Object& o : survivors) CheckGet(*c, o.key, o.size);
  }
  // Puts succeed again: the dead segment is gone from the master.
  for (auto [c, tag] : {std::pair{tcp.get(), "tcp"}, std::pair{local.get(), "auto"}}) {
    for (int i = 0; i < 12; ++i) {
      std::string key = std::string("after-recovery-") + tag + "-" + std::to_string(i);
      Status st = PutPattern(*c, key, 128 * kKiB);
      CHECK_MESSAGE(st.ok(), st.ToString());
      if (st.ok()) CheckGet(*c, key, 128 * kKiB);
    }
  }
}

TEST_CASE("client: puts go around a dead or frozen store at once; a store is back when it pings") {
  // Before: for up to --client-ttl the master kept placing on a killed
  // store and a third of puts failed with TRANSFER_FAIL.
  Cluster cl({"--client-ttl", "60s"});
  for (int i = 0; i < 3; ++i) cl.AddStore("seg-" + std::to_string(i), "64MiB");
  std::string admin = cl.master().Address("admin");
  auto inspector = RawRpc(cl.rpc(), "inspector");
  ClientConfig config = cl.Config(TransportMode::kTcp);
  config.io_timeout = 1s;
  config.connect_timeout = 1s;
  auto client = OpenClient(config);
  auto unreachable = [&](const std::string& name) {
    std::string json = HttpGet(admin, "/api/v1/segments");
    size_t at = json.find("\"name\":\"" + name + "\"");
    REQUIRE(at != std::string::npos);
    size_t end = json.find('}', at);
    return json.substr(at, end - at).find("\"unreachable\":true") != std::string::npos;
  };

  CHECK(cl.store("seg-1").Stop(SIGKILL) == 128 + SIGKILL);
  // Every put names the dead store first; the first one finds it dead,
  // reports it and goes elsewhere, the later ones are never sent there.
  for (int i = 0; i < 30; ++i) {
    std::string key = "around-dead-" + std::to_string(i);
    Status st = PutPattern(*client, key, 64 * kKiB + static_cast<uint64_t>(i), {1, "seg-1"});
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    CHECK(Locate(*inspector, key).replicas.at(0).first != "seg-1");
  }
  CHECK(Metric(admin, "kvcached_master_unreachable_reports_total") == 1);
  CHECK(unreachable("seg-1"));
  for (int i = 0; i < 30; ++i) {
    CheckGet(*client, "around-dead-" + std::to_string(i), 64 * kKiB + static_cast<uint64_t>(i));
  }

  // A frozen store: the transfer times out, the put lands elsewhere.
  KvcachedProcess& frozen = cl.store("seg-2");
  frozen.Signal(SIGSTOP);
  REQUIRE(WaitFor([&] { return frozen.Stopped(); }, 10s));
  for (int i = 0; i < 5; ++i) {
    std::string key = "around-frozen-" + std::to_string(i);
    Status st = PutPattern(*client, key, 256 * kKiB, {1, "seg-2"});
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    CHECK(Locate(*inspector, key).replicas.at(0).first == "seg-0");
  }
  CHECK(Metric(admin, "kvcached_master_unreachable_reports_total") == 2);
  CHECK(unreachable("seg-2"));
  frozen.Signal(SIGCONT);
  // Its next ping brings it back; the dead one stays out.
  REQUIRE(WaitFor([&] { return !unreachable("seg-2"); }, 10s));
  CHECK(unreachable("seg-1"));
  REQUIRE(PutPattern(*client, "back", 64 * kKiB, {1, "seg-2"}).ok());
  CHECK(Locate(*inspector, "back").replicas.at(0).first == "seg-2");
  CheckGet(*client, "back", 64 * kKiB);
  for (int i = 0; i < 5; ++i) CheckGet(*client, "around-frozen-" + std::to_string(i), 256 * kKiB);
}

TEST_CASE("client: a segment whose endpoint names another store's port gets no bytes") {
  // Issue 15, defect 7: a token holder mounted a fake 1 TiB segment that
  // pointed at a real store's data port; puts placed there wrote into that
  // store's memory over its own objects. The store's Hello now says which
  // segment it serves, and the client checks it against the endpoint.
  Cluster cl;
  cl.AddStore("seg-0", "64MiB");
  std::string admin = cl.master().Address("admin");
  auto c = OpenClient(cl.Config(TransportMode::kTcp));
  std::vector<std::string> mine;
  for (int i = 0; i < 16; ++i) {
    mine.push_back("mine-" + std::to_string(i));
    REQUIRE(PutPattern(*c, mine.back(), 1 * kMiB).ok());
  }
  // The impostor learns seg-0's endpoint and mounts "fake" over its port.
  auto impostor = RawRpc(cl.rpc(), "impostor");
  ReplicaListResponse placed;
  REQUIRE(impostor->Call(MsgType::kPutStart, PutStartRequest{1, "seg-0", {{"probe", 64}}}, placed)
              .ok());
  REQUIRE(placed.items.at(0).code == 0);
  Result<SegmentEndpoint> real = ParseEndpoint(placed.segments.at(0).endpoint);
  REQUIRE(real.ok());
  SegmentEndpoint fake = *real;
  fake.name = "fake";
  fake.size = 1ull << 40;
  fake.shm.clear();
  StatusResponse mounted;
  REQUIRE(impostor
              ->Call(MsgType::kMountSegment,
                     MountRequest{{"fake", 0, 1ull << 40, FormatEndpoint(fake)}}, mounted)
              .ok());
  REQUIRE(mounted.code == 0);
  // Puts that the master places in "fake" go to seg-0's port: refused by the
  // client, reported, and stored in seg-0 properly instead.
  for (int i = 0; i < 8; ++i) {
    std::string key = "victim-" + std::to_string(i);
    Status st = PutPattern(*c, key, 1 * kMiB, {1, "fake"});
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    CHECK(Locate(*impostor, key).replicas.at(0).first == "seg-0");
    CheckGet(*c, key, 1 * kMiB);
  }
  CHECK(Metric(admin, "kvcached_master_unreachable_reports_total") == 1);
  for (const std::string& k : mine) CheckGet(*c, k, 1 * kMiB);
}

// ---- 4. the master restarted under load ------------------------------------

TEST_CASE("client: master killed and restarted under load: stored objects come back exact") {
  Cluster cl({"--default-kv-lease-ttl", "500ms"});
  std::vector<std::string> admins;
  for (int i = 0; i < 2; ++i) {
    admins.push_back(cl.AddStore("seg-" + std::to_string(i), "64MiB").Address("admin"));
  }
  auto c = OpenClient(cl.Config(TransportMode::kAuto));
  auto tcp = OpenClient(cl.Config(TransportMode::kTcp));

  std::vector<Object> durable;
  std::vector<std::string> keys;
  std::vector<std::vector<uint8_t>> values;
  std::vector<Slice> slices;
  for (uint64_t i = 0; i < 64; ++i) {
    durable.push_back({"durable-" + std::to_string(i), 64 * kKiB + i * 13});
    keys.push_back(durable.back().key);
    values.push_back(Pattern(keys.back(), durable.back().size));
  }
  for (auto& v : values) slices.push_back({v.data(), v.size()});
  for (const Status& st : c->BatchPut(keys, slices)) REQUIRE_MESSAGE(st.ok(), st.ToString());
  // Both stores have the objects in their tables: they survive the master.
  REQUIRE(WaitFor(
      [&] {
        return Metric(admins[0], "kvcached_store_objects") +
                   Metric(admins[1], "kvcached_store_objects") ==
               64;
      },
      10s));

  {
    // Two threads on one client (kAuto), and one on a TCP client.
    Load load({c.get(), c.get(), tcp.get()}, durable, 128 * kKiB);
    REQUIRE_MESSAGE(WaitFor([&] { return load.ops >= 150; }, 30s), load.Summary());
    cl.KillMaster();
    cl.StartMasterAgain();
    const uint64_t puts_at_restart = load.puts_ok;
    // The stores remount; every object stored before is readable again, exactly.
    CHECK(WaitFor(
        [&] {
          std::vector<uint8_t> buf(128 * kKiB);
          for (const Object& o : durable) {
            ErrorCode code;
            if (GetVerify(*c, o.key, o.size, buf, code) != Read::kExact) return false;
          }
          return true;
        },
        20s));
    // New puts go through the new master.
    CHECK(WaitFor([&] { return load.puts_ok >= puts_at_restart + 20; }, 20s));
    load.Stop();
    MESSAGE(load.Summary());
    CHECK(load.corrupt == 0);
  }
  for (const Object& o : durable) {
    CheckGet(*c, o.key, o.size);
    CheckGet(*tcp, o.key, o.size);
  }
  CHECK(cl.master().Log().find("remounted by client") != std::string::npos);
}

TEST_CASE("client: tenants' objects come back in their own key spaces after a master kill -9") {
  Cluster cl({"--default-kv-lease-ttl", "500ms"});
  std::string admin = cl.AddStore("seg-0", "64MiB").Address("admin");
  ClientConfig team_config = cl.Config(TransportMode::kTcp);
  team_config.tenant_id = "team-a";
  auto team = OpenClient(team_config);
  auto plain = OpenClient(cl.Config(TransportMode::kTcp));
  // The same keys in both key spaces, each value derived from tenant and key.
  auto value = [](const std::string& tenant, const std::string& key) {
    return Pattern(tenant + "/" + key, 96 * kKiB);
  };
  std::vector<std::string> keys;
  for (int i = 0; i < 16; ++i) keys.push_back("k-" + std::to_string(i));
  for (const std::string& k : keys) {
    std::vector<uint8_t> a = value("team-a", k), d = value("default", k);
    REQUIRE(team->Put(k, a.data(), a.size()).ok());
    REQUIRE(plain->Put(k, d.data(), d.size()).ok());
  }
  REQUIRE(WaitFor([&] { return Metric(admin, "kvcached_store_objects") == 32; }, 10s));
  auto reads_exact = [&](Client& c, const std::string& tenant) {
    std::vector<uint8_t> buf(96 * kKiB);
    for (const std::string& k : keys) {
      Result<uint64_t> n = c.Get(k, buf.data(), buf.size());
      if (!n.ok() || *n != buf.size() || buf != value(tenant, k)) return false;
    }
    return true;
  };
  CHECK(reads_exact(*team, "team-a"));
  CHECK(reads_exact(*plain, "default"));

  // The store remounts the tenant's records under their internal keys: each
  // tenant finds its own values again, exactly, and no other's.
  cl.KillMaster();
  cl.StartMasterAgain();
  CHECK(WaitFor([&] { return reads_exact(*team, "team-a"); }, 20s));
  CHECK(reads_exact(*plain, "default"));
  // A tenant's RemoveAll removes its objects only, on the rebuilt index too.
  Result<uint64_t> removed = team->RemoveAll(true);
  REQUIRE(removed.ok());
  CHECK(*removed == keys.size());
  CHECK_FALSE(*team->Exist(keys[0]));
  CHECK(reads_exact(*plain, "default"));
}

// ---- 5. a full pool ---------------------------------------------------------

TEST_CASE(
    "client: a full pool answers NO_AVAILABLE_HANDLE or evicts, and what is stored reads back") {
  // No background eviction: space is made only when a put needs it.
  Cluster cl({"--eviction-high-watermark-ratio", "1", "--default-kv-lease-ttl", "2s"});
  std::vector<std::string> admins;
  for (int i = 0; i < 2; ++i) {
    admins.push_back(cl.AddStore("seg-" + std::to_string(i), "4MiB").Address("admin"));
  }
  auto c = OpenClient(cl.Config(TransportMode::kAuto));
  constexpr uint64_t kObject = 256 * kKiB;  // 32 fit in the pool

  // Half again as many objects as fit: unleased old ones are evicted to make room.
  std::vector<std::string> keys;
  int ok = 0;
  for (int i = 0; i < 48; ++i) {
    keys.push_back("fill-" + std::to_string(i));
    Status st = PutPattern(*c, keys.back(), kObject);
    CHECK_MESSAGE((st.ok() || st.code() == ErrorCode::NO_AVAILABLE_HANDLE), st.ToString());
    ok += st.ok();
  }
  CHECK(ok > 0);
  std::vector<Result<bool>> present = c->BatchExist(keys);  // leases nothing
  std::vector<std::string> kept;
  for (size_t i = 0; i < keys.size(); ++i) {
    REQUIRE(present[i].ok());
    if (*present[i]) kept.push_back(keys[i]);
  }
  CHECK(kept.size() <= 32);
  CHECK(kept.size() >= 16);
  CHECK(*present.back());  // the newest stayed
  for (const std::string& k : kept) CheckGet(*c, k, kObject);
  // Readers that looked every object up and are not done (raw lookups; a
  // get ends its leases when it is done).
  auto reader = RawRpc(cl.rpc(), "reader");
  for (const std::string& k : kept) REQUIRE(Locate(*reader, k).code == 0);

  // Every object in the pool is leased now: puts fail once the free space is gone.
  int failed_at = -1;
  for (int i = 0; i < 40 && failed_at < 0; ++i) {  // 32 fill the pool
    std::string key = "extra-" + std::to_string(i);
    Status st = PutPattern(*c, key, kObject);
    if (st.ok()) {
      CheckGet(*c, key, kObject);
    } else {
      CHECK_MESSAGE(st.code() == ErrorCode::NO_AVAILABLE_HANDLE, st.ToString());
      failed_at = i;
    }
  }
  CHECK(failed_at >= 0);
  // Once the leases end, the objects chosen for eviction go and puts succeed again.
  CHECK(WaitFor([&] { return PutPattern(*c, "later", kObject).ok(); }, 15s));
  CheckGet(*c, "later", kObject);
  std::vector<uint8_t> buf(kObject);
  for (const std::string& k : kept) {
    ErrorCode code;
    Read r = GetVerify(*c, k, kObject, buf, code);
    CHECK_MESSAGE((r == Read::kExact || code == ErrorCode::OBJECT_NOT_FOUND),
                  (k + ": " + CodeName(code)));
  }
  // Larger than any segment: no eviction can help, so the put is refused at once.
  CHECK(PutPattern(*c, "too-big", 16 * kMiB).code() == ErrorCode::INVALID_PARAMS);
  for (const std::string& a : admins) CHECK(HttpGet(a, "/health") == "OK\n");
  CHECK(PutPattern(*c, "still-fine", 1000).ok());
  CheckGet(*c, "still-fine", 1000);
}

// ---- 6. a writer dying mid-put ------------------------------------------------

TEST_CASE("client: a writer that dies between PutStart and PutEnd leaves no object") {
  Cluster cl({"--put-start-discard-timeout", "100ms", "--put-start-release-timeout", "100ms"});
  std::string data = cl.AddStore("seg-0", "64MiB").Address("data");
  const std::string key = "half-written";
  const uint64_t size = 64 * kKiB;
  {
    auto dying = RawRpc(cl.rpc(), "dying-writer");
    ReplicaListResponse placed;
    REQUIRE(dying->Call(MsgType::kPutStart, PutStartRequest{1, "", {{key, size}}}, placed).ok());
    REQUIRE(placed.items.size() == 1);
    REQUIRE(placed.items[0].code == 0);
    REQUIRE(placed.items[0].replicas.size() == 1);
    // Half the bytes reach the store, then the writer is gone.
    std::vector<uint8_t> v = Pattern(key, size);
    DataClient port(data);
    port.Hello();
    REQUIRE(port.Write(placed.items[0].replicas[0].offset,
                       std::string(reinterpret_cast<char*>(v.data()), size / 2)) == 0);
    dying->Close();
  }
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string tag = ModeName(mode);
    CAPTURE(tag);
    auto c = OpenClient(cl.Config(mode));
    auto e = c->Exist(key);
    REQUIRE(e.ok());
    CHECK_FALSE(*e);
    std::vector<uint8_t> buf(size);
    CHECK(c->Get(key, buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
    CHECK(c->GetSize(key).code() == ErrorCode::OBJECT_NOT_FOUND);
    std::vector<Slice> out = {{buf.data(), buf.size()}};
    std::vector<Result<uint64_t>> got = c->BatchGet({key}, out);
    REQUIRE(got.size() == 1);
    CHECK(got[0].code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  // The abandoned put is taken over after the discard timeout: the key can be stored.
  auto c = OpenClient(cl.Config(TransportMode::kTcp));
  CHECK(WaitFor(
      [&] {
        if (!PutPattern(*c, key, size).ok()) return false;
        std::vector<uint8_t> buf(size);
        ErrorCode code;
        return GetVerify(*c, key, size, buf, code) == Read::kExact;
      },
      10s));
}

// ---- 7. corrupted bytes -------------------------------------------------------

TEST_CASE(
    "client: bytes corrupted in the segment: CHECKSUM_MISMATCH, or the bytes with checksums off") {
  Cluster cl;
  std::map<std::string, std::string> data_address;
  for (int i = 0; i < 2; ++i) {
    std::string name = "seg-" + std::to_string(i);
    data_address[name] = cl.AddStore(name, "64MiB").Address("data");
  }
  const std::string data = data_address["seg-0"];
  auto inspector = RawRpc(cl.rpc(), "inspector");
  auto writer = OpenClient(cl.Config(TransportMode::kTcp));
  const std::string key = "fragile";
  const uint64_t size = 64 * kKiB;
  const uint64_t at = 1000;
  REQUIRE(PutPattern(*writer, key, size, {1, "seg-0"}).ok());
  CheckGet(*writer, key, size);
  Placement where = Locate(*inspector, key);
  REQUIRE(where.replicas.size() == 1);

  // One byte flipped behind the pool's back.
  std::vector<uint8_t> expected = Pattern(key, size);
  expected[at] ^= 0xFF;
  DataClient port(data);
  port.Hello();
  REQUIRE(port.Write(where.replicas[0].second + at,
                     std::string(1, static_cast<char>(expected[at]))) == 0);

  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string tag = ModeName(mode);
    CAPTURE(tag);
    auto reader = OpenClient(cl.Config(mode));
    std::vector<uint8_t> buf(size);
    CHECK(reader->Get(key, buf.data(), buf.size()).code() == ErrorCode::CHECKSUM_MISMATCH);
    std::vector<Slice> out = {{buf.data(), buf.size()}};
    std::vector<Result<uint64_t>> got = reader->BatchGet({key}, out);
    REQUIRE(got.size() == 1);
    CHECK(got[0].code() == ErrorCode::CHECKSUM_MISMATCH);
    CHECK(reader->stats().checksum_mismatches >= 2);

    // A reader with checksums off gets the bytes as they are in the segment.
    ClientConfig unchecked = cl.Config(mode);
    unchecked.checksums = false;
    auto trusting = OpenClient(unchecked);
    std::fill(buf.begin(), buf.end(), 0);
    auto r = trusting->Get(key, buf.data(), buf.size());
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(*r == size);
    CHECK(buf == expected);
    CHECK(trusting->stats().checksum_mismatches == 0);
  }

  // A large object read over TCP in pieces on several connections (the
  // checksum is computed as they arrive, in order whatever order they
  // arrive in): a byte flipped in a later piece is caught too.
  {
    const std::string big = "fragile-big";
    const uint64_t big_size = 3 * kMiB + 5;
    const uint64_t big_at = 2 * kMiB + kMiB / 2;
    REQUIRE(PutPattern(*writer, big, big_size, {1, "seg-0"}).ok());
    CheckGet(*writer, big, big_size);
    Placement big_where = Locate(*inspector, big);
    REQUIRE(big_where.replicas.size() == 1);
    std::vector<uint8_t> flipped = Pattern(big, big_size);
    DataClient big_port(data);
    big_port.Hello();
    REQUIRE(big_port.Write(big_where.replicas[0].second + big_at,
                           std::string(1, static_cast<char>(flipped[big_at] ^ 0x0F))) == 0);
    auto reader = OpenClient(cl.Config(TransportMode::kTcp));
    std::vector<uint8_t> buf(big_size);
    CHECK(reader->Get(big, buf.data(), buf.size()).code() == ErrorCode::CHECKSUM_MISMATCH);
    CHECK(reader->stats().checksum_mismatches == 1);
    // Put back, it reads whole again.
    REQUIRE(big_port.Write(big_where.replicas[0].second + big_at,
                           std::string(1, static_cast<char>(flipped[big_at]))) == 0);
    CheckGet(*reader, big, big_size);
  }

  // Two replicas, one corrupted: a get returns the good bytes or
  // CHECKSUM_MISMATCH, never the bad ones.
  const std::string twice = "fragile-twice";
  REQUIRE(PutPattern(*writer, twice, size, {2, ""}).ok());
  Placement both = Locate(*inspector, twice);
  REQUIRE(both.replicas.size() == 2);
  for (int bad = 0; bad < 2; ++bad) {
    CAPTURE(bad);
    // Corrupt replica `bad`, and make sure the other one is intact.
    std::vector<uint8_t> good = Pattern(twice, size);
    for (int i = 0; i < 2; ++i) {
      DataClient p(data_address.at(both.replicas[i].first));
      p.Hello();
      uint8_t b = i == bad ? static_cast<uint8_t>(good[at] ^ 0x55) : good[at];
      REQUIRE(p.Write(both.replicas[i].second + at, std::string(1, static_cast<char>(b))) == 0);
    }
    for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
      const std::string tag = ModeName(mode);
      CAPTURE(tag);
      auto reader = OpenClient(cl.Config(mode));
      for (int round = 0; round < 4; ++round) {
        std::vector<uint8_t> buf(size);
        auto r = reader->Get(twice, buf.data(), buf.size());
        if (r.ok()) {
          CHECK(*r == size);
          CHECK(FirstMismatch(twice, buf.data(), size) == -1);
        } else {
          CHECK_MESSAGE(r.code() == ErrorCode::CHECKSUM_MISMATCH, r.status().ToString());
        }
      }
    }
  }
}

// ---- 8. a lease that ends during the transfer --------------------------------

TEST_CASE("client: a transfer that outlasts the read lease returns LEASE_EXPIRED") {
  Cluster cl({"--default-kv-lease-ttl", "10ms"});
  KvcachedProcess& store = cl.AddStore("seg-0", "128MiB");
  const uint16_t data_port = store.Port("data");
  const std::string key = "slow";
  const uint64_t size = 64 * kMiB;
  {
    auto writer = OpenClient(cl.Config(TransportMode::kTcp));
    REQUIRE(PutPattern(*writer, key, size).ok());
  }
  // The writer is closed: from now on, the only connections to the data port are the reader's.
  auto reader = OpenClient(cl.Config(TransportMode::kTcp));
  std::vector<uint8_t> buf(size);
  // Freeze the store. The reader gets its lease (10 ms) from the master, then
  // waits on the store; once its request sits unread in the store's socket,
  // the freeze is held a little longer than the lease, so the transfer ends
  // after it whatever the machine's speed.
  store.Signal(SIGSTOP);
  REQUIRE(WaitFor([&] { return store.Stopped(); }, 10s));
  auto get = std::async(std::launch::async, [&] { return reader->Get(key, buf.data(), size); });
  bool waiting = WaitFor([&] { return UnreadBytesAtPort(data_port); }, 10s);
  std::this_thread::sleep_for(50ms);  // the injected delay: five lease lengths
  store.Signal(SIGCONT);
  CHECK(waiting);
  Result<uint64_t> r = get.get();
  CHECK_MESSAGE(r.code() == ErrorCode::LEASE_EXPIRED, r.status().ToString());
  CHECK(reader->stats().lease_expirations >= 1);
  CHECK(reader->stats().checksum_mismatches == 0);
}

// ---- 9. a frozen store ---------------------------------------------------------

TEST_CASE("client: a frozen store fails gets and puts within the timeouts, then serves again") {
  Cluster cl;
  KvcachedProcess& store = cl.AddStore("seg-0", "64MiB");
  const std::string key = "frozen";
  const uint64_t size = 4 * kMiB;
  ClientConfig config = cl.Config(TransportMode::kTcp);
  config.io_timeout = 500ms;
  config.connect_timeout = 500ms;
  auto warm = OpenClient(config);  // has a pooled connection to the store
  REQUIRE(PutPattern(*warm, key, size).ok());
  CheckGet(*warm, key, size);
  auto cold = OpenClient(config);  // has none

  store.Signal(SIGSTOP);
  REQUIRE(WaitFor([&] { return store.Stopped(); }, 10s));
  auto bounded = [](auto&& call) {
    auto start = std::chrono::steady_clock::now();
    auto code = call();
    CHECK(std::chrono::steady_clock::now() - start < 10s);
    return code;
  };
  std::vector<uint8_t> buf(size);
  for (Client* c : {warm.get(), cold.get()}) {
    ErrorCode code = bounded([&] { return c->Get(key, buf.data(), buf.size()).code(); });
    CHECK_MESSAGE((code == ErrorCode::TRANSFER_FAIL || code == ErrorCode::RPC_TIMEOUT),
                  CodeName(code));
  }
  ErrorCode put = bounded([&] { return PutPattern(*warm, "frozen-put", size).code(); });
  CHECK_MESSAGE((put == ErrorCode::TRANSFER_FAIL || put == ErrorCode::RPC_TIMEOUT), CodeName(put));
  store.Signal(SIGCONT);
  // The put reported the store unreachable; its next ping brings it back.
  REQUIRE(WaitFor(
      [&] {
        return HttpGet(cl.master().Address("admin"), "/api/v1/segments")
                   .find("\"unreachable\":false") != std::string::npos;
      },
      10s));

  // Late answers to the abandoned requests are never taken for new ones.
  for (int round = 0; round < 2; ++round) {
    CheckGet(*warm, key, size);
    CheckGet(*cold, key, size);
  }
  // The failed put left nothing behind (it was revoked), so the key can be stored now.
  auto e = warm->Exist("frozen-put");
  CHECK((e.ok() && !*e));
  Status st = PutPattern(*warm, "frozen-put", size);
  CHECK_MESSAGE(st.ok(), st.ToString());
  CheckGet(*cold, "frozen-put", size);
}

// ---- 10. a client that contributes a segment ----------------------------------

TEST_CASE("client: a client with global_segment_size serves its segment until Close") {
  Cluster cl;
  cl.AddStore("seg-0", "64MiB");
  auto inspector = RawRpc(cl.rpc(), "inspector");
  ClientConfig host_config = cl.Config(TransportMode::kAuto);
  host_config.global_segment_size = 64 * kMiB;
  host_config.ping_interval = 200ms;
  auto host = OpenClient(host_config);
  const std::string segment = host->segment_name();
  REQUIRE_FALSE(segment.empty());
  CHECK(segment.rfind(std::string(kHost) + ":", 0) == 0);

  auto tcp = OpenClient(cl.Config(TransportMode::kTcp));
  auto shm = OpenClient(cl.Config(TransportMode::kShm));
  std::vector<Object> hosted;
  for (int i = 0; i < 4; ++i) {
    hosted.push_back({"hosted-" + std::to_string(i), kMiB + static_cast<uint64_t>(i)});
    Status st = PutPattern(*tcp, hosted.back().key, hosted.back().size, {1, segment});
    REQUIRE_MESSAGE(st.ok(), st.ToString());
    Placement where = Locate(*inspector, hosted.back().key);
    REQUIRE(where.replicas.size() == 1);
    CHECK(where.replicas[0].first == segment);
  }
  REQUIRE(PutPattern(*shm, "on-the-store", 4096, {1, "seg-0"}).ok());
  for (const Object& o : hosted) {
    CheckGet(*tcp, o.key, o.size);
    CheckGet(*shm, o.key, o.size);
    CheckGet(*host, o.key, o.size);
  }
  CHECK(tcp->stats().shm_transfers == 0);
  CHECK(shm->stats().tcp_transfers == 0);

  host->Close();
  std::vector<uint8_t> buf(2 * kMiB);
  for (const Object& o : hosted) {
    auto e = tcp->Exist(o.key);
    CHECK((e.ok() && !*e));
    CHECK(tcp->Get(o.key, buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  CheckGet(*tcp, "on-the-store", 4096);
  // Its segment takes no new objects.
  REQUIRE(PutPattern(*tcp, "after-close", 4096, {1, segment}).ok());
  Placement where = Locate(*inspector, "after-close");
  REQUIRE(where.replicas.size() == 1);
  CHECK(where.replicas[0].first == "seg-0");
}

// ---- 11. the cluster token ------------------------------------------------------

TEST_CASE("client: with a cluster token, Open needs it") {
  const std::string token_file = TokenFile();
  {
    Cluster cl({"--token-file", token_file});
    cl.AddStore("seg-0", "64MiB", {"--token-file", token_file});
    auto none = Client::Open(cl.Config(TransportMode::kTcp));
    CHECK(none.code() == ErrorCode::ILLEGAL_CLIENT);
    ClientConfig wrong = cl.Config(TransportMode::kTcp);
    wrong.token = "fedcba9876543210fedcba9876543210";
    CHECK(Client::Open(wrong).code() == ErrorCode::ILLEGAL_CLIENT);
    for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
      const std::string tag = ModeName(mode);
      CAPTURE(tag);
      ClientConfig right = cl.Config(mode);
      right.token = kToken;
      auto c = OpenClient(right);
      const std::string key = std::string("secret-") + ModeName(mode);
      Status st = PutPattern(*c, key, 256 * kKiB);
      REQUIRE_MESSAGE(st.ok(), st.ToString());
      CheckGet(*c, key, 256 * kKiB);
    }
  }
  std::remove(token_file.c_str());
}

// ---- 12. which transport reaches which store ------------------------------------

TEST_CASE(
    "client: kAuto uses shared memory on its own host and TCP elsewhere; kShm refuses others") {
  Cluster cl;
  cl.AddStore("near", "64MiB");
  cl.AddStore("far", "64MiB", {}, "some-other-host");
  auto automatic = OpenClient(cl.Config(TransportMode::kAuto));
  const uint64_t size = kMiB + 1;

  ClientStats before = automatic->stats();
  REQUIRE(PutPattern(*automatic, "near-key", size, {1, "near"}).ok());
  CheckGet(*automatic, "near-key", size);
  ClientStats mid = automatic->stats();
  CHECK(mid.shm_transfers >= before.shm_transfers + 2);
  CHECK(mid.tcp_transfers == before.tcp_transfers);
  REQUIRE(PutPattern(*automatic, "far-key", size, {1, "far"}).ok());
  CheckGet(*automatic, "far-key", size);
  ClientStats after = automatic->stats();
  CHECK(after.tcp_transfers >= mid.tcp_transfers + 2);
  CHECK(after.shm_transfers == mid.shm_transfers);

  auto tcp = OpenClient(cl.Config(TransportMode::kTcp));
  CheckGet(*tcp, "near-key", size);
  CheckGet(*tcp, "far-key", size);
  CHECK(tcp->stats().shm_transfers == 0);

  auto shm = OpenClient(cl.Config(TransportMode::kShm));
  CheckGet(*shm, "near-key", size);
  std::vector<uint8_t> buf(size);
  auto far = shm->Get("far-key", buf.data(), buf.size());
  CHECK_FALSE(far.ok());
  MESSAGE("kShm get of an object on another host: " << far.status().ToString());
  Status put = PutPattern(*shm, "far-put", size, {1, "far"});
  CHECK_FALSE(put.ok());
  auto e = shm->Exist("far-put");
  CHECK((e.ok() && !*e));
  CHECK(shm->stats().tcp_transfers == 0);
  CHECK(shm->stats().tcp_connections_opened == 0);
}

// ---- 13. settings from the environment -------------------------------------------

// Saves the variables a client reads and restores them at the end of the scope.
class ScopedEnv {
 public:
  ScopedEnv() {
    for (const char* name : kNames) {
      const char* v = std::getenv(name);
      if (v != nullptr) saved_[name] = v;
    }
  }
  ~ScopedEnv() {
    for (const char* name : kNames) {
      auto it = saved_.find(name);
      if (it == saved_.end()) {
        unsetenv(name);
      } else {
        setenv(name, it->second.c_str(), 1);
      }
    }
  }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;
  void Clear() {
    for (const char* name : kNames) unsetenv(name);
  }
  void Set(const char* name, const std::string& value) { setenv(name, value.c_str(), 1); }

 private:
  static constexpr const char* kNames[] = {"MOONCAKE_CONFIG_PATH",
                                           "MOONCAKE_MASTER",
                                           "MOONCAKE_LOCAL_HOSTNAME",
                                           "MOONCAKE_TE_META_DATA_SERVER",
                                           "MOONCAKE_GLOBAL_SEGMENT_SIZE",
                                           "MOONCAKE_LOCAL_BUFFER_SIZE",
                                           "MOONCAKE_PROTOCOL",
                                           "MOONCAKE_DEVICE",
                                           "KVCACHED_TOKEN_FILE",
                                           "KVCACHED_TRANSPORT"};
  std::map<std::string, std::string> saved_;
};

TEST_CASE("client: settings from Mooncake's environment variables and config file") {
  const std::string token_file = TokenFile();
  Cluster cl({"--token-file", token_file});
  cl.AddStore("seg-0", "64MiB", {"--token-file", token_file});
  ScopedEnv env;
  env.Clear();
  env.Set("MOONCAKE_MASTER", cl.rpc());
  env.Set("MOONCAKE_LOCAL_HOSTNAME", kHost);
  env.Set("MOONCAKE_GLOBAL_SEGMENT_SIZE", "32mb");
  env.Set("MOONCAKE_LOCAL_BUFFER_SIZE", "16mb");
  env.Set("MOONCAKE_PROTOCOL", "tcp");
  env.Set("MOONCAKE_TE_META_DATA_SERVER", "P2PHANDSHAKE");
  env.Set("KVCACHED_TOKEN_FILE", token_file);
  env.Set("KVCACHED_TRANSPORT", "tcp");
  auto config = ClientConfig::FromEnvironment();
  REQUIRE_MESSAGE(config.ok(), config.status().ToString());
  CHECK(config->master_server_addr == cl.rpc());
  CHECK(config->local_hostname == kHost);
  CHECK(config->global_segment_size == 32 * kMiB);
  CHECK(config->local_buffer_size == 16 * kMiB);
  CHECK(config->protocol == "tcp");
  CHECK(config->metadata_server == "P2PHANDSHAKE");
  CHECK(config->token == kToken);
  CHECK(config->transport == TransportMode::kTcp);
  {
    // The configuration opens a working client that contributes a segment.
    auto c = OpenClient(*config);
    REQUIRE_FALSE(c->segment_name().empty());
    REQUIRE(PutPattern(*c, "from-env", 100 * kKiB, {1, c->segment_name()}).ok());
    CheckGet(*c, "from-env", 100 * kKiB);
    // KVCACHED_TRANSPORT=tcp: the store on this host is reached over TCP.
    // (Its own segment is the client's own memory; how that counts is not asserted.)
    ClientStats before = c->stats();
    REQUIRE(PutPattern(*c, "from-env-on-store", 100 * kKiB, {1, "seg-0"}).ok());
    CheckGet(*c, "from-env-on-store", 100 * kKiB);
    CHECK(c->stats().shm_transfers == before.shm_transfers);
    CHECK(c->stats().tcp_transfers >= before.tcp_transfers + 2);
    MESSAGE("a kTcp client's transfers to its own segment: "
            << before.shm_transfers << " counted as shm, " << before.tcp_transfers << " as tcp");
  }

  // A bad value is INVALID_PARAMS naming its variable.
  const std::vector<std::pair<const char*, const char*>> bad = {
      {"MOONCAKE_GLOBAL_SEGMENT_SIZE", "lots"},
      {"MOONCAKE_LOCAL_BUFFER_SIZE", "-1"},
      {"KVCACHED_TRANSPORT", "carrier-pigeon"},
      {"KVCACHED_TOKEN_FILE", "/nonexistent/kvcached-token"}};
  for (const auto& setting : bad) {
    const std::string name = setting.first;
    CAPTURE(name);
    ScopedEnv scope;
    scope.Set(setting.first, setting.second);
    auto r = ClientConfig::FromEnvironment();
    CHECK(r.code() == ErrorCode::INVALID_PARAMS);
    CHECK(r.status().message().find(name) != std::string::npos);
  }

  // Mooncake's JSON file wins over the variables.
  char path[] = "/tmp/kvcached-client-config-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  const std::string json =
      R"({"local_hostname": ")" + std::string(kHost) +
      R"(", "metadata_server": "P2PHANDSHAKE", "global_segment_size": 33554432,)"
      R"( "local_buffer_size": "16mb", "protocol": "tcp", "device_name": "",)"
      R"( "master_server_address": ")" +
      cl.rpc() + R"("})";
  REQUIRE(write(fd, json.data(), json.size()) == static_cast<ssize_t>(json.size()));
  close(fd);
  {
    ScopedEnv scope;
    scope.Set("MOONCAKE_CONFIG_PATH", path);
    scope.Set("MOONCAKE_MASTER", "127.0.0.1:1");
    scope.Set("MOONCAKE_GLOBAL_SEGMENT_SIZE", "1gb");
    auto fc = ClientConfig::FromEnvironment();
    REQUIRE_MESSAGE(fc.ok(), fc.status().ToString());
    CHECK(fc->master_server_addr == cl.rpc());
    CHECK(fc->local_hostname == kHost);
    CHECK(fc->global_segment_size == 32 * kMiB);
    CHECK(fc->local_buffer_size == 16 * kMiB);
    CHECK(fc->token == kToken);  // KVCACHED_TOKEN_FILE still applies
    auto c = OpenClient(*fc);
    CHECK(PutPattern(*c, "from-file", 1000).ok());
    CheckGet(*c, "from-file", 1000);
  }
  {
    std::ofstream out(path, std::ios::trunc);
    out << R"({"global_segment_size": true})";
  }
  {
    ScopedEnv scope;
    scope.Set("MOONCAKE_CONFIG_PATH", path);
    auto r = ClientConfig::FromEnvironment();
    CHECK(r.code() == ErrorCode::INVALID_PARAMS);
    CHECK(r.status().message().find("global_segment_size") != std::string::npos);
  }
  std::remove(path);
  std::remove(token_file.c_str());
}

// ---- 14. a store restarted under the same name ---------------------------------------

TEST_CASE("client: a store restarted under the same segment name is reached at its new endpoint") {
  Cluster cl;
  cl.AddStore("seg-0", "64MiB");
  auto shm = OpenClient(cl.Config(TransportMode::kShm));
  auto tcp = OpenClient(cl.Config(TransportMode::kTcp));
  REQUIRE(PutPattern(*shm, "old-shm", 256 * kKiB).ok());
  REQUIRE(PutPattern(*tcp, "old-tcp", 256 * kKiB).ok());
  CheckGet(*shm, "old-tcp", 256 * kKiB);
  CheckGet(*tcp, "old-shm", 256 * kKiB);

  // SIGTERM unmounts; the same name then mounts again with new memory and a new port.
  CHECK(cl.store("seg-0").Stop(SIGTERM) == 0);
  cl.AddStore("seg-0", "64MiB");
  std::vector<uint8_t> buf(256 * kKiB);
  for (Client* c : {shm.get(), tcp.get()}) {
    CHECK(c->Get("old-shm", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
    CHECK(c->Get("old-tcp", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  // What the old clients write now lands in the new store: fresh clients read it.
  Status st = PutPattern(*shm, "new-shm", 256 * kKiB);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  st = PutPattern(*tcp, "new-tcp", 256 * kKiB);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  auto fresh_tcp = OpenClient(cl.Config(TransportMode::kTcp));
  auto fresh_shm = OpenClient(cl.Config(TransportMode::kShm));
  for (Client* c : {fresh_tcp.get(), fresh_shm.get(), shm.get(), tcp.get()}) {
    CheckGet(*c, "new-shm", 256 * kKiB);
    CheckGet(*c, "new-tcp", 256 * kKiB);
  }
}

// ---- 15. Open's errors ------------------------------------------------------------------

TEST_CASE("client: Open fails cleanly: no master, a bad address, a segment too large") {
  ClientConfig none;
  none.master_server_addr = "127.0.0.1:1";
  none.local_hostname = kHost;
  none.connect_timeout = 500ms;
  auto start = std::chrono::steady_clock::now();
  CHECK(Client::Open(none).code() == ErrorCode::RPC_FAIL);
  CHECK(std::chrono::steady_clock::now() - start < 10s);

  ClientConfig malformed = none;
  malformed.master_server_addr = "no-port-here";
  CHECK(Client::Open(malformed).code() == ErrorCode::INVALID_PARAMS);

  // Settings out of range are refused before anything is contacted.
  auto refused = [&](auto change) {
    ClientConfig c = none;
    change(c);
    Result<std::unique_ptr<Client>> r = Client::Open(c);
    CHECK(r.code() == ErrorCode::INVALID_PARAMS);
    return r.ok() ? std::string() : r.status().message();
  };
  CHECK(refused([](ClientConfig& c) { c.tcp_streams = 0; }).find("tcp_streams") !=
        std::string::npos);
  CHECK(refused([](ClientConfig& c) { c.tcp_split_bytes = 100; }).find("tcp_split_bytes") !=
        std::string::npos);
  CHECK(refused([](ClientConfig& c) { c.copy_threads = 65; }).find("copy_threads") !=
        std::string::npos);
  CHECK(refused([](ClientConfig& c) { c.io_timeout = 0ms; }).find("timeouts") !=
        std::string::npos);
  CHECK(refused([](ClientConfig& c) {
          c.global_segment_size = 1 << 20;
          c.ping_interval = 10ms;
        }).find("ping_interval") != std::string::npos);
  CHECK(refused([](ClientConfig& c) { c.protocol = "udp"; }).find("udp") != std::string::npos);

  Cluster cl;
  std::string admin = cl.master().Address("admin");
  ClientConfig huge = cl.Config(TransportMode::kAuto);
  huge.global_segment_size = 100ull << 40;  // 100 TiB
  auto r = Client::Open(huge);
  CHECK(r.code() == ErrorCode::NO_AVAILABLE_HANDLE);
  CHECK(HttpGet(admin, "/get_all_segments").empty());  // nothing left mounted
}

// ---- 16. a dead or frozen master -----------------------------------------------------------

TEST_CASE("client: a dead or frozen master fails calls within the timeouts") {
  Cluster cl;
  cl.AddStore("seg-0", "64MiB");
  ClientConfig config = cl.Config(TransportMode::kTcp);
  config.rpc_timeout = 500ms;
  config.connect_timeout = 500ms;
  auto c = OpenClient(config);
  REQUIRE(PutPattern(*c, "k", 4096).ok());
  std::vector<uint8_t> buf(4096);
  auto bounded = [](auto&& call) {
    auto start = std::chrono::steady_clock::now();
    ErrorCode code = call();
    CHECK(std::chrono::steady_clock::now() - start < 10s);
    return code;
  };
  auto is_rpc_error = [](ErrorCode code) {
    return code == ErrorCode::RPC_FAIL || code == ErrorCode::RPC_TIMEOUT;
  };

  cl.master().Signal(SIGSTOP);
  REQUIRE(WaitFor([&] { return cl.master().Stopped(); }, 10s));
  ErrorCode get = bounded([&] { return c->Get("k", buf.data(), buf.size()).code(); });
  CHECK_MESSAGE(is_rpc_error(get), CodeName(get));
  ErrorCode put = bounded([&] { return PutPattern(*c, "k2", 4096).code(); });
  CHECK_MESSAGE(is_rpc_error(put), CodeName(put));
  std::vector<Result<bool>> exist = c->BatchExist({"k", "k2"});
  REQUIRE(exist.size() == 2);
  for (const auto& e : exist) CHECK_MESSAGE(is_rpc_error(e.code()), CodeName(e.code()));
  cl.master().Signal(SIGCONT);
  // Late answers to the abandoned calls are not taken for new ones.
  CHECK(WaitFor([&] { return c->Exist("k").ok(); }, 10s));
  CheckGet(*c, "k", 4096);
  auto missing = c->Exist("never-put");
  CHECK((missing.ok() && !*missing));

  cl.KillMaster();
  get = bounded([&] { return c->Get("k", buf.data(), buf.size()).code(); });
  CHECK_MESSAGE(is_rpc_error(get), CodeName(get));
  put = bounded([&] { return PutPattern(*c, "k3", 4096).code(); });
  CHECK_MESSAGE(is_rpc_error(put), CodeName(put));
  bounded([&] {
    c->Close();
    return ErrorCode::OK;
  });
}

// ---- 17. one client, many threads ----------------------------------------------------------

TEST_CASE("client: one client shared by eight threads, over TCP and over shared memory") {
  Cluster cl;
  std::vector<std::string> admins;
  for (int i = 0; i < 2; ++i) {
    admins.push_back(cl.AddStore("seg-" + std::to_string(i), "256MiB").Address("admin"));
  }
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string tag = ModeName(mode);
    CAPTURE(tag);
    auto c = OpenClient(cl.Config(mode));
    std::atomic<int> bad{0}, failed{0};
    // How many data connections each store sees at once, sampled while the threads run.
    std::atomic<bool> done{false};
    std::atomic<long> most_open{0};
    std::thread monitor([&] {
      while (!done) {
        for (const std::string& a : admins) {
          long open = Metric(a, "kvcached_store_data_open_connections");
          long seen = most_open;
          while (open > seen && !most_open.compare_exchange_weak(seen, open)) {
          }
        }
        std::this_thread::sleep_for(2ms);
      }
    });
    std::vector<std::thread> threads;
    for (int t = 0; t < 8; ++t) {
      threads.emplace_back([&, t] {
        std::mt19937_64 rng(static_cast<uint64_t>(t) + 100);
        std::vector<uint8_t> buf(3 * kMiB + 1);
        for (int i = 0; i < 12; ++i) {
          // Sizes around the TCP split size and its multiples.
          const uint64_t size = (rng() % 3 + 1) * kMiB + rng() % 3 - 1;
          const std::string key =
              std::string(ModeName(mode)) + "-t" + std::to_string(t) + "-" + std::to_string(i);
          if (!PutPattern(*c, key, size).ok()) {
            failed++;
            continue;
          }
          ErrorCode code;
          switch (GetVerify(*c, key, size, buf, code)) {
            case Read::kExact:
              break;
            case Read::kCorrupt:
              bad++;
              break;
            case Read::kFailed:
              failed++;
              break;
          }
        }
      });
    }
    for (auto& t : threads) t.join();
    done = true;
    monitor.join();
    CHECK(bad == 0);
    CHECK(failed == 0);
    ClientStats s = c->stats();
    CHECK(s.puts == 96);
    CHECK(s.gets == 96);
    CHECK(s.checksum_mismatches == 0);
    if (mode == TransportMode::kTcp) {
      CHECK(s.shm_transfers == 0);
      // tcp_streams (4) bounds the connections one call uses per store; 8
      // calls at once use their own, and up to 16 idle ones stay pooled.
      MESSAGE("TCP connections opened by 8 threads: "
              << s.tcp_connections_opened << "; most open at one store: " << most_open.load());
      CHECK(most_open <= 8 * 4 + 16);
      long idle = 0;
      for (const std::string& a : admins) idle += Metric(a, "kvcached_store_data_open_connections");
      MESSAGE("data connections still open once the threads are done: " << idle);
    } else {
      CHECK(s.tcp_transfers == 0);
    }
  }
}

// ---- 18. a slow store is not a dead one ---------------------------------------------------

TEST_CASE("client: a transfer that keeps moving outlives io_timeout") {
  Cluster cl;
  KvcachedProcess& store = cl.AddStore("seg-0", "256MiB");
  const std::string key = "stuttering";
  const uint64_t size = 128 * kMiB;
  ClientConfig config = cl.Config(TransportMode::kTcp);
  config.io_timeout = 600ms;
  // Small pieces on one stream: little is in flight when the store stops.
  config.tcp_streams = 1;
  config.tcp_split_bytes = 64 * kKiB;
  auto c = OpenClient(config);
  REQUIRE(PutPattern(*c, key, size).ok());
  // The store runs in short bursts between pauses well under io_timeout (even
  // a burst in which a busy machine moves nothing leaves the gap under it),
  // so bytes keep moving while the whole transfer takes longer than it.
  std::atomic<bool> done{false};
  std::thread stutter([&] {
    while (!done) {
      store.Signal(SIGSTOP);
      std::this_thread::sleep_for(150ms);
      store.Signal(SIGCONT);
      std::this_thread::sleep_for(20ms);
    }
  });
  std::vector<uint8_t> buf(size);
  auto start = std::chrono::steady_clock::now();
  auto r = c->Get(key, buf.data(), buf.size());
  auto elapsed = std::chrono::steady_clock::now() - start;
  done = true;
  stutter.join();
  store.Signal(SIGCONT);
  REQUIRE_MESSAGE(r.ok(), r.status().ToString());
  CHECK(*r == size);
  CHECK(FirstMismatch(key, buf.data(), size) == -1);
  MESSAGE("128 MiB through a stuttering store took "
          << std::chrono::duration_cast<std::chrono::milliseconds>(elapsed).count() << " ms");
  WARN_MESSAGE(elapsed > config.io_timeout, "the transfer was too fast to test anything");
}

// ---- 19. Close while other threads are calling --------------------------------------------

TEST_CASE("client: Close while other threads are in calls: no crash, no hang, no wrong bytes") {
  Cluster cl;
  cl.AddStore("seg-0", "256MiB");
  for (TransportMode mode : {TransportMode::kTcp, TransportMode::kShm}) {
    const std::string tag = ModeName(mode);
    CAPTURE(tag);
    auto c = OpenClient(cl.Config(mode));
    std::vector<Object> known;
    for (int i = 0; i < 8; ++i) {
      known.push_back({tag + "-known-" + std::to_string(i), kMiB + static_cast<uint64_t>(i)});
      REQUIRE(PutPattern(*c, known.back().key, known.back().size).ok());
    }
    std::atomic<uint64_t> ops{0}, corrupt{0}, other{0};
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t) {
      threads.emplace_back([&, t] {
        std::vector<uint8_t> buf(2 * kMiB);
        for (uint64_t i = 0;; ++i) {
          ErrorCode code = ErrorCode::OK;
          if (i % 3 == 0) {
            code =
                PutPattern(*c, tag + "-t" + std::to_string(t) + "-" + std::to_string(i), kMiB / 2)
                    .code();
          } else {
            const Object& o = known[(i + static_cast<uint64_t>(t)) % known.size()];
            if (GetVerify(*c, o.key, o.size, buf, code) == Read::kCorrupt) corrupt++;
          }
          ops++;
          if (code == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS) return;
          if (code != ErrorCode::OK) other++;
        }
      });
    }
    CHECK(WaitFor([&] { return ops >= 100; }, 20s));
    c->Close();
    for (auto& t : threads)
      t.join();  // each thread ends on its first UNAVAILABLE_IN_CURRENT_STATUS
    CHECK(corrupt == 0);
    MESSAGE(ops.load() << " calls, " << other.load()
                       << " failed with something else than UNAVAILABLE_IN_CURRENT_STATUS");
  }
}

// ---- 20. remove, reuse, put again ----------------------------------------------------------

TEST_CASE("client: after a remove every client sees the key gone, then its new value") {
  Cluster cl;
  cl.AddStore("seg-0", "64MiB");
  auto tcp = OpenClient(cl.Config(TransportMode::kTcp));
  auto shm = OpenClient(cl.Config(TransportMode::kShm));
  const uint64_t size = 256 * kKiB;
  std::vector<uint8_t> buf(size);
  REQUIRE(PutPattern(*tcp, "x", size).ok());
  CheckGet(*tcp, "x", size);  // both readers hold a lease and know where it is
  CheckGet(*shm, "x", size);

  REQUIRE(tcp->Remove("x", true).ok());
  for (Client* c : {tcp.get(), shm.get()}) {
    CHECK(c->Get("x", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  // The freed space takes another object.
  REQUIRE(PutPattern(*tcp, "y", size).ok());
  for (Client* c : {tcp.get(), shm.get()}) {
    CHECK(c->Get("x", buf.data(), buf.size()).code() == ErrorCode::OBJECT_NOT_FOUND);
    CheckGet(*c, "y", size);
  }
  // The key stored again, with other bytes: every reader gets the new ones.
  std::vector<uint8_t> second = Pattern("x, second value", size);
  REQUIRE(shm->Put("x", second.data(), second.size()).ok());
  for (Client* c : {tcp.get(), shm.get()}) {
    std::fill(buf.begin(), buf.end(), 0);
    auto r = c->Get("x", buf.data(), buf.size());
    REQUIRE_MESSAGE(r.ok(), r.status().ToString());
    CHECK(buf == second);
  }
}

}  // namespace
}  // namespace kvcached
