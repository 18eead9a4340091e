// Printable: the one escaper for text a peer or a user supplied (keys, client
// and host ids, a server's reason, a URL) before it goes into a log line or an
// error message. It is not a serialisation: the result cannot be parsed back.
// Pure function; thread-safe.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>

namespace kvcached {

// How much of a text Printable keeps by default: enough to recognise a key or
// an id, little enough that a hostile peer cannot flood a log line.
inline constexpr size_t kPrintableBytes = 200;

// `text` with every byte that could break or forge a log line written as
// \xNN (two upper-case hex digits): control bytes, DEL, bytes of 0x80 and up
// (so no invalid or look-alike UTF-8 reaches the log), the quote ' (callers
// quote with it) and the backslash (so an escape cannot be faked). Everything
// else is kept. Only the first `max_bytes` bytes of `text` are shown; a longer
// text ends in "...(N bytes)" with its full length.
std::string Printable(std::string_view text, size_t max_bytes = kPrintableBytes);

}  // namespace kvcached
