// Data-plane benchmark: put and get throughput through kvcached::Client over
// shared memory and over TCP loopback, next to two ceilings of this machine
// measured in the same run: single-thread memcpy and single-stream loopback TCP.
//
//   build/bench_data [--bin PATH] [--seconds S] [--sizes 64K,1M,4M] [--batches 1,16,256]
//                    [--transports shm,tcp] [--segment-size 2GiB] [--store-threads 2]
//                    [--no-checksums] [--tcp-streams 4] [--split 1MiB]
//                    [--copy-threads 0] [--json]
//
// The ceilings come first: memcpy of 256 MiB, best of 5; one TCP stream
// over 127.0.0.1 for 1 s, best of 3. Then it starts `kvcached master` and one
// `kvcached store --host-id bench-host` as child processes (readiness through
// a NOTIFY_SOCKET of its own) and opens one client per transport with the
// same host id. Per transport it first fills 80% of the segment once,
// untimed, so no cell pays the first touch of the segment's pages. Then for
// each object size x batch ("cell"):
//   put: S seconds of puts of distinct keys, at most half the segment at a
//        time (when full, emptied with RemoveAll, untimed, and refilled);
//        then, untimed, topped up to half the segment;
//   get: one untimed pass over those keys that checks every byte of every
//        object, then S seconds of gets cycling over them.
// Batch 1 uses Put/Get, larger batches BatchPut/BatchGet. Sources and
// destinations rotate through 256 MiB (or batch x size, if larger) of
// pre-faulted memory, so, like the memcpy ceiling, neither is cache-hot.
// Every object's first 8 bytes hold its index, so a get that returns another
// key's bytes is caught too. A cell stops at its first failure.
//
// 1 GB = 1e9 bytes; object sizes are binary (64K = 65536 bytes). Exit status:
// 0 when every operation succeeded and every checked byte was right; 1
// otherwise (each failure printed on stderr), also when a phase hangs for
// over a minute; 2 for a bad command line.
#include <signal.h>
#include <sys/utsname.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "bench/arena.h"
#include "bench/baseline.h"
#include "bench_args.h"
#include "bench_process.h"
#include "core/build_info.h"
#include "core/units.h"
#include "kvcached/client.h"

using namespace kvcached;
using kvcached::bench::ArgWalk;
using kvcached::bench::Daemon;
using kvcached::bench::DefaultKvcachedBin;
using kvcached::bench::SplitCommas;
using kvcached::bench::Watchdog;
using Clock = std::chrono::steady_clock;

namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kCeilingBufferBytes = 256 * kMiB;
constexpr const char* kHostId = "bench-host";

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

struct Options {
  std::string bin;
  double seconds = 1.0;
  std::vector<uint64_t> sizes = {64 << 10, 1 << 20, 4 << 20};
  std::vector<size_t> batches = {1, 16, 256};
  std::vector<std::string> transports = {"shm", "tcp"};
  uint64_t segment_bytes = uint64_t{2} << 30;
  unsigned store_threads = 2;
  unsigned tcp_streams = 4;        // ClientConfig::tcp_streams
  uint64_t split_bytes = 1 << 20;  // ClientConfig::tcp_split_bytes
  unsigned copy_threads = 0;       // ClientConfig::copy_threads
  bool checksums = true;
  bool json = false;
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "%s%s"
               "usage: bench_data [--bin PATH] [--seconds S] [--sizes 64K,1M,4M]\n"
               "                  [--batches 1,16,256] [--transports shm,tcp]\n"
               "                  [--segment-size 2GiB] [--store-threads 2] [--no-checksums]\n"
               "                  [--tcp-streams 4] [--split 1MiB] [--copy-threads 0]\n"
               "                  [--json]\n"
               "  --bin   the kvcached binary (default: $KVCACHED_BIN, else kvcached next to\n"
               "          this program)\n",
               error.c_str(), error.empty() ? "" : "\n");
  std::exit(error.empty() ? 0 : 2);
}

uint64_t SizeArg(const std::string& name, const std::string& text, uint64_t min) {
  Result<uint64_t> v = ParseSize(text);
  if (!v.ok() || *v < min) Usage("--" + name + ": bad size '" + text + "'");
  return *v;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  ArgWalk args(argc, argv, Usage);
  while (args.Next()) {
    const std::string& name = args.name();
    auto next = [&] { return args.Value(); };
    if (name == "--help" || name == "-h") {
      Usage("");
    } else if (name == "--json") {
      o.json = true;
    } else if (name == "--no-checksums") {
      o.checksums = false;
    } else if (name == "--bin") {
      o.bin = next();
    } else if (name == "--seconds") {
      std::string v = next();
      char* end = nullptr;
      o.seconds = std::strtod(v.c_str(), &end);
      if (*end != '\0' || !(o.seconds > 0 && o.seconds <= 3600)) Usage("--seconds: bad value");
    } else if (name == "--sizes") {
      o.sizes.clear();
      for (const std::string& s : SplitCommas(next())) o.sizes.push_back(SizeArg("sizes", s, 16));
    } else if (name == "--batches") {
      o.batches.clear();
      for (const std::string& s : SplitCommas(next())) {
        char* end = nullptr;
        unsigned long b = std::strtoul(s.c_str(), &end, 10);
        if (*end != '\0' || b == 0 || b > 65536) Usage("--batches: bad batch '" + s + "'");
        o.batches.push_back(b);
      }
    } else if (name == "--transports") {
      o.transports = SplitCommas(next());
      for (const std::string& t : o.transports) {
        if (t != "shm" && t != "tcp") Usage("--transports: '" + t + "' is neither shm nor tcp");
      }
    } else if (name == "--segment-size") {
      o.segment_bytes = SizeArg("segment-size", next(), 16 * kMiB);
    } else if (name == "--tcp-streams") {
      o.tcp_streams = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
      if (o.tcp_streams == 0 || o.tcp_streams > 64) Usage("--tcp-streams: 1 to 64");
    } else if (name == "--copy-threads") {
      std::string v = next();
      char* end = nullptr;
      unsigned long n = std::strtoul(v.c_str(), &end, 10);
      if (v.empty() || *end != '\0' || n > 64) Usage("--copy-threads: 0 to 64");
      o.copy_threads = static_cast<unsigned>(n);
    } else if (name == "--split") {
      o.split_bytes = SizeArg("split", next(), 4096);
    } else if (name == "--store-threads") {
      o.store_threads = static_cast<unsigned>(std::strtoul(next().c_str(), nullptr, 10));
      if (o.store_threads == 0) Usage("--store-threads: bad value");
    } else {
      Usage("unknown argument '" + name + "'");
    }
  }
  if (o.sizes.empty() || o.batches.empty() || o.transports.empty()) Usage("an empty list");
  if (o.bin.empty()) o.bin = DefaultKvcachedBin(argv[0]);
  return o;
}

Arena MakeArena(uint64_t size_bytes) {
  Result<Arena> a = Arena::Create(size_bytes);
  if (!a.ok()) throw std::runtime_error(a.status().message());
  return std::move(a).value();
}

// One row of results: one operation of one cell.
struct Row {
  Row(std::string transport_name, std::string op_name, uint64_t size, size_t batch_size)
      : transport(std::move(transport_name)),
        op(std::move(op_name)),
        object_bytes(size),
        batch(batch_size) {}

  std::string transport, op;
  uint64_t object_bytes = 0;
  size_t batch = 0;
  uint64_t keys = 0;     // puts: distinct keys in the last round; gets: keys cycled over
  uint64_t objects = 0;  // objects moved in the timed part
  double seconds = 0;
  ClientStats delta;  // the client's counters over the timed part

  double objects_per_s() const { return static_cast<double>(objects) / seconds; }
  double gb_per_s() const {
    return static_cast<double>(objects) * static_cast<double>(object_bytes) / seconds / 1e9;
  }
};

std::string Thousands(double v) {
  std::string digits = std::to_string(static_cast<unsigned long long>(v + 0.5));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

// Runs the cells against one client and keeps the rows, failures and notes.
// Single-threaded.
class Bench {
 public:
  Bench(const Options& o, Arena& src, Arena& dst, Watchdog& watchdog)
      : o_(o), src_(src), dst_(dst), watchdog_(watchdog) {}

  // Untimed: puts 4 MiB objects until 80% of the segment is filled, then
  // removes them, so the segment's pages are faulted in on this path.
  bool WarmUp(Client& c, const std::string& transport) {
    watchdog_.Enter(transport + " warm-up", Limit(10));
    const uint64_t size = std::min<uint64_t>(4 * kMiB, o_.segment_bytes / 8);
    uint64_t n = o_.segment_bytes * 8 / 10 / size, put = 0;
    for (uint64_t i = 0; i < n; ++i) {
      std::string key = "kvcached-bench/warm-" + transport + "/" + std::to_string(i);
      Status st = c.Put(key, Src(i, size), size);
      if (st.code() == ErrorCode::NO_AVAILABLE_HANDLE) {
        Note(transport + " warm-up: the pool was full after " + std::to_string(put) +
             " objects of " + FormatSize(size) + " (" + st.ToString() + ")");
        break;
      }
      if (!st.ok()) return Fail(transport + " warm-up put of '" + key + "': " + st.ToString());
      ++put;
    }
    return RemoveAll(c, transport + " warm-up", put);
  }

  // One transport x size x batch cell: appends a put row and a get row.
  // Returns false when an operation failed (recorded) and the cell stopped.
  bool RunCell(Client& c, const std::string& transport, uint64_t size, size_t batch) {
    std::string cell = transport + " " + FormatSize(size) + " x" + std::to_string(batch);
    uint64_t batches_max = o_.segment_bytes / 2 / size / batch;
    if (batches_max == 0) {
      Note(cell + ": skipped, one batch is more than half the segment");
      return true;
    }
    ++cell_number_;
    std::vector<std::vector<std::string>> keys(batches_max);
    for (uint64_t b = 0; b < batches_max; ++b) {
      for (size_t j = 0; j < batch; ++j) {
        keys[b].push_back("kvcached-bench/" + std::to_string(cell_number_) + "/" +
                          std::to_string(b * batch + j));
      }
    }
    std::vector<Slice> slices(batch);
    auto fill_slices = [&](uint64_t b, Arena& arena, bool stamp) {
      for (size_t j = 0; j < batch; ++j) {
        uint64_t index = b * batch + j;
        uint8_t* p = Slot(arena, index, size);
        if (stamp) std::memcpy(p, &index, sizeof index);
        slices[j] = {p, size};
      }
    };

    // Put: timed batches of fresh keys; when half the segment is full and
    // less than S seconds were timed, empty the pool (untimed) and go on.
    Row put{transport, "put", size, batch};
    uint64_t stored_batches = 0;
    ClientStats before = c.stats();
    watchdog_.Enter(cell + " put", Limit(4 * o_.seconds));
    while (put.seconds < o_.seconds) {
      if (stored_batches == batches_max) {
        if (!RemoveAll(c, cell + " between put rounds", stored_batches * batch)) return false;
        stored_batches = 0;
      }
      auto t0 = Clock::now();
      while (stored_batches < batches_max &&
             put.seconds + Seconds(Clock::now() - t0) < o_.seconds) {
        const std::vector<std::string>& k = keys[stored_batches];
        fill_slices(stored_batches, src_, true);
        if (batch == 1) {
          if (Status st = c.Put(k[0], slices[0].data, size); !st.ok()) {
            return Fail(cell + " put of '" + k[0] + "': " + st.ToString());
          }
        } else {
          std::vector<Status> sts = c.BatchPut(k, slices);
          if (sts.size() != batch) return Fail(cell + " BatchPut: wrong number of results");
          for (size_t j = 0; j < batch; ++j) {
            if (!sts[j].ok()) return Fail(cell + " put of '" + k[j] + "': " + sts[j].ToString());
          }
        }
        ++stored_batches;
        put.objects += batch;
      }
      put.seconds += Seconds(Clock::now() - t0);
    }
    put.delta = c.stats() - before;
    put.keys = stored_batches * batch;
    Add(put);
    // Untimed top-up to the full key space, so the gets below cycle over
    // half the segment and never over a cache-sized handful of objects.
    for (; stored_batches < batches_max; ++stored_batches) {
      fill_slices(stored_batches, src_, true);
      std::vector<Status> sts = c.BatchPut(keys[stored_batches], slices);
      if (sts.size() != batch) return Fail(cell + " BatchPut: wrong number of results");
      for (size_t j = 0; j < sts.size(); ++j) {
        if (!sts[j].ok()) {
          return Fail(cell + " top-up put of '" + keys[stored_batches][j] +
                      "': " + sts[j].ToString());
        }
      }
    }

    // Get, first pass untimed: each destination is poisoned first, every
    // byte of every object checked.
    watchdog_.Enter(cell + " get (verified pass)", Limit(4 * o_.seconds));
    std::vector<Result<uint64_t>> results;
    auto get_batch = [&](uint64_t b) -> bool {
      const std::vector<std::string>& k = keys[b];
      if (batch == 1) {
        results.clear();
        results.push_back(c.Get(k[0], slices[0].data, size));
      } else {
        results = c.BatchGet(k, slices);
        if (results.size() != batch) return Fail(cell + " BatchGet: wrong number of results");
      }
      for (size_t j = 0; j < batch; ++j) {
        if (!results[j].ok()) {
          return Fail(cell + " get of '" + k[j] + "': " + results[j].status().ToString());
        }
        if (*results[j] != size) {
          return Fail(cell + " get of '" + k[j] + "' returned " + std::to_string(*results[j]) +
                      " bytes, expected " + std::to_string(size));
        }
      }
      return true;
    };
    for (uint64_t b = 0; b < stored_batches; ++b) {
      fill_slices(b, dst_, false);
      for (const Slice& s : slices) std::memset(s.data, 0xA5, s.size);
      if (!get_batch(b)) return false;
      for (size_t j = 0; j < batch; ++j) {
        if (!Verify(cell, keys[b][j], b * batch + j, size)) return false;
      }
    }

    // Get, timed: cycles over the stored keys for S seconds.
    Row get{transport, "get", size, batch};
    get.keys = stored_batches * batch;
    watchdog_.Enter(cell + " get", Limit(4 * o_.seconds));
    before = c.stats();
    auto t0 = Clock::now();
    for (uint64_t b = 0; get.objects == 0 || Seconds(Clock::now() - t0) < o_.seconds;
         b = (b + 1) % stored_batches) {
      fill_slices(b, dst_, false);
      if (!get_batch(b)) return false;
      get.objects += batch;
    }
    get.seconds = Seconds(Clock::now() - t0);
    get.delta = c.stats() - before;
    Add(get);

    watchdog_.Enter(cell + " remove", Limit(10));
    return RemoveAll(c, cell, stored_batches * batch);
  }

  bool Fail(const std::string& what) {
    std::fprintf(stderr, "FAILED: %s\n", what.c_str());
    failures_.push_back(what);
    return false;
  }
  void Note(const std::string& what) {
    std::fprintf(stderr, "note: %s\n", what.c_str());
    notes_.push_back(what);
  }
  void set_row_printer(std::function<void(const Row&)> f) { row_printer_ = std::move(f); }
  const std::vector<Row>& rows() const { return rows_; }
  const std::vector<std::string>& failures() const { return failures_; }
  const std::vector<std::string>& notes() const { return notes_; }

 private:
  std::chrono::seconds Limit(double seconds) const {
    return std::chrono::seconds(60 + static_cast<int64_t>(seconds));
  }

  // Object `index` of `size` bytes lives at a slot of the arena; the slots
  // rotate so a batch never shares one.
  static uint8_t* Slot(Arena& arena, uint64_t index, uint64_t size) {
    return arena.data() + (index % (arena.size() / size)) * size;
  }
  uint8_t* Src(uint64_t index, uint64_t size) { return Slot(src_, index, size); }

  // The object's first 8 bytes are its index, the rest its source slot's.
  bool Verify(const std::string& cell, const std::string& key, uint64_t index, uint64_t size) {
    const uint8_t* got = Slot(dst_, index, size);
    uint8_t want[8];
    std::memcpy(want, &index, 8);
    const uint8_t* src = Src(index, size);
    if (std::memcmp(got, want, 8) == 0 && std::memcmp(got + 8, src + 8, size - 8) == 0) return true;
    uint64_t wrong = 0, first = size;
    for (uint64_t i = 0; i < size; ++i) {
      uint8_t w = i < 8 ? want[i] : src[i];
      if (got[i] != w) {
        if (wrong++ == 0) first = i;
      }
    }
    char detail[256];
    std::snprintf(detail, sizeof detail,
                  ": byte %llu is 0x%02x, expected 0x%02x (%llu of %llu bytes wrong; 0xa5 is "
                  "the poison written before the get)",
                  static_cast<unsigned long long>(first), got[first],
                  first < 8 ? want[first] : src[first], static_cast<unsigned long long>(wrong),
                  static_cast<unsigned long long>(size));
    return Fail("WRONG BYTES: " + cell + " get of '" + key + "'" + detail);
  }

  bool RemoveAll(Client& c, const std::string& what, uint64_t expected) {
    Result<uint64_t> removed = c.RemoveAll(/*force=*/true);
    if (!removed.ok()) return Fail(what + ": RemoveAll: " + removed.status().ToString());
    if (*removed != expected) {
      Note(what + ": RemoveAll removed " + std::to_string(*removed) + " objects, expected " +
           std::to_string(expected));
    }
    return true;
  }

  void Add(Row row) {
    // A client held to one transport must have moved the bytes over it.
    const ClientStats& d = row.delta;
    uint64_t other = row.transport == "shm" ? d.tcp_transfers : d.shm_transfers;
    uint64_t own = row.transport == "shm" ? d.shm_transfers : d.tcp_transfers;
    if (other != 0 || own == 0) {
      Note(row.transport + " " + row.op + " " + FormatSize(row.object_bytes) + " x" +
           std::to_string(row.batch) + ": client counted " + std::to_string(d.shm_transfers) +
           " shm and " + std::to_string(d.tcp_transfers) + " TCP transfers");
    }
    uint64_t bytes = row.op == "put" ? d.bytes_written : d.bytes_read;
    if (bytes != row.objects * row.object_bytes) {
      Note(row.transport + " " + row.op + " " + FormatSize(row.object_bytes) + " x" +
           std::to_string(row.batch) + ": client counted " + std::to_string(bytes) +
           " bytes, the bench moved " + std::to_string(row.objects * row.object_bytes));
    }
    rows_.push_back(std::move(row));
    if (row_printer_) row_printer_(rows_.back());
  }

  const Options& o_;
  Arena& src_;
  Arena& dst_;
  Watchdog& watchdog_;
  unsigned cell_number_ = 0;
  std::vector<Row> rows_;
  std::vector<std::string> failures_, notes_;
  std::function<void(const Row&)> row_printer_;
};

// The 1-minute load average: other work on the machine deflates every figure.
double LoadAverage() {
  double load[1] = {0};
  return getloadavg(load, 1) == 1 ? load[0] : -1;
}

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("model name", 0) == 0) return line.substr(line.find(':') + 2);
  }
  return "unknown";
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::warn);  // the client library's info lines would split the table
  utsname uts{};
  uname(&uts);
  long nproc = sysconf(_SC_NPROCESSORS_ONLN);
  std::string cpu = CpuModel();
  double load_before = LoadAverage();

  Baseline ceilings;
  uint64_t arena_bytes = kCeilingBufferBytes;
  for (uint64_t s : o.sizes) {
    for (size_t b : o.batches) arena_bytes = std::max(arena_bytes, s * b);
  }
  if (access(o.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "FAILED: no kvcached binary at %s (use --bin or KVCACHED_BIN)\n",
                 o.bin.c_str());
    return 1;
  }
  std::optional<Arena> src, dst;
  char dir_template[] = "/tmp/kvcached-bench-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = dir_template;
  std::optional<Daemon> master, store;
  try {
    Result<Baseline> b = MeasureBaseline();
    if (!b.ok()) throw std::runtime_error(b.status().message());
    ceilings = *b;
    src.emplace(MakeArena(arena_bytes));
    dst.emplace(MakeArena(arena_bytes));
    master.emplace(o.bin, dir, "master",
                   std::vector<std::string>{"master", "--port", "0", "--admin-port", "0",
                                            "--no-meta", "--threads", "1"});
    store.emplace(
        o.bin, dir, "store",
        std::vector<std::string>{"store", "--master", master->Address("rpc"), "--segment-size",
                                 std::to_string(o.segment_bytes), "--host-id", kHostId, "--threads",
                                 std::to_string(o.store_threads)});
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILED: %s\n", e.what());
    store.reset();
    master.reset();
    rmdir(dir.c_str());
    return 1;
  }

  ClientConfig base;
  base.local_hostname = kHostId;
  base.master_server_addr = master->Address("rpc");
  base.checksums = o.checksums;
  base.tcp_streams = o.tcp_streams;
  base.tcp_split_bytes = o.split_bytes;
  base.copy_threads = o.copy_threads;

  const double memcpy_gbps = ceilings.memcpy_gb_per_s;
  const double tcp_gbps = ceilings.loopback_tcp_gb_per_s;
  auto pct = [](double v, double of) { return of > 0 ? 100 * v / of : 0; };
  if (!o.json) {
    std::printf("kvcached data-plane benchmark: %s\n", VersionLine().c_str());
    std::printf("machine: %ld cores (%s), kernel %s, load average %.2f before the run\n", nproc,
                cpu.c_str(), uts.release, load_before);
    std::printf("units: 1 GB = 1e9 bytes; object sizes are binary (1 MiB = 1048576 bytes)\n");
    std::printf("ceiling memcpy:       %6.2f GB/s  (%s)\n", memcpy_gbps,
                ceilings.memcpy_method.c_str());
    std::printf("ceiling loopback TCP: %6.2f GB/s  (%s)\n", tcp_gbps,
                ceilings.loopback_tcp_method.c_str());
    std::printf(
        "setup: master (1 thread), store (segment %s, %u threads), one client per transport "
        "(host id %s, tcp_streams %u, split %s, copy_threads %s, checksums %s); %.1f s per "
        "operation and cell\n\n",
        FormatSize(o.segment_bytes).c_str(), o.store_threads, kHostId, base.tcp_streams,
        FormatSize(base.tcp_split_bytes).c_str(),
        o.copy_threads == 0 ? "auto" : std::to_string(o.copy_threads).c_str(),
        o.checksums ? "on" : "off", o.seconds);
    std::printf("%-9s %-3s %8s %5s %7s %12s %8s %8s %7s\n", "transport", "op", "object", "batch",
                "keys", "objects/s", "GB/s", "%memcpy", "%TCP");
    std::fflush(stdout);
  }

  Watchdog watchdog(dir);
  Bench bench(o, *src, *dst, watchdog);
  if (!o.json) {
    bench.set_row_printer([&](const Row& r) {
      std::printf("%-9s %-3s %8s %5zu %7llu %12s %8.3f %7.1f%% %6.1f%%\n", r.transport.c_str(),
                  r.op.c_str(), FormatSize(r.object_bytes).c_str(), r.batch,
                  static_cast<unsigned long long>(r.keys), Thousands(r.objects_per_s()).c_str(),
                  r.gb_per_s(), pct(r.gb_per_s(), memcpy_gbps), pct(r.gb_per_s(), tcp_gbps));
      std::fflush(stdout);
    });
  }

  for (const std::string& transport : o.transports) {
    ClientConfig config = base;
    config.transport = transport == "shm" ? TransportMode::kShm : TransportMode::kTcp;
    watchdog.Enter(transport + " client Open", std::chrono::seconds(60));
    Result<std::unique_ptr<Client>> opened = Client::Open(config);
    if (!opened.ok()) {
      bench.Fail(transport + " client: Open: " + opened.status().ToString());
      continue;
    }
    Client& client = **opened;
    bool ok = true;
    for (Arena* a : {&*src, &*dst}) {
      if (Status st = client.RegisterBuffer(a->data(), a->size()); !st.ok()) {
        ok = bench.Fail(transport + " client: RegisterBuffer: " + st.ToString());
      }
    }
    if (!ok) continue;
    // A failed warm-up is recorded; the cells still run, to show which paths fail.
    if (!bench.WarmUp(client, transport)) (void)client.RemoveAll(true);
    for (uint64_t size : o.sizes) {
      for (size_t batch : o.batches) {
        if (!bench.RunCell(client, transport, size, batch)) {
          // The pool may still hold the failed cell's objects.
          (void)client.RemoveAll(true);
        }
      }
    }
    watchdog.Enter(transport + " client Close", std::chrono::seconds(60));
    client.Close();
  }
  watchdog.Enter("stopping the daemons", std::chrono::seconds(60));
  std::string store_log = store->Log(), master_log = master->Log();
  if (int rc = store->Stop(); rc != 0) bench.Note("the store exited with " + std::to_string(rc));
  if (int rc = master->Stop(); rc != 0) bench.Note("the master exited with " + std::to_string(rc));

  // The acceptance target: batched 64 KiB gets over TCP.
  const double kTargetObjectsPerS = 50'000;
  const Row* best = nullptr;
  for (const Row& r : bench.rows()) {
    if (r.transport == "tcp" && r.op == "get" && r.object_bytes == 64 * 1024 && r.batch > 1 &&
        (best == nullptr || r.objects_per_s() > best->objects_per_s())) {
      best = &r;
    }
  }
  bool ok = bench.failures().empty();

  if (o.json) {
    nlohmann::json rows = nlohmann::json::array();
    for (const Row& r : bench.rows()) {
      rows.push_back({{"transport", r.transport},
                      {"op", r.op},
                      {"object_bytes", r.object_bytes},
                      {"batch", r.batch},
                      {"keys", r.keys},
                      {"objects", r.objects},
                      {"seconds", r.seconds},
                      {"objects_per_s", r.objects_per_s()},
                      {"gb_per_s", r.gb_per_s()},
                      {"pct_of_memcpy", pct(r.gb_per_s(), memcpy_gbps)},
                      {"pct_of_tcp", pct(r.gb_per_s(), tcp_gbps)},
                      {"shm_transfers", r.delta.shm_transfers},
                      {"tcp_transfers", r.delta.tcp_transfers},
                      {"tcp_connections_opened", r.delta.tcp_connections_opened}});
    }
    nlohmann::json doc = {{"version", VersionLine()},
                          {"machine",
                           {{"nproc", nproc},
                            {"cpu", cpu},
                            {"kernel", uts.release},
                            {"load_average_before", load_before},
                            {"load_average_after", LoadAverage()}}},
                          {"gb_bytes", 1'000'000'000},
                          {"ceilings",
                           {{"memcpy_gb_per_s", memcpy_gbps},
                            {"memcpy", ceilings.memcpy_method},
                            {"tcp_loopback_gb_per_s", tcp_gbps},
                            {"tcp_loopback", ceilings.loopback_tcp_method}}},
                          {"config",
                           {{"seconds", o.seconds},
                            {"segment_bytes", o.segment_bytes},
                            {"store_threads", o.store_threads},
                            {"master_threads", 1},
                            {"checksums", o.checksums},
                            {"tcp_streams", base.tcp_streams},
                            {"tcp_split_bytes", base.tcp_split_bytes},
                            {"copy_threads", base.copy_threads}}},
                          {"results", rows},
                          {"notes", bench.notes()},
                          {"failures", bench.failures()},
                          {"ok", ok}};
    if (best != nullptr) {
      doc["target"] = {{"what", "batched 64 KiB gets over TCP"},
                       {"objects_per_s_min", kTargetObjectsPerS},
                       {"best_objects_per_s", best->objects_per_s()},
                       {"best_batch", best->batch},
                       {"met", best->objects_per_s() >= kTargetObjectsPerS}};
    }
    std::printf("%s\n", doc.dump(2).c_str());
  } else {
    if (best != nullptr) {
      std::printf(
          "\ntarget: batched 64 KiB gets over TCP >= %s objects/s: %s (%s objects/s at "
          "batch %zu)\n",
          Thousands(kTargetObjectsPerS).c_str(),
          best->objects_per_s() >= kTargetObjectsPerS ? "met" : "NOT met",
          Thousands(best->objects_per_s()).c_str(), best->batch);
    }
    std::printf("load average after the run: %.2f\n", LoadAverage());
    for (const std::string& n : bench.notes()) std::printf("note: %s\n", n.c_str());
    std::printf("%s\n", ok ? "all operations succeeded; every verified byte was right"
                           : "FAILED (see the lines above)");
  }
  if (!ok) {
    std::fprintf(stderr, "--- store log (tail) ---\n%s\n--- master log (tail) ---\n%s\n",
                 store_log.c_str(), master_log.c_str());
  }
  store.reset();
  master.reset();
  rmdir(dir.c_str());
  return ok ? 0 : 1;
}
