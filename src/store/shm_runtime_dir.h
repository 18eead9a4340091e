// ShmRuntimeDir: the directory that holds a segment host's default
// shared-memory socket, `<dir>/<client id>.sock`, and the checks that make it
// private to the store's user (and to the --shm-group, when one is given):
// a socket file is only as private as the directories above it, since
// connect() needs search permission on them. Which directory: the first of
//   $RUNTIME_DIRECTORY (systemd's RuntimeDirectory=; the first when several),
//   $XDG_RUNTIME_DIR/kvcached,
//   /run/kvcached/root for root,
//   /tmp/kvcached-<uid>.
// Not responsible for the socket itself (ShmServer) or for who may attach
// (ShmAccessPolicy). Resolve() is pure (the environment is injected);
// Prepare() touches the filesystem. Values only; thread-safe.
#pragma once

#include <sys/types.h>

#include <optional>
#include <string>

#include "core/status.h"

namespace kvcached {

// What Resolve() reads, injected so tests choose it.
struct ShmRuntimeDirEnv {
  std::string runtime_directory;  // $RUNTIME_DIRECTORY
  std::string xdg_runtime_dir;    // $XDG_RUNTIME_DIR
  uid_t euid = 0;

  static ShmRuntimeDirEnv FromProcess();  // this process's environment and euid
};

class ShmRuntimeDir {
 public:
  static ShmRuntimeDir Resolve(const ShmRuntimeDirEnv& env);

  // The mode Prepare() gives the directory: 0700, or 0750 with a group.
  static mode_t RequiredMode(bool group);

  // Makes sure the directory exists, is a directory (not a symlink), is
  // owned by `owner_uid`, and grants nothing beyond RequiredMode. A missing
  // one is created 0700 (missing parents with 0755); then it, like one that
  // exists but grants less (0700 under systemd's RuntimeDirectoryMode= when
  // a group is wanted), is given exactly RequiredMode and, with a group,
  // that group. Idempotent. INVALID_PARAMS, naming the
  // path and the fix, for a directory owned by someone else, one that grants
  // more than required (to others, or to another group), or one that cannot
  // be created or given the group.
  Status Prepare(uid_t owner_uid, std::optional<gid_t> group) const;

  const std::string& path() const { return path_; }
  // Where the path came from: "$RUNTIME_DIRECTORY", "$XDG_RUNTIME_DIR",
  // "root's default", "the default for uid N".
  const std::string& source() const { return source_; }
  // `<path>/<name>.sock`.
  std::string SocketPath(const std::string& name) const;

 private:
  ShmRuntimeDir(std::string path, std::string source)
      : path_(std::move(path)), source_(std::move(source)) {}
  std::string path_;
  std::string source_;
};

}  // namespace kvcached
