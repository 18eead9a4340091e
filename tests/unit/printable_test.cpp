#include "core/printable.h"

#include <doctest/doctest.h>

#include <string>

namespace kvcached {
namespace {

TEST_CASE("Printable: plain text passes unchanged") {
  CHECK(Printable("node-a:4711 key/with spaces") == "node-a:4711 key/with spaces");
  CHECK(Printable("") == "");
}

TEST_CASE("Printable: bytes that could break or forge a log line are escaped") {
  CHECK(Printable("a\nb") == "a\\x0Ab");
  CHECK(Printable("boom\x1b[31m") == "boom\\x1B[31m");
  CHECK(Printable(std::string("nul\0x", 5)) == "nul\\x00x");
  CHECK(Printable("del\x7f") == "del\\x7F");
  CHECK(Printable("it's") == "it\\x27s");
  CHECK(Printable("a\\x41") == "a\\x5Cx41");  // a literal "\x41" cannot pass for an escape
  CHECK(Printable("caf\xc3\xa9") == "caf\\xC3\\xA9");
}

TEST_CASE("Printable: long text is cut and says how long it was") {
  std::string key(300, 'k');
  CHECK(Printable(key) == std::string(kPrintableBytes, 'k') + "...(300 bytes)");
  CHECK(Printable(key, 4) == "kkkk...(300 bytes)");
  CHECK(Printable(std::string(kPrintableBytes, 'k')) == std::string(kPrintableBytes, 'k'));
  // The cut counts input bytes, not the escapes they become.
  CHECK(Printable("\n\n\n", 2) == "\\x0A\\x0A...(3 bytes)");
}

}  // namespace
}  // namespace kvcached
