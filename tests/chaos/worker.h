// Test-only: one chaos client process. A Worker opens a kvcached::Client
// forced to TCP or to shared memory and, until its stop file appears,
// writes new versions of the keys of its slot (Remove, then Put: a put of
// an existing key would leave it unchanged), reads them back, and reads
// other slots' keys; a filler instead writes large objects to fill the
// pool, and removes them all when told to stop. Every operation goes to
// the slot's OpLog before it starts and after it ends, with what a get's
// bytes were (VersionedValue), so the parent can judge it even if this
// process is killed. A worker replacing a killed one replays the log to
// continue the version numbers. One thread; the Client's own threads
// aside.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace kvcached::chaos {

struct WorkerOptions {
  uint32_t slot = 0;
  uint32_t incarnation = 0;
  uint32_t keys = 48;                // own key ids: OpLog::KeyId(slot, 0 .. keys-1)
  std::vector<uint32_t> peer_slots;  // whose keys cross-reads pick from
  uint32_t shared_keys = 12;         // ... those with an index below this
  // A read leases the object for the master's lease TTL and the lease
  // refuses its removal: a worker writes keys it has not read for this long.
  uint32_t lease_ms = 200;
  // At most this many steps (a batch of reads, or of removes and puts) a
  // second: load enough to matter, op logs small enough to judge.
  uint32_t steps_per_second = 250;
  bool filler = false;
  bool shm = false;  // ClientConfig::transport kShm, else kTcp
  bool checksums = true;
  uint64_t max_value_bytes = 256 * 1024;  // a multiple of 64
  uint64_t seed = 1;
  std::string master;  // RPC host:port
  std::string admin;   // the master's admin host:port (where a put landed)
  std::string host_id;
  std::vector<std::string> segments;  // segment names; an index into this is a "segment"
  std::string log_path;               // the slot's OpLog
  std::string stop_path;              // the worker stops once this file exists

  // The command line that Parse() reads back (after "worker").
  std::vector<std::string> ToArgs() const;
  // Throws std::invalid_argument naming a bad or missing option.
  static WorkerOptions Parse(const std::vector<std::string>& args);
};

// Runs the worker until its stop file appears; returns the process exit
// code (0; 3 when the Client never opened).
int RunWorker(const WorkerOptions& options);

}  // namespace kvcached::chaos
