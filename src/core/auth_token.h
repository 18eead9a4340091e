// AuthToken: the cluster's shared secret, loaded from a file (--token-file),
// and the constant-time check of an HTTP "Authorization: Bearer <token>"
// header against it. Immutable after loading; safe from any thread.
#pragma once

#include <string>
#include <string_view>

#include "core/status.h"

namespace kvcached {

class AuthToken {
 public:
  // Reads the file and strips surrounding whitespace. INVALID_PARAMS when the
  // file cannot be read, is empty, or holds a token shorter than 16 bytes or
  // with spaces or control characters inside. `warning` is set (not an error)
  // when the file is readable by group or others.
  static Result<AuthToken> LoadFile(const std::string& path, std::string* warning = nullptr);
  static Result<AuthToken> FromString(std::string_view token);

  // Compares in time that depends only on the lengths, not on the bytes.
  bool Matches(std::string_view candidate) const;
  // True when `header` is "Bearer <token>" (scheme case-insensitive).
  bool VerifyBearer(std::string_view header) const;

  // The secret itself, for a client to present (RPC Hello). Never log it.
  const std::string& secret() const { return token_; }

 private:
  explicit AuthToken(std::string token) : token_(std::move(token)) {}
  std::string token_;
};

// Byte-wise comparison whose running time does not depend on where the
// inputs differ.
bool ConstantTimeEquals(std::string_view a, std::string_view b);

}  // namespace kvcached
