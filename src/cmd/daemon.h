// Daemon plumbing shared by the long-running subcommands: run an io_context
// on N threads until SIGTERM/SIGINT, then stop accepting, let in-flight
// requests finish within a deadline, and return. SIGHUP re-resolves the
// settings and applies what can change live (the log level). Tells systemd
// (sd_notify) READY=1 after start-up and STOPPING=1 on stop. Called from
// the main thread only.
#pragma once

#include <chrono>
#include <functional>
#include <string>

#include <boost/asio/io_context.hpp>

#include "cmd/command.h"
#include "core/auth_token.h"
#include "core/metadata_store.h"
#include "core/metrics.h"
#include "core/rdma_link.h"
#include "net/http_server.h"

namespace kvcached {

struct DaemonHooks {
  std::function<void()> begin_shutdown;      // stop accepting, close idle
  std::function<size_t()> open_connections;  // shutdown ends when this is 0
  std::chrono::milliseconds shutdown_timeout{10'000};
  std::string ready_status;  // sd_notify STATUS= text
};

// Blocks until stopped by a signal; returns the process exit code.
int ServeUntilSignalled(boost::asio::io_context& ioc, size_t threads, const CommandContext& ctx,
                        const DaemonHooks& hooks);

// kvcached_build_info and kvcached_process_start_time_seconds.
void RegisterProcessMetrics(MetricsRegistry& metrics);

// Number of threads to run for a --threads value (0 = one per core, at most 8).
size_t ResolveThreads(uint64_t requested);

// One setting, declared in a line.
OptionSpec MakeOption(std::string name, OptionKind kind, std::string default_value,
                      std::string help, uint64_t min = 0, uint64_t max = UINT64_MAX);

// --threads, --shutdown-timeout, --token-file and --insecure, which every daemon has.
std::vector<OptionSpec> DaemonOptions();
// The limits of the HTTP servers and of the metadata store behind them.
std::vector<OptionSpec> HttpLimitOptions();
void ApplyHttpLimits(const Config& cfg, HttpServerOptions& http, MetadataLimits& limits);

// --protocol rdma for a segment at [base, base + size): the devices of
// `device_list` (--device / MOONCAKE_DEVICE; empty: discover) register it
// and answer queue-pair requests. A null acceptor, after one warning, when
// discovery finds no device (the segment is then served over TCP and shared
// memory); INVALID_PARAMS for a bad list; UNAVAILABLE_IN_CURRENT_MODE when a
// named device is missing or down; the registration's error when refused.
Result<std::shared_ptr<RdmaAcceptor>> OpenRdmaTarget(const std::string& device_list,
                                                     int gid_index, uint8_t* base,
                                                     uint64_t size);

// A listener reachable beyond this host (not loopback) with no token lets
// anyone who reaches it do what `exposes` says: refused (false, with an error
// naming the ways out) unless --insecure, which leaves a warning. True for a
// loopback listener or one with a token.
bool AllowExposure(const Config& cfg, bool loopback, bool has_token, const std::string& address,
                   const std::string& exposes);

// Loads --token-file when set. Logs a warning for a file others can read;
// INVALID_PARAMS (exit 78) for a missing, empty or weak token.
Result<std::optional<AuthToken>> LoadTokenOption(const Config& cfg);

}  // namespace kvcached
