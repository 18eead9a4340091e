#include "store/segment_memory.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <fstream>
#include <string>

namespace kvcached {
namespace {

const uint64_t kPage = static_cast<uint64_t>(sysconf(_SC_PAGESIZE));

// A regular file of `bytes` bytes, each 0x5a, removed at scope exit.
struct TempFile {
  explicit TempFile(uint64_t bytes) {
    char tmpl[] = "/tmp/kvcached-segmem-XXXXXX";
    int fd = mkstemp(tmpl);
    REQUIRE(fd >= 0);
    path = tmpl;
    std::string fill(bytes, '\x5a');
    REQUIRE(write(fd, fill.data(), fill.size()) == static_cast<ssize_t>(fill.size()));
    close(fd);
  }
  ~TempFile() { unlink(path.c_str()); }
  std::string Read(uint64_t offset, uint64_t n) const {
    std::ifstream in(path, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    std::string out(n, '\0');
    in.read(out.data(), static_cast<std::streamsize>(n));
    return out;
  }
  uint64_t Size() const {
    struct stat st {};
    REQUIRE(stat(path.c_str(), &st) == 0);
    return static_cast<uint64_t>(st.st_size);
  }
  std::string path;
};

SegmentMemoryOptions FileOptions(const std::string& path, uint64_t size, uint64_t offset) {
  SegmentMemoryOptions o;
  o.size_bytes = size;
  o.file_path = path;
  o.file_offset = offset;
  return o;
}

TEST_CASE("a file segment maps the file's bytes from its offset, shared") {
  TempFile file(6 * kPage);
  auto m = SegmentMemory::Create(FileOptions(file.path, 2 * kPage, 3 * kPage));
  REQUIRE(m.ok());
  CHECK(m.value()->size() == 2 * kPage);
  CHECK(m.value()->file_offset() == 3 * kPage);
  CHECK(m.value()->data()[0] == 0x5a);
  std::memcpy(m.value()->data() + 10, "hello", 5);
  CHECK(file.Read(3 * kPage + 10, 5) == "hello");  // MAP_SHARED: the file has the bytes
  CHECK(file.Read(3 * kPage - 5, 5) == std::string(5, '\x5a'));
}

TEST_CASE("a file segment refuses bad input with INVALID_PARAMS and leaves the file alone") {
  TempFile file(4 * kPage);
  auto code = [](const SegmentMemoryOptions& o) { return SegmentMemory::Create(o).code(); };
  CHECK(code(FileOptions(file.path, 0, 0)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions(file.path, kPage, 100)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions(file.path, 4 * kPage + 1, 0)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions(file.path, 2 * kPage, 3 * kPage)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions(file.path, kPage, 5 * kPage)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions(file.path, 1, UINT64_MAX - kPage + 1)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions(file.path + ".missing", kPage, 0)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions("/tmp", kPage, 0)) == ErrorCode::INVALID_PARAMS);
  CHECK(code(FileOptions("/dev/null", kPage, 0)) == ErrorCode::INVALID_PARAMS);
  CHECK(file.Size() == 4 * kPage);
  CHECK(file.Read(0, 4 * kPage) == std::string(4 * kPage, '\x5a'));
}

TEST_CASE("Release swaps the file's pages out from under the same addresses") {
  TempFile file(2 * kPage);
  auto m = SegmentMemory::Create(FileOptions(file.path, 2 * kPage, 0));
  REQUIRE(m.ok());
  SegmentMemory& mem = *m.value();
  uint8_t* data = mem.data();
  int fd = mem.fd();
  mem.Release();
  CHECK(mem.released());
  CHECK(mem.data() == data);
  // A late server write lands in anonymous memory, not in the file, and
  // does not fault; a late read sees zeros.
  CHECK(data[0] == 0);
  std::memcpy(data, "late", 4);
  CHECK(file.Read(0, 4) == std::string(4, '\x5a'));
  // The descriptor number now names /dev/null: a late shm attach is refused
  // for its size.
  struct stat st {};
  REQUIRE(fstat(fd, &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  CHECK((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
  mem.Release();  // idempotent
}

TEST_CASE("Release frees a memfd segment's pages for its other mappers' sake") {
  SegmentMemoryOptions o;
  o.size_bytes = 4 * kPage;
  auto m = SegmentMemory::Create(o);
  REQUIRE(m.ok());
  std::memcpy(m.value()->data(), "abc", 3);
  m.value()->Release();
  CHECK(std::memcmp(m.value()->data(), "\0\0\0", 3) == 0);
  struct stat st {};
  REQUIRE(fstat(m.value()->fd(), &st) == 0);
  CHECK(st.st_size == 0);
}

}  // namespace
}  // namespace kvcached
