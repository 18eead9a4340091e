// The owner proof a store keeps across restarts (`kvcached store
// --owner-file`): a restarted store that presents the proof its previous
// process mounted its segment with takes the segment back at once, instead
// of waiting for the master's client TTL (docs/master.md, "Segment owners").
//
// The file holds 32 hex digits and a newline, mode 0600. It is created when
// missing, and locked (flock) for as long as the object lives, so two stores
// cannot share one by mistake: they would take the segment from each other.
#pragma once

#include <string>

#include "core/status.h"

namespace kvcached {

class OwnerProofFile {
 public:
  // Reads the proof in `path`, or creates the file with a new random one.
  // INVALID_PARAMS naming the path and the cause: unreadable or not a
  // regular file, content other than 32 hex digits, readable by group or
  // others; UNAVAILABLE_IN_CURRENT_STATUS when another process holds it.
  static Result<OwnerProofFile> Open(const std::string& path);

  OwnerProofFile(OwnerProofFile&& other) noexcept;
  OwnerProofFile& operator=(OwnerProofFile&& other) noexcept;
  OwnerProofFile(const OwnerProofFile&) = delete;
  OwnerProofFile& operator=(const OwnerProofFile&) = delete;
  ~OwnerProofFile();  // releases the lock

  const std::string& proof() const { return proof_; }  // never log it
  const std::string& path() const { return path_; }
  bool created() const { return created_; }  // false: an earlier process's proof

 private:
  OwnerProofFile(int fd, std::string path, std::string proof, bool created)
      : fd_(fd), path_(std::move(path)), proof_(std::move(proof)), created_(created) {}
  int fd_ = -1;
  std::string path_;
  std::string proof_;
  bool created_ = false;
};

}  // namespace kvcached
