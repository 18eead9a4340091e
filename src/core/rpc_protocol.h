// The master RPC protocol: frame header, message types and bodies, and their
// one codec. Every frame is a 24-byte little-endian header followed by a
// body of `body_bytes`; docs/protocol.md is the written specification and
// must change with this file. Decoding bounds every length (strings, lists,
// the body itself) before allocating and rejects trailing bytes, so a frame
// either decodes completely or is refused with a reason. Pure functions;
// thread-safe.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "core/rdma_link.h"
#include "core/status.h"

namespace kvcached {

inline constexpr uint32_t kRpcMagic = 0x3143564B;  // "KVC1" on the wire
// 3: Hello names the tenant; 4: pins; 5: table updates are acknowledged;
// 6: disk tier (SegmentInfo flags and disk_bytes, demote/promote, TierReport)
inline constexpr uint16_t kRpcVersion = 6;
inline constexpr size_t kFrameHeaderBytes = 24;
inline constexpr uint32_t kMaxBodyBeforeHello = 4096;
inline constexpr uint32_t kDefaultMaxBodyBytes = 64u << 20;

// Protocol limits, enforced by the decoder.
inline constexpr size_t kMaxKeyBytes = 4096;  // a key as its client gives it
// A key as the master keeps it and the stores record it: a tenant's keys
// carry its prefix (core/tenant.h, kMaxTenantPrefixBytes = 66).
inline constexpr size_t kMaxInternalKeyBytes = kMaxKeyBytes + 66;
inline constexpr size_t kMaxIdBytes = 256;  // client ids, host ids, segment names
inline constexpr size_t kMaxTokenBytes = 1024;
inline constexpr size_t kMaxOwnerProofBytes = 128;
inline constexpr size_t kMaxEndpointBytes = 64 << 10;  // a segment's data-plane descriptor
inline constexpr size_t kMaxMessageBytes = 4096;       // human-readable error text
inline constexpr size_t kMaxBatchKeys = 8192;
inline constexpr size_t kMaxReplicas = 16;
inline constexpr size_t kMaxRemountObjects = 4u << 20;

enum class MsgType : uint16_t {
  kHello = 1,
  kMountSegment = 2,
  kUnmountSegment = 3,
  kRemountSegment = 4,
  kPing = 5,
  kExistKey = 6,
  kGetReplicaList = 7,
  kPutStart = 8,
  kPutEnd = 9,
  kPutRevoke = 10,
  kRemove = 11,
  kRemoveAll = 12,
  kGetSize = 13,
  kTableUpdate = 14,  // master -> segment owner, flag kFlagNotification
  // A client could not reach these segments (KeysRequest of segment names;
  // answer CodesResponse): the master places nothing there until their
  // owners ping again.
  kReportUnreachable = 15,
  // A reader is done with these keys (ReleaseLeasesRequest: key and
  // version): the leases its GetReplicaList took end now. One-way: the
  // master sends no answer.
  kReleaseLeases = 16,
  // PutStart that replaces a complete object of the key (PutStartRequest;
  // answer ReplicaListResponse). The old object leaves the index once the
  // new one is placed; its space is reused when its read leases end.
  // Committed by PutEnd.
  kUpsertStart = 17,
  // Removes every object of the caller's tenant whose key matches an
  // regular expression, core/compiled_regex.h's ECMAScript subset
  // (RemoveByRegexRequest; answer
  // RemoveAllResponse).
  kRemoveByRegex = 18,
  // Replica tasks (docs/master.md, "Replica tasks"): copy an object to more
  // segments, or move one of its replicas. The master keeps the task; the
  // client that created it moves the bytes.
  kCreateTask = 19,  // CreateTaskRequest; answer TaskInfo (code, id, state)
  // The creating client begins a task (TaskRef; answer ReplicaListResponse
  // of two items: the object with its replicas, under a read lease, and
  // the target ranges to write).
  kTaskStart = 20,
  kTaskEnd = 21,    // TaskEndRequest: how the copy went; answer StatusResponse
  kQueryTask = 22,  // TaskRef; answer TaskInfo
  // Owner -> master: the TableUpdates of this connection up to `seq` (the
  // request id their frames carried) are applied (TableUpdateAck). One-way.
  // The master answers a PutEnd only once its owners have acknowledged
  // their updates, so a master killed after answering leaves the object
  // in a table the next master rebuilds from.
  kTableUpdateAck = 23,
  // Owner -> master: disk tier events (a TableUpdate whose ops are
  // TierEvents, at most kMaxTierReportChanges). One-way.
  kTierReport = 24,
  // The store's data port (after Hello): bytes move in the frame body.
  kDataWrite = 32,  // body: DataRange, then `length` bytes; answer StatusResponse
  kDataRead = 33,   // body: DataRange; answer: the `length` bytes
  // The store's shared-memory socket (a Unix socket, after Hello).
  kShmAttach = 34,  // empty body; answer ShmAttachResponse with the memfd (SCM_RIGHTS)
  // The store's data port (after Hello): set up an RDMA queue pair.
  kRdmaConnect = 35,  // body: RdmaConnectRequest; answer RdmaConnectResponse
};
const char* MsgTypeName(MsgType type);  // "PutStart"; "Unknown" otherwise
// Requests the master does not answer (kReleaseLeases, kTableUpdateAck).
inline bool IsOneWay(MsgType type) {
  return type == MsgType::kReleaseLeases || type == MsgType::kTableUpdateAck ||
         type == MsgType::kTierReport;
}

inline constexpr uint16_t kFlagResponse = 1;      // answers request_id
inline constexpr uint16_t kFlagNotification = 2;  // unsolicited, request_id 0
inline constexpr uint16_t kFlagError = 4;         // body is an ErrorBody

struct FrameHeader {
  uint32_t magic = kRpcMagic;
  uint16_t version = kRpcVersion;
  uint16_t type = 0;
  uint16_t flags = 0;
  uint16_t reserved = 0;
  uint64_t request_id = 0;
  uint32_t body_bytes = 0;
};

void EncodeHeader(const FrameHeader& h, unsigned char out[kFrameHeaderBytes]);
// Checks magic, reserved bits and body length (<= max_body_bytes). The
// version is returned as read: the caller answers a mismatch with a message
// naming both versions.
Status DecodeHeader(const unsigned char in[kFrameHeaderBytes], uint32_t max_body_bytes,
                    FrameHeader& out);

// The largest body a request of `type` can legitimately have, derived from
// the field limits above (a Ping is 4 bytes; a batch at most kMaxBatchKeys
// keys of kMaxKeyBytes). RemountSegment (an object table) and DataWrite (its
// payload goes straight into a segment) have no bound of their own: the
// server's configured maximum applies. Types no server serves get
// kMaxUnknownBodyBytes, enough to be answered "not supported".
inline constexpr uint32_t kMaxUnknownBodyBytes = 4096;
uint32_t MaxRequestBodyBytes(MsgType type);
// For a frame a server receives: body_bytes must be within both
// MaxRequestBodyBytes(type) and `max_body_bytes` (the server's limit in its
// current state). INVALID_PARAMS names the kind and the limit hit, so the
// server can refuse before it allocates anything for the body.
Status CheckRequestBodyLimit(const FrameHeader& head, uint32_t max_body_bytes);
// DecodeHeader, then CheckRequestBodyLimit.
Status DecodeRequestHeader(const unsigned char in[kFrameHeaderBytes], uint32_t max_body_bytes,
                           FrameHeader& out);

// ---- bodies ----------------------------------------------------------------

enum class PeerRole : uint8_t { kClient = 1, kStore = 2, kAdmin = 3 };

struct HelloRequest {
  uint8_t role = static_cast<uint8_t>(PeerRole::kClient);
  std::string client_id;  // unique per process; owner identity for its segments
  std::string host_id;    // same value on the same host (shared-memory path)
  std::string token;      // the cluster token when one is configured
  // A secret the process that mounts segments keeps to itself (never logged,
  // never published): the master ties each segment to it, so another peer
  // that claims the same client id cannot remount, unmount or ping for that
  // segment (docs/master.md, "Segment owners"). Empty for plain clients.
  std::string owner_proof;
  // The client's tenant (core/tenant.h): "" is the default tenant. The
  // master keeps the keys of this connection in that tenant's key space.
  std::string tenant;
};

// What the master keeps of an owner proof: a digest, 0 for none.
uint64_t OwnerProofDigest(std::string_view proof);

struct HelloResponse {
  int32_t code = 0;
  uint16_t server_version = kRpcVersion;
  std::string master_id;  // new on every master start: a change means "remount"
  uint64_t lease_ttl_ms = 0;
  std::string message;
  // A store's data port: the segment it serves and its size, so a client
  // can tell that the endpoint it was given is that segment's (empty and 0
  // from the master and the shm socket).
  std::string segment;
  uint64_t segment_size = 0;
};

// Whole-request failure (not hello'd, bad token, unknown type): flag kFlagError.
struct ErrorBody {
  int32_t code = 0;
  std::string message;
};

// SegmentInfo::flags
// The segment's memory is new (the owner process's first mount of it): no
// reader can hold a lease into it, so a rebuild from its table needs no wait.
inline constexpr uint8_t kSegmentFreshMemory = 1;
inline constexpr uint8_t kSegmentFlagsKnown = kSegmentFreshMemory;

struct SegmentInfo {
  std::string name;
  uint64_t base = 0;  // address in the owner's space (for RDMA), opaque here
  uint64_t size = 0;
  std::string endpoint;  // data-plane descriptor the client uses to reach it
  // Bytes of the owner's disk tier (0: none): eviction demotes the
  // segment's objects there instead of dropping them (docs/disk-tier.md).
  uint64_t disk_bytes = 0;
  uint8_t flags = 0;  // kSegment* bits
};

struct MountRequest {
  SegmentInfo segment;
};

struct UnmountRequest {
  std::string name;
};

// How eviction treats an object (Mooncake's ReplicateConfig pins).
enum class Pin : uint8_t {
  kNone = 0,
  kSoft = 1,  // evicted after every unpinned object, while its soft pin lasts
  kHard = 2,  // never evicted (removed only by Remove and its kin)
};
inline constexpr uint8_t kMaxPin = 2;

// One object's record in a segment. `version` orders records of one key:
// the master assigns it at PutStart (larger is newer, across master restarts
// too) and the segment's owner keeps it with the entry, so a rebuild keeps
// the newest record of each key (docs/master.md, "Versions").
// ObjectEntry::offset of an object that lives only in its owner's disk tier.
inline constexpr uint64_t kOnDiskOffset = UINT64_MAX;

struct ObjectEntry {
  std::string key;
  uint64_t offset = 0;  // in the segment, or kOnDiskOffset
  uint64_t size = 0;
  uint64_t checksum = 0;
  uint64_t version = 0;
  uint8_t pin = 0;  // a Pin: kept by the owner so that a rebuilt index keeps it
};

// Mounts (or re-mounts after a master restart) a segment with the objects
// its owner holds in it; also how an owner that may have missed
// TableUpdates brings its table back in line (the master answers the
// differences as TableUpdates).
struct RemountRequest {
  SegmentInfo segment;
  std::vector<ObjectEntry> objects;
};

struct StatusResponse {
  int32_t code = 0;
  std::string message;
};

struct TableUpdateAck {
  uint64_t seq = 0;  // every update of the connection up to this one is applied
};

struct PingRequest {
  uint32_t segments_owned = 0;  // how many segments the caller believes are mounted
};

struct PingResponse {
  int32_t code = 0;
  std::string master_id;
  bool remount_needed = false;  // the master lacks some of the caller's segments
  // --client-ttl: an owner silent this long has lost its segments. An owner
  // that finds it was stopped this long forgets its table (store_agent.h).
  uint64_t client_ttl_ms = 0;
};

struct KeysRequest {  // ExistKey, GetReplicaList, PutRevoke, GetSize
  std::vector<std::string> keys;
};

struct RemoveRequest {
  bool force = false;  // also remove leased objects
  std::vector<std::string> keys;
};

struct CodesResponse {        // ExistKey, PutEnd, PutRevoke, Remove: one code per key
  uint64_t lease_ttl_ms = 0;  // ExistKey: 0, it grants no lease (kept for the wire format)
  std::vector<int32_t> codes;
};

struct SegmentRef {  // referenced by index from Replica
  std::string name;
  std::string endpoint;
};

struct Replica {
  uint32_t segment = 0;  // index into the response's segment list
  uint64_t offset = 0;
};

struct ReplicaItem {
  int32_t code = 0;
  uint64_t size = 0;
  uint64_t checksum = 0;
  // The object's version (docs/master.md, "Versions"): a ReleaseLeases
  // names it, so a late release cannot end a lease on a newer object of
  // the same key.
  uint64_t version = 0;
  std::vector<Replica> replicas;
};

struct ReplicaListResponse {  // GetReplicaList and PutStart
  uint64_t lease_ttl_ms = 0;
  std::vector<SegmentRef> segments;
  std::vector<ReplicaItem> items;
};

struct PutStartItem {
  std::string key;
  uint64_t size = 0;
};

struct PutStartRequest {
  uint32_t replica_num = 1;
  std::string preferred_segment;  // empty: the master chooses
  std::vector<PutStartItem> items;
  uint8_t pin = 0;  // a Pin for every object (on the wire after preferred_segment)
};

struct PutEndItem {
  std::string key;
  uint64_t checksum = 0;
};

struct PutEndRequest {
  std::vector<PutEndItem> items;
};

struct ReleaseItem {
  std::string key;
  uint64_t version = 0;  // as the GetReplicaList answer gave it
};

struct ReleaseLeasesRequest {
  std::vector<ReleaseItem> items;
};

inline constexpr size_t kMaxRegexBytes = 1024;

struct RemoveByRegexRequest {
  std::string pattern;  // core/compiled_regex.h's syntax, at most kMaxRegexBytes
  bool force = false;
};

// Replica tasks (kCreateTask .. kQueryTask). A task id is 128 random bits
// (Mooncake's UUID pair); 0/0 is never one.
enum class TaskType : uint8_t { kReplicaCopy = 0, kReplicaMove = 1 };
enum class TaskState : uint8_t { kPending = 0, kProcessing = 1, kSuccess = 2, kFailed = 3 };
inline constexpr size_t kMaxTaskTargets = kMaxReplicas;

struct TaskRef {
  uint64_t id_hi = 0;
  uint64_t id_lo = 0;
};

struct CreateTaskRequest {
  uint8_t type = 0;  // a TaskType
  std::string key;
  std::string source;                // a move's source segment
  std::vector<std::string> targets;  // segment names: a copy's, or a move's one target
};

struct TaskEndRequest {
  TaskRef task;
  int32_t code = 0;  // 0: every target holds the bytes; else why not
  std::string message;
};

struct TaskInfo {
  int32_t code = 0;  // the request's result; the rest only with 0
  std::string message;  // the request's error, or the task's own message
  TaskRef task;
  uint8_t type = 0;   // a TaskType
  uint8_t state = 0;  // a TaskState
  uint64_t created_ms = 0;  // wall clock, ms since the epoch
  uint64_t updated_ms = 0;
  std::string assigned_client;  // the client id that moves the bytes
};

struct RemoveAllRequest {
  bool force = false;
};

struct RemoveAllResponse {
  int32_t code = 0;
  uint64_t removed = 0;
};

struct SizeItem {
  int32_t code = 0;
  uint64_t size = 0;
};

struct SizesResponse {
  std::vector<SizeItem> items;
};

// kAdd with offset kOnDiskOffset: the object is now only in the owner's
// disk tier. kRemove also drops the key's disk record (that version or older).
// kDemote: write the object at entry.offset to the disk tier, then report
// kDemoted (the master keeps the range until then). kPromote: read the
// object's disk record into the range at entry.offset, then report
// kPromoted (docs/disk-tier.md).
enum class TableOp : uint8_t { kAdd = 1, kRemove = 2, kDemote = 3, kPromote = 4 };
inline constexpr uint8_t kMaxTableOp = 4;

// Owner -> master (TierReport): what became of a demotion or promotion, or
// a disk record the owner dropped on its own (its disk LRU made room, the
// record was corrupt, the disk failed).
enum class TierEvent : uint8_t {
  kDemoted = 1,
  kDemoteFailed = 2,
  kPromoted = 3,
  kPromoteFailed = 4,
  kDiskDropped = 5,
};
inline constexpr uint8_t kMaxTierEvent = 5;
inline constexpr size_t kMaxTierReportChanges = 1024;

struct TableChange {
  uint8_t op = static_cast<uint8_t>(TableOp::kAdd);  // a TableOp, or a TierEvent in a TierReport
  ObjectEntry entry;  // kRemove: key, offset and size identify the range freed
};

// Master -> owner: changes to the object table of one of its segments, in
// the order the master made them.
struct TableUpdate {
  std::string segment;
  std::vector<TableChange> changes;
};

// A byte range of a segment, as the data port's requests name it. Peers
// send any values: the store checks them against its segment before a
// byte moves.
struct DataRange {
  uint64_t offset = 0;
  uint64_t length = 0;
};
inline constexpr size_t kDataRangeBytes = 16;

// The answer to ShmAttach. The segment's memfd travels with it as
// SCM_RIGHTS ancillary data; `size` is how much of it the segment spans.
struct ShmAttachResponse {
  std::string segment;
  uint64_t size = 0;
};

// True when [offset, offset + length) lies inside [0, size), computed
// without overflow for any values a peer may send.
inline bool RangeWithin(const DataRange& r, uint64_t size) {
  return r.offset <= size && r.length <= size - r.offset;
}

// Encodes a body. Defined for every struct above.
template <typename T>
std::string EncodeBody(const T& msg);
// Decodes a whole body: INVALID_PARAMS with the reason when a field is
// missing, over a limit, runs past the end, or bytes are left over.
template <typename T>
Status DecodeBody(std::string_view body, T& out);

// A whole frame (header + an encoded body) ready to send.
std::string FrameWithBody(MsgType type, uint16_t flags, uint64_t request_id, std::string_view body);
template <typename T>
std::string EncodeFrame(MsgType type, uint16_t flags, uint64_t request_id, const T& msg) {
  return FrameWithBody(type, flags, request_id, EncodeBody(msg));
}

}  // namespace kvcached
