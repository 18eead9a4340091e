// Test-only: the append-only file in which one chaos worker slot records
// every operation it starts and how it ended, so that the parent keeps the
// history even when it kills the worker. A begin record is written before
// the call, the end record after it returns and before the next call
// starts; an operation with a begin and no end was in flight when its
// worker died. Records have a fixed size and each goes out in one write(2)
// to an O_APPEND file, so a killed writer leaves whole records only (a torn
// tail, which SIGKILL cannot produce on a local file, is ignored anyway).
// An OpLog is used by one thread; readers open the file themselves.
#pragma once

#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

namespace kvcached::chaos {

// kUpsert: a put that replaces the key's object (Client::BatchUpsert).
enum class OpKind : uint8_t { kPut = 1, kRemove = 2, kGet = 3, kUpsert = 4 };
inline bool IsWriteOfValue(OpKind k) { return k == OpKind::kPut || k == OpKind::kUpsert; }
enum class OpPhase : uint8_t { kBegin = 1, kEnd = 2 };
// What a get's bytes were (end records of kGet only).
enum class ReadResult : uint8_t {
  kNone = 0,
  kValue = 1,   // exactly version `version` of the key
  kAbsent = 2,  // OBJECT_NOT_FOUND
  kWrong = 3,   // bytes that are no version of the key (`version`: what the header claimed)
  kError = 4,   // another error code
};

struct OpRecord {
  static constexpr uint32_t kMagic = 0x43484c47;  // "GLHC"
  uint32_t magic = kMagic;
  OpPhase phase = OpPhase::kBegin;
  OpKind kind = OpKind::kGet;
  ReadResult read = ReadResult::kNone;
  uint8_t reserved0 = 0;
  uint32_t worker = 0;       // the worker slot
  uint32_t incarnation = 0;  // which process of the slot (a killed worker is replaced)
  uint64_t seq = 0;          // pairs begin and end within one incarnation
  uint32_t key = 0;          // key id; KeyName() gives the name
  int32_t code = 0;          // end: the ErrorCode's value
  uint64_t version = 0;      // put: the version written; get: the version read
  int64_t mono_ns = 0;       // CLOCK_MONOTONIC: one clock for every process on the host
  int32_t segment = -1;      // put end: index of the segment holding the object, -1 unknown
  uint32_t size = 0;         // put: bytes written; get: bytes returned
  uint64_t reserved1 = 0;
};
static_assert(sizeof(OpRecord) == 64, "records are written whole, one write(2) each");

class OpLog {
 public:
  // Keys: each worker slot owns kKeysPerSlot ids; a key's id is
  // slot * kKeysPerSlot + index.
  static constexpr uint32_t kKeysPerSlot = 4096;
  static uint32_t KeyId(uint32_t slot, uint32_t index) { return slot * kKeysPerSlot + index; }
  static uint32_t SlotOf(uint32_t key) { return key / kKeysPerSlot; }
  static std::string KeyName(uint32_t key) {
    return "chaos-w" + std::to_string(SlotOf(key)) + "-k" + std::to_string(key % kKeysPerSlot);
  }

  static int64_t NowNs() {
    timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
  }

  // Opens `path` for appending (creating it). Throws std::runtime_error.
  explicit OpLog(const std::string& path)
      : fd_(::open(path.c_str(), O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) {
    if (fd_ < 0) throw std::runtime_error("cannot open the op log " + path);
  }
  ~OpLog() { ::close(fd_); }
  OpLog(const OpLog&) = delete;
  OpLog& operator=(const OpLog&) = delete;

  // Appends one record. Throws when the write fails: a worker whose history
  // is not recorded must not go on.
  void Append(const OpRecord& r) {
    if (::write(fd_, &r, sizeof r) != static_cast<ssize_t>(sizeof r)) {
      throw std::runtime_error("cannot append to the op log");
    }
  }

  // The whole records of `path` from byte `offset` on; advances `offset`
  // past them. A missing file reads as empty.
  static std::vector<OpRecord> ReadFrom(const std::string& path, uint64_t& offset) {
    std::vector<OpRecord> out;
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return out;
    OpRecord buf[256];
    for (;;) {
      ssize_t n = ::pread(fd, buf, sizeof buf, static_cast<off_t>(offset));
      if (n <= 0) break;
      size_t whole = static_cast<size_t>(n) / sizeof(OpRecord);
      for (size_t i = 0; i < whole; ++i) {
        if (buf[i].magic == OpRecord::kMagic) out.push_back(buf[i]);
      }
      offset += whole * sizeof(OpRecord);
      if (whole * sizeof(OpRecord) != static_cast<size_t>(n) || whole == 0) break;
    }
    ::close(fd);
    return out;
  }

 private:
  int fd_;
};

}  // namespace kvcached::chaos
