// `kvcached master`: the control plane — object index, placement, leases,
// eviction, liveness — with its admin HTTP port and, unless --no-meta, the
// metadata service in-process.
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>
#include <boost/asio/signal_set.hpp>

#include <atomic>
#include <csignal>
#include <thread>

#include "cmd/command.h"
#include "cmd/daemon.h"
#include "core/build_info.h"
#include "core/tenant.h"
#include "core/identity.h"
#include "core/units.h"
#include "master/ha_role.h"
#include "net/sd_notify.h"
#include "master/master_service.h"

namespace kvcached {
namespace {

std::vector<OptionSpec> MasterOptionsSpec() {
  auto with = [](OptionSpec s, std::vector<std::string> aliases,
                 DurationUnit bare = DurationUnit::kSeconds) {
    s.aliases = std::move(aliases);
    s.bare_unit = bare;
    return s;
  };
  std::vector<OptionSpec> o = {
      MakeOption("host", OptionKind::kString, "127.0.0.1",
                 "Address every listener binds; anything but loopback needs --token-file "
                 "(or --insecure)"),
      MakeOption("port", OptionKind::kUInt, "50051",
                 "RPC port clients and stores connect to (0: any free)", 0, 65535),
      with(MakeOption("admin-port", OptionKind::kUInt, "9003",
                      "HTTP port of /health, /metrics and the read-only JSON API", 0, 65535),
           {"metrics_port"}),
      with(MakeOption("meta-port", OptionKind::kUInt, "8080",
                      "Port of the in-process metadata service (0: any free)", 0, 65535),
           {"http_metadata_server_port"}),
      MakeOption("no-meta", OptionKind::kBool, "false",
                 "Do not run the metadata service in-process"),
      with(MakeOption("enable-http-metadata-server", OptionKind::kBool, "true",
                      "Run the metadata service in-process (Mooncake's spelling; "
                      "=false is the same as --no-meta)"),
           {"enable_http_metadata_server"}),
      with(MakeOption("default-kv-lease-ttl", OptionKind::kDuration, "10s",
                      "Read lease granted by GetReplicaList, a get's lookup (a bare number is "
                      "milliseconds, as in Mooncake)",
                      10, 3'600'000),
           {"default_kv_lease_ttl"}, DurationUnit::kMilliseconds),
      MakeOption("put-start-discard-timeout", OptionKind::kDuration, "30s",
                 "A put not ended after this may be taken over by a new writer", 100),
      MakeOption("put-start-release-timeout", OptionKind::kDuration, "10m",
                 "The space of a put never ended is reclaimed after this (and a replica task "
                 "not started or not ended by then fails)",
                 100),
      MakeOption("max-pending-tasks", OptionKind::kUInt, "10000",
                 "Replica copy and move tasks unfinished at once, at most (more are refused "
                 "with TASK_PENDING_LIMIT_EXCEEDED)",
                 1, 1'000'000),
      MakeOption("max-finished-tasks", OptionKind::kUInt, "10000",
                 "Finished replica tasks remembered for query_task (the oldest are forgotten)",
                 1, 1'000'000),
      with(MakeOption("eviction-high-watermark-ratio", OptionKind::kRatio, "0.90",
                      "Evict when this share of the pool is allocated"),
           {"eviction_high_watermark_ratio"}),
      with(MakeOption("eviction-ratio", OptionKind::kRatio, "0.05",
                      "Share of the pool each eviction frees"),
           {"eviction_ratio"}),
      with(MakeOption("default-kv-soft-pin-ttl", OptionKind::kDuration, "30m",
                      "How long a soft pin lasts after a put and after each read (a bare number "
                      "is milliseconds, as in Mooncake)",
                      1, int64_t{365} * 24 * 3'600'000),
           {"default_kv_soft_pin_ttl"}, DurationUnit::kMilliseconds),
      with(MakeOption("allow-evict-soft-pinned-objects", OptionKind::kBool, "true",
                      "Evict soft-pinned objects when unpinned ones are not enough (false: only "
                      "their soft pin's end makes them evictable)"),
           {"allow_evict_soft_pinned_objects"}),
      with(
          MakeOption("client-ttl", OptionKind::kDuration, "10s",
                     "Owners silent this long lose their segments (a bare number is seconds)", 100),
          {"client_ttl"}),
      MakeOption(
          "tenant-quotas", OptionKind::kString, "",
          "Byte quotas of tenants, NAME=SIZE[,NAME=SIZE...] (e.g. team-a=8GiB,default=2GiB): "
          "a put past its tenant's quota evicts that tenant's least recently used "
          "objects first; tenants not named have none"),
      MakeOption("allocation-strategy", OptionKind::kChoice, "random",
                 "Where new objects go: random, free-ratio (emptiest segment first) or "
                 "local-first (segments on the writer's host first)"),
      MakeOption("max-frame-size", OptionKind::kSize, "64MiB",
                 "Largest RPC frame body accepted after Hello (remount tables are the biggest; "
                 "every other kind has a smaller fixed maximum)",
                 4096, uint64_t{1} << 31),
      MakeOption("reserved-store-connections", OptionKind::kUInt, "64",
                 "Of --max-connections, RPC connections only stores may take, so that clients "
                 "cannot lock stores out",
                 0, 1 << 20),
      MakeOption("max-connections-per-peer", OptionKind::kUInt, "256",
                 "Most RPC connections from one IP address, counted before Hello and for "
                 "clients after it (stores are not counted once they said Hello)",
                 1, 1 << 20),
      with(MakeOption("etcd-endpoints", OptionKind::kString, "",
                      "High availability: etcd members host:port[;host:port...] (or "
                      "etcd://...) in which the masters of --cluster-id elect a leader; only the "
                      "leader opens --port, the others wait as standbys (docs/ha.md)"),
           {"etcd_endpoints"}),
      with(MakeOption("cluster-id", OptionKind::kString, std::string(kDefaultClusterId),
                      "High availability: the cluster whose leadership this master campaigns "
                      "for; clients and stores given etcd://... must name the same one"),
           {"cluster_id"}),
      MakeOption("etcd-lease-ttl", OptionKind::kDuration, "5s",
                 "High availability: the leader's lease in etcd; a dead leader is replaced "
                 "about this long after it stopped renewing (a bare number is seconds)",
                 1000, 3'600'000),
      MakeOption("advertise-host", OptionKind::kString, "",
                 "High availability: the address clients and stores reach this master at, "
                 "published in etcd when it leads (default: --host; required when --host is "
                 "0.0.0.0 or ::)"),
      MakeOption("idle-timeout", OptionKind::kDuration, "10m",
                 "An RPC connection that sends no frame this long after Hello is closed "
                 "(clients reconnect on their next call)",
                 100),
  };
  for (OptionSpec& s : o) {
    if (s.name == "allocation-strategy") s.choices = {"random", "free-ratio", "local-first"};
  }
  for (auto* group : {&HttpLimitOptions, &DaemonOptions}) {
    for (OptionSpec& spec : (*group)()) o.push_back(std::move(spec));
  }
  return o;
}

// "team-a=8GiB,default=2GiB" -> {"team-a": 8 GiB, "": 2 GiB}.
Result<std::map<std::string, uint64_t>> ParseTenantQuotas(std::string_view text) {
  std::map<std::string, uint64_t> out;
  while (!text.empty()) {
    size_t comma = text.find(',');
    std::string_view item = text.substr(0, comma);
    text = comma == std::string_view::npos ? std::string_view() : text.substr(comma + 1);
    size_t eq = item.find('=');
    if (eq == std::string_view::npos) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "'" + std::string(item) + "' is not NAME=SIZE (e.g. team-a=8GiB)");
    }
    Result<std::string> tenant = CanonicalTenant(item.substr(0, eq));
    if (!tenant.ok()) return tenant.status();
    Result<uint64_t> bytes = ParseSize(std::string(item.substr(eq + 1)));
    if (!bytes.ok() || *bytes == 0) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "quota of tenant '" + std::string(TenantLabel(*tenant)) + "': '" +
                        std::string(item.substr(eq + 1)) + "' is not a size above 0 (e.g. 8GiB)");
    }
    if (!out.emplace(*tenant, *bytes).second) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "tenant '" + std::string(TenantLabel(*tenant)) + "' is named twice");
    }
  }
  return out;
}

bool IsWildcard(const std::string& host) { return host == "0.0.0.0" || host == "::" || host.empty(); }

// The standby part of an HA master (docs/ha.md): configures the fence and
// the read lease, serves /health and /metrics on the admin port, and
// campaigns in etcd until elected (the role, leading) or stopped by a
// signal (UNAVAILABLE_IN_CURRENT_STATUS). The RPC port stays closed.
Result<std::unique_ptr<HaRole>> WaitForLeadership(const Config& cfg, MasterServiceOptions& opts,
                                                  MetricsRegistry& metrics) {
  auto refuse = [](const std::string& why) { return Status(ErrorCode::INVALID_PARAMS, why); };
  if (opts.rpc.port == 0) {
    return refuse("--etcd-endpoints needs a fixed --port: the leader publishes it in etcd "
                  "before it binds");
  }
  std::string advertise =
      cfg.String("advertise-host").empty() ? opts.rpc.host : cfg.String("advertise-host");
  if (IsWildcard(advertise)) {
    return refuse("--host " + opts.rpc.host +
                  " is every address: give --advertise-host, the address clients and stores "
                  "reach this master at");
  }
  if (advertise.find(':') != std::string::npos && advertise.front() != '[') {
    advertise = "[" + advertise + "]";
  }
  HaRoleOptions h;
  h.etcd_endpoints = cfg.String("etcd-endpoints");
  h.cluster_id = cfg.String("cluster-id");
  int64_t lease_ms = cfg.Duration("etcd-lease-ttl").count();
  h.lease_ttl_s = (lease_ms + 999) / 1000;
  MasterOptions& index = opts.index;
  // The fence: the leader stops serving one read lease before its etcd
  // lease could end, so every lease and placement it granted has ended
  // when a new leader is elected, and the new leader's rebuilt segments
  // need no wait (docs/ha.md, "The fence").
  if (cfg.Get("default-kv-lease-ttl").source == ConfigSource::kDefault) {
    index.lease_ttl_ms = std::min<int64_t>(index.lease_ttl_ms, h.lease_ttl_s * 1000 / 2);
  } else if (index.lease_ttl_ms * 2 > h.lease_ttl_s * 1000) {
    return refuse("--default-kv-lease-ttl (" + FormatDuration(cfg.Duration("default-kv-lease-ttl")) +
                  ") must be at most half of --etcd-lease-ttl (" + std::to_string(h.lease_ttl_s) +
                  "s): the leader stops serving one read lease before its etcd lease ends");
  }
  h.grant_margin = std::chrono::milliseconds(index.lease_ttl_ms);
  index.remount_quarantine_ms = 0;
  opts.master_id = RandomId("", 32);

  boost::asio::io_context standby_ioc;
  std::unique_ptr<HaRole> role;
  std::atomic<HaRole*> shown{nullptr};  // the role, for /health once it exists
  HttpServer admin(
      standby_ioc, opts.admin,
      [&](const HttpRequest& req, const HttpRequestContext&, HttpResponse& res) {
        std::string_view target(req.target().data(), req.target().size());
        std::string_view path = target.substr(0, target.find('?'));
        if (HttpServer::ServeHealthOrMetrics(req, metrics, res)) {
          HaRole* r = shown.load();
          if (path == "/health" && res.result_int() == 200 && r) res.body() += r->HealthDetail();
          return;
        }
        HttpServer::SetError(res, 503,
                             "this master is a standby of cluster '" + h.cluster_id +
                                 "'; the leader serves the admin API (its address: /health)");
      },
      metrics);
  if (Status st = admin.Start(); !st.ok()) return st;
  opts.admin.port = admin.port();
  h.self.rpc = advertise + ":" + std::to_string(opts.rpc.port);
  h.self.admin = advertise + ":" + std::to_string(admin.port());
  h.self.master_id = opts.master_id;
  Result<std::unique_ptr<HaRole>> created = HaRole::Create(h, metrics);
  if (!created.ok()) return created.status();
  role = std::move(created).value();
  shown = role.get();
  spdlog::info("{} master {}: standby of cluster '{}', admin on http://{}, read lease {}",
               VersionLine(), opts.master_id, h.cluster_id, admin.address(),
               FormatDuration(std::chrono::milliseconds(index.lease_ttl_ms)));

  boost::asio::signal_set signals(standby_ioc, SIGINT, SIGTERM, SIGHUP);
  std::function<void()> arm = [&] {
    signals.async_wait([&](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      if (sig == SIGHUP) {
        spdlog::info("SIGHUP as a standby: settings are read again when this master leads");
        return arm();
      }
      spdlog::info("{} received: ending the campaign", sig == SIGINT ? "SIGINT" : "SIGTERM");
      role->Stop();
    });
  };
  arm();
  std::thread io([&] { standby_ioc.run(); });
  SdNotify("READY=1\nSTATUS=standby of cluster " + h.cluster_id + " rpc " + h.self.rpc +
           " admin http://" + admin.address());
  Status won = role->Campaign();
  if (won.ok()) role->Lead();  // renewals start at once: the fence runs from the claim
  admin.BeginShutdown();
  signals.cancel();
  standby_ioc.stop();
  io.join();
  if (!won.ok()) return won;
  return role;
}

int RunMaster(const CommandContext& ctx) {
  const Config& cfg = ctx.config;
  MasterServiceOptions opts;
  MasterOptions& index = opts.index;
  index.strategy = *ParseAllocationStrategy(cfg.String("allocation-strategy"));
  index.lease_ttl_ms = cfg.Duration("default-kv-lease-ttl").count();
  index.put_start_discard_timeout_ms = cfg.Duration("put-start-discard-timeout").count();
  index.put_start_release_timeout_ms = cfg.Duration("put-start-release-timeout").count();
  index.max_pending_tasks = cfg.Number("max-pending-tasks");
  index.max_finished_tasks = cfg.Number("max-finished-tasks");
  index.eviction_high_watermark_ratio = cfg.Ratio("eviction-high-watermark-ratio");
  index.eviction_ratio = cfg.Ratio("eviction-ratio");
  index.client_ttl_ms = cfg.Duration("client-ttl").count();
  index.soft_pin_ttl_ms = cfg.Duration("default-kv-soft-pin-ttl").count();
  index.allow_evict_soft_pinned = cfg.Bool("allow-evict-soft-pinned-objects");
  Result<std::map<std::string, uint64_t>> quotas = ParseTenantQuotas(cfg.String("tenant-quotas"));
  if (!quotas.ok()) {
    spdlog::error("--tenant-quotas: {}", quotas.status().message());
    return kExitConfig;
  }
  index.tenant_quota_bytes = std::move(*quotas);
  if (index.put_start_release_timeout_ms < index.put_start_discard_timeout_ms) {
    spdlog::error(
        "--put-start-release-timeout ({}) must not be shorter than "
        "--put-start-discard-timeout ({})",
        FormatDuration(cfg.Duration("put-start-release-timeout")),
        FormatDuration(cfg.Duration("put-start-discard-timeout")));
    return kExitConfig;
  }
  if (cfg.Number("reserved-store-connections") >= cfg.Number("max-connections")) {
    spdlog::error(
        "--reserved-store-connections ({}) must be less than --max-connections ({}): clients "
        "need a slot too",
        cfg.Number("reserved-store-connections"), cfg.Number("max-connections"));
    return kExitConfig;
  }

  Result<std::optional<AuthToken>> token = LoadTokenOption(cfg);
  if (!token.ok()) {
    spdlog::error("{}", token.status().message());
    return ExitCode(token.code());
  }
  std::string host = cfg.String("host");
  opts.rpc.name = "rpc";
  opts.rpc.host = host;
  opts.rpc.port = static_cast<uint16_t>(cfg.Number("port"));
  opts.rpc.max_body_bytes = static_cast<uint32_t>(cfg.Number("max-frame-size"));
  opts.rpc.max_connections = cfg.Number("max-connections");
  opts.rpc.reserved_store_connections = cfg.Number("reserved-store-connections");
  opts.rpc.max_connections_per_peer = cfg.Number("max-connections-per-peer");
  opts.rpc.idle_timeout = cfg.Duration("idle-timeout");
  opts.rpc.token = *token;
  opts.admin.name = "admin";
  opts.admin.host = host;
  opts.admin.port = static_cast<uint16_t>(cfg.Number("admin-port"));
  opts.admin.token = *token;
  // SGLang's readiness probe polls /get_all_segments without credentials;
  // it reveals segment names only.
  opts.admin.public_paths = {"/health", "/get_all_segments"};
  ApplyHttpLimits(cfg, opts.admin, opts.meta_limits);
  if (!cfg.Bool("no-meta") && cfg.Bool("enable-http-metadata-server")) {
    HttpServerOptions meta = opts.admin;
    meta.name = "meta";
    meta.port = static_cast<uint16_t>(cfg.Number("meta-port"));
    opts.meta = meta;
  }

  MetricsRegistry metrics;
  RegisterProcessMetrics(metrics);
  std::unique_ptr<HaRole> ha;
  if (!cfg.String("etcd-endpoints").empty()) {
    Result<std::unique_ptr<HaRole>> elected = WaitForLeadership(cfg, opts, metrics);
    if (!elected.ok()) {
      if (elected.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS) {
        spdlog::info("stopped as a standby");
        return kExitOk;
      }
      spdlog::error("{}", elected.status().message());
      return ExitCode(elected.code());
    }
    ha = std::move(elected).value();
    HaRole* role = ha.get();
    opts.may_serve = [role] { return role->MayServe(); };
    opts.on_deposed = [role] { role->Deposed(); };
    opts.health_detail = [role] { return role->HealthDetail(); };
    opts.await_owner_acks = true;
  }
  boost::asio::io_context ioc;
  MasterService service(ioc, opts, metrics);
  if (Status st = service.Start(); !st.ok()) {
    spdlog::error("{}", st.message());
    if (ha) ha->Resign();
    return ExitCode(st.code());
  }
  size_t threads = ResolveThreads(cfg.Number("threads"));
  std::string meta_url =
      service.meta() ? "http://" + service.meta()->server().address() + "/metadata" : "off";
  spdlog::info(
      "{} master {}: RPC on {}, admin on http://{}, metadata service {} ({} threads, "
      "token {})",
      VersionLine(), service.master_id(), service.rpc().address(), service.admin().address(),
      meta_url, threads, token->has_value() ? "required" : "not required");
  spdlog::info(
      "lease {}, client ttl {}, eviction at {:.0f}% freeing {:.0f}%, soft pins {}{}, placement {}",
      FormatDuration(std::chrono::milliseconds(index.lease_ttl_ms)),
      FormatDuration(cfg.Duration("client-ttl")), index.eviction_high_watermark_ratio * 100,
      index.eviction_ratio * 100, FormatDuration(cfg.Duration("default-kv-soft-pin-ttl")),
      index.allow_evict_soft_pinned ? "" : " (never evicted)", cfg.String("allocation-strategy"));
  spdlog::debug("settings: {}", cfg.Describe());
  if (!AllowExposure(cfg, service.rpc().bound_to_loopback(), token->has_value(),
                     service.rpc().address(),
                     "anyone who can reach these ports can mount segments, read object "
                     "locations and remove objects")) {
    return kExitConfig;
  }
  DaemonHooks hooks;
  hooks.begin_shutdown = [&service] { service.BeginShutdown(); };
  hooks.open_connections = [&service] { return service.open_connections(); };
  hooks.shutdown_timeout = cfg.Duration("shutdown-timeout");
  hooks.ready_status = "master rpc " + service.rpc().address() + " admin http://" +
                       service.admin().address() + " meta " + meta_url;
  int rc = ServeUntilSignalled(ioc, threads, ctx, hooks);
  if (ha) ha->Resign();  // after the last request: a standby takes over at once
  return rc;
}

}  // namespace

Command MasterCommand() {
  Command c;
  c.name = "master";
  c.summary = "Run the master: object index, placement, leases, eviction, liveness";
  c.description =
      "The control plane of the pool. Stores mount their segments here; clients ask where to "
      "put and where to find objects, and move the bytes themselves. Serves the binary RPC "
      "protocol (docs/protocol.md) on --port, /health, /metrics and a read-only JSON API on "
      "--admin-port, and the metadata service on --meta-port unless --no-meta. A restarted "
      "master rebuilds its index from the stores' remounts.";
  c.options = MasterOptionsSpec();
  c.run = RunMaster;
  return c;
}

}  // namespace kvcached
