// `kvcached bench`: the load generator. With no cluster given it starts a
// master and a store in this process on loopback and measures them; with
// --master it measures a running pool through the client library, exactly
// as an inference server would use it. Prints a table (or --json) with
// throughput, latency quantiles per operation, errors by code and, with the
// baseline, this machine's memcpy and loopback TCP bandwidth measured in
// the same run.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <memory>
#include <optional>
#include <random>

#include <spdlog/spdlog.h>
#include <nlohmann/json.hpp>

#include "bench/arena.h"
#include "bench/baseline.h"
#include "bench/embedded_cluster.h"
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
                 "What to run, one or a comma list run in turn: put, get, mixed, exist, sglang"),
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
                 "sglang (0: half the embedded segment, or 256 MiB worth on a pool)",
                 0, 100'000'000),
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

bool Given(const Config& cfg, const std::string& name) {
  const ConfigValue& v = cfg.Get(name);
  return v.set && v.source != ConfigSource::kDefault;
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
  ClientConfig client;
  std::string transport_name;
};

// Turns the settings into a plan, or a message for a bad combination.
// Long because it is a list of independent checks, one per combination of
// flags, each with the message a user sees; they read best in one place.
Result<Plan> MakePlan(const Config& cfg) {
  auto bad = [](const std::string& m) { return Status(ErrorCode::INVALID_PARAMS, m); };
  Plan p;
  p.embedded = !Given(cfg, "master") || cfg.String("master").empty();
  p.json = cfg.Bool("json");
  for (const std::string& name : SplitCommas(cfg.String("workload"))) {
    Result<WorkloadKind> k = ParseWorkload(name);
    if (!k.ok()) return bad("--workload: " + k.status().message());
    p.workloads.push_back(*k);
  }
  if (p.workloads.empty()) return bad("--workload: name at least one workload");
  bool sglang = std::count(p.workloads.begin(), p.workloads.end(), WorkloadKind::kSglang) > 0;
  bool mixed = std::count(p.workloads.begin(), p.workloads.end(), WorkloadKind::kMixed) > 0;

  WorkloadOptions& w = p.base;
  if (Given(cfg, "model")) {
    if (!sglang) return bad("--model describes KV pages: it needs --workload sglang");
    if (Given(cfg, "object-size")) return bad("--model and --object-size both set the object size");
    for (const ModelPreset& m : kModels) {
      if (cfg.String("model") == m.name) {
        w.object_sizes = {m.bytes_per_token * cfg.Number("page-size")};
        w.objects_per_page = m.objects_per_page;
      }
    }
    p.model = cfg.String("model");
  } else {
    if (Given(cfg, "page-size")) return bad("--page-size sizes a --model's pages; give --model");
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
  if (Given(cfg, "pages") && !sglang) return bad("--pages is for --workload sglang");
  if (Given(cfg, "read-ratio") && !mixed) return bad("--read-ratio is for --workload mixed");
  if (Given(cfg, "ops") && Given(cfg, "duration")) {
    return bad("--ops and --duration both say when to stop: give one");
  }
  if (cfg.Bool("baseline") && cfg.Bool("no-baseline")) return bad("--baseline and --no-baseline");
  if (!p.embedded) {
    for (const char* o : {"segment-size", "store-threads"}) {
      if (Given(cfg, o)) {
        return bad(std::string("--") + o +
                   " sizes the embedded pool; it means nothing with --master");
      }
    }
  }
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
  p.store_threads = static_cast<unsigned>(cfg.Number("store-threads"));
  p.segment_bytes = Given(cfg, "segment-size") ? cfg.Number("segment-size") : DefaultSegmentBytes();

  uint64_t mean = 0;
  for (uint64_t s : w.object_sizes) mean += s / w.object_sizes.size();
  uint64_t max_size = *std::max_element(w.object_sizes.begin(), w.object_sizes.end());
  if (p.embedded && max_size > p.segment_bytes / 4) {
    return bad("objects of " + FormatSize(max_size) + " do not fit the embedded segment of " +
               FormatSize(p.segment_bytes) + " four times over: raise --segment-size");
  }
  if (Given(cfg, "keys")) {
    w.keys = cfg.Number("keys");
  } else {
    uint64_t room = p.embedded ? p.segment_bytes / 2 : 256 * kMiB;
    w.keys = std::clamp<uint64_t>(room / std::max<uint64_t>(mean, 1), 1, 4096);
    if (sglang) w.keys = std::max<uint64_t>(w.keys, w.pages * w.objects_per_page);
    w.keys = std::max<uint64_t>(w.keys, w.batch);
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
    if (Given(cfg, "protocol") && c.protocol != "rdma") {
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

// The share of the objects asked for that failed (misses are no failures).
double ErrorRate(const WorkloadResult& r) {
  return r.handled() == 0 ? 0 : static_cast<double>(r.errors()) / static_cast<double>(r.handled());
}

class Report {
 public:
  Report(const Plan& plan, const std::optional<Baseline>& baseline)
      : plan_(plan), baseline_(baseline) {}

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
    if (w.ops > 0) {
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
    std::printf("units: 1 GB = 1e9 bytes; sizes are binary (1 MiB = 1048576 bytes)\n\n");
    std::printf("%-8s %-7s %10s %11s %8s %8s %7s %8s %8s %8s %8s %8s %7s\n", "workload", "op",
                "calls/s", "objects/s", "GB/s", "%memcpy", "%TCP", "p50", "p90", "p99", "p99.9",
                "max", "errors");
    std::fflush(stdout);
  }

  void Add(const WorkloadResult& r) {
    results_.push_back(r);
    if (plan_.json) return;
    if (r.errors() * 2 > r.handled()) {
      std::printf(
          "%s: MOST OBJECTS FAILED: %s of %s; the figures below count only the %s that "
          "succeeded (errors by code below the table)\n",
          WorkloadName(r.kind), Thousands(static_cast<double>(r.errors())).c_str(),
          Thousands(static_cast<double>(r.handled())).c_str(),
          Thousands(static_cast<double>(r.objects())).c_str());
    }
    bool first = true;
    for (const OpStats& op : r.ops) {
      double calls_s = static_cast<double>(op.calls) / r.seconds;
      double objs_s = static_cast<double>(op.objects) / r.seconds;
      double gbps = static_cast<double>(op.bytes) / r.seconds / 1e9;
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
      if (plan_.base.verify && r.kind != WorkloadKind::kPut) {
        lines.push_back(name + ": verified " + Thousands(static_cast<double>(r.verified_objects)) +
                        " objects (warm-up included), " + std::to_string(r.wrong_objects) +
                        " wrong");
      }
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
    char buf[64];
    std::snprintf(buf, sizeof buf, f, args...);
    return buf;
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
    nlohmann::json workloads = nlohmann::json::array();
    for (const WorkloadResult& r : results_) {
      nlohmann::json ops = nlohmann::json::array();
      for (const OpStats& op : r.ops) {
        double gbps = static_cast<double>(op.bytes) / r.seconds / 1e9;
        ops.push_back(
            {{"op", op.name},
             {"calls", op.calls},
             {"handled", op.handled},
             {"objects", op.objects},
             {"bytes", op.bytes},
             {"calls_per_s", static_cast<double>(op.calls) / r.seconds},
             {"objects_per_s", static_cast<double>(op.objects) / r.seconds},
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
      workloads.push_back(std::move(one));
    }
    return {{"kvcached", VersionLine()}, {"settings", settings}, {"baseline", baseline},
            {"workloads", workloads},    {"failures", failures}, {"ok", ok}};
  }

  const Plan& plan_;
  const std::optional<Baseline>& baseline_;
  std::vector<WorkloadResult> results_;
};

std::string RunPrefix() { return "kvbench-" + RandomId("", 8).substr(0, 8); }

int RunBench(const CommandContext& ctx) {
  const Config& cfg = ctx.config;
  // Our own lines are the output; the library's and the embedded
  // daemons' info lines would only interleave with the table.
  if (!Given(cfg, "log-level")) spdlog::set_level(spdlog::level::warn);
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

  std::unique_ptr<EmbeddedCluster> cluster;
  std::string pool;
  if (plan.embedded) {
    EmbeddedClusterOptions eo;
    eo.segment_bytes = plan.segment_bytes;
    eo.store_threads = plan.store_threads;
    eo.host_id = plan.client.local_hostname;
    eo.token = *token;
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
    plan.client.master_server_addr = cluster->master_address();
    pool = "embedded: a master and a store in this process on 127.0.0.1 (segment " +
           FormatSize(cluster->segment_bytes()) + ", " + std::to_string(plan.store_threads) +
           " store threads, data tcp://" + cluster->data_address() + ")";
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

  Report report(plan, baseline);
  report.Header(pool, client.host_id());
  std::vector<std::string> failures;
  const std::string prefix = RunPrefix();
  for (size_t i = 0; i < plan.workloads.size(); ++i) {
    WorkloadOptions w = plan.base;
    w.kind = plan.workloads[i];
    w.key_prefix = prefix + "-" + std::to_string(i) + "-" + WorkloadName(w.kind);
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
      "(fresh keys), get (keys written first), mixed (--read-ratio), exist, and sglang (what "
      "SGLang's HiCache does per request: batch exist, batch get of the hits into a registered "
      "buffer, batch put of the misses; --model sizes the pages). Prints a table, or --json. "
      "Exit status 1 when --verify found a wrong byte or more objects failed than "
      "--max-error-rate allows (default: any).";
  c.options = BenchOptions();
  c.run = RunBench;
  return c;
}

}  // namespace kvcached
