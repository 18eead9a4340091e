#include "net/leader_lookup.h"

#include <nlohmann/json.hpp>

#include <memory>

#include "core/printable.h"
#include "net/rpc_client.h"

namespace kvcached {

std::string LeaderKey(std::string_view cluster_id) {
  return "kvcached/" + std::string(cluster_id) + "/leader";
}

Status CheckClusterId(std::string_view cluster_id) {
  bool ok = !cluster_id.empty() && cluster_id.size() <= 128;
  for (char c : cluster_id) {
    ok = ok && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '.' || c == '_' || c == '-');
  }
  if (ok) return Status::Ok();
  return Status(ErrorCode::INVALID_PARAMS,
                "cluster id '" + Printable(cluster_id) +
                    "': expected 1 to 128 characters of letters, digits, '.', '_' and '-'");
}

std::string EncodeLeaderInfo(const LeaderInfo& info) {
  return nlohmann::json({{"rpc", info.rpc}, {"admin", info.admin}, {"master_id", info.master_id}})
      .dump();
}

Result<LeaderInfo> DecodeLeaderInfo(std::string_view value, int64_t epoch) {
  nlohmann::json doc = nlohmann::json::parse(value, nullptr, /*allow_exceptions=*/false);
  auto text = [&](const char* name) -> const std::string* {
    if (!doc.is_object()) return nullptr;
    auto it = doc.find(name);
    return it != doc.end() && it->is_string() ? &it->get_ref<const std::string&>() : nullptr;
  };
  const std::string* rpc = text("rpc");
  if (rpc == nullptr || rpc->empty() || rpc->size() > 300) {
    return Status(ErrorCode::ETCD_OPERATION_ERROR,
                  "the leader key holds '" + Printable(value) +
                      "', not a kvcached master's addresses (another program's key?)");
  }
  LeaderInfo info;
  info.rpc = *rpc;
  if (const std::string* admin = text("admin")) info.admin = *admin;
  if (const std::string* id = text("master_id")) info.master_id = *id;
  info.epoch = epoch;
  return info;
}

LeaderLookup::LeaderLookup(EtcdClient etcd, std::string cluster_id)
    : etcd_(std::move(etcd)), cluster_id_(std::move(cluster_id)) {}

Result<LeaderInfo> LeaderLookup::Find() const {
  Result<std::optional<EtcdKeyValue>> kv = etcd_.Get(LeaderKey(cluster_id_));
  if (!kv.ok()) return kv.status();
  if (!kv->has_value()) {
    return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                  "no master leads cluster '" + cluster_id_ + "' in etcd " + etcd_.endpoints() +
                      " (none runs with --etcd-endpoints and this --cluster-id, or an election "
                      "is under way)");
  }
  return DecodeLeaderInfo((*kv)->value, (*kv)->create_revision);
}

Status ApplyMasterAddress(RpcClientOptions& o, const std::string& address,
                          std::string_view cluster_id, std::chrono::milliseconds lookup_timeout) {
  o.address = address;
  o.resolve_address = nullptr;
  std::optional<std::string> endpoints = EtcdEndpointsOf(address);
  if (!endpoints) return Status::Ok();
  std::string cluster(cluster_id.empty() ? kDefaultClusterId : cluster_id);
  if (Status st = CheckClusterId(cluster); !st.ok()) return st;
  Result<EtcdClient> etcd = EtcdClient::Create(*endpoints, lookup_timeout);
  if (!etcd.ok()) return etcd.status();
  auto lookup = std::make_shared<LeaderLookup>(std::move(etcd).value(), cluster);
  o.resolve_address = [lookup]() -> Result<std::string> {
    Result<LeaderInfo> leader = lookup->Find();
    if (!leader.ok()) return leader.status();
    return leader->rpc;
  };
  return Status::Ok();
}

}  // namespace kvcached
