// What the RDMA transport's two sides tell each other, with no verbs in
// sight: the segment's RDMA descriptor (published inside SegmentEndpoint),
// the queue-pair parameters exchanged over the store's TCP data port
// (MsgType::kRdmaConnect, codec in rpc_protocol), and the interface a data
// port calls to have a queue pair set up for a peer. src/rdma implements
// RdmaAcceptor; src/net only calls it, so net and rdma never include each
// other. Pure data; thread-safe.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "core/status.h"

namespace kvcached {

inline constexpr uint8_t kRdmaLinkVersion = 1;
inline constexpr size_t kMaxRdmaNics = 16;
inline constexpr size_t kMaxRdmaChunks = 4096;

using RdmaGid = std::array<uint8_t, 16>;

// One NIC port that serves a segment.
struct RdmaNic {
  std::string name;  // "mlx5_0", "rxe0"
  RdmaGid gid{};     // the GID peers address (RoCE v2, IPv4-mapped when there is one)
  uint16_t lid = 0;  // InfiniBand only; 0 on RoCE
};

// A segment as RDMA peers see it: remote address of byte `offset` is
// base + offset; the memory is registered in chunks of `chunk_bytes` (the
// last may be shorter), and rkeys[chunk][nic] is the key of chunk `chunk`
// on nics[nic].
struct RdmaSegmentInfo {
  uint64_t base = 0;
  uint64_t chunk_bytes = 0;
  std::vector<RdmaNic> nics;
  std::vector<std::vector<uint32_t>> rkeys;
};

// One side of an RC queue pair, as the other side needs it to connect.
struct RdmaQpParams {
  RdmaGid gid{};
  uint16_t lid = 0;
  uint32_t qpn = 0;
  uint32_t psn = 0;  // 24 bits
  uint8_t mtu = 0;   // enum ibv_mtu: 1 = 256 ... 5 = 4096
};

// Client -> store over the data port (after Hello): connect a queue pair
// on the store's NIC `store_nic` (index into RdmaSegmentInfo::nics) to the
// client's `client`. The store's queue pair lives as long as the TCP
// connection that asked for it.
struct RdmaConnectRequest {
  uint8_t version = kRdmaLinkVersion;
  uint32_t store_nic = 0;
  RdmaQpParams client;
};

struct RdmaConnectResponse {
  uint8_t version = kRdmaLinkVersion;
  RdmaQpParams store;
};

// The store side of the handshake. Implemented by src/rdma (RdmaTarget),
// called by the data port on the connection's strand. `link` identifies
// the TCP connection: Release(link) runs when it closes and destroys every
// queue pair it set up.
class RdmaAcceptor {
 public:
  virtual ~RdmaAcceptor() = default;
  // Creates a queue pair on the requested NIC, connects it to the peer's
  // and returns its parameters. INVALID_PARAMS for a bad NIC index or
  // version; TRANSFER_FAIL when the device refuses.
  virtual Result<RdmaConnectResponse> Accept(const RdmaConnectRequest& request, uint64_t link) = 0;
  virtual void Release(uint64_t link) = 0;
  // The descriptor published with the segment.
  virtual RdmaSegmentInfo Describe() const = 0;
  // Queue pairs set up and not yet released, for /metrics.
  virtual size_t queue_pairs() const = 0;
};

// RDMA device names from --device / MOONCAKE_DEVICE / device_name: a comma
// list ("mlx5_0,mlx5_1"; spaces ignored; empty: discover), or Mooncake's
// JSON map of ranks to such lists ({"0":"mlx5_0","1":"mlx5_1"}), of which a
// process takes every device named, each once. INVALID_PARAMS for a name
// that is not [A-Za-z0-9_.:-]{1,64} or more than kMaxRdmaNics names.
Result<std::vector<std::string>> ParseRdmaDeviceList(std::string_view text);

// "::ffff:10.0.0.1" and back (INVALID_PARAMS when not an IPv6 text form).
std::string FormatGid(const RdmaGid& gid);
Status ParseGid(std::string_view text, RdmaGid& out);

}  // namespace kvcached
