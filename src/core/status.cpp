#include "core/status.h"

namespace kvcached {

std::string Status::ToString() const {
  std::string out(ErrorName(code_));
  if (!message_.empty()) {
    out += ": ";
    out += message_;
  }
  return out;
}

}  // namespace kvcached
