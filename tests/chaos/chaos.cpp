// kvcached_chaos: a chaos test with an oracle. It starts a real master and
// stores (`kvcached` from $KVCACHED_BIN or --bin) on free loopback ports,
// runs client worker processes against them (half over TCP, half over
// shared memory; each the only writer of its keys, every value derived from
// its key and version), injects a seeded schedule of faults under that
// load, and judges every read against the history of its key (oracle.h).
// Exit 0 when no read was WRONG, REVERTED, RESURRECTED or LOST; 1 otherwise
// (or when the cluster broke down: the logs are kept and their directory
// printed); 2 for a bad command line. docs/testing.md describes it.
//
//   kvcached_chaos [--profile short|long] [--seed N] [--checksums on|off|both]
//                  [--master-restarts N] [--store-kills N] [--store-freezes N]
//                  [--worker-kills N] [--pool-full N] [--workers N] [--keys N]
//                  [--ops-between N] [--bin PATH] [--keep-logs]
//   kvcached_chaos --self-check     the oracle must catch corrupted reads
//   kvcached_chaos worker ...       (started by the test itself)
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "chaos_run.h"
#include "worker.h"

namespace {

using kvcached::chaos::RunOptions;

const char* const kUsage =
    "usage: kvcached_chaos [--profile short|long] [--seed N] [--checksums on|off|both]\n"
    "                      [--master-restarts N] [--store-kills N] [--store-freezes N]\n"
    "                      [--worker-kills N] [--pool-full N] [--workers N] [--keys N]\n"
    "                      [--ops-between N] [--bin PATH] [--keep-logs]\n"
    "       kvcached_chaos --self-check [--seed N] [--bin PATH] [--keep-logs]\n";

int Usage(const std::string& why) {
  std::fprintf(stderr, "kvcached_chaos: %s\n%s", why.c_str(), kUsage);
  return 2;
}

std::string SelfPath() {
  char buf[4096];
  ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) throw std::runtime_error("cannot read /proc/self/exe");
  return std::string(buf, static_cast<size_t>(n));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (!args.empty() && args[0] == "worker") {
    try {
      return kvcached::chaos::RunWorker(
          kvcached::chaos::WorkerOptions::Parse({args.begin() + 1, args.end()}));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "chaos worker: %s\n", e.what());
      return 4;
    }
  }

  RunOptions o;
  std::string profile = "short", checksums = "both";
  bool seeded = false, self_check = false;
  // Explicit counts override the profile's.
  int master_restarts = -1, store_kills = -1, store_freezes = -1, worker_kills = -1,
      pool_fulls = -1;
  long ops_between = -1;
  const char* bin = std::getenv("KVCACHED_BIN");
  if (bin != nullptr) o.bin = bin;
  try {
    for (size_t i = 0; i < args.size(); ++i) {
      const std::string& a = args[i];
      if (a == "--keep-logs") {
        o.keep_logs = true;
        continue;
      }
      if (a == "--self-check") {
        self_check = true;
        continue;
      }
      if (a == "--help" || a == "-h") {
        std::printf("%s", kUsage);
        return 0;
      }
      if (i + 1 >= args.size()) return Usage(a + " needs a value");
      const std::string& v = args[++i];
      if (a == "--profile") {
        profile = v;
      } else if (a == "--seed") {
        o.seed = std::stoull(v);
        seeded = true;
      } else if (a == "--checksums") {
        checksums = v;
      } else if (a == "--master-restarts") {
        master_restarts = std::stoi(v);
      } else if (a == "--store-kills") {
        store_kills = std::stoi(v);
      } else if (a == "--store-freezes") {
        store_freezes = std::stoi(v);
      } else if (a == "--worker-kills") {
        worker_kills = std::stoi(v);
      } else if (a == "--pool-full") {
        pool_fulls = std::stoi(v);
      } else if (a == "--workers") {
        o.workers = std::stoi(v);
      } else if (a == "--keys") {
        o.keys = static_cast<uint32_t>(std::stoul(v));
      } else if (a == "--ops-between") {
        ops_between = std::stol(v);
      } else if (a == "--bin") {
        o.bin = v;
      } else {
        return Usage("unknown option " + a);
      }
    }
  } catch (const std::exception&) {
    return Usage("a value is not a number");
  }
  if (profile == "short") {
    o.master_restarts = 3;
    o.store_kills = 1;
    o.store_freezes = 2;
    o.worker_kills = 2;
    o.pool_fulls = 1;
    o.ops_between = 600;
  } else if (profile == "long") {
    o.master_restarts = 12;
    o.store_kills = 3;
    o.store_freezes = 6;
    o.worker_kills = 4;
    o.pool_fulls = 2;
    o.ops_between = 2000;
  } else {
    return Usage("--profile is short or long");
  }
  if (master_restarts >= 0) o.master_restarts = master_restarts;
  if (store_kills >= 0) o.store_kills = store_kills;
  if (store_freezes >= 0) o.store_freezes = store_freezes;
  if (worker_kills >= 0) o.worker_kills = worker_kills;
  if (pool_fulls >= 0) o.pool_fulls = pool_fulls;
  if (ops_between >= 0) o.ops_between = static_cast<uint64_t>(ops_between);
  if (checksums != "on" && checksums != "off" && checksums != "both") {
    return Usage("--checksums is on, off or both");
  }
  if (o.workers < 2 || o.keys < 1 || o.keys > 4096) {
    return Usage("--workers must be at least 2, --keys 1 to 4096");
  }
  if (o.bin.empty()) return Usage("set KVCACHED_BIN or --bin to the kvcached binary");
  if (!seeded) o.seed = std::random_device()() % 1000000;
  o.self = SelfPath();

  if (self_check) {
    // No faults, checksums off, one store serving corrupted bytes over TCP:
    // the oracle must call those reads WRONG.
    o.master_restarts = o.store_kills = o.store_freezes = o.worker_kills = o.pool_fulls = 0;
    o.checksums = false;
    o.corrupt_reads = true;
    std::printf("kvcached_chaos --self-check: seed %llu; store 0 corrupts every TCP read\n",
                static_cast<unsigned long long>(o.seed));
    kvcached::chaos::PassResult r;
    try {
      r = kvcached::chaos::ChaosRun(o).Run();
    } catch (const std::exception& e) {
      std::printf("  BROKE DOWN: %s\n", e.what());
      return 1;
    }
    bool caught = !r.broke_down && r.wrong > 0;
    // The pass failed as it had to: its logs are kept only when asked for.
    if (caught && !o.keep_logs) std::system(("rm -rf '" + r.dir + "'").c_str());
    std::printf("kvcached_chaos --self-check: %s\n",
                caught ? "PASS (the corrupted reads were called WRONG)"
                       : "FAIL (the oracle did not catch the corrupted reads)");
    return caught ? 0 : 1;
  }
  std::printf(
      "kvcached_chaos: seed %llu, profile %s; rerun: %s --seed %llu --profile %s "
      "--checksums %s\n",
      static_cast<unsigned long long>(o.seed), profile.c_str(), argv[0],
      static_cast<unsigned long long>(o.seed), profile.c_str(), checksums.c_str());
  bool ok = true;
  for (bool on : {true, false}) {
    if ((on && checksums == "off") || (!on && checksums == "on")) continue;
    o.checksums = on;
    try {
      ok = kvcached::chaos::ChaosRun(o).Run().ok && ok;
    } catch (const std::exception& e) {
      std::printf("  BROKE DOWN: %s\n", e.what());
      ok = false;
    }
  }
  std::printf("kvcached_chaos: %s (seed %llu)\n", ok ? "PASS" : "FAIL",
              static_cast<unsigned long long>(o.seed));
  return ok ? 0 : 1;
}
