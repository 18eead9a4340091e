// Master benchmark: what one master core sustains, and what the index
// costs per object.
//
//   build/bench_master [seconds per phase, default 5] [objects for the memory phase, default
//   1000000]
//
// Phase 1 (memory): a MasterIndex alone; 1,000,000 objects with SGLang-style
// keys (64 hex digits + "_0_k") put through PutStart/PutEnd in batches of
// 256; heap growth measured with mallinfo2() and divided by the count.
// Phase 2 (throughput): a MasterService on an io_context run by ONE thread
// pinned to CPU 0, a client pinned to CPU 1 pipelining batches of 256 keys
// over loopback TCP: ExistKey keys/s, GetReplicaList keys/s, and
// PutStart+PutEnd objects/s.
#include <malloc.h>
#include <pthread.h>
#include <sched.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <ctime>
#include <thread>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include "master/master_service.h"
#include "net/rpc_client.h"

using namespace kvcached;
using Clock = std::chrono::steady_clock;

namespace {

constexpr size_t kBatch = 256;
constexpr size_t kDepth = 8;  // pipelined batches in flight

void PinTo(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu % static_cast<int>(std::thread::hardware_concurrency()), &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

std::string Key(uint64_t i) {
  char buf[80];
  // A 64-hex "hash" followed by SGLang's rank and K/V suffix.
  std::snprintf(buf, sizeof buf, "%016llx%016llx%016llx%016llx_0_k",
                static_cast<unsigned long long>(i * 0x9E3779B97F4A7C15ull),
                static_cast<unsigned long long>(i), static_cast<unsigned long long>(~i),
                static_cast<unsigned long long>(i ^ 0xabcdef));
  return buf;
}

void MemoryPhase(uint64_t objects) {
  MasterOptions o;
  o.eviction_high_watermark_ratio = 1.0;
  MasterIndex index(o);
  Caller store{"store", "host"};
  (void)index.Mount(store, {"seg", 0, uint64_t{1} << 40, "tcp://x"}, 0);
  std::vector<std::string> keys;
  keys.reserve(kBatch);
  malloc_trim(0);
  size_t before = mallinfo2().uordblks + mallinfo2().hblkhd;  // heap + mmapped blocks
  for (uint64_t i = 0; i < objects; i += kBatch) {
    PutStartRequest start{1, "", {}};
    PutEndRequest end;
    for (uint64_t j = i; j < std::min(objects, i + kBatch); ++j) {
      std::string k = Key(j);
      start.items.push_back({k, 4096});
      end.items.push_back({k, j});
    }
    (void)index.PutStart(store, start, 0);
    (void)index.PutEnd(store, end, 0);
    (void)index.TakeTableUpdates();
  }
  size_t after = mallinfo2().uordblks + mallinfo2().hblkhd;
  std::printf(
      "memory: %llu objects, key %zu bytes: %.1f bytes of heap per object "
      "(target <= 200)\n",
      static_cast<unsigned long long>(index.object_count()), Key(0).size(),
      static_cast<double>(after - before) / static_cast<double>(objects));
}

double ThreadCpuSeconds(clockid_t clock) {
  timespec ts{};
  clock_gettime(clock, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) / 1e9;
}

clockid_t g_master_clock;

// A benchmark that counts failures as throughput would lie: every item
// must have succeeded.
void Expect(const std::vector<int32_t>& codes) {
  for (int32_t c : codes) {
    if (c != 0) {
      std::fprintf(stderr, "an item failed with %d\n", c);
      std::exit(1);
    }
  }
}
template <typename Item>
void Expect(const std::vector<Item>& items) {
  for (const Item& it : items) {
    if (it.code != 0) {
      std::fprintf(stderr, "an item failed with %d\n", it.code);
      std::exit(1);
    }
  }
}

// Runs `round` for `seconds` and prints items/s, how busy the master's one
// core was, and items per second of master CPU (the master's capacity
// when the client, which shares this 2-core machine, is the bottleneck).
template <typename Fn>
void Measure(const char* what, const char* unit, const char* target, double seconds, Fn&& round) {
  uint64_t items = 0;
  double cpu0 = ThreadCpuSeconds(g_master_clock);
  auto start = Clock::now();
  auto end = start + std::chrono::duration<double>(seconds);
  while (Clock::now() < end) items += round();
  double wall = std::chrono::duration<double>(Clock::now() - start).count();
  double cpu = ThreadCpuSeconds(g_master_clock) - cpu0;
  std::printf(
      "%-16s %10.0f %s/s, master core %3.0f%% busy, %10.0f %s per master CPU-second "
      "(target %s)\n",
      what, static_cast<double>(items) / wall, unit, 100 * cpu / wall,
      static_cast<double>(items) / cpu, unit, target);
}

}  // namespace

int main(int argc, char** argv) {
  double seconds = argc > 1 ? std::atof(argv[1]) : 5.0;
  uint64_t objects = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 1'000'000;
  spdlog::set_level(spdlog::level::warn);
  std::printf("master benchmark: %u cores, batches of %zu keys, %zu batches pipelined\n",
              std::thread::hardware_concurrency(), kBatch, kDepth);
  MemoryPhase(objects);

  boost::asio::io_context ioc;
  MetricsRegistry metrics;
  MasterServiceOptions opts;
  opts.meta.reset();
  opts.index.eviction_high_watermark_ratio = 1.0;
  opts.index.client_ttl_ms = 3'600'000;  // the bench client does not ping
  opts.admin.port = 0;
  MasterService service(ioc, opts, metrics);
  if (Status st = service.Start(); !st.ok()) {
    std::fprintf(stderr, "cannot start the master: %s\n", st.ToString().c_str());
    return 1;
  }
  std::thread master_thread([&] {
    PinTo(0);
    ioc.run();
  });
  pthread_getcpuclockid(master_thread.native_handle(), &g_master_clock);
  PinTo(1);

  RpcClientOptions co;
  co.address = service.rpc().address();
  co.hello.client_id = "bench";
  co.hello.host_id = "host";
  co.hello.role = static_cast<uint8_t>(PeerRole::kStore);
  co.call_timeout = std::chrono::seconds(30);
  RpcClient client(co);
  StatusResponse mounted;
  if (!client.Connect().ok() ||
      !client
           .Call(MsgType::kMountSegment, MountRequest{{"seg", 0, uint64_t{1} << 40, "tcp://x"}},
                 mounted)
           .ok()) {
    std::fprintf(stderr, "cannot mount\n");
    return 1;
  }

  // Objects for the read phases.
  std::vector<std::vector<std::string>> batches;
  for (uint64_t b = 0; b < 64; ++b) {
    std::vector<std::string> keys;
    for (uint64_t i = 0; i < kBatch; ++i) keys.push_back(Key(b * kBatch + i));
    PutStartRequest start{1, "", {}};
    PutEndRequest end;
    for (const auto& k : keys) {
      start.items.push_back({k, 4096});
      end.items.push_back({k, 1});
    }
    ReplicaListResponse placed;
    CodesResponse ended;
    (void)client.Call(MsgType::kPutStart, start, placed);
    (void)client.Call(MsgType::kPutEnd, end, ended);
    batches.push_back(std::move(keys));
  }
  size_t next = 0;
  auto pipeline = [&]() {
    std::vector<KeysRequest> reqs;
    for (size_t d = 0; d < kDepth; ++d) reqs.push_back({batches[next++ % batches.size()]});
    return reqs;
  };

  Measure("ExistKey", "keys", ">= 1,000,000 keys/s", seconds, [&] {
    std::vector<CodesResponse> r;
    if (!client.CallMany(MsgType::kExistKey, pipeline(), r).ok()) std::abort();
    for (const CodesResponse& c : r) Expect(c.codes);
    return kDepth * kBatch;
  });
  Measure("GetReplicaList", "keys", ">= 1,000,000 keys/s", seconds, [&] {
    std::vector<ReplicaListResponse> r;
    if (!client.CallMany(MsgType::kGetReplicaList, pipeline(), r).ok()) std::abort();
    for (const ReplicaListResponse& l : r) Expect(l.items);
    return kDepth * kBatch;
  });

  uint64_t serial = uint64_t{1} << 32;
  Measure("PutStart+PutEnd", "objects", ">= 200,000 objects/s", seconds, [&] {
    std::vector<PutStartRequest> starts(kDepth);
    std::vector<PutEndRequest> ends(kDepth);
    for (size_t d = 0; d < kDepth; ++d) {
      starts[d].replica_num = 1;
      for (size_t i = 0; i < kBatch; ++i) {
        std::string k = Key(serial++);
        starts[d].items.push_back({k, 4096});
        ends[d].items.push_back({k, 1});
      }
    }
    std::vector<ReplicaListResponse> placed;
    std::vector<CodesResponse> ended;
    if (!client.CallMany(MsgType::kPutStart, starts, placed).ok()) std::abort();
    for (const ReplicaListResponse& l : placed) Expect(l.items);
    if (!client.CallMany(MsgType::kPutEnd, ends, ended).ok()) std::abort();
    for (const CodesResponse& c : ended) Expect(c.codes);
    return kDepth * kBatch;
  });

  service.BeginShutdown();
  ioc.stop();
  master_thread.join();
  return 0;
}
