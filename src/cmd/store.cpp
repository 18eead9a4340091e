// `kvcached store`: contributes a memory segment to the pool: allocates it,
// serves it on a TCP data port and a shared-memory socket, mounts it at the
// master, keeps its object table and remounts after a master restart. With
// --protocol rdma it also registers the segment on the host's RDMA NICs and
// sets up queue pairs for clients that ask over the data port.
#include <unistd.h>

#include <cstdlib>
#include <optional>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <nlohmann/json.hpp>

#include "cmd/command.h"
#include "cmd/daemon.h"
#include "core/build_info.h"
#include "core/identity.h"
#include "core/units.h"
#include "net/http_server.h"
#include "store/owner_proof_file.h"
#include "store/segment_host.h"

namespace kvcached {
namespace {

std::vector<OptionSpec> StoreOptions() {
  auto env = [](OptionSpec s, std::vector<std::string> extra) {
    s.extra_env = std::move(extra);
    return s;
  };
  std::vector<OptionSpec> o = {
      env(MakeOption("master", OptionKind::kString, "127.0.0.1:50051",
                     "The master's RPC address, host:port; or etcd://host:port[;host:port...] "
                     "to follow the leader the masters of --cluster-id elect there"),
          {"MOONCAKE_MASTER"}),
      MakeOption("cluster-id", OptionKind::kString, "mooncake_cluster",
                 "With an etcd:// --master: the masters' --cluster-id"),
      env(MakeOption("segment-size", OptionKind::kSize, "1GiB",
                     "Memory this store contributes to the pool", 1 << 20),
          {"MOONCAKE_GLOBAL_SEGMENT_SIZE"}),
      MakeOption("segment-name", OptionKind::kString, "",
                 "Name of the segment at the master (default: <host-id>:<pid>)"),
      env(MakeOption("host-id", OptionKind::kString, "",
                     "This host's identity; clients with the same one use shared memory "
                     "(default: the hostname)"),
          {"MOONCAKE_LOCAL_HOSTNAME"}),
      MakeOption("hugepages", OptionKind::kBool, "false",
                 "Back the segment with 2 MiB huge pages from the kernel's reserved pool"),
      MakeOption("mlock", OptionKind::kBool, "false",
                 "Lock the segment in RAM (needs RLIMIT_MEMLOCK at least the segment size)"),
      env(MakeOption("protocol", OptionKind::kChoice, "tcp",
                     "Data-plane protocol: tcp, or rdma (also serve the segment by one-sided "
                     "RDMA; TCP and shared memory stay on)"),
          {"MOONCAKE_PROTOCOL"}),
      env(MakeOption("device", OptionKind::kString, "",
                     "RDMA devices for --protocol rdma: a comma list (mlx5_0,mlx5_1) or "
                     "Mooncake's JSON map of ranks to lists; empty: every device with an "
                     "active port. A named device that is missing stops the store"),
          {"MOONCAKE_DEVICE"}),
      MakeOption("gid-index", OptionKind::kUInt, "",
                 "GID index on every RDMA port (default: chosen per port, RoCE v2 and "
                 "IPv4-mapped first)",
                 0, 255),
      MakeOption("host", OptionKind::kString, "127.0.0.1",
                 "Address the data and admin ports bind; others reach the store here"),
      MakeOption("data-port", OptionKind::kUInt, "0",
                 "TCP port of the data plane (0: any free; published in the segment's endpoint)", 0,
                 65535),
      MakeOption("admin-port", OptionKind::kUInt, "0",
                 "HTTP port of /health and /metrics (0: any free; the address is logged)", 0,
                 65535),
      MakeOption("shm-socket", OptionKind::kString, "",
                 "Unix socket that hands the segment to same-host clients (default: "
                 "<runtime dir>/<client id>.sock in a directory private to the store's user; "
                 "a path: a socket file there; @NAME: an abstract socket, only with --insecure; "
                 "off: no shared-memory path)"),
      MakeOption("shm-group", OptionKind::kString, "",
                 "Group whose members may attach to the shm socket, besides the store's own "
                 "user and root (default: none); the runtime directory becomes 0750 and the "
                 "socket 0660 for it"),
      env(MakeOption("metadata-server", OptionKind::kString, "P2PHANDSHAKE",
                     "Where to publish the segment descriptor: a metadata service "
                     "(http://host:port/metadata) or etcd (etcd://host:port[;host:port...]); "
                     "P2PHANDSHAKE: only through the master"),
          {"MOONCAKE_TE_META_DATA_SERVER"}),
      MakeOption("ping-interval", OptionKind::kDuration, "1s",
                 "How often the store pings the master (keep well under the master's "
                 "--client-ttl)",
                 50, 60'000),
      MakeOption("max-connections", OptionKind::kUInt, "4096",
                 "Most connections open at once on the data port, and on the shm socket", 1,
                 1 << 20),
      MakeOption("max-connections-per-peer", OptionKind::kUInt, "256",
                 "Most data-port connections from one IP address", 1, 1 << 20),
      MakeOption("idle-timeout", OptionKind::kDuration, "10m",
                 "A data-port connection that sends no request this long after Hello is closed "
                 "(clients reconnect)",
                 100),
      MakeOption("owner-file", OptionKind::kString, "",
                 "File that keeps the segment's owner proof across restarts (created 0600), so "
                 "a restarted store takes its --segment-name back at once instead of after the "
                 "master's --client-ttl (default: $STATE_DIRECTORY/owner-proof under systemd, "
                 "else none)"),
      MakeOption("disk-path", OptionKind::kString, "",
                 "Directory of a disk tier under the segment: objects evicted from memory are "
                 "written to <dir>/kvcached.kvtier (O_DIRECT, io_uring) and read back on a hit; "
                 "a restarted store finds them there (default: none)"),
      MakeOption("disk-size", OptionKind::kSize, "",
                 "Size of the disk tier's file (needed with --disk-path; at least 16 MiB)",
                 16 << 20),
      MakeOption("disk-staging", OptionKind::kSize, "64MiB",
                 "Memory for objects copied out of the segment and waiting to be written to disk "
                 "(bounds the largest object the tier takes)",
                 1 << 20),
      MakeOption("disk-fsync", OptionKind::kBool, "false",
                 "fdatasync after each object written to the disk tier (without it, a power "
                 "failure may lose objects written in the last seconds; a crash of the store "
                 "alone loses none that were written)"),
  };
  for (OptionSpec& s : o) {
    if (s.name == "protocol") s.choices = {"tcp", "rdma"};
  }
  for (OptionSpec& spec : DaemonOptions()) {
    if (spec.name == "insecure") {
      spec.help += "; for a store, also an abstract (@NAME) --shm-socket, which has no permissions";
    }
    o.push_back(std::move(spec));
  }
  return o;
}

// The owner proof (docs/store.md): --owner-file, else systemd's
// $STATE_DIRECTORY/owner-proof, else none (a restarted store then waits for
// the master to expire its old segment).
Result<std::optional<OwnerProofFile>> OpenOwnerProof(const Config& cfg) {
  std::string path = cfg.String("owner-file");
  if (!cfg.IsSet("owner-file")) {
    const char* state = std::getenv("STATE_DIRECTORY");  // systemd's StateDirectory=
    if (state != nullptr && *state != '\0') {
      std::string dir(state);
      path = dir.substr(0, dir.find(':')) + "/owner-proof";
    }
  }
  if (path.empty()) return std::optional<OwnerProofFile>();
  Result<OwnerProofFile> opened = OwnerProofFile::Open(path);
  if (!opened.ok()) return opened.status();
  spdlog::info("owner proof {} {}", opened->created() ? "created in" : "read from", path);
  return std::optional<OwnerProofFile>(std::move(opened).value());
}

// The segment host's settings from the command line (identity aside).
SegmentHostOptions HostOptions(const Config& cfg, const std::optional<AuthToken>& token) {
  SegmentHostOptions host_opts;
  host_opts.master = cfg.String("master");
  host_opts.cluster_id = cfg.String("cluster-id");
  host_opts.client_id = RandomId("store");
  host_opts.memory.size_bytes = cfg.Number("segment-size");
  host_opts.memory.hugepages = cfg.Bool("hugepages");
  host_opts.memory.lock = cfg.Bool("mlock");
  host_opts.bind_host = cfg.String("host");
  host_opts.data_port = static_cast<uint16_t>(cfg.Number("data-port"));
  host_opts.shm_socket = cfg.String("shm-socket");
  host_opts.shm_group = cfg.String("shm-group");
  host_opts.allow_abstract_shm = cfg.Bool("insecure");
  host_opts.token = token;
  host_opts.insecure = cfg.Bool("insecure");
  host_opts.metadata_server = cfg.String("metadata-server");
  host_opts.ping_interval = cfg.Duration("ping-interval");
  // A dead master must not hold up start-up or shutdown for long.
  host_opts.connect_timeout = std::chrono::milliseconds(1000);
  host_opts.connect_attempts = 2;
  host_opts.data_max_connections = cfg.Number("max-connections");
  host_opts.data_max_connections_per_peer = cfg.Number("max-connections-per-peer");
  host_opts.data_idle_timeout = cfg.Duration("idle-timeout");
  host_opts.shm_max_connections = cfg.Number("max-connections");
  if (cfg.IsSet("disk-path") && !cfg.String("disk-path").empty()) {
    host_opts.disk.dir = cfg.String("disk-path");
    host_opts.disk.name = "kvcached";
    host_opts.disk.capacity_bytes = cfg.Number("disk-size");
    host_opts.disk.staging_bytes = cfg.Number("disk-staging");
    host_opts.disk.fsync = cfg.Bool("disk-fsync");
  }
  return host_opts;
}

// The store's own series beside those its servers keep.
void AddStoreMetrics(MetricsRegistry& metrics, const SegmentMemory& segment,
                     const StoreAgent& agent, const std::shared_ptr<RdmaAcceptor>& rdma) {
  metrics.AddGaugeCallback("kvcached_store_segment_capacity_bytes", "Size of this store's segment",
                           {}, [&segment] { return static_cast<double>(segment.size()); });
  metrics.AddGaugeCallback("kvcached_store_objects",
                           "Objects in this store's table, as the master reported them", {},
                           [&agent] { return static_cast<double>(agent.objects()); });
  metrics.AddGaugeCallback("kvcached_store_object_bytes",
                           "Bytes of the objects in this store's table", {},
                           [&agent] { return static_cast<double>(agent.table_bytes()); });
  if (rdma) {
    metrics.AddGaugeCallback("kvcached_store_rdma_queue_pairs",
                             "RDMA queue pairs set up for clients and not yet released", {},
                             [rdma] { return static_cast<double>(rdma->queue_pairs()); });
  }
  metrics.AddGaugeCallback("kvcached_store_master_reachable",
                           "1 when the last ping reached the master", {},
                           [&agent] { return agent.master_reachable() ? 1.0 : 0.0; });
  metrics.AddCollector([&agent](std::string& out) {
    out +=
        "# HELP kvcached_store_remounts_total Remounts: the master lost the segment, or the "
        "connection to it was re-opened and the table is brought back in line\n"
        "# TYPE kvcached_store_remounts_total counter\n"
        "kvcached_store_remounts_total " +
        std::to_string(agent.remounts()) +
        "\n"
        "# HELP kvcached_store_table_entries_forgotten_total Table entries forgotten because this "
        "process was stopped longer than the master's client TTL\n"
        "# TYPE kvcached_store_table_entries_forgotten_total counter\n"
        "kvcached_store_table_entries_forgotten_total " +
        std::to_string(agent.forgotten()) + "\n";
  });
}

// The disk tier's series (docs/disk-tier.md), when one is configured: each
// read from the tier's statistics at render time.
void AddDiskTierMetrics(MetricsRegistry& metrics, const SegmentHost& host) {
  using Stats = DiskTierStats;
  struct Series {
    const char* name;
    bool counter;
    const char* help;
    double (*read)(const Stats&);
  };
  static constexpr Series kSeries[] = {
      {"kvcached_store_disk_tier_online", false,
       "1 while the disk tier works; 0 when it could not be opened or went offline (the store "
       "then keeps objects in memory only)",
       [](const Stats& s) { return s.online ? 1.0 : 0.0; }},
      {"kvcached_store_disk_capacity_bytes", false, "Size of the disk tier's file",
       [](const Stats& s) { return double(s.capacity_bytes); }},
      {"kvcached_store_disk_used_bytes", false,
       "Disk tier space held by records (headers and padding included)",
       [](const Stats& s) { return double(s.used_bytes); }},
      {"kvcached_store_disk_objects", false, "Objects in the disk tier",
       [](const Stats& s) { return double(s.objects); }},
      {"kvcached_store_disk_object_bytes", false, "Bytes of the objects in the disk tier",
       [](const Stats& s) { return double(s.bytes); }},
      {"kvcached_store_disk_writes_total", true, "Objects written to the disk tier",
       [](const Stats& s) { return double(s.writes); }},
      {"kvcached_store_disk_write_bytes_total", true, "Bytes written to the disk tier",
       [](const Stats& s) { return double(s.write_bytes); }},
      {"kvcached_store_disk_write_seconds_total", true,
       "Time objects' writes took, summed (divide by writes for the mean latency)",
       [](const Stats& s) { return double(s.write_ns) / 1e9; }},
      {"kvcached_store_disk_reads_total", true, "Objects read from the disk tier",
       [](const Stats& s) { return double(s.reads); }},
      {"kvcached_store_disk_read_bytes_total", true, "Bytes read from the disk tier",
       [](const Stats& s) { return double(s.read_bytes); }},
      {"kvcached_store_disk_read_seconds_total", true,
       "Time objects' reads took, summed (divide by reads for the mean latency)",
       [](const Stats& s) { return double(s.read_ns) / 1e9; }},
      {"kvcached_store_disk_evictions_total", true,
       "Objects the disk tier dropped to make room (oldest first)",
       [](const Stats& s) { return double(s.evictions); }},
      {"kvcached_store_disk_corrupt_total", true,
       "Torn or corrupt records dropped (at start or at a read), never served",
       [](const Stats& s) { return double(s.corrupt); }},
      {"kvcached_store_disk_write_errors_total", true, "Disk tier writes that failed",
       [](const Stats& s) { return double(s.write_errors); }},
      {"kvcached_store_disk_read_errors_total", true, "Disk tier reads that failed",
       [](const Stats& s) { return double(s.read_errors); }},
      {"kvcached_store_disk_refused_total", true,
       "Demotions the disk tier refused (offline, or the object too large for it)",
       [](const Stats& s) { return double(s.refused); }},
  };
  for (const Series& series : kSeries) {
    auto read = [&host, read = series.read] {
      DiskTier* tier = host.disk_tier();
      Stats s = tier ? tier->stats() : Stats{};
      if (!tier) s.online = false;
      return read(s);
    };
    if (series.counter) {
      metrics.AddCounterCallback(series.name, series.help, {}, read);
    } else {
      metrics.AddGaugeCallback(series.name, series.help, {}, read);
    }
  }
}

namespace http = boost::beast::http;

// GET /api/v1/client: what a process on this host needs to use the pool
// through this store (Python's setup_dummy, docs/python.md "Standalone
// mode"): the master, the host id that selects shared memory, the segment.
void ServeClientInfo(const HttpRequest& req, const SegmentHost& host, const std::string& host_id,
                     const std::string& master, HttpResponse& res) {
  if (req.method() != http::verb::get && req.method() != http::verb::head) {
    HttpServer::SetError(res, 405, "GET or HEAD only");
    res.set(http::field::allow, "GET, HEAD");
    return;
  }
  nlohmann::json doc = {{"master", master},
                        {"host_id", host_id},
                        {"segment", host.name()},
                        {"segment_size", host.memory().size()},
                        {"shm", host.shm_server() != nullptr}};
  res.result(http::status::ok);
  res.set(http::field::content_type, "application/json");
  res.body() = doc.dump() + "\n";
}

// The line that says what this store serves, and where.
void LogServing(SegmentHost& host, const std::string& shm, const std::string& host_id,
                const std::string& master, const std::shared_ptr<RdmaAcceptor>& rdma,
                const std::string& admin) {
  const SegmentMemory& segment = host.memory();
  std::string shm_admits =
      host.shm_server() ? " (admits " + host.shm_server()->access().Describe() + ")" : "";
  std::string rdma_nics;
  if (rdma) {
    for (const RdmaNic& nic : rdma->Describe().nics) {
      rdma_nics += (rdma_nics.empty() ? "" : ",") + nic.name + " gid " + FormatGid(nic.gid);
    }
  }
  spdlog::info(
      "{} store: segment '{}' of {}{}{} on host '{}', master {}, data tcp://{}, shm {}{}, rdma "
      "{}, admin http://{}",
      VersionLine(), host.name(), FormatSize(segment.size()),
      segment.hugepages() ? ", huge pages" : "", segment.locked() ? ", locked" : "", host_id,
      master, host.data_server()->address(), shm, shm_admits, rdma ? rdma_nics : std::string("off"),
      admin);
}

// With --protocol rdma, the RDMA target over the segment, handed to the host
// before it serves; null otherwise.
Result<std::shared_ptr<RdmaAcceptor>> OpenStoreRdma(const Config& cfg, SegmentHost& host) {
  if (cfg.String("protocol") != "rdma") return std::shared_ptr<RdmaAcceptor>();
  SegmentMemory& segment = host.memory();
  Result<std::shared_ptr<RdmaAcceptor>> opened = OpenRdmaTarget(
      cfg.String("device"), cfg.IsSet("gid-index") ? static_cast<int>(cfg.Number("gid-index")) : -1,
      segment.data(), segment.size());
  if (opened.ok()) host.SetRdma(*opened);
  return opened;
}

int RunStore(const CommandContext& ctx) {
  const Config& cfg = ctx.config;
  Result<std::optional<AuthToken>> token = LoadTokenOption(cfg);
  if (!token.ok()) {
    spdlog::error("{}", token.status().message());
    return ExitCode(token.code());
  }
  std::string host_id = cfg.IsSet("host-id") ? cfg.String("host-id") : LocalHostname();
  std::string name = cfg.IsSet("segment-name") ? cfg.String("segment-name")
                                               : host_id + ":" + std::to_string(getpid());

  Result<std::optional<OwnerProofFile>> owner_file = OpenOwnerProof(cfg);
  if (!owner_file.ok()) {
    spdlog::error("{}", owner_file.status().message());
    return ExitCode(owner_file.code());
  }
  if (!cfg.String("disk-path").empty() && !cfg.IsSet("disk-size")) {
    spdlog::error("--disk-path needs --disk-size (the size of the tier's file, e.g. 64GiB)");
    return kExitUsage;
  }
  if (cfg.String("disk-path").empty()) {
    for (const char* option : {"disk-size", "disk-staging", "disk-fsync"}) {
      if (!cfg.IsGiven(option)) continue;
      const std::string& origin = cfg.Get(option).origin;
      std::string flag = std::string("--") + option;
      std::string what = origin == flag ? flag : origin + " (" + flag + ")";
      spdlog::error("{} is for a disk tier, which needs --disk-path (the tier's directory)", what);
      return kExitUsage;
    }
  }
  SegmentHostOptions host_opts = HostOptions(cfg, *token);
  if (*owner_file) host_opts.owner_proof = (*owner_file)->proof();
  host_opts.host_id = host_id;
  host_opts.segment_name = name;
  // Declared before the segment host: its servers, destroyed with it, hold
  // strands of the io_context and update the registry's gauges.
  MetricsRegistry metrics;
  RegisterProcessMetrics(metrics);
  boost::asio::io_context ioc;
  Result<std::unique_ptr<SegmentHost>> created = SegmentHost::Create(host_opts);
  if (!created.ok()) {
    spdlog::error("cannot allocate the segment: {}", created.status().message());
    return kExitConfig;
  }
  SegmentHost& host = *created.value();
  SegmentMemory& segment = host.memory();
  Result<std::shared_ptr<RdmaAcceptor>> rdma_opened = OpenStoreRdma(cfg, host);
  if (!rdma_opened.ok()) {
    spdlog::error("--protocol rdma: {}", rdma_opened.status().message());
    return ExitCode(rdma_opened.code());
  }
  std::shared_ptr<RdmaAcceptor> rdma = *rdma_opened;

  // Listeners first: a port that cannot be bound fails before the master
  // ever hears of the segment.
  if (Status st = host.Serve(ioc, metrics); !st.ok()) {
    spdlog::error("data plane: {}", st.message());
    return ExitCode(st.code());
  }
  DataServer& data_server = *host.data_server();
  HttpServerOptions admin;
  admin.name = "admin";
  admin.host = cfg.String("host");
  admin.port = static_cast<uint16_t>(cfg.Number("admin-port"));
  admin.token = *token;
  HttpServer admin_server(
      ioc, admin,
      [&](const HttpRequest& req, const HttpRequestContext&, HttpResponse& res) {
        std::string_view target(req.target().data(), req.target().size());
        if (target.substr(0, target.find('?')) == "/api/v1/client") {
          ServeClientInfo(req, host, host_id, cfg.String("master"), res);
        } else if (!HttpServer::ServeHealthOrMetrics(req, metrics, res)) {
          HttpServer::SetError(res, 404, "no such path; see /health, /metrics and /api/v1/client");
        }
      },
      metrics);
  if (Status st = admin_server.Start(); !st.ok()) {
    spdlog::error("admin port: {}", st.message());
    return ExitCode(st.code());
  }
  if (Status st = host.Mount(); !st.ok()) {
    spdlog::error("cannot mount segment '{}' at master {}: {}", name, cfg.String("master"),
                  st.ToString());
    return ExitCode(st.code());
  }
  StoreAgent& agent = *host.agent();

  AddStoreMetrics(metrics, segment, agent, rdma);
  if (!host_opts.disk.dir.empty()) AddDiskTierMetrics(metrics, host);

  std::string shm = host.shm_server() ? host.shm_server()->path() : std::string("off");
  LogServing(host, shm, host_id, cfg.String("master"), rdma, admin_server.address());
  spdlog::debug("settings: {}", cfg.Describe());

  DaemonHooks hooks;
  hooks.begin_shutdown = [&] {
    admin_server.BeginShutdown();
    host.BeginShutdown();
  };
  hooks.open_connections = [&] {
    return admin_server.open_connections() + host.open_connections();
  };
  hooks.shutdown_timeout = cfg.Duration("shutdown-timeout");
  hooks.ready_status = "store segment " + name + " data tcp://" + data_server.address() + " shm " +
                       shm + " admin http://" + admin_server.address();
  int rc = ServeUntilSignalled(ioc, ResolveThreads(cfg.Number("threads")), ctx, hooks);
  // Unmounted once no peer can read or write the segment any more; the
  // master then drops its objects.
  (void)host.Unmount();
  return rc;
}

}  // namespace

Command StoreCommand() {
  Command c;
  c.name = "store";
  c.summary = "Contribute a memory segment to the pool";
  c.description =
      "Allocates a memory segment (a memfd mapping; --hugepages, --mlock), serves it on a TCP "
      "data port and to same-host clients through a shared-memory socket, mounts it at the "
      "master, publishes its descriptor to the metadata service, pings, keeps the table of the "
      "objects placed in the segment, and remounts with that table when the master restarts. "
      "With --protocol rdma the segment is also registered on the host's RDMA NICs and "
      "clients read and write it by one-sided RDMA, with queue pairs set up over the data port. "
      "SIGTERM unmounts.";
  c.options = StoreOptions();
  c.run = RunStore;
  return c;
}

}  // namespace kvcached
