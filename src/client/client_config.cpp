// ClientConfig::FromEnvironment: Mooncake's way of configuring a client,
// so deployments that follow its SGLang recipe need no new settings.
#include <charconv>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "core/auth_token.h"
#include "core/units.h"
#include "kvcached/client.h"

namespace kvcached {
namespace {

std::optional<std::string> Env(const char* name) {
  const char* v = std::getenv(name);
  if (v == nullptr || *v == '\0') return std::nullopt;
  return std::string(v);
}

Status SizeFrom(const std::string& text, const std::string& source, uint64_t& out) {
  Result<uint64_t> size = ParseSize(text);
  if (!size.ok()) {
    return Status(ErrorCode::INVALID_PARAMS, source + ": " + size.status().message());
  }
  out = *size;
  return Status::Ok();
}

// A field of the JSON config file: a string, or for sizes also a number.
Status JsonField(const nlohmann::json& j, const char* name, const std::string& file,
                 std::string& out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (!it->is_string()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  file + ": field '" + name + "' must be a string");
  }
  out = it->get<std::string>();
  return Status::Ok();
}

Status JsonSize(const nlohmann::json& j, const char* name, const std::string& file,
                uint64_t& out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return Status::Ok();
  if (it->is_number_unsigned()) {
    out = it->get<uint64_t>();
    return Status::Ok();
  }
  if (it->is_string()) return SizeFrom(it->get<std::string>(), file + ": field " + name, out);
  return Status(ErrorCode::INVALID_PARAMS,
                file + ": field '" + name + "' must be a size (a number or a string like \"4gb\")");
}

Status FromFile(const std::string& path, ClientConfig& c) {
  std::ifstream in(path);
  if (!in) return Status(ErrorCode::INVALID_PARAMS, "cannot read config file '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  nlohmann::json j = nlohmann::json::parse(buf.str(), nullptr, false);
  if (j.is_discarded() || !j.is_object()) {
    return Status(ErrorCode::INVALID_PARAMS, path + ": not a JSON object");
  }
  for (Status st : {JsonField(j, "local_hostname", path, c.local_hostname),
                    JsonField(j, "metadata_server", path, c.metadata_server),
                    JsonField(j, "master_server_address", path, c.master_server_addr),
                    JsonField(j, "protocol", path, c.protocol),
                    JsonField(j, "device_name", path, c.device_names),
                    JsonSize(j, "global_segment_size", path, c.global_segment_size),
                    JsonSize(j, "local_buffer_size", path, c.local_buffer_size)}) {
    if (!st.ok()) return st;
  }
  return Status::Ok();
}

}  // namespace

Result<ClientConfig> ClientConfig::FromEnvironment() {
  ClientConfig c;
  if (auto path = Env("MOONCAKE_CONFIG_PATH")) {
    if (Status st = FromFile(*path, c); !st.ok()) return st;
  } else {
    if (auto v = Env("MOONCAKE_MASTER")) c.master_server_addr = *v;
    if (auto v = Env("MOONCAKE_LOCAL_HOSTNAME")) c.local_hostname = *v;
    if (auto v = Env("MOONCAKE_TE_META_DATA_SERVER")) c.metadata_server = *v;
    if (auto v = Env("MOONCAKE_PROTOCOL")) c.protocol = *v;
    if (auto v = Env("MOONCAKE_DEVICE")) c.device_names = *v;
    if (auto v = Env("MOONCAKE_GLOBAL_SEGMENT_SIZE")) {
      if (Status st = SizeFrom(*v, "MOONCAKE_GLOBAL_SEGMENT_SIZE", c.global_segment_size);
          !st.ok()) {
        return st;
      }
    }
    if (auto v = Env("MOONCAKE_LOCAL_BUFFER_SIZE")) {
      if (Status st = SizeFrom(*v, "MOONCAKE_LOCAL_BUFFER_SIZE", c.local_buffer_size); !st.ok()) {
        return st;
      }
    }
  }
  if (auto v = Env("KVCACHED_TOKEN_FILE")) {
    Result<AuthToken> token = AuthToken::LoadFile(*v);
    if (!token.ok()) {
      return Status(ErrorCode::INVALID_PARAMS, "KVCACHED_TOKEN_FILE: " + token.status().message());
    }
    c.token = token->secret();
  }
  if (auto v = Env("KVCACHED_TRANSPORT")) {
    if (*v == "auto") {
      c.transport = TransportMode::kAuto;
    } else if (*v == "shm") {
      c.transport = TransportMode::kShm;
    } else if (*v == "tcp") {
      c.transport = TransportMode::kTcp;
    } else if (*v == "rdma") {
      c.transport = TransportMode::kRdma;
    } else {
      return Status(ErrorCode::INVALID_PARAMS,
                    "KVCACHED_TRANSPORT='" + *v + "' is not one of auto, shm, tcp, rdma");
    }
  }
  if (auto v = Env("KVCACHED_RDMA_GID_INDEX")) {
    int index = -1;
    auto [end, ec] = std::from_chars(v->data(), v->data() + v->size(), index);
    if (ec != std::errc() || end != v->data() + v->size() || index < 0 || index > 255) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "KVCACHED_RDMA_GID_INDEX='" + *v + "' is not a GID index 0-255");
    }
    c.rdma_gid_index = index;
  }
  return c;
}

}  // namespace kvcached
