// allocator_churn: measures OffsetAllocator's utilisation and external
// fragmentation at the first failed allocation, for KV-page sized objects in
// one segment, and its heap cost per free hole. Produces the tables in
// docs/allocator.md. Deterministic for given arguments; single-threaded.
//
//   bench_allocator_churn [seeds=20] [rounds=50] [segment_mib=1024]
//
// Per workload and seed: fill an empty segment until the first Allocate
// fails ("fill"), then `rounds` times free a random half of the live objects
// and refill until the first failure ("churn"); the state at each failure is
// recorded.
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <optional>
#include <random>
#include <utility>
#include <vector>

#include "core/offset_allocator.h"

namespace {

using kvcached::OffsetAllocator;
constexpr uint64_t kMiB = uint64_t{1} << 20;
using SizeFn = std::function<uint64_t(std::mt19937_64&)>;

struct Workload {
  const char* name;
  SizeFn next_size;
};

struct AtFailure {
  double utilisation = 0;  // used / capacity
  double fragmentation = 0;
  double holes = 0;
  double live_objects = 0;
  double failed_request_mib = 0;
};

// Running mean, minimum and maximum of one quantity.
struct Stat {
  double sum = 0, min = 1e300, max = -1e300;
  int n = 0;
  void Add(double v) {
    sum += v;
    min = std::min(min, v);
    max = std::max(max, v);
    ++n;
  }
  double mean() const { return n ? sum / n : 0; }
};

struct Stats {
  Stat utilisation, fragmentation, holes, live_objects, failed_request_mib;
  void Add(const AtFailure& f) {
    utilisation.Add(f.utilisation);
    fragmentation.Add(f.fragmentation);
    holes.Add(f.holes);
    live_objects.Add(f.live_objects);
    failed_request_mib.Add(f.failed_request_mib);
  }
};

// Allocates until the first failure; returns the state at that moment.
AtFailure FillUntilFailure(OffsetAllocator& a, std::vector<std::pair<uint64_t, uint64_t>>& live,
                           const SizeFn& next_size, std::mt19937_64& rng) {
  for (;;) {
    const uint64_t size = next_size(rng);
    const std::optional<uint64_t> offset = a.Allocate(size);
    if (!offset) {
      AtFailure f;
      f.utilisation = static_cast<double>(a.used_bytes()) / static_cast<double>(a.capacity_bytes());
      f.fragmentation = a.fragmentation();
      f.holes = static_cast<double>(a.free_holes());
      f.live_objects = static_cast<double>(live.size());
      f.failed_request_mib = static_cast<double>(size) / kMiB;
      return f;
    }
    live.emplace_back(*offset, size);
  }
}

void FreeRandomHalf(OffsetAllocator& a, std::vector<std::pair<uint64_t, uint64_t>>& live,
                    std::mt19937_64& rng) {
  std::shuffle(live.begin(), live.end(), rng);
  const size_t keep = live.size() - live.size() / 2;
  for (size_t i = keep; i < live.size(); ++i) {
    const kvcached::Status st = a.Free(live[i].first, live[i].second);
    if (!st.ok()) {
      std::fprintf(stderr, "unexpected: %s\n", st.ToString().c_str());
      std::exit(1);
    }
  }
  live.resize(keep);
}

uint64_t UniformBytes(std::mt19937_64& rng, uint64_t lo, uint64_t hi) {
  return std::uniform_int_distribution<uint64_t>(lo, hi)(rng);
}

// Heap bytes per hole: the growth of malloc's in-use bytes while an allocator
// goes from one hole to many.
double HeapBytesPerHole() {
  constexpr uint64_t kObjects = 200000;
  OffsetAllocator a(kObjects * 64);
  for (uint64_t i = 0; i < kObjects; ++i) (void)a.Allocate(64);
  const size_t before = mallinfo2().uordblks;
  for (uint64_t i = 0; i < kObjects; i += 2) (void)a.Free(i * 64, 64);
  const size_t after = mallinfo2().uordblks;
  // Under a sanitizer malloc is replaced and mallinfo2 reports nothing useful.
  if (after <= before) return 0;
  return static_cast<double>(after - before) / static_cast<double>(a.free_holes());
}

// Mean time of one Allocate or Free in steady churn: a segment filled with
// objects of [lo, hi] bytes, half freed, then alternately one random live
// object freed and one new object allocated (a failed Allocate counts too).
void TimeCalls(uint64_t segment_bytes, uint64_t lo, uint64_t hi) {
  std::mt19937_64 rng(42);
  OffsetAllocator a(segment_bytes);
  std::vector<std::pair<uint64_t, uint64_t>> live;
  const SizeFn next_size = [lo, hi](std::mt19937_64& r) { return UniformBytes(r, lo, hi); };
  (void)FillUntilFailure(a, live, next_size, rng);
  FreeRandomHalf(a, live, rng);
  constexpr int kPairs = 1000000;
  std::vector<uint64_t> sizes(kPairs);
  std::vector<uint64_t> picks(kPairs);
  for (int i = 0; i < kPairs; ++i) {
    sizes[i] = next_size(rng);
    picks[i] = rng();
  }
  double holes_seen = 0;
  const auto start = std::chrono::steady_clock::now();
  int i = 0;
  for (; i < kPairs && !live.empty(); ++i) {
    const size_t v = static_cast<size_t>(picks[i] % live.size());
    (void)a.Free(live[v].first, live[v].second);
    live[v] = live.back();
    live.pop_back();
    if (std::optional<uint64_t> offset = a.Allocate(sizes[i])) live.emplace_back(*offset, sizes[i]);
    holes_seen += static_cast<double>(a.free_holes());
  }
  const std::chrono::duration<double, std::nano> spent = std::chrono::steady_clock::now() - start;
  std::printf("| %llu MiB | %.0f KiB - %.0f KiB | %.0f | %zu | %.0f |\n",
              static_cast<unsigned long long>(segment_bytes / kMiB), lo / 1024.0, hi / 1024.0,
              holes_seen / i, live.size(), spent.count() / (2.0 * i));
}

void PrintRow(const char* workload, const char* phase, const Stats& s) {
  std::printf("| %s | %s | %.1f%% (min %.1f%%) | %.3f (max %.3f) | %.1f | %.0f | %.1f |\n",
              workload, phase, 100 * s.utilisation.mean(), 100 * s.utilisation.min,
              s.fragmentation.mean(), s.fragmentation.max, s.holes.mean(), s.live_objects.mean(),
              s.failed_request_mib.mean());
}

}  // namespace

int main(int argc, char** argv) {
  const int seeds = argc > 1 ? std::atoi(argv[1]) : 20;
  const int rounds = argc > 2 ? std::atoi(argv[2]) : 50;
  const uint64_t segment_bytes = (argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1024) * kMiB;
  if (seeds <= 0 || rounds <= 0 || segment_bytes == 0) {
    std::fprintf(stderr, "usage: %s [seeds>0] [rounds>0] [segment_mib>0]\n", argv[0]);
    return 2;
  }

  const uint64_t pow2_sizes[] = {kMiB / 2, kMiB, 2 * kMiB, 4 * kMiB, 8 * kMiB, 16 * kMiB};
  const std::vector<Workload> workloads = {
      {"uniform 0.5-16 MiB",
       [](std::mt19937_64& rng) { return UniformBytes(rng, kMiB / 2, 16 * kMiB); }},
      {"powers of two 0.5-16 MiB",
       [&pow2_sizes](std::mt19937_64& rng) { return pow2_sizes[UniformBytes(rng, 0, 5)]; }},
      {"90% 1 MiB, 10% uniform 0.5-16 MiB",
       [](std::mt19937_64& rng) {
         return UniformBytes(rng, 0, 9) != 0 ? kMiB : UniformBytes(rng, kMiB / 2, 16 * kMiB);
       }},
      {"one size, 2 MiB", [](std::mt19937_64&) { return 2 * kMiB; }},
  };

  std::printf("segment %llu MiB, alignment 64 B, %d seeds, %d churn rounds per seed\n\n",
              static_cast<unsigned long long>(segment_bytes / kMiB), seeds, rounds);
  std::printf(
      "| workload | phase | utilisation at first failure, mean (min) | fragmentation at "
      "failure, mean (max) | holes | live objects | failed request, MiB |\n");
  std::printf("|---|---|---|---|---|---|---|\n");
  for (const Workload& w : workloads) {
    Stats fill, churn;
    for (int seed = 1; seed <= seeds; ++seed) {
      std::mt19937_64 rng(static_cast<uint64_t>(seed));
      OffsetAllocator a(segment_bytes);
      std::vector<std::pair<uint64_t, uint64_t>> live;
      fill.Add(FillUntilFailure(a, live, w.next_size, rng));
      for (int r = 0; r < rounds; ++r) {
        FreeRandomHalf(a, live, rng);
        churn.Add(FillUntilFailure(a, live, w.next_size, rng));
      }
    }
    PrintRow(w.name, "fill", fill);
    PrintRow(w.name, "churn", churn);
  }
  std::printf("\n| segment | object sizes | free holes (mean) | live objects | ns per call |\n");
  std::printf("|---|---|---|---|---|\n");
  TimeCalls(16384 * kMiB, kMiB / 2, 16 * kMiB);
  TimeCalls(4096 * kMiB, 4096, 65536);
  std::printf("\n");
  if (const double per_hole = HeapBytesPerHole(); per_hole > 0) {
    std::printf("heap per free hole: %.1f bytes (malloc in-use growth over 100000 holes)\n",
                per_hole);
  } else {
    std::printf("heap per free hole: not measurable with this malloc\n");
  }
  return 0;
}
