// `kvcached meta`: the metadata HTTP service run on its own (the master
// embeds the same MetadataService).
#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include "cmd/command.h"
#include "cmd/daemon.h"
#include "core/auth_token.h"
#include "core/build_info.h"
#include "net/metadata_service.h"

namespace kvcached {
namespace {

OptionSpec Opt(std::string name, OptionKind kind, std::string def, std::string help) {
  OptionSpec s;
  s.name = std::move(name);
  s.kind = kind;
  s.default_value = std::move(def);
  s.help = std::move(help);
  return s;
}

std::vector<OptionSpec> MetaOptions() {
  std::vector<OptionSpec> o;
  o.push_back(Opt("host", OptionKind::kString, "127.0.0.1",
                  "Address to listen on; anything but loopback needs --token-file to be safe"));
  OptionSpec port = Opt("port", OptionKind::kUInt, "8080", "TCP port to listen on (0: any free)");
  port.max = 65535;
  o.push_back(port);
  OptionSpec threads =
      Opt("threads", OptionKind::kUInt, "0", "I/O threads (0: one per core, at most 8)");
  threads.max = 256;
  o.push_back(threads);
  OptionSpec body = Opt("max-body-size", OptionKind::kSize, "16MiB",
                        "Largest value a PUT may store; larger bodies get 413");
  body.min = 1;
  body.max = uint64_t{1} << 30;
  o.push_back(body);
  OptionSpec key = Opt("max-key-length", OptionKind::kUInt, "4096",
                       "Longest key in bytes after URL-decoding; longer keys get 400");
  key.min = 1;
  key.max = 1 << 20;
  o.push_back(key);
  OptionSpec header = Opt("max-header-size", OptionKind::kSize, "16KiB",
                          "Largest request line plus headers; larger get 431");
  header.min = 1024;
  header.max = 1 << 20;
  o.push_back(header);
  OptionSpec total = Opt("max-total-size", OptionKind::kSize, "1GiB",
                         "Most bytes of keys and values held; PUTs past it get 507");
  total.min = 1;
  o.push_back(total);
  OptionSpec conns = Opt("max-connections", OptionKind::kUInt, "1024",
                         "Most concurrent connections; more are answered 503 and closed");
  conns.min = 1;
  conns.max = 1 << 20;
  o.push_back(conns);
  OptionSpec timeout =
      Opt("read-timeout", OptionKind::kDuration, "30s",
          "Idle keep-alive or slow clients are closed after this long without a complete "
          "request (writes get the same limit)");
  timeout.min = 100;
  o.push_back(timeout);
  OptionSpec shutdown = Opt("shutdown-timeout", OptionKind::kDuration, "10s",
                            "On SIGTERM/SIGINT, how long in-flight requests may take to finish");
  o.push_back(shutdown);
  o.push_back(Opt("token-file", OptionKind::kPath, "",
                  "File holding the cluster token; when set, every request but /health needs "
                  "'Authorization: Bearer <token>'"));
  return o;
}

int RunMeta(const CommandContext& ctx) {
  const Config& cfg = ctx.config;
  HttpServerOptions http;
  http.name = "meta";
  http.host = cfg.String("host");
  http.port = static_cast<uint16_t>(cfg.Number("port"));
  http.max_body_bytes = cfg.Number("max-body-size");
  http.max_header_bytes = cfg.Number("max-header-size");
  http.max_connections = cfg.Number("max-connections");
  http.read_timeout = cfg.Duration("read-timeout");
  if (cfg.IsSet("token-file")) {
    std::string warning;
    Result<AuthToken> token = AuthToken::LoadFile(cfg.String("token-file"), &warning);
    if (!token.ok()) {
      spdlog::error("{}", token.status().message());
      return kExitConfig;
    }
    if (!warning.empty()) spdlog::warn("{}", warning);
    http.token = std::move(token).value();
  }
  MetadataLimits limits;
  limits.max_key_bytes = cfg.Number("max-key-length");
  limits.max_value_bytes = cfg.Number("max-body-size");
  limits.max_total_bytes = cfg.Number("max-total-size");

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
  if (!service.server().bound_to_loopback() && !http.token) {
    spdlog::warn(
        "listening on {} without --token-file: anyone who can reach this port can read every "
        "segment descriptor (RDMA keys included) and overwrite or delete them",
        service.server().address());
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
