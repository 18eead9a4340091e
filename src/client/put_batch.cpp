#include "client/put_batch.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "client/checksum.h"

namespace kvcached {
namespace {

// Transfer errors that mean the store itself could not be reached (or went
// away mid-transfer), as opposed to a store that answered with a refusal.
bool Unreachable(ErrorCode code) {
  return code == ErrorCode::RPC_FAIL || code == ErrorCode::RPC_TIMEOUT ||
         code == ErrorCode::TRANSFER_FAIL;
}

}  // namespace

PutBatch::PutBatch(BatchContext& ctx, const std::vector<std::string>& keys,
                   const std::vector<Slice>& values, const ReplicateConfig& rc, bool upsert)
    : ctx_(ctx),
      keys_(keys),
      values_(values),
      rc_(rc),
      upsert_(upsert),
      out_(keys.size()),
      started_(keys.size(), false),
      sums_(keys.size(), 0),
      again_(keys.size(), false) {}

bool PutBatch::Late(std::chrono::steady_clock::time_point asked, uint64_t lease_ttl_ms) const {
  return lease_ttl_ms > 0 && ctx_.clock() - asked > std::chrono::milliseconds(lease_ttl_ms);
}

std::vector<Status> PutBatch::Run(int retries) {
  if (keys_.size() != values_.size()) {
    return std::vector<Status>(
        keys_.size(),
        Status(ErrorCode::INVALID_PARAMS, std::to_string(keys_.size()) + " keys but " +
                                              std::to_string(values_.size()) + " values"));
  }
  Validate();
  Start();
  Transfer(retries > 0);
  Commit();
  Revoke();
  Retry(retries);
  for (auto [i, first] : repeats_) out_[i] = out_[first];
  return std::move(out_);
}

void PutBatch::Validate() {
  std::unordered_map<std::string_view, size_t> first;
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (Status st = CheckKey(keys_[i]); !st.ok()) {
      out_[i] = st;
    } else if (values_[i].size == 0 || values_[i].data == nullptr) {
      out_[i] = Status(ErrorCode::INVALID_PARAMS, "put of '" + keys_[i] + "': no bytes to store");
    } else if (auto [it, fresh] = first.emplace(keys_[i], i); !fresh) {
      repeats_.emplace_back(i, it->second);
    } else {
      todo_.push_back(i);
    }
  }
  if (rc_.replica_num == 0 || rc_.replica_num > kMaxReplicas) {
    for (size_t i : todo_)
      out_[i] = Status(ErrorCode::INVALID_PARAMS, "replica_num must be 1 to 16");
    todo_.clear();
  }
}

void PutBatch::Start() {
  start_ = ForBatchChunks(todo_.size(), [&](size_t a, size_t b) {
    PutStartRequest req;
    req.replica_num = rc_.replica_num;
    req.preferred_segment = rc_.preferred_segment;
    req.pin = static_cast<uint8_t>(rc_.with_hard_pin   ? Pin::kHard
                                   : rc_.with_soft_pin ? Pin::kSoft
                                                       : Pin::kNone);
    for (size_t j = a; j < b; ++j) req.items.push_back({keys_[todo_[j]], values_[todo_[j]].size});
    ReplicaListResponse res;
    MsgType type = upsert_ ? MsgType::kUpsertStart : MsgType::kPutStart;
    auto asked = ctx_.clock();
    auto real_start = std::chrono::steady_clock::now();
    Status st = ctx_.master.Call(type, req, res);
    asked += WaitedBeforeSend(ctx_.master, real_start);
    if (st.ok() && res.items.size() != b - a) {
      st = Status(ErrorCode::RPC_FAIL,
                  std::string(MsgTypeName(type)) + " answered the wrong number of items");
    }
    if (st.ok() && Late(asked, res.lease_ttl_ms)) {
      // The master may have lost its leadership while it answered, and a
      // new leader may hand the same space out (docs/ha.md, "The fence"):
      // the space is given back unwritten.
      for (size_t j = a; j < b; ++j) {
        if (res.items[j - a].code == 0) revoke_.push_back(keys_[todo_[j]]);
      }
      st = Status(ErrorCode::RPC_TIMEOUT,
                  std::string(MsgTypeName(type)) + " was answered after its lease (" +
                      std::to_string(res.lease_ttl_ms) +
                      " ms): the master may have failed over; nothing was written");
    }
    if (st.ok() && res.lease_ttl_ms > 0) lease_ttl_ms_ = res.lease_ttl_ms;
    placed_.push_back(std::move(res));
    return st;
  });
}

void PutBatch::Transfer(bool may_retry) {
  // One op per replica of every placed key.
  std::vector<TransferOp> ops;
  std::vector<size_t> op_key;  // index into keys_
  for (size_t j = 0; j < todo_.size(); ++j) {
    size_t i = todo_[j];
    size_t chunk = j / kMaxBatchKeys;
    if (chunk >= placed_.size() || (!start_.ok() && chunk == placed_.size() - 1)) {
      out_[i] = Status(start_.code(), "put of '" + keys_[i] + "': " + start_.message());
      continue;
    }
    const ReplicaListResponse& res = placed_[chunk];
    const ReplicaItem& item = res.items[j % kMaxBatchKeys];
    if (item.code == static_cast<int32_t>(ErrorCode::OBJECT_ALREADY_EXISTS)) continue;  // OK
    if (item.code != 0) {
      out_[i] = FromCode(item.code, keys_[i], "put of");
      continue;
    }
    started_[i] = true;
    for (const Replica& r : item.replicas) {
      Result<Route> route = ctx_.router.To(res, r);
      if (!route.ok()) {
        if (out_[i].ok()) out_[i] = route.status();
        continue;
      }
      TransferOp op;
      op.segment = route->segment;
      op.path = route->path;
      op.offset = r.offset;
      op.length = values_[i].size;
      op.local = static_cast<uint8_t*>(values_[i].data);
      op.write = true;
      ops.push_back(std::move(op));
      op_key.push_back(i);
    }
  }
  // The checksum comes with a shared-memory copy of the object; for objects
  // that go only over TCP or RDMA it is computed here, before the bytes leave.
  if (ctx_.checksums) {
    std::vector<bool> fused(keys_.size(), false);
    for (size_t k = 0; k < ops.size(); ++k) {
      bool copies = ops[k].path == Path::kShm || ops[k].path == Path::kLocal;
      if (copies && !fused[op_key[k]]) ops[k].want_checksum = fused[op_key[k]] = true;
    }
    for (size_t i : todo_) {
      if (started_[i] && !fused[i]) sums_[i] = ObjectChecksum(values_[i].data, values_[i].size);
    }
  }
  ctx_.transport.Run(ops);
  // A key with a replica on a store that could not be reached is given back
  // and put again elsewhere once the master knows (Retry).
  for (size_t k = 0; k < ops.size(); ++k) {
    size_t i = op_key[k];
    if (ops[k].checksum) sums_[i] = *ops[k].checksum;
    const Status& result = ops[k].result;
    if (!result.ok() && may_retry && Unreachable(result.code())) {
      again_[i] = true;
      const std::string& name = ops[k].segment->name;
      if (std::find(unreachable_.begin(), unreachable_.end(), name) == unreachable_.end()) {
        unreachable_.push_back(name);
        spdlog::warn(
            "put: segment '{}' could not be reached ({}); reporting it to the master and "
            "putting its keys elsewhere",
            name, result.ToString());
      }
    }
    if (out_[i].ok() && !result.ok()) {
      out_[i] = Status(result.code(), "put of '" + keys_[i] + "': " + result.message());
    }
  }
}

void PutBatch::Commit() {
  std::vector<size_t> ended;
  for (size_t i : todo_) {
    if (!started_[i]) continue;
    if (out_[i].ok()) {
      ended.push_back(i);
    } else {
      revoke_.push_back(keys_[i]);
    }
  }
  (void)ForBatchChunks(ended.size(), [&](size_t a, size_t b) {
    PutEndRequest req;
    for (size_t j = a; j < b; ++j) req.items.push_back({keys_[ended[j]], sums_[ended[j]]});
    CodesResponse res;
    auto asked = ctx_.clock();
    auto real_start = std::chrono::steady_clock::now();
    Status st = ctx_.master.Call(MsgType::kPutEnd, req, res);
    asked += WaitedBeforeSend(ctx_.master, real_start);
    if (st.ok() && Late(asked, lease_ttl_ms_)) {
      // An answer this late may come from a master deposed meanwhile,
      // whose commit the new leader never learns: not known to be stored.
      st = Status(ErrorCode::RPC_TIMEOUT,
                  "answered after the lease (" + std::to_string(lease_ttl_ms_) +
                      " ms): the master may have failed over, the object may not be stored");
    }
    for (size_t j = a; j < b; ++j) {
      size_t i = ended[j];
      if (!st.ok()) {
        out_[i] = Status(st.code(), "put of '" + keys_[i] + "' (PutEnd): " + st.message());
        // Whether the master applied it is unknown: a revoke frees the
        // space if it did not, and is refused harmlessly if it did.
        revoke_.push_back(keys_[i]);
      } else if (j - a >= res.codes.size()) {
        out_[i] = Status(ErrorCode::RPC_FAIL, "put of '" + keys_[i] + "': PutEnd answered no code");
      } else if (res.codes[j - a] != static_cast<int32_t>(ErrorCode::OBJECT_ALREADY_EXISTS)) {
        // Another writer that took the put over and finished it first
        // leaves the key stored: as with any put of an existing key, OK.
        out_[i] = FromCode(res.codes[j - a], keys_[i], "put of");
      }
      if (out_[i].ok()) {
        ctx_.counters.puts++;
        ctx_.counters.bytes_written += values_[i].size;
      }
    }
    return Status::Ok();  // every chunk is tried
  });
}

void PutBatch::Revoke() {
  (void)ForBatchChunks(revoke_.size(), [&](size_t a, size_t b) {
    KeysRequest req;
    req.keys.assign(revoke_.begin() + static_cast<std::ptrdiff_t>(a),
                    revoke_.begin() + static_cast<std::ptrdiff_t>(b));
    CodesResponse res;
    if (Status st = ctx_.master.Call(MsgType::kPutRevoke, req, res); !st.ok()) {
      spdlog::warn(
          "PutRevoke of {} keys failed: {} (the master reclaims them after "
          "--put-start-release-timeout)",
          req.keys.size(), st.ToString());
    }
    return Status::Ok();
  });
}

void PutBatch::Retry(int retries) {
  if (unreachable_.empty()) return;
  CodesResponse reported;
  if (Status st =
          ctx_.master.Call(MsgType::kReportUnreachable, KeysRequest{unreachable_}, reported);
      !st.ok()) {
    spdlog::warn("could not report {} unreachable segment(s) to the master: {}",
                 unreachable_.size(), st.ToString());
  }
  std::vector<std::string> keys;
  std::vector<Slice> values;
  std::vector<size_t> index;
  for (size_t i : todo_) {
    if (!again_[i] || out_[i].ok()) continue;
    keys.push_back(keys_[i]);
    values.push_back(values_[i]);
    index.push_back(i);
  }
  std::vector<Status> second = PutBatch(ctx_, keys, values, rc_, upsert_).Run(retries - 1);
  for (size_t k = 0; k < index.size(); ++k) {
    // No room anywhere else: the store that failed is the better answer.
    if (second[k].code() != ErrorCode::NO_AVAILABLE_HANDLE) out_[index[k]] = second[k];
  }
}

}  // namespace kvcached
