#include "core/compiled_regex.h"

#include <doctest/doctest.h>

#include <random>
#include <regex>
#include <string>
#include <vector>

namespace kvcached {
namespace {

bool Matches(std::string_view pattern, std::string_view text) {
  Result<CompiledRegex> re = CompileRegex(pattern);
  REQUIRE_MESSAGE(re.ok(), re.status().ToString());
  return re->Search(text);
}

struct Case {
  const char* pattern;
  std::string text;
  bool expected;
};

TEST_CASE("CompiledRegex: a table of patterns, texts and answers") {
  using namespace std::string_literals;
  const Case cases[] = {
      // Literals, a match anywhere.
      {"abc", "xxabcxx", true},
      {"abc", "abxc", false},
      {"", "", true},
      {"", "anything", true},
      {"a", "", false},
      // Anchors: the text's start and end only.
      {"^user_session_.*", "user_session_42", true},
      {"^user_session_.*", "xuser_session_42", false},
      {"^abc$", "abc", true},
      {"^abc$", "abcd", false},
      {"^abc$", "abc\n", false},
      {"^b", "a\nb", false},
      {"a$", "a\nb", false},
      {"^", "", true},
      {"$", "abc", true},
      {"^$", "", true},
      {"^$", "a", false},
      // '.': any byte but \n and \r.
      {"a.c", "abc", true},
      {"a.c", "a\nc", false},
      {"a.c", "a\rc", false},
      {"a.c", "a\0c"s, true},
      {"a.c",
       "a\xff"
       "c",
       true},
      // Classes.
      {"prefix_[0-9]+_tp_\\d$", "prefix_123_tp_4", true},
      {"prefix_[0-9]+_tp_\\d$", "prefix__tp_4", false},
      {"prefix_[0-9]+_tp_\\d$", "prefix_1_tp_45", false},
      {"[abc]", "xxc", true},
      {"[^abc]", "abc", false},
      {"[^abc]", "abcd", true},
      {"[a-]", "-", true},
      {"[-a]", "-", true},
      {"[\\]]", "]", true},
      {"[\\[]", "[", true},
      {"[.]", "a", false},
      {"[.]", ".", true},
      {"[\\d_]+$", "x_1_2", true},
      {"[^\\w]", "a_1", false},
      {"[^\\w]", "a-1", true},
      {"[\\s]", "a\tb", true},
      {"[\\b]", "\b", true},
      {"[]", "abc", false},
      {"[^]", "\n", true},
      {"[\\x41-\\x43]", "B", true},
      {"[\\x41-\\x43]", "D", false},
      {"[\\x80-\\xff]", "ab\xe2\x9c\x93", true},
      // Escapes.
      {"\\d\\D", "1a", true},
      {"\\d\\D", "12", false},
      {"\\w+\\W", "ab_1-", true},
      {"\\s\\S", " a", true},
      {"\\s\\S", "a ", false},
      {"a\\.b", "a.b", true},
      {"a\\.b", "axb", false},
      {"\\\\", "a\\b", true},
      {"\\/\\-\\[\\]\\(\\)\\{\\}\\*\\+\\?\\|\\^\\$", "/-[](){}*+?|^$", true},
      {"\\t\\n\\r\\f\\v", "\t\n\r\f\v", true},
      {"a\\0b", "a\0b"s, true},
      {"a\\ b", "a b", true},
      {"\\x41\\u0042", "AB", true},
      {"\\x41\\u0042", "Ab", false},
      // Word boundaries.
      {"\\bfoo\\b", "a foo b", true},
      {"\\bfoo\\b", "afoo b", false},
      {"\\bfoo\\b", "foo", true},
      {"\\Boo", "foo", true},
      {"\\Bfoo", "foo", false},
      {"\\b", "", false},
      {"\\B", "", true},
      // Groups, alternation, quantifiers.
      {"(a|b)c?", "b", true},
      {"(a|b)c?", "xyz", false},
      {"^(?:ab|cd)+$", "abcdab", true},
      {"^(?:ab|cd)+$", "abca", false},
      {"^(a|)$", "", true},
      {"^(|a)b$", "ab", true},
      {"^a*$", "", true},
      {"^a+$", "", false},
      {"^a?b$", "b", true},
      {"^a{3}$", "aaa", true},
      {"^a{3}$", "aa", false},
      {"^a{3}$", "aaaa", false},
      {"^a{2,}$", "aaaaaa", true},
      {"^a{2,}$", "a", false},
      {"^a{1,2}$", "aa", true},
      {"^a{1,2}$", "aaa", false},
      {"^a{0}$", "", true},
      {"^a{0,0}b$", "b", true},
      {"^(ab){2}$", "abab", true},
      {"^a*?b+?c??d{1,2}?$", "aabcdd", true},
      {"^(a*)*$", "aaa", true},
      {"^(a*)*b$", "aaa", false},
      {"^(?:^)*a$", "a", true},
      {"^(?:a|b|c|d)e$", "de", true},
      {"layer[0-9]+/", "layer12/page", true},
      {"page[23]$", "layer0/page2", true},
      {"page[23]$", "layer0/page4", false},
      // Bytes stand for themselves, whatever they are.
      {"\xe2\x9c\x93", "ok \xe2\x9c\x93", true},
      {"a}b]", "a}b]", true},
  };
  for (const Case& c : cases) {
    CAPTURE(c.pattern);
    CAPTURE(c.text);
    CHECK(Matches(c.pattern, c.text) == c.expected);
  }
}

TEST_CASE("CompiledRegex: a pattern can hold any byte, NUL included") {
  std::string pattern("a\0b", 3);
  CHECK(Matches(pattern, std::string("xa\0by", 5)));
  CHECK_FALSE(Matches(pattern, "ab"));
}

TEST_CASE("CompiledRegex refuses what it does not support, with INVALID_PARAMS") {
  const char* refused[] = {
      // Back-references, lookaround, named groups.
      "(a)\\1",
      "\\2",
      "(?=a)",
      "(?!a)",
      "(?<=a)b",
      "(?<!a)b",
      "(?<n>a)",
      "\\k<n>",
      "(?i)a",
      "(?",
      "(?x)",
      // Unbalanced.
      "(unclosed",
      "((a)",
      "a)",
      ")",
      "[z",
      "[",
      "[^",
      "[\\]",
      // Nothing to repeat, or a quantifier on a quantifier.
      "*a",
      "+",
      "?",
      "a**",
      "a*+",
      "a+*",
      "a{2}{3}",
      "a???",
      "(*)",
      "a|*",
      "^*",
      "$+",
      "\\b*",
      "{2}",
      "a{",
      "a{2",
      "a{,2}",
      "a{x}",
      "a{2,x}",
      "x{",
      // Counts.
      "a{3,2}",
      "a{1001}",
      "a{0,1001}",
      "a{99999999999999999999}",
      // Ranges.
      "[z-a]",
      "[\\d-z]",
      "[a-\\w]",
      // Escapes.
      "\\",
      "a\\",
      "\\q",
      "\\a",
      "\\e",
      "\\cA",
      "\\x4",
      "\\xg0",
      "\\u12",
      "\\u00e9",
      "\\u2028",
      "\\01",
      "[\\B]",
      "\\\x80",
      "\\\x01",
  };
  for (const char* p : refused) {
    CAPTURE(p);
    Result<CompiledRegex> re = CompileRegex(p);
    CHECK(re.code() == ErrorCode::INVALID_PARAMS);
    CHECK(!re.status().message().empty());
  }
  CHECK(CompileRegex("(a)\\1").status().message().find("back-reference") != std::string::npos);
  CHECK(CompileRegex("(?=a)").status().message().find("lookahead") != std::string::npos);
  CHECK(CompileRegex("[z-a]").status().message().find("at byte 2") != std::string::npos);
}

TEST_CASE("CompiledRegex bounds the pattern and the program") {
  CHECK(CompileRegex(std::string(kMaxRegexPatternBytes, 'a')).ok());
  CHECK(CompileRegex(std::string(kMaxRegexPatternBytes + 1, 'a')).code() ==
        ErrorCode::INVALID_PARAMS);
  // Nesting.
  std::string deep = std::string(kMaxRegexNesting, '(') + "a" + std::string(kMaxRegexNesting, ')');
  CHECK(CompileRegex(deep).ok());
  std::string deeper = "(" + deep + ")";
  CHECK(CompileRegex(deeper).code() == ErrorCode::INVALID_PARAMS);
  // Expanded repetitions count.
  Result<CompiledRegex> big = CompileRegex("a{1000}");
  REQUIRE(big.ok());
  CHECK(big->instructions() <= kMaxRegexInstructions);
  CHECK(big->Search(std::string(1000, 'a')));
  CHECK_FALSE(big->Search(std::string(999, 'a')));
  Result<CompiledRegex> too_big = CompileRegex("(a{1000}){1000}");
  CHECK(too_big.code() == ErrorCode::INVALID_PARAMS);
  CHECK(too_big.status().message().find("too complex") != std::string::npos);
  CHECK(CompileRegex("(a{100}){101}").code() == ErrorCode::INVALID_PARAMS);
  // Repeats of nothing still count, so compiling them stays bounded.
  CHECK(CompileRegex("((((){1000}){1000}){1000}){1000}").code() == ErrorCode::INVALID_PARAMS);
  CHECK(CompileRegex("(){1000}").ok());
}

TEST_CASE("CompiledRegex answers the patterns that take std::regex seconds, on a 4096-byte key") {
  const std::string as(4096, 'a');
  const std::string as_b = std::string(4095, 'a') + "b";
  struct Slow {
    const char* pattern;
    bool on_as, on_as_b;
  };
  const Slow slow[] = {
      {".*.*.*.*.*b", false, true}, {"((a|aa){30}){30}b", false, true},  {"(a*)*b", false, true},
      {"(a|a)*b", false, true},     {"(a+a+)+b", false, true},           {"^(a|aa)*$", true, false},
      {"(.*a){20}c", false, false}, {"(?:a?){1000}a{1000}", true, true},
  };
  for (const Slow& s : slow) {
    CAPTURE(s.pattern);
    Result<CompiledRegex> re = CompileRegex(s.pattern);
    REQUIRE_MESSAGE(re.ok(), re.status().ToString());
    CHECK(re->Search(as) == s.on_as);
    CHECK(re->Search(as_b) == s.on_as_b);
  }
}

// ---- Against std::regex ------------------------------------------------

// A random pattern of the subset both engines accept, and whose meaning
// libstdc++ and ECMAScript agree on.
class PatternMaker {
 public:
  explicit PatternMaker(uint32_t seed) : rng_(seed) {}

  std::string Make() { return Alternation(0); }

  std::string Text() {
    static const char kBytes[] = "abc1_ .-\n";
    size_t n = Pick(12);
    std::string t;
    for (size_t i = 0; i < n; ++i) t += kBytes[Pick(sizeof(kBytes) - 1)];
    return t;
  }

 private:
  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

  std::string Alternation(int depth) {
    std::string s = Concatenation(depth);
    while (Pick(5) == 0) s += "|" + Concatenation(depth);
    return s;
  }

  std::string Concatenation(int depth) {
    std::string s;
    size_t n = Pick(4);
    for (size_t i = 0; i < n; ++i) s += Piece(depth);
    return s;
  }

  std::string Piece(int depth) {
    static const char* kAssertions[] = {"^", "$", "\\b", "\\B"};
    if (Pick(10) == 0) return kAssertions[Pick(4)];
    std::string atom = Atom(depth);
    static const char* kQuantifiers[] = {"*", "+", "?", "{2}", "{0,2}", "{1,3}", "{2,}", "{0}"};
    if (Pick(3) == 0) {
      atom += kQuantifiers[Pick(8)];
      if (Pick(4) == 0) atom += "?";
    }
    return atom;
  }

  std::string Atom(int depth) {
    static const char* kAtoms[] = {
        "a",      "b",      "c",     "1",       "_",   ".",   "\\.",  " ",       "-",
        "[ab]",   "[^a]",   "[a-c]", "\\d",     "\\D", "\\w", "\\W",  "\\s",     "\\S",
        "[\\d_]", "[^\\w]", "\\x61", "\\u0062", "[.]", "\\n", "[-a]", "[a\\-c]",
    };
    constexpr size_t kCount = sizeof(kAtoms) / sizeof(kAtoms[0]);
    if (depth < 3 && Pick(6) == 0) {
      return (Pick(2) ? "(" : "(?:") + Alternation(depth + 1) + ")";
    }
    return kAtoms[Pick(kCount)];
  }

  std::mt19937 rng_;
};

TEST_CASE("CompiledRegex agrees with std::regex (ECMAScript) on generated patterns") {
  PatternMaker maker(20261206);
  size_t compared = 0, matched = 0;
  for (int i = 0; i < 3000; ++i) {
    std::string pattern = maker.Make();
    CAPTURE(pattern);
    Result<CompiledRegex> mine = CompileRegex(pattern);
    REQUIRE_MESSAGE(mine.ok(), mine.status().ToString());
    std::regex theirs(pattern, std::regex::ECMAScript);
    for (int j = 0; j < 20; ++j) {
      std::string text = maker.Text();
      CAPTURE(text);
      bool expected = std::regex_search(text, theirs);
      REQUIRE(mine->Search(text) == expected);
      ++compared;
      matched += expected;
    }
  }
  // The generator is useful only if both answers are common.
  CHECK(matched > compared / 10);
  CHECK(matched < compared * 9 / 10);
}

}  // namespace
}  // namespace kvcached
