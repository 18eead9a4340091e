#include "store/shm_runtime_dir.h"

#include <doctest/doctest.h>

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

namespace kvcached {
namespace {

ShmRuntimeDirEnv Env(std::string runtime_directory, std::string xdg, uid_t euid) {
  ShmRuntimeDirEnv e;
  e.runtime_directory = std::move(runtime_directory);
  e.xdg_runtime_dir = std::move(xdg);
  e.euid = euid;
  return e;
}

// A fresh directory under /tmp, removed with everything in it.
class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/kvcached-rtdir-test-XXXXXX";
    path_ = ::mkdtemp(t);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

mode_t ModeOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_mode & 07777;
}

gid_t GroupOf(const std::string& path) {
  struct stat st {};
  REQUIRE(::lstat(path.c_str(), &st) == 0);
  return st.st_gid;
}

TEST_CASE("shm runtime dir: systemd's, then XDG's, then root's or the uid's default") {
  ShmRuntimeDir systemd = ShmRuntimeDir::Resolve(Env("/run/kvcached/store-a", "/run/user/7", 7));
  CHECK(systemd.path() == "/run/kvcached/store-a");
  CHECK(systemd.source() == "$RUNTIME_DIRECTORY");
  // Several RuntimeDirectory= names: systemd joins them with ':'.
  CHECK(ShmRuntimeDir::Resolve(Env("/run/a/:/run/b", "", 7)).path() == "/run/a");

  ShmRuntimeDir xdg = ShmRuntimeDir::Resolve(Env("", "/run/user/1000/", 1000));
  CHECK(xdg.path() == "/run/user/1000/kvcached");
  CHECK(xdg.source() == "$XDG_RUNTIME_DIR");
  CHECK(xdg.SocketPath("store-0123") == "/run/user/1000/kvcached/store-0123.sock");

  CHECK(ShmRuntimeDir::Resolve(Env("", "", 0)).path() == "/run/kvcached/root");
  ShmRuntimeDir user = ShmRuntimeDir::Resolve(Env("", "", 1000));
  CHECK(user.path() == "/tmp/kvcached-1000");
  CHECK(user.source() == "the default for uid 1000");
  // Relative values are not directories anyone meant: ignored, as XDG says.
  CHECK(ShmRuntimeDir::Resolve(Env("run/x", "rel", 1000)).path() == "/tmp/kvcached-1000");

  CHECK(ShmRuntimeDir::RequiredMode(false) == 0700);
  CHECK(ShmRuntimeDir::RequiredMode(true) == 0750);
}

TEST_CASE("shm runtime dir: created private, parents and all, and prepared again unchanged") {
  TempDir tmp;
  std::string xdg = tmp.path() + "/user";
  ShmRuntimeDir dir = ShmRuntimeDir::Resolve(Env("", xdg, ::geteuid()));
  mode_t old_umask = ::umask(0077);  // a umask that would take the owner's bits is undone too
  Status st = dir.Prepare(::geteuid(), std::nullopt);
  ::umask(old_umask);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(ModeOf(dir.path()) == 0700);
  CHECK(ModeOf(xdg) == 0700);  // a parent: 0755 less that umask
  REQUIRE(dir.Prepare(::geteuid(), std::nullopt).ok());
  CHECK(ModeOf(dir.path()) == 0700);

  // Tighter than needed (0500: even the owner could not bind there) is widened.
  REQUIRE(::chmod(dir.path().c_str(), 0500) == 0);
  REQUIRE(dir.Prepare(::geteuid(), std::nullopt).ok());
  CHECK(ModeOf(dir.path()) == 0700);
}

TEST_CASE("shm runtime dir: a group widens a private directory to 0750 for that group") {
  TempDir tmp;
  ShmRuntimeDir dir = ShmRuntimeDir::Resolve(Env(tmp.path() + "/rt", "", ::geteuid()));
  REQUIRE(::mkdir(dir.path().c_str(), 0700) == 0);  // as RuntimeDirectoryMode=0700 leaves it
  // The process's own gid: a group any user may give its files to.
  gid_t group = ::getegid();
  Status st = dir.Prepare(::geteuid(), group);
  REQUIRE_MESSAGE(st.ok(), st.ToString());
  CHECK(ModeOf(dir.path()) == 0750);
  CHECK(GroupOf(dir.path()) == group);
  REQUIRE(dir.Prepare(::geteuid(), group).ok());
  CHECK(ModeOf(dir.path()) == 0750);

  // Without the group the same directory is now too open: refused, not
  // tightened behind the back of a store that may use it with its group.
  Status alone = dir.Prepare(::geteuid(), std::nullopt);
  CHECK(alone.code() == ErrorCode::INVALID_PARAMS);
  CHECK(alone.message().find("mode 0750") != std::string::npos);
  CHECK(alone.message().find("chmod 0700 " + dir.path()) != std::string::npos);
  // Group bits for a group other than the one asked for open it to others.
  Status other = dir.Prepare(::geteuid(), group + 1);
  CHECK(other.code() == ErrorCode::INVALID_PARAMS);
  CHECK(other.message().find("chgrp " + std::to_string(group + 1)) != std::string::npos);
  CHECK(ModeOf(dir.path()) == 0750);
  CHECK(GroupOf(dir.path()) == group);

  // A directory created for a group ends the same way.
  ShmRuntimeDir fresh = ShmRuntimeDir::Resolve(Env(tmp.path() + "/fresh", "", ::geteuid()));
  Status created = fresh.Prepare(::geteuid(), group);
  REQUIRE_MESSAGE(created.ok(), created.ToString());
  CHECK(ModeOf(fresh.path()) == 0750);
  CHECK(GroupOf(fresh.path()) == group);
}

TEST_CASE("shm runtime dir: a directory too open, someone else's, or not a directory is refused") {
  TempDir tmp;
  std::string path = tmp.path() + "/kvcached";
  ShmRuntimeDir dir = ShmRuntimeDir::Resolve(Env("", tmp.path(), ::geteuid()));
  REQUIRE(dir.path() == path);

  REQUIRE(::mkdir(path.c_str(), 0700) == 0);
  REQUIRE(::chmod(path.c_str(), 0755) == 0);
  Status open = dir.Prepare(::geteuid(), std::nullopt);
  CHECK(open.code() == ErrorCode::INVALID_PARAMS);
  MESSAGE(open.message());
  CHECK(open.message().find("shm runtime directory " + path + " ($XDG_RUNTIME_DIR)") !=
        std::string::npos);
  CHECK(open.message().find("mode 0755") != std::string::npos);
  CHECK(open.message().find("chmod 0700 " + path) != std::string::npos);
  CHECK(ModeOf(path) == 0755);  // refused, not changed

  // Owned by another uid: that owner could swap the socket whatever the mode.
  REQUIRE(::chmod(path.c_str(), 0700) == 0);
  uid_t someone_else = ::geteuid() + 1;
  Status foreign = dir.Prepare(someone_else, std::nullopt);
  CHECK(foreign.code() == ErrorCode::INVALID_PARAMS);
  MESSAGE(foreign.message());
  CHECK(foreign.message().find("owned by uid " + std::to_string(::geteuid()) +
                               ", not by this store's uid " + std::to_string(someone_else)) !=
        std::string::npos);

  // A symlink to a private directory is not that directory.
  std::string link = tmp.path() + "/link";
  REQUIRE(::symlink(path.c_str(), link.c_str()) == 0);
  Status symlink = ShmRuntimeDir::Resolve(Env(link, "", ::geteuid())).Prepare(::geteuid(), {});
  CHECK(symlink.code() == ErrorCode::INVALID_PARAMS);
  CHECK(symlink.message().find("symlink or not a directory") != std::string::npos);

  std::string file = tmp.path() + "/file";
  ::close(::open(file.c_str(), O_CREAT | O_WRONLY | O_CLOEXEC, 0600));
  Status not_dir = ShmRuntimeDir::Resolve(Env(file, "", ::geteuid())).Prepare(::geteuid(), {});
  CHECK(not_dir.code() == ErrorCode::INVALID_PARAMS);

  // A parent that cannot be created says which and why.
  Status below_file =
      ShmRuntimeDir::Resolve(Env(file + "/sub", "", ::geteuid())).Prepare(::geteuid(), {});
  CHECK(below_file.code() == ErrorCode::INVALID_PARAMS);
  CHECK(below_file.message().find("cannot create the shm runtime directory " + file + "/sub") !=
        std::string::npos);
}

}  // namespace
}  // namespace kvcached
