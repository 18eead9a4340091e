#include "store/disk_tier.h"

#include <doctest/doctest.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "core/build_info.h"

namespace kvcached {
namespace {

constexpr auto kWait = std::chrono::seconds(60);
constexpr uint64_t kMiB = 1ull << 20;

// Whether files in `dir` can be opened with O_DIRECT (not on tmpfs with
// some kernels).
bool DirectIoWorks(const std::string& dir) {
  std::string probe = dir + "/probe";
  int fd = ::open(probe.c_str(), O_RDWR | O_CREAT | O_DIRECT, 0600);
  if (fd < 0) return false;
  ::close(fd);
  ::unlink(probe.c_str());
  return true;
}

// A fresh directory where O_DIRECT works ($TMPDIR, /tmp, else /var/tmp),
// removed with everything in it at scope exit.
struct TierDir {
  TierDir() {
    std::vector<std::string> bases;
    if (const char* t = std::getenv("TMPDIR"); t != nullptr && *t != '\0') bases.push_back(t);
    bases.push_back("/tmp");
    bases.push_back("/var/tmp");
    for (const std::string& base : bases) {
      std::string tmpl = base + "/kvcached-disktier-XXXXXX";
      if (mkdtemp(tmpl.data()) == nullptr) continue;
      if (DirectIoWorks(tmpl)) {
        path = tmpl;
        return;
      }
      std::filesystem::remove_all(tmpl);
    }
    FAIL("no temporary directory supports O_DIRECT");
  }
  ~TierDir() {
    std::error_code ec;
    std::filesystem::permissions(path, std::filesystem::perms::owner_all,
                                 std::filesystem::perm_options::add, ec);
    std::filesystem::remove_all(path, ec);
  }
  std::string path;
};

DiskTierOptions Options(const TierDir& dir, uint64_t capacity = 32 * kMiB) {
  DiskTierOptions o;
  o.dir = dir.path;
  o.name = "store-1";
  o.capacity_bytes = capacity;
  o.staging_bytes = 16 * kMiB;
  return o;
}

// Bytes that differ for every (seed, position), so a misplaced block shows.
std::string Pattern(uint64_t size, uint64_t seed) {
  std::string out(size, '\0');
  std::mt19937_64 gen(seed * 0x9E3779B97F4A7C15ull + 1);
  for (uint64_t i = 0; i < size; i += 8) {
    uint64_t v = gen();
    std::memcpy(out.data() + i, &v, std::min<uint64_t>(8, size - i));
  }
  return out;
}

DiskRecord Rec(std::string key, uint64_t version, uint64_t size, uint8_t pin = 0) {
  DiskRecord r;
  r.key = std::move(key);
  r.version = version;
  r.size = size;
  r.checksum = version * 1000003 + size;
  r.pin = pin;
  return r;
}

// A Status delivered by a callback on the worker.
class Outcome {
 public:
  Outcome() : p_(std::make_shared<std::promise<Status>>()), f_(p_->get_future()) {}
  std::function<void(Status)> Callback() {
    auto p = p_;
    return [p](Status s) { p->set_value(std::move(s)); };
  }
  Status Get() {
    REQUIRE(f_.wait_for(kWait) == std::future_status::ready);
    return f_.get();
  }

 private:
  std::shared_ptr<std::promise<Status>> p_;
  std::future<Status> f_;
};

struct WriteResult {
  Status copied;
  Status written;
};

WriteResult WriteNow(DiskTier& tier, const DiskRecord& rec, const std::string& bytes) {
  Outcome copied, written;
  tier.Write(rec, bytes.data(), copied.Callback(), written.Callback());
  WriteResult r;
  r.copied = copied.Get();
  r.written = written.Get();
  return r;
}

void WriteOk(DiskTier& tier, const DiskRecord& rec, const std::string& bytes) {
  WriteResult r = WriteNow(tier, rec, bytes);
  REQUIRE_MESSAGE(r.copied.ok(), r.copied.ToString());
  REQUIRE_MESSAGE(r.written.ok(), r.written.ToString());
}

Status ReadNow(DiskTier& tier, const std::string& key, uint64_t version, uint64_t size,
               std::string* out) {
  out->assign(size, '\x77');
  Outcome done;
  tier.Read(key, version, out->data(), size, done.Callback());
  return done.Get();
}

// What on_dropped reported, in order.
struct DropLog {
  void Attach(DiskTier& tier) {
    tier.set_on_dropped([this](const DiskRecord& r, std::string_view why) {
      std::lock_guard<std::mutex> lock(mu);
      entries.emplace_back(r, std::string(why));
    });
  }
  std::vector<std::pair<DiskRecord, std::string>> Take() {
    std::lock_guard<std::mutex> lock(mu);
    return entries;
  }
  std::mutex mu;
  std::vector<std::pair<DiskRecord, std::string>> entries;
};

std::unique_ptr<DiskTier> OpenOk(const DiskTierOptions& o,
                                 std::vector<DiskRecord>* found = nullptr) {
  Result<std::unique_ptr<DiskTier>> t = DiskTier::Open(o, found);
  REQUIRE_MESSAGE(t.ok(), t.status().ToString());
  return std::move(t).value();
}

// A tier whose disk fails after `ios` operations (test builds' fault hook
// KVCACHED_FAULT_DISK_EIO_AFTER, read at Open); null, with the skip said,
// in a build without fault hooks.
std::unique_ptr<DiskTier> OpenFailingAfter(const TierDir& dir, const char* ios) {
  if (!GetBuildInfo().fault_hooks) {
    MESSAGE("skipped: this build has no fault hooks (KVCACHED_FAULT_HOOKS)");
    return nullptr;
  }
  ::setenv("KVCACHED_FAULT_DISK_EIO_AFTER", ios, 1);
  Result<std::unique_ptr<DiskTier>> opened = DiskTier::Open(Options(dir), nullptr);
  ::unsetenv("KVCACHED_FAULT_DISK_EIO_AFTER");
  REQUIRE_MESSAGE(opened.ok(), opened.status().ToString());
  return std::move(opened).value();
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

uint64_t FileSize(const std::string& path) {
  struct stat st {};
  REQUIRE(::stat(path.c_str(), &st) == 0);
  return static_cast<uint64_t>(st.st_size);
}

// Flips one byte of the tier file at the first place `needle` occurs, plus
// `delta`; the file may be open in a tier (an O_DIRECT read sees it).
void FlipByteAt(const std::string& path, const std::string& needle, int64_t delta) {
  std::string file = ReadFile(path);
  size_t at = file.find(needle);
  REQUIRE(at != std::string::npos);
  off_t pos = static_cast<off_t>(static_cast<int64_t>(at) + delta);
  int fd = ::open(path.c_str(), O_RDWR);
  REQUIRE(fd >= 0);
  char c = 0;
  REQUIRE(::pread(fd, &c, 1, pos) == 1);
  c = static_cast<char>(c ^ 0x40);
  REQUIRE(::pwrite(fd, &c, 1, pos) == 1);
  REQUIRE(::fsync(fd) == 0);
  ::close(fd);
}

bool SameRecord(const DiskRecord& a, const DiskRecord& b) {
  return a.key == b.key && a.version == b.version && a.size == b.size && a.checksum == b.checksum &&
         a.pin == b.pin;
}

std::set<std::pair<std::string, uint64_t>> Keys(const std::vector<DiskRecord>& v) {
  std::set<std::pair<std::string, uint64_t>> out;
  for (const DiskRecord& r : v) out.emplace(r.key, r.version);
  return out;
}

TEST_CASE("disk tier round trip keeps the exact bytes of records of many sizes") {
  TierDir dir;
  std::unique_ptr<DiskTier> tier = OpenOk(Options(dir));
  CHECK(tier->path() == dir.path + "/store-1.kvtier");
  const std::string long_key = std::string(4096, 'k') + std::string(66, 't');  // 8 KiB header
  struct Case {
    DiskRecord rec;
    std::string bytes;
  };
  std::vector<Case> cases;
  const uint64_t sizes[] = {0, 1, 4095, 4096, 4097, 100000, kMiB + 3};
  for (uint64_t i = 0; i < std::size(sizes); ++i) {
    cases.push_back(
        {Rec("key-" + std::to_string(i), i + 1, sizes[i], uint8_t(i)), Pattern(sizes[i], i)});
  }
  cases.push_back({Rec(long_key, 9, 12345, 3), Pattern(12345, 99)});
  cases.push_back({Rec(std::string("bin\0\xff\n", 6), 10, 5000), Pattern(5000, 100)});
  for (const Case& c : cases) WriteOk(*tier, c.rec, c.bytes);

  for (const Case& c : cases) {
    std::string got;
    Status s = ReadNow(*tier, c.rec.key, c.rec.version, c.rec.size, &got);
    REQUIRE_MESSAGE(s.ok(), s.ToString());
    CHECK(got == c.bytes);
    CHECK(tier->Contains(c.rec.key, c.rec.version));
    CHECK_FALSE(tier->Contains(c.rec.key, c.rec.version + 1));
  }
  std::vector<DiskRecord> records = tier->Records();
  CHECK(records.size() == cases.size());
  for (const Case& c : cases) {
    bool seen = false;
    for (const DiskRecord& r : records) seen = seen || SameRecord(r, c.rec);
    CHECK(seen);
  }

  std::string got;
  CHECK(ReadNow(*tier, "key-2", 3, 4096, &got).code() == ErrorCode::OBJECT_NOT_FOUND);  // size
  CHECK(ReadNow(*tier, "key-2", 4, 4095, &got).code() == ErrorCode::OBJECT_NOT_FOUND);  // version
  CHECK(ReadNow(*tier, "nope", 1, 1, &got).code() == ErrorCode::OBJECT_NOT_FOUND);

  DiskTierStats st = tier->stats();
  CHECK(st.online);
  CHECK(st.objects == cases.size());
  uint64_t payload = 0;
  for (const Case& c : cases) payload += c.rec.size;
  CHECK(st.bytes == payload);
  CHECK(st.writes == cases.size());
  CHECK(st.reads == cases.size());
  CHECK(st.write_ns > 0);
  CHECK(st.read_ns > 0);
  CHECK(st.capacity_bytes == 32 * kMiB);
  CHECK(st.used_bytes >= payload + cases.size() * 4096);
  CHECK(st.corrupt == 0);
  CHECK(st.write_errors == 0);
}

TEST_CASE("disk tier Drop removes a record up to a version and a new version replaces the old") {
  TierDir dir;
  std::unique_ptr<DiskTier> tier = OpenOk(Options(dir));
  DropLog dropped;
  dropped.Attach(*tier);
  WriteOk(*tier, Rec("a", 5, 100), Pattern(100, 1));
  tier->Drop("a", 4);
  CHECK(tier->Contains("a", 5));
  tier->Drop("a", 5);
  CHECK_FALSE(tier->Contains("a", 5));
  std::string got;
  CHECK(ReadNow(*tier, "a", 5, 100, &got).code() == ErrorCode::OBJECT_NOT_FOUND);
  tier->Drop("a", 5);  // idempotent
  tier->Drop("never", 1);

  WriteOk(*tier, Rec("b", 1, 5000), Pattern(5000, 2));
  WriteOk(*tier, Rec("b", 2, 7000), Pattern(7000, 3));
  CHECK_FALSE(tier->Contains("b", 1));
  CHECK(tier->Contains("b", 2));
  REQUIRE(tier->Records().size() == 1);
  REQUIRE(ReadNow(*tier, "b", 2, 7000, &got).ok());
  CHECK(got == Pattern(7000, 3));
  CHECK(tier->stats().objects == 1);
  CHECK(dropped.Take().empty());  // the tier's own drops only
}

TEST_CASE("disk tier evicts the least recently used records, never one just read") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 16 * kMiB);
  std::unique_ptr<DiskTier> tier = OpenOk(o);
  DropLog dropped;
  dropped.Attach(*tier);
  const uint64_t size = 4 * kMiB;  // three fit in 16 MiB, with their headers
  WriteOk(*tier, Rec("A", 1, size), Pattern(size, 'A'));
  WriteOk(*tier, Rec("B", 1, size), Pattern(size, 'B'));
  WriteOk(*tier, Rec("C", 1, size), Pattern(size, 'C'));
  CHECK(dropped.Take().empty());
  std::string got;
  REQUIRE(ReadNow(*tier, "A", 1, size, &got).ok());  // A becomes the most recent

  WriteOk(*tier, Rec("D", 1, size), Pattern(size, 'D'));
  auto log = dropped.Take();
  REQUIRE(log.size() == 1);
  CHECK(log[0].first.key == "B");
  CHECK(log[0].second.rfind("evicted", 0) == 0);

  WriteOk(*tier, Rec("E", 1, size), Pattern(size, 'E'));
  log = dropped.Take();
  REQUIRE(log.size() == 2);
  CHECK(log[1].first.key == "C");

  CHECK(tier->Contains("A", 1));
  CHECK_FALSE(tier->Contains("B", 1));
  CHECK_FALSE(tier->Contains("C", 1));
  CHECK(tier->Contains("D", 1));
  CHECK(tier->Contains("E", 1));
  REQUIRE(ReadNow(*tier, "A", 1, size, &got).ok());
  CHECK(got == Pattern(size, 'A'));
  REQUIRE(ReadNow(*tier, "E", 1, size, &got).ok());
  CHECK(got == Pattern(size, 'E'));
  DiskTierStats st = tier->stats();
  CHECK(st.evictions == 2);
  CHECK(st.objects == 3);
  CHECK(st.used_bytes == 3 * (size + 4096));

  // The evicted records' headers were zeroed: a restart does not bring them back.
  tier.reset();
  std::vector<DiskRecord> found;
  tier = OpenOk(o, &found);
  CHECK(Keys(found) == std::set<std::pair<std::string, uint64_t>>{{"A", 1}, {"D", 1}, {"E", 1}});
}

TEST_CASE("disk tier restart finds exactly the records written, not the dropped ones") {
  TierDir dir;
  DiskTierOptions o = Options(dir);
  std::vector<DiskRecord> expected;
  std::map<std::string, std::string> bytes;
  {
    std::vector<DiskRecord> found;
    std::unique_ptr<DiskTier> tier = OpenOk(o, &found);
    CHECK(found.empty());
    for (int i = 0; i < 6; ++i) {
      DiskRecord r = Rec("k" + std::to_string(i), 1, 3000 + 5000 * i, uint8_t(i));
      bytes[r.key] = Pattern(r.size, i);
      WriteOk(*tier, r, bytes[r.key]);
      expected.push_back(r);
    }
    tier->Drop("k2", 1);
    DiskRecord newer = Rec("k4", 2, 777);
    bytes["k4"] = Pattern(777, 44);
    WriteOk(*tier, newer, bytes["k4"]);
    expected.erase(expected.begin() + 4);
    expected.erase(expected.begin() + 2);
    expected.push_back(newer);
  }  // closing completes the drops' invalidations

  std::vector<DiskRecord> found;
  std::unique_ptr<DiskTier> tier = OpenOk(o, &found);
  REQUIRE(found.size() == expected.size());
  for (size_t i = 0; i < found.size(); ++i) {  // oldest write first
    CHECK(SameRecord(found[i], expected[i]));
  }
  for (const DiskRecord& r : expected) {
    std::string got;
    REQUIRE(ReadNow(*tier, r.key, r.version, r.size, &got).ok());
    CHECK(got == bytes[r.key]);
  }
  DiskTierStats st = tier->stats();
  CHECK(st.scan_records == expected.size());
  CHECK(st.scan_dropped == 0);
  CHECK(st.objects == expected.size());
  // Writing goes on after a restart, and the next restart sees it too.
  WriteOk(*tier, Rec("after", 1, 10), Pattern(10, 7));
  tier.reset();
  tier = OpenOk(o, &found);
  CHECK(found.size() == expected.size() + 1);
  CHECK(found.back().key == "after");
}

TEST_CASE("disk tier scan drops a record whose payload was damaged and counts it") {
  TierDir dir;
  DiskTierOptions o = Options(dir);
  const std::string a = Pattern(50000, 1), b = Pattern(9000, 2);
  {
    std::unique_ptr<DiskTier> tier = OpenOk(o);
    WriteOk(*tier, Rec("a", 1, a.size()), a);
    WriteOk(*tier, Rec("b", 1, b.size()), b);
  }
  FlipByteAt(dir.path + "/store-1.kvtier", a.substr(0, 64), 20000);
  std::vector<DiskRecord> found;
  std::unique_ptr<DiskTier> tier = OpenOk(o, &found);
  CHECK(Keys(found) == std::set<std::pair<std::string, uint64_t>>{{"b", 1}});
  DiskTierStats st = tier->stats();
  CHECK(st.corrupt == 1);
  CHECK(st.scan_dropped == 1);
  CHECK(st.scan_records == 1);
  std::string got;
  CHECK(ReadNow(*tier, "a", 1, a.size(), &got).code() == ErrorCode::OBJECT_NOT_FOUND);
  REQUIRE(ReadNow(*tier, "b", 1, b.size(), &got).ok());
  CHECK(got == b);

  // The torn header was invalidated: the next scan does not meet it again.
  tier.reset();
  tier = OpenOk(o, &found);
  CHECK(found.size() == 1);
  CHECK(tier->stats().scan_dropped == 0);
}

TEST_CASE("disk tier read of a record damaged after open fails, drops and reports it") {
  TierDir dir;
  std::unique_ptr<DiskTier> tier = OpenOk(Options(dir));
  DropLog dropped;
  dropped.Attach(*tier);
  const std::string a = Pattern(70000, 11), b = Pattern(6000, 12);
  WriteOk(*tier, Rec("payload-hit", 1, a.size()), a);
  WriteOk(*tier, Rec("header-hit", 1, b.size()), b);
  const std::string path = dir.path + "/store-1.kvtier";
  FlipByteAt(path, a.substr(0, 64), 65000);  // in the payload
  FlipByteAt(path, "header-hit", 3);         // in the header's key

  const std::vector<std::pair<std::string, std::string>> damaged = {{"payload-hit", a},
                                                                    {"header-hit", b}};
  for (const auto& [key, want] : damaged) {
    std::string got;
    Status s = ReadNow(*tier, key, 1, want.size(), &got);
    CHECK(s.code() == ErrorCode::CHECKSUM_MISMATCH);
    CHECK(got == std::string(want.size(), '\x77'));  // dst untouched: no wrong bytes
    CHECK_FALSE(tier->Contains(key, 1));
    CHECK(ReadNow(*tier, key, 1, want.size(), &got).code() == ErrorCode::OBJECT_NOT_FOUND);
  }
  auto log = dropped.Take();
  REQUIRE(log.size() == 2);
  CHECK(log[0].first.key == "payload-hit");
  CHECK(log[0].second.rfind("corrupt", 0) == 0);
  CHECK(log[1].first.key == "header-hit");
  DiskTierStats st = tier->stats();
  CHECK(st.corrupt == 2);
  CHECK(st.objects == 0);
  CHECK(st.online);
}

TEST_CASE("disk tier refuses a file at its path that is not its own and leaves it as it is") {
  TierDir dir;
  const std::string path = dir.path + "/store-1.kvtier";
  for (uint64_t size : {uint64_t{0}, uint64_t{100}, uint64_t{20 * kMiB}}) {
    CAPTURE(size);
    std::string content = Pattern(size, 5);
    {
      std::ofstream out(path, std::ios::binary | std::ios::trunc);
      out << content;
    }
    Result<std::unique_ptr<DiskTier>> t = DiskTier::Open(Options(dir), nullptr);
    REQUIRE_FALSE(t.ok());
    CHECK(t.code() == ErrorCode::INVALID_PARAMS);
    CHECK(t.status().message().find("is not a kvcached disk tier file") != std::string::npos);
    CHECK(t.status().message().find(path) != std::string::npos);
    CHECK(ReadFile(path) == content);
  }
}

TEST_CASE("disk tier gives clear errors for unusable directories and options") {
  TierDir dir;
  DiskTierOptions o = Options(dir);

  o.dir = dir.path + "/missing";
  Result<std::unique_ptr<DiskTier>> t = DiskTier::Open(o, nullptr);
  CHECK(t.code() == ErrorCode::INVALID_PARAMS);
  CHECK(t.status().message().find("does not exist") != std::string::npos);

  // Under a regular file: no permission bits make this one work, root or not.
  { std::ofstream(dir.path + "/file") << "x"; }
  o.dir = dir.path + "/file/sub";
  t = DiskTier::Open(o, nullptr);
  CHECK(t.code() == ErrorCode::INVALID_PARAMS);
  CHECK(t.status().message().find("Not a directory") != std::string::npos);
  CHECK(t.status().message().find(o.dir) != std::string::npos);

  if (geteuid() != 0) {  // root writes anywhere
    std::string ro = dir.path + "/read-only";
    REQUIRE(::mkdir(ro.c_str(), 0500) == 0);
    o.dir = ro;
    t = DiskTier::Open(o, nullptr);
    CHECK(t.code() == ErrorCode::NO_AVAILABLE_HANDLE);
    CHECK(t.status().message().find("Permission denied") != std::string::npos);
    ::chmod(ro.c_str(), 0700);
  }

  o = Options(dir, 16 * kMiB - 4096);
  t = DiskTier::Open(o, nullptr);
  CHECK(t.code() == ErrorCode::INVALID_PARAMS);
  CHECK(t.status().message().find("minimum") != std::string::npos);

  o = Options(dir);
  o.queue_depth = 0;
  CHECK(DiskTier::Open(o, nullptr).code() == ErrorCode::INVALID_PARAMS);

  o = Options(dir);
  o.name = "a/b c";
  std::unique_ptr<DiskTier> tier = OpenOk(o);
  CHECK(tier->path() == dir.path + "/a_b_c.kvtier");
}

TEST_CASE("disk tier says so when the file cannot be allocated, and leaves nothing behind") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 1ull << 50);  // 1 PiB
  Result<std::unique_ptr<DiskTier>> t = DiskTier::Open(o, nullptr);
  REQUIRE_FALSE(t.ok());
  CHECK(t.code() == ErrorCode::NO_AVAILABLE_HANDLE);
  const std::string m = t.status().message();
  INFO(m);
  CHECK(m.find("cannot allocate 1 PiB") != std::string::npos);
  CHECK(m.find(dir.path + "/store-1.kvtier") != std::string::npos);
  CHECK(std::filesystem::is_empty(dir.path));
}

TEST_CASE("disk tier is held by one opener at a time") {
  TierDir dir;
  std::unique_ptr<DiskTier> tier = OpenOk(Options(dir));
  Result<std::unique_ptr<DiskTier>> again = DiskTier::Open(Options(dir), nullptr);
  CHECK(again.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  tier.reset();
  CHECK(DiskTier::Open(Options(dir), nullptr).ok());
}

TEST_CASE("disk tier made with another capacity is made anew when empty, refused when not") {
  TierDir dir;
  const std::string path = dir.path + "/store-1.kvtier";
  OpenOk(Options(dir, 16 * kMiB)).reset();
  CHECK(FileSize(path) == 16 * kMiB);
  {
    std::unique_ptr<DiskTier> tier = OpenOk(Options(dir, 32 * kMiB));
    CHECK(FileSize(path) == 32 * kMiB);
    WriteOk(*tier, Rec("kept", 1, 1000), Pattern(1000, 1));
  }
  std::string before = ReadFile(path);
  Result<std::unique_ptr<DiskTier>> t = DiskTier::Open(Options(dir, 16 * kMiB), nullptr);
  CHECK(t.code() == ErrorCode::INVALID_PARAMS);
  CHECK(t.status().message().find("holds 1 records") != std::string::npos);
  CHECK(ReadFile(path) == before);
  std::vector<DiskRecord> found;
  OpenOk(Options(dir, 32 * kMiB), &found);
  CHECK(found.size() == 1);
}

TEST_CASE("disk tier refuses records too large for the file or staging memory, and bad keys") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 16 * kMiB);
  o.staging_bytes = kMiB;
  std::unique_ptr<DiskTier> tier = OpenOk(o);
  std::string big = Pattern(kMiB, 1);
  WriteResult r = WriteNow(*tier, Rec("big", 1, big.size()), big);  // its header does not fit
  CHECK(r.copied.code() == ErrorCode::BUFFER_OVERFLOW);
  CHECK(r.written.code() == ErrorCode::BUFFER_OVERFLOW);
  CHECK(WriteNow(*tier, Rec("", 1, 1), "x").copied.code() == ErrorCode::INVALID_KEY);
  CHECK(WriteNow(*tier, Rec(std::string(4163, 'k'), 1, 1), "x").copied.code() ==
        ErrorCode::INVALID_KEY);
  CHECK(tier->stats().refused == 3);
  CHECK(tier->stats().objects == 0);
  WriteOk(*tier, Rec("fits", 1, kMiB - 4096), big.substr(0, kMiB - 4096));
}

TEST_CASE("disk tier staging backpressure: writes beyond staging memory wait, all complete") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 48 * kMiB);
  o.staging_bytes = 8 * kMiB;  // one 4 MiB record (and its header) at a time
  std::unique_ptr<DiskTier> tier = OpenOk(o);
  constexpr int kWrites = 10;
  const uint64_t size = 4 * kMiB;
  std::vector<std::string> src(kWrites), dst(kWrites);
  std::mutex mu;
  std::vector<std::string> events;
  auto note = [&](std::string what) {
    std::lock_guard<std::mutex> lock(mu);
    events.push_back(std::move(what));
  };
  std::vector<Outcome> copied(kWrites), written(kWrites), read(kWrites);
  for (int i = 0; i < kWrites; ++i) {
    src[i] = Pattern(size, 1000 + i);
    dst[i].assign(size, '\0');
    auto c = copied[i].Callback();
    auto w = written[i].Callback();
    tier->Write(
        Rec("obj" + std::to_string(i), 1, size), src[i].data(),
        [&, i, c](Status s) {
          note("copied" + std::to_string(i));
          c(s);
        },
        [&, i, w](Status s) {
          note("written" + std::to_string(i));
          w(s);
        });
    // Read back at once: from staging memory, or after waiting for the copy.
    tier->Read("obj" + std::to_string(i), 1, dst[i].data(), size, read[i].Callback());
  }
  for (int i = 0; i < kWrites; ++i) {
    Status c = copied[i].Get(), w = written[i].Get(), r = read[i].Get();
    CHECK_MESSAGE(c.ok(), c.ToString());
    CHECK_MESSAGE(w.ok(), w.ToString());
    CHECK_MESSAGE(r.ok(), r.ToString());
    CHECK(dst[i] == src[i]);
  }
  auto pos = [&](const std::string& e) {
    return std::find(events.begin(), events.end(), e) - events.begin();
  };
  for (int i = 0; i + 1 < kWrites; ++i) {
    CHECK(pos("written" + std::to_string(i)) < pos("copied" + std::to_string(i + 1)));
  }
  CHECK(tier->stats().objects == kWrites);
  CHECK(tier->stats().evictions == 0);
}

TEST_CASE("disk tier drops records whose writes are queued or in flight") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 48 * kMiB);
  o.staging_bytes = 8 * kMiB;  // one record at a time: obj1..3 wait while obj0 is written
  std::unique_ptr<DiskTier> tier = OpenOk(o);
  const uint64_t size = 4 * kMiB;
  std::vector<std::string> src;
  std::vector<Outcome> copied(4), written(4);
  for (int i = 0; i < 4; ++i) src.push_back(Pattern(size, 50 + i));
  // On the worker, when obj0 is in staging memory and every Write was made:
  // obj0's write has left but not completed (completions are handled in a
  // later round), obj2 is queued.
  std::promise<void> all_written;
  std::shared_future<void> gate = all_written.get_future().share();
  auto first_copied = copied[0].Callback();
  tier->Write(
      Rec("obj0", 1, size), src[0].data(),
      [&, gate](Status s) {
        CHECK(gate.wait_for(kWait) == std::future_status::ready);  // no throw on the worker
        tier->Drop("obj0", 1);
        tier->Drop("obj2", 1);
        first_copied(s);
      },
      written[0].Callback());
  for (int i = 1; i < 4; ++i) {
    tier->Write(Rec("obj" + std::to_string(i), 1, size), src[i].data(), copied[i].Callback(),
                written[i].Callback());
  }
  all_written.set_value();
  CHECK(copied[0].Get().ok());
  CHECK(written[0].Get().code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(copied[2].Get().code() == ErrorCode::OBJECT_NOT_FOUND);
  CHECK(written[2].Get().code() == ErrorCode::OBJECT_NOT_FOUND);
  for (int i : {1, 3}) {
    CHECK(copied[i].Get().ok());
    CHECK(written[i].Get().ok());
  }
  CHECK(Keys(tier->Records()) ==
        std::set<std::pair<std::string, uint64_t>>{{"obj1", 1}, {"obj3", 1}});
  tier.reset();
  std::vector<DiskRecord> found;
  tier = OpenOk(o, &found);
  CHECK(Keys(found) == std::set<std::pair<std::string, uint64_t>>{{"obj1", 1}, {"obj3", 1}});
  CHECK(tier->stats().used_bytes == 2 * (size + 4096));
}

TEST_CASE("disk tier closing answers queued writes and completes those in flight") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 48 * kMiB);
  o.staging_bytes = 8 * kMiB;
  const uint64_t size = 4 * kMiB;
  std::vector<std::string> src;
  std::vector<Outcome> copied(5), written(5);
  for (int i = 0; i < 5; ++i) src.push_back(Pattern(size, 60 + i));
  {
    std::unique_ptr<DiskTier> tier = OpenOk(o);
    for (int i = 0; i < 5; ++i) {
      tier->Write(Rec("obj" + std::to_string(i), 1, size), src[i].data(), copied[i].Callback(),
                  written[i].Callback());
    }
  }  // every callback ran exactly once before the destructor returned
  std::set<std::pair<std::string, uint64_t>> on_disk;
  for (int i = 0; i < 5; ++i) {
    Status c = copied[i].Get(), w = written[i].Get();
    if (w.ok()) {
      CHECK(c.ok());
      on_disk.emplace("obj" + std::to_string(i), 1);
    } else {
      CHECK(w.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
    }
  }
  std::vector<DiskRecord> found;
  std::unique_ptr<DiskTier> tier = OpenOk(o, &found);
  CHECK(Keys(found) == on_disk);
}

TEST_CASE("disk tier with fsync writes, drops and finds its records again") {
  TierDir dir;
  DiskTierOptions o = Options(dir);
  o.fsync = true;
  {
    std::unique_ptr<DiskTier> tier = OpenOk(o);
    WriteOk(*tier, Rec("x", 1, 10000), Pattern(10000, 1));
    WriteOk(*tier, Rec("y", 1, 20000), Pattern(20000, 2));
    tier->Drop("x", 1);
  }
  std::vector<DiskRecord> found;
  std::unique_ptr<DiskTier> tier = OpenOk(o, &found);
  CHECK(Keys(found) == std::set<std::pair<std::string, uint64_t>>{{"y", 1}});
  std::string got;
  REQUIRE(ReadNow(*tier, "y", 1, 20000, &got).ok());
  CHECK(got == Pattern(20000, 2));
}

// A sequence of writes, reads, drops and evictions checked against a model
// of what the tier must hold, and the model against a restart.
TEST_CASE("disk tier agrees with a model over random operations and a restart") {
  TierDir dir;
  DiskTierOptions o = Options(dir, 16 * kMiB);
  o.staging_bytes = 4 * kMiB;
  o.queue_depth = 4;
  std::unique_ptr<DiskTier> tier = OpenOk(o);
  std::map<std::string, uint64_t> model;  // key -> version the tier holds
  std::map<std::pair<std::string, uint64_t>, std::pair<uint64_t, uint64_t>> made;  // size, seed
  DropLog dropped;
  dropped.Attach(*tier);
  size_t drops_seen = 0;
  std::mt19937_64 gen(42);
  uint64_t version = 0;
  for (int step = 0; step < 300; ++step) {
    std::string key = "key" + std::to_string(gen() % 16);
    int op = static_cast<int>(gen() % 10);
    if (op < 5) {
      uint64_t size = gen() % 3 == 0 ? gen() % 5000 : gen() % (3 * kMiB);
      uint64_t seed = gen();
      DiskRecord r = Rec(key, ++version, size);
      WriteOk(*tier, r, Pattern(size, seed));
      model[key] = r.version;
      made[{key, r.version}] = {size, seed};
      // The evictions this write caused were reported before it was written.
      auto log = dropped.Take();
      for (; drops_seen < log.size(); ++drops_seen) {
        const auto& [rec, why] = log[drops_seen];
        CHECK(why.rfind("evicted", 0) == 0);
        auto it = model.find(rec.key);
        REQUIRE(it != model.end());
        CHECK(it->second == rec.version);
        CHECK(rec.key != key);
        model.erase(it);
      }
    } else if (op < 8) {
      auto it = model.find(key);
      if (it == model.end()) continue;
      auto [size, seed] = made[{key, it->second}];
      std::string got;
      Status s = ReadNow(*tier, key, it->second, size, &got);
      REQUIRE_MESSAGE(s.ok(), s.ToString());
      CHECK(got == Pattern(size, seed));
    } else {
      auto it = model.find(key);
      if (it == model.end()) continue;
      tier->Drop(key, it->second);
      model.erase(it);
    }
    std::set<std::pair<std::string, uint64_t>> want(model.begin(), model.end());
    REQUIRE(Keys(tier->Records()) == want);
  }
  CHECK(tier->stats().evictions > 0);
  std::set<std::pair<std::string, uint64_t>> want(model.begin(), model.end());
  tier.reset();
  std::vector<DiskRecord> found;
  tier = OpenOk(o, &found);
  CHECK(Keys(found) == want);
  CHECK(tier->stats().scan_dropped == 0);
  for (const auto& [key, ver] : want) {
    auto [size, seed] = made[{key, ver}];
    std::string got;
    REQUIRE(ReadNow(*tier, key, ver, size, &got).ok());
    CHECK(got == Pattern(size, seed));
  }
}

TEST_CASE("disk tier goes offline when its disk fails, and reports its records") {
  TierDir dir;
  std::unique_ptr<DiskTier> tier = OpenFailingAfter(dir, "2");
  if (!tier) return;
  DropLog dropped;
  dropped.Attach(*tier);
  WriteOk(*tier, Rec("a", 1, 5000), Pattern(5000, 1));
  WriteOk(*tier, Rec("b", 1, 6000), Pattern(6000, 2));
  WriteResult third = WriteNow(*tier, Rec("c", 1, 7000), Pattern(7000, 3));
  CHECK(third.copied.ok());
  CHECK(third.written.code() == ErrorCode::WRITE_FAIL);

  DiskTierStats st = tier->stats();
  CHECK_FALSE(st.online);
  CHECK(st.offline_reason.find(tier->path()) != std::string::npos);
  CHECK(st.offline_reason.find(std::strerror(EIO)) != std::string::npos);
  CHECK(st.write_errors == 1);
  CHECK(st.objects == 0);
  auto log = dropped.Take();
  std::set<std::string> keys;
  for (const auto& [rec, why] : log) {
    keys.insert(rec.key);
    CHECK(why.rfind("disk tier offline: ", 0) == 0);
  }
  CHECK(keys == std::set<std::string>{"a", "b"});
  CHECK(log.size() == 2);

  WriteResult refused = WriteNow(*tier, Rec("d", 1, 10), "0123456789");
  CHECK(refused.copied.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  CHECK(refused.written.code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  std::string got;
  CHECK(ReadNow(*tier, "a", 1, 5000, &got).code() == ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS);
  CHECK(tier->stats().refused == 1);
}

TEST_CASE("disk tier goes offline after three read errors in a row") {
  TierDir dir;
  std::unique_ptr<DiskTier> tier = OpenFailingAfter(dir, "1");
  if (!tier) return;
  DropLog dropped;
  dropped.Attach(*tier);
  WriteOk(*tier, Rec("a", 1, 5000), Pattern(5000, 1));
  std::string got;
  for (int i = 0; i < 2; ++i) {  // a read error leaves the record where it is
    CHECK(ReadNow(*tier, "a", 1, 5000, &got).code() == ErrorCode::TRANSFER_FAIL);
    CHECK(got == std::string(5000, '\x77'));
    CHECK(tier->stats().online);
    CHECK(tier->Contains("a", 1));
  }
  CHECK(ReadNow(*tier, "a", 1, 5000, &got).code() == ErrorCode::TRANSFER_FAIL);
  DiskTierStats st = tier->stats();
  CHECK_FALSE(st.online);
  CHECK(st.read_errors == 3);
  CHECK(st.offline_reason.find("3 I/O errors in a row") != std::string::npos);
  auto log = dropped.Take();
  REQUIRE(log.size() == 1);
  CHECK(log[0].first.key == "a");
}

}  // namespace
}  // namespace kvcached
