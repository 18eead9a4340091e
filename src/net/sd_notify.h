// SdNotify: the systemd service notification protocol (sd_notify(3)),
// written against its documented wire form: one datagram of newline-
// separated VAR=value lines sent to the AF_UNIX socket named by
// $NOTIFY_SOCKET ('@' = abstract namespace). Does nothing when the variable
// is unset. Tests use the same socket as the readiness signal. Thread-safe.
#pragma once

#include <string_view>

namespace kvcached {

// Returns true when a datagram was sent.
bool SdNotify(std::string_view state);

}  // namespace kvcached
