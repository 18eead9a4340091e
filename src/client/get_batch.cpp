#include "client/get_batch.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "client/checksum.h"

namespace kvcached {

using Clock = std::chrono::steady_clock;

GetBatch::GetBatch(BatchContext& ctx, const std::vector<std::string>& keys,
                   const std::vector<Slice>& buffers)
    : ctx_(ctx), keys_(keys), buffers_(buffers), out_(keys.size(), Result<uint64_t>(uint64_t{0})) {}

std::vector<Result<uint64_t>> GetBatch::Run() {
  if (keys_.size() != buffers_.size()) {
    return std::vector<Result<uint64_t>>(
        keys_.size(),
        Status(ErrorCode::INVALID_PARAMS, std::to_string(keys_.size()) + " keys but " +
                                              std::to_string(buffers_.size()) + " buffers"));
  }
  Validate();
  Locate();
  Order();
  Rounds();
  Release();
  return std::move(out_);
}

void GetBatch::Validate() {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (Status st = CheckKey(keys_[i]); !st.ok()) {
      out_[i] = st;
    } else if (buffers_[i].data == nullptr && buffers_[i].size > 0) {
      out_[i] = Status(ErrorCode::INVALID_PARAMS, "get of '" + keys_[i] + "': null buffer");
    } else {
      todo_.push_back(i);
    }
  }
}

void GetBatch::Locate() {
  asked_ = ctx_.clock();
  auto real_start = std::chrono::steady_clock::now();
  locate_ = LookUpReplicas(ctx_.master, keys_, todo_, found_);
  // One lookup call: its leases start when it left, after any wait for a
  // master. (With several, the first one's start stays: the earliest.)
  if (todo_.size() <= kMaxBatchKeys) asked_ += WaitedBeforeSend(ctx_.master, real_start);
}

void GetBatch::Order() {
  for (size_t j = 0; j < todo_.size(); ++j) {
    size_t i = todo_[j];
    size_t chunk = j / kMaxBatchKeys;
    if (chunk >= found_.size() || (!locate_.ok() && chunk == found_.size() - 1)) {
      out_[i] = Status(locate_.code(), "get of '" + keys_[i] + "': " + locate_.message());
      continue;
    }
    const ReplicaListResponse& res = found_[chunk];
    const ReplicaItem& item = res.items[j % kMaxBatchKeys];
    if (item.code != 0) {
      out_[i] = FromCode(item.code, keys_[i], "get of");
      continue;
    }
    Want w{i, &item, &res, {}, 0, Status()};
    if (item.size > buffers_[i].size) {
      out_[i] = Status(ErrorCode::INVALID_PARAMS,
                       "get of '" + keys_[i] + "': the object has " + std::to_string(item.size) +
                           " bytes, the buffer " + std::to_string(buffers_[i].size));
      unread_.push_back(std::move(w));
      continue;
    }
    for (const Replica& r : item.replicas) {
      Result<Route> route = ctx_.router.To(res, r);
      if (!route.ok()) {
        w.last = route.status();
        continue;
      }
      w.tries.push_back({*route, r.offset});
    }
    // Same-host copies first, then the rest in the master's order.
    std::stable_partition(w.tries.begin(), w.tries.end(),
                          [](const Try& t) { return t.route.path != Path::kTcp; });
    if (w.tries.empty()) {
      Status why = w.last.ok() ? Status(ErrorCode::INVALID_REPLICA, "no replica") : w.last;
      out_[i] = Status(why.code(), "get of '" + keys_[i] + "': " + why.message());
      unread_.push_back(std::move(w));
      continue;
    }
    wants_.push_back(std::move(w));
  }
}

bool GetBatch::LeaseRunning(const ReplicaListResponse& res) const {
  return ctx_.clock() - asked_ <= std::chrono::milliseconds(res.lease_ttl_ms);
}

Status GetBatch::Judge(const Want& w, const TransferOp& op) {
  if (!op.result.ok()) return op.result;
  if (!LeaseRunning(*w.res)) {
    ctx_.counters.lease_expirations++;
    return Status(ErrorCode::LEASE_EXPIRED, "the transfer finished after the read lease of " +
                                                std::to_string(w.res->lease_ttl_ms) +
                                                " ms ran out");
  }
  if (!ctx_.checksums || w.item->checksum == 0) return Status::Ok();
  uint64_t sum = op.checksum ? *op.checksum : ObjectChecksum(buffers_[w.key].data, w.item->size);
  if (sum == w.item->checksum) return Status::Ok();
  ctx_.counters.checksum_mismatches++;
  spdlog::warn("get of '{}': checksum mismatch on the replica in segment '{}'", keys_[w.key],
               op.segment->name);
  return Status(ErrorCode::CHECKSUM_MISMATCH, "the bytes read from segment '" + op.segment->name +
                                                  "' do not match the object's checksum");
}

void GetBatch::Rounds() {
  std::vector<Want*> pending;
  for (Want& w : wants_) pending.push_back(&w);
  while (!pending.empty()) {
    std::vector<TransferOp> ops;
    for (Want* w : pending) {
      const Try& t = w->tries[w->next];
      TransferOp op;
      op.segment = t.route.segment;
      op.path = t.route.path;
      op.offset = t.offset;
      op.length = w->item->size;
      op.local = static_cast<uint8_t*>(buffers_[w->key].data);
      op.want_checksum = ctx_.checksums && w->item->checksum != 0;
      ops.push_back(std::move(op));
    }
    ctx_.transport.Run(ops);
    std::vector<Want*> again;
    for (size_t k = 0; k < pending.size(); ++k) {
      Want* w = pending[k];
      Status st = Judge(*w, ops[k]);
      if (st.ok()) {
        out_[w->key] = w->item->size;
        ctx_.counters.gets++;
        ctx_.counters.bytes_read += w->item->size;
        continue;
      }
      w->last = st;
      // A lease that ran out will not come back by trying another replica.
      if (st.code() != ErrorCode::LEASE_EXPIRED && ++w->next < w->tries.size()) {
        again.push_back(w);
      } else {
        out_[w->key] = Status(st.code(), "get of '" + keys_[w->key] + "': " + st.message());
      }
    }
    pending = std::move(again);
  }
}

void GetBatch::Release() {
  // Every lease the lookup took ends here, also those of keys not read (a
  // buffer too small, no route). A lease that ran out needs no release (the
  // master ignores it anyway).
  std::vector<ReleaseItem> release;
  for (const std::vector<Want>* list : {&wants_, &unread_}) {
    for (const Want& w : *list) {
      if (LeaseRunning(*w.res)) release.push_back({keys_[w.key], w.item->version});
    }
  }
  ReleaseReads(ctx_.master, release);
}

}  // namespace kvcached
