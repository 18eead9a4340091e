#include "store/shm_runtime_dir.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace kvcached {
namespace {

std::string Octal(mode_t mode) {
  char buf[8];
  std::snprintf(buf, sizeof buf, "%04o", static_cast<unsigned>(mode));
  return buf;
}

// An environment value as a directory: absolute (the XDG spec says to ignore
// a relative one), the first of a colon-separated list (systemd gives one
// entry per RuntimeDirectory= name), trailing slashes dropped.
std::string DirFromEnv(const std::string& value) {
  std::string dir = value.substr(0, value.find(':'));
  if (dir.empty() || dir[0] != '/') return "";
  while (dir.size() > 1 && dir.back() == '/') dir.pop_back();
  return dir;
}

class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// mkdir -p: parents with 0755 (they guard nothing: the last directory does),
// the last one with `mode`. Directories that exist are left as they are.
Status MakeDirs(const std::string& path, mode_t mode) {
  for (size_t at = path.find('/', 1);; at = path.find('/', at + 1)) {
    bool last = at == std::string::npos;
    std::string part = last ? path : path.substr(0, at);
    if (::mkdir(part.c_str(), last ? mode : 0755) != 0 && errno != EEXIST) {
      return Status(ErrorCode::INVALID_PARAMS, "cannot create the shm runtime directory " + part +
                                                   ": " + std::strerror(errno));
    }
    if (last) return Status::Ok();
  }
}

}  // namespace

ShmRuntimeDirEnv ShmRuntimeDirEnv::FromProcess() {
  ShmRuntimeDirEnv env;
  if (const char* v = std::getenv("RUNTIME_DIRECTORY")) env.runtime_directory = v;
  if (const char* v = std::getenv("XDG_RUNTIME_DIR")) env.xdg_runtime_dir = v;
  env.euid = ::geteuid();
  return env;
}

ShmRuntimeDir ShmRuntimeDir::Resolve(const ShmRuntimeDirEnv& env) {
  if (std::string dir = DirFromEnv(env.runtime_directory); !dir.empty()) {
    return ShmRuntimeDir(dir, "$RUNTIME_DIRECTORY");
  }
  if (std::string dir = DirFromEnv(env.xdg_runtime_dir); !dir.empty()) {
    return ShmRuntimeDir(dir == "/" ? "/kvcached" : dir + "/kvcached", "$XDG_RUNTIME_DIR");
  }
  if (env.euid == 0) return ShmRuntimeDir("/run/kvcached/root", "root's default");
  return ShmRuntimeDir("/tmp/kvcached-" + std::to_string(env.euid),
                       "the default for uid " + std::to_string(env.euid));
}

mode_t ShmRuntimeDir::RequiredMode(bool group) { return group ? 0750 : 0700; }

std::string ShmRuntimeDir::SocketPath(const std::string& name) const {
  return path_ + "/" + name + ".sock";
}

Status ShmRuntimeDir::Prepare(uid_t owner_uid, std::optional<gid_t> group) const {
  const mode_t want = RequiredMode(group.has_value());
  const std::string where = "shm runtime directory " + path_ + " (" + source_ + ")";
  // Created 0700 even for a group: with group bits it would belong to this
  // process's group until the fchown below, and so look open to another.
  if (Status st = MakeDirs(path_, RequiredMode(false)); !st.ok()) return st;
  // Checked and changed through one descriptor, opened without following a
  // symlink, so what is checked is what is changed.
  Fd dir(::open(path_.c_str(), O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC));
  if (dir.get() < 0) {
    int err = errno;
    std::string why =
        err == ELOOP || err == ENOTDIR ? "it is a symlink or not a directory" : std::strerror(err);
    return Status(ErrorCode::INVALID_PARAMS, "cannot use the " + where + ": " + why +
                                                 "; remove it, or give --shm-socket a path");
  }
  struct stat info {};
  if (::fstat(dir.get(), &info) != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "cannot stat the " + where + ": " + std::strerror(errno));
  }
  if (info.st_uid != owner_uid) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "refusing the " + where + ": it is owned by uid " + std::to_string(info.st_uid) +
                      ", not by this store's uid " + std::to_string(owner_uid) +
                      ", so its owner could replace the socket. Remove it (or give --shm-socket a "
                      "path in a directory the store's user owns)");
  }
  const mode_t mode = info.st_mode & 0777;
  // Group bits for another group than the allowed one open the socket to
  // that group: more than required, however they compare to `want`.
  bool other_group = (mode & 070) != 0 && (!group || info.st_gid != *group);
  if ((mode & ~want) != 0 || other_group) {
    std::string fix = "chmod " + Octal(want) + " " + path_;
    if (group) fix += " && chgrp " + std::to_string(*group) + " " + path_;
    return Status(ErrorCode::INVALID_PARAMS,
                  "refusing the " + where + ": its mode " + Octal(mode) + " (group " +
                      std::to_string(info.st_gid) + ") lets more users reach the socket than the " +
                      Octal(want) + (group ? " for group " + std::to_string(*group) : "") +
                      " this store needs. Run `" + fix + "` (or remove it)");
  }
  if (group && info.st_gid != *group && ::fchown(dir.get(), static_cast<uid_t>(-1), *group) != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "cannot give the " + where + " to group " + std::to_string(*group) + ": " +
                      std::strerror(errno) + " (the store's user must be a member of --shm-group)");
  }
  // Tighter than wanted (a umask, systemd's RuntimeDirectoryMode=0700 with
  // a group): widen to exactly `want`, which the checks above showed is no
  // more than the policy allows.
  if (mode != want && ::fchmod(dir.get(), want) != 0) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "cannot chmod the " + where + " to " + Octal(want) + ": " + std::strerror(errno));
  }
  return Status::Ok();
}

}  // namespace kvcached
