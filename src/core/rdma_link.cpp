#include "core/rdma_link.h"

#include <arpa/inet.h>

#include <algorithm>
#include <cctype>
#include <cstring>

#include <nlohmann/json.hpp>

namespace kvcached {

namespace {

bool ValidDeviceName(std::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' ||
                  c == ':' || c == '-';
         });
}

Status AddDevices(std::string_view list, std::vector<std::string>& out) {
  size_t start = 0;
  while (start <= list.size()) {
    size_t comma = list.find(',', start);
    if (comma == std::string_view::npos) comma = list.size();
    std::string name;
    for (char c : list.substr(start, comma - start)) {
      if (c != ' ' && c != '\t') name += c;
    }
    if (!name.empty()) {
      if (!ValidDeviceName(name)) {
        return Status(ErrorCode::INVALID_PARAMS,
                      "RDMA device name '" + name + "' is not 1-64 of [A-Za-z0-9_.:-]");
      }
      if (std::find(out.begin(), out.end(), name) == out.end()) out.push_back(name);
      if (out.size() > kMaxRdmaNics) {
        return Status(ErrorCode::INVALID_PARAMS, "more than " + std::to_string(kMaxRdmaNics) +
                                                     " RDMA devices named");
      }
    }
    start = comma + 1;
  }
  return Status::Ok();
}

}  // namespace

Result<std::vector<std::string>> ParseRdmaDeviceList(std::string_view text) {
  std::vector<std::string> out;
  size_t first = text.find_first_not_of(" \t\n");
  if (first != std::string_view::npos && text[first] == '{') {
    nlohmann::json j = nlohmann::json::parse(text.begin(), text.end(), nullptr, false);
    if (j.is_discarded() || !j.is_object()) {
      return Status(ErrorCode::INVALID_PARAMS, "RDMA device map is not a JSON object");
    }
    for (const auto& [rank, list] : j.items()) {
      if (!list.is_string()) {
        return Status(ErrorCode::INVALID_PARAMS,
                      "RDMA device map entry '" + rank + "' is not a string of device names");
      }
      if (Status st = AddDevices(list.get<std::string>(), out); !st.ok()) return st;
    }
    return out;
  }
  if (Status st = AddDevices(text, out); !st.ok()) return st;
  return out;
}

std::string FormatGid(const RdmaGid& gid) {
  char text[INET6_ADDRSTRLEN] = {};
  if (inet_ntop(AF_INET6, gid.data(), text, sizeof text) == nullptr) return "?";
  return text;
}

Status ParseGid(std::string_view text, RdmaGid& out) {
  if (text.empty() || text.size() >= INET6_ADDRSTRLEN) {
    return Status(ErrorCode::INVALID_PARAMS, "GID '" + std::string(text) + "' is not an IPv6 address");
  }
  char buf[INET6_ADDRSTRLEN] = {};
  std::memcpy(buf, text.data(), text.size());
  RdmaGid gid{};
  if (inet_pton(AF_INET6, buf, gid.data()) != 1) {
    return Status(ErrorCode::INVALID_PARAMS, "GID '" + std::string(text) + "' is not an IPv6 address");
  }
  out = gid;
  return Status::Ok();
}

}  // namespace kvcached
