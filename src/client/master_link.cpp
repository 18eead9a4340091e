#include "client/master_link.h"

#include <atomic>

#include "net/rpc_client.h"

namespace kvcached {

RpcMasterLink::RpcMasterLink(const RpcClientOptions& options, size_t connections) {
  for (size_t i = 0; i < std::max<size_t>(connections, 1); ++i) {
    rpc_.push_back(std::make_unique<RpcClient>(options));
  }
}

RpcMasterLink::~RpcMasterLink() { Close(); }

Status RpcMasterLink::Connect() { return rpc_[0]->Connect(); }

RpcClient& RpcMasterLink::Mine() {
  static std::atomic<size_t> threads{0};
  thread_local const size_t slot = threads.fetch_add(1);
  return *rpc_[slot % rpc_.size()];
}

namespace {
thread_local std::chrono::steady_clock::time_point last_sent;
}  // namespace

std::chrono::steady_clock::time_point RpcMasterLink::LastSent() const { return last_sent; }

Status RpcMasterLink::Call(MsgType type, std::string request, std::string& answer) {
  std::vector<std::string> answers;
  std::vector<std::string> requests;
  requests.push_back(std::move(request));
  last_sent = {};
  if (Status st = Mine().RoundTrip(type, std::move(requests), answers, &last_sent); !st.ok()) {
    return st;
  }
  answer = std::move(answers.at(0));
  return Status::Ok();
}

Status RpcMasterLink::Send(MsgType type, std::string request) {
  return Mine().SendOneWay(type, request);
}

void RpcMasterLink::Close() {
  for (auto& r : rpc_) r->Close();
}

}  // namespace kvcached
