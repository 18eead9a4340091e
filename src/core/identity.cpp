#include "core/identity.h"

#include <unistd.h>

#include <cstdio>
#include <random>

namespace kvcached {

std::string LocalHostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof buf - 1) != 0 || buf[0] == '\0') return "localhost";
  return buf;
}

std::string RandomId(std::string_view prefix, unsigned hex_digits) {
  std::random_device rd;
  std::string out = prefix.empty() ? std::string() : std::string(prefix) + "-";
  for (unsigned i = 0; i < hex_digits; i += 8) {
    char word[9];
    std::snprintf(word, sizeof word, "%08x", static_cast<unsigned>(rd()));
    out += word;
  }
  return out;
}

}  // namespace kvcached
