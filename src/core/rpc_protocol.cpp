#include "core/rpc_protocol.h"

#include <algorithm>

#include "core/wire.h"

namespace kvcached {
namespace {

// One field list per message drives both directions (Io is WireWriter or
// WireReader), so encoder and decoder cannot drift apart. The last two
// List() arguments bound a count before anything is allocated: a protocol
// maximum, and the smallest encoding an element can have.

template <typename Io>
void Fields(Io& io, HelloRequest& m) {
  io.U8(m.role);
  io.Str(m.client_id, kMaxIdBytes);
  io.Str(m.host_id, kMaxIdBytes);
  io.Str(m.token, kMaxTokenBytes);
  io.Str(m.owner_proof, kMaxOwnerProofBytes);
  io.Str(m.tenant, kMaxIdBytes);
}

template <typename Io>
void Fields(Io& io, HelloResponse& m) {
  io.I32(m.code);
  io.U16(m.server_version);
  io.Str(m.master_id, kMaxIdBytes);
  io.U64(m.lease_ttl_ms);
  io.Str(m.message, kMaxMessageBytes);
  io.Str(m.segment, kMaxIdBytes);
  io.U64(m.segment_size);
}

template <typename Io>
void Fields(Io& io, ErrorBody& m) {
  io.I32(m.code);
  io.Str(m.message, kMaxMessageBytes);
}

template <typename Io>
void Fields(Io& io, SegmentInfo& m) {
  io.Str(m.name, kMaxIdBytes);
  io.U64(m.base);
  io.U64(m.size);
  io.Str(m.endpoint, kMaxEndpointBytes);
  io.U64(m.disk_bytes);
  io.U8(m.flags);
  if constexpr (Io::kReading) {
    if (m.flags & ~kSegmentFlagsKnown)
      return io.Fail("unknown segment flags " + std::to_string(m.flags));
  }
}

template <typename Io>
void Fields(Io& io, MountRequest& m) {
  Fields(io, m.segment);
}

template <typename Io>
void Fields(Io& io, UnmountRequest& m) {
  io.Str(m.name, kMaxIdBytes);
}

template <typename Io>
void Fields(Io& io, ObjectEntry& m) {
  io.Str(m.key, kMaxInternalKeyBytes);
  io.U64(m.offset);
  io.U64(m.size);
  io.U64(m.checksum);
  io.U64(m.version);
  io.U8(m.pin);
  if constexpr (Io::kReading) {
    if (m.pin > kMaxPin) return io.Fail("unknown pin " + std::to_string(m.pin));
  }
}

template <typename Io>
void Fields(Io& io, RemountRequest& m) {
  Fields(io, m.segment);
  io.List(m.objects, kMaxRemountObjects, 4 + 33, [&](ObjectEntry& e) { Fields(io, e); });
}

template <typename Io>
void Fields(Io& io, ShmAttachResponse& m) {
  io.Str(m.segment, kMaxIdBytes);
  io.U64(m.size);
}

template <typename Io>
void Fields(Io& io, RdmaQpParams& m) {
  for (uint8_t& b : m.gid) io.U8(b);
  io.U16(m.lid);
  io.U32(m.qpn);
  io.U32(m.psn);
  io.U8(m.mtu);
  if constexpr (Io::kReading) {
    if (m.psn > 0xFFFFFF) return io.Fail("queue pair PSN above 24 bits");
    if (m.qpn > 0xFFFFFF) return io.Fail("queue pair number above 24 bits");
    if (m.mtu < 1 || m.mtu > 5)
      return io.Fail("path MTU code " + std::to_string(m.mtu) + " is not 1-5");
  }
}

// The version leads both RDMA messages, so a peer of another version is
// told so, not misread. False when reading stops there.
template <typename Io>
bool RdmaLinkVersion(Io& io, uint8_t& version) {
  io.U8(version);
  if constexpr (Io::kReading) {
    if (version != kRdmaLinkVersion) {
      io.Fail("RDMA link version " + std::to_string(version) + " (this side speaks " +
              std::to_string(kRdmaLinkVersion) + ")");
      return false;
    }
  }
  return true;
}

template <typename Io>
void Fields(Io& io, RdmaConnectRequest& m) {
  if (!RdmaLinkVersion(io, m.version)) return;
  io.U32(m.store_nic);
  Fields(io, m.client);
}

template <typename Io>
void Fields(Io& io, RdmaConnectResponse& m) {
  if (!RdmaLinkVersion(io, m.version)) return;
  Fields(io, m.store);
}

template <typename Io>
void Fields(Io& io, StatusResponse& m) {
  io.I32(m.code);
  io.Str(m.message, kMaxMessageBytes);
}

template <typename Io>
void Fields(Io& io, TableUpdateAck& m) {
  io.U64(m.seq);
}

template <typename Io>
void Fields(Io& io, PingRequest& m) {
  io.U32(m.segments_owned);
}

template <typename Io>
void Fields(Io& io, PingResponse& m) {
  io.I32(m.code);
  io.Str(m.master_id, kMaxIdBytes);
  io.Bool(m.remount_needed);
  io.U64(m.client_ttl_ms);
}

template <typename Io>
void Keys(Io& io, std::vector<std::string>& keys) {
  io.List(keys, kMaxBatchKeys, 4, [&](std::string& k) { io.Str(k, kMaxKeyBytes); });
}

template <typename Io>
void Fields(Io& io, KeysRequest& m) {
  Keys(io, m.keys);
}

template <typename Io>
void Fields(Io& io, RemoveRequest& m) {
  io.Bool(m.force);
  Keys(io, m.keys);
}

template <typename Io>
void Fields(Io& io, CodesResponse& m) {
  io.U64(m.lease_ttl_ms);
  io.List(m.codes, kMaxBatchKeys, 4, [&](int32_t& c) { io.I32(c); });
}

template <typename Io>
void Fields(Io& io, ReplicaListResponse& m) {
  io.U64(m.lease_ttl_ms);
  io.List(m.segments, kMaxBatchKeys * kMaxReplicas, 8, [&](SegmentRef& s) {
    io.Str(s.name, kMaxIdBytes);
    io.Str(s.endpoint, kMaxEndpointBytes);
  });
  io.List(m.items, kMaxBatchKeys, 4 + 24 + 4, [&](ReplicaItem& it) {
    io.I32(it.code);
    io.U64(it.size);
    io.U64(it.checksum);
    io.U64(it.version);
    io.List(it.replicas, kMaxReplicas, 12, [&](Replica& r) {
      io.U32(r.segment);
      io.U64(r.offset);
    });
  });
  if constexpr (Io::kReading) {
    for (const ReplicaItem& it : m.items) {
      for (const Replica& r : it.replicas) {
        if (r.segment >= m.segments.size()) {
          return io.Fail("replica names segment index " + std::to_string(r.segment) + " of " +
                         std::to_string(m.segments.size()));
        }
      }
    }
  }
}

template <typename Io>
void Fields(Io& io, PutStartRequest& m) {
  io.U32(m.replica_num);
  io.Str(m.preferred_segment, kMaxIdBytes);
  io.U8(m.pin);
  io.List(m.items, kMaxBatchKeys, 4 + 8, [&](PutStartItem& it) {
    io.Str(it.key, kMaxKeyBytes);
    io.U64(it.size);
  });
}

template <typename Io>
void Fields(Io& io, PutEndRequest& m) {
  io.List(m.items, kMaxBatchKeys, 4 + 8, [&](PutEndItem& it) {
    io.Str(it.key, kMaxKeyBytes);
    io.U64(it.checksum);
  });
}

template <typename Io>
void Fields(Io& io, ReleaseLeasesRequest& m) {
  io.List(m.items, kMaxBatchKeys, 4 + 8, [&](ReleaseItem& it) {
    io.Str(it.key, kMaxKeyBytes);
    io.U64(it.version);
  });
}

template <typename Io>
void Fields(Io& io, RemoveByRegexRequest& m) {
  io.Str(m.pattern, kMaxRegexBytes);
  io.Bool(m.force);
}

template <typename Io>
void Fields(Io& io, TaskRef& m) {
  io.U64(m.id_hi);
  io.U64(m.id_lo);
}

template <typename Io>
void Fields(Io& io, CreateTaskRequest& m) {
  io.U8(m.type);
  io.Str(m.key, kMaxKeyBytes);
  io.Str(m.source, kMaxIdBytes);
  io.List(m.targets, kMaxTaskTargets, 4, [&](std::string& t) { io.Str(t, kMaxIdBytes); });
}

template <typename Io>
void Fields(Io& io, TaskEndRequest& m) {
  Fields(io, m.task);
  io.I32(m.code);
  io.Str(m.message, kMaxMessageBytes);
}

template <typename Io>
void Fields(Io& io, TaskInfo& m) {
  io.I32(m.code);
  io.Str(m.message, kMaxMessageBytes);
  Fields(io, m.task);
  io.U8(m.type);
  io.U8(m.state);
  io.U64(m.created_ms);
  io.U64(m.updated_ms);
  io.Str(m.assigned_client, kMaxIdBytes);
}

template <typename Io>
void Fields(Io& io, RemoveAllRequest& m) {
  io.Bool(m.force);
}

template <typename Io>
void Fields(Io& io, RemoveAllResponse& m) {
  io.I32(m.code);
  io.U64(m.removed);
}

template <typename Io>
void Fields(Io& io, SizesResponse& m) {
  io.List(m.items, kMaxBatchKeys, 12, [&](SizeItem& it) {
    io.I32(it.code);
    io.U64(it.size);
  });
}

template <typename Io>
void Fields(Io& io, DataRange& m) {
  io.U64(m.offset);
  io.U64(m.length);
}

template <typename Io>
void Fields(Io& io, TableUpdate& m) {
  io.Str(m.segment, kMaxIdBytes);
  io.List(m.changes, kMaxRemountObjects, 1 + 4 + 33, [&](TableChange& c) {
    io.U8(c.op);
    if constexpr (Io::kReading) {
      // TableOps, or TierEvents in a TierReport (each reader checks its own).
      if (c.op == 0 || c.op > std::max(kMaxTableOp, kMaxTierEvent)) {
        return io.Fail("unknown table operation " + std::to_string(c.op));
      }
    }
    Fields(io, c.entry);
  });
}

}  // namespace

template <typename T>
std::string EncodeBody(const T& msg) {
  WireWriter w;
  Fields(w, const_cast<T&>(msg));  // the writer only reads
  return w.Take();
}

template <typename T>
Status DecodeBody(std::string_view body, T& out) {
  WireReader r(body);
  Fields(r, out);
  if (!r.ok()) return Status(ErrorCode::INVALID_PARAMS, r.error());
  if (!r.AtEnd()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  std::to_string(r.Left()) + " unexpected bytes after the last field");
  }
  return Status::Ok();
}

#define KVCACHED_INSTANTIATE_CODEC(T)               \
  template std::string EncodeBody<T>(const T& msg); \
  template Status DecodeBody<T>(std::string_view body, T & out);
std::string FrameWithBody(MsgType type, uint16_t flags, uint64_t request_id,
                          std::string_view body) {
  FrameHeader h;
  h.type = static_cast<uint16_t>(type);
  h.flags = flags;
  h.request_id = request_id;
  h.body_bytes = static_cast<uint32_t>(body.size());
  std::string frame(kFrameHeaderBytes, '\0');
  EncodeHeader(h, reinterpret_cast<unsigned char*>(frame.data()));
  frame += body;
  return frame;
}

uint64_t OwnerProofDigest(std::string_view proof) {
  if (proof.empty()) return 0;
  uint64_t d = std::hash<std::string_view>{}(proof);
  return d == 0 ? 1 : d;
}

KVCACHED_INSTANTIATE_CODEC(HelloRequest)
KVCACHED_INSTANTIATE_CODEC(HelloResponse)
KVCACHED_INSTANTIATE_CODEC(ErrorBody)
KVCACHED_INSTANTIATE_CODEC(MountRequest)
KVCACHED_INSTANTIATE_CODEC(UnmountRequest)
KVCACHED_INSTANTIATE_CODEC(RemountRequest)
KVCACHED_INSTANTIATE_CODEC(StatusResponse)
KVCACHED_INSTANTIATE_CODEC(TableUpdateAck)
KVCACHED_INSTANTIATE_CODEC(PingRequest)
KVCACHED_INSTANTIATE_CODEC(PingResponse)
KVCACHED_INSTANTIATE_CODEC(KeysRequest)
KVCACHED_INSTANTIATE_CODEC(RemoveRequest)
KVCACHED_INSTANTIATE_CODEC(CodesResponse)
KVCACHED_INSTANTIATE_CODEC(ReplicaListResponse)
KVCACHED_INSTANTIATE_CODEC(PutStartRequest)
KVCACHED_INSTANTIATE_CODEC(PutEndRequest)
KVCACHED_INSTANTIATE_CODEC(ReleaseLeasesRequest)
KVCACHED_INSTANTIATE_CODEC(RemoveByRegexRequest)
KVCACHED_INSTANTIATE_CODEC(RemoveAllRequest)
KVCACHED_INSTANTIATE_CODEC(TaskRef)
KVCACHED_INSTANTIATE_CODEC(CreateTaskRequest)
KVCACHED_INSTANTIATE_CODEC(TaskEndRequest)
KVCACHED_INSTANTIATE_CODEC(TaskInfo)
KVCACHED_INSTANTIATE_CODEC(RemoveAllResponse)
KVCACHED_INSTANTIATE_CODEC(SizesResponse)
KVCACHED_INSTANTIATE_CODEC(TableUpdate)
KVCACHED_INSTANTIATE_CODEC(DataRange)
KVCACHED_INSTANTIATE_CODEC(ShmAttachResponse)
KVCACHED_INSTANTIATE_CODEC(RdmaConnectRequest)
KVCACHED_INSTANTIATE_CODEC(RdmaConnectResponse)
#undef KVCACHED_INSTANTIATE_CODEC

void EncodeHeader(const FrameHeader& h, unsigned char out[kFrameHeaderBytes]) {
  WireWriter w;
  w.U32(h.magic);
  w.U16(h.version);
  w.U16(h.type);
  w.U16(h.flags);
  w.U16(h.reserved);
  w.U64(h.request_id);
  w.U32(h.body_bytes);
  std::memcpy(out, w.buffer().data(), kFrameHeaderBytes);
}

Status DecodeHeader(const unsigned char in[kFrameHeaderBytes], uint32_t max_body_bytes,
                    FrameHeader& out) {
  WireReader r(std::string_view(reinterpret_cast<const char*>(in), kFrameHeaderBytes));
  r.U32(out.magic);
  r.U16(out.version);
  r.U16(out.type);
  r.U16(out.flags);
  r.U16(out.reserved);
  r.U64(out.request_id);
  r.U32(out.body_bytes);
  if (out.magic != kRpcMagic) {
    return Status(ErrorCode::INVALID_PARAMS, "bad frame magic (not a kvcached RPC peer)");
  }
  if (out.reserved != 0 || (out.flags & ~(kFlagResponse | kFlagNotification | kFlagError)) != 0) {
    return Status(ErrorCode::INVALID_PARAMS, "reserved header bits set");
  }
  if (out.body_bytes > max_body_bytes) {
    return Status(ErrorCode::INVALID_PARAMS, "frame body of " + std::to_string(out.body_bytes) +
                                                 " bytes over the limit of " +
                                                 std::to_string(max_body_bytes));
  }
  return Status::Ok();
}

namespace {

// Encoded sizes at their maxima, following the field lists above.
constexpr uint64_t StrMax(uint64_t max_bytes) { return 4 + max_bytes; }
constexpr uint64_t kHelloMax = 1 + StrMax(kMaxIdBytes) * 2 + StrMax(kMaxTokenBytes) +
                               StrMax(kMaxOwnerProofBytes) + StrMax(kMaxIdBytes);
constexpr uint64_t kSegmentInfoMax =
    StrMax(kMaxIdBytes) + 8 + 8 + StrMax(kMaxEndpointBytes) + 8 + 1;
constexpr uint64_t kTierReportMax =
    StrMax(kMaxIdBytes) + 4 +
    kMaxTierReportChanges * (1 + StrMax(kMaxInternalKeyBytes) + 8 * 4 + 1);
constexpr uint64_t kKeysMax = 4 + kMaxBatchKeys * StrMax(kMaxKeyBytes);
constexpr uint64_t kPutStartMax =
    4 + StrMax(kMaxIdBytes) + 1 + 4 + kMaxBatchKeys * (StrMax(kMaxKeyBytes) + 8);
constexpr uint64_t kPutEndMax = 4 + kMaxBatchKeys * (StrMax(kMaxKeyBytes) + 8);
static_assert(kHelloMax <= kMaxBodyBeforeHello, "a whole Hello must fit before Hello");
static_assert(kPutStartMax < UINT32_MAX);

}  // namespace

uint32_t MaxRequestBodyBytes(MsgType type) {
  switch (type) {
    case MsgType::kHello:
      return kMaxBodyBeforeHello;
    case MsgType::kMountSegment:
      return static_cast<uint32_t>(kSegmentInfoMax);
    case MsgType::kUnmountSegment:
      return static_cast<uint32_t>(StrMax(kMaxIdBytes));
    case MsgType::kRemountSegment:
    case MsgType::kDataWrite:
      return UINT32_MAX;
    case MsgType::kPing:
      return 4;
    case MsgType::kExistKey:
    case MsgType::kGetReplicaList:
    case MsgType::kPutRevoke:
    case MsgType::kGetSize:
      return static_cast<uint32_t>(kKeysMax);
    case MsgType::kReportUnreachable:
      return static_cast<uint32_t>(4 + kMaxBatchKeys * StrMax(kMaxIdBytes));
    case MsgType::kReleaseLeases:
      return static_cast<uint32_t>(kPutEndMax);  // the same shape: key and a u64
    case MsgType::kRemove:
      return static_cast<uint32_t>(1 + kKeysMax);
    case MsgType::kPutStart:
    case MsgType::kUpsertStart:
      return static_cast<uint32_t>(kPutStartMax);
    case MsgType::kRemoveByRegex:
      return static_cast<uint32_t>(StrMax(kMaxRegexBytes) + 1);
    case MsgType::kPutEnd:
      return static_cast<uint32_t>(kPutEndMax);
    case MsgType::kRemoveAll:
      return 1;
    case MsgType::kCreateTask:
      return static_cast<uint32_t>(1 + StrMax(kMaxKeyBytes) + StrMax(kMaxIdBytes) + 4 +
                                   kMaxTaskTargets * StrMax(kMaxIdBytes));
    case MsgType::kTaskStart:
    case MsgType::kQueryTask:
      return 16;
    case MsgType::kTableUpdateAck:
      return 8;
    case MsgType::kTierReport:
      return static_cast<uint32_t>(kTierReportMax);
    case MsgType::kTaskEnd:
      return static_cast<uint32_t>(16 + 4 + StrMax(kMaxMessageBytes));
    case MsgType::kDataRead:
      return kDataRangeBytes;
    case MsgType::kShmAttach:
      return 0;
    case MsgType::kRdmaConnect:
      // 32 bytes today; later link versions may add a little.
      return 1024;
    case MsgType::kTableUpdate:  // master -> owner only
      break;
  }
  return kMaxUnknownBodyBytes;
}

Status CheckRequestBodyLimit(const FrameHeader& head, uint32_t max_body_bytes) {
  MsgType type = static_cast<MsgType>(head.type);
  uint32_t kind_limit = MaxRequestBodyBytes(type);
  uint32_t limit = std::min(kind_limit, max_body_bytes);
  if (head.body_bytes <= limit) return Status::Ok();
  const char* which = limit == kind_limit ? "the limit for this kind" : "the connection's limit";
  return Status(ErrorCode::INVALID_PARAMS, std::string(MsgTypeName(type)) + " frame body of " +
                                               std::to_string(head.body_bytes) + " bytes over " +
                                               which + " of " + std::to_string(limit) + " bytes");
}

Status DecodeRequestHeader(const unsigned char in[kFrameHeaderBytes], uint32_t max_body_bytes,
                           FrameHeader& out) {
  if (Status st = DecodeHeader(in, UINT32_MAX, out); !st.ok()) return st;
  return CheckRequestBodyLimit(out, max_body_bytes);
}

const char* MsgTypeName(MsgType type) {
  switch (type) {
    case MsgType::kHello:
      return "Hello";
    case MsgType::kMountSegment:
      return "MountSegment";
    case MsgType::kUnmountSegment:
      return "UnmountSegment";
    case MsgType::kRemountSegment:
      return "RemountSegment";
    case MsgType::kPing:
      return "Ping";
    case MsgType::kExistKey:
      return "ExistKey";
    case MsgType::kGetReplicaList:
      return "GetReplicaList";
    case MsgType::kPutStart:
      return "PutStart";
    case MsgType::kUpsertStart:
      return "UpsertStart";
    case MsgType::kRemoveByRegex:
      return "RemoveByRegex";
    case MsgType::kCreateTask:
      return "CreateTask";
    case MsgType::kTaskStart:
      return "TaskStart";
    case MsgType::kTaskEnd:
      return "TaskEnd";
    case MsgType::kQueryTask:
      return "QueryTask";
    case MsgType::kTableUpdateAck:
      return "TableUpdateAck";
    case MsgType::kTierReport:
      return "TierReport";
    case MsgType::kPutEnd:
      return "PutEnd";
    case MsgType::kPutRevoke:
      return "PutRevoke";
    case MsgType::kRemove:
      return "Remove";
    case MsgType::kRemoveAll:
      return "RemoveAll";
    case MsgType::kGetSize:
      return "GetSize";
    case MsgType::kReportUnreachable:
      return "ReportUnreachable";
    case MsgType::kReleaseLeases:
      return "ReleaseLeases";
    case MsgType::kTableUpdate:
      return "TableUpdate";
    case MsgType::kDataWrite:
      return "DataWrite";
    case MsgType::kDataRead:
      return "DataRead";
    case MsgType::kShmAttach:
      return "ShmAttach";
    case MsgType::kRdmaConnect:
      return "RdmaConnect";
  }
  return "Unknown";
}

}  // namespace kvcached
