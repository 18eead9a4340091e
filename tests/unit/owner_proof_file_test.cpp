#include "store/owner_proof_file.h"

#include <doctest/doctest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace kvcached {
namespace {

struct TempDir {
  TempDir() {
    char tmpl[] = "/tmp/kvcached-owner-XXXXXX";
    REQUIRE(mkdtemp(tmpl) != nullptr);
    path = tmpl;
  }
  ~TempDir() { (void)std::system(("rm -rf '" + path + "'").c_str()); }
  std::string path;
};

TEST_CASE("an owner file is created once and read back by the next process") {
  TempDir dir;
  std::string path = dir.path + "/owner-proof";
  std::string first;
  {
    Result<OwnerProofFile> f = OwnerProofFile::Open(path);
    REQUIRE(f.ok());
    CHECK(f->created());
    first = f->proof();
    CHECK(first.size() == 32);
    struct stat sb {};
    REQUIRE(stat(path.c_str(), &sb) == 0);
    CHECK((sb.st_mode & 0777) == 0600);
    // Held: a second store given the same file is refused.
    Result<OwnerProofFile> again = OwnerProofFile::Open(path);
    CHECK(again.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
    CHECK(again.status().message().find("another running store") != std::string::npos);
  }
  Result<OwnerProofFile> reopened = OwnerProofFile::Open(path);
  REQUIRE(reopened.ok());
  CHECK_FALSE(reopened->created());
  CHECK(reopened->proof() == first);
}

TEST_CASE("an owner file that is not private, not a proof or not a file is refused") {
  TempDir dir;
  std::string path = dir.path + "/owner-proof";
  { std::ofstream(path) << "0123456789abcdef0123456789abcdef\n"; }
  SUBCASE("readable by others") {
    REQUIRE(chmod(path.c_str(), 0644) == 0);
    Result<OwnerProofFile> f = OwnerProofFile::Open(path);
    CHECK(f.code() == ErrorCode::INVALID_PARAMS);
    CHECK(f.status().message().find("chmod 600") != std::string::npos);
  }
  SUBCASE("a private file with a proof is taken as it is") {
    REQUIRE(chmod(path.c_str(), 0600) == 0);
    Result<OwnerProofFile> f = OwnerProofFile::Open(path);
    REQUIRE(f.ok());
    CHECK(f->proof() == "0123456789abcdef0123456789abcdef");
  }
  SUBCASE("garbage") {
    { std::ofstream(path) << "not a proof\n"; }
    REQUIRE(chmod(path.c_str(), 0600) == 0);
    Result<OwnerProofFile> f = OwnerProofFile::Open(path);
    CHECK(f.code() == ErrorCode::INVALID_PARAMS);
    CHECK(f.status().message().find(path) != std::string::npos);
  }
  SUBCASE("a symbolic link") {
    std::string link = dir.path + "/link";
    REQUIRE(symlink(path.c_str(), link.c_str()) == 0);
    CHECK(OwnerProofFile::Open(link).code() == ErrorCode::INVALID_PARAMS);
  }
  SUBCASE("a directory") {
    CHECK(OwnerProofFile::Open(dir.path).code() == ErrorCode::INVALID_PARAMS);
  }
}

}  // namespace
}  // namespace kvcached
