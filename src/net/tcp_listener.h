// TcpListener: the listening socket every kvcached TCP server shares —
// resolve, bind, listen, and an accept loop that backs off on errors (out
// of descriptors) instead of spinning. Each accepted socket gets its own
// strand and is handed to the callback. Create with std::make_shared; the
// accept loop holds a reference until Close(). Thread-safe.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/strand.hpp>

#include "core/status.h"

namespace kvcached {

class TcpListener : public std::enable_shared_from_this<TcpListener> {
 public:
  using OnAccept = std::function<void(boost::asio::ip::tcp::socket)>;

  TcpListener(boost::asio::io_context& ioc, std::string name);

  // INVALID_PARAMS when `host` does not resolve; UNAVAILABLE_IN_CURRENT_STATUS
  // when bind or listen fails (in use, permission), naming the address.
  Status Listen(const std::string& host, uint16_t port);
  // Starts accepting; `on_accept` runs on the listener's strand.
  void Start(OnAccept on_accept);
  // Stops accepting. Idempotent.
  void Close();

  std::string address() const;  // "127.0.0.1:8080", "[::1]:8080"
  uint16_t port() const { return port_; }
  bool loopback() const { return loopback_; }
  bool wildcard() const { return wildcard_; }

 private:
  void DoAccept();

  boost::asio::io_context& ioc_;
  const std::string name_;
  boost::asio::strand<boost::asio::io_context::executor_type> strand_;
  boost::asio::ip::tcp::acceptor acceptor_;  // strand_ only after Listen()
  boost::asio::steady_timer retry_;          // strand_ only
  OnAccept on_accept_;
  std::string host_;
  uint16_t port_ = 0;
  bool loopback_ = true;
  bool wildcard_ = false;
  bool closed_ = false;  // strand_ only
};

// Binds `listener` and hands each accepted socket to owner->OnAccept. The
// owner (a server's shared state, which owns the listener) is held weakly:
// a strong reference would keep both alive forever.
template <typename Owner>
Status ListenFor(TcpListener& listener, const std::string& host, uint16_t port,
                 const std::shared_ptr<Owner>& owner) {
  if (Status st = listener.Listen(host, port); !st.ok()) return st;
  listener.Start([weak = std::weak_ptr<Owner>(owner)](boost::asio::ip::tcp::socket socket) {
    if (auto o = weak.lock()) o->OnAccept(std::move(socket));
  });
  return Status::Ok();
}

// Options every long-lived peer connection gets: no Nagle delay, and TCP
// keepalive (30 s idle, 3 probes 10 s apart) so a peer that vanished
// without a FIN is noticed and its slot freed.
void ConfigurePeerSocket(boost::asio::ip::tcp::socket& socket);

}  // namespace kvcached
