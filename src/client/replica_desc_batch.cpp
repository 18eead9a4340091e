#include "client/replica_desc_batch.h"

#include <spdlog/spdlog.h>

#include "core/segment_endpoint.h"

namespace kvcached {

ReplicaDescBatch::ReplicaDescBatch(BatchContext& ctx, const std::vector<std::string>& keys)
    : ctx_(ctx), keys_(keys), out_(keys.size(), Result<ObjectPlaces>(ObjectPlaces{})) {}

std::vector<Result<ObjectPlaces>> ReplicaDescBatch::Run() {
  Validate();
  Locate();
  Collect();
  Release();
  return std::move(out_);
}

void ReplicaDescBatch::Validate() {
  for (size_t i = 0; i < keys_.size(); ++i) {
    if (Status st = CheckKey(keys_[i]); !st.ok()) {
      out_[i] = st;
    } else {
      todo_.push_back(i);
    }
  }
}

void ReplicaDescBatch::Locate() {
  locate_ = LookUpReplicas(ctx_.master, keys_, todo_, found_);
}

namespace {

// The TCP data port of each segment an answer names, "" where its
// descriptor has none or cannot be read (the segment's name still says
// where the replica is).
std::vector<std::string> DataEndpoints(const ReplicaListResponse& res) {
  std::vector<std::string> out;
  out.reserve(res.segments.size());
  for (const SegmentRef& s : res.segments) {
    Result<SegmentEndpoint> e = ParseEndpoint(s.endpoint);
    if (!e.ok()) {
      spdlog::debug("segment '{}': unreadable descriptor: {}", s.name, e.status().ToString());
      out.emplace_back();
      continue;
    }
    out.push_back(e->tcp);
  }
  return out;
}

}  // namespace

void ReplicaDescBatch::Collect() {
  for (size_t chunk = 0; chunk < found_.size(); ++chunk) {
    const ReplicaListResponse& res = found_[chunk];
    size_t first = chunk * kMaxBatchKeys;
    // A chunk that failed has no answer to read: its keys, and those of
    // the chunks never sent, fail below.
    if (!locate_.ok() && chunk == found_.size() - 1) break;
    std::vector<std::string> endpoints = DataEndpoints(res);
    for (size_t k = 0; k < res.items.size(); ++k) {
      size_t i = todo_[first + k];
      const ReplicaItem& item = res.items[k];
      if (item.code != 0) {
        out_[i] = FromCode(item.code, keys_[i], "replica descriptors of");
        continue;
      }
      leased_.push_back({keys_[i], item.version});
      ObjectPlaces places;
      places.size = item.size;
      places.version = item.version;
      Status bad;
      for (const Replica& r : item.replicas) {
        if (r.segment >= res.segments.size()) {
          bad = Status(ErrorCode::INVALID_REPLICA, "replica descriptors of '" + keys_[i] +
                                                       "': the master's answer names no segment " +
                                                       std::to_string(r.segment));
          break;
        }
        places.replicas.push_back({res.segments[r.segment].name, endpoints[r.segment], r.offset});
      }
      if (!bad.ok()) {
        out_[i] = bad;
      } else {
        out_[i] = std::move(places);
      }
    }
  }
  // Keys whose chunk failed or was never sent.
  size_t answered = locate_.ok() ? todo_.size() : (found_.size() - 1) * kMaxBatchKeys;
  for (size_t j = answered; j < todo_.size(); ++j) {
    size_t i = todo_[j];
    out_[i] =
        Status(locate_.code(), "replica descriptors of '" + keys_[i] + "': " + locate_.message());
  }
}

void ReplicaDescBatch::Release() { ReleaseReads(ctx_.master, leased_); }

}  // namespace kvcached
