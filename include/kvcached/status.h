// Status and Result<T>: how every data-path call in kvcached reports success
// or an ErrorCode with a human message. Value types, no exceptions; copying
// is cheap when OK (no allocation). Not synchronised: share by copy.
#pragma once

#include <string>
#include <utility>
#include <variant>

#include "kvcached/error_code.h"

namespace kvcached {

class [[nodiscard]] Status {
 public:
  Status() = default;  // OK
  Status(ErrorCode code, std::string message) : code_(code), message_(std::move(message)) {}

  static Status Ok() { return Status(); }

  bool ok() const { return code_ == ErrorCode::OK; }
  ErrorCode code() const { return code_; }
  // The detail supplied at the failure site; empty for OK.
  const std::string& message() const { return message_; }
  // "OBJECT_NOT_FOUND: no key 'a'" — for logs and error lines.
  std::string ToString() const;

 private:
  ErrorCode code_ = ErrorCode::OK;
  std::string message_;
};

// Either a T or a failed Status. Accessing value() of a failed Result is a
// programming error (checked in debug builds).
template <typename T>
class [[nodiscard]] Result {
 public:
  Result(T value) : v_(std::move(value)) {}         // NOLINT: implicit by design
  Result(Status status) : v_(std::move(status)) {}  // NOLINT: must not be OK
  Result(ErrorCode code, std::string message) : v_(Status(code, std::move(message))) {}

  bool ok() const { return std::holds_alternative<T>(v_); }
  const T& value() const& { return std::get<T>(v_); }
  T& value() & { return std::get<T>(v_); }
  T&& value() && { return std::get<T>(std::move(v_)); }
  const T& operator*() const& { return value(); }
  const T* operator->() const { return &value(); }
  Status status() const { return ok() ? Status::Ok() : std::get<Status>(v_); }
  ErrorCode code() const { return ok() ? ErrorCode::OK : std::get<Status>(v_).code(); }

 private:
  std::variant<T, Status> v_;
};

}  // namespace kvcached
