#include "core/auth_token.h"

#include <doctest/doctest.h>

#include <sys/stat.h>
#include <unistd.h>
#include <cstdio>
#include <fstream>

namespace kvcached {
namespace {

TEST_CASE("ConstantTimeEquals compares bytes and lengths") {
  CHECK(ConstantTimeEquals("abc", "abc"));
  CHECK_FALSE(ConstantTimeEquals("abc", "abd"));
  CHECK_FALSE(ConstantTimeEquals("abc", "ab"));
  CHECK_FALSE(ConstantTimeEquals("ab", "abc"));
  CHECK(ConstantTimeEquals("", ""));
}

TEST_CASE("bearer headers are verified") {
  Result<AuthToken> t = AuthToken::FromString("  0123456789abcdef0123\n");
  REQUIRE(t.ok());
  CHECK(t->VerifyBearer("Bearer 0123456789abcdef0123"));
  CHECK(t->VerifyBearer("bearer 0123456789abcdef0123"));
  CHECK_FALSE(t->VerifyBearer("Bearer 0123456789abcdef012"));
  CHECK_FALSE(t->VerifyBearer("Basic 0123456789abcdef0123"));
  CHECK_FALSE(t->VerifyBearer("0123456789abcdef0123"));
  CHECK_FALSE(t->VerifyBearer("Bearer "));
  CHECK_FALSE(t->VerifyBearer(""));
}

TEST_CASE("weak or malformed tokens are refused") {
  CHECK_FALSE(AuthToken::FromString("").ok());
  CHECK_FALSE(AuthToken::FromString("short").ok());
  CHECK_FALSE(AuthToken::FromString("0123456789 abcdef0123").ok());
}

TEST_CASE("token files: missing, empty, readable by others") {
  CHECK_FALSE(AuthToken::LoadFile("/nonexistent/kvcached-token").ok());
  char path[] = "/tmp/kvcached-token-XXXXXX";
  int fd = mkstemp(path);
  REQUIRE(fd >= 0);
  close(fd);
  CHECK_FALSE(AuthToken::LoadFile(path).ok());  // empty
  {
    std::ofstream out(path);
    out << "0123456789abcdef0123456789abcdef\n";
  }
  chmod(path, 0644);
  std::string warning;
  REQUIRE(AuthToken::LoadFile(path, &warning).ok());
  CHECK(warning.find("chmod 600") != std::string::npos);
  chmod(path, 0600);
  warning.clear();
  REQUIRE(AuthToken::LoadFile(path, &warning).ok());
  CHECK(warning.empty());
  std::remove(path);
}

}  // namespace
}  // namespace kvcached
