#include "worker.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <memory>
#include <random>
#include <regex>
#include <stdexcept>
#include <thread>

#include "http_probe.h"
#include "kvcached/client.h"
#include "op_log.h"
#include "versioned_value.h"

namespace kvcached::chaos {
namespace {

using namespace std::chrono_literals;

std::string JoinSlots(const std::vector<uint32_t>& v) {
  std::string s;
  for (uint32_t x : v) s += (s.empty() ? "" : ",") + std::to_string(x);
  return s;
}

std::string JoinNames(const std::vector<std::string>& v) {
  std::string s;
  for (const std::string& x : v) s += (s.empty() ? "" : ",") + x;
  return s;
}

std::vector<std::string> Split(const std::string& s) {
  std::vector<std::string> out;
  size_t at = 0;
  while (at <= s.size() && !s.empty()) {
    size_t comma = s.find(',', at);
    if (comma == std::string::npos) comma = s.size();
    out.push_back(s.substr(at, comma - at));
    at = comma + 1;
  }
  return out;
}

// Removal outcomes after which a put of the key stores the new version:
// the key is absent, or pending (a stale pending put is taken over).
bool Puttable(ErrorCode c) {
  return c == ErrorCode::OK || c == ErrorCode::OBJECT_NOT_FOUND ||
         c == ErrorCode::REPLICA_IS_NOT_READY;
}

class WorkerLoop {
 public:
  WorkerLoop(const WorkerOptions& o, Client& client, OpLog& log)
      : o_(o),
        client_(client),
        log_(log),
        rng_(o.seed * 1000003 + o.slot * 7919 + o.incarnation),
        next_version_(o.keys, 1),
        last_read_ns_(o.keys, 0),
        buffers_(8) {
    for (auto& b : buffers_) b.resize(o.max_value_bytes);
  }

  // Continues the version numbers of the slot's earlier incarnations: a
  // version that a killed worker may have written is never reused.
  void Replay() {
    uint64_t offset = 0;
    for (const OpRecord& r : OpLog::ReadFrom(o_.log_path, offset)) {
      if (!IsWriteOfValue(r.kind) || r.phase != OpPhase::kBegin) continue;
      uint32_t index = r.key % OpLog::kKeysPerSlot;
      if (OpLog::SlotOf(r.key) == o_.slot && index < o_.keys) {
        next_version_[index] = std::max(next_version_[index], r.version + 1);
      }
    }
  }

  void Run() {
    uint64_t step = 0;
    const auto period = std::chrono::microseconds(1'000'000 / o_.steps_per_second);
    auto next = std::chrono::steady_clock::now();
    while (!Stopping()) {
      ++step;
      // Pacing only: nothing waits for anything here. Behind (stopped,
      // or a slow machine), it starts again from now rather than bursting.
      next += period;
      auto now = std::chrono::steady_clock::now();
      if (now > next + 20 * period) next = now;
      std::this_thread::sleep_until(next);
      if (o_.filler) {
        if (step % 4 == 0 && filled_ > 0) {
          ReadStep({OpLog::KeyId(o_.slot, static_cast<uint32_t>(rng_() % filled_))});
        } else {
          std::vector<uint32_t> batch;
          for (int i = 0; i < 2; ++i) {
            batch.push_back(static_cast<uint32_t>(cursor_++ % o_.keys));
          }
          filled_ = std::min<uint64_t>(o_.keys, std::max<uint64_t>(filled_, cursor_));
          WriteStep(batch);
        }
        continue;
      }
      unsigned dice = static_cast<unsigned>(rng_() % 100);
      if (dice < 45) {
        WriteStep(PickWriteKeys(1 + rng_() % 4));
      } else if (dice < 90 || o_.peer_slots.empty() || o_.shared_keys == 0) {
        std::vector<uint32_t> keys;
        for (uint32_t index : Sample(o_.keys, 1 + rng_() % 8)) {
          keys.push_back(OpLog::KeyId(o_.slot, index));
        }
        ReadStep(keys);
      } else {
        // Other workers' keys, being written meanwhile, over the other transport too.
        std::vector<uint32_t> keys;
        size_t n = 1 + rng_() % 2;
        for (size_t i = 0; i < n; ++i) {
          uint32_t slot = o_.peer_slots[rng_() % o_.peer_slots.size()];
          keys.push_back(OpLog::KeyId(slot, static_cast<uint32_t>(rng_() % o_.shared_keys)));
        }
        std::sort(keys.begin(), keys.end());
        keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
        ReadStep(keys);
      }
    }
  }

  // A worker reads every key of its slot one last time; a filler removes
  // what it put, so the pool is no longer full once it is gone.
  void Finish() {
    if (!o_.filler) {
      for (uint32_t a = 0; a < o_.keys; a += 8) {
        std::vector<uint32_t> keys;
        for (uint32_t i = a; i < std::min(o_.keys, a + 8); ++i) {
          keys.push_back(OpLog::KeyId(o_.slot, i));
        }
        ReadStep(keys);
      }
      return;
    }
    for (uint32_t i = 0; i < filled_; ++i) {
      for (int attempt = 0; attempt < 50; ++attempt) {
        ErrorCode c = Remove(i);
        if (c == ErrorCode::OK || c == ErrorCode::OBJECT_NOT_FOUND) break;
        // A lease or a pending put ends by itself: try again shortly.
        std::this_thread::sleep_for(100ms);
      }
    }
  }

 private:
  bool Stopping() const { return access(o_.stop_path.c_str(), F_OK) == 0; }

  // `n` distinct indexes below `count`.
  std::vector<uint32_t> Sample(uint32_t count, size_t n) {
    std::vector<uint32_t> all(count);
    for (uint32_t i = 0; i < count; ++i) all[i] = i;
    n = std::min<size_t>(n, count);
    for (size_t i = 0; i < n; ++i) std::swap(all[i], all[i + rng_() % (count - i)]);
    all.resize(n);
    return all;
  }

  // Keys not read lately, where possible: a read leases the object and
  // the lease refuses its removal.
  std::vector<uint32_t> PickWriteKeys(size_t n) {
    const int64_t now = OpLog::NowNs();
    std::vector<uint32_t> out;
    for (uint32_t index : Sample(o_.keys, 3 * n)) {
      if (out.size() == n) break;
      if (now - last_read_ns_[index] > 2 * int64_t{o_.lease_ms} * 1'000'000) {
        out.push_back(index);
      }
    }
    if (out.empty()) out.push_back(static_cast<uint32_t>(rng_() % o_.keys));
    return out;
  }

  OpRecord Begin(OpKind kind, uint32_t key, uint64_t version, uint64_t size) {
    OpRecord r;
    r.phase = OpPhase::kBegin;
    r.kind = kind;
    r.worker = o_.slot;
    r.incarnation = o_.incarnation;
    r.seq = seq_++;
    r.key = key;
    r.version = version;
    r.size = static_cast<uint32_t>(size);
    r.mono_ns = OpLog::NowNs();
    log_.Append(r);
    return r;
  }

  void End(OpRecord r, ErrorCode code, int64_t end_ns) {
    r.phase = OpPhase::kEnd;
    r.code = static_cast<int32_t>(code);
    r.mono_ns = end_ns;
    log_.Append(r);
  }

  ErrorCode Remove(uint32_t index) {
    uint32_t key = OpLog::KeyId(o_.slot, index);
    OpRecord r = Begin(OpKind::kRemove, key, 0, 0);
    Status st = client_.Remove(OpLog::KeyName(key));
    End(r, st.code(), OpLog::NowNs());
    return st.code();
  }

  uint64_t ValueSize() {
    if (o_.filler) return o_.max_value_bytes;
    if (rng_() % 16 == 0) return 64 * (1 + rng_() % (o_.max_value_bytes / 64));
    return 64 * (1 + rng_() % std::min<uint64_t>(256, o_.max_value_bytes / 64));
  }

  // A new version of each key: half the time an upsert (it replaces the
  // key's object), else a remove, then a put of each key whose removal
  // left it absent (or pending: a put takes a pending key over once it is
  // stale).
  void WriteStep(const std::vector<uint32_t>& indexes) {
    const bool upsert = !o_.filler && rng_() % 2 == 0;
    std::vector<uint32_t> todo;
    for (uint32_t index : indexes) {
      if (upsert) {
        todo.push_back(index);
        continue;
      }
      ErrorCode c = Remove(index);
      if (Puttable(c)) todo.push_back(index);
    }
    if (todo.empty()) return;
    std::vector<std::string> names;
    std::vector<Slice> values;
    std::vector<OpRecord> begins;
    ReplicateConfig rc;
    rc.preferred_segment = o_.segments[rng_() % o_.segments.size()];
    for (size_t i = 0; i < todo.size(); ++i) {
      uint32_t key = OpLog::KeyId(o_.slot, todo[i]);
      uint64_t version = next_version_[todo[i]]++;
      uint64_t size = ValueSize();
      names.push_back(OpLog::KeyName(key));
      VersionedValue::Fill(names.back(), version, buffers_[i].data(), size);
      values.push_back({buffers_[i].data(), size});
      begins.push_back(Begin(upsert ? OpKind::kUpsert : OpKind::kPut, key, version, size));
    }
    std::vector<Status> results;
    if (upsert) {
      results = client_.BatchUpsert(names, values, rc);
    } else if (todo.size() == 1) {
      results.push_back(client_.Put(names[0], values[0].data, values[0].size, rc));
    } else {
      results = client_.BatchPut(names, values, rc);
    }
    const int64_t end_ns = OpLog::NowNs();
    for (size_t i = 0; i < todo.size(); ++i) {
      if (results[i].ok()) begins[i].segment = Locate(names[i]);
      End(begins[i], results[i].code(), end_ns);
    }
  }

  void ReadStep(const std::vector<uint32_t>& keys) {
    std::vector<std::string> names;
    std::vector<Slice> slices;
    std::vector<OpRecord> begins;
    for (size_t i = 0; i < keys.size(); ++i) {
      names.push_back(OpLog::KeyName(keys[i]));
      slices.push_back({buffers_[i].data(), buffers_[i].size()});
      begins.push_back(Begin(OpKind::kGet, keys[i], 0, 0));
    }
    std::vector<Result<uint64_t>> results;
    if (keys.size() == 1) {
      results.push_back(client_.Get(names[0], slices[0].data, slices[0].size));
    } else {
      results = client_.BatchGet(names, slices);
    }
    const int64_t end_ns = OpLog::NowNs();
    for (size_t i = 0; i < keys.size(); ++i) {
      OpRecord& r = begins[i];
      if (OpLog::SlotOf(keys[i]) == o_.slot) last_read_ns_[keys[i] % OpLog::kKeysPerSlot] = end_ns;
      if (results[i].ok()) {
        r.size = static_cast<uint32_t>(*results[i]);
        VersionedValue::Check check = VersionedValue::Read(names[i], buffers_[i].data(), r.size);
        r.version = check.version;
        r.read = check.valid ? ReadResult::kValue : ReadResult::kWrong;
        if (!check.valid) {
          std::fprintf(stderr, "chaos worker %u.%u: WRONG bytes for '%s' (%u bytes): %s\n", o_.slot,
                       o_.incarnation, names[i].c_str(), r.size, check.why.c_str());
        }
      } else if (results[i].code() == ErrorCode::OBJECT_NOT_FOUND) {
        r.read = ReadResult::kAbsent;
      } else {
        r.read = ReadResult::kError;
      }
      End(r, results[i].code(), end_ns);
    }
  }

  // Where the master placed `name` (its admin API; no lease), as an index
  // into the segment list; -1 when it cannot say.
  int32_t Locate(const std::string& name) {
    auto answer = HttpProbe::Get(o_.admin, "/api/v1/key?key=" + name, 2s);
    if (!answer || answer->status != 200) return -1;
    std::smatch m;
    if (!std::regex_search(answer->body, m, std::regex("\"segment\":\"([^\"]*)\""))) return -1;
    for (size_t i = 0; i < o_.segments.size(); ++i) {
      if (o_.segments[i] == m[1]) return static_cast<int32_t>(i);
    }
    return -1;
  }

  const WorkerOptions& o_;
  Client& client_;
  OpLog& log_;
  std::mt19937_64 rng_;
  uint64_t seq_ = 0;
  std::vector<uint64_t> next_version_;  // per own key index
  std::vector<int64_t> last_read_ns_;   // per own key index
  std::vector<std::vector<uint8_t>> buffers_;
  uint64_t cursor_ = 0;  // filler: the next key index to write, modulo keys
  uint64_t filled_ = 0;  // filler: key indexes below this have been written
};

}  // namespace

std::vector<std::string> WorkerOptions::ToArgs() const {
  return {"--slot",        std::to_string(slot),
          "--incarnation", std::to_string(incarnation),
          "--keys",        std::to_string(keys),
          "--peer-slots",  JoinSlots(peer_slots),
          "--shared-keys", std::to_string(shared_keys),
          "--lease-ms",    std::to_string(lease_ms),
          "--pace",        std::to_string(steps_per_second),
          "--filler",      filler ? "1" : "0",
          "--transport",   shm ? "shm" : "tcp",
          "--checksums",   checksums ? "on" : "off",
          "--max-value",   std::to_string(max_value_bytes),
          "--seed",        std::to_string(seed),
          "--master",      master,
          "--admin",       admin,
          "--host-id",     host_id,
          "--segments",    JoinNames(segments),
          "--log",         log_path,
          "--stop",        stop_path};
}

WorkerOptions WorkerOptions::Parse(const std::vector<std::string>& args) {
  WorkerOptions o;
  if (args.size() % 2 != 0) throw std::invalid_argument("worker options come in pairs");
  for (size_t i = 0; i < args.size(); i += 2) {
    const std::string& k = args[i];
    const std::string& v = args[i + 1];
    auto number = [&] { return std::stoull(v); };
    if (k == "--slot") {
      o.slot = static_cast<uint32_t>(number());
    } else if (k == "--incarnation") {
      o.incarnation = static_cast<uint32_t>(number());
    } else if (k == "--keys") {
      o.keys = static_cast<uint32_t>(number());
    } else if (k == "--peer-slots") {
      for (const std::string& s : Split(v)) o.peer_slots.push_back(std::stoul(s));
    } else if (k == "--shared-keys") {
      o.shared_keys = static_cast<uint32_t>(number());
    } else if (k == "--lease-ms") {
      o.lease_ms = static_cast<uint32_t>(number());
    } else if (k == "--pace") {
      o.steps_per_second = static_cast<uint32_t>(number());
    } else if (k == "--filler") {
      o.filler = v == "1";
    } else if (k == "--transport") {
      o.shm = v == "shm";
    } else if (k == "--checksums") {
      o.checksums = v == "on";
    } else if (k == "--max-value") {
      o.max_value_bytes = number();
    } else if (k == "--seed") {
      o.seed = number();
    } else if (k == "--master") {
      o.master = v;
    } else if (k == "--admin") {
      o.admin = v;
    } else if (k == "--host-id") {
      o.host_id = v;
    } else if (k == "--segments") {
      o.segments = Split(v);
    } else if (k == "--log") {
      o.log_path = v;
    } else if (k == "--stop") {
      o.stop_path = v;
    } else {
      throw std::invalid_argument("unknown worker option " + k);
    }
  }
  if (o.keys == 0 || o.keys > OpLog::kKeysPerSlot || o.segments.empty() || o.log_path.empty() ||
      o.stop_path.empty() || o.master.empty() || o.max_value_bytes < 64 ||
      o.steps_per_second == 0 || o.shared_keys > o.keys || o.max_value_bytes % 64 != 0) {
    throw std::invalid_argument("worker options incomplete");
  }
  return o;
}

int RunWorker(const WorkerOptions& o) {
  ClientConfig config;
  config.master_server_addr = o.master;
  config.local_hostname = o.host_id;
  config.transport = o.shm ? TransportMode::kShm : TransportMode::kTcp;
  config.checksums = o.checksums;
  config.rpc_timeout = 2s;
  config.io_timeout = 2s;
  config.connect_timeout = 1s;
  config.copy_threads = 1;
  // The master may be restarting when a replacement worker starts.
  std::unique_ptr<Client> client;
  for (;;) {
    auto opened = Client::Open(config);
    if (opened.ok()) {
      client = std::move(opened).value();
      break;
    }
    if (access(o.stop_path.c_str(), F_OK) == 0) {
      std::fprintf(stderr, "chaos worker %u.%u: never opened: %s\n", o.slot, o.incarnation,
                   opened.status().ToString().c_str());
      return 3;
    }
    std::this_thread::sleep_for(100ms);
  }
  OpLog log(o.log_path);
  WorkerLoop loop(o, *client, log);
  loop.Replay();
  loop.Run();
  loop.Finish();
  client->Close();
  return 0;
}

}  // namespace kvcached::chaos
