// SegmentEndpoint: how peers reach a segment's bytes — the descriptor a
// store publishes with its segment (in MountSegment's `endpoint`, and under
// mooncake/ram/<segment> in the metadata service). One JSON object:
//
//   {"name":"h1:4242","host_id":"h1","instance":"store-1a2b...","size":1073741824,
//    "protocol":"tcp","tcp":"10.0.0.5:40123","shm":"/run/kvcached/x/store-1a2b....sock",
//    "rdma":{"base":140245...,"chunk":1073741824,
//            "nics":[{"name":"mlx5_0","gid":"::ffff:10.0.0.5","lid":0}],
//            "rkeys":[[5123],[5124]]}}
//
// `tcp` is the data port (host:port, IPv6 hosts in brackets); `shm` the Unix
// socket that hands out the segment's memfd to clients with the same host
// id (a path, or "@name" in Linux's abstract namespace); either may be absent. `rdma`
// (core/rdma_link.h) is present when the store serves RDMA; its queue pairs
// are set up over the `tcp` data port, so it needs one.
// Pure functions; thread-safe.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "core/rdma_link.h"
#include "core/status.h"

namespace kvcached {

struct SegmentEndpoint {
  std::string name;
  std::string host_id;
  std::string instance;  // the serving process's identity: a restart changes it
  uint64_t size = 0;
  std::string protocol = "tcp";
  std::string tcp;  // "host:port"; empty: no TCP data port
  std::string shm;  // Unix socket; empty: no shared-memory path
  std::optional<RdmaSegmentInfo> rdma;  // absent: no RDMA path
};

// At most this many rkeys (chunks x NICs) in one descriptor, which keeps it
// well inside kMaxEndpointBytes.
inline constexpr size_t kMaxRdmaKeys = 4096;

std::string FormatEndpoint(const SegmentEndpoint& e);
// INVALID_PARAMS naming what is wrong (not JSON, a field of the wrong type,
// an over-long string, no way to reach the segment at all, an RDMA part
// whose chunks do not cover the segment or whose key table is ragged).
Result<SegmentEndpoint> ParseEndpoint(std::string_view text);

// Splits "host:port" / "[v6]:port". INVALID_PARAMS when malformed.
Status SplitHostPort(std::string_view address, std::string& host, uint16_t& port);

}  // namespace kvcached
