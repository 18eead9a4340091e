#include "client/batch_context.h"

#include <spdlog/spdlog.h>

#include "core/tenant.h"

namespace kvcached {

Status CheckKey(std::string_view key) {
  if (key.empty()) return Status(ErrorCode::INVALID_KEY, "empty key");
  if (key.size() > kMaxKeyBytes) {
    return Status(ErrorCode::INVALID_KEY, "key of " + std::to_string(key.size()) +
                                              " bytes over the limit of " +
                                              std::to_string(kMaxKeyBytes));
  }
  if (IsReservedKey(key)) {
    return Status(ErrorCode::INVALID_KEY,
                  "key begins with a NUL byte (reserved for tenants' key spaces)");
  }
  return Status::Ok();
}

Status FromCode(int32_t code, const std::string& key, const char* what) {
  if (code == 0) return Status::Ok();
  ErrorCode c = ErrorCodeFromInt(code).value_or(ErrorCode::INTERNAL_ERROR);
  return Status(c, std::string(what) + " '" + key + "': " + std::string(ErrorText(c)));
}

Status LookUpReplicas(MasterLink& master, const std::vector<std::string>& keys,
                      const std::vector<size_t>& todo, std::vector<ReplicaListResponse>& found) {
  return ForBatchChunks(todo.size(), [&](size_t a, size_t b) {
    KeysRequest req;
    for (size_t j = a; j < b; ++j) req.keys.push_back(keys[todo[j]]);
    ReplicaListResponse res;
    Status st = master.Call(MsgType::kGetReplicaList, req, res);
    if (st.ok() && res.items.size() != b - a) {
      st = Status(ErrorCode::RPC_FAIL, "GetReplicaList answered the wrong number of items");
    }
    found.push_back(std::move(res));
    return st;
  });
}

void ReleaseReads(MasterLink& master, const std::vector<ReleaseItem>& items) {
  (void)ForBatchChunks(items.size(), [&](size_t a, size_t b) {
    ReleaseLeasesRequest part;
    part.items.assign(items.begin() + static_cast<std::ptrdiff_t>(a),
                      items.begin() + static_cast<std::ptrdiff_t>(b));
    if (Status st = master.Send(MsgType::kReleaseLeases, part); !st.ok()) {
      spdlog::debug("ReleaseLeases of {} keys not sent: {} (they end with their TTL)",
                    part.items.size(), st.ToString());
    }
    return Status::Ok();
  });
}

}  // namespace kvcached
