// kvcached::Client: the C++ client of a kvcached pool. It asks the master
// where objects live (or where to put them) and moves the bytes itself,
// straight between the caller's memory and the store's segment: through a
// shared mapping of the segment when the store runs on the same host
// (same host id), else by one-sided RDMA when both sides have it (protocol
// "rdma"), else over pooled TCP connections to the store's data port. Every object carries a checksum computed at put and verified at
// get, so a get returns exactly the bytes that were put, or an error.
//
// Results follow Mooncake Store's conventions and error codes
// (kvcached/error_code.h): a put of an existing key succeeds and leaves the
// object unchanged; batch calls return one result per key, in order.
// Every network wait has a deadline: a dead master or store fails the
// affected keys within the configured timeouts and never hangs the caller.
//
// Thread-safe: any number of threads may call one Client concurrently.
// A client with `global_segment_size > 0` also contributes a segment to
// the pool and serves it, exactly like `kvcached store`, until Close();
// MountSegment adds more, each served the same way.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "kvcached/status.h"

namespace kvcached {

// How a client reaches the stores' memory.
enum class TransportMode {
  kAuto,  // shared memory for stores on this host; RDMA (protocol "rdma") or TCP for the others
  kShm,   // shared memory only: keys held only on other hosts fail
  kTcp,   // TCP only, even to stores on this host
  kRdma,  // RDMA only, even to stores on this host: Open fails without an RDMA device
};
// In every mode a client reaches the segment it contributes itself by a
// plain memory copy (counted as a shared-memory transfer).

struct ClientConfig {
  // The settings of Mooncake's setup(), by the same names.
  std::string local_hostname;  // host id; same value => shared memory (default: hostname)
  std::string metadata_server = "P2PHANDSHAKE";  // or http://host:port/metadata, etcd://h:p
  uint64_t global_segment_size = 0;              // > 0: contribute a segment of this size
  uint64_t local_buffer_size = 0;  // accepted for compatibility; no path needs one
  // "tcp", or "rdma": use RDMA to stores that serve it. With no RDMA device
  // here that is one warning and TCP, unless `transport` is kRdma.
  std::string protocol = "tcp";
  // RDMA devices: a comma list ("mlx5_0,mlx5_1") or Mooncake's JSON map of
  // ranks to lists; empty: every device with an active port. A device named
  // here that is missing fails Open.
  std::string device_names;
  int rdma_gid_index = -1;  // -1: chosen per port (RoCE v2, IPv4-mapped first)
  // "host:port", or Mooncake's HA form "etcd://host:port[;host:port...]":
  // the leader elected in that etcd for `cluster_id`, followed across
  // failovers (docs/ha.md).
  std::string master_server_addr = "127.0.0.1:50051";
  // The tenant whose key space this client's keys live in (Mooncake's
  // tenant_id): 1 to 64 of [A-Za-z0-9._-]; "" or "default" is the default
  // tenant. Other tenants' objects are invisible to this client, and its
  // remove_all removes only its tenant's.
  std::string tenant_id;

  // kvcached's own settings.
  std::string token;  // the cluster token, when the cluster has one
  // With an etcd:// master address: the masters' --cluster-id ("": the
  // default, "mooncake_cluster").
  std::string cluster_id;
  TransportMode transport = TransportMode::kAuto;
  // Checksum every object at put and verify it at get (XXH3-64). Off only
  // for trusted paths: a get then cannot detect a late or foreign write.
  bool checksums = true;
  std::chrono::milliseconds rpc_timeout{5000};  // one master round trip
  // A transfer fails when no byte moved on it for this long; a large
  // object on a slow link therefore never fails just for being large.
  std::chrono::milliseconds io_timeout{5000};
  std::chrono::milliseconds connect_timeout{3000};
  // Connections one call uses per store, at most (calls running at the same
  // time on other threads use connections of their own; idle ones are pooled).
  unsigned tcp_streams = 4;
  uint64_t tcp_split_bytes = 1 << 20;  // larger transfers are split in pieces of this size
  // Threads that copy one batch's shared-memory transfers, the calling
  // thread included, one object each at a time (so a single object is one
  // thread's copy). 0: one per core, at most 4; 1: the caller alone.
  unsigned copy_threads = 0;
  // Only when contributing a segment: where its data port binds and how it is backed.
  std::string segment_bind_host = "127.0.0.1";
  std::string segment_name;  // default: <host id>:<pid>:<n>
  bool hugepages = false;
  std::chrono::milliseconds ping_interval{1000};
  // Only when contributing a segment: a disk tier under it (docs/client.md,
  // "A disk tier under the segment"). Objects evicted from the segment are
  // written to a file in this directory, which must exist, and read back on a
  // get. Empty: none, unless enable_ssd_offload names one.
  std::string disk_path;
  // The tier file's size, at least 16 MiB. 0: the size of the file this
  // client finds there, else 4x global_segment_size, at most half the free
  // space of the directory's file system.
  uint64_t disk_size = 0;
  bool disk_fsync = false;  // fdatasync each object written to the tier
  // Mooncake's switch (setup()'s enable_ssd_offload): on, the tier's
  // directory is disk_path, else ssd_offload_path, else the variable
  // MOONCAKE_OFFLOAD_FILE_STORAGE_PATH (read by Open, as Mooncake does);
  // none of them is INVALID_PARAMS. Off, ssd_offload_path is not used.
  bool enable_ssd_offload = false;
  std::string ssd_offload_path;

  // Settings from the environment, as Mooncake reads them: the JSON file
  // named by MOONCAKE_CONFIG_PATH, else MOONCAKE_MASTER,
  // MOONCAKE_LOCAL_HOSTNAME, MOONCAKE_TE_META_DATA_SERVER,
  // MOONCAKE_GLOBAL_SEGMENT_SIZE, MOONCAKE_LOCAL_BUFFER_SIZE,
  // MOONCAKE_PROTOCOL, MOONCAKE_DEVICE (sizes like "4gb"), MOONCAKE_TENANT_ID,
  // MOONCAKE_ENABLE_SSD_OFFLOAD and MOONCAKE_OFFLOAD_FILE_STORAGE_PATH; then
  // the KVCACHED_* variables (KVCACHED_TOKEN_FILE, KVCACHED_TRANSPORT,
  // KVCACHED_DISK_PATH, ...: the settings table, client_settings.h).
  // INVALID_PARAMS names the variable or file field that is wrong.
  static Result<ClientConfig> FromEnvironment();
};

struct ReplicateConfig {
  uint32_t replica_num = 1;
  std::string preferred_segment;  // empty: the master chooses
  // Pins (docs/master.md, "Pins"): a soft-pinned object is evicted only
  // after every unpinned one, while its soft pin lasts; a hard-pinned one
  // is never evicted. Hard wins when both are set.
  bool with_soft_pin = false;
  bool with_hard_pin = false;
};

// Caller memory: the source of a put, or the destination of a get.
struct Slice {
  void* data = nullptr;
  uint64_t size = 0;
};

// Where one copy of an object lives: a range of a segment.
struct ReplicaPlace {
  std::string segment;        // the holding segment's name
  std::string data_endpoint;  // its TCP data port, "host:port"; "" when it serves none
  uint64_t offset = 0;        // the object's first byte within the segment
};

// What the master knows of a complete object (GetReplicaDesc).
struct ObjectPlaces {
  uint64_t size = 0;     // bytes
  uint64_t version = 0;  // the master's version of the key's object (docs/master.md, "Versions")
  std::vector<ReplicaPlace> replicas;  // in the master's order
};

// One more segment for a client to contribute (Client::MountSegment).
struct SegmentSpec {
  // Bytes. With no file_path: new memory (a memfd, like the setup segment),
  // rounded up to the page size (2 MiB with `hugepages`).
  uint64_t size_bytes = 0;
  // Non-empty: map `size_bytes` of this existing regular file (a /dev/shm
  // object, a file on disk) from `file_offset` (a multiple of the page
  // size), MAP_SHARED. The file is never grown, truncated or removed.
  // Offset 0: served over shared memory and TCP; any other offset: TCP only
  // (a same-host peer maps the descriptor from offset 0).
  std::string file_path;
  uint64_t file_offset = 0;
  // "tcp", or "rdma": serve it over RDMA as well when this host has a
  // device (without one: a warning and TCP, as at Open).
  std::string protocol = "tcp";
};

// A segment MountSegment added.
struct MountedSegment {
  std::string name;         // its segment name: its id (ReplicateConfig::preferred_segment)
  uint64_t size_bytes = 0;  // what it contributes (SegmentSpec's size, rounded up)
};

// Replica tasks (Mooncake's create_copy_task, create_move_task and
// query_task). A task id is 128 random bits, Mooncake's UUID pair; {0, 0}
// names no task.
struct TaskId {
  uint64_t hi = 0;
  uint64_t lo = 0;
};
enum class ReplicaTaskType : uint8_t { kCopy = 0, kMove = 1 };
enum class ReplicaTaskStatus : uint8_t { kPending = 0, kProcessing = 1, kSuccess = 2, kFailed = 3 };

// What the master knows of a task (QueryTask).
struct ReplicaTaskInfo {
  TaskId id;
  ReplicaTaskType type = ReplicaTaskType::kCopy;
  ReplicaTaskStatus status = ReplicaTaskStatus::kPending;
  uint64_t created_at_ms_epoch = 0;  // wall clock, ms since the epoch
  uint64_t last_updated_at_ms_epoch = 0;
  std::string assigned_client;  // the client that moves the bytes: its creator
  std::string message;          // why it failed ("" otherwise)
};

// What one client has done, for benchmarks and diagnostics.
struct ClientStats {
  uint64_t puts = 0, gets = 0;  // objects
  uint64_t bytes_written = 0, bytes_read = 0;
  uint64_t shm_transfers = 0, tcp_transfers = 0;
  uint64_t checksum_mismatches = 0, lease_expirations = 0;
  uint64_t tcp_connections_opened = 0;
  uint64_t rdma_transfers = 0;
};

// What a client did between two snapshots: `after - before`, field by field.
inline ClientStats operator-(const ClientStats& after, const ClientStats& before) {
  return {after.puts - before.puts,
          after.gets - before.gets,
          after.bytes_written - before.bytes_written,
          after.bytes_read - before.bytes_read,
          after.shm_transfers - before.shm_transfers,
          after.tcp_transfers - before.tcp_transfers,
          after.checksum_mismatches - before.checksum_mismatches,
          after.lease_expirations - before.lease_expirations,
          after.tcp_connections_opened - before.tcp_connections_opened,
          after.rdma_transfers - before.rdma_transfers};
}

class Client {
 public:
  // Connects to the master (and mounts a segment when the config asks for
  // one). RPC_FAIL when the master cannot be reached, INVALID_PARAMS for a
  // bad setting, NO_AVAILABLE_HANDLE when the segment's memory cannot be had.
  static Result<std::unique_ptr<Client>> Open(const ClientConfig& config);
  ~Client();  // Close()
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  // Stores `size` bytes from `data` under `key`. OK also when the key
  // exists (the object is left as it was). INVALID_PARAMS for 0 bytes. NO_AVAILABLE_HANDLE when the
  // pool is full; TRANSFER_FAIL when a store could not take the bytes.
  Status Put(std::string_view key, const void* data, uint64_t size, const ReplicateConfig& rc = {});
  // Reads the object into `buffer`; returns its size. OBJECT_NOT_FOUND;
  // INVALID_PARAMS when `capacity` is smaller than the object (nothing is
  // written); CHECKSUM_MISMATCH or LEASE_EXPIRED instead of doubtful bytes
  // (the buffer's contents are then unspecified).
  Result<uint64_t> Get(std::string_view key, void* buffer, uint64_t capacity);

  // As Put, but an existing object of the key is replaced. The old object
  // leaves the pool once the master has placed the new one (a reader that
  // already holds it reads it whole; a lookup until the commit finds
  // nothing). Refused by the master (no room, bad arguments), the old object
  // stays; failed after placement, the key has no object.
  Status Upsert(std::string_view key, const void* data, uint64_t size,
                const ReplicateConfig& rc = {});

  // Batches: one master round trip per step, transfers to different stores
  // overlapped; one result per key, in order. `keys` and `values` (or
  // `buffers`) have the same length, or every key fails INVALID_PARAMS.
  std::vector<Status> BatchPut(const std::vector<std::string>& keys,
                               const std::vector<Slice>& values, const ReplicateConfig& rc = {});
  std::vector<Status> BatchUpsert(const std::vector<std::string>& keys,
                                  const std::vector<Slice>& values, const ReplicateConfig& rc = {});
  std::vector<Result<uint64_t>> BatchGet(const std::vector<std::string>& keys,
                                         const std::vector<Slice>& buffers);

  Result<bool> Exist(std::string_view key);
  std::vector<Result<bool>> BatchExist(const std::vector<std::string>& keys);
  Result<uint64_t> GetSize(std::string_view key);
  // Where each key's object lives (Mooncake's get_replica_desc): one result
  // per key, in order; OBJECT_NOT_FOUND for a missing key or a put still in
  // progress, INVALID_KEY for a bad one. One master round trip per 8192
  // keys; no bytes move. The read lease that lookup takes is ended before
  // the call returns, so asking pins nothing (a Remove right after from the
  // same thread is not refused for it); it counts as a use for eviction.
  // The places are a snapshot: the object may be removed or evicted, and
  // its ranges reused, at any time after the call.
  std::vector<Result<ObjectPlaces>> GetReplicaDesc(const std::vector<std::string>& keys);
  // OBJECT_NOT_FOUND; OBJECT_HAS_LEASE while a reader holds a lease (unless force).
  Status Remove(std::string_view key, bool force = false);
  // Returns how many objects were removed.
  Result<uint64_t> RemoveAll(bool force = false);
  // Removes the objects whose keys match `pattern` (the ECMAScript
  // subset of docs/protocol.md, a match anywhere in the key, in time linear
  // in its length; no back-references or lookaround) and returns how many.
  // INVALID_PARAMS for an empty, oversized (> 1024 bytes) or bad pattern.
  // Objects put while it runs may or may not be removed.
  Result<uint64_t> RemoveByRegex(std::string_view pattern, bool force = false);

  // Memory that large transfers use. Over TCP and shared memory any memory
  // works registered or not; RDMA will need it. INVALID_PARAMS for a null
  // or empty range or one overlapping a registered range.
  Status RegisterBuffer(void* data, uint64_t size);
  Status UnregisterBuffer(void* data);

  // Contributes one more segment, served by this process like the setup
  // segment: its own data port, shm socket and owner identity at the master,
  // named `<host id>:<pid>:<n>`. INVALID_PARAMS (nothing changed) for size
  // 0, a protocol other than tcp/rdma, or a file that cannot be opened
  // read-write, is not a regular file, is shorter than offset + size, or an
  // offset not page-aligned; NO_AVAILABLE_HANDLE when the memory cannot be
  // had; the master's error when it refuses the mount;
  // UNAVAILABLE_IN_CURRENT_STATUS after Close().
  Result<MountedSegment> MountSegment(const SegmentSpec& spec);

  // Replica tasks (docs/client.md, "Replica tasks"). A copy adds a replica
  // of `key`'s object in each target segment that lacks one; a move puts
  // one in `target` and then drops the one in `source`. The master checks
  // the request and records the task at once (OBJECT_NOT_FOUND,
  // SEGMENT_NOT_FOUND, INVALID_REPLICA for a source that holds no replica,
  // INVALID_PARAMS, TASK_PENDING_LIMIT_EXCEEDED); this client then moves
  // the bytes on a thread of its own, in the order tasks were created, and
  // QueryTask follows the task to kSuccess or kFailed (with the reason).
  // Readers see the new replica only once it holds the whole object; an
  // object removed or replaced meanwhile fails the task and keeps nothing.
  // Tasks not yet run when the client closes fail ("the client closed").
  Result<TaskId> CreateCopyTask(std::string_view key, const std::vector<std::string>& targets);
  Result<TaskId> CreateMoveTask(std::string_view key, std::string_view source,
                                std::string_view target);
  // TASK_NOT_FOUND for an id the master does not know (never created, of
  // another tenant, forgotten after --max-finished-tasks newer ones, or
  // from before a master restart: tasks are not kept across restarts).
  Result<ReplicaTaskInfo> QueryTask(TaskId id);
  // Unmounts segments MountSegment added, all or none: the master drops
  // their objects, their listeners close, and their memory is given back
  // at once (a file's mapping is released; the file is left as it is).
  // A transfer still running into one fails or completes; it never touches
  // freed memory. `free_memory` (Mooncake's unmount_and_free_segment)
  // accepts only segments MountSegment allocated (no file_path), otherwise
  // INVALID_PARAMS; without it every kind is accepted. INVALID_PARAMS for
  // an empty list or the setup segment (Close() unmounts that);
  // SEGMENT_NOT_FOUND for a name this client did not mount (or already
  // unmounted); in both cases nothing is unmounted. Duplicates count once.
  // Once checked, every named segment is unmounted here even when the
  // master cannot be told (it then drops them when their lease runs out),
  // and the first such error is returned.
  Status UnmountSegments(const std::vector<std::string>& names, bool free_memory);
  // The segments MountSegment added and not yet unmounted, by name.
  std::vector<std::string> mounted_segments() const;

  // Unmounts this client's segments (their objects leave the pool) and
  // closes every connection. Later calls fail with
  // UNAVAILABLE_IN_CURRENT_STATUS.
  void Close();

  const std::string& host_id() const;
  const std::string& segment_name() const;  // empty when contributing none
  ClientStats stats() const;

  class Impl;

 private:
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvcached
