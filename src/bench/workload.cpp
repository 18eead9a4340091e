#include "bench/workload.h"

#include <sys/resource.h>

#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <memory>
#include <mutex>
#include <optional>
#include <random>
#include <thread>

#include "core/units.h"

namespace kvcached {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr size_t kMaxWrongExamples = 5;

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }
uint64_t Nanos(Clock::duration d) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(d).count());
}

// This process's CPU time so far, user and system.
double ProcessCpuSeconds() {
  rusage u{};
  if (getrusage(RUSAGE_SELF, &u) != 0) return 0;
  auto s = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec / 1e6; };
  return s(u.ru_utime) + s(u.ru_stime);
}

uint64_t Mix(uint64_t x) {  // splitmix64's finaliser
  x += 0x9E3779B97F4A7C15ull;
  x = (x ^ (x >> 30)) * 0xBF58476D1CE4E5B9ull;
  x = (x ^ (x >> 27)) * 0x94D049BB133111EBull;
  return x ^ (x >> 31);
}

uint64_t HashText(const std::string& s) {
  uint64_t h = 1469598103934665603ull;  // FNV-1a
  for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
  return h;
}

std::vector<std::string> OpNames(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kPut:
      return {"put"};
    case WorkloadKind::kGet:
      return {"get"};
    case WorkloadKind::kMixed:
      return {"get", "put"};
    case WorkloadKind::kExist:
      return {"exist"};
    case WorkloadKind::kSglang:
      return {"exist", "get", "put", "request"};
    case WorkloadKind::kTiered:
      return {"put", "get"};
  }
  return {};
}

uint64_t MaxSize(const WorkloadOptions& o) {
  return *std::max_element(o.object_sizes.begin(), o.object_sizes.end());
}

// What one worker thread owns.
struct Worker {
  std::vector<OpStats> ops;
  std::optional<Arena> buffer;  // get destinations (sglang: the host pool)
  uint64_t slot_cursor = 0;
  std::mt19937_64 rng;
  std::vector<std::string> keys;
  std::vector<uint64_t> ids;
  std::vector<Slice> slices;
  uint64_t verified = 0, wrong = 0;
  std::vector<std::string> wrong_examples;
  uint64_t pages_requested = 0, pages_hit = 0;
};

class Runner {
 public:
  Runner(Client& client, const WorkloadOptions& o, const Arena& source)
      : client_(client), o_(o), source_(source), salt_(Mix(HashText(o.key_prefix))) {}

  Result<WorkloadResult> Run() {
    if (Status st = Validate(); !st.ok()) return st;
    if (Status st = AllocateWorkers(); !st.ok()) {
      ReleaseWorkers();
      return st;
    }
    WorkloadResult result;
    result.kind = o_.kind;
    if (o_.kind == WorkloadKind::kTiered) {
      RunTiered(result);
      Cleanup(result);
      return result;
    }
    if (o_.kind == WorkloadKind::kGet || o_.kind == WorkloadKind::kMixed ||
        o_.kind == WorkloadKind::kExist) {
      if (Status st = Prefill(); !st.ok()) {
        Cleanup(result);
        return st;
      }
      result.prefilled_objects = o_.keys;
    }
    next_fresh_ = (o_.kind == WorkloadKind::kMixed) ? o_.keys : 0;
    if (o_.warmup.count() > 0) Phase(/*measured=*/false, result);
    ClientStats before = client_.stats();
    Phase(/*measured=*/true, result);
    ClientStats after = client_.stats();
    result.client = after - before;
    Cleanup(result);
    return result;
  }

 private:
  Status Validate() const {
    if (o_.object_sizes.empty() || o_.batch == 0 || o_.threads == 0) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "a workload needs object sizes, a batch and threads");
    }
    if (source_.size() < SourceArenaBytes(o_)) {
      return Status(ErrorCode::INVALID_PARAMS, "the source arena is too small");
    }
    if (o_.kind != WorkloadKind::kPut && o_.kind != WorkloadKind::kSglang &&
        o_.kind != WorkloadKind::kTiered && o_.keys < o_.batch) {
      return Status(ErrorCode::INVALID_PARAMS, "--keys (" + std::to_string(o_.keys) +
                                                   ") must be at least --batch (" +
                                                   std::to_string(o_.batch) + ")");
    }
    return Status::Ok();
  }

  Status AllocateWorkers() {
    const uint64_t max_size = MaxSize(o_);
    uint64_t buffer_bytes = o_.kind == WorkloadKind::kSglang
                                ? o_.pages * o_.objects_per_page * max_size
                                : std::max<uint64_t>(o_.batch * max_size, 64 * kMiB);
    workers_.resize(o_.threads);
    for (unsigned t = 0; t < o_.threads; ++t) {
      Worker& w = workers_[t];
      w.rng.seed(Mix(salt_ + t));
      Result<Arena> a = Arena::Create(buffer_bytes, 100 + t);
      if (!a.ok()) return Status(a.code(), "get buffers: " + a.status().message());
      w.buffer.emplace(std::move(a).value());
      // Gets land in registered memory, as an inference server's do.
      if (Status st = client_.RegisterBuffer(w.buffer->data(), w.buffer->size()); !st.ok()) {
        return Status(st.code(), "RegisterBuffer: " + st.message());
      }
    }
    return Status::Ok();
  }

  void ReleaseWorkers() {
    for (Worker& w : workers_) {
      if (w.buffer) (void)client_.UnregisterBuffer(w.buffer->data());
    }
  }

  // ---- object identity ----
  uint64_t SizeOf(uint64_t id) const { return o_.object_sizes[id % o_.object_sizes.size()]; }
  const uint8_t* ContentOf(uint64_t id, uint64_t size) const {
    uint64_t positions = (source_.size() - size) / 8 + 1;
    return source_.data() + (Mix(id ^ salt_) % positions) * 8;
  }
  std::string Key(uint64_t id) const { return o_.key_prefix + "/" + std::to_string(id); }
  std::string AbsentKey(uint64_t n) const { return o_.key_prefix + "/absent/" + std::to_string(n); }

  // SGLang's keys: a 64-hex page hash, the tensor-parallel rank, k or v.
  uint64_t SglangId(uint64_t doc, uint64_t page, unsigned kv) const {
    return (doc * o_.pages + page) * o_.objects_per_page + kv;
  }
  std::string SglangKey(uint64_t doc, uint64_t page, unsigned kv) const {
    char hex[65];
    uint64_t h = Mix(salt_ ^ Mix(doc * 0x100000001B3ull + page));
    for (int part = 0; part < 4; ++part) {
      std::snprintf(hex + 16 * part, 17, "%016llx", static_cast<unsigned long long>(h));
      h = Mix(h);
    }
    return std::string(hex, 64) + (kv == 0 ? "_0_k" : "_0_v");
  }
  uint64_t Documents() const {
    return std::max<uint64_t>(1, o_.keys / (o_.pages * o_.objects_per_page));
  }

  // ---- stats ----
  static void CountError(OpStats& op, const Status& st) {
    ++op.errors[std::string(ErrorName(st.code()))];
  }

  void CheckBytes(Worker& w, const std::string& key, uint64_t id, const uint8_t* got,
                  uint64_t got_size) {
    const uint64_t want_size = SizeOf(id);
    const uint8_t* want = ContentOf(id, want_size);
    ++w.verified;
    if (got_size == want_size && std::memcmp(got, want, want_size) == 0) return;
    ++w.wrong;
    if (w.wrong_examples.size() >= kMaxWrongExamples) return;
    std::string what = "get of '" + key + "' ";
    if (got_size != want_size) {
      what +=
          "returned " + std::to_string(got_size) + " bytes, expected " + std::to_string(want_size);
    } else {
      uint64_t first = 0, wrong = 0;
      for (uint64_t i = 0; i < want_size; ++i) {
        if (got[i] != want[i] && wrong++ == 0) first = i;
      }
      char detail[160];
      std::snprintf(
          detail, sizeof detail, "byte %llu is 0x%02x, expected 0x%02x (%llu of %llu wrong)",
          static_cast<unsigned long long>(first), got[first], want[first],
          static_cast<unsigned long long>(wrong), static_cast<unsigned long long>(want_size));
      what += detail;
    }
    w.wrong_examples.push_back(what);
  }

  // `batch` destination slots of the worker's buffer, rotating.
  uint8_t* NextSlots(Worker& w, size_t n) {
    const uint64_t slot = MaxSize(o_);
    const uint64_t slots = w.buffer->size() / slot;
    if (w.slot_cursor + n > slots) w.slot_cursor = 0;
    uint8_t* p = w.buffer->data() + w.slot_cursor * slot;
    w.slot_cursor += n;
    return p;
  }

  // ---- operations (one call each; return objects and bytes done) ----
  void PutIds(Worker& w, OpStats& op, bool measured) {
    w.keys.clear();
    w.slices.clear();
    for (uint64_t id : w.ids) {
      uint64_t size = SizeOf(id);
      w.keys.push_back(Key(id));
      w.slices.push_back({const_cast<uint8_t*>(ContentOf(id, size)), size});
    }
    PutKeys(w, op, measured);
  }

  void PutKeys(Worker& w, OpStats& op, bool measured) {
    auto t0 = Clock::now();
    std::vector<Status> results;
    if (w.keys.size() == 1) {
      results.push_back(client_.Put(w.keys[0], w.slices[0].data, w.slices[0].size, o_.replicate));
    } else {
      results = client_.BatchPut(w.keys, w.slices, o_.replicate);
    }
    auto t1 = Clock::now();
    uint64_t bytes = 0, moved = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) {
        bytes += w.slices[i].size;
        ++moved;
      } else if (results[i].code() == ErrorCode::REPLICA_IS_NOT_READY &&
                 o_.kind == WorkloadKind::kSglang) {
        // Two requests with the same prefix write the same pages, as in a
        // real server: one of them stores each page.
        ++op.misses;
      } else {
        CountError(op, results[i]);
      }
    }
    Account(op, t1 - t0, w.keys.size(), moved, bytes, measured);
  }

  // Gets w.ids into rotating slots; `miss_is_error`: a key that must exist.
  void GetIds(Worker& w, OpStats& op, bool measured, bool miss_is_error) {
    w.keys.clear();
    w.slices.clear();
    const uint64_t slot = MaxSize(o_);
    uint8_t* base = NextSlots(w, w.ids.size());
    for (size_t i = 0; i < w.ids.size(); ++i) {
      w.keys.push_back(Key(w.ids[i]));
      w.slices.push_back({base + i * slot, slot});
    }
    GetKeys(w, op, measured, miss_is_error, nullptr);
  }

  // Gets w.keys into w.slices; verifies against w.ids. `ok_out`, when given,
  // receives per key whether it arrived.
  void GetKeys(Worker& w, OpStats& op, bool measured, bool miss_is_error,
               std::vector<bool>* ok_out) {
    auto t0 = Clock::now();
    std::vector<Result<uint64_t>> results;
    if (w.keys.size() == 1) {
      results.push_back(client_.Get(w.keys[0], w.slices[0].data, w.slices[0].size));
    } else {
      results = client_.BatchGet(w.keys, w.slices);
    }
    auto t1 = Clock::now();
    uint64_t bytes = 0, moved = 0;
    if (ok_out) ok_out->assign(results.size(), false);
    for (size_t i = 0; i < results.size(); ++i) {
      if (results[i].ok()) {
        bytes += *results[i];
        ++moved;
        if (ok_out) (*ok_out)[i] = true;
        if (verify_) {
          CheckBytes(w, w.keys[i], w.ids[i], static_cast<const uint8_t*>(w.slices[i].data),
                     *results[i]);
        }
      } else if (results[i].code() == ErrorCode::OBJECT_NOT_FOUND && !miss_is_error) {
        ++op.misses;
      } else {
        CountError(op, results[i].status());
      }
    }
    Account(op, t1 - t0, w.keys.size(), moved, bytes, measured);
  }

  // One call: `handled` keys asked for, `moved` of them succeeded with
  // `bytes` between them. Only what succeeded counts as throughput.
  void Account(OpStats& op, Clock::duration took, uint64_t handled, uint64_t moved, uint64_t bytes,
               bool measured) {
    if (!measured) return;
    ++op.calls;
    op.handled += handled;
    op.objects += moved;
    op.bytes += bytes;
    op.latency.Record(Nanos(took));
    progress_objects_.fetch_add(moved, std::memory_order_relaxed);
    progress_bytes_.fetch_add(bytes, std::memory_order_relaxed);
  }

  // ---- the workloads, one call ----
  void OneCall(Worker& w, bool measured) {
    std::vector<OpStats>& ops = w.ops;
    switch (o_.kind) {
      case WorkloadKind::kPut:
        FreshIds(w);
        PutIds(w, ops[0], measured);
        return;
      case WorkloadKind::kGet:
        RandomIds(w);
        GetIds(w, ops[0], measured, /*miss_is_error=*/true);
        return;
      case WorkloadKind::kMixed:
        if (std::uniform_real_distribution<double>(0, 1)(w.rng) < o_.read_ratio) {
          RandomIds(w);
          GetIds(w, ops[0], measured, /*miss_is_error=*/false);
        } else {
          FreshIds(w);
          PutIds(w, ops[1], measured);
        }
        return;
      case WorkloadKind::kExist:
        ExistCall(w, ops[0], measured);
        return;
      case WorkloadKind::kSglang:
        SglangRequest(w, measured);
        return;
      case WorkloadKind::kTiered:  // runs its passes itself (RunTiered)
        return;
    }
  }

  void FreshIds(Worker& w) {
    uint64_t first = next_fresh_.fetch_add(o_.batch);
    w.ids.clear();
    for (size_t i = 0; i < o_.batch; ++i) w.ids.push_back(first + i);
  }
  // A run of consecutive keys from a random start: the pool sees them as
  // unrelated keys, and no two in one call are the same.
  void RandomIds(Worker& w) {
    uint64_t start = std::uniform_int_distribution<uint64_t>(0, o_.keys - 1)(w.rng);
    w.ids.clear();
    for (size_t i = 0; i < o_.batch; ++i) w.ids.push_back((start + i) % o_.keys);
  }

  void ExistCall(Worker& w, OpStats& op, bool measured) {
    w.keys.clear();
    std::vector<bool> present;
    for (size_t i = 0; i < o_.batch; ++i) {
      bool in = i % 2 == 0;
      uint64_t n = std::uniform_int_distribution<uint64_t>(0, o_.keys - 1)(w.rng);
      w.keys.push_back(in ? Key(n) : AbsentKey(n));
      present.push_back(in);
    }
    auto t0 = Clock::now();
    std::vector<Result<bool>> results;
    if (w.keys.size() == 1) {
      results.push_back(client_.Exist(w.keys[0]));
    } else {
      results = client_.BatchExist(w.keys);
    }
    auto t1 = Clock::now();
    uint64_t answered = 0;
    for (size_t i = 0; i < results.size(); ++i) {
      if (!results[i].ok()) {
        CountError(op, results[i].status());
        continue;
      }
      ++answered;
      if (!*results[i]) ++op.misses;
      if (o_.verify) {
        ++w.verified;
        if (!present[i] && *results[i]) {
          ++w.wrong;
          if (w.wrong_examples.size() < kMaxWrongExamples) {
            w.wrong_examples.push_back("exist of '" + w.keys[i] +
                                       "', never written, answered true");
          }
        }
      }
    }
    Account(op, t1 - t0, w.keys.size(), answered, 0, measured);
  }

  // exist over the request's objects -> get of the leading pages that are
  // all there -> put of the pages after them.
  void SglangRequest(Worker& w, bool measured) {
    OpStats& exist_op = w.ops[0];
    OpStats& get_op = w.ops[1];
    OpStats& put_op = w.ops[2];
    OpStats& request_op = w.ops[3];
    const unsigned opp = o_.objects_per_page;
    uint64_t doc = std::uniform_int_distribution<uint64_t>(0, Documents() - 1)(w.rng);
    size_t min_pages = std::max<size_t>(1, o_.pages / 4);
    size_t pages = std::uniform_int_distribution<size_t>(min_pages, o_.pages)(w.rng);

    auto t0 = Clock::now();
    std::vector<std::string> keys;
    for (size_t p = 0; p < pages; ++p) {
      for (unsigned kv = 0; kv < opp; ++kv) keys.push_back(SglangKey(doc, p, kv));
    }
    auto e0 = Clock::now();
    std::vector<Result<bool>> exists = client_.BatchExist(keys);
    auto e1 = Clock::now();
    size_t hit_pages = 0;
    bool leading = true;
    uint64_t answered = 0;
    for (size_t i = 0; i < exists.size(); ++i) {
      if (!exists[i].ok()) {
        CountError(exist_op, exists[i].status());
      } else if (++answered, !*exists[i]) {
        ++exist_op.misses;
      }
      if (leading && !(exists[i].ok() && *exists[i])) leading = false;
      if (leading && (i + 1) % opp == 0) hit_pages = (i + 1) / opp;
    }
    Account(exist_op, e1 - e0, keys.size(), answered, 0, measured);

    size_t got_pages = 0;
    if (hit_pages > 0) {
      const uint64_t slot = MaxSize(o_);
      w.keys.assign(keys.begin(), keys.begin() + static_cast<std::ptrdiff_t>(hit_pages * opp));
      w.ids.clear();
      w.slices.clear();
      for (size_t p = 0; p < hit_pages; ++p) {
        for (unsigned kv = 0; kv < opp; ++kv) {
          // The host pool: page p's objects in their own slots, page_first.
          w.ids.push_back(SglangId(doc, p, kv));
          w.slices.push_back({w.buffer->data() + (p * opp + kv) * slot, slot});
        }
      }
      std::vector<bool> arrived;
      GetKeys(w, get_op, measured, /*miss_is_error=*/false, &arrived);
      // A page counts only when every one of its objects arrived.
      while (got_pages < hit_pages &&
             std::all_of(arrived.begin() + static_cast<std::ptrdiff_t>(got_pages * opp),
                         arrived.begin() + static_cast<std::ptrdiff_t>((got_pages + 1) * opp),
                         [](bool b) { return b; })) {
        ++got_pages;
      }
    }
    if (got_pages < pages) {
      w.keys.clear();
      w.slices.clear();
      for (size_t p = got_pages; p < pages; ++p) {
        for (unsigned kv = 0; kv < opp; ++kv) {
          uint64_t id = SglangId(doc, p, kv);
          uint64_t size = SizeOf(id);
          w.keys.push_back(keys[p * opp + kv]);
          w.slices.push_back({const_cast<uint8_t*>(ContentOf(id, size)), size});
        }
      }
      PutKeys(w, put_op, measured);
    }
    auto t1 = Clock::now();
    Account(request_op, t1 - t0, 0, 0, 0, measured);
    if (measured) {
      w.pages_requested += pages;
      w.pages_hit += got_pages;
    }
  }

  // ---- phases ----
  Status Prefill() {
    std::vector<Status> failures(o_.threads);
    std::atomic<uint64_t> next{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o_.threads; ++t) {
      threads.emplace_back([&, t] {
        Worker& w = workers_[t];
        OpStats scratch;
        for (;;) {
          uint64_t first = next.fetch_add(o_.batch);
          if (first >= o_.keys) return;
          w.ids.clear();
          for (uint64_t id = first; id < std::min<uint64_t>(first + o_.batch, o_.keys); ++id) {
            w.ids.push_back(id);
          }
          w.keys.clear();
          w.slices.clear();
          for (uint64_t id : w.ids) {
            w.keys.push_back(Key(id));
            w.slices.push_back({const_cast<uint8_t*>(ContentOf(id, SizeOf(id))), SizeOf(id)});
          }
          std::vector<Status> results =
              w.keys.size() == 1 ? std::vector<Status>{client_.Put(w.keys[0], w.slices[0].data,
                                                                   w.slices[0].size, o_.replicate)}
                                 : client_.BatchPut(w.keys, w.slices, o_.replicate);
          for (size_t i = 0; i < results.size(); ++i) {
            if (!results[i].ok()) {
              failures[t] = Status(results[i].code(),
                                   "writing the " + std::to_string(o_.keys) +
                                       " keys before the clock starts: put of '" + w.keys[i] +
                                       "': " + results[i].message() +
                                       " (a smaller --keys, smaller objects or a bigger pool)");
              next = o_.keys;  // the others stop too
              return;
            }
          }
        }
      });
    }
    for (std::thread& t : threads) t.join();
    for (const Status& st : failures) {
      if (!st.ok()) return st;
    }
    return Status::Ok();
  }

  void Phase(bool measured, WorkloadResult& result) {
    const std::vector<std::string> names = OpNames(o_.kind);
    for (Worker& w : workers_) {
      w.ops.assign(names.size(), OpStats{});
      for (size_t i = 0; i < names.size(); ++i) w.ops[i].name = names[i];
    }
    calls_left_ = static_cast<int64_t>(o_.ops);
    const bool by_count = measured && o_.ops > 0;
    progress_objects_ = 0;
    progress_bytes_ = 0;
    // The clock stops the workers at the deadline (or waits for them to use
    // up --ops), with the progress line meanwhile.
    std::optional<Clock::duration> limit;
    if (!by_count) limit = measured ? o_.duration : o_.warmup;
    double seconds = RunWorkers(
        [&](Worker& w) {
          while (!stop_.load(std::memory_order_relaxed)) {
            if (by_count && calls_left_.fetch_sub(1) <= 0) break;
            OneCall(w, measured);
          }
        },
        limit, /*show=*/measured);
    if (!measured) return;
    result.seconds = seconds;
    MergeWorkers(names, result);
  }

  // The workers' counts, summed into `result` (one OpStats per name).
  void MergeWorkers(const std::vector<std::string>& names, WorkloadResult& result) {
    result.ops.assign(names.size(), OpStats{});
    for (size_t i = 0; i < names.size(); ++i) result.ops[i].name = names[i];
    for (Worker& w : workers_) {
      for (size_t i = 0; i < names.size(); ++i) result.ops[i].Merge(w.ops[i]);
      result.verified_objects += w.verified;
      result.wrong_objects += w.wrong;
      for (std::string& e : w.wrong_examples) {
        if (result.wrong_examples.size() < kMaxWrongExamples) result.wrong_examples.push_back(e);
      }
      result.pages_requested += w.pages_requested;
      result.pages_hit += w.pages_hit;
    }
  }

  // Wakes once a second for the progress line (when `show`) until every
  // worker is done (`running` 0, announced on `cv`) or the deadline.
  void WatchProgress(Clock::time_point start, std::optional<Clock::time_point> deadline, bool show,
                     const std::atomic<unsigned>& running, std::mutex& mu,
                     std::condition_variable& cv) {
    uint64_t last_objects = progress_objects_.load(), last_bytes = progress_bytes_.load();
    auto last = start;
    std::unique_lock<std::mutex> lock(mu);
    for (;;) {
      auto wake =
          std::min(last + std::chrono::seconds(1), deadline.value_or(Clock::time_point::max()));
      cv.wait_until(lock, wake, [&] { return running.load() == 0; });
      auto now = Clock::now();
      if (running.load() == 0) break;
      if (deadline && now >= *deadline) break;
      if (now - last < std::chrono::seconds(1)) continue;
      if (o_.progress && show) {
        uint64_t objs = progress_objects_.load(), bytes = progress_bytes_.load();
        double dt = Seconds(now - last);
        std::fprintf(stderr, "\r\033[K  %s  %5.1f s  %10.0f objects/s  %7.3f GB/s",
                     WorkloadName(o_.kind), Seconds(now - start),
                     static_cast<double>(objs - last_objects) / dt,
                     static_cast<double>(bytes - last_bytes) / dt / 1e9);
        std::fflush(stderr);
        last_objects = objs;
        last_bytes = bytes;
      }
      last = now;
    }
  }

  // ---- tiered ----
  // Put the working set, let the disk writes it caused settle, read every
  // object back once in random order; the tier counters are read around
  // each pass.
  void RunTiered(WorkloadResult& result) {
    const std::vector<std::string> names = OpNames(o_.kind);
    for (Worker& w : workers_) {
      w.ops.assign(names.size(), OpStats{});
      for (size_t i = 0; i < names.size(); ++i) w.ops[i].name = names[i];
    }
    WorkloadResult::Tiered& t = result.tiered;
    t.working_set_objects = o_.keys;
    for (uint64_t id = 0; id < o_.keys; ++id) t.working_set_bytes += SizeOf(id);
    std::vector<uint64_t> order(o_.keys);
    for (uint64_t id = 0; id < o_.keys; ++id) order[id] = id;

    ClientStats before = client_.stats();
    TierCounters c0 = Counters();
    double cpu0 = ProcessCpuSeconds();
    t.put_seconds = OnePass(order, [&](Worker& w) { PutIds(w, w.ops[0], /*measured=*/true); });
    t.put_cpu_seconds = ProcessCpuSeconds() - cpu0;
    TierCounters c1 = Settled(&t.settle_seconds);

    std::shuffle(order.begin(), order.end(), std::mt19937_64(salt_));
    double cpu1 = ProcessCpuSeconds();
    t.get_seconds = OnePass(
        order, [&](Worker& w) { GetIds(w, w.ops[1], /*measured=*/true, /*miss_is_error=*/false); });
    t.get_cpu_seconds = ProcessCpuSeconds() - cpu1;
    TierCounters c2 = Counters();
    result.client = client_.stats() - before;
    t.put_tier = c1 - c0;
    t.get_tier = c2 - c1;

    result.seconds = t.put_seconds + t.get_seconds;
    MergeWorkers(names, result);
    result.ops[0].seconds = t.put_seconds;
    result.ops[1].seconds = t.get_seconds;
    const OpStats& get = result.ops[1];
    t.wrong = result.wrong_objects;
    t.hits = get.objects - std::min(get.objects, t.wrong);
    t.misses = get.misses + get.error_count();
  }

  TierCounters Counters() const {
    if (o_.tier_counters) return o_.tier_counters();
    TierCounters none;
    none.problem = "no tier counters for this pool";
    return none;
  }

  // The counters once the demotions the put pass started have reached the
  // disk: the master has none in flight and neither its demotions nor the
  // tiers' writes changed for kQuiet (at most kLimit; unknown counters: at
  // once). `*busy_seconds`: when the last change was seen, after the call,
  // to within kPoll.
  TierCounters Settled(double* busy_seconds) const {
    constexpr auto kPoll = std::chrono::milliseconds(20);
    constexpr auto kQuiet = std::chrono::milliseconds(200);
    constexpr auto kLimit = std::chrono::seconds(30);
    const auto start = Clock::now();
    auto last_change = start;
    TierCounters c = Counters();
    while (c.master_known && Clock::now() - start < kLimit) {
      std::this_thread::sleep_for(kPoll);
      TierCounters next = Counters();
      bool changed = next.demoted != c.demoted || next.demote_failures != c.demote_failures ||
                     (next.disk_known && (next.disk_writes != c.disk_writes ||
                                          next.disk_write_errors != c.disk_write_errors));
      bool demoting = next.demotions > next.demoted + next.demote_failures;
      auto now = Clock::now();
      if (changed) last_change = now;
      c = std::move(next);
      if (!demoting && now - last_change >= kQuiet) break;
    }
    *busy_seconds = Seconds(last_change - start);
    return c;
  }

  // Every id of `order` once, in batches the threads take in turn; `call`
  // handles w.ids. Returns the seconds the pass took.
  template <typename Call>
  double OnePass(const std::vector<uint64_t>& order, Call call) {
    std::atomic<size_t> next{0};
    return RunWorkers(
        [&](Worker& w) {
          for (size_t first; (first = next.fetch_add(o_.batch)) < order.size();) {
            size_t end = std::min(first + o_.batch, order.size());
            w.ids.assign(order.begin() + static_cast<std::ptrdiff_t>(first),
                         order.begin() + static_cast<std::ptrdiff_t>(end));
            call(w);
          }
        },
        std::nullopt, /*show=*/true);
  }

  // Runs body(workers_[t]) on o_.threads threads, with the progress line
  // (when `show`), until they all return or `limit` has passed, when stop_
  // tells them to finish. Returns the seconds from the start to the last
  // one's end.
  template <typename Body>
  double RunWorkers(const Body& body, std::optional<Clock::duration> limit, bool show) {
    stop_ = false;
    std::atomic<unsigned> running{o_.threads};
    std::mutex mu;
    std::condition_variable cv;
    auto start = Clock::now();
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o_.threads; ++t) {
      threads.emplace_back([&, t] {
        body(workers_[t]);
        if (running.fetch_sub(1) == 1) {
          std::lock_guard<std::mutex> lock(mu);
          cv.notify_all();
        }
      });
    }
    WatchProgress(start, limit ? std::optional(start + *limit) : std::nullopt, show, running, mu,
                  cv);
    stop_ = true;
    for (std::thread& t : threads) t.join();
    double seconds = Seconds(Clock::now() - start);
    if (o_.progress && show) {
      std::fprintf(stderr, "\r\033[K");
      std::fflush(stderr);
    }
    return seconds;
  }

  // Takes away what the workload wrote, so the next one starts on an empty
  // pool (or, on a shared pool, leaves it as it was).
  void Cleanup(WorkloadResult& result) {
    ReleaseWorkers();
    if (o_.remove_all_at_end) {
      Result<uint64_t> removed = client_.RemoveAll(/*force=*/true);
      if (!removed.ok())
        result.notes.push_back("RemoveAll at the end: " + removed.status().ToString());
      return;
    }
    std::vector<std::string> keys;
    if (o_.kind == WorkloadKind::kSglang) {
      for (uint64_t d = 0; d < Documents(); ++d) {
        for (size_t p = 0; p < o_.pages; ++p) {
          for (unsigned kv = 0; kv < o_.objects_per_page; ++kv) keys.push_back(SglangKey(d, p, kv));
        }
      }
    } else {
      uint64_t end =
          std::max<uint64_t>(next_fresh_.load(), o_.kind == WorkloadKind::kPut ? 0 : o_.keys);
      for (uint64_t id = 0; id < end; ++id) keys.push_back(Key(id));
    }
    std::atomic<size_t> next{0};
    std::atomic<uint64_t> failed{0};
    std::vector<std::thread> threads;
    for (unsigned t = 0; t < o_.threads; ++t) {
      threads.emplace_back([&] {
        for (size_t i; (i = next.fetch_add(1)) < keys.size();) {
          Status st = client_.Remove(keys[i], /*force=*/true);
          if (!st.ok() && st.code() != ErrorCode::OBJECT_NOT_FOUND) ++failed;
        }
      });
    }
    for (std::thread& t : threads) t.join();
    if (failed > 0) {
      result.notes.push_back(std::to_string(failed.load()) + " of the " +
                             std::to_string(keys.size()) +
                             " keys written could not be removed at the end");
    }
  }

  Client& client_;
  const WorkloadOptions& o_;
  const Arena& source_;
  const uint64_t salt_;
  // tiered checks every byte it reads, --verify or not.
  const bool verify_ = o_.verify || o_.kind == WorkloadKind::kTiered;
  std::vector<Worker> workers_;
  std::atomic<bool> stop_{false};
  std::atomic<int64_t> calls_left_{0};
  std::atomic<uint64_t> next_fresh_{0};
  std::atomic<uint64_t> progress_objects_{0}, progress_bytes_{0};
};

}  // namespace

const char* WorkloadName(WorkloadKind kind) {
  switch (kind) {
    case WorkloadKind::kPut:
      return "put";
    case WorkloadKind::kGet:
      return "get";
    case WorkloadKind::kMixed:
      return "mixed";
    case WorkloadKind::kExist:
      return "exist";
    case WorkloadKind::kSglang:
      return "sglang";
    case WorkloadKind::kTiered:
      return "tiered";
  }
  return "?";
}

Result<WorkloadKind> ParseWorkload(const std::string& name) {
  for (WorkloadKind k : {WorkloadKind::kPut, WorkloadKind::kGet, WorkloadKind::kMixed,
                         WorkloadKind::kExist, WorkloadKind::kSglang, WorkloadKind::kTiered}) {
    if (name == WorkloadName(k)) return k;
  }
  return Status(ErrorCode::INVALID_PARAMS,
                "unknown workload '" + name + "' (put, get, mixed, exist, sglang or tiered)");
}

uint64_t OpStats::error_count() const {
  uint64_t n = 0;
  for (const auto& [code, count] : errors) n += count;
  return n;
}

void OpStats::Merge(const OpStats& other) {
  calls += other.calls;
  handled += other.handled;
  objects += other.objects;
  bytes += other.bytes;
  misses += other.misses;
  for (const auto& [code, count] : other.errors) errors[code] += count;
  latency.Merge(other.latency);
}

// sglang's exist calls ask about the same objects its gets and puts then
// move, so only those two count there.
uint64_t WorkloadResult::handled() const {
  uint64_t n = 0;
  for (const OpStats& op : ops) {
    if (kind != WorkloadKind::kSglang || op.name == "get" || op.name == "put") n += op.handled;
  }
  return n;
}
uint64_t WorkloadResult::objects() const {
  uint64_t n = 0;
  for (const OpStats& op : ops) {
    if (kind != WorkloadKind::kSglang || op.name == "get" || op.name == "put") n += op.objects;
  }
  return n;
}
uint64_t WorkloadResult::bytes() const {
  uint64_t n = 0;
  for (const OpStats& op : ops) n += op.bytes;
  return n;
}
uint64_t WorkloadResult::errors() const {
  uint64_t n = 0;
  for (const OpStats& op : ops) n += op.error_count();
  return n;
}

uint64_t SourceArenaBytes(const WorkloadOptions& options) {
  return std::max<uint64_t>(256 * kMiB, 4 * MaxSize(options));
}

Result<WorkloadResult> RunWorkload(Client& client, const WorkloadOptions& options,
                                   const Arena& source) {
  Runner runner(client, options, source);
  return runner.Run();
}

}  // namespace kvcached
