// libFuzzer target: the RemoveByRegex matcher (core/compiled_regex.h). The
// input is a pattern, then optionally a 0xFF byte and a text of the fuzzer's
// choosing. Any pattern must compile or fail with INVALID_PARAMS and a
// reason, never crash; a compiled one stays within kMaxRegexInstructions and
// must search the fixed texts and the fuzzer's own without crashing, giving
// the same answer twice.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "core/compiled_regex.h"

namespace {

void Require(bool ok) {
  if (!ok) __builtin_trap();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace kvcached;
  std::string_view input(reinterpret_cast<const char*>(data), size);
  std::string_view pattern = input, text;
  if (size_t cut = input.find('\xff'); cut != std::string_view::npos) {
    pattern = input.substr(0, cut);
    text = input.substr(cut + 1);
  }
  Result<CompiledRegex> re = CompileRegex(pattern);
  if (!re.ok()) {
    Require(re.code() == ErrorCode::INVALID_PARAMS && !re.status().message().empty());
    return 0;
  }
  Require(re->instructions() >= 1 && re->instructions() <= kMaxRegexInstructions);
  static const std::string kFixed[] = {"",
                                       "a",
                                       "layer0/page12",
                                       std::string(256, 'a') + "b",
                                       "user_session_42\n\r\t x",
                                       std::string("\0\x80\xff-_.", 6)};
  for (const std::string& t : kFixed) Require(re->Search(t) == re->Search(t));
  Require(re->Search(text) == re->Search(text));
  return 0;
}
