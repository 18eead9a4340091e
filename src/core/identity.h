// Identities a process gives itself: its host's name (the default host id)
// and random ids (client ids, master ids). Thread-safe.
#pragma once

#include <string>
#include <string_view>

namespace kvcached {

// gethostname(), or "localhost" when it fails or is empty.
std::string LocalHostname();

// `hex_digits` random hex digits (a multiple of 8), after "<prefix>-" when a
// prefix is given: "store-1a2b3c4d5e6f7a8b".
std::string RandomId(std::string_view prefix, unsigned hex_digits = 16);

}  // namespace kvcached
