// Process-wide logging set-up: one spdlog logger writing to stderr, named
// after the subcommand. Lines carry no timestamp and a syslog "<N>" priority
// prefix when stderr is the systemd journal (JOURNAL_STREAM names stderr),
// so journald shows levels; elsewhere lines start with an ISO timestamp.
// InitLogging runs once on the main thread before any other thread starts;
// SetLogLevel may be called from any thread afterwards.
#pragma once

#include <string_view>

#include "core/status.h"

namespace kvcached {

// Level names: trace, debug, info, warn, error, critical, off.
inline constexpr const char* kLogLevels[] = {"trace", "debug",    "info", "warn",
                                             "error", "critical", "off"};

Status InitLogging(std::string_view component, std::string_view level);
Status SetLogLevel(std::string_view level);
// True when stderr is connected to the systemd journal.
bool StderrIsJournal();

}  // namespace kvcached
