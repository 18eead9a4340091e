// Placeholder while the client library is written.
#include "kvcached/client.h"

namespace kvcached {
class Client::Impl {};
Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;
Result<std::unique_ptr<Client>> Client::Open(const ClientConfig&) {
  return Status(ErrorCode::NOT_SUPPORTED, "not yet");
}
}  // namespace kvcached
