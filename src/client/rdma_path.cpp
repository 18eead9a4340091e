#include "client/rdma_path.h"

#include <unistd.h>

#include "net/socket_util.h"
#include "rdma/rdma_transport.h"

namespace kvcached {

using Clock = std::chrono::steady_clock;

namespace {

// Keeps the store's queue pair alive: the store releases it when this
// connection closes.
class SocketLink : public RdmaLink {
 public:
  explicit SocketLink(int fd) : fd_(fd) {}
  ~SocketLink() override { ::close(fd_); }
  // The store never writes on this connection: readable means it closed.
  bool Alive() const override { return IdleConnectionAlive(fd_); }
  SocketLink(const SocketLink&) = delete;
  SocketLink& operator=(const SocketLink&) = delete;

 private:
  int fd_;
};

}  // namespace

Result<RdmaConnectResponse> RdmaPath::Handshake(const std::string& address,
                                                const RdmaConnectRequest& request,
                                                std::unique_ptr<RdmaLink>& link) {
  const std::string peer = "store data port " + address;
  Deadline deadline = Clock::now() + options_.connect_timeout;
  Result<int> fd = ConnectTcp(address, deadline, peer);
  if (!fd.ok()) return fd.status();
  auto holder = std::make_unique<SocketLink>(*fd);
  if (Result<HelloResponse> hello = SayHello(*fd, options_.hello, deadline, peer); !hello.ok()) {
    return hello.status();
  }
  std::string frame = EncodeFrame(MsgType::kRdmaConnect, 0, 1, request);
  if (Status st = SendAll(*fd, frame.data(), frame.size(), deadline, peer); !st.ok()) return st;
  FrameHeader head;
  std::string body;
  if (Status st = RecvFrame(*fd, head, body, 4096, deadline, peer); !st.ok()) return st;
  if ((head.flags & kFlagError) != 0) {
    ErrorBody err;
    if (!DecodeBody(body, err).ok()) {
      return Status(ErrorCode::TRANSFER_FAIL, peer + " refused RDMA with an unreadable error");
    }
    return Status(ErrorCode::TRANSFER_FAIL, peer + " refused RDMA: " + err.message);
  }
  RdmaConnectResponse res;
  if (Status st = DecodeBody(body, res); !st.ok()) {
    return Status(ErrorCode::TRANSFER_FAIL,
                  peer + " sent a bad RdmaConnect answer: " + st.message());
  }
  link = std::move(holder);
  return res;
}

void RdmaPath::Run(std::vector<TransferOp*>& ops) {
  std::vector<RdmaOp> rops(ops.size());
  std::vector<RdmaOp*> run;
  for (size_t i = 0; i < ops.size(); ++i) {
    TransferOp& op = *ops[i];
    RdmaOp& r = rops[i];
    r.remote = &*op.segment->rdma;
    r.address = op.segment->tcp;
    r.instance = op.segment->instance;
    r.offset = op.offset;
    r.length = op.length;
    r.local = op.local;
    r.write = op.write;
    run.push_back(&r);
  }
  counters_.rdma_transfers += ops.size();  // sent, like tcp_transfers
  engine_->Run(run);
  for (size_t i = 0; i < ops.size(); ++i) ops[i]->result = rops[i].result;
}

RdmaPath::RdmaPath(const TransportOptions& options, TransportCounters& counters)
    : options_(options), counters_(counters) {}

RdmaPath::~RdmaPath() { Close(); }

Result<std::unique_ptr<RdmaPath>> RdmaPath::Open(const TransportOptions& options,
                                                 TransportCounters& counters,
                                                 const RdmaOptions& rdma) {
  std::unique_ptr<RdmaPath> path(new RdmaPath(options, counters));
  RdmaPath* self = path.get();
  Result<std::unique_ptr<RdmaEngine>> engine = RdmaEngine::OpenSystem(
      rdma,
      [self](const std::string& address, const RdmaConnectRequest& req,
             std::unique_ptr<RdmaLink>& link) { return self->Handshake(address, req, link); });
  if (!engine.ok()) return engine.status();
  path->engine_ = std::move(engine).value();
  return path;
}

bool RdmaPath::Reaches(const SegmentEndpoint& segment) {
  return segment.rdma.has_value() && !segment.tcp.empty();
}

Status RdmaPath::RegisterMemory(void* data, uint64_t size) {
  return engine_->RegisterMemory(data, size);
}

Status RdmaPath::UnregisterMemory(void* data) { return engine_->UnregisterMemory(data); }

void RdmaPath::Close() {
  if (engine_) engine_->Close();
}

}  // namespace kvcached
