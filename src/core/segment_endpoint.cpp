#include "core/segment_endpoint.h"

#include <charconv>

#include <nlohmann/json.hpp>

namespace kvcached {
namespace {

constexpr size_t kMaxFieldBytes = 1024;

Status Field(const nlohmann::json& j, const char* name, std::string& out, bool required) {
  auto it = j.find(name);
  if (it == j.end()) {
    if (!required) return Status::Ok();
    return Status(ErrorCode::INVALID_PARAMS, std::string("segment endpoint lacks '") + name + "'");
  }
  if (!it->is_string() || it->get_ref<const std::string&>().size() > kMaxFieldBytes) {
    return Status(ErrorCode::INVALID_PARAMS, std::string("segment endpoint field '") + name +
                                                 "' is not a string of at most 1024 bytes");
  }
  out = it->get<std::string>();
  return Status::Ok();
}

Status Bad(const std::string& why) { return Status(ErrorCode::INVALID_PARAMS, why); }

bool Unsigned(const nlohmann::json& j, const char* name, uint64_t& out) {
  auto it = j.find(name);
  if (it == j.end() || !it->is_number_unsigned()) return false;
  out = it->get<uint64_t>();
  return true;
}

nlohmann::json FormatRdma(const RdmaSegmentInfo& r) {
  nlohmann::json nics = nlohmann::json::array();
  for (const RdmaNic& n : r.nics) {
    nics.push_back({{"name", n.name}, {"gid", FormatGid(n.gid)}, {"lid", n.lid}});
  }
  return {{"base", r.base}, {"chunk", r.chunk_bytes}, {"nics", nics}, {"rkeys", r.rkeys}};
}

// Every count is bounded before anything is kept; the chunks must cover
// the whole segment, so a peer's (offset, length) inside the segment
// always has a key.
Result<RdmaSegmentInfo> ParseRdma(const nlohmann::json& j, uint64_t size) {
  const std::string what = "segment endpoint field 'rdma'";
  if (!j.is_object()) return Bad(what + " is not an object");
  RdmaSegmentInfo r;
  if (!Unsigned(j, "base", r.base) || !Unsigned(j, "chunk", r.chunk_bytes) || r.chunk_bytes == 0) {
    return Bad(what + " needs an unsigned 'base' and a non-zero 'chunk'");
  }
  if (r.base > UINT64_MAX - size) return Bad(what + ": base + size overflows");
  auto nics = j.find("nics");
  if (nics == j.end() || !nics->is_array() || nics->empty() || nics->size() > kMaxRdmaNics) {
    return Bad(what + " needs 'nics': a list of 1 to " + std::to_string(kMaxRdmaNics));
  }
  for (const nlohmann::json& n : *nics) {
    if (!n.is_object()) return Bad(what + ": a NIC is not an object");
    RdmaNic nic;
    std::string gid;
    for (Status st : {Field(n, "name", nic.name, true), Field(n, "gid", gid, true)}) {
      if (!st.ok()) return st;
    }
    if (Status st = ParseGid(gid, nic.gid); !st.ok()) return Bad(what + ": " + st.message());
    uint64_t lid = 0;
    if (n.contains("lid") && (!Unsigned(n, "lid", lid) || lid > 0xFFFF)) {
      return Bad(what + ": NIC '" + nic.name + "' has a 'lid' that is not 0-65535");
    }
    nic.lid = static_cast<uint16_t>(lid);
    r.nics.push_back(std::move(nic));
  }
  auto rkeys = j.find("rkeys");
  if (rkeys == j.end() || !rkeys->is_array() || rkeys->empty() ||
      rkeys->size() * r.nics.size() > kMaxRdmaKeys) {
    return Bad(what + " needs 'rkeys': one row per chunk, at most " +
               std::to_string(kMaxRdmaKeys) + " keys in all");
  }
  // chunk * rows >= size, without overflow.
  uint64_t chunks_needed = size / r.chunk_bytes + (size % r.chunk_bytes != 0 ? 1 : 0);
  if (chunks_needed > rkeys->size()) {
    return Bad(what + ": " + std::to_string(rkeys->size()) + " chunks of " +
               std::to_string(r.chunk_bytes) + " bytes do not cover " + std::to_string(size));
  }
  for (const nlohmann::json& row : *rkeys) {
    if (!row.is_array() || row.size() != r.nics.size()) {
      return Bad(what + ": every 'rkeys' row needs one key per NIC");
    }
    std::vector<uint32_t> keys;
    for (const nlohmann::json& k : row) {
      if (!k.is_number_unsigned() || k.get<uint64_t>() > UINT32_MAX) {
        return Bad(what + ": an rkey is not a 32-bit unsigned number");
      }
      keys.push_back(k.get<uint32_t>());
    }
    r.rkeys.push_back(std::move(keys));
  }
  return r;
}

}  // namespace

std::string FormatEndpoint(const SegmentEndpoint& e) {
  nlohmann::json j = {{"name", e.name},
                      {"host_id", e.host_id},
                      {"instance", e.instance},
                      {"size", e.size},
                      {"protocol", e.protocol}};
  if (!e.tcp.empty()) j["tcp"] = e.tcp;
  if (!e.shm.empty()) j["shm"] = e.shm;
  if (e.rdma) j["rdma"] = FormatRdma(*e.rdma);
  return j.dump();
}

Result<SegmentEndpoint> ParseEndpoint(std::string_view text) {
  nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(ErrorCode::INVALID_PARAMS, "segment endpoint is not a JSON object");
  }
  SegmentEndpoint e;
  for (Status st : {Field(j, "name", e.name, true), Field(j, "host_id", e.host_id, false),
                    Field(j, "instance", e.instance, false),
                    Field(j, "protocol", e.protocol, false), Field(j, "tcp", e.tcp, false),
                    Field(j, "shm", e.shm, false)}) {
    if (!st.ok()) return st;
  }
  auto size = j.find("size");
  if (size == j.end() || !size->is_number_unsigned()) {
    return Status(ErrorCode::INVALID_PARAMS, "segment endpoint lacks an unsigned 'size'");
  }
  e.size = size->get<uint64_t>();
  if (e.tcp.empty() && e.shm.empty()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "segment endpoint of '" + e.name + "' names neither a tcp nor a shm path");
  }
  if (auto rdma = j.find("rdma"); rdma != j.end()) {
    if (e.tcp.empty()) {
      return Bad("segment endpoint of '" + e.name + "' has 'rdma' but no 'tcp' port to set it up");
    }
    Result<RdmaSegmentInfo> r = ParseRdma(*rdma, e.size);
    if (!r.ok()) return r.status();
    e.rdma = std::move(r).value();
  }
  return e;
}

Status SplitHostPort(std::string_view address, std::string& host, uint16_t& port) {
  size_t colon = address.rfind(':');
  if (colon == std::string_view::npos || colon == 0 || colon + 1 == address.size()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "address '" + std::string(address) + "' is not host:port");
  }
  std::string_view h = address.substr(0, colon);
  if (h.front() == '[') {
    if (h.size() < 3 || h.back() != ']') {
      return Status(ErrorCode::INVALID_PARAMS,
                    "address '" + std::string(address) + "' has an unclosed IPv6 bracket");
    }
    h = h.substr(1, h.size() - 2);
  }
  std::string_view p = address.substr(colon + 1);
  unsigned value = 0;
  auto [end, ec] = std::from_chars(p.data(), p.data() + p.size(), value);
  if (ec != std::errc() || end != p.data() + p.size() || value == 0 || value > 65535) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "address '" + std::string(address) + "' has no valid port (1-65535)");
  }
  host = std::string(h);
  port = static_cast<uint16_t>(value);
  return Status::Ok();
}

}  // namespace kvcached
