#include "net/tcp_listener.h"

#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>

#include <spdlog/spdlog.h>
#include <boost/asio/dispatch.hpp>

namespace kvcached {

namespace net = boost::asio;
using tcp = net::ip::tcp;

TcpListener::TcpListener(net::io_context& ioc, std::string name)
    : ioc_(ioc),
      name_(std::move(name)),
      strand_(net::make_strand(ioc)),
      acceptor_(strand_),
      retry_(strand_) {}

Status TcpListener::Listen(const std::string& host, uint16_t port) {
  boost::system::error_code ec;
  tcp::resolver resolver(ioc_);
  auto results = resolver.resolve(host, std::to_string(port), tcp::resolver::passive, ec);
  if (ec || results.empty()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "cannot resolve listen address '" + host + "': " + ec.message());
  }
  tcp::endpoint ep = results.begin()->endpoint();
  std::string where = ep.address().to_string() + ":" + std::to_string(ep.port());
  acceptor_.open(ep.protocol(), ec);
  if (!ec) acceptor_.set_option(net::socket_base::reuse_address(true), ec);
  if (!ec) acceptor_.bind(ep, ec);
  if (!ec) acceptor_.listen(net::socket_base::max_listen_connections, ec);
  if (ec) {
    return Status(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS,
                  "cannot listen on " + where + ": " + ec.message());
  }
  tcp::endpoint local = acceptor_.local_endpoint(ec);
  host_ = local.address().to_string();
  port_ = local.port();
  loopback_ = local.address().is_loopback();
  wildcard_ = local.address().is_unspecified();
  return Status::Ok();
}

void TcpListener::Start(OnAccept on_accept) {
  net::dispatch(strand_, [self = shared_from_this(), cb = std::move(on_accept)]() mutable {
    self->on_accept_ = std::move(cb);
    self->DoAccept();
  });
}

void TcpListener::DoAccept() {
  if (closed_) return;
  acceptor_.async_accept(
      net::make_strand(ioc_),
      [self = shared_from_this()](boost::system::error_code ec, tcp::socket socket) {
        if (self->closed_) return;
        if (ec) {
          spdlog::warn("{}: accept failed: {}; retrying in 100 ms", self->name_, ec.message());
          self->retry_.expires_after(std::chrono::milliseconds(100));
          self->retry_.async_wait([self](boost::system::error_code) { self->DoAccept(); });
          return;
        }
        self->on_accept_(std::move(socket));
        self->DoAccept();
      });
}

void TcpListener::Close() {
  net::dispatch(strand_, [self = shared_from_this()] {
    self->closed_ = true;
    self->on_accept_ = nullptr;
    boost::system::error_code ec;
    self->acceptor_.close(ec);
    self->retry_.cancel();
  });
}

void ConfigurePeerSocket(tcp::socket& socket) {
  boost::system::error_code ec;
  socket.set_option(tcp::no_delay(true), ec);
  socket.set_option(net::socket_base::keep_alive(true), ec);
  int fd = socket.native_handle();
  int idle_s = 30, interval_s = 10, probes = 3;
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPIDLE, &idle_s, sizeof idle_s);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPINTVL, &interval_s, sizeof interval_s);
  setsockopt(fd, IPPROTO_TCP, TCP_KEEPCNT, &probes, sizeof probes);
}

std::string TcpListener::address() const {
  std::string host = host_.find(':') != std::string::npos ? "[" + host_ + "]" : host_;
  return host + ":" + std::to_string(port_);
}

}  // namespace kvcached
