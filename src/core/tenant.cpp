#include "core/tenant.h"

#include "core/rpc_protocol.h"
#include "core/units.h"

namespace kvcached {

static_assert(kMaxInternalKeyBytes == kMaxKeyBytes + kMaxTenantPrefixBytes);

Result<std::string> CanonicalTenant(std::string_view name) {
  name = Trim(name);
  if (name.empty() || name == kDefaultTenant) return std::string();
  if (name.size() > kMaxTenantBytes) {
    return Status(ErrorCode::INVALID_PARAMS, "tenant id of " + std::to_string(name.size()) +
                                                 " bytes; the limit is " +
                                                 std::to_string(kMaxTenantBytes));
  }
  for (char c : name) {
    bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '_' || c == '-';
    if (!ok) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "tenant id may hold only letters, digits, '.', '_' and '-'");
    }
  }
  return std::string(name);
}

std::string TenantPrefix(std::string_view tenant) {
  if (tenant.empty()) return std::string();
  std::string p;
  p.reserve(tenant.size() + 2);
  p += '\0';
  p += tenant;
  p += '\0';
  return p;
}

std::string_view TenantOfInternalKey(std::string_view internal_key) {
  if (!IsReservedKey(internal_key)) return {};
  size_t end = internal_key.find('\0', 1);
  if (end == std::string_view::npos) return {};
  return internal_key.substr(1, end - 1);
}

std::string_view UserKeyOf(std::string_view internal_key) {
  if (!IsReservedKey(internal_key)) return internal_key;
  size_t end = internal_key.find('\0', 1);
  if (end == std::string_view::npos) return internal_key;
  return internal_key.substr(end + 1);
}

}  // namespace kvcached
