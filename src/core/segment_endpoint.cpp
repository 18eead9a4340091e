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

}  // namespace

std::string FormatEndpoint(const SegmentEndpoint& e) {
  nlohmann::json j = {{"name", e.name},
                      {"host_id", e.host_id},
                      {"instance", e.instance},
                      {"size", e.size},
                      {"protocol", e.protocol}};
  if (!e.tcp.empty()) j["tcp"] = e.tcp;
  if (!e.shm.empty()) j["shm"] = e.shm;
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
