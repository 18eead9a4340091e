// `kvcached meta`: the metadata HTTP service run on its own (the master
// embeds the same MetadataService).
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include "cmd/command.h"
#include "cmd/daemon.h"
#include "core/auth_token.h"
#include "core/build_info.h"
#include "master/metadata_service.h"

namespace kvcached {
namespace {

std::vector<OptionSpec> MetaOptions() {
  std::vector<OptionSpec> o = {
      MakeOption("host", OptionKind::kString, "127.0.0.1",
                 "Address to listen on; anything but loopback needs --token-file (or "
                 "--insecure)"),
      MakeOption("port", OptionKind::kUInt, "8080", "TCP port to listen on (0: any free)", 0,
                 65535),
  };
  for (auto* group : {&HttpLimitOptions, &DaemonOptions}) {
    for (OptionSpec& spec : (*group)()) o.push_back(std::move(spec));
  }
  return o;
}

int RunMeta(const CommandContext& ctx) {
  const Config& cfg = ctx.config;
  HttpServerOptions http;
  http.name = "meta";
  http.host = cfg.String("host");
  http.port = static_cast<uint16_t>(cfg.Number("port"));
  MetadataLimits limits;
  ApplyHttpLimits(cfg, http, limits);
  Result<std::optional<AuthToken>> token = LoadTokenOption(cfg);
  if (!token.ok()) {
    spdlog::error("{}", token.status().message());
    return ExitCode(token.code());
  }
  http.token = std::move(token).value();

  MetricsRegistry metrics;
  RegisterProcessMetrics(metrics);
  boost::asio::io_context ioc;
  MetadataService service(ioc, http, limits, metrics);
  if (Status st = service.Start(); !st.ok()) {
    spdlog::error("{}", st.message());
    return ExitCode(st.code());
  }
  size_t threads = ResolveThreads(cfg.Number("threads"));
  std::string url = "http://" + service.server().address() + "/metadata";
  spdlog::info("{} serving the metadata API at {} ({} threads, token {})", VersionLine(), url,
               threads, http.token ? "required" : "not required");
  spdlog::debug("settings: {}", cfg.Describe());
  if (!AllowExposure(cfg, service.server().bound_to_loopback(), http.token.has_value(),
                     service.server().address(),
                     "anyone who can reach this port can read every segment descriptor (RDMA "
                     "keys included) and overwrite or delete them")) {
    return kExitConfig;
  }
  DaemonHooks hooks;
  hooks.begin_shutdown = [&service] { service.BeginShutdown(); };
  hooks.open_connections = [&service] { return service.open_connections(); };
  hooks.shutdown_timeout = cfg.Duration("shutdown-timeout");
  hooks.ready_status = "meta listening on " + url;
  return ServeUntilSignalled(ioc, threads, ctx, hooks);
}

}  // namespace

Command MetaCommand() {
  Command c;
  c.name = "meta";
  c.summary = "Run the metadata HTTP service (Mooncake http_metadata_server protocol)";
  c.description =
      "Serves GET/PUT/DELETE /metadata?key=K, the protocol of Mooncake's "
      "http_metadata_server, where stores publish segment descriptors and RPC locations. "
      "Also /health and /metrics (Prometheus). Point MOONCAKE_TE_META_DATA_SERVER at "
      "http://HOST:PORT/metadata. 'kvcached master' runs the same service in-process.";
  c.options = MetaOptions();
  c.run = RunMeta;
  return c;
}

}  // namespace kvcached
