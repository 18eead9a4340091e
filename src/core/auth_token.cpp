#include "core/auth_token.h"

#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace kvcached {

bool ConstantTimeEquals(std::string_view a, std::string_view b) {
  // Always walk the candidate's full length so the time reveals only sizes.
  volatile unsigned char diff = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    unsigned char x = i < a.size() ? static_cast<unsigned char>(a[i]) : 0;
    diff = diff | static_cast<unsigned char>(x ^ static_cast<unsigned char>(b[i]));
  }
  return diff == 0;
}

Result<AuthToken> AuthToken::FromString(std::string_view token) {
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.front()))) {
    token.remove_prefix(1);
  }
  while (!token.empty() && std::isspace(static_cast<unsigned char>(token.back()))) {
    token.remove_suffix(1);
  }
  if (token.empty()) return Status(ErrorCode::INVALID_PARAMS, "the token is empty");
  if (token.size() < 16) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "the token is shorter than 16 bytes; use e.g. `openssl rand -hex 32`");
  }
  for (char c : token) {
    if (std::isspace(static_cast<unsigned char>(c)) ||
        std::iscntrl(static_cast<unsigned char>(c))) {
      return Status(ErrorCode::INVALID_PARAMS, "the token holds spaces or control characters");
    }
  }
  return AuthToken(std::string(token));
}

Result<AuthToken> AuthToken::LoadFile(const std::string& path, std::string* warning) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return Status(ErrorCode::INVALID_PARAMS, "cannot read token file '" + path + "'");
  std::stringstream buf;
  buf << in.rdbuf();
  Result<AuthToken> token = FromString(buf.str());
  if (!token.ok()) {
    return Status(ErrorCode::INVALID_PARAMS,
                  "token file '" + path + "': " + token.status().message());
  }
  struct stat st {};
  if (warning != nullptr && stat(path.c_str(), &st) == 0 && (st.st_mode & 077) != 0) {
    *warning = "token file '" + path + "' is readable by group or others; chmod 600 it";
  }
  return token;
}

bool AuthToken::Matches(std::string_view candidate) const {
  return ConstantTimeEquals(token_, candidate);
}

bool AuthToken::VerifyBearer(std::string_view header) const {
  constexpr std::string_view kScheme = "bearer ";
  if (header.size() <= kScheme.size()) return false;
  for (size_t i = 0; i < kScheme.size(); ++i) {
    if (std::tolower(static_cast<unsigned char>(header[i])) != kScheme[i]) return false;
  }
  std::string_view candidate = header.substr(kScheme.size());
  while (!candidate.empty() && candidate.front() == ' ') candidate.remove_prefix(1);
  return Matches(candidate);
}

}  // namespace kvcached
