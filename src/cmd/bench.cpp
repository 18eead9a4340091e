// `kvcached bench`: the load generator. With no cluster given it starts a
// master and a store in this process on loopback and measures them; with
// --master it measures a running pool through the client library, exactly
// as an inference server would use it. Prints a table (or --json) with
// throughput, latency quantiles per operation, errors by code and, with the
// baseline, this machine's memcpy and loopback TCP bandwidth measured in
// the same run; with --disk-path, the embedded store has a disk tier and
// the disk's O_DIRECT ceiling is measured too.
#include <stdlib.h>
#include <sys/statvfs.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <thread>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "bench/arena.h"
#include "bench/baseline.h"
#include "bench/disk_probe.h"
#include "bench/embedded_cluster.h"
#include "bench/tier_counters.h"
#include "bench/workload.h"
#include "client/client_settings.h"
#include "cmd/command.h"
#include "cmd/daemon.h"
#include "core/build_info.h"
#include "core/identity.h"
#include "core/units.h"
#include "kvcached/client.h"

namespace kvcached {
namespace {

constexpr uint64_t kMiB = uint64_t{1} << 20;
constexpr uint64_t kGiB = uint64_t{1} << 30;

// KV bytes of one page of one tensor-parallel rank, bf16, page_first
// layout: layers x page tokens x kv heads x head dim x 2 bytes, one object
// each for K and V; MLA models keep one latent object per page.
struct ModelPreset {
  const char* name;
  uint64_t bytes_per_token;  // per object
  unsigned objects_per_page;
};
constexpr ModelPreset kModels[] = {
    {"llama-3.1-8b", 32ull * 8 * 128 * 2, 2},    // 4 MiB at 64 tokens
    {"llama-3.1-70b", 80ull * 8 * 128 * 2, 2},   // 10 MiB at 64 tokens
    {"qwen2.5-7b", 28ull * 4 * 128 * 2, 2},      // 3.5 MiB at 64 tokens
    {"deepseek-v3", 61ull * (512 + 64) * 2, 1},  // MLA: ~4.3 MiB at 64 tokens
};

std::vector<OptionSpec> BenchOptions() {
  auto env = [](OptionSpec s, std::vector<std::string> extra) {
    s.extra_env = std::move(extra);
    return s;
  };
  std::vector<OptionSpec> o = {
      env(MakeOption("master", OptionKind::kString, "",
                     "Measure the pool of this master (host:port, or etcd://host:port[;...] "
                     "for the leader elected there) instead of an embedded one"),
          {"MOONCAKE_MASTER"}),
      ClientOptionSpec("cluster_id", "cluster-id",
                       "With an etcd:// --master: the masters' --cluster-id"),
      env(ClientOptionSpec("metadata_server", "metadata-server",
                           "Metadata service of that pool, as the client library takes it"),
          {"MOONCAKE_TE_META_DATA_SERVER"}),
      env(ClientOptionSpec("protocol", "protocol",
                           "Data-plane protocol: tcp, or rdma (RDMA to stores that serve it; the "
                           "embedded store then serves it too)"),
          {"MOONCAKE_PROTOCOL"}),
      env(ClientOptionSpec("rdma_devices", "device",
                           "RDMA devices (comma list or Mooncake's rank map; empty: every active "
                           "port), for the client and the embedded store"),
          {"MOONCAKE_DEVICE"}),
      ClientOptionSpec("rdma_gid_index", "gid-index",
                       "GID index on every RDMA port (default: chosen per port)"),
      env(ClientOptionSpec("local_hostname", "host-id",
                           "This host's identity; stores with the same one are reached by shared "
                           "memory (default: the hostname)"),
          {"MOONCAKE_LOCAL_HOSTNAME"}),
      ClientOptionSpec("transport", "transport",
                       "Data path: auto (shared memory to stores on this host, else RDMA with "
                       "--protocol rdma, else TCP), shm, tcp, or rdma (implies --protocol rdma)"),
      MakeOption("workload", OptionKind::kString, "put,get",
                 "What to run, one or a comma list run in turn: put, get, mixed, exist, sglang, "
                 "tiered (a working set several times DRAM put once, then read back once in "
                 "random order, every byte checked; hit rate and GB/s per tier)"),
      MakeOption("object-size", OptionKind::kString, "1MiB",
                 "Object size, or a comma list (objects take the sizes in turn)"),
      MakeOption("batch", OptionKind::kUInt, "16", "Keys per call (1: the single-key calls)", 1,
                 65536),
      MakeOption("threads", OptionKind::kUInt, "1", "Threads calling the one client", 1, 256),
      MakeOption("duration", OptionKind::kDuration, "3s",
                 "How long each workload is measured (a bare number is seconds)", 100, 86'400'000),
      MakeOption("ops", OptionKind::kUInt, "0",
                 "Stop each workload after this many calls instead of --duration (0: off)", 0),
      MakeOption("warmup", OptionKind::kDuration, "1s",
                 "The same load, unmeasured, before each workload (0: none)", 0, 3'600'000),
      MakeOption("keys", OptionKind::kUInt, "0",
                 "Objects written before the clock for get, mixed and exist; the key space of "
                 "sglang; the working set of tiered (0: half the embedded segment, or 256 MiB "
                 "worth on a pool; tiered: --working-set)",
                 0, 100'000'000),
      MakeOption("working-set", OptionKind::kSize, "",
                 "tiered: bytes of objects put and read back (default: 4 times the embedded "
                 "segment, or 1 GiB on a pool); --keys instead gives a number of objects"),
      MakeOption("read-ratio", OptionKind::kRatio, "0.9", "mixed: share of calls that are gets"),
      MakeOption("verify", OptionKind::kBool, "false",
                 "Check every byte of every object read (and every exist answer)"),
      MakeOption("model", OptionKind::kChoice, "",
                 "sglang: object sizes of this model's KV pages (bf16, one TP rank)"),
      MakeOption("page-size", OptionKind::kUInt, "64", "sglang with --model: tokens per page", 1,
                 4096),
      MakeOption("pages", OptionKind::kUInt, "128",
                 "sglang: pages per request (SGLang checks and fetches in chunks of 128)", 1, 4096),
      MakeOption("replicas", OptionKind::kUInt, "1", "Replicas per object put", 1, 16),
      MakeOption("no-checksums", OptionKind::kBool, "false",
                 "Do not checksum objects (for trusted paths; --verify still checks bytes)"),
      ClientOptionSpec("tcp_streams", "tcp-streams", "TCP connections one call uses per store"),
      ClientOptionSpec("copy_threads", "copy-threads",
                       "Threads that copy one call's shared-memory transfers, the caller included "
                       "(0: one per core, at most 4)"),
      MakeOption("segment-size", OptionKind::kSize, "",
                 "Embedded store's segment (default: a quarter of available memory, 256 MiB "
                 "to 1 GiB)",
                 16 * kMiB),
      MakeOption("store-threads", OptionKind::kUInt, "2", "Embedded store's I/O threads", 1, 64),
      MakeOption("disk-path", OptionKind::kPath, "",
                 "Embedded store: a disk tier (O_DIRECT, io_uring) in a fresh directory made under "
                 "this one and removed at the end; the disk's O_DIRECT write and read ceiling is "
                 "measured there first (unless --no-baseline)"),
      MakeOption("disk-size", OptionKind::kSize, "",
                 "Size of the embedded store's disk tier file (needed with --disk-path)",
                 16 * kMiB),
      MakeOption("master-admin", OptionKind::kString, "",
                 "With --master: the master's admin address (host:port), whose /metrics give "
                 "tiered its split of gets into DRAM hits and loads from disk"),
      MakeOption("store-admin", OptionKind::kString, "",
                 "With --master: the stores' admin addresses (host:port, comma list), whose "
                 "/metrics give tiered the bytes their disk tiers read and wrote"),
      MakeOption(
          "baseline", OptionKind::kBool, "false",
          "Measure memcpy and loopback TCP bandwidth first (default with the embedded pool)"),
      MakeOption("no-baseline", OptionKind::kBool, "false", "Do not measure the baseline"),
      MakeOption("max-error-rate", OptionKind::kRatio, "0",
                 "Exit 1 when a larger share of the objects handled failed"),
      MakeOption("json", OptionKind::kBool, "false",
                 "Print one JSON document instead of the table"),
      MakeOption("quiet", OptionKind::kBool, "false",
                 "No progress line (there is none when stderr is not a terminal either)"),
  };
  for (OptionSpec& s : o) {
    if (s.name == "model") {
      for (const ModelPreset& m : kModels) s.choices.push_back(m.name);
    }
  }
  for (OptionSpec& spec : DaemonOptions()) {
    if (spec.name == "token-file") o.push_back(std::move(spec));
  }
  return o;
}

std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = std::min(s.find(',', start), s.size());
    std::string item = s.substr(start, end - start);
    item.erase(0, item.find_first_not_of(' '));
    item.erase(item.find_last_not_of(' ') + 1);
    if (!item.empty()) out.push_back(item);
    start = end + 1;
  }
  return out;
}

uint64_t DefaultSegmentBytes() {
  std::ifstream in("/proc/meminfo");
  uint64_t avail_kib = 0;
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("MemAvailable:", 0) == 0)
      avail_kib = std::strtoull(line.c_str() + 13, nullptr, 10);
  }
  uint64_t quarter = avail_kib * 1024 / 4;
  return std::clamp<uint64_t>(quarter / (64 * kMiB) * (64 * kMiB), 256 * kMiB, kGiB);
}

std::string Thousands(double v) {
  std::string digits = std::to_string(static_cast<unsigned long long>(std::llround(v)));
  for (int i = static_cast<int>(digits.size()) - 3; i > 0; i -= 3) digits.insert(i, ",");
  return digits;
}

std::string Latency(uint64_t ns) {
  char buf[32];
  if (ns < 10'000) {
    std::snprintf(buf, sizeof buf, "%.1fus", static_cast<double>(ns) / 1e3);
  } else if (ns < 1'000'000) {
    std::snprintf(buf, sizeof buf, "%.0fus", static_cast<double>(ns) / 1e3);
  } else if (ns < 1'000'000'000) {
    std::snprintf(buf, sizeof buf, "%.2fms", static_cast<double>(ns) / 1e6);
  } else {
    std::snprintf(buf, sizeof buf, "%.2fs", static_cast<double>(ns) / 1e9);
  }
  return buf;
}

std::string SizesText(const std::vector<uint64_t>& sizes) {
  std::string out;
  for (uint64_t s : sizes) out += (out.empty() ? "" : ",") + FormatSize(s);
  return out;
}

struct Plan {
  bool embedded = true;
  std::vector<WorkloadKind> workloads;
  WorkloadOptions base;
  std::string model;
  bool baseline = true;
  double max_error_rate = 0;
  bool json = false;
  uint64_t segment_bytes = 0;
  unsigned store_threads = 2;
  std::string disk_path;  // embedded: the parent of the disk tier's directory; empty: no tier
  uint64_t disk_bytes = 0;
  bool disk_probe = false;
  uint64_t tiered_keys = 0;  // tiered: the working set's objects
  std::string master_admin;
  std::vector<std::string> store_admins;
  ClientConfig client;
  std::string transport_name;
};

// Turns the settings into a plan, or a message for a bad combination.
// Long because it is a list of independent checks, one per combination of
// flags, each with the message a user sees; they read best in one place.
Result<Plan> MakePlan(const Config& cfg) {
  auto bad = [](const std::string& m) { return Status(ErrorCode::INVALID_PARAMS, m); };
  Plan p;
  p.embedded = !cfg.IsGiven("master") || cfg.String("master").empty();
  p.json = cfg.Bool("json");
  for (const std::string& name : SplitCommas(cfg.String("workload"))) {
    Result<WorkloadKind> k = ParseWorkload(name);
    if (!k.ok()) return bad("--workload: " + k.status().message());
    p.workloads.push_back(*k);
  }
  if (p.workloads.empty()) return bad("--workload: name at least one workload");
  bool sglang = std::count(p.workloads.begin(), p.workloads.end(), WorkloadKind::kSglang) > 0;
  bool mixed = std::count(p.workloads.begin(), p.workloads.end(), WorkloadKind::kMixed) > 0;
  bool tiered = std::count(p.workloads.begin(), p.workloads.end(), WorkloadKind::kTiered) > 0;

  WorkloadOptions& w = p.base;
  if (cfg.IsGiven("model")) {
    if (!sglang) return bad("--model describes KV pages: it needs --workload sglang");
    if (cfg.IsGiven("object-size"))
      return bad("--model and --object-size both set the object size");
    for (const ModelPreset& m : kModels) {
      if (cfg.String("model") == m.name) {
        w.object_sizes = {m.bytes_per_token * cfg.Number("page-size")};
        w.objects_per_page = m.objects_per_page;
      }
    }
    p.model = cfg.String("model");
  } else {
    if (cfg.IsGiven("page-size")) return bad("--page-size sizes a --model's pages; give --model");
    w.object_sizes.clear();
    for (const std::string& s : SplitCommas(cfg.String("object-size"))) {
      Result<uint64_t> size = ParseSize(s);
      if (!size.ok() || *size == 0)
        return bad("--object-size: '" + s + "' is not a size like 64KiB or 4MiB");
      if (*size > 4 * kGiB)
        return bad("--object-size: " + s + " is over the 4 GiB an object may have");
      w.object_sizes.push_back(*size);
    }
    if (w.object_sizes.empty()) return bad("--object-size: give a size");
  }
  if (cfg.IsGiven("pages") && !sglang) return bad("--pages is for --workload sglang");
  if (cfg.IsGiven("read-ratio") && !mixed) return bad("--read-ratio is for --workload mixed");
  if (cfg.IsGiven("ops") && cfg.IsGiven("duration")) {
    return bad("--ops and --duration both say when to stop: give one");
  }
  if (cfg.Bool("baseline") && cfg.Bool("no-baseline")) return bad("--baseline and --no-baseline");
  if (!p.embedded) {
    for (const char* o : {"segment-size", "store-threads", "disk-path", "disk-size"}) {
      if (cfg.IsGiven(o)) {
        return bad(std::string("--") + o +
                   " sizes the embedded pool; it means nothing with --master");
      }
    }
  } else {
    for (const char* o : {"master-admin", "store-admin"}) {
      if (cfg.IsGiven(o)) {
        return bad(std::string("--") + o +
                   " names a running pool's admin port: it needs --master (the embedded pool's "
                   "counters are read in-process)");
      }
    }
  }
  if (cfg.IsGiven("disk-path") != cfg.IsGiven("disk-size")) {
    return bad(
        "--disk-path and --disk-size go together: the disk tier needs a directory and a "
        "size");
  }
  if (cfg.IsGiven("disk-path")) {
    p.disk_path = cfg.String("disk-path");
    p.disk_bytes = cfg.Number("disk-size");
    if (p.disk_path.empty()) return bad("--disk-path: give a directory");
  }
  if (cfg.IsGiven("working-set") && !tiered) return bad("--working-set is for --workload tiered");
  if (cfg.IsGiven("working-set") && cfg.IsGiven("keys") && cfg.Number("keys") > 0) {
    return bad("--working-set and --keys both size tiered's working set: give one");
  }
  p.master_admin = cfg.String("master-admin");
  p.store_admins = SplitCommas(cfg.String("store-admin"));
  w.batch = cfg.Number("batch");
  w.threads = static_cast<unsigned>(cfg.Number("threads"));
  w.duration = cfg.Duration("duration");
  w.ops = cfg.Number("ops");
  w.warmup = cfg.Duration("warmup");
  w.read_ratio = cfg.Ratio("read-ratio");
  w.verify = cfg.Bool("verify");
  w.pages = cfg.Number("pages");
  w.replicate.replica_num = static_cast<uint32_t>(cfg.Number("replicas"));
  w.remove_all_at_end = p.embedded;
  w.progress = !cfg.Bool("quiet") && !p.json && isatty(STDERR_FILENO) == 1;
  p.max_error_rate = cfg.Ratio("max-error-rate");
  p.baseline = cfg.Bool("no-baseline") ? false : (cfg.Bool("baseline") || p.embedded);
  p.disk_probe = !p.disk_path.empty() && !cfg.Bool("no-baseline");
  p.store_threads = static_cast<unsigned>(cfg.Number("store-threads"));
  p.segment_bytes =
      cfg.IsGiven("segment-size") ? cfg.Number("segment-size") : DefaultSegmentBytes();

  uint64_t mean = 0;
  for (uint64_t s : w.object_sizes) mean += s / w.object_sizes.size();
  uint64_t max_size = *std::max_element(w.object_sizes.begin(), w.object_sizes.end());
  if (p.embedded && max_size > p.segment_bytes / 4) {
    return bad("objects of " + FormatSize(max_size) + " do not fit the embedded segment of " +
               FormatSize(p.segment_bytes) + " four times over: raise --segment-size");
  }
  if (cfg.IsGiven("keys")) {
    w.keys = cfg.Number("keys");
  } else {
    uint64_t room = p.embedded ? p.segment_bytes / 2 : 256 * kMiB;
    w.keys = std::clamp<uint64_t>(room / std::max<uint64_t>(mean, 1), 1, 4096);
    if (sglang) w.keys = std::max<uint64_t>(w.keys, w.pages * w.objects_per_page);
    w.keys = std::max<uint64_t>(w.keys, w.batch);
  }
  if (tiered) {
    uint64_t working_set = cfg.IsGiven("working-set") ? cfg.Number("working-set")
                           : p.embedded               ? 4 * p.segment_bytes
                                                      : kGiB;
    p.tiered_keys =
        cfg.IsGiven("keys") && cfg.Number("keys") > 0
            ? cfg.Number("keys")
            : std::max<uint64_t>(1, (working_set + mean - 1) / std::max<uint64_t>(mean, 1));
    if (p.tiered_keys == 0) return bad("--keys: tiered needs at least one object");
  }
  for (WorkloadKind k : p.workloads) {
    if ((k == WorkloadKind::kGet || k == WorkloadKind::kMixed || k == WorkloadKind::kExist) &&
        w.keys < w.batch) {
      return bad("--keys (" + std::to_string(w.keys) + ") is smaller than --batch (" +
                 std::to_string(w.batch) + ")");
    }
  }

  // The client's settings, parsed by the client settings table
  // (client/client_settings.h) as every other reader of them does.
  ClientConfig& c = p.client;
  struct ClientFlag {
    const char* flag;
    const char* setting;
  };
  for (ClientFlag f :
       {ClientFlag{"protocol", "protocol"}, ClientFlag{"metadata-server", "metadata_server"},
        ClientFlag{"host-id", "local_hostname"}, ClientFlag{"master", "master_server_addr"},
        ClientFlag{"tcp-streams", "tcp_streams"}, ClientFlag{"copy-threads", "copy_threads"},
        ClientFlag{"transport", "transport"}, ClientFlag{"device", "rdma_devices"},
        ClientFlag{"gid-index", "rdma_gid_index"}, ClientFlag{"cluster-id", "cluster_id"}}) {
    if (!cfg.IsSet(f.flag)) continue;
    if (f.setting == std::string_view("master_server_addr") && p.embedded) continue;
    const ConfigValue& v = cfg.Get(f.flag);
    if (Status st = ApplyClientSetting(c, f.setting, v.raw, v.origin); !st.ok()) return st;
  }
  c.checksums = !cfg.Bool("no-checksums");
  p.transport_name = cfg.String("transport");
  if (c.transport == TransportMode::kRdma) {
    if (cfg.IsGiven("protocol") && c.protocol != "rdma") {
      return Status(ErrorCode::INVALID_PARAMS, "--transport rdma needs --protocol rdma");
    }
    c.protocol = "rdma";
  }
  return p;
}

nlohmann::json LatencyJson(const LatencyHistogram& h) {
  auto us = [](uint64_t ns) { return static_cast<double>(ns) / 1e3; };
  return {{"count", h.count()},          {"mean", h.mean_ns() / 1e3},
          {"p50", us(h.Quantile(0.5))},  {"p90", us(h.Quantile(0.9))},
          {"p99", us(h.Quantile(0.99))}, {"p99_9", us(h.Quantile(0.999))},
          {"max", us(h.max_ns())}};
}

double Pct(double v, double of) { return of > 0 ? 100.0 * v / of : 0; }

// The seconds an op's rates are over: its own pass (tiered), else the workload's.
double OpSeconds(const WorkloadResult& r, const OpStats& op) {
  return op.seconds > 0 ? op.seconds : r.seconds;
}

// What the tiered workload's report says, text and JSON alike. A figure
// whose counters are unknown is nullopt.
struct TieredFigures {
  uint64_t objects = 0, bytes = 0, mean_size = 0;
  uint64_t stored = 0, put_failed = 0;
  double put_seconds = 0, put_gb_per_s = 0, settle_seconds = 0;
  std::optional<uint64_t> demoted;
  std::optional<uint64_t> disk_write_bytes;
  std::optional<double> disk_write_gb_per_s, pct_of_disk_write;
  uint64_t hits = 0, misses = 0, wrong = 0;
  double hit_rate = 0;  // hits / the working set's objects
  double get_seconds = 0, get_gb_per_s = 0;
  std::optional<uint64_t> from_dram, from_disk, promote_no_room, promote_failures;
  // Bytes the disk tiers read in the get pass: their own count, or (only the
  // master's counters known) loads x the mean object size.
  std::optional<uint64_t> disk_read_bytes;
  bool disk_read_estimated = false;
  std::optional<double> disk_gb_per_s, pct_of_disk_read;
  std::optional<uint64_t> disk_reads;
  std::optional<double> disk_read_mean_ms;  // the tiers' own timing, per object
  // Where the get pass's time went: answers the master held for loads (and
  // their mean wait), and the cores this process kept busy.
  std::optional<uint64_t> tier_waits;
  std::optional<double> tier_wait_mean_ms;
  std::optional<uint64_t> get_demoted, get_clean_drops;
  // Objects the pool lost over both passes because a disk tier dropped their
  // records (full: its LRU made room; or corrupt).
  std::optional<uint64_t> disk_dropped;
  double put_cpu_cores = 0, get_cpu_cores = 0;
  std::string unknown_why;  // why the split is unknown, if it is
};

TieredFigures Figure(const WorkloadResult& r, const std::optional<DiskCeiling>& ceiling) {
  TieredFigures f;
  const WorkloadResult::Tiered& t = r.tiered;
  const OpStats& put = r.ops[0];
  const OpStats& get = r.ops[1];
  f.objects = t.working_set_objects;
  f.bytes = t.working_set_bytes;
  f.mean_size = f.objects == 0 ? 0 : f.bytes / f.objects;
  f.stored = put.objects;
  f.put_failed = put.error_count();
  f.put_seconds = t.put_seconds;
  f.settle_seconds = t.settle_seconds;
  f.put_gb_per_s = t.put_seconds > 0 ? static_cast<double>(put.bytes) / t.put_seconds / 1e9 : 0;
  f.hits = t.hits;
  f.misses = t.misses;
  f.wrong = t.wrong;
  f.hit_rate = f.objects == 0 ? 0 : static_cast<double>(f.hits) / static_cast<double>(f.objects);
  f.get_seconds = t.get_seconds;
  f.get_gb_per_s = t.get_seconds > 0 ? static_cast<double>(get.bytes) / t.get_seconds / 1e9 : 0;
  const TierCounters& pt = t.put_tier;
  const TierCounters& gt = t.get_tier;
  if (pt.master_known) f.demoted = pt.demoted;
  if (pt.disk_known) {
    double s = t.put_seconds + t.settle_seconds;
    f.disk_write_bytes = pt.disk_write_bytes;
    f.disk_write_gb_per_s = s > 0 ? static_cast<double>(pt.disk_write_bytes) / s / 1e9 : 0;
    if (ceiling) f.pct_of_disk_write = Pct(*f.disk_write_gb_per_s, ceiling->write_gb_per_s);
  }
  if (gt.master_known) {
    f.from_disk = std::min(gt.promoted, f.hits);
    f.from_dram = f.hits - *f.from_disk;
    f.promote_no_room = gt.promote_no_room;
    f.promote_failures = gt.promote_failures;
  }
  if (gt.disk_known) {
    f.disk_read_bytes = gt.disk_read_bytes;
    f.disk_reads = gt.disk_reads;
    if (gt.disk_reads > 0) {
      f.disk_read_mean_ms =
          static_cast<double>(gt.disk_read_ns) / static_cast<double>(gt.disk_reads) / 1e6;
    }
  } else if (gt.master_known && gt.promoted > 0) {
    f.disk_read_bytes = gt.promoted * f.mean_size;
    f.disk_read_estimated = true;
  }
  if (f.disk_read_bytes && t.get_seconds > 0) {
    f.disk_gb_per_s = static_cast<double>(*f.disk_read_bytes) / t.get_seconds / 1e9;
    if (ceiling) f.pct_of_disk_read = Pct(*f.disk_gb_per_s, ceiling->read_gb_per_s);
  }
  if (gt.master_known) {
    f.tier_waits = gt.tier_waits;
    if (gt.tier_waits > 0) {
      f.tier_wait_mean_ms =
          static_cast<double>(gt.tier_wait_ns) / static_cast<double>(gt.tier_waits) / 1e6;
    }
    f.get_demoted = gt.demoted;
    f.get_clean_drops = gt.clean_drops;
    if (pt.master_known) f.disk_dropped = pt.disk_dropped + gt.disk_dropped;
  }
  if (t.put_seconds > 0) f.put_cpu_cores = t.put_cpu_seconds / t.put_seconds;
  if (t.get_seconds > 0) f.get_cpu_cores = t.get_cpu_seconds / t.get_seconds;
  if (!gt.master_known || !gt.disk_known) f.unknown_why = gt.problem;
  return f;
}

// The share of the objects asked for that failed (misses are no failures).
double ErrorRate(const WorkloadResult& r) {
  return r.handled() == 0 ? 0 : static_cast<double>(r.errors()) / static_cast<double>(r.handled());
}

class Report {
 public:
  Report(const Plan& plan, const std::optional<Baseline>& baseline,
         const std::optional<DiskCeiling>& disk)
      : plan_(plan), baseline_(baseline), disk_(disk) {}

  void Header(const std::string& pool, const std::string& host_id) {
    if (plan_.json) return;
    const WorkloadOptions& w = plan_.base;
    std::printf("kvcached bench: %s\n", VersionLine().c_str());
    std::printf("pool: %s\n", pool.c_str());
    std::printf(
        "client: host id %s, transport %s, checksums %s, verify %s; %u thread%s, batch %zu, "
        "objects %s%s\n",
        host_id.c_str(), plan_.transport_name.c_str(), plan_.client.checksums ? "on" : "off",
        w.verify ? "on" : "off", w.threads, w.threads == 1 ? "" : "s", w.batch,
        SizesText(w.object_sizes).c_str(),
        plan_.model.empty() ? "" : (" (" + plan_.model + ")").c_str());
    bool timed = std::any_of(plan_.workloads.begin(), plan_.workloads.end(),
                             [](WorkloadKind k) { return k != WorkloadKind::kTiered; });
    if (!timed) {
      std::printf("tiered: %s objects put once, then each read back once in random order\n",
                  Thousands(static_cast<double>(plan_.tiered_keys)).c_str());
    } else if (w.ops > 0) {
      std::printf("each workload: %llu calls after %s of warm-up\n",
                  static_cast<unsigned long long>(w.ops), FormatDuration(w.warmup).c_str());
    } else {
      std::printf("each workload: %s measured after %s of warm-up\n",
                  FormatDuration(w.duration).c_str(), FormatDuration(w.warmup).c_str());
    }
    if (baseline_) {
      std::printf("baseline memcpy:       %6.2f GB/s  (%s)\n", baseline_->memcpy_gb_per_s,
                  baseline_->memcpy_method.c_str());
      std::printf("baseline loopback TCP: %6.2f GB/s  (%s)\n", baseline_->loopback_tcp_gb_per_s,
                  baseline_->loopback_tcp_method.c_str());
    }
    if (disk_) {
      std::printf(
          "ceiling disk O_DIRECT: write %.2f GB/s, read %.2f GB/s (%s, %s blocks, QD %u; %s)\n",
          disk_->write_gb_per_s, disk_->read_gb_per_s, plan_.disk_path.c_str(),
          FormatSize(disk_->block_bytes).c_str(), disk_->queue_depth, disk_->method.c_str());
    }
    std::printf("units: 1 GB = 1e9 bytes; sizes are binary (1 MiB = 1048576 bytes)\n\n");
    std::printf("%-8s %-7s %10s %11s %8s %8s %7s %8s %8s %8s %8s %8s %7s\n", "workload", "op",
                "calls/s", "objects/s", "GB/s", "%memcpy", "%TCP", "p50", "p90", "p99", "p99.9",
                "max", "errors");
    std::fflush(stdout);
  }

  void Add(const WorkloadResult& r) {
    results_.push_back(r);
    if (plan_.json) return;
    auto most_failed = [&](const char* what, uint64_t failed, uint64_t asked, uint64_t ok) {
      if (failed * 2 <= asked) return;
      std::printf(
          "%s: MOST %s FAILED: %s of %s; the figures below count only the %s that "
          "succeeded (errors by code below the table)\n",
          WorkloadName(r.kind), what, Thousands(static_cast<double>(failed)).c_str(),
          Thousands(static_cast<double>(asked)).c_str(),
          Thousands(static_cast<double>(ok)).c_str());
    };
    if (r.kind == WorkloadKind::kTiered) {  // each pass on its own; a get that missed failed
      most_failed("PUTS", r.ops[0].error_count(), r.ops[0].handled, r.ops[0].objects);
      most_failed("GETS", r.tiered.misses, r.ops[1].handled, r.tiered.hits);
    } else {
      most_failed("OBJECTS", r.errors(), r.handled(), r.objects());
    }
    bool first = true;
    for (const OpStats& op : r.ops) {
      const double seconds = OpSeconds(r, op);
      double calls_s = static_cast<double>(op.calls) / seconds;
      double objs_s = static_cast<double>(op.objects) / seconds;
      double gbps = static_cast<double>(op.bytes) / seconds / 1e9;
      bool moves = op.name == "put" || op.name == "get";
      std::string pm =
          moves && baseline_ ? Fmt("%.1f%%", Pct(gbps, baseline_->memcpy_gb_per_s)) : "-";
      std::string pt =
          moves && baseline_ ? Fmt("%.1f%%", Pct(gbps, baseline_->loopback_tcp_gb_per_s)) : "-";
      const LatencyHistogram& h = op.latency;
      std::printf("%-8s %-7s %10s %11s %8s %8s %7s %8s %8s %8s %8s %8s %7s\n",
                  first ? WorkloadName(r.kind) : "", op.name.c_str(), Fmt("%.1f", calls_s).c_str(),
                  op.name == "request" ? "-" : Thousands(objs_s).c_str(),
                  moves ? Fmt("%.3f", gbps).c_str() : "-", pm.c_str(), pt.c_str(),
                  Latency(h.Quantile(0.5)).c_str(), Latency(h.Quantile(0.9)).c_str(),
                  Latency(h.Quantile(0.99)).c_str(), Latency(h.Quantile(0.999)).c_str(),
                  Latency(h.max_ns()).c_str(),
                  Thousands(static_cast<double>(op.error_count())).c_str());
      first = false;
    }
    std::fflush(stdout);
  }

  // Everything after the table; returns the exit code.
  int Finish(const std::vector<std::string>& failures) {
    uint64_t wrong = 0;
    bool over_rate = false;
    std::vector<std::string> lines;
    for (const WorkloadResult& r : results_) {
      wrong += r.wrong_objects;
      double rate = ErrorRate(r);
      if (rate > plan_.max_error_rate) over_rate = true;
      std::string name = WorkloadName(r.kind);
      std::string moved = "moved by shared memory " + std::to_string(r.client.shm_transfers) +
                          " times, RDMA " + std::to_string(r.client.rdma_transfers) +
                          " times, TCP " + std::to_string(r.client.tcp_transfers) + " times";
      std::string failed =
          r.errors() == 0 ? "" : " (" + Thousands(static_cast<double>(r.errors())) + " failed)";
      lines.push_back(name + ": " + Thousands(static_cast<double>(r.objects())) + " objects" +
                      failed + " in " + Fmt("%.2f", r.seconds) + " s, " +
                      Fmt("%.3f", static_cast<double>(r.bytes()) / r.seconds / 1e9) + " GB/s; " +
                      moved);
      for (const OpStats& op : r.ops) {
        if (op.errors.empty() && op.misses == 0) continue;
        std::string l = name + " " + op.name + ":";
        if (op.misses > 0) {
          l += " " + Thousands(static_cast<double>(op.misses)) +
               (op.name == "exist" ? " answered not present"
                : op.name == "put" ? " were being stored by another request (REPLICA_IS_NOT_READY)"
                                   : " not found (evicted)");
        }
        for (const auto& [code, n] : op.errors) l += " " + code + " x" + std::to_string(n);
        lines.push_back(l);
      }
      if (r.kind == WorkloadKind::kSglang && r.pages_requested > 0) {
        lines.push_back(name + ": " +
                        Fmt("%.1f", Pct(static_cast<double>(r.pages_hit),
                                        static_cast<double>(r.pages_requested))) +
                        "% of " + Thousands(static_cast<double>(r.pages_requested)) +
                        " pages requested came from the pool");
      }
      if (plan_.base.verify && r.kind != WorkloadKind::kPut && r.kind != WorkloadKind::kTiered) {
        lines.push_back(name + ": verified " + Thousands(static_cast<double>(r.verified_objects)) +
                        " objects (warm-up included), " + std::to_string(r.wrong_objects) +
                        " wrong");
      }
      if (r.kind == WorkloadKind::kTiered) TieredLines(r, lines);
      for (const std::string& e : r.wrong_examples) lines.push_back(name + ": WRONG: " + e);
      if (rate > plan_.max_error_rate) {
        lines.push_back(name + ": " + Fmt("%.4f", rate) +
                        " of the objects failed, over --max-error-rate " +
                        Fmt("%g", plan_.max_error_rate));
      }
      if (r.kind == WorkloadKind::kGet && !r.ops.empty() &&
          r.ops[0].errors.count("OBJECT_NOT_FOUND")) {
        lines.push_back(name +
                        ": note: keys written before the clock were evicted: the pool holds "
                        "fewer than --keys (" +
                        std::to_string(plan_.base.keys) +
                        ") objects of this size; give a smaller --keys");
      }
      for (const std::string& n : r.notes) lines.push_back(name + ": note: " + n);
    }
    bool ok = failures.empty() && wrong == 0 && !over_rate;
    if (plan_.json) {
      std::printf("%s\n", Json(ok, failures).dump(2).c_str());
    } else {
      std::printf("\n");
      for (const std::string& l : lines) std::printf("%s\n", l.c_str());
      for (const std::string& f : failures) std::printf("FAILED: %s\n", f.c_str());
      if (wrong > 0)
        std::printf("FAILED: %llu objects read back wrong\n",
                    static_cast<unsigned long long>(wrong));
      std::printf("%s\n", ok ? "ok" : "FAILED");
    }
    std::fflush(stdout);
    return ok ? kExitOk : kExitFailure;
  }

 private:
  template <typename... Args>
  static std::string Fmt(const char* f, Args... args) {
    char buf[128];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
  }

  // tiered's lines below the table: the working set, the put pass and the
  // demotions it caused, the get pass's hits and misses, and the split of
  // its gets and GB/s between DRAM and disk next to the disk's ceiling.
  void TieredLines(const WorkloadResult& r, std::vector<std::string>& lines) const {
    const TieredFigures f = Figure(r, disk_);
    auto n = [](uint64_t v) { return Thousands(static_cast<double>(v)); };
    auto gb = [](uint64_t v) { return Fmt("%.2f GB", static_cast<double>(v) / 1e9); };
    std::string ws = "tiered: working set " + n(f.objects) + " objects, " + FormatSize(f.bytes);
    if (plan_.embedded) {
      ws += Fmt(" (%.1fx the DRAM segment of ",
                static_cast<double>(f.bytes) / static_cast<double>(plan_.segment_bytes)) +
            FormatSize(plan_.segment_bytes) +
            (plan_.disk_path.empty() ? "; no disk tier)"
                                     : ", disk tier " + FormatSize(plan_.disk_bytes) + ")");
    }
    lines.push_back(ws);
    std::string put = "tiered put: " + n(f.stored) + " stored, " + n(f.put_failed) +
                      " failed, in " + Fmt("%.2f s: %.3f GB/s", f.put_seconds, f.put_gb_per_s);
    if (f.demoted) put += "; " + n(*f.demoted) + " demoted to disk";
    if (f.disk_write_gb_per_s) {
      put += "; the disk tier wrote " + gb(*f.disk_write_bytes) +
             Fmt(" at %.3f GB/s", *f.disk_write_gb_per_s) +
             (f.pct_of_disk_write ? Fmt(" = %.1f%% of the O_DIRECT write ceiling (%.2f GB/s)",
                                        *f.pct_of_disk_write, disk_->write_gb_per_s)
                                  : "") +
             Fmt(", done %.2f s after the last put", f.settle_seconds);
    }
    lines.push_back(put);
    lines.push_back("tiered get: " + n(f.hits) + " hits (exact bytes), " + n(f.misses) +
                    " misses, " + n(f.wrong) + " wrong: hit rate " +
                    Fmt("%.2f%%", 100.0 * f.hit_rate) + " of " + n(f.objects) + " gets");
    std::string split =
        "tiered get: " + Fmt("%.3f GB/s overall in %.2f s", f.get_gb_per_s, f.get_seconds);
    if (f.from_disk) {
      double hits = static_cast<double>(std::max<uint64_t>(f.hits, 1));
      split += "; " + n(*f.from_dram) + " served from DRAM (" +
               Fmt("%.1f%%", Pct(static_cast<double>(*f.from_dram), hits)) + "), " +
               n(*f.from_disk) + " loaded from disk (" +
               Fmt("%.1f%%", Pct(static_cast<double>(*f.from_disk), hits)) + ")";
    } else {
      split += "; per-tier split: unknown" +
               (f.unknown_why.empty() ? std::string() : " (" + f.unknown_why + ")");
    }
    lines.push_back(split);
    if (f.disk_gb_per_s) {
      std::string d = "tiered get: disk tier read " + gb(*f.disk_read_bytes) +
                      (f.disk_read_estimated ? " (loads x mean object size)" : "") +
                      Fmt(" in %.2f s: %.3f GB/s", f.get_seconds, *f.disk_gb_per_s);
      if (f.pct_of_disk_read) {
        d += Fmt(" = %.1f%% of the O_DIRECT read ceiling (%.2f GB/s)", *f.pct_of_disk_read,
                 disk_->read_gb_per_s);
      } else {
        d += " (no disk ceiling measured)";
      }
      if (f.disk_read_mean_ms) {
        d += "; " + n(*f.disk_reads) + Fmt(" reads, %.1f ms each on average", *f.disk_read_mean_ms);
      }
      lines.push_back(d);
    }
    if (f.promote_no_room.value_or(0) > 0 || f.promote_failures.value_or(0) > 0) {
      lines.push_back("tiered get: " + n(*f.promote_no_room) +
                      " times a load found no free DRAM range (the get then waited for one, or "
                      "failed as a miss), " +
                      n(*f.promote_failures) + " loads failed (record gone or corrupt)");
    }
    if (f.disk_dropped.value_or(0) > 0) {
      lines.push_back("tiered: " + n(*f.disk_dropped) +
                      " objects were lost when a disk tier dropped their records (full, or "
                      "corrupt): a working set over the disk tier's size misses");
    }
    std::string where = "tiered get: ";
    if (f.tier_wait_mean_ms) {
      where += "the master held " + n(*f.tier_waits) +
               Fmt(" answers for loads, %.1f ms each on average; ", *f.tier_wait_mean_ms);
    }
    where += Fmt("this process (%s) kept %.2f of %u cores busy",
                 plan_.embedded ? "client, master and store" : "the client", f.get_cpu_cores,
                 std::max(1u, std::thread::hardware_concurrency()));
    lines.push_back(where);
  }

  nlohmann::json TieredJson(const WorkloadResult& r) const {
    const TieredFigures f = Figure(r, disk_);
    auto opt = [](const auto& v) { return v ? nlohmann::json(*v) : nlohmann::json(nullptr); };
    return {{"working_set_objects", f.objects},
            {"working_set_bytes", f.bytes},
            {"put",
             {{"stored", f.stored},
              {"failed", f.put_failed},
              {"seconds", f.put_seconds},
              {"gb_per_s", f.put_gb_per_s},
              {"demoted", opt(f.demoted)},
              {"disk_write_bytes", opt(f.disk_write_bytes)},
              {"disk_write_gb_per_s", opt(f.disk_write_gb_per_s)},
              {"pct_of_disk_write_ceiling", opt(f.pct_of_disk_write)},
              {"settle_seconds", f.settle_seconds},
              {"cpu_cores", f.put_cpu_cores}}},
            {"get",
             {{"hits", f.hits},
              {"misses", f.misses},
              {"wrong", f.wrong},
              {"hit_rate", f.hit_rate},
              {"seconds", f.get_seconds},
              {"gb_per_s", f.get_gb_per_s},
              {"from_dram", opt(f.from_dram)},
              {"from_disk", opt(f.from_disk)},
              {"disk_read_bytes", opt(f.disk_read_bytes)},
              {"disk_read_bytes_estimated", f.disk_read_estimated},
              {"disk_gb_per_s", opt(f.disk_gb_per_s)},
              {"pct_of_disk_read_ceiling", opt(f.pct_of_disk_read)},
              {"disk_reads", opt(f.disk_reads)},
              {"disk_read_mean_ms", opt(f.disk_read_mean_ms)},
              {"promote_no_room", opt(f.promote_no_room)},
              {"promote_failures", opt(f.promote_failures)},
              {"demoted", opt(f.get_demoted)},
              {"disk_dropped", opt(f.disk_dropped)},
              {"clean_drops", opt(f.get_clean_drops)},
              {"tier_waits", opt(f.tier_waits)},
              {"tier_wait_mean_ms", opt(f.tier_wait_mean_ms)},
              {"cpu_cores", f.get_cpu_cores}}},
            {"per_tier_unknown_because", f.unknown_why}};
  }

  nlohmann::json Json(bool ok, const std::vector<std::string>& failures) const {
    const WorkloadOptions& w = plan_.base;
    nlohmann::json settings = {{"mode", plan_.embedded ? "embedded" : "pool"},
                               {"transport", plan_.transport_name},
                               {"protocol", plan_.client.protocol},
                               {"threads", w.threads},
                               {"batch", w.batch},
                               {"object_sizes", w.object_sizes},
                               {"duration_s", static_cast<double>(w.duration.count()) / 1e3},
                               {"ops", w.ops},
                               {"warmup_s", static_cast<double>(w.warmup.count()) / 1e3},
                               {"keys", w.keys},
                               {"read_ratio", w.read_ratio},
                               {"verify", w.verify},
                               {"checksums", plan_.client.checksums},
                               {"replicas", w.replicate.replica_num},
                               {"pages", w.pages},
                               {"objects_per_page", w.objects_per_page},
                               {"model", plan_.model},
                               {"max_error_rate", plan_.max_error_rate}};
    if (plan_.embedded) {
      settings["segment_bytes"] = plan_.segment_bytes;
      settings["store_threads"] = plan_.store_threads;
      settings["disk_path"] = plan_.disk_path;
      settings["disk_bytes"] = plan_.disk_bytes;
    } else {
      settings["master"] = plan_.client.master_server_addr;
    }
    nlohmann::json baseline = nullptr;
    if (baseline_) {
      baseline = {{"memcpy_gb_per_s", baseline_->memcpy_gb_per_s},
                  {"memcpy_method", baseline_->memcpy_method},
                  {"loopback_tcp_gb_per_s", baseline_->loopback_tcp_gb_per_s},
                  {"loopback_tcp_method", baseline_->loopback_tcp_method}};
    }
    nlohmann::json disk = nullptr;
    if (disk_) {
      disk = {{"dir", disk_->dir},
              {"write_gb_per_s", disk_->write_gb_per_s},
              {"read_gb_per_s", disk_->read_gb_per_s},
              {"file_bytes", disk_->file_bytes},
              {"block_bytes", disk_->block_bytes},
              {"queue_depth", disk_->queue_depth},
              {"method", disk_->method}};
    }
    nlohmann::json workloads = nlohmann::json::array();
    for (const WorkloadResult& r : results_) {
      nlohmann::json ops = nlohmann::json::array();
      for (const OpStats& op : r.ops) {
        const double seconds = OpSeconds(r, op);
        double gbps = static_cast<double>(op.bytes) / seconds / 1e9;
        ops.push_back(
            {{"op", op.name},
             {"seconds", seconds},
             {"calls", op.calls},
             {"handled", op.handled},
             {"objects", op.objects},
             {"bytes", op.bytes},
             {"calls_per_s", static_cast<double>(op.calls) / seconds},
             {"objects_per_s", static_cast<double>(op.objects) / seconds},
             {"gb_per_s", gbps},
             {"pct_of_memcpy", baseline_ ? nlohmann::json(Pct(gbps, baseline_->memcpy_gb_per_s))
                                         : nlohmann::json(nullptr)},
             {"pct_of_loopback_tcp",
              baseline_ ? nlohmann::json(Pct(gbps, baseline_->loopback_tcp_gb_per_s))
                        : nlohmann::json(nullptr)},
             {"misses", op.misses},
             {"errors", op.errors},
             {"latency_us", LatencyJson(op.latency)}});
      }
      double gbps = static_cast<double>(r.bytes()) / r.seconds / 1e9;
      nlohmann::json one = {
          {"workload", WorkloadName(r.kind)},
          {"seconds", r.seconds},
          {"handled", r.handled()},
          {"objects", r.objects()},
          {"bytes", r.bytes()},
          {"objects_per_s", static_cast<double>(r.objects()) / r.seconds},
          {"gb_per_s", gbps},
          {"pct_of_memcpy", baseline_ ? nlohmann::json(Pct(gbps, baseline_->memcpy_gb_per_s))
                                      : nlohmann::json(nullptr)},
          {"pct_of_loopback_tcp", baseline_
                                      ? nlohmann::json(Pct(gbps, baseline_->loopback_tcp_gb_per_s))
                                      : nlohmann::json(nullptr)},
          {"errors", r.errors()},
          {"error_rate", ErrorRate(r)},
          {"prefilled_objects", r.prefilled_objects},
          {"ops", ops},
          {"verify",
           {{"enabled", w.verify},
            {"checked_objects", r.verified_objects},
            {"wrong_objects", r.wrong_objects},
            {"examples", r.wrong_examples}}},
          {"transfers",
           {{"shm", r.client.shm_transfers},
            {"rdma", r.client.rdma_transfers},
            {"tcp", r.client.tcp_transfers},
            {"tcp_connections_opened", r.client.tcp_connections_opened},
            {"checksum_mismatches", r.client.checksum_mismatches},
            {"lease_expirations", r.client.lease_expirations}}},
          {"notes", r.notes}};
      if (r.kind == WorkloadKind::kSglang) {
        one["sglang"] = {
            {"pages_requested", r.pages_requested},
            {"pages_hit", r.pages_hit},
            {"hit_ratio", r.pages_requested == 0 ? 0.0
                                                 : static_cast<double>(r.pages_hit) /
                                                       static_cast<double>(r.pages_requested)}};
      }
      if (r.kind == WorkloadKind::kTiered) one["tiered"] = TieredJson(r);
      workloads.push_back(std::move(one));
    }
    return {{"kvcached", VersionLine()},
            {"settings", settings},
            {"baseline", baseline},
            {"disk_ceiling", disk},
            {"workloads", workloads},
            {"failures", failures},
            {"ok", ok}};
  }

  const Plan& plan_;
  const std::optional<Baseline>& baseline_;
  const std::optional<DiskCeiling>& disk_;
  std::vector<WorkloadResult> results_;
};

std::string RunPrefix() { return "kvbench-" + RandomId("", 8).substr(0, 8); }

// A fresh directory under --disk-path for the embedded disk tier and the
// probe's scratch file, removed with everything in it (what was in
// --disk-path before is never touched). Destroy it after the cluster.
class ScratchDir {
 public:
  static Result<std::unique_ptr<ScratchDir>> Make(const std::string& parent) {
    std::string templ = parent + "/kvcached-bench-XXXXXX";
    if (::mkdtemp(templ.data()) == nullptr) {
      return Status(ErrorCode::INVALID_PARAMS, "--disk-path: cannot make a directory in " + parent +
                                                   ": " + std::strerror(errno));
    }
    return std::unique_ptr<ScratchDir>(new ScratchDir(std::move(templ)));
  }
  ~ScratchDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
    if (ec) spdlog::warn("could not remove {}: {}", path_, ec.message());
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  explicit ScratchDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

// The disk's O_DIRECT ceiling in `dir`: a 1 GiB scratch file, or half the
// free space when that is less (at least 256 MiB), at the disk tier's
// queue depth.
Result<DiskCeiling> ProbeDisk(const std::string& dir) {
  constexpr uint64_t kMinProbe = 256 * kMiB, kBlock = 4 * kMiB;
  struct statvfs vfs {};
  if (::statvfs(dir.c_str(), &vfs) != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "--disk-path: cannot stat " + dir + ": " + std::strerror(errno));
  }
  uint64_t free_bytes = static_cast<uint64_t>(vfs.f_bavail) * vfs.f_frsize;
  uint64_t size = std::min<uint64_t>(kGiB, free_bytes / 2 / kBlock * kBlock);
  if (size < kMinProbe) {
    return Status(ErrorCode::NO_AVAILABLE_HANDLE,
                  "--disk-path: " + dir + " has " + FormatSize(free_bytes) +
                      " free; the disk probe needs twice its 256 MiB scratch file "
                      "(--no-baseline skips it)");
  }
  DiskProbeOptions o;
  o.dir = dir;
  o.file_bytes = size;
  o.block_bytes = kBlock;
  o.queue_depth = DiskTierOptions{}.queue_depth;
  return MeasureDiskCeiling(o);
}

// tiered's view of the pool's tier counters: the embedded master's registry
// and store's disk tier, read in-process.
std::function<TierCounters()> EmbeddedTierCounters(const EmbeddedCluster& cluster) {
  return [&cluster] {
    TierCounters c;
    ReadMasterMetrics(cluster.MasterMetrics(), c);
    if (const DiskTier* tier = cluster.disk_tier()) {
      AddDiskTierStats(tier->stats(), c);
    } else if (c.problem.empty()) {
      c.problem = "the embedded store has no disk tier (--disk-path)";
    }
    return c;
  };
}

// The same for a running pool, from the /metrics of --master-admin and
// --store-admin (neither given: the split is unknown, and said why).
std::function<TierCounters()> PoolTierCounters(const Plan& plan) {
  if (plan.master_admin.empty() && plan.store_admins.empty()) {
    return [] {
      TierCounters none;
      none.problem = "give --master-admin, and --store-admin for the disks' own bytes";
      return none;
    };
  }
  return [master = plan.master_admin, stores = plan.store_admins, token = plan.client.token] {
    TierCounters c;
    if (master.empty()) {
      c.problem = "no --master-admin for the master's counters";
    } else if (Result<std::string> text = ScrapeMetrics(master, token); text.ok()) {
      ReadMasterMetrics(*text, c);
    } else {
      c.problem = "--master-admin: " + text.status().message();
    }
    bool all_stores = !stores.empty();
    for (const std::string& s : stores) {
      if (Result<std::string> text = ScrapeMetrics(s, token); text.ok()) {
        AddStoreMetrics(*text, c);
      } else {
        all_stores = false;
        if (c.problem.empty()) c.problem = "--store-admin: " + text.status().message();
      }
    }
    if (!all_stores) {
      c.disk_known = false;
      if (c.problem.empty()) c.problem = "no --store-admin for the disk tiers' own bytes";
    }
    return c;
  };
}

int RunBench(const CommandContext& ctx) {
  const Config& cfg = ctx.config;
  // Our own lines are the output; the library's and the embedded
  // daemons' info lines would only interleave with the table.
  if (!cfg.IsGiven("log-level")) spdlog::set_level(spdlog::level::warn);
  Result<Plan> planned = MakePlan(cfg);
  if (!planned.ok()) {
    std::fprintf(stderr, "kvcached bench: %s (see 'kvcached bench --help')\n",
                 planned.status().message().c_str());
    return kExitUsage;
  }
  Plan plan = std::move(planned).value();
  Result<std::optional<AuthToken>> token = LoadTokenOption(cfg);
  if (!token.ok()) {
    std::fprintf(stderr, "kvcached bench: %s\n", token.status().message().c_str());
    return ExitCode(token.code());
  }
  if (token->has_value()) plan.client.token = (*token)->secret();

  std::optional<Baseline> baseline;
  if (plan.baseline) {
    Result<Baseline> b = MeasureBaseline();
    if (!b.ok()) {
      std::fprintf(stderr, "kvcached bench: baseline: %s\n", b.status().message().c_str());
      return ExitCode(b.code());
    }
    baseline = *b;
  }

  // Declared before the cluster: removed after its disk tier has closed.
  std::unique_ptr<ScratchDir> disk_dir;
  std::optional<DiskCeiling> disk_ceiling;
  if (!plan.disk_path.empty()) {
    Result<std::unique_ptr<ScratchDir>> made = ScratchDir::Make(plan.disk_path);
    Status st = made.ok() ? CheckDirectIo(made.value()->path()) : made.status();
    if (made.ok()) disk_dir = std::move(made).value();
    if (st.ok() && plan.disk_probe) {
      Result<DiskCeiling> c = ProbeDisk(disk_dir->path());
      st = c.status();
      if (c.ok()) {
        disk_ceiling = *c;
        disk_ceiling->dir = plan.disk_path;  // the user's: ours is gone after the run
      }
    }
    if (!st.ok()) {
      std::fprintf(stderr, "kvcached bench: %s\n", st.message().c_str());
      return ExitCode(st.code());
    }
  }

  std::unique_ptr<EmbeddedCluster> cluster;
  std::string pool;
  if (plan.embedded) {
    EmbeddedClusterOptions eo;
    eo.segment_bytes = plan.segment_bytes;
    eo.store_threads = plan.store_threads;
    eo.host_id = plan.client.local_hostname;
    eo.token = *token;
    if (disk_dir) {
      eo.disk.dir = disk_dir->path();
      eo.disk.name = "kvcached-bench";
      eo.disk.capacity_bytes = plan.disk_bytes;
    }
    if (plan.client.protocol == "rdma") {
      eo.rdma = [devices = plan.client.device_names, gid = plan.client.rdma_gid_index](
                    uint8_t* base, uint64_t size) {
        return OpenRdmaTarget(devices, gid, base, size);
      };
    }
    Result<std::unique_ptr<EmbeddedCluster>> started = EmbeddedCluster::Start(eo);
    if (!started.ok()) {
      std::fprintf(stderr, "kvcached bench: %s\n", started.status().message().c_str());
      return ExitCode(started.code());
    }
    cluster = std::move(started).value();
    if (disk_dir && cluster->disk_tier() == nullptr) {
      std::fprintf(stderr, "kvcached bench: --disk-path: the embedded store's disk tier: %s\n",
                   cluster->disk_error().c_str());
      return ExitCode(ErrorCode::NO_AVAILABLE_HANDLE);
    }
    plan.client.master_server_addr = cluster->master_address();
    pool = "embedded: a master and a store in this process on 127.0.0.1 (segment " +
           FormatSize(cluster->segment_bytes()) + ", " + std::to_string(plan.store_threads) +
           " store threads, data tcp://" + cluster->data_address() +
           (disk_dir ? ", disk tier " + FormatSize(plan.disk_bytes) + " in " + disk_dir->path()
                     : std::string()) +
           ")";
  } else {
    pool = "master " + plan.client.master_server_addr;
  }

  Result<std::unique_ptr<Client>> opened = Client::Open(plan.client);
  if (!opened.ok()) {
    std::fprintf(stderr, "kvcached bench: cannot open a client of %s: %s\n",
                 plan.client.master_server_addr.c_str(), opened.status().ToString().c_str());
    return ExitCode(opened.code());
  }
  Client& client = **opened;

  Result<Arena> source = Arena::Create(SourceArenaBytes(plan.base), 7);
  if (!source.ok()) {
    std::fprintf(stderr, "kvcached bench: %s\n", source.status().message().c_str());
    return ExitCode(source.code());
  }
  if (Status st = client.RegisterBuffer(source->data(), source->size()); !st.ok()) {
    std::fprintf(stderr, "kvcached bench: RegisterBuffer: %s\n", st.ToString().c_str());
    return ExitCode(st.code());
  }

  Report report(plan, baseline, disk_ceiling);
  report.Header(pool, client.host_id());
  std::vector<std::string> failures;
  const std::string prefix = RunPrefix();
  for (size_t i = 0; i < plan.workloads.size(); ++i) {
    WorkloadOptions w = plan.base;
    w.kind = plan.workloads[i];
    w.key_prefix = prefix + "-" + std::to_string(i) + "-" + WorkloadName(w.kind);
    if (w.kind == WorkloadKind::kTiered) {
      w.keys = plan.tiered_keys;
      w.tier_counters = cluster ? EmbeddedTierCounters(*cluster) : PoolTierCounters(plan);
    }
    Result<WorkloadResult> r = RunWorkload(client, w, *source);
    if (!r.ok()) {
      failures.push_back(std::string(WorkloadName(w.kind)) + ": " + r.status().ToString());
      if (!plan.json)
        std::fprintf(stderr, "kvcached bench: %s: %s\n", WorkloadName(w.kind),
                     r.status().ToString().c_str());
      continue;
    }
    report.Add(*r);
  }
  (void)client.UnregisterBuffer(source->data());
  client.Close();
  if (cluster) cluster->Stop();
  return report.Finish(failures);
}

}  // namespace

Command BenchCommand() {
  Command c;
  c.name = "bench";
  c.summary = "Measure throughput and latency of a pool";
  c.description =
      "With no --master (and no MOONCAKE_MASTER) starts a master and a store in this process on "
      "loopback and measures them, next to this machine's memcpy and loopback TCP bandwidth "
      "measured in the same run. With --master it measures that pool as a client. Workloads: put "
      "(fresh keys), get (keys written first), mixed (--read-ratio), exist, sglang (what "
      "SGLang's HiCache does per request: batch exist, batch get of the hits into a registered "
      "buffer, batch put of the misses; --model sizes the pages), and tiered (a working set "
      "several times DRAM put once and read back once, every byte checked, reporting the hit rate "
      "and GB/s from DRAM and from disk; --disk-path gives the embedded store a disk tier and "
      "measures the disk's O_DIRECT ceiling). Prints a table, or --json. "
      "Exit status 1 when --verify found a wrong byte or more objects failed than "
      "--max-error-rate allows (default: any).";
  c.options = BenchOptions();
  c.run = RunBench;
  return c;
}

}  // namespace kvcached
