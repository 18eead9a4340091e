// RpcServer on a loopback port, spoken to by the real RpcClient.
#include <doctest/doctest.h>

#include <chrono>
#include <memory>
#include <thread>

#include <boost/asio/executor_work_guard.hpp>
#include <boost/asio/io_context.hpp>

#include "core/metrics.h"
#include "core/rpc_protocol.h"
#include "net/rpc_client.h"
#include "net/rpc_server.h"

namespace kvcached {
namespace {

// A server that answers every Ping; `options` as the case sets them.
class PingServer {
 public:
  explicit PingServer(RpcServerOptions options) {
    server_ = std::make_unique<RpcServer>(
        ioc_, std::move(options),
        [](const RpcPeer&, MsgType type, std::string_view, std::string& out, uint16_t&) {
          if (type == MsgType::kPing) out = EncodeBody(PingResponse{});
          return Status::Ok();
        },
        metrics_);
    REQUIRE(server_->Start().ok());
    // Two I/O threads, as the master runs by default: a deadline's handler
    // can then run beside the operation it bounds.
    for (auto& t : io_) t = std::thread([this] { ioc_.run(); });
  }
  ~PingServer() {
    server_->BeginShutdown();
    work_.reset();
    ioc_.stop();
    for (auto& t : io_) t.join();
  }
  std::string address() const { return server_->address(); }

 private:
  MetricsRegistry metrics_;  // outlives the io_context: handlers it destroys count in it
  boost::asio::io_context ioc_;
  boost::asio::executor_work_guard<boost::asio::io_context::executor_type> work_ =
      boost::asio::make_work_guard(ioc_);
  std::unique_ptr<RpcServer> server_;
  std::thread io_[2];
};

TEST_CASE("rpc server: a peer that only makes calls keeps its connection past the hello timeout") {
  // Every answer is being written when the server turns to read the next
  // frame; the write needs a deadline of its own, or the one armed for
  // Hello at connect cuts the connection once it runs out (a store's pings
  // reconnected every 10 s).
  RpcServerOptions o;
  o.hello_timeout = std::chrono::milliseconds(200);
  PingServer server(o);
  RpcClientOptions c;
  c.address = server.address();
  c.hello.role = static_cast<uint8_t>(PeerRole::kStore);
  c.hello.client_id = "pinger";
  c.connect_attempts = 1;
  RpcClient client(c);
  REQUIRE(client.Connect().ok());
  // Calls for five hello timeouts (time being what the case is about), and
  // at least twenty times however slowly the machine runs them.
  auto until = std::chrono::steady_clock::now() + 5 * o.hello_timeout;
  int calls = 0;
  while (std::chrono::steady_clock::now() < until || calls < 20) {
    PingResponse pong;
    Status st = client.Call(MsgType::kPing, PingRequest{1}, pong);
    REQUIRE_MESSAGE(st.ok(), "call ", calls, ": ", st.ToString());
    ++calls;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));  // a ping interval, not a wait
  }
  CHECK(client.connections() == 1);
}

}  // namespace
}  // namespace kvcached
