// libFuzzer target: arbitrary bytes as a stream of RPC frames — header
// decoding with its limits, then each body through MasterService::Dispatch
// (the decoder of every message type and the index behind it). State
// carries over between inputs, so sequences of mounts, puts, reads and
// removals are explored too. RdmaConnect frames go to the data port's
// handshake decoder and, as text, to the segment descriptor parser.
#include <cstddef>
#include <cstdint>

#include <spdlog/spdlog.h>
#include <boost/asio/io_context.hpp>

#include "core/segment_endpoint.h"
#include "master/master_service.h"

namespace {

kvcached::MasterService& Service() {
  static boost::asio::io_context ioc;
  static kvcached::MetricsRegistry metrics;
  static kvcached::MasterService* service = [] {
    spdlog::set_level(spdlog::level::off);
    kvcached::MasterServiceOptions o;
    o.index.random_seed = 1;
    o.meta.reset();
    return new kvcached::MasterService(ioc, o, metrics);
  }();
  return *service;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvcached;
  MasterService& service = Service();
  RpcPeer peer{1, "fuzz", PeerRole::kStore, "fuzz-client", "fuzz-host", 0, ""};
  size_t offset = 0;
  for (int i = 0; i < 16 && size - offset >= kFrameHeaderBytes; ++i) {
    FrameHeader h;
    if (!DecodeHeader(data + offset, 1 << 20, h).ok()) return 0;
    offset += kFrameHeaderBytes;
    if (h.body_bytes > size - offset) return 0;
    std::string_view body(reinterpret_cast<const char*>(data + offset), h.body_bytes);
    offset += h.body_bytes;
    if (h.type == static_cast<uint16_t>(MsgType::kHello)) {
      HelloRequest hello;
      (void)DecodeBody(body, hello);
      continue;
    }
    if (h.type == static_cast<uint16_t>(MsgType::kRdmaConnect)) {
      // The data port's RDMA handshake, and the descriptor a client parses
      // from a replica list (JSON, RDMA keys included).
      RdmaConnectRequest req;
      if (DecodeBody(body, req).ok() && (req.client.mtu < 1 || req.client.mtu > 5)) {
        __builtin_trap();  // the decoder bounds what the acceptor is given
      }
      Result<SegmentEndpoint> e = ParseEndpoint(body);
      if (e.ok() && e->rdma && e->rdma->rkeys.size() * e->rdma->nics.size() > kMaxRdmaKeys) {
        __builtin_trap();
      }
      continue;
    }
    std::string out;
    uint16_t flags = 0;
    if (!service.Dispatch(peer, static_cast<MsgType>(h.type), body, out, flags).ok()) return 0;
    // Every request but a one-way one gets an answer, and a one-way one none.
    if (IsOneWay(static_cast<MsgType>(h.type)) != (out.empty() && flags == 0)) __builtin_trap();
  }
  return 0;
}
