// Decoding of URL query strings as HTTP metadata clients send them
// (Mooncake's clients escape keys with curl_easy_escape; Python clients use
// urllib). Pure functions, thread-safe.
#pragma once

#include <optional>
#include <string>
#include <string_view>

#include "core/status.h"

namespace kvcached {

// Decodes %XX escapes (either case) and, in a query, '+' as a space, like
// the form decoding of the Python reference server. A '%' not followed by
// two hex digits fails with INVALID_PARAMS. The result may hold any byte.
Result<std::string> PercentDecode(std::string_view text, bool plus_is_space = true);

// The decoded value of the first `name` parameter in `query` (the part
// after '?'), nullopt when absent; INVALID_PARAMS when its escaping is bad.
Result<std::optional<std::string>> QueryParam(std::string_view query, std::string_view name);

}  // namespace kvcached
