#include "cmd/daemon.h"

#include <csignal>
#include <ctime>
#include <thread>
#include <vector>

#include <spdlog/spdlog.h>
#include <boost/asio/signal_set.hpp>
#include <boost/asio/steady_timer.hpp>

#include "core/build_info.h"
#include "core/logging.h"
#include "net/sd_notify.h"
#include "rdma/rdma_transport.h"

namespace kvcached {
namespace {

const char* SignalName(int sig) {
  switch (sig) {
    case SIGTERM:
      return "SIGTERM";
    case SIGINT:
      return "SIGINT";
    case SIGHUP:
      return "SIGHUP";
    default:
      return "signal";
  }
}

// Owns the shutdown sequence; lives on the main thread's stack and is
// touched only from io_context handlers (serialised by the single
// signal_set and timer).
struct ShutdownDriver {
  boost::asio::io_context& ioc;
  const CommandContext& ctx;
  const DaemonHooks& hooks;
  boost::asio::signal_set signals;
  boost::asio::steady_timer poll;
  std::chrono::steady_clock::time_point deadline{};
  bool stopping = false;

  ShutdownDriver(boost::asio::io_context& io, const CommandContext& c, const DaemonHooks& h)
      : ioc(io), ctx(c), hooks(h), signals(io, SIGINT, SIGTERM, SIGHUP), poll(io) {}

  void Arm() {
    signals.async_wait([this](const boost::system::error_code& ec, int sig) {
      if (ec) return;
      OnSignal(sig);
      Arm();
    });
  }

  void OnSignal(int sig) {
    if (sig == SIGHUP) return Reload();
    if (stopping) {
      spdlog::warn("{} again: stopping now without waiting for open connections", SignalName(sig));
      ioc.stop();
      return;
    }
    stopping = true;
    spdlog::info("{} received: no longer accepting; finishing in-flight requests (up to {} ms)",
                 SignalName(sig), hooks.shutdown_timeout.count());
    // Listeners and connections are told first, so that anything a
    // supervisor (or a test) does after seeing STOPPING=1 meets a server
    // that already stops.
    hooks.begin_shutdown();
    SdNotify("STOPPING=1\nSTATUS=stopping");
    deadline = std::chrono::steady_clock::now() + hooks.shutdown_timeout;
    Poll();
  }

  void Poll() {
    size_t open = hooks.open_connections();
    if (open == 0) {
      spdlog::info("all connections closed; stopping");
      ioc.stop();
      return;
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      spdlog::warn("shutdown deadline passed with {} connection(s) still open; closing them", open);
      ioc.stop();
      return;
    }
    poll.expires_after(std::chrono::milliseconds(20));
    poll.async_wait([this](const boost::system::error_code& ec) {
      if (!ec) Poll();
    });
  }

  void Reload() {
    Result<Config> fresh = ctx.reload();
    if (!fresh.ok()) {
      spdlog::error("SIGHUP: reload refused, keeping the running settings: {}",
                    fresh.status().message());
      return;
    }
    const std::string& level = fresh->String("log-level");
    if (Status st = SetLogLevel(level); !st.ok()) {
      spdlog::error("SIGHUP: {}", st.message());
      return;
    }
    spdlog::info(
        "SIGHUP: reloaded settings; log level is now '{}' (other settings need a "
        "restart)",
        level);
  }
};

}  // namespace

OptionSpec MakeOption(std::string name, OptionKind kind, std::string default_value,
                      std::string help, uint64_t min, uint64_t max) {
  OptionSpec s;
  s.name = std::move(name);
  s.kind = kind;
  s.default_value = std::move(default_value);
  s.help = std::move(help);
  s.min = min;
  s.max = max;
  return s;
}

std::vector<OptionSpec> DaemonOptions() {
  return {
      MakeOption("threads", OptionKind::kUInt, "0", "I/O threads (0: one per core, at most 8)", 0,
                 256),
      MakeOption("shutdown-timeout", OptionKind::kDuration, "10s",
                 "On SIGTERM/SIGINT, how long in-flight requests may take to finish"),
      MakeOption("token-file", OptionKind::kPath, "",
                 "File holding the cluster token; when set, every request but /health must "
                 "prove it ('Authorization: Bearer <token>' over HTTP, Hello over RPC)"),
      MakeOption("insecure", OptionKind::kBool, "false",
                 "Serve on an address beyond loopback without --token-file (refused otherwise): "
                 "anyone who reaches the ports may then use them"),
  };
}

bool AllowExposure(const Config& cfg, bool loopback, bool has_token, const std::string& address,
                   const std::string& exposes) {
  if (loopback || has_token) return true;
  if (cfg.Bool("insecure")) {
    spdlog::warn("listening on {} without --token-file (--insecure): {}", address, exposes);
    return true;
  }
  spdlog::error(
      "refusing to listen on {} without --token-file: {}. Give a token (--token-file), bind "
      "loopback (--host 127.0.0.1), or say --insecure",
      address, exposes);
  return false;
}

std::vector<OptionSpec> HttpLimitOptions() {
  return {
      MakeOption("max-body-size", OptionKind::kSize, "16MiB",
                 "Largest value a metadata PUT may store; larger bodies get 413", 1,
                 uint64_t{1} << 30),
      MakeOption("max-key-length", OptionKind::kUInt, "4096",
                 "Longest metadata key in bytes after URL-decoding; longer keys get 400", 1,
                 1 << 20),
      MakeOption("max-header-size", OptionKind::kSize, "16KiB",
                 "Largest HTTP request line plus headers; larger get 431", 1024, 1 << 20),
      MakeOption("max-total-size", OptionKind::kSize, "1GiB",
                 "Most bytes of metadata keys and values held; PUTs past it get 507", 1),
      MakeOption("max-connections", OptionKind::kUInt, "1024",
                 "Most concurrent connections per listener; more are refused", 1, 1 << 20),
      MakeOption("read-timeout", OptionKind::kDuration, "30s",
                 "Idle keep-alive or slow HTTP clients are closed after this long without a "
                 "complete request (writes get the same limit)",
                 100),
  };
}

void ApplyHttpLimits(const Config& cfg, HttpServerOptions& http, MetadataLimits& limits) {
  http.max_body_bytes = cfg.Number("max-body-size");
  http.max_header_bytes = cfg.Number("max-header-size");
  http.max_connections = cfg.Number("max-connections");
  http.read_timeout = cfg.Duration("read-timeout");
  limits.max_key_bytes = cfg.Number("max-key-length");
  limits.max_value_bytes = cfg.Number("max-body-size");
  limits.max_total_bytes = cfg.Number("max-total-size");
}

Result<std::optional<AuthToken>> LoadTokenOption(const Config& cfg) {
  if (!cfg.IsSet("token-file")) return std::optional<AuthToken>();
  std::string warning;
  Result<AuthToken> token = AuthToken::LoadFile(cfg.String("token-file"), &warning);
  if (!token.ok()) return token.status();
  if (!warning.empty()) spdlog::warn("{}", warning);
  return std::optional<AuthToken>(std::move(token).value());
}

size_t ResolveThreads(uint64_t requested) {
  if (requested > 0) return static_cast<size_t>(requested);
  unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 2 : std::min(n, 8u);
}

void RegisterProcessMetrics(MetricsRegistry& metrics) {
  const BuildInfo& b = GetBuildInfo();
  metrics
      .GetGauge("kvcached_build_info", "Build facts of this binary (value is always 1)",
                {{"version", b.version},
                 {"revision", b.revision},
                 {"build_type", b.build_type},
                 {"rdma", b.rdma_compiled ? "compiled" : "absent"}})
      .Set(1);
  metrics.GetGauge("kvcached_process_start_time_seconds", "Unix time the process started")
      .Set(static_cast<int64_t>(std::time(nullptr)));
}

int ServeUntilSignalled(boost::asio::io_context& ioc, size_t threads, const CommandContext& ctx,
                        const DaemonHooks& hooks) {
  ShutdownDriver driver(ioc, ctx, hooks);
  driver.Arm();
  SdNotify("READY=1\nSTATUS=" + hooks.ready_status);

  std::vector<std::thread> pool;
  for (size_t i = 1; i < threads; ++i) pool.emplace_back([&ioc] { ioc.run(); });
  ioc.run();
  for (std::thread& t : pool) t.join();
  spdlog::info("stopped");
  return kExitOk;
}

Result<std::shared_ptr<RdmaAcceptor>> OpenRdmaTarget(const std::string& device_list,
                                                     int gid_index, uint8_t* base,
                                                     uint64_t size) {
  Result<std::vector<std::string>> devices = ParseRdmaDeviceList(device_list);
  if (!devices.ok()) {
    return Status(devices.code(), "--device: " + devices.status().message());
  }
  RdmaOptions o;
  o.devices = *devices;
  o.gid_index = gid_index;
  Result<std::unique_ptr<RdmaTarget>> target = RdmaTarget::OpenSystem(o, base, size);
  // No device found, or no RDMA in this build (and no device named).
  if (target.code() == ErrorCode::NOT_SUPPORTED) {
    spdlog::warn("--protocol rdma: {}; serving TCP and shared memory only",
                 target.status().message());
    return std::shared_ptr<RdmaAcceptor>();
  }
  if (!target.ok()) return target.status();
  return std::shared_ptr<RdmaAcceptor>(std::move(target).value());
}

}  // namespace kvcached
