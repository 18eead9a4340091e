#include "chaos_cluster.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <chrono>
#include <regex>
#include <sstream>
#include <stdexcept>
#include <thread>

#include "http_probe.h"
#include "kvcached/client.h"
#include "op_log.h"

namespace kvcached::chaos {
namespace {

using namespace std::chrono_literals;

// Hang guard of every wait: far above any recovery this test waits for.
constexpr auto kGuard = 90s;

// A loopback port nothing listens on now (bound, read back, released).
uint16_t FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    close(fd);
    throw std::runtime_error("cannot find a free loopback port");
  }
  close(fd);
  return ntohs(a.sin_port);
}

// "host:port" after `word` in a readiness STATUS ("admin http://127.0.0.1:4711").
std::string StatusAddress(const std::string& status, const std::string& word) {
  std::smatch m;
  if (!std::regex_search(status, m, std::regex(word + R"( (?:http://|tcp://)?([0-9.]+:[0-9]+))"))) {
    throw std::runtime_error("no " + word + " address in the readiness status '" + status + "'");
  }
  return m[1];
}

// The daemons get no environment of ours, as in the black-box tests.
const std::vector<std::string> kDaemonEnv = {"PATH=/usr/bin:/bin"};

}  // namespace

ChaosCluster::ChaosCluster(ClusterOptions options, ClusterTimeline& timeline)
    : o_(std::move(options)), timeline_(timeline), stores_(static_cast<size_t>(o_.stores)) {
  for (int i = 0; i < o_.stores; ++i) segments_.push_back("seg-" + std::to_string(i));
  timeline_.segments = segments_;
}

ChaosCluster::~ChaosCluster() {
  stop_sampler_ = true;
  if (sampler_.joinable()) sampler_.join();
}

template <typename Pred>
void ChaosCluster::WaitUntil(const std::string& what, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + kGuard;
  while (!pred()) {
    CheckAlive();
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("gave up waiting (" + std::to_string(kGuard.count()) +
                               " s) for: " + what);
    }
    std::this_thread::sleep_for(20ms);
  }
}

void ChaosCluster::Start() {
  uint16_t rpc_port = FreePort();
  uint16_t admin_port = FreePort();
  while (admin_port == rpc_port) admin_port = FreePort();
  rpc_ = "127.0.0.1:" + std::to_string(rpc_port);
  admin_ = "127.0.0.1:" + std::to_string(admin_port);
  master_args_ = {o_.bin, "master", "--port", std::to_string(rpc_port), "--admin-port",
                  std::to_string(admin_port), "--no-meta", "--client-ttl", o_.client_ttl,
                  "--default-kv-lease-ttl", o_.lease_ttl,
                  // A put left pending by a killed worker is taken over soon;
                  // its range is reused only long after any live transfer.
                  "--put-start-discard-timeout", "1s", "--put-start-release-timeout", "30s"};
  StartMaster();
  for (int i = 0; i < o_.stores; ++i) StartStore(i);
  WaitUntil("every segment mounted at the first master",
            [&] { return MountedSegments().size() == segments_.size(); });
  int64_t now = OpLog::NowNs();
  for (int64_t& seen : timeline_.masters.back().seen_ns) seen = now;
  sampler_ = std::thread([this] { SamplerLoop(); });
}

void ChaosCluster::StartMaster() {
  MasterLife life;
  life.start_ns = OpLog::NowNs();
  life.seen_ns.assign(segments_.size(), kNever);
  {
    std::lock_guard<std::mutex> lock(sample_mu_);
    timeline_.masters.push_back(life);
    life_start_ns_ = life.start_ns;
    life_ = static_cast<int>(timeline_.masters.size()) - 1;
  }
  master_ = std::make_unique<ChildProcess>(
      master_args_, kDaemonEnv, o_.dir + "/master-" + std::to_string(master_starts_++) + ".log",
      o_.dir + "/notify-master.sock");
  master_->WaitReady(std::chrono::duration_cast<std::chrono::seconds>(kGuard));
}

void ChaosCluster::StartStore(int i) {
  Store& s = stores_[static_cast<size_t>(i)];
  std::vector<std::string> args = {o_.bin,
                                   "store",
                                   "--master",
                                   rpc_,
                                   "--segment-size",
                                   o_.segment_size,
                                   "--segment-name",
                                   segments_[static_cast<size_t>(i)],
                                   "--host-id",
                                   o_.host_id,
                                   "--ping-interval",
                                   o_.ping_interval,
                                   "--data-port",
                                   "0",
                                   "--admin-port",
                                   "0"};
  std::vector<std::string> env = kDaemonEnv;
  if (o_.corrupt_reads && i == 0) env.push_back("KVCACHED_FAULT_CORRUPT_READS=1");
  s.process = std::make_unique<ChildProcess>(
      args, env, o_.dir + "/store-" + std::to_string(i) + "-" + std::to_string(s.starts++) + ".log",
      o_.dir + "/notify-store-" + std::to_string(i) + ".sock");
  s.admin = StatusAddress(
      s.process->WaitReady(std::chrono::duration_cast<std::chrono::seconds>(kGuard)), "admin");
}

std::set<std::string> ChaosCluster::MountedSegments() const {
  std::set<std::string> out;
  auto a = HttpProbe::Get(admin_, "/get_all_segments", 2s);
  if (!a || a->status != 200) return out;
  std::istringstream lines(a->body);
  std::string line;
  while (std::getline(lines, line)) {
    if (!line.empty()) out.insert(line);
  }
  return out;
}

std::optional<uint64_t> ChaosCluster::MasterCounter(const std::string& name) const {
  auto a = HttpProbe::Get(admin_, "/metrics", 2s);
  if (!a || a->status != 200) return std::nullopt;
  return HttpProbe::Sample(a->body, name);
}

std::optional<uint64_t> ChaosCluster::StoreSample(int i, const std::string& name) const {
  auto a = HttpProbe::Get(stores_[static_cast<size_t>(i)].admin, "/metrics", 2s);
  if (!a || a->status != 200) return std::nullopt;
  return HttpProbe::Sample(a->body, name);
}

void ChaosCluster::CheckAlive() {
  if (master_ && master_->Poll()) {
    throw std::runtime_error("the master exited unexpectedly; log " + master_->log_path() + ":\n" +
                             master_->LogTail());
  }
  for (Store& s : stores_) {
    if (s.process && s.process->Poll()) {
      throw std::runtime_error("a store exited unexpectedly; log " + s.process->log_path() + ":\n" +
                               s.process->LogTail());
    }
  }
}

int64_t ChaosCluster::Barrier() {
  const int n = ++barriers_;
  const size_t count = segments_.size();
  WaitUntil("every segment mounted and out of its quarantine before barrier " + std::to_string(n),
            [&] {
              auto a = HttpProbe::Get(admin_, "/api/v1/segments", 2s);
              if (!a || a->status != 200) return false;
              for (const std::string& s : segments_) {
                if (a->body.find("\"name\":\"" + s + "\"") == std::string::npos) return false;
              }
              return a->body.find("\"quarantined\":true") == std::string::npos;
            });
  // Workers' objects are multiples of 64 bytes; a sentinel is not.
  auto residue = [&](int i) -> std::optional<uint64_t> {
    auto bytes = StoreSample(i, "kvcached_store_object_bytes");
    if (!bytes) return std::nullopt;
    return *bytes % 64;
  };
  for (size_t i = 0; i < count; ++i) {
    WaitUntil("no sentinel left in the table of " + segments_[i],
              [&] { return residue(static_cast<int>(i)) == 0u; });
  }
  const int64_t began = OpLog::NowNs();
  ClientConfig config;
  config.master_server_addr = rpc_;
  config.local_hostname = o_.host_id;
  config.transport = TransportMode::kTcp;
  auto opened = Client::Open(config);
  if (!opened.ok()) {
    throw std::runtime_error("barrier " + std::to_string(n) +
                             ": cannot open a client: " + opened.status().ToString());
  }
  std::unique_ptr<Client> client = std::move(opened).value();
  const std::vector<uint8_t> sentinel(65, 0x5a);
  auto locate = [&](const std::string& key) -> int {
    auto a = HttpProbe::Get(admin_, "/api/v1/key?key=" + key, 2s);
    if (!a || a->status != 200) return -1;
    for (size_t s = 0; s < count; ++s) {
      if (a->body.find("\"segment\":\"" + segments_[s] + "\"") != std::string::npos) {
        return static_cast<int>(s);
      }
    }
    return -1;
  };
  auto remove = [&](const std::string& key) {
    WaitUntil("barrier object " + key + " removed", [&] {
      ErrorCode c = client->Remove(key).code();
      return c == ErrorCode::OK || c == ErrorCode::OBJECT_NOT_FOUND;
    });
  };
  for (size_t i = 0; i < count; ++i) {
    const std::string key = "chaos-barrier-" + std::to_string(n) + "-" + std::to_string(i);
    ReplicateConfig rc;
    rc.preferred_segment = segments_[i];
    int where = -1;
    WaitUntil("barrier object " + key + " placed in " + segments_[i], [&] {
      if (!client->Put(key, sentinel.data(), sentinel.size(), rc).ok()) return false;
      where = locate(key);
      if (where == static_cast<int>(i)) return true;
      // Elsewhere (or unknown): take it out, and wait until that table is clean again.
      remove(key);
      for (size_t s = 0; s < count; ++s) {
        WaitUntil("no sentinel left in the table of " + segments_[s],
                  [&] { return residue(static_cast<int>(s)) == 0u; });
      }
      return false;
    });
    WaitUntil("the table of " + segments_[i] + " holds barrier object " + key,
              [&] { return residue(static_cast<int>(i)) == 1u; });
    remove(key);
    WaitUntil("the table of " + segments_[i] + " dropped barrier object " + key,
              [&] { return residue(static_cast<int>(i)) == 0u; });
  }
  client->Close();
  return began;
}

void ChaosCluster::RestartMaster() {
  const int64_t barrier = Barrier();
  SampleEvictions();
  {
    std::lock_guard<std::mutex> lock(sample_mu_);
    life_ = -1;
  }
  Fault f;
  f.kind = FaultKind::kMasterRestart;
  f.start_ns = OpLog::NowNs();
  master_->StopWith(SIGKILL);
  master_.reset();
  const int64_t dead = OpLog::NowNs();
  timeline_.masters.back().end_ns = dead;
  timeline_.kills.push_back({barrier, dead});
  StartMaster();
  MasterLife& life = timeline_.masters.back();
  WaitUntil("every store remounted at the new master", [&] {
    std::set<std::string> mounted = MountedSegments();
    int64_t now = OpLog::NowNs();
    bool all = true;
    for (size_t s = 0; s < segments_.size(); ++s) {
      if (mounted.count(segments_[s]) == 0) {
        all = false;
      } else if (life.seen_ns[s] == kNever) {
        life.seen_ns[s] = now;
      }
    }
    return all;
  });
  f.end_ns = OpLog::NowNs();
  f.note = "documented window " + std::to_string((dead - barrier) / 1'000'000) + " ms";
  timeline_.faults.push_back(f);
}

void ChaosCluster::KillStore(int i) {
  Store& s = stores_[static_cast<size_t>(i)];
  const std::string& name = segments_[static_cast<size_t>(i)];
  Fault f;
  f.kind = FaultKind::kStoreKill;
  f.target = i;
  f.start_ns = OpLog::NowNs();
  s.process->StopWith(SIGKILL);
  s.process.reset();
  // The master keeps the segment until the owner's TTL runs out; a new
  // store cannot mount the name before.
  WaitUntil("the master dropped " + name + " after its store was killed",
            [&] { return MountedSegments().count(name) == 0; });
  StartStore(i);
  WaitUntil("the new store of " + name + " mounted",
            [&] { return MountedSegments().count(name) == 1; });
  f.end_ns = OpLog::NowNs();
  timeline_.faults.push_back(f);
}

void ChaosCluster::FreezeStore(int i) {
  Store& s = stores_[static_cast<size_t>(i)];
  const std::string& name = segments_[static_cast<size_t>(i)];
  std::optional<uint64_t> remounts, forgotten;
  WaitUntil("the metrics of the store of " + name, [&] {
    remounts = StoreSample(i, "kvcached_store_remounts_total");
    forgotten = StoreSample(i, "kvcached_store_table_entries_forgotten_total");
    return remounts && forgotten;
  });
  Fault f;
  f.kind = FaultKind::kStoreFreeze;
  f.target = i;
  f.start_ns = OpLog::NowNs();
  s.process->Signal(SIGSTOP);
  WaitUntil("the store of " + name + " stopped", [&] { return s.process->Stopped(); });
  WaitUntil("the master dropped the frozen " + name + " (client TTL)",
            [&] { return MountedSegments().count(name) == 0; });
  s.process->Signal(SIGCONT);
  std::optional<uint64_t> forgotten_after;
  WaitUntil("the thawed store of " + name + " remounted", [&] {
    auto r = StoreSample(i, "kvcached_store_remounts_total");
    forgotten_after = StoreSample(i, "kvcached_store_table_entries_forgotten_total");
    return r && *r > *remounts && forgotten_after && MountedSegments().count(name) == 1;
  });
  f.end_ns = OpLog::NowNs();
  f.note = std::to_string(*forgotten_after - *forgotten) + " table entries forgotten";
  timeline_.faults.push_back(f);
}

void ChaosCluster::SampleEvictions() {
  const int life = life_.load();
  if (life < 0) return;
  const int64_t asked = OpLog::NowNs();
  auto a = HttpProbe::Get(admin_, "/metrics", 1s);
  if (!a || a->status != 200) return;
  uint64_t evictions = HttpProbe::Sample(a->body, "kvcached_master_evictions_total").value_or(0);
  uint64_t refusals =
      HttpProbe::Sample(a->body, "kvcached_master_lease_refusals_total").value_or(0);
  const int64_t answered = OpLog::NowNs();
  std::lock_guard<std::mutex> lock(sample_mu_);
  if (life_.load() != life) return;  // another master may have answered
  if (sampled_life_ != life) {
    sampled_life_ = life;
    last_sample_ns_ = life_start_ns_;
    last_evictions_ = last_refusals_ = 0;
  }
  if (evictions > last_evictions_ || refusals > last_refusals_) {
    std::lock_guard<std::mutex> tl(timeline_.mu);
    timeline_.evictions.push_back({last_sample_ns_, answered,
                                   evictions > last_evictions_ ? evictions - last_evictions_ : 0,
                                   refusals > last_refusals_ ? refusals - last_refusals_ : 0});
  }
  if (evictions >= last_evictions_ && refusals >= last_refusals_) {
    last_sample_ns_ = asked;
    last_evictions_ = evictions;
    last_refusals_ = refusals;
  }
}

void ChaosCluster::SamplerLoop() {
  while (!stop_sampler_) {
    SampleEvictions();
    std::this_thread::sleep_for(50ms);
  }
}

void ChaosCluster::Stop() {
  stop_sampler_ = true;
  if (sampler_.joinable()) sampler_.join();
  for (Store& s : stores_) {
    if (s.process) s.process->Signal(SIGCONT);
  }
  if (master_) master_->Signal(SIGTERM);
  for (Store& s : stores_) {
    if (s.process) s.process->Signal(SIGTERM);
  }
  auto stop = [](std::unique_ptr<ChildProcess>& p) {
    if (p && !p->Wait(std::chrono::seconds(20))) p->StopWith(SIGKILL);
  };
  for (Store& s : stores_) stop(s.process);
  stop(master_);
}

}  // namespace kvcached::chaos
