// CompiledRegex: the regular expressions of RemoveByRegex, a byte-oriented
// subset of ECMAScript matched in time linear in the text's length (a
// Thompson NFA run as a Pike VM: no backtracking, no recursion while
// matching). It is not a general regex library: no captures, no flags, no
// back-references or lookaround. A CompiledRegex is immutable once built:
// Search may be called from any number of threads at once.
#pragma once

#include <bitset>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

#include "core/status.h"

namespace kvcached {

// Compile-time bounds, so that compiling and matching a pattern from a peer
// costs bounded memory and time: the pattern's length, the nesting of its
// groups, a counted repetition's bounds and the program's instructions (after
// {n,m} is expanded into copies).
inline constexpr size_t kMaxRegexPatternBytes = 1024;
inline constexpr size_t kMaxRegexNesting = 128;
inline constexpr uint32_t kMaxRegexRepeat = 1000;
inline constexpr size_t kMaxRegexInstructions = 10000;

class CompiledRegex {
 public:
  // True when the pattern matches somewhere in `text` (as std::regex_search
  // with ECMAScript syntax would say for the accepted subset). `text` is bytes:
  // no Unicode semantics. Time O(text.size() * instructions()), memory
  // O(instructions()); thread-safe.
  bool Search(std::string_view text) const;

  // The program's length, at most kMaxRegexInstructions.
  size_t instructions() const { return program_.size(); }

 private:
  friend class RegexCompiler;
  friend Result<CompiledRegex> CompileRegex(std::string_view pattern);

  enum class Op : uint8_t {
    kByte,      // consume `arg` exactly
    kSet,       // consume a byte of sets_[arg]
    kSplit,     // continue at `arg` and at `arg2`
    kJump,      // continue at `arg`
    kBegin,     // assert: at the start of the text (^)
    kEnd,       // assert: at the end of the text ($)
    kWordB,     // assert: at a word boundary (\b)
    kNotWordB,  // assert: not at a word boundary (\B)
    kMatch,
  };
  struct Inst {
    Op op;
    uint32_t arg = 0;
    uint32_t arg2 = 0;
  };

  CompiledRegex() = default;

  std::vector<Inst> program_;  // starts at 0
  std::vector<std::bitset<256>> sets_;
};

// Parses and compiles `pattern`. Accepted: literals; `.` (any byte but \n and
// \r); `^` and `$` (the text's start and end; no multiline); classes `[...]`
// and `[^...]` with ranges; the escapes \d \D \w \W \s \S \b \B (\b is a word
// boundary outside a class, backspace inside), \t \n \r \f \v \0, \xHH, \uHHHH
// below 0x80, and a backslash before any ASCII punctuation or a space; groups `(...)`
// and `(?:...)`; `|`; the quantifiers * + ? {n} {n,} {n,m} (n <= m <= 1000),
// each optionally lazy (`*?`, same result). Anything else — back-references,
// lookaround, named groups, \c, an unknown letter escape, unbalanced
// brackets, a quantifier with nothing to repeat, a pattern over the bounds
// above — fails with INVALID_PARAMS and a message naming the byte offset.
Result<CompiledRegex> CompileRegex(std::string_view pattern);

}  // namespace kvcached
