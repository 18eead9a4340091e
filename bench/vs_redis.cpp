// kvcached against Redis over loopback TCP, side by side in one run: the same
// object sizes, the same number of client threads (one connection or client
// each), the same bytes, next to this machine's loopback TCP ceilings
// measured in the same run: one stream, and as many streams at once as there
// are client threads (TCPxN). TCPxN over Redis's rate bounds how far ahead
// of Redis any system that copies bytes through loopback TCP could be in a
// row here (from above: the ceiling streams between hot buffers). Each row
// also shows the machine's busy CPU seconds per GB moved, for each system
// (servers, clients and the kernel's TCP work together, from /proc/stat),
// and the most a system may spend per GB to move 1.5x Redis's rate with
// every core busy: on a machine whose cores are the limit, a system whose
// figure is above that budget cannot reach 1.5x there.
//
//   build/bench_vs_redis [--bin PATH] [--redis-server PATH] [--threads 4]
//                        [--cells 64K:16,1M:16,4M:1] [--bytes 1GiB] [--rounds 3]
//                        [--verify] [--no-checksums]
//
// It starts, as child processes on free loopback ports, `kvcached master` and
// one `kvcached store` (host id bench-store), and Debian's `redis-server`
// with persistence off (`--save "" --appendonly no`), each waited for through
// a NOTIFY_SOCKET of our own. kvcached's clients have another host id and
// `transport = tcp`, so every byte crosses loopback TCP, as Redis's do.
//
// A cell is an object size and a batch (objects per call). Its objects, as
// many as fit in --bytes, are split evenly over the threads. Per round and
// system, untimed, the store is emptied (kvcached RemoveAll, Redis FLUSHALL);
// then, timed, every thread puts its objects in batches (kvcached BatchPut,
// or Put for batch 1; Redis: that many SETs pipelined on its connection), and
// then, timed, gets them all back into a second buffer (BatchGet or Get;
// pipelined GETs, each answer read straight into the buffer). A row is the
// best of --rounds rounds. The systems alternate within a round, so both see
// the machine in the same state.
//
// Every object starts with its index, so a get answered with another object's
// bytes is caught. --verify compares every byte of every get with what was
// put (inside the timed part, so its timings are not the figures to quote);
// without it each round checks the index and last byte of every object.
//
// 1 GB = 1e9 bytes; object sizes are binary (64K = 65536 bytes). Exit
// status: 0 when every call succeeded and every checked byte was right; 1
// otherwise (each failure printed on stderr); 2 for a bad command line.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>

#include "bench/arena.h"
#include "bench/baseline.h"
#include "bench/unique_fd.h"
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

struct Cell {
  uint64_t object_bytes = 0;
  size_t batch = 1;
};

struct Options {
  std::string bin;
  std::string redis = "redis-server";
  unsigned threads = 4;
  std::vector<Cell> cells = {{64 << 10, 16}, {1 << 20, 16}, {4 << 20, 1}};
  uint64_t bytes = uint64_t{1} << 30;
  int rounds = 3;
  bool verify = false;
  bool checksums = true;
  unsigned tcp_streams = 0;  // 0: the client's default
};

[[noreturn]] void Usage(const std::string& error) {
  std::fprintf(stderr,
               "%s%s"
               "usage: bench_vs_redis [--bin PATH] [--redis-server PATH] [--threads 4]\n"
               "                      [--cells 64K:16,1M:16,4M:1] [--bytes 1GiB] [--rounds 3]\n"
               "                      [--verify] [--no-checksums] [--tcp-streams N]\n"
               "  --bin           the kvcached binary (default: $KVCACHED_BIN, else kvcached\n"
               "                  next to this program)\n"
               "  --redis-server  Redis's server (default: redis-server on PATH; Debian's\n"
               "                  package redis-server)\n"
               "  --threads       client threads per system, one connection (Redis) or one\n"
               "                  client (kvcached) each\n"
               "  --cells         object size:batch pairs; batch 1 is one object per call\n"
               "  --bytes         bytes of objects per cell (rounded down to whole batches)\n"
               "  --rounds        rounds per cell; each row is the best round\n"
               "  --verify        compare every byte of every get (slower: quote figures\n"
               "                  from a run without it)\n"
               "  --no-checksums  kvcached clients without checksums (Redis has none)\n"
               "  --tcp-streams   kvcached clients' tcp_streams (default: the library's)\n",
               error.c_str(), error.empty() ? "" : "\n");
  std::exit(error.empty() ? 0 : 2);
}

uint64_t PositiveArg(const std::string& name, const std::string& text, uint64_t max) {
  char* end = nullptr;
  unsigned long long v = std::strtoull(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || v == 0 || v > max) Usage(name + ": bad value '" + text + "'");
  return v;
}

std::vector<Cell> ParseCells(const std::string& text) {
  std::vector<Cell> cells;
  for (const std::string& item : SplitCommas(text)) {
    size_t colon = item.find(':');
    Cell c;
    Result<uint64_t> size = ParseSize(item.substr(0, colon));
    if (!size.ok() || *size < 16 || *size > (uint64_t{256} << 20)) {
      Usage("--cells: bad object size in '" + item + "' (16 bytes to 256 MiB)");
    }
    c.object_bytes = *size;
    if (colon != std::string::npos) c.batch = PositiveArg("--cells", item.substr(colon + 1), 1024);
    cells.push_back(c);
  }
  if (cells.empty()) Usage("--cells: no cell");
  return cells;
}

Options ParseArgs(int argc, char** argv) {
  Options o;
  ArgWalk args(argc, argv, Usage);
  while (args.Next()) {
    const std::string& name = args.name();
    auto next = [&] { return args.Value(); };
    if (name == "--help" || name == "-h") {
      Usage("");
    } else if (name == "--verify") {
      o.verify = true;
    } else if (name == "--no-checksums") {
      o.checksums = false;
    } else if (name == "--bin") {
      o.bin = next();
    } else if (name == "--redis-server") {
      o.redis = next();
    } else if (name == "--threads") {
      o.threads = static_cast<unsigned>(PositiveArg(name, next(), 64));
    } else if (name == "--tcp-streams") {
      o.tcp_streams = static_cast<unsigned>(PositiveArg(name, next(), 64));
    } else if (name == "--rounds") {
      o.rounds = static_cast<int>(PositiveArg(name, next(), 100));
    } else if (name == "--cells") {
      o.cells = ParseCells(next());
    } else if (name == "--bytes") {
      std::string v = next();
      Result<uint64_t> b = ParseSize(v);
      if (!b.ok() || *b == 0 || *b > (uint64_t{64} << 30)) Usage("--bytes: bad size '" + v + "'");
      o.bytes = *b;
    } else {
      Usage("unknown option " + name);
    }
  }
  if (o.bin.empty()) o.bin = DefaultKvcachedBin(argv[0]);
  return o;
}

// The program for `name`: itself when it holds a '/', else the first match
// on PATH; empty when there is none.
std::string FindProgram(const std::string& name) {
  if (name.find('/') != std::string::npos) return access(name.c_str(), X_OK) == 0 ? name : "";
  const char* path = std::getenv("PATH");
  std::string dirs = path != nullptr ? path : "/usr/bin:/bin";
  size_t start = 0;
  while (start <= dirs.size()) {
    size_t end = std::min(dirs.find(':', start), dirs.size());
    std::string candidate = dirs.substr(start, end - start) + "/" + name;
    if (end > start && access(candidate.c_str(), X_OK) == 0) return candidate;
    start = end + 1;
  }
  return "";
}

// A loopback port nothing listens on now. Redis takes its port by number, so
// another process could take it before Redis binds it; Redis then fails to
// start and says so, and the run stops with its log.
uint16_t FreeLoopbackPort() {
  UniqueFd fd(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof a;
  if (bind(fd.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0 ||
      getsockname(fd.get(), reinterpret_cast<sockaddr*>(&a), &len) != 0) {
    throw std::runtime_error(std::string("cannot find a free loopback port: ") +
                             std::strerror(errno));
  }
  return ntohs(a.sin_port);
}

// One blocking connection to Redis speaking RESP2: pipelined SETs and GETs,
// a GET's bulk answer received straight into the caller's buffer (as a
// zero-copy client would), nothing else. Errors throw std::runtime_error.
class RedisConnection {
 public:
  explicit RedisConnection(uint16_t port) : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd_.get(), reinterpret_cast<sockaddr*>(&a), sizeof a) != 0) {
      throw std::runtime_error("cannot connect to Redis on 127.0.0.1:" + std::to_string(port) +
                               ": " + std::strerror(errno));
    }
    int one = 1;
    setsockopt(fd_.get(), IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  }

  // SET of each key to its slice, pipelined; every answer must be +OK.
  void Set(const std::vector<std::string>& keys, const std::vector<Slice>& values) {
    heads_.assign(keys.size(), std::string());
    std::vector<iovec> iov;
    iov.reserve(keys.size() * 3);
    for (size_t i = 0; i < keys.size(); ++i) {
      heads_[i] = "*3\r\n$3\r\nSET\r\n$" + std::to_string(keys[i].size()) + "\r\n" + keys[i] +
                  "\r\n$" + std::to_string(values[i].size) + "\r\n";
      iov.push_back({heads_[i].data(), heads_[i].size()});
      iov.push_back({values[i].data, values[i].size});
      iov.push_back({const_cast<char*>("\r\n"), 2});
    }
    WriteAll(iov);
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string line = ReadLine();
      if (line != "+OK") throw std::runtime_error("SET " + keys[i] + " answered '" + line + "'");
    }
  }

  // GET of each key, pipelined, into its buffer; the value must fill it.
  void Get(const std::vector<std::string>& keys, const std::vector<Slice>& buffers) {
    std::string requests;
    for (const std::string& k : keys) {
      requests += "*2\r\n$3\r\nGET\r\n$" + std::to_string(k.size()) + "\r\n" + k + "\r\n";
    }
    std::vector<iovec> iov = {{requests.data(), requests.size()}};
    WriteAll(iov);
    for (size_t i = 0; i < keys.size(); ++i) {
      std::string line = ReadLine();
      if (line != "$" + std::to_string(buffers[i].size)) {
        throw std::runtime_error("GET " + keys[i] + " answered '" + line.substr(0, 80) +
                                 "', not a value of " + std::to_string(buffers[i].size) + " bytes");
      }
      ReadExact(static_cast<uint8_t*>(buffers[i].data), buffers[i].size);
      char crlf[2];
      ReadExact(reinterpret_cast<uint8_t*>(crlf), 2);
      if (crlf[0] != '\r' || crlf[1] != '\n')
        throw std::runtime_error("GET: no CRLF after a value");
    }
  }

  // A command without arguments whose answer is one line (FLUSHALL, PING).
  std::string Simple(const std::string& command) {
    std::string request = "*1\r\n$" + std::to_string(command.size()) + "\r\n" + command + "\r\n";
    std::vector<iovec> iov = {{request.data(), request.size()}};
    WriteAll(iov);
    return ReadLine();
  }

 private:
  void WriteAll(std::vector<iovec>& iov) {
    size_t first = 0;
    while (first < iov.size()) {
      size_t count = std::min<size_t>(iov.size() - first, IOV_MAX);
      ssize_t n = writev(fd_.get(), &iov[first], static_cast<int>(count));
      if (n < 0 && errno == EINTR) continue;
      if (n < 0) throw std::runtime_error(std::string("Redis: write: ") + std::strerror(errno));
      auto left = static_cast<size_t>(n);
      while (first < iov.size() && left >= iov[first].iov_len) left -= iov[first++].iov_len;
      if (left > 0) {
        iov[first].iov_base = static_cast<char*>(iov[first].iov_base) + left;
        iov[first].iov_len -= left;
      }
    }
  }

  // Reads into in_ what the socket has (at least one byte).
  void Fill() {
    if (begin_ == end_) begin_ = end_ = 0;
    if (end_ == sizeof in_) {
      std::memmove(in_, in_ + begin_, end_ - begin_);
      end_ -= begin_;
      begin_ = 0;
    }
    ssize_t n;
    do {
      n = recv(fd_.get(), in_ + end_, sizeof in_ - end_, 0);
    } while (n < 0 && errno == EINTR);
    if (n == 0) throw std::runtime_error("Redis closed the connection");
    if (n < 0) throw std::runtime_error(std::string("Redis: read: ") + std::strerror(errno));
    end_ += static_cast<size_t>(n);
  }

  std::string ReadLine() {
    for (;;) {
      const char* start = in_ + begin_;
      const void* lf = std::memchr(start, '\n', end_ - begin_);
      if (lf != nullptr) {
        size_t len = static_cast<size_t>(static_cast<const char*>(lf) - start);
        std::string line(start, len > 0 && start[len - 1] == '\r' ? len - 1 : len);
        begin_ += len + 1;
        return line;
      }
      if (end_ - begin_ > 4096) throw std::runtime_error("Redis: an answer line over 4096 bytes");
      Fill();
    }
  }

  // What in_ holds first, then straight from the socket into `out`.
  void ReadExact(uint8_t* out, size_t n) {
    size_t buffered = std::min(n, end_ - begin_);
    std::memcpy(out, in_ + begin_, buffered);
    begin_ += buffered;
    size_t done = buffered;
    while (done < n) {
      ssize_t r = recv(fd_.get(), out + done, n - done, 0);
      if (r < 0 && errno == EINTR) continue;
      if (r == 0) throw std::runtime_error("Redis closed the connection inside a value");
      if (r < 0) throw std::runtime_error(std::string("Redis: read: ") + std::strerror(errno));
      done += static_cast<size_t>(r);
    }
  }

  UniqueFd fd_;
  std::vector<std::string> heads_;
  char in_[64 << 10];
  size_t begin_ = 0, end_ = 0;
};

// What one system does on one thread's connection: a batch of puts or gets.
class System {
 public:
  virtual ~System() = default;
  virtual const char* name() const = 0;
  virtual void Empty() = 0;  // untimed, before each round
  virtual void Put(unsigned thread, const std::vector<std::string>& keys,
                   const std::vector<Slice>& values) = 0;
  virtual void Get(unsigned thread, const std::vector<std::string>& keys,
                   const std::vector<Slice>& buffers) = 0;
};

class KvcachedSystem : public System {
 public:
  KvcachedSystem(const ClientConfig& config, unsigned threads) {
    for (unsigned t = 0; t < threads; ++t) {
      Result<std::unique_ptr<Client>> c = Client::Open(config);
      if (!c.ok()) throw std::runtime_error("kvcached client: " + c.status().ToString());
      clients_.push_back(std::move(c).value());
    }
  }
  const char* name() const override { return "kvcached"; }
  void Empty() override {
    Result<uint64_t> n = clients_[0]->RemoveAll(true);
    if (!n.ok()) throw std::runtime_error("kvcached RemoveAll: " + n.status().ToString());
  }
  void Put(unsigned thread, const std::vector<std::string>& keys,
           const std::vector<Slice>& values) override {
    Client& c = *clients_[thread];
    if (keys.size() == 1)
      return Check("put", keys[0], c.Put(keys[0], values[0].data, values[0].size));
    std::vector<Status> results = c.BatchPut(keys, values);
    for (size_t i = 0; i < keys.size(); ++i) Check("put", keys[i], results[i]);
  }
  void Get(unsigned thread, const std::vector<std::string>& keys,
           const std::vector<Slice>& buffers) override {
    Client& c = *clients_[thread];
    if (keys.size() == 1) {
      return CheckSize(keys[0], c.Get(keys[0], buffers[0].data, buffers[0].size), buffers[0].size);
    }
    std::vector<Result<uint64_t>> results = c.BatchGet(keys, buffers);
    for (size_t i = 0; i < keys.size(); ++i) CheckSize(keys[i], results[i], buffers[i].size);
  }
  ClientStats Stats() const {
    ClientStats sum;
    for (const auto& c : clients_) {
      ClientStats s = c->stats();
      sum.tcp_transfers += s.tcp_transfers;
      sum.shm_transfers += s.shm_transfers;
      sum.rdma_transfers += s.rdma_transfers;
    }
    return sum;
  }

 private:
  static void Check(const char* op, const std::string& key, const Status& st) {
    if (!st.ok())
      throw std::runtime_error(std::string("kvcached ") + op + " of " + key + ": " + st.ToString());
  }
  static void CheckSize(const std::string& key, const Result<uint64_t>& r, uint64_t size) {
    Check("get", key, r.status());
    if (*r != size) {
      throw std::runtime_error("kvcached get of " + key + ": " + std::to_string(*r) +
                               " bytes, not " + std::to_string(size));
    }
  }
  std::vector<std::unique_ptr<Client>> clients_;
};

class RedisSystem : public System {
 public:
  RedisSystem(uint16_t port, unsigned threads) {
    for (unsigned t = 0; t < threads; ++t)
      conns_.push_back(std::make_unique<RedisConnection>(port));
  }
  const char* name() const override { return "Redis"; }
  void Empty() override {
    std::string answer = conns_[0]->Simple("FLUSHALL");
    if (answer != "+OK") throw std::runtime_error("Redis FLUSHALL answered '" + answer + "'");
  }
  void Put(unsigned thread, const std::vector<std::string>& keys,
           const std::vector<Slice>& values) override {
    conns_[thread]->Set(keys, values);
  }
  void Get(unsigned thread, const std::vector<std::string>& keys,
           const std::vector<Slice>& buffers) override {
    conns_[thread]->Get(keys, buffers);
  }

 private:
  std::vector<std::unique_ptr<RedisConnection>> conns_;
};

// CPU seconds the whole machine has spent busy so far (every core, every
// process, interrupts included: /proc/stat's user, nice, system, irq,
// softirq and steal), so a phase's cost counts the servers, the clients and
// the kernel's TCP work alike. Negative when /proc/stat cannot be read.
double MachineBusySeconds() {
  std::ifstream in("/proc/stat");
  std::string cpu;
  unsigned long long user = 0, nice = 0, system = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                     steal = 0;
  if (!(in >> cpu >> user >> nice >> system >> idle >> iowait >> irq >> softirq >> steal) ||
      cpu != "cpu") {
    return -1;
  }
  static const long ticks = sysconf(_SC_CLK_TCK);
  return static_cast<double>(user + nice + system + irq + softirq + steal) /
         static_cast<double>(ticks > 0 ? ticks : 100);
}

// One timed phase: its wall time and the machine's busy CPU seconds in it.
struct Phase {
  double seconds = 0;
  double cpu_seconds = -1;  // negative: not measured
};

// The best round of one operation of one cell on one system, with the CPU
// that round cost.
struct Best {
  double seconds = 0;  // 0: no round yet
  double cpu_seconds = -1;
  void Add(Phase p) {
    if (seconds == 0 || p.seconds < seconds) {
      seconds = p.seconds;
      cpu_seconds = p.cpu_seconds;
    }
  }
};

// One cell's objects and the best put and get seconds per system, in the
// order the systems were given; no objects when --bytes holds no whole batch
// per thread.
struct CellResult {
  uint64_t objects = 0;
  std::vector<Best> put, get;
};

// Runs the cells on both systems. The objects of a cell sit back to back in
// `src`; gets land at the same offsets in `dst`.
class Runner {
 public:
  Runner(const Options& o, Arena& src, Arena& dst, Watchdog& watchdog)
      : o_(o), src_(src), dst_(dst), watchdog_(watchdog) {}

  CellResult RunCell(const Cell& cell, size_t number, const std::vector<System*>& systems) {
    CellResult r;
    const uint64_t per_thread = o_.bytes / cell.object_bytes / o_.threads / cell.batch * cell.batch;
    r.objects = per_thread * o_.threads;
    r.put.resize(systems.size());
    r.get.resize(systems.size());
    if (per_thread == 0) return r;
    Stamp(cell, r.objects);
    std::string label = FormatSize(cell.object_bytes) + " x" + std::to_string(cell.batch);
    for (int round = 0; round < o_.rounds; ++round) {
      for (size_t s = 0; s < systems.size(); ++s) {
        System& sys = *systems[s];
        watchdog_.Enter(std::string(sys.name()) + " " + label + " empty", std::chrono::seconds(60));
        sys.Empty();
        std::memset(dst_.data(), 0, r.objects * cell.object_bytes);
        std::string prefix =
            "vs-redis/" + std::to_string(number) + "/" + std::to_string(round) + "/";
        watchdog_.Enter(std::string(sys.name()) + " " + label + " put", std::chrono::seconds(120));
        r.put[s].Add(Timed(
            cell, per_thread, prefix,
            [&](unsigned t, auto& keys, auto& slices) { sys.Put(t, keys, slices); }, src_));
        watchdog_.Enter(std::string(sys.name()) + " " + label + " get", std::chrono::seconds(120));
        r.get[s].Add(Timed(
            cell, per_thread, prefix,
            [&](unsigned t, auto& keys, auto& slices) {
              sys.Get(t, keys, slices);
              Check(sys.name(), keys, slices);
            },
            dst_));
        if (!o_.verify) CheckIndexes(sys.name(), cell, r.objects);
      }
    }
    return r;
  }

  uint64_t checked_bytes() const { return checked_bytes_.load(); }

 private:
  using Op = std::function<void(unsigned, std::vector<std::string>&, std::vector<Slice>&)>;

  // Every object's first 8 bytes: its index in the cell.
  void Stamp(const Cell& cell, uint64_t objects) {
    for (uint64_t i = 0; i < objects; ++i) std::memcpy(Slot(src_, cell, i), &i, sizeof i);
  }

  static uint8_t* Slot(Arena& a, const Cell& cell, uint64_t index) {
    return a.data() + index * cell.object_bytes;
  }

  // The threads run `op` over their objects in batches; seconds from all
  // started to all done. The first failure stops the run (it throws).
  Phase Timed(const Cell& cell, uint64_t per_thread, const std::string& prefix, const Op& op,
              Arena& memory) {
    std::atomic<unsigned> ready{0};
    std::atomic<bool> go{false};
    std::vector<std::string> errors(o_.threads);
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o_.threads; ++t) {
      threads.emplace_back([&, t] {
        std::vector<std::string> keys(cell.batch);
        std::vector<Slice> slices(cell.batch);
        ready.fetch_add(1);
        while (!go.load(std::memory_order_acquire)) std::this_thread::yield();
        try {
          for (uint64_t first = t * per_thread; first < (t + 1) * per_thread; first += cell.batch) {
            for (size_t j = 0; j < cell.batch; ++j) {
              keys[j] = prefix + std::to_string(first + j);
              slices[j] = {Slot(memory, cell, first + j), cell.object_bytes};
            }
            op(t, keys, slices);
          }
        } catch (const std::exception& e) {
          errors[t] = e.what();
        }
      });
    }
    while (ready.load() < o_.threads) std::this_thread::yield();
    double busy0 = MachineBusySeconds();
    auto t0 = Clock::now();
    go.store(true, std::memory_order_release);
    for (std::thread& th : threads) th.join();
    Phase p;
    p.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    double busy1 = MachineBusySeconds();
    if (busy0 >= 0 && busy1 >= busy0) p.cpu_seconds = busy1 - busy0;
    for (const std::string& e : errors) {
      if (!e.empty()) throw std::runtime_error(e);
    }
    return p;
  }

  // --verify: every byte of each object just read, against what was put.
  void Check(const char* system, const std::vector<std::string>& keys,
             const std::vector<Slice>& got) {
    if (!o_.verify) return;
    for (size_t j = 0; j < keys.size(); ++j) {
      const uint8_t* want = src_.data() + (static_cast<uint8_t*>(got[j].data) - dst_.data());
      if (std::memcmp(want, got[j].data, got[j].size) != 0) {
        throw std::runtime_error(std::string(system) + ": WRONG bytes read for " + keys[j]);
      }
      checked_bytes_ += got[j].size;
    }
  }

  // Without --verify: each object's index and its last byte, after the round.
  void CheckIndexes(const char* system, const Cell& cell, uint64_t objects) {
    for (uint64_t i = 0; i < objects; ++i) {
      const uint8_t* got = Slot(dst_, cell, i);
      const uint8_t* want = Slot(src_, cell, i);
      if (std::memcmp(got, want, 8) != 0 ||
          got[cell.object_bytes - 1] != want[cell.object_bytes - 1]) {
        throw std::runtime_error(std::string(system) + ": WRONG bytes read for object " +
                                 std::to_string(i) + " of " + FormatSize(cell.object_bytes));
      }
    }
  }

  const Options& o_;
  Arena& src_;
  Arena& dst_;
  Watchdog& watchdog_;
  std::atomic<uint64_t> checked_bytes_{0};
};

Arena MakeArena(uint64_t bytes, uint64_t seed) {
  kvcached::Result<Arena> a = Arena::Create(bytes, seed);
  if (!a.ok()) throw std::runtime_error(a.status().message());
  return std::move(a).value();
}

std::string Rate(uint64_t objects, uint64_t object_bytes, const Best& b) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%7.3f GB/s %8.0f/s",
                static_cast<double>(objects * object_bytes) / b.seconds / 1e9,
                static_cast<double>(objects) / b.seconds);
  return buf;
}

// The machine's busy CPU seconds per GB moved in a best round ("-" when
// /proc/stat could not be read). The "1.5x" column is the most CPU per GB a
// system may spend to move 1.5 times Redis's rate with every core of this
// machine busy: a system spending more cannot reach it here.
std::string CpuPerGB(uint64_t bytes, const Best& b) {
  if (b.cpu_seconds < 0) return "-";
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", b.cpu_seconds / (static_cast<double>(bytes) / 1e9));
  return buf;
}

// `tcp_ceiling`: one loopback stream; `tcp_all`: o.threads streams at once,
// the most any system copying bytes through loopback TCP moves here with
// that many clients. Its ratio to Redis's rate (last column) is how far
// ahead of Redis the machine lets anyone be in that row.
void PrintTable(const Options& o, const std::vector<CellResult>& results, double tcp_ceiling,
                double tcp_all) {
  std::printf("\n%-8s %-5s %-3s  %-26s %-26s %s\n", "object", "batch", "op", "kvcached", "Redis",
              ("kvcached/Redis  kvcached/TCP  TCPx" + std::to_string(o.threads) +
               "/Redis  CPU s/GB: kvcached  Redis  1.5x")
                  .c_str());
  const double cores = static_cast<double>(std::max(1u, std::thread::hardware_concurrency()));
  for (size_t i = 0; i < o.cells.size(); ++i) {
    const CellResult& r = results[i];
    const Cell& c = o.cells[i];
    if (r.objects == 0) {
      std::printf("%-8s %-5zu skipped: --bytes holds no whole batch per thread\n",
                  FormatSize(c.object_bytes).c_str(), c.batch);
      continue;
    }
    for (int op = 0; op < 2; ++op) {
      const std::vector<Best>& best = op == 0 ? r.put : r.get;
      double k = static_cast<double>(r.objects * c.object_bytes) / best[0].seconds / 1e9;
      double redis = static_cast<double>(r.objects * c.object_bytes) / best[1].seconds / 1e9;
      std::printf("%-8s %-5zu %-3s  %-26s %-26s %13.2fx %12.0f%% %11.2fx %18s %6s %5.3f\n",
                  FormatSize(c.object_bytes).c_str(), c.batch, op == 0 ? "put" : "get",
                  Rate(r.objects, c.object_bytes, best[0]).c_str(),
                  Rate(r.objects, c.object_bytes, best[1]).c_str(),
                  best[1].seconds / best[0].seconds, 100 * k / tcp_ceiling, tcp_all / redis,
                  CpuPerGB(r.objects * c.object_bytes, best[0]).c_str(),
                  CpuPerGB(r.objects * c.object_bytes, best[1]).c_str(), cores / (1.5 * redis));
    }
  }
}

}  // namespace

int main(int argc, char** argv) {
  Options o = ParseArgs(argc, argv);
  std::setvbuf(stdout, nullptr, _IOLBF, 0);  // lines in order with stderr's
  signal(SIGPIPE, SIG_IGN);
  spdlog::set_level(spdlog::level::warn);  // the client library's info lines would split the table
  if (access(o.bin.c_str(), X_OK) != 0) {
    std::fprintf(stderr, "FAILED: no kvcached binary at %s (use --bin or KVCACHED_BIN)\n",
                 o.bin.c_str());
    return 1;
  }
  std::string redis = FindProgram(o.redis);
  if (redis.empty()) {
    std::fprintf(stderr,
                 "FAILED: no %s (install Debian's package: apt-get install redis-server; or "
                 "give --redis-server PATH)\n",
                 o.redis.c_str());
    return 1;
  }
  uint64_t arena_bytes = 0;
  for (const Cell& c : o.cells)
    arena_bytes = std::max(arena_bytes, o.bytes / c.object_bytes * c.object_bytes);
  char dir_template[] = "/tmp/kvcached-vs-redis-XXXXXX";
  if (mkdtemp(dir_template) == nullptr) {
    std::perror("mkdtemp");
    return 1;
  }
  const std::string dir = dir_template;
  int status = 0;
  try {
    Result<double> tcp = MeasureLoopbackTcpGBps();
    if (!tcp.ok()) throw std::runtime_error(tcp.status().message());
    Result<double> tcp_all = MeasureLoopbackTcpGBps(1.0, 3, o.threads);
    if (!tcp_all.ok()) throw std::runtime_error(tcp_all.status().message());
    std::printf("kvcached against Redis over loopback TCP: %s\n", VersionLine().c_str());
    Arena src = MakeArena(arena_bytes, 1);
    Arena dst = MakeArena(arena_bytes, 2);
    // The segment holds one cell's objects with room to spare.
    Daemon master(o.bin, dir, "master",
                  {"master", "--port", "0", "--admin-port", "0", "--no-meta"});
    Daemon store(o.bin, dir, "store",
                 {"store", "--master", master.Address("rpc"), "--segment-size",
                  std::to_string(std::max<uint64_t>(arena_bytes + arena_bytes / 4, 64 << 20)),
                  "--host-id", "bench-store"});
    uint16_t port = FreeLoopbackPort();
    Daemon redis_server(
        redis, dir, "redis",
        {"--port", std::to_string(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--supervised", "systemd", "--daemonize", "no", "--dir", dir, "--logfile", ""});
    ClientConfig config;
    config.master_server_addr = master.Address("rpc");
    config.local_hostname = "bench-client";
    config.transport = TransportMode::kTcp;
    config.checksums = o.checksums;
    if (o.tcp_streams > 0) config.tcp_streams = o.tcp_streams;
    KvcachedSystem kvcached_system(config, o.threads);
    RedisSystem redis_system(port, o.threads);
    std::string pong = RedisConnection(port).Simple("PING");
    std::printf(
        "ceiling loopback TCP: %.2f GB/s (1 stream over 127.0.0.1, 1 MiB writes, best of 3, "
        "congestion control %s); %.2f GB/s with %u such streams at once (TCPx%u)\n",
        *tcp, TcpCongestionControl().c_str(), *tcp_all, o.threads, o.threads);
    std::printf(
        "setup: kvcached master + 1 store (defaults, segment %s), clients with checksums "
        "%s, tcp_streams %u; %s (--save \"\" --appendonly no); %u threads per system, one client "
        "or "
        "connection each; %s of objects per cell, best of %d rounds%s\n",
        FormatSize(std::max<uint64_t>(arena_bytes + arena_bytes / 4, 64 << 20)).c_str(),
        o.checksums ? "on" : "off", config.tcp_streams, redis.c_str(), o.threads,
        FormatSize(o.bytes).c_str(), o.rounds,
        o.verify ? "; --verify: every byte of every get compared, inside the timing" : "");
    if (pong != "+PONG") throw std::runtime_error("Redis answered PING with '" + pong + "'");
    Watchdog watchdog(dir);
    Runner runner(o, src, dst, watchdog);
    std::vector<System*> systems = {&kvcached_system, &redis_system};
    std::vector<CellResult> results;
    for (size_t i = 0; i < o.cells.size(); ++i)
      results.push_back(runner.RunCell(o.cells[i], i, systems));
    watchdog.Enter("done", std::chrono::seconds(3600));
    PrintTable(o, results, *tcp, *tcp_all);
    ClientStats stats = kvcached_system.Stats();
    std::printf("\nkvcached transfers: %llu over TCP, %llu over shared memory, %llu over RDMA\n",
                static_cast<unsigned long long>(stats.tcp_transfers),
                static_cast<unsigned long long>(stats.shm_transfers),
                static_cast<unsigned long long>(stats.rdma_transfers));
    if (o.verify) {
      std::printf("verified: %s of gets compared byte for byte, 0 wrong\n",
                  FormatSize(runner.checked_bytes()).c_str());
    } else {
      std::printf("every get's object index and last byte checked, 0 wrong\n");
    }
    if (stats.shm_transfers + stats.rdma_transfers > 0) {
      throw std::runtime_error("kvcached moved bytes other than over TCP");
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "FAILED: %s\n", e.what());
    status = 1;
  }
  rmdir(dir.c_str());
  return status;
}
