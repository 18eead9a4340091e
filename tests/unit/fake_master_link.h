// FakeMasterLink: a MasterLink to a master in this process — the real
// MasterService's Dispatch behind it, no sockets — with faults injected by
// message type: a call refused before the master sees it, or applied and
// its answer lost. Lets the client's put and get stages (put_batch.h,
// get_batch.h) be tested against the master's real rules in milliseconds.
// Not thread-safe: one test thread drives it.
#pragma once

#include <boost/asio/io_context.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <vector>

#include "client/master_link.h"
#include "core/metrics.h"
#include "core/segment_endpoint.h"
#include "master/master_service.h"

namespace kvcached {

class FakeMasterLink : public MasterLink {
 public:
  FakeMasterLink() {
    MasterServiceOptions o;
    o.index.random_seed = 7;
    o.meta.reset();
    service_ = std::make_unique<MasterService>(ioc_, o, metrics_);
  }

  // Mounts segment `name` of `size` bytes as its store would; its
  // descriptor names a TCP data port (which only a fake path will "reach").
  void Mount(const std::string& name, uint64_t size) {
    SegmentEndpoint e;
    e.name = name;
    e.host_id = "store-host";
    e.instance = "instance-" + name;
    e.size = size;
    e.tcp = "fake-" + name + ":1";
    MountRequest req;
    req.segment = SegmentInfo{name, 0, size, FormatEndpoint(e)};
    RpcPeer store{++connections_, "fake", PeerRole::kStore, "store-" + name, "store-host", 0, ""};
    std::string answer;
    uint16_t flags = 0;
    Status st = service_->Dispatch(store, MsgType::kMountSegment, EncodeBody(req), answer, flags);
    StatusResponse res;
    if (st.ok()) st = DecodeBody(answer, res);
    if (!st.ok() || res.code != 0) throw std::runtime_error("mount of " + name + " failed");
  }

  // The next `times` calls of `type` fail with `code`; with `applied` the
  // master handles them first and only the answer is lost.
  void FailNext(MsgType type, ErrorCode code, bool applied = false, int times = 1) {
    for (int i = 0; i < times; ++i) faults_[type].push_back({code, applied});
  }

  // The next `times` calls of `type` go through untouched (a fault queued
  // after them waits its turn).
  void PassNext(MsgType type, int times = 1) {
    for (int i = 0; i < times; ++i) faults_[type].push_back({ErrorCode::OK, false});
  }

  Status Call(MsgType type, std::string request, std::string& answer) override {
    calls[type]++;
    if (type == MsgType::kReportUnreachable) {
      KeysRequest r;
      if (DecodeBody(request, r).ok())
        reported.insert(reported.end(), r.keys.begin(), r.keys.end());
    }
    Fault fault{ErrorCode::OK, false};
    if (auto it = faults_.find(type); it != faults_.end() && !it->second.empty()) {
      fault = it->second.front();
      it->second.pop_front();
    }
    if (fault.code != ErrorCode::OK && !fault.applied) return Status(fault.code, "injected");
    uint16_t flags = 0;
    Status st = service_->Dispatch(client_, type, request, answer, flags);
    if (!st.ok()) return st;
    if (flags & kFlagError) {
      ErrorBody err;
      (void)DecodeBody(answer, err);
      return Status(ErrorCodeFromInt(err.code).value_or(ErrorCode::INTERNAL_ERROR), err.message);
    }
    if (fault.code != ErrorCode::OK)
      return Status(fault.code, "injected after the master applied it");
    if (rewrite) rewrite(type, answer);
    return Status::Ok();
  }

  Status Send(MsgType type, std::string request) override {
    calls[type]++;
    std::string answer;
    uint16_t flags = 0;
    return service_->Dispatch(client_, type, request, answer, flags);
  }

  std::map<MsgType, int> calls;       // by type, faults included
  std::vector<std::string> reported;  // segments named in ReportUnreachable
  // Edits an answer before the client sees it (e.g. a lease of 0 ms).
  std::function<void(MsgType, std::string&)> rewrite;

 private:
  struct Fault {
    ErrorCode code;
    bool applied;
  };
  boost::asio::io_context ioc_;
  MetricsRegistry metrics_;
  std::unique_ptr<MasterService> service_;
  uint64_t connections_ = 100;
  RpcPeer client_{1, "fake", PeerRole::kClient, "fake-client", "client-host", 0, ""};
  std::map<MsgType, std::deque<Fault>> faults_;
};

}  // namespace kvcached
