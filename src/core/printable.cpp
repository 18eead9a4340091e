#include "core/printable.h"

#include <algorithm>

namespace kvcached {

std::string Printable(std::string_view text, size_t max_bytes) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  const size_t shown = std::min(text.size(), max_bytes);
  std::string out;
  out.reserve(shown);
  for (size_t i = 0; i < shown; ++i) {
    auto c = static_cast<unsigned char>(text[i]);
    if (c < 0x20 || c >= 0x7f || c == '\'' || c == '\\') {
      out += "\\x";
      out += kHex[c >> 4];
      out += kHex[c & 0xf];
    } else {
      out += static_cast<char>(c);
    }
  }
  if (text.size() > shown) out += "...(" + std::to_string(text.size()) + " bytes)";
  return out;
}

}  // namespace kvcached
