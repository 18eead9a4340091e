#include "core/tenant.h"

#include <doctest/doctest.h>

namespace kvcached {
namespace {

TEST_CASE("tenant names: the default tenant has two spellings; others follow one rule") {
  CHECK(CanonicalTenant("").value().empty());
  CHECK(CanonicalTenant("default").value().empty());
  CHECK(CanonicalTenant("  default ").value().empty());
  CHECK(CanonicalTenant(" team-a.prod_1 ").value() == "team-a.prod_1");
  CHECK(CanonicalTenant(std::string(kMaxTenantBytes, 't')).ok());
  for (std::string bad : {std::string(kMaxTenantBytes + 1, 't'), std::string("a/b"),
                          std::string("a b"), std::string("a\0b", 3), std::string("\xc3\xa9")}) {
    Result<std::string> t = CanonicalTenant(bad);
    CHECK(t.code() == ErrorCode::INVALID_PARAMS);
  }
}

TEST_CASE("internal keys: a tenant's keys cannot equal another tenant's") {
  CHECK(TenantPrefix("").empty());
  std::string a = TenantPrefix("a") + "key";
  CHECK(a == std::string("\0a\0key", 6));
  CHECK(TenantOfInternalKey(a) == "a");
  CHECK(UserKeyOf(a) == "key");
  CHECK(TenantOfInternalKey("key").empty());
  CHECK(UserKeyOf("key") == "key");
  // "a" with key "b\0c" and "a\0b" with key "c" would meet only if a
  // tenant name could hold NUL: it cannot.
  CHECK(TenantOfInternalKey(TenantPrefix("a") + std::string("b\0c", 3)) == "a");
  CHECK_FALSE(CanonicalTenant(std::string("a\0b", 3)).ok());
  // A key of the default tenant may not begin with NUL.
  CHECK(IsReservedKey(a));
  CHECK_FALSE(IsReservedKey("key"));
  CHECK_FALSE(IsReservedKey(""));
  CHECK(TenantLabel("") == "default");
  CHECK(TenantLabel("a") == "a");
}

}  // namespace
}  // namespace kvcached
