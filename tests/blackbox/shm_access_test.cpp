// Black-box tests of who may use a store's shared-memory socket, with the
// real binary: where the default socket lives and with which permissions,
// the SO_PEERCRED check behind them (the store's uid, root, --shm-group),
// what a refused peer gets and how refusals are counted, the opt-in for
// abstract sockets, the runtime directory's checks, stale sockets. The
// tests run as root; forked children drop to uid 65534 (nobody) to play
// another local user, and speak the socket's protocol raw.
#include <doctest/doctest.h>

#include <fcntl.h>
#include <grp.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <functional>
#include <regex>

#include "core/rpc_protocol.h"
#include "data_client.h"
#include "kvcached/client.h"
#include "kvcached_process.h"
#include "net/socket_util.h"

namespace kvcached {
namespace {

using testing::DataClient;
using testing::KvcachedProcess;
using testing::LabeledMetric;
using testing::Metric;
using namespace std::chrono_literals;

constexpr uid_t kNobody = 65534;
constexpr gid_t kNogroup = 65534;
constexpr const char* kHost = "bb-shm-host";
constexpr const char* kPeerRefusals = R"(reason="peer_credentials")";

// Another uid needs root to become; without root these cases cannot run.
bool CanBecomeOthers() {
  if (::geteuid() == 0) return true;
  if (const char* strict = std::getenv("KVCACHED_NO_SKIPS"); strict && std::string(strict) == "1") {
    FAIL("the shm access tests switch to uid 65534 and need root (KVCACHED_NO_SKIPS=1)");
  }
  MESSAGE("skipped: the shm access tests switch to uid 65534 and need root");
  return false;
}

// A directory under /tmp that other users may traverse (mkdtemp makes 0700,
// which would refuse them for the wrong reason), removed afterwards.
class TempDir {
 public:
  TempDir() {
    char t[] = "/tmp/kvcached-bb-shm-XXXXXX";
    path_ = ::mkdtemp(t);
    ::chmod(path_.c_str(), 0755);
  }
  ~TempDir() { std::filesystem::remove_all(path_); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

struct FileInfo {
  bool exists = false;
  mode_t type = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
};

FileInfo Stat(const std::string& path) {
  struct stat st {};
  FileInfo f;
  if (::lstat(path.c_str(), &st) != 0) return f;
  f.exists = true;
  f.type = st.st_mode & S_IFMT;
  f.mode = st.st_mode & 07777;
  f.uid = st.st_uid;
  f.gid = st.st_gid;
  return f;
}

// The shm socket the store names in its readiness STATUS.
std::string ShmPath(const KvcachedProcess& store) {
  std::smatch m;
  std::string status = store.status();
  REQUIRE_MESSAGE(std::regex_search(status, m, std::regex(R"( shm (\S+))")), status);
  return m[1];
}

// A client of `master` on this test's host id that moves bytes only by
// shared memory.
std::unique_ptr<Client> OpenShmClient(const KvcachedProcess& master) {
  ClientConfig config;
  config.master_server_addr = master.Address("rpc");
  config.local_hostname = kHost;
  config.transport = TransportMode::kShm;
  Result<std::unique_ptr<Client>> opened = Client::Open(config);
  REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  return std::move(opened).value();
}

std::vector<std::string> StoreArgs(const KvcachedProcess& master, std::vector<std::string> extra) {
  std::vector<std::string> a = {
      "store", "--master", master.Address("rpc"), "--segment-size", "8MiB", "--host-id", kHost};
  a.insert(a.end(), extra.begin(), extra.end());
  return a;
}

// `kvcached store` in a clean environment (plus `env`), for start-ups that
// fail: its exit code and output.
std::pair<int, std::string> RunStore(const std::vector<std::string>& env,
                                     std::vector<std::string> args) {
  args.insert(args.begin(), "store");
  return testing::RunKvcached(env, args);
}

std::string Pattern(size_t n, char seed) {
  std::string s(n, '\0');
  for (size_t i = 0; i < n; ++i) s[i] = static_cast<char>(seed + i * 131 + (i >> 7));
  return s;
}

// ---- another local user, in a child process --------------------------------

struct Identity {
  uid_t uid = kNobody;
  gid_t gid = kNogroup;
  std::vector<gid_t> groups;  // supplementary
};

// How far a child got, and what the store said.
struct Attempt {
  std::string stage;  // "setup", "connect", "hello", "attach", "use" (failed there) or "attached"
  int32_t code = 0;   // the store's code (ILLEGAL_CLIENT) or ours
  bool error_frame = false;   // the store answered Hello with an error frame
  bool closed_after = false;  // and then closed the connection
  std::string message;
};

std::string Describe(const Attempt& a) {
  return "stage " + a.stage + ", code " + std::to_string(a.code) +
         (a.error_frame ? ", error frame" : "") + (a.closed_after ? ", then closed" : "") + ": " +
         a.message;
}

// Runs in the child, which already is `who`: Hello, ShmAttach, map, `use`.
Attempt TryAttach(const std::string& path,
                  const std::function<std::string(uint8_t*, uint64_t)>& use) {
  Attempt a;
  Deadline deadline = std::chrono::steady_clock::now() + 5s;
  const std::string peer = "store shm";
  Result<int> fd = ConnectUnix(path, deadline, peer);
  if (!fd.ok())
    return {"connect", static_cast<int32_t>(fd.code()), false, false, fd.status().message()};
  std::string hello =
      EncodeFrame(MsgType::kHello, 0, 7, HelloRequest{1, "other-user", kHost, "", "", ""});
  FrameHeader head;
  std::string body;
  Status st = SendAll(*fd, hello.data(), hello.size(), deadline, peer);
  if (st.ok()) st = RecvFrame(*fd, head, body, kMaxBodyBeforeHello, deadline, peer);
  if (!st.ok()) return {"hello", static_cast<int32_t>(st.code()), false, false, st.message()};
  if (head.flags & kFlagError) {
    ErrorBody err;
    (void)DecodeBody(body, err);
    char c;
    Status after = RecvExact(*fd, &c, 1, deadline, peer);
    return {"hello", err.code, true, !after.ok() && after.code() != ErrorCode::RPC_TIMEOUT,
            err.message};
  }
  HelloResponse res;
  if (!DecodeBody(body, res).ok() || res.code != 0) {
    return {"hello", res.code, false, false, "Hello answered: " + res.message};
  }
  FrameHeader attach;  // ShmAttach: a header with an empty body
  attach.type = static_cast<uint16_t>(MsgType::kShmAttach);
  attach.request_id = 8;
  unsigned char frame[kFrameHeaderBytes];
  EncodeHeader(attach, frame);
  int memfd = -1;
  st = SendAll(*fd, frame, sizeof frame, deadline, peer);
  if (st.ok()) st = RecvFrameWithFd(*fd, head, body, &memfd, 4096, deadline, peer);
  ShmAttachResponse seg;
  if (st.ok()) st = DecodeBody(body, seg);
  if (!st.ok() || memfd < 0) {
    return {"attach", static_cast<int32_t>(st.code()), false, false, "no segment: " + st.message()};
  }
  void* base = ::mmap(nullptr, seg.size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
  if (base == MAP_FAILED) return {"attach", -1, false, false, std::strerror(errno)};
  std::string wrong = use ? use(static_cast<uint8_t*>(base), seg.size) : "";
  if (!wrong.empty()) return {"use", -1, false, false, wrong};
  return {"attached", 0, false, false,
          "mapped segment '" + seg.segment + "' of " + std::to_string(seg.size) + " bytes"};
}

// Forks a child that becomes `who` and tries to attach to `path`; the
// parent gets what happened. No doctest in the child: it reports through a
// pipe and _exits.
Attempt AttachAs(const Identity& who, const std::string& path,
                 const std::function<std::string(uint8_t*, uint64_t)>& use = {}) {
  int pipefd[2];
  REQUIRE(::pipe2(pipefd, O_CLOEXEC) == 0);
  pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    ::close(pipefd[0]);
    Attempt a;
    if (::setgroups(who.groups.size(), who.groups.data()) != 0 ||
        ::setresgid(who.gid, who.gid, who.gid) != 0 ||
        ::setresuid(who.uid, who.uid, who.uid) != 0) {
      a = {"setup", -1, false, false, std::string("cannot switch user: ") + std::strerror(errno)};
    } else {
      a = TryAttach(path, use);
    }
    std::string out = a.stage + '\n' + std::to_string(a.code) + '\n' + (a.error_frame ? "1" : "0") +
                      (a.closed_after ? "1" : "0") + '\n' + a.message;
    (void)!::write(pipefd[1], out.data(), out.size());
    ::_exit(0);
  }
  ::close(pipefd[1]);
  std::string in;
  char buf[1024];
  ssize_t n;
  while ((n = ::read(pipefd[0], buf, sizeof buf)) > 0) in.append(buf, static_cast<size_t>(n));
  ::close(pipefd[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  Attempt a;
  size_t l1 = in.find('\n'), l2 = in.find('\n', l1 + 1), l3 = in.find('\n', l2 + 1);
  REQUIRE_MESSAGE(l3 != std::string::npos, "the child reported nothing: '" << in << "'");
  a.stage = in.substr(0, l1);
  a.code = std::stoi(in.substr(l1 + 1, l2 - l1 - 1));
  a.error_frame = in[l2 + 1] == '1';
  a.closed_after = in[l2 + 2] == '1';
  a.message = in.substr(l3 + 1);
  return a;
}

// A group for --shm-group that uid 65534 is not in by default: "users" where
// it exists, else the first other one in the group database.
std::pair<gid_t, std::string> SomeGroup() {
  if (group* g = ::getgrnam("users")) return {g->gr_gid, g->gr_name};
  ::setgrent();
  while (group* g = ::getgrent()) {
    if (g->gr_gid != 0 && g->gr_gid != kNogroup) {
      std::pair<gid_t, std::string> found{g->gr_gid, g->gr_name};
      ::endgrent();
      return found;
    }
  }
  ::endgrent();
  FAIL("no group other than root and nogroup in the group database");
  return {};
}

constexpr int32_t kIllegalClient = static_cast<int32_t>(ErrorCode::ILLEGAL_CLIENT);

TEST_CASE(
    "shm access: the default socket is a 0600 file in a 0700 directory; its own user moves bytes") {
  if (!CanBecomeOthers()) return;
  TempDir xdg;
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store(StoreArgs(master, {}), {"XDG_RUNTIME_DIR=" + xdg.path()});
  const std::string admin = store.Address("admin");
  const std::string dir = xdg.path() + "/kvcached";
  const std::string path = ShmPath(store);
  MESSAGE("default shm socket: " << path);
  CHECK(std::regex_match(path, std::regex(dir + R"(/store-[0-9a-f]{16}\.sock)")));
  FileInfo d = Stat(dir), s = Stat(path);
  REQUIRE(d.exists);
  CHECK(d.type == S_IFDIR);
  CHECK(d.mode == 0700);
  CHECK(d.uid == ::geteuid());
  REQUIRE(s.exists);
  CHECK(s.type == S_IFSOCK);
  CHECK(s.mode == 0600);
  CHECK(store.Log().find("admits uid 0 (root, the store's own)") != std::string::npos);

  // Another user does not get past the directory: the store never sees it.
  Attempt other = AttachAs({}, path);
  MESSAGE("uid 65534 against the 0700 directory: " << Describe(other));
  CHECK(other.stage == "connect");
  CHECK(other.message.find("Permission denied") != std::string::npos);
  CHECK(LabeledMetric(admin, "kvcached_store_shm_refusals_total", kPeerRefusals) == 0);

  // The store's own user maps the segment and moves bytes through it.
  std::unique_ptr<Client> opened = OpenShmClient(master);
  Client& client = *opened;
  std::string value = Pattern(1 << 20, 3);
  REQUIRE(client.Put("shm-own-user", value.data(), value.size()).ok());
  std::string back(value.size(), '\0');
  Result<uint64_t> got = client.Get("shm-own-user", back.data(), back.size());
  REQUIRE_MESSAGE(got.ok(), got.status().ToString());
  CHECK(*got == value.size());
  CHECK(back == value);
  CHECK(client.stats().shm_transfers >= 2);
  CHECK(client.stats().tcp_transfers == 0);
  CHECK(Metric(admin, "kvcached_store_shm_attaches_total") == 1);
  client.Close();

  // A clean stop removes the socket file; the directory stays for the next.
  CHECK(store.Stop(SIGTERM) == 0);
  CHECK_FALSE(Stat(path).exists);
  CHECK(Stat(dir).exists);
}

TEST_CASE(
    "shm access: with the directory opened up, SO_PEERCRED refuses another uid, counted once "
    "each") {
  if (!CanBecomeOthers()) return;
  TempDir xdg;
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store(StoreArgs(master, {}), {"XDG_RUNTIME_DIR=" + xdg.path()});
  const std::string admin = store.Address("admin");
  const std::string path = ShmPath(store);
  // What a careless chmod would do: now only the store's own check stands.
  REQUIRE(::chmod((xdg.path() + "/kvcached").c_str(), 0755) == 0);
  REQUIRE(::chmod(path.c_str(), 0666) == 0);

  constexpr int kAttempts = 3;
  for (int i = 0; i < kAttempts; ++i) {
    Attempt a = AttachAs({}, path);
    CAPTURE(i);
    MESSAGE("uid 65534 with the socket reachable: " << Describe(a));
    CHECK(a.stage == "hello");
    CHECK(a.error_frame);
    CHECK(a.code == kIllegalClient);
    CHECK(a.closed_after);
    CHECK(a.message ==
          "uid 65534 (gid 65534) may not attach to this shared-memory socket: it admits only uid 0 "
          "(root, the store's own); --shm-group admits a group's members");
  }
  // Counted at the refusal, before the error frame is written: exact now.
  CHECK(LabeledMetric(admin, "kvcached_store_shm_refusals_total", kPeerRefusals) == kAttempts);
  CHECK(LabeledMetric(admin, "kvcached_store_shm_refusals_total", R"(reason="session")") == 0);
  CHECK(Metric(admin, "kvcached_store_shm_attaches_total") == 0);
  std::string log = store.Log();
  size_t warned = 0;
  for (size_t at = log.find("uid 65534 gid 65534"); at != std::string::npos;
       at = log.find("uid 65534 gid 65534", at + 1)) {
    ++warned;
  }
  CHECK(warned == kAttempts);
  CHECK(log.find("refused peer pid") != std::string::npos);

  // Root still gets in: the check refuses others, not everyone.
  Attempt root = AttachAs({0, 0, {}}, path);
  CHECK_MESSAGE(root.stage == "attached", Describe(root));
  CHECK(LabeledMetric(admin, "kvcached_store_shm_refusals_total", kPeerRefusals) == kAttempts);
  CHECK(store.Stop(SIGTERM) == 0);
}

TEST_CASE(
    "shm access: --shm-group admits its members, by supplementary or effective gid, and no one "
    "else") {
  if (!CanBecomeOthers()) return;
  auto [gid, name] = SomeGroup();
  MESSAGE("--shm-group " << name << " (gid " << gid << ")");
  TempDir xdg;
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store(StoreArgs(master, {"--shm-group", name}),
                        {"XDG_RUNTIME_DIR=" + xdg.path()});
  const std::string admin = store.Address("admin");
  const std::string dir = xdg.path() + "/kvcached";
  const std::string path = ShmPath(store);
  FileInfo d = Stat(dir), s = Stat(path);
  CHECK(d.mode == 0750);
  CHECK(d.gid == gid);
  CHECK(s.mode == 0660);
  CHECK(s.gid == gid);
  CHECK(store.Log().find("members of group '" + name + "' (gid " + std::to_string(gid) + ")") !=
        std::string::npos);

  // Bytes written through the data port are what a member sees in its
  // mapping, and what it writes there the data port reads back.
  const std::string before = Pattern(64 << 10, 11), written = Pattern(64 << 10, 29);
  DataClient data(store.Address("data"));
  data.Hello();
  REQUIRE(data.Write(0, before) == 0);
  auto read_and_write = [&](uint8_t* base, uint64_t size) -> std::string {
    if (size != 8u << 20) return "segment of " + std::to_string(size) + " bytes";
    if (std::memcmp(base, before.data(), before.size()) != 0) return "bytes at 0 differ";
    std::memcpy(base + 8192 * 16, written.data(), written.size());
    return "";
  };
  Attempt member = AttachAs({kNobody, kNogroup, {gid}}, path, read_and_write);
  MESSAGE("uid 65534 with supplementary group " << gid << ": " << Describe(member));
  CHECK(member.stage == "attached");
  std::string back;
  REQUIRE(data.Read(8192 * 16, written.size(), back) == 0);
  CHECK(back == written);

  Attempt effective = AttachAs({kNobody, gid, {}}, path);
  MESSAGE("uid 65534 with effective gid " << gid << ": " << Describe(effective));
  CHECK(effective.stage == "attached");

  // Not a member: the 0750 directory stops it first...
  Attempt outsider = AttachAs({}, path);
  MESSAGE("uid 65534 outside the group: " << Describe(outsider));
  CHECK(outsider.stage == "connect");
  CHECK(outsider.message.find("Permission denied") != std::string::npos);
  // ...and SO_PEERCRED when the directory is opened up.
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  REQUIRE(::chmod(path.c_str(), 0666) == 0);
  Attempt refused = AttachAs({}, path);
  MESSAGE("uid 65534 outside the group, socket reachable: " << Describe(refused));
  CHECK(refused.stage == "hello");
  CHECK(refused.code == kIllegalClient);
  CHECK(refused.message.find("members of group '" + name + "'") != std::string::npos);
  CHECK(LabeledMetric(admin, "kvcached_store_shm_refusals_total", kPeerRefusals) == 1);
  CHECK(Metric(admin, "kvcached_store_shm_attaches_total") == 2);
  CHECK(store.Stop(SIGTERM) == 0);
}

TEST_CASE("shm access: a Hello of another protocol version is refused and the socket serves on") {
  TempDir xdg;
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store(StoreArgs(master, {}), {"XDG_RUNTIME_DIR=" + xdg.path()});
  const std::string path = ShmPath(store);
  Deadline deadline = std::chrono::steady_clock::now() + 10s;
  Result<int> fd = ConnectUnix(path, deadline, "store shm");
  REQUIRE(fd.ok());
  FrameHeader h;
  h.version = static_cast<uint16_t>(kRpcVersion + 1);
  h.type = static_cast<uint16_t>(MsgType::kHello);
  h.request_id = 1;
  std::string body = EncodeBody(HelloRequest{1, "from-the-future", kHost, "", "", ""});
  h.body_bytes = static_cast<uint32_t>(body.size());
  std::string frame(kFrameHeaderBytes, '\0');
  EncodeHeader(h, reinterpret_cast<unsigned char*>(frame.data()));
  frame += body;
  REQUIRE(SendAll(*fd, frame.data(), frame.size(), deadline, "store shm").ok());
  FrameHeader head;
  std::string answer;
  REQUIRE(RecvFrame(*fd, head, answer, kMaxBodyBeforeHello, deadline, "store shm").ok());
  REQUIRE((head.flags & kFlagError) != 0);
  ErrorBody err;
  REQUIRE(DecodeBody(answer, err).ok());
  CHECK(err.code == static_cast<int32_t>(ErrorCode::INVALID_VERSION));
  MESSAGE("refusal: " << err.message);
  // And the store closes that connection (an end of stream, or a reset: the
  // refused frame's body was never read). The socket is non-blocking: wait.
  char c;
  Status after = RecvExact(*fd, &c, 1, deadline, "store shm");
  CHECK_MESSAGE((!after.ok() && after.code() != ErrorCode::RPC_TIMEOUT), after.ToString());
  ::close(*fd);

  // Peers of this version are served as before.
  std::unique_ptr<Client> client = OpenShmClient(master);
  std::string value = Pattern(4096, 5);
  REQUIRE(client->Put("after-a-bad-hello", value.data(), value.size()).ok());
  std::string back(value.size(), '\0');
  REQUIRE(client->Get("after-a-bad-hello", back.data(), back.size()).ok());
  CHECK(back == value);
  CHECK(client->stats().shm_transfers >= 2);
}

TEST_CASE("shm access: an abstract socket needs --insecure, and SO_PEERCRED still guards it") {
  if (!CanBecomeOthers()) return;
  const std::string name = "@kvcached-bb-shm/" + std::to_string(::getpid());
  // Refused before the master is contacted (that address has none).
  auto [rc, out] = RunStore({}, {"--shm-socket", name, "--master", "127.0.0.1:1"});
  MESSAGE("abstract socket without --insecure: exit " << rc << ": " << out);
  CHECK(rc == 78);
  CHECK(out.find("refusing the abstract shm socket " + name) != std::string::npos);
  CHECK(out.find("or say --insecure") != std::string::npos);

  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  KvcachedProcess store(StoreArgs(master, {"--shm-socket", name, "--insecure"}));
  CHECK(ShmPath(store) == name);
  CHECK(store.Log().find("shm socket " + name + " is abstract (--insecure)") != std::string::npos);
  // No file, no permissions: anyone can connect, and the store refuses.
  Attempt other = AttachAs({}, name);
  MESSAGE("uid 65534 on the abstract socket: " << Describe(other));
  CHECK(other.stage == "hello");
  CHECK(other.code == kIllegalClient);
  CHECK(other.closed_after);
  CHECK(LabeledMetric(store.Address("admin"), "kvcached_store_shm_refusals_total", kPeerRefusals) ==
        1);
  CHECK(store.Stop(SIGTERM) == 0);
}

TEST_CASE("shm access: a runtime directory that is not private stops the store; stale sockets go") {
  if (!CanBecomeOthers()) return;
  TempDir tmp;
  const std::string xdg = "XDG_RUNTIME_DIR=" + tmp.path();
  const std::string dir = tmp.path() + "/kvcached";
  REQUIRE(::mkdir(dir.c_str(), 0700) == 0);
  REQUIRE(::chmod(dir.c_str(), 0755) == 0);
  auto [rc_open, out_open] = RunStore({xdg}, {"--master", "127.0.0.1:1"});
  MESSAGE("0755 runtime directory: exit " << rc_open << ": " << out_open);
  CHECK(rc_open == 78);
  CHECK(out_open.find("shm runtime directory " + dir + " ($XDG_RUNTIME_DIR)") != std::string::npos);
  CHECK(out_open.find("chmod 0700 " + dir) != std::string::npos);

  REQUIRE(::chmod(dir.c_str(), 0700) == 0);
  REQUIRE(::chown(dir.c_str(), kNobody, kNogroup) == 0);
  auto [rc_foreign, out_foreign] = RunStore({xdg}, {"--master", "127.0.0.1:1"});
  MESSAGE("runtime directory of uid 65534: exit " << rc_foreign << ": " << out_foreign);
  CHECK(rc_foreign == 78);
  CHECK(out_foreign.find("owned by uid 65534, not by this store's uid 0") != std::string::npos);

  // systemd's RuntimeDirectory= (0700, the store's) is taken as it is.
  const std::string rt = tmp.path() + "/rt";
  REQUIRE(::mkdir(rt.c_str(), 0700) == 0);
  KvcachedProcess master({"master", "--port", "0", "--admin-port", "0", "--meta-port", "0"});
  {
    KvcachedProcess store(StoreArgs(master, {}), {"RUNTIME_DIRECTORY=" + rt, xdg});
    CHECK(ShmPath(store).rfind(rt + "/store-", 0) == 0);
    CHECK(Stat(rt).mode == 0700);
    CHECK(store.Stop(SIGTERM) == 0);
  }

  // A store killed with SIGKILL leaves its socket file; one started on the
  // same path replaces it, and removes it when it stops cleanly.
  const std::string fixed = rt + "/fixed.sock";
  KvcachedProcess killed(StoreArgs(master, {"--shm-socket", fixed}));
  CHECK(ShmPath(killed) == fixed);
  CHECK(Stat(fixed).mode == 0600);
  CHECK(killed.Stop(SIGKILL) == 128 + SIGKILL);
  CHECK(Stat(fixed).type == S_IFSOCK);  // stale
  KvcachedProcess again(StoreArgs(master, {"--shm-socket", fixed}));
  CHECK(Stat(fixed).type == S_IFSOCK);
  CHECK(Stat(fixed).mode == 0600);
  Attempt root = AttachAs({0, 0, {}}, fixed);
  CHECK_MESSAGE(root.stage == "attached", Describe(root));
  CHECK(again.Stop(SIGTERM) == 0);
  CHECK_FALSE(Stat(fixed).exists);
}

}  // namespace
}  // namespace kvcached
