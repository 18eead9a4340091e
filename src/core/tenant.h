// Tenants: one master serves several key spaces. A client names its tenant
// in its Hello; the master keeps every key of a non-default tenant under an
// internal key that no other tenant's key can equal, and everything behind
// the master (its index, the stores' object tables, table updates, remounts)
// sees only internal keys. docs/master.md, "Tenants".
//
//   default tenant ("" or "default"):  internal key = key
//   tenant T:                          internal key = "\0" T "\0" key
//
// A key of the default tenant may therefore not begin with a NUL byte
// (INVALID_PARAMS), and a tenant name is 1 to 64 bytes of [A-Za-z0-9._-].
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kvcached {

inline constexpr size_t kMaxTenantBytes = 64;
// The most an internal key adds to the key a client gave.
inline constexpr size_t kMaxTenantPrefixBytes = kMaxTenantBytes + 2;
inline constexpr std::string_view kDefaultTenant = "default";

// The canonical name: "" for the default tenant ("" or "default", white
// space around it ignored), the name otherwise. INVALID_PARAMS names the rule broken.
Result<std::string> CanonicalTenant(std::string_view name);

// The prefix of the tenant's internal keys ("" for the default tenant).
// `tenant` is canonical.
std::string TenantPrefix(std::string_view tenant);

// Whether `key` may be given by a client of the default tenant.
inline bool IsReservedKey(std::string_view key) { return !key.empty() && key[0] == '\0'; }

// The canonical tenant of an internal key ("" for the default tenant).
std::string_view TenantOfInternalKey(std::string_view internal_key);
// The key its client gave.
std::string_view UserKeyOf(std::string_view internal_key);

// For messages and metric labels: "default" for "".
inline std::string_view TenantLabel(std::string_view tenant) {
  return tenant.empty() ? kDefaultTenant : tenant;
}

}  // namespace kvcached
