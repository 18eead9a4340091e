#include "chaos_run.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <stdexcept>
#include <thread>

#include "chaos_cluster.h"
#include "oracle.h"

extern char** environ;

namespace kvcached::chaos {
namespace {

using namespace std::chrono_literals;

constexpr auto kGuard = 180s;  // hang guard of the run's own waits
constexpr uint32_t kFillerKeys = 256;
constexpr uint64_t kFillerValueBytes = 512 * 1024;
constexpr uint64_t kWorkerMaxValueBytes = 256 * 1024;
constexpr uint64_t kEvictionsPerPoolFull = 20;
// The master's --default-kv-lease-ttl: reads lease, leases block removals.
constexpr uint32_t kLeaseMs = 200;

// Our environment without what would steer a kvcached process.
std::vector<std::string> WorkerEnvironment() {
  std::vector<std::string> env;
  for (char** e = environ; *e != nullptr; ++e) {
    std::string s = *e;
    if (s.rfind("KVCACHED_", 0) == 0 || s.rfind("MOONCAKE_", 0) == 0 ||
        s.rfind("NOTIFY_SOCKET=", 0) == 0) {
      continue;
    }
    env.push_back(s);
  }
  return env;
}

}  // namespace

ChaosRun::ChaosRun(RunOptions options) : o_(std::move(options)) {}

ChaosRun::~ChaosRun() = default;

template <typename Pred>
void ChaosRun::WaitUntil(const std::string& what, Pred pred) {
  auto deadline = std::chrono::steady_clock::now() + kGuard;
  while (!pred()) {
    Collect();
    cluster_->CheckAlive();
    if (std::chrono::steady_clock::now() > deadline) {
      throw std::runtime_error("gave up waiting (" + std::to_string(kGuard.count()) +
                               " s) for: " + what);
    }
    std::this_thread::sleep_for(20ms);
  }
}

std::vector<ChaosRun::Planned> ChaosRun::Plan() const {
  std::mt19937_64 rng(o_.seed);
  std::vector<Planned> plan;
  auto add = [&](FaultKind kind, int n) {
    for (int i = 0; i < n; ++i) plan.push_back({kind, -1});
  };
  add(FaultKind::kMasterRestart, o_.master_restarts);
  add(FaultKind::kStoreKill, o_.store_kills);
  add(FaultKind::kStoreFreeze, o_.store_freezes);
  add(FaultKind::kWorkerKill, o_.worker_kills);
  add(FaultKind::kPoolFull, o_.pool_fulls);
  std::shuffle(plan.begin(), plan.end(), rng);
  // Victims drawn after the order, from the same seed.
  for (Planned& p : plan) {
    if (p.kind == FaultKind::kStoreKill || p.kind == FaultKind::kStoreFreeze) {
      p.target = static_cast<int>(rng() % static_cast<uint64_t>(o_.stores));
    } else if (p.kind == FaultKind::kWorkerKill) {
      p.target = static_cast<int>(rng() % static_cast<uint64_t>(o_.workers));
    }
  }
  return plan;
}

ChaosRun::Slot& ChaosRun::AddSlot(bool filler) {
  Slot s;
  WorkerOptions& w = s.options;
  w.slot = static_cast<uint32_t>(slots_.size());
  w.filler = filler;
  w.keys = filler ? kFillerKeys : o_.keys;
  w.max_value_bytes = filler ? kFillerValueBytes : kWorkerMaxValueBytes;
  w.shm = w.slot % 2 == 1;
  w.checksums = o_.checksums;
  w.seed = o_.seed;
  w.master = cluster_->rpc();
  w.admin = cluster_->admin();
  w.host_id = "chaos-host";
  w.segments = cluster_->segments();
  w.lease_ms = kLeaseMs;
  w.log_path = dir_ + "/ops-" + std::to_string(w.slot) + ".bin";
  w.stop_path = dir_ + "/stop-" + std::to_string(w.slot);
  if (!filler) {
    for (int i = 0; i < o_.workers; ++i) {
      if (static_cast<uint32_t>(i) != w.slot) w.peer_slots.push_back(static_cast<uint32_t>(i));
    }
    w.shared_keys = std::max<uint32_t>(1, o_.keys / 4);
  }
  slots_.push_back(std::move(s));
  return slots_.back();
}

void ChaosRun::Spawn(Slot& slot) {
  std::vector<std::string> argv = {o_.self, "worker"};
  for (std::string& a : slot.options.ToArgs()) argv.push_back(std::move(a));
  slot.process =
      std::make_unique<ChildProcess>(argv, environment_,
                                     dir_ + "/worker-" + std::to_string(slot.options.slot) + "-" +
                                         std::to_string(slot.options.incarnation) + ".log");
}

void ChaosRun::Collect() {
  for (Slot& s : slots_) {
    for (const OpRecord& r : OpLog::ReadFrom(s.options.log_path, s.offset)) {
      if (r.incarnation == s.options.incarnation) s.open += r.phase == OpPhase::kBegin ? 1 : -1;
      records_.push_back(r);
    }
    if (s.process && !s.done) {
      if (auto code = s.process->Poll()) {
        throw std::runtime_error("worker " + std::to_string(s.options.slot) + "." +
                                 std::to_string(s.options.incarnation) + " exited with " +
                                 std::to_string(*code) + "; log " + s.process->log_path() + ":\n" +
                                 s.process->LogTail());
      }
    }
  }
}

void ChaosRun::WaitProgress(int64_t since_ns) {
  size_t from = records_.size();
  uint64_t ok = 0, puts = 0, gets = 0;
  // Records before `from` may still end after `since_ns`: count them too.
  for (const OpRecord& r : records_) {
    if (r.phase != OpPhase::kEnd || r.code != 0 || r.mono_ns < since_ns) continue;
    ++ok;
    puts += IsWriteOfValue(r.kind);
    gets += r.kind == OpKind::kGet && r.read == ReadResult::kValue;
  }
  WaitUntil("the workers' progress: " + std::to_string(o_.ops_between) +
                " successful operations, a put and a get",
            [&] {
              for (; from < records_.size(); ++from) {
                const OpRecord& r = records_[from];
                if (r.phase != OpPhase::kEnd || r.code != 0 || r.mono_ns < since_ns) continue;
                ++ok;
                puts += IsWriteOfValue(r.kind);
                gets += r.kind == OpKind::kGet && r.read == ReadResult::kValue;
              }
              return ok >= o_.ops_between && puts > 0 && gets > 0;
            });
}

void ChaosRun::KillWorker(int index) {
  Slot& s = slots_[static_cast<size_t>(index)];
  // Mid-batch: stopped, the worker's log cannot change; it is killed when
  // it has begun two operations or more and ended none of them (a batch's
  // begin records all come before the call), else let go on and stopped
  // again.
  Fault f;
  f.kind = FaultKind::kWorkerKill;
  f.target = index;
  WaitUntil("worker " + std::to_string(index) + " stopped inside a batch", [&] {
    s.process->Signal(SIGSTOP);
    while (!s.process->Stopped()) {
      if (s.process->Poll()) return false;  // Collect() reports the exit
      std::this_thread::yield();
    }
    Collect();
    if (s.open >= 2) return true;
    s.process->Signal(SIGCONT);
    return false;
  });
  f.start_ns = OpLog::NowNs();
  s.done = true;  // its exit is ours
  s.process->StopWith(SIGKILL);
  Collect();
  uint64_t begun = 0, ended = 0;
  for (const OpRecord& r : records_) {
    if (r.worker != s.options.slot || r.incarnation != s.options.incarnation) continue;
    (r.phase == OpPhase::kBegin ? begun : ended)++;
  }
  s.options.incarnation++;
  s.open = 0;
  Spawn(s);
  s.done = false;
  const uint64_t before = s.offset;
  WaitUntil("the replacement of worker " + std::to_string(index) + " at work",
            [&] { return s.offset > before; });
  f.end_ns = OpLog::NowNs();
  f.note = std::to_string(begun - ended) + " operation(s) in flight";
  timeline_.faults.push_back(f);
}

void ChaosRun::FillPool() {
  std::optional<uint64_t> base;
  WaitUntil("the master's eviction counter",
            [&] { return (base = cluster_->MasterCounter("kvcached_master_evictions_total")); });
  Fault f;
  f.kind = FaultKind::kPoolFull;
  f.start_ns = OpLog::NowNs();
  Slot& filler = AddSlot(true);
  f.target = static_cast<int>(filler.options.slot);
  Spawn(filler);
  std::optional<uint64_t> now;
  WaitUntil("evictions in the full pool", [&] {
    now = cluster_->MasterCounter("kvcached_master_evictions_total");
    return now && *now >= *base + kEvictionsPerPoolFull;
  });
  // The filler removes what it put, so the rest of the pass runs below the
  // high watermark again.
  std::ofstream(filler.options.stop_path).put('\n');
  Slot& s = slots_.back();
  s.done = true;
  WaitUntil("the filler's clean-up", [&] { return s.process->Poll().has_value(); });
  if (*s.process->Poll() != 0) {
    throw std::runtime_error("the filler exited with " + std::to_string(*s.process->Poll()) +
                             "; log " + s.process->log_path());
  }
  f.end_ns = OpLog::NowNs();
  f.note = std::to_string(*now - *base) + "+ evictions";
  timeline_.faults.push_back(f);
}

void ChaosRun::StopWorkers() {
  for (Slot& s : slots_) {
    if (s.done) continue;
    std::ofstream(s.options.stop_path).put('\n');
    s.done = true;
  }
  WaitUntil("every worker's final reads", [&] {
    for (Slot& s : slots_) {
      if (!s.process->Poll()) return false;
    }
    return true;
  });
  for (Slot& s : slots_) {
    if (*s.process->Poll() != 0) {
      throw std::runtime_error("worker " + std::to_string(s.options.slot) + " exited with " +
                               std::to_string(*s.process->Poll()) + "; log " +
                               s.process->log_path());
    }
  }
  Collect();
}

PassResult ChaosRun::Run() {
  char dir_template[] = "/tmp/kvcached-chaos-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) throw std::runtime_error("mkdtemp failed");
  dir_ = dir_template;
  environment_ = WorkerEnvironment();
  // The daemons' logs carry local wall-clock times; the report, times since this.
  timeline_.start_ns = OpLog::NowNs();
  timespec wall;
  clock_gettime(CLOCK_REALTIME, &wall);
  ClusterOptions co;
  co.bin = o_.bin;
  co.dir = dir_;
  co.stores = o_.stores;
  co.corrupt_reads = o_.corrupt_reads;
  co.lease_ttl = std::to_string(kLeaseMs) + "ms";
  std::printf(
      "chaos pass: checksums %s, seed %llu, %d stores of %s, %d workers (even slots tcp, "
      "odd shm), %u keys each; logs in %s\n",
      o_.checksums ? "on" : "off", static_cast<unsigned long long>(o_.seed), co.stores,
      co.segment_size.c_str(), o_.workers, o_.keys, dir_.c_str());
  tm local;
  localtime_r(&wall.tv_sec, &local);
  char stamp[32];
  std::strftime(stamp, sizeof stamp, "%Y-%m-%dT%H:%M:%S", &local);
  std::printf("  times below are ms since %s.%03ld (the logs' clock)\n", stamp,
              wall.tv_nsec / 1'000'000);
  std::fflush(stdout);
  std::string failure;
  std::vector<Planned> plan = Plan();
  try {
    cluster_ = std::make_unique<ChaosCluster>(co, timeline_);
    cluster_->Start();
    for (int i = 0; i < o_.workers; ++i) Spawn(AddSlot(false));
    int64_t since = OpLog::NowNs();
    for (size_t n = 0; n < plan.size(); ++n) {
      WaitProgress(since);
      const Planned& p = plan[n];
      switch (p.kind) {
        case FaultKind::kMasterRestart:
          cluster_->RestartMaster();
          break;
        case FaultKind::kStoreKill:
          cluster_->KillStore(p.target);
          break;
        case FaultKind::kStoreFreeze:
          cluster_->FreezeStore(p.target);
          break;
        case FaultKind::kWorkerKill:
          KillWorker(p.target);
          break;
        case FaultKind::kPoolFull:
          FillPool();
          break;
      }
      since = OpLog::NowNs();
      const Fault& f = timeline_.faults.back();
      std::printf("  fault %zu/%zu at +%.0f ms: %s%s, recovered after %.0f ms%s\n", n + 1,
                  plan.size(), static_cast<double>(f.start_ns - timeline_.start_ns) / 1e6,
                  FaultName(p.kind), f.target >= 0 ? (" " + std::to_string(f.target)).c_str() : "",
                  static_cast<double>(f.end_ns - f.start_ns) / 1e6,
                  f.note.empty() ? "" : (" (" + f.note + ")").c_str());
      std::fflush(stdout);
    }
    WaitProgress(since);
    StopWorkers();
    cluster_->Stop();
  } catch (const std::exception& e) {
    failure = e.what();
  }
  if (cluster_) cluster_->Stop();
  for (Slot& s : slots_) {
    s.done = true;
    if (s.process && !s.process->Poll()) s.process->StopWith(SIGKILL);
  }
  Collect();

  OracleReport r = Oracle(timeline_, records_).Judge();
  std::map<FaultKind, int> done;
  for (const Fault& f : timeline_.faults) done[f.kind]++;
  std::printf(
      "  operations %llu: puts %llu (%llu ok; %llu of them upserts), removes %llu (%llu ok), gets "
      "%llu; %llu in flight at worker kills\n",
      static_cast<unsigned long long>(r.ops), static_cast<unsigned long long>(r.puts),
      static_cast<unsigned long long>(r.puts_ok), static_cast<unsigned long long>(r.upserts),
      static_cast<unsigned long long>(r.removes),
      static_cast<unsigned long long>(r.removes_ok), static_cast<unsigned long long>(r.gets),
      static_cast<unsigned long long>(r.in_flight_at_kill));
  std::printf(
      "  verified gets %llu: exact %llu, allowed %llu (a value in doubt, or a write "
      "overlapping the read); OBJECT_NOT_FOUND as expected %llu\n",
      static_cast<unsigned long long>(r.verified_gets),
      static_cast<unsigned long long>(r.reads_exact),
      static_cast<unsigned long long>(r.reads_allowed),
      static_cast<unsigned long long>(r.absent_ok));
  std::printf(
      "  faults: master restarts %d, store kills %d, store freezes %d, worker kills %d, "
      "pool-full phases %d\n",
      done[FaultKind::kMasterRestart], done[FaultKind::kStoreKill], done[FaultKind::kStoreFreeze],
      done[FaultKind::kWorkerKill], done[FaultKind::kPoolFull]);
  std::printf("  legitimate misses:");
  if (r.legit_misses.empty()) std::printf(" none");
  for (auto& [why, n] : r.legit_misses)
    std::printf(" [%s] %llu;", why.c_str(), (unsigned long long)n);
  std::printf("\n  documented window (counted, not failed): %llu\n",
              static_cast<unsigned long long>(r.documented_window));
  std::printf("  errors by code:");
  if (r.errors.empty()) std::printf(" none");
  for (auto& [what, n] : r.errors) std::printf(" %s %llu;", what.c_str(), (unsigned long long)n);
  std::printf("\n  WRONG %llu, REVERTED %llu, RESURRECTED %llu, LOST %llu\n",
              static_cast<unsigned long long>(r.wrong), static_cast<unsigned long long>(r.reverted),
              static_cast<unsigned long long>(r.resurrected),
              static_cast<unsigned long long>(r.lost));
  std::printf("  recovery (fault -> first successful put / get begun after it):\n");
  for (const std::string& line : r.recovery) std::printf("    %s\n", line.c_str());
  for (const std::string& w : r.window_reads) std::printf("  window: %s\n", w.c_str());
  for (const std::string& a : r.anomalies) std::printf("  %s\n", a.c_str());
  const bool ok = failure.empty() && r.ok();
  if (!failure.empty()) std::printf("  BROKE DOWN: %s\n", failure.c_str());
  if (ok && !o_.keep_logs) {
    std::system(("rm -rf '" + dir_ + "'").c_str());
    std::printf("  PASS\n");
  } else {
    std::printf("  %s; the processes' logs and op logs are in %s\n", ok ? "PASS" : "FAIL",
                dir_.c_str());
  }
  std::fflush(stdout);
  return {ok, !failure.empty(), r.wrong, dir_};
}

}  // namespace kvcached::chaos
