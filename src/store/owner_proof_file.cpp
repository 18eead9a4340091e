#include "store/owner_proof_file.h"

#include <fcntl.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <utility>

#include "core/identity.h"

namespace kvcached {
namespace {

constexpr size_t kProofDigits = 32;

Status Fail(const std::string& path, const std::string& why) {
  return Status(ErrorCode::INVALID_PARAMS, "owner file " + path + ": " + why);
}

bool IsProof(const std::string& s) {
  if (s.size() != kProofDigits) return false;
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

}  // namespace

Result<OwnerProofFile> OwnerProofFile::Open(const std::string& path) {
  if (path.empty()) return Fail(path, "no path given");
  bool created = false;
  int fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC | O_NOFOLLOW);
  if (fd < 0 && errno == ENOENT) {
    fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    created = fd >= 0;
  }
  if (fd < 0) return Fail(path, std::strerror(errno));
  auto close_with = [&](Status st) {
    ::close(fd);
    return st;
  };
  struct stat sb {};
  if (::fstat(fd, &sb) != 0) return close_with(Fail(path, std::strerror(errno)));
  if (!S_ISREG(sb.st_mode)) return close_with(Fail(path, "not a regular file"));
  if ((sb.st_mode & 077) != 0) {
    return close_with(Fail(path, "readable or writable by group or others (chmod 600 it)"));
  }
  if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
    if (errno == EWOULDBLOCK) {
      return close_with(Status(
          ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
          "owner file " + path + " is held by another running store: each store needs its own"));
    }
    return close_with(Fail(path, std::strerror(errno)));
  }
  std::string proof;
  if (created || sb.st_size == 0) {
    created = true;
    proof = RandomId("", kProofDigits);
    std::string line = proof + "\n";
    if (::pwrite(fd, line.data(), line.size(), 0) != static_cast<ssize_t>(line.size()) ||
        ::fsync(fd) != 0) {
      return close_with(Fail(path, std::string("cannot write: ") + std::strerror(errno)));
    }
  } else {
    char buf[kProofDigits + 2] = {};
    ssize_t n = ::pread(fd, buf, sizeof buf, 0);
    if (n < 0) return close_with(Fail(path, std::strerror(errno)));
    proof.assign(buf, static_cast<size_t>(n));
    if (!proof.empty() && proof.back() == '\n') proof.pop_back();
    if (!IsProof(proof)) {
      return close_with(
          Fail(path, "does not hold 32 lowercase hex digits (remove it to start over)"));
    }
  }
  return OwnerProofFile(fd, path, std::move(proof), created);
}

OwnerProofFile::OwnerProofFile(OwnerProofFile&& other) noexcept
    : fd_(std::exchange(other.fd_, -1)),
      path_(std::move(other.path_)),
      proof_(std::move(other.proof_)),
      created_(other.created_) {}

OwnerProofFile& OwnerProofFile::operator=(OwnerProofFile&& other) noexcept {
  if (this != &other) {
    if (fd_ >= 0) ::close(fd_);
    fd_ = std::exchange(other.fd_, -1);
    path_ = std::move(other.path_);
    proof_ = std::move(other.proof_);
    created_ = other.created_;
  }
  return *this;
}

OwnerProofFile::~OwnerProofFile() {
  if (fd_ >= 0) ::close(fd_);
}

}  // namespace kvcached
