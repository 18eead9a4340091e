#include "core/compiled_regex.h"

#include <algorithm>
#include <string>
#include <utility>

namespace kvcached {

namespace {

constexpr uint32_t kUnbounded = UINT32_MAX;

std::bitset<256> Range(unsigned lo, unsigned hi) {
  std::bitset<256> s;
  for (unsigned c = lo; c <= hi; ++c) s.set(c);
  return s;
}

// The C locale's classes, which libstdc++'s std::regex uses for \d \w \s.
std::bitset<256> Digits() { return Range('0', '9'); }
std::bitset<256> WordBytes() {
  std::bitset<256> s = Range('a', 'z') | Range('A', 'Z') | Digits();
  s.set('_');
  return s;
}
std::bitset<256> Spaces() {
  std::bitset<256> s = Range('\t', '\r');  // \t \n \v \f \r
  s.set(' ');
  return s;
}
std::bitset<256> AnyButNewline() {
  std::bitset<256> s;
  s.set();
  s.reset('\n');
  s.reset('\r');
  return s;
}

bool IsWordByte(unsigned char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

size_t SaturatingAdd(size_t a, size_t b) { return std::min(a + b, kMaxRegexInstructions + 1); }
size_t SaturatingMul(size_t a, size_t b) {
  if (a != 0 && b > (kMaxRegexInstructions + 1) / a) return kMaxRegexInstructions + 1;
  return std::min(a * b, kMaxRegexInstructions + 1);
}

}  // namespace

// The parser (pattern -> tree) and code generator (tree -> program). A class
// rather than free functions because it is CompiledRegex's friend.
class RegexCompiler {
  using Op = CompiledRegex::Op;

 public:
  explicit RegexCompiler(std::string_view pattern) : p_(pattern) {}

  Result<CompiledRegex> Compile() {
    if (p_.size() > kMaxRegexPatternBytes) {
      return Status(
          ErrorCode::INVALID_PARAMS,
          "the pattern is longer than " + std::to_string(kMaxRegexPatternBytes) + " bytes");
    }
    Node root;
    if (!ParseAlternation(root, 0)) return error_;
    if (pos_ < p_.size()) {  // only a ')' stops the top level early
      Fail("unbalanced ')': no '(' before it");
      return error_;
    }
    size_t cost = SaturatingAdd(Cost(root), 1);
    if (cost > kMaxRegexInstructions) {
      return Status(ErrorCode::INVALID_PARAMS,
                    "pattern too complex: it would compile to more than " +
                        std::to_string(kMaxRegexInstructions) +
                        " instructions (counted repetitions {n,m} are expanded)");
    }
    Generate(root);
    Emit(Op::kMatch);
    return std::move(re_);
  }

 private:
  struct Node {
    enum class Kind { kEmpty, kSet, kConcat, kAlternation, kRepeat, kAssert };
    Kind kind = Kind::kEmpty;
    std::bitset<256> set;        // kSet
    int set_id = -1;             // kSet: its index in sets_, given on first use
    Op assertion = Op::kMatch;   // kAssert
    uint32_t min = 0, max = 0;   // kRepeat; max may be kUnbounded
    std::vector<Node> children;  // kConcat, kAlternation; kRepeat: one
  };

  // ---- Parsing. Each Parse* returns false after setting error_. --------

  bool Fail(std::string what) {
    error_ = Status(ErrorCode::INVALID_PARAMS, what + " (at byte " + std::to_string(pos_) + ")");
    return false;
  }
  bool AtEnd() const { return pos_ >= p_.size(); }
  char Peek(size_t ahead = 0) const { return pos_ + ahead < p_.size() ? p_[pos_ + ahead] : '\0'; }
  bool Has(size_t ahead) const { return pos_ + ahead < p_.size(); }

  // alternation := concatenation ('|' concatenation)*
  bool ParseAlternation(Node& out, size_t depth) {
    if (depth > kMaxRegexNesting) {
      return Fail("groups nested deeper than " + std::to_string(kMaxRegexNesting));
    }
    Node alt;
    alt.kind = Node::Kind::kAlternation;
    for (;;) {
      Node branch;
      if (!ParseConcatenation(branch, depth)) return false;
      alt.children.push_back(std::move(branch));
      if (AtEnd() || Peek() != '|') break;
      ++pos_;
    }
    out = alt.children.size() == 1 ? std::move(alt.children[0]) : std::move(alt);
    return true;
  }

  // concatenation := (atom quantifier?)*, up to '|', ')' or the end.
  bool ParseConcatenation(Node& out, size_t depth) {
    out.kind = Node::Kind::kConcat;
    while (!AtEnd() && Peek() != '|' && Peek() != ')') {
      Node atom;
      bool group = Peek() == '(';
      if (!ParseAtom(atom, depth)) return false;
      if (!ParseQuantifier(atom, group)) return false;
      out.children.push_back(std::move(atom));
    }
    return true;
  }

  bool IsQuantifierStart() const {
    if (AtEnd()) return false;
    char c = Peek();
    return c == '*' || c == '+' || c == '?' || c == '{';
  }

  // One optional quantifier after an atom; a second one ("a**", "a{2}{3}")
  // has nothing to repeat, as in ECMAScript.
  // `group`: the atom was a group, which may be repeated whatever it holds.
  bool ParseQuantifier(Node& atom, bool group) {
    if (!IsQuantifierStart()) return true;
    if (atom.kind == Node::Kind::kAssert && !group) {
      return Fail("nothing to repeat: an assertion (^ $ \\b \\B) cannot take a quantifier");
    }
    uint32_t min = 0, max = kUnbounded;
    char c = Peek();
    if (c == '*') {
      ++pos_;
    } else if (c == '+') {
      min = 1;
      ++pos_;
    } else if (c == '?') {
      max = 1;
      ++pos_;
    } else if (!ParseBraces(min, max)) {
      return false;
    }
    if (!AtEnd() && Peek() == '?') ++pos_;  // lazy: the same set of matches
    if (IsQuantifierStart()) return Fail("nothing to repeat: a quantifier follows a quantifier");
    Node rep;
    rep.kind = Node::Kind::kRepeat;
    rep.min = min;
    rep.max = max;
    rep.children.push_back(std::move(atom));
    atom = std::move(rep);
    return true;
  }

  bool ParseCount(uint32_t& n) {
    if (AtEnd() || Peek() < '0' || Peek() > '9') return Fail("a digit was expected in {n,m}");
    uint64_t v = 0;
    while (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
      v = std::min<uint64_t>(v * 10 + (Peek() - '0'), uint64_t{kMaxRegexRepeat} + 1);
      ++pos_;
    }
    if (v > kMaxRegexRepeat) {
      return Fail("a repetition count above " + std::to_string(kMaxRegexRepeat));
    }
    n = static_cast<uint32_t>(v);
    return true;
  }

  // {n}, {n,} or {n,m}; pos_ is at '{'.
  bool ParseBraces(uint32_t& min, uint32_t& max) {
    size_t open = pos_++;
    if (!ParseCount(min)) return false;
    max = min;
    if (!AtEnd() && Peek() == ',') {
      ++pos_;
      max = kUnbounded;
      if (!AtEnd() && Peek() != '}' && !ParseCount(max)) return false;
    }
    if (AtEnd() || Peek() != '}') {
      pos_ = open;
      return Fail("'{' does not close a {n}, {n,} or {n,m} quantifier (write \\{ for the byte)");
    }
    ++pos_;
    if (max != kUnbounded && min > max) {
      pos_ = open;
      return Fail("{n,m} with n greater than m");
    }
    return true;
  }

  Node SetNode(const std::bitset<256>& s) {
    Node n;
    n.kind = Node::Kind::kSet;
    n.set = s;
    return n;
  }
  Node ByteNode(unsigned char c) {
    std::bitset<256> s;
    s.set(c);
    return SetNode(s);
  }
  Node AssertNode(Op op) {
    Node n;
    n.kind = Node::Kind::kAssert;
    n.assertion = op;
    return n;
  }

  bool ParseAtom(Node& out, size_t depth) {
    char c = Peek();
    switch (c) {
      case '(':
        return ParseGroup(out, depth);
      case '[':
        return ParseClass(out);
      case '.':
        ++pos_;
        out = SetNode(AnyButNewline());
        return true;
      case '^':
        ++pos_;
        out = AssertNode(Op::kBegin);
        return true;
      case '$':
        ++pos_;
        out = AssertNode(Op::kEnd);
        return true;
      case '*':
      case '+':
      case '?':
        return Fail(std::string("nothing to repeat before '") + c + "'");
      case '{':
        return Fail("nothing to repeat before '{' (write \\{ for the byte)");
      case '\\':
        return ParseEscape(out);
      default:
        ++pos_;
        out = ByteNode(static_cast<unsigned char>(c));
        return true;
    }
  }

  bool ParseGroup(Node& out, size_t depth) {
    size_t open = pos_++;
    if (!AtEnd() && Peek() == '?') {
      if (Peek(1) == ':' && Has(1)) {
        pos_ += 2;
      } else if ((Peek(1) == '=' || Peek(1) == '!') && Has(1)) {
        return Fail("lookahead (?= and (?! is not supported");
      } else if (Peek(1) == '<' && Has(1) && Has(2) && (Peek(2) == '=' || Peek(2) == '!')) {
        return Fail("lookbehind (?<= and (?<! is not supported");
      } else if (Peek(1) == '<' && Has(1)) {
        return Fail("named groups (?<name> are not supported");
      } else {
        return Fail("unknown group syntax '(?': only (?: is supported");
      }
    }
    if (!ParseAlternation(out, depth + 1)) return false;
    if (AtEnd()) {
      pos_ = open;
      return Fail("unbalanced '(': no ')' closes it");
    }
    ++pos_;  // ')'
    return true;
  }

  // A class's member: one byte, or a class escape (\d ...) when `is_set`.
  bool ParseClassAtom(std::bitset<256>& set, unsigned char& byte, bool& is_set) {
    is_set = false;
    if (Peek() != '\\') {
      byte = static_cast<unsigned char>(Peek());
      ++pos_;
      return true;
    }
    ++pos_;
    if (AtEnd()) return Fail("a '\\' ends the pattern");
    char c = Peek();
    if (c == 'b') {  // backspace inside a class, as in ECMAScript
      ++pos_;
      byte = '\b';
      return true;
    }
    if (c == 'B') return Fail("\\B is not allowed in a class");
    if (ClassEscape(c, set)) {
      ++pos_;
      is_set = true;
      return true;
    }
    return ByteEscape(byte);
  }

  bool ParseClass(Node& out) {
    size_t open = pos_++;
    bool negate = !AtEnd() && Peek() == '^';
    if (negate) ++pos_;
    std::bitset<256> members;
    for (;;) {
      if (AtEnd()) {
        pos_ = open;
        return Fail("unbalanced '[': no ']' closes it");
      }
      if (Peek() == ']') break;  // "[]" is empty and "[^]" any byte, as in ECMAScript
      std::bitset<256> set;
      unsigned char lo = 0;
      bool lo_is_set = false;
      if (!ParseClassAtom(set, lo, lo_is_set)) return false;
      if (!AtEnd() && Peek() == '-' && Has(1) && Peek(1) != ']') {
        size_t dash = pos_++;
        std::bitset<256> hi_set;
        unsigned char hi = 0;
        bool hi_is_set = false;
        if (!ParseClassAtom(hi_set, hi, hi_is_set)) return false;
        if (lo_is_set || hi_is_set) {
          pos_ = dash;
          return Fail("a class range cannot start or end at \\d \\w \\s or their negations");
        }
        if (lo > hi) {
          pos_ = dash;
          return Fail("a class range out of order");
        }
        members |= Range(lo, hi);
      } else if (lo_is_set) {
        members |= set;
      } else {
        members.set(lo);
      }
    }
    ++pos_;  // ']'
    if (negate) members.flip();
    out = SetNode(members);
    return true;
  }

  // \d \D \w \W \s \S; false for any other letter.
  static bool ClassEscape(char c, std::bitset<256>& set) {
    switch (c) {
      case 'd':
        set = Digits();
        return true;
      case 'D':
        set = ~Digits();
        return true;
      case 'w':
        set = WordBytes();
        return true;
      case 'W':
        set = ~WordBytes();
        return true;
      case 's':
        set = Spaces();
        return true;
      case 'S':
        set = ~Spaces();
        return true;
      default:
        return false;
    }
  }

  bool ParseHex(size_t digits, unsigned& value) {
    value = 0;
    for (size_t i = 0; i < digits; ++i) {
      int v = HexValue(Peek());
      if (AtEnd() || v < 0) return Fail("\\x needs 2 and \\u 4 hexadecimal digits");
      value = value * 16 + static_cast<unsigned>(v);
      ++pos_;
    }
    return true;
  }

  // An escape that stands for one byte; pos_ is just after the '\'.
  bool ByteEscape(unsigned char& byte) {
    char c = Peek();
    ++pos_;
    unsigned v = 0;
    switch (c) {
      case 't':
        byte = '\t';
        return true;
      case 'n':
        byte = '\n';
        return true;
      case 'r':
        byte = '\r';
        return true;
      case 'f':
        byte = '\f';
        return true;
      case 'v':
        byte = '\v';
        return true;
      case '0':
        if (!AtEnd() && Peek() >= '0' && Peek() <= '9') {
          return Fail("octal escapes are not supported (write \\xHH)");
        }
        byte = '\0';
        return true;
      case 'x':
        if (!ParseHex(2, v)) return false;
        byte = static_cast<unsigned char>(v);
        return true;
      case 'u':
        if (!ParseHex(4, v)) return false;
        if (v > 0x7f) {
          return Fail("\\u above 007F is not supported: keys are bytes; write the UTF-8 bytes");
        }
        byte = static_cast<unsigned char>(v);
        return true;
      case 'c':
        --pos_;
        return Fail("\\c control escapes are not supported");
      case 'k':
        --pos_;
        return Fail("named back-references \\k are not supported");
      default:
        break;
    }
    --pos_;
    if (c >= '1' && c <= '9') return Fail("back-references (\\1 ...) are not supported");
    auto u = static_cast<unsigned char>(c);
    bool letter_or_digit =
        (u >= 'a' && u <= 'z') || (u >= 'A' && u <= 'Z') || (u >= '0' && u <= '9');
    if (u < 0x20 || u >= 0x7f) {
      return Fail("unknown escape: '\\' before a control or non-ASCII byte");
    }
    if (letter_or_digit) return Fail(std::string("unknown escape \\") + c);
    ++pos_;
    byte = u;
    return true;
  }

  bool ParseEscape(Node& out) {
    ++pos_;  // '\'
    if (AtEnd()) return Fail("a '\\' ends the pattern");
    char c = Peek();
    std::bitset<256> set;
    if (c == 'b' || c == 'B') {
      ++pos_;
      out = AssertNode(c == 'b' ? Op::kWordB : Op::kNotWordB);
      return true;
    }
    if (ClassEscape(c, set)) {
      ++pos_;
      out = SetNode(set);
      return true;
    }
    unsigned char byte = 0;
    if (!ByteEscape(byte)) return false;
    out = ByteNode(byte);
    return true;
  }

  // ---- Code generation. ------------------------------------------------

  // The instructions Generate emits for `n`, saturated above the limit.
  // Each copy of a repeated node counts at least 1, so that a repeat of an
  // empty node ("(){1000}" nested) cannot make Generate loop unbounded.
  static size_t Cost(const Node& n) {
    switch (n.kind) {
      case Node::Kind::kEmpty:
        return 0;
      case Node::Kind::kSet:
      case Node::Kind::kAssert:
        return 1;
      case Node::Kind::kConcat: {
        size_t sum = 0;
        for (const Node& c : n.children) sum = SaturatingAdd(sum, Cost(c));
        return sum;
      }
      case Node::Kind::kAlternation: {
        size_t sum = SaturatingMul(2, n.children.size() - 1);  // a split and a jump per branch
        for (const Node& c : n.children) sum = SaturatingAdd(sum, Cost(c));
        return sum;
      }
      case Node::Kind::kRepeat: {
        size_t c = std::max<size_t>(Cost(n.children[0]), 1);
        if (n.max == kUnbounded) {
          return SaturatingAdd(SaturatingMul(n.min, c), n.min == 0 ? c + 2 : 1);
        }
        return SaturatingAdd(SaturatingMul(n.min, c), SaturatingMul(n.max - n.min, c + 1));
      }
    }
    return kMaxRegexInstructions + 1;
  }

  uint32_t Emit(Op op, uint32_t arg = 0, uint32_t arg2 = 0) {
    re_.program_.push_back(CompiledRegex::Inst{op, arg, arg2});
    return static_cast<uint32_t>(re_.program_.size() - 1);
  }
  uint32_t Here() const { return static_cast<uint32_t>(re_.program_.size()); }

  void Generate(Node& n) {
    switch (n.kind) {
      case Node::Kind::kEmpty:
        return;
      case Node::Kind::kSet:
        if (n.set.count() == 1) {
          unsigned byte = 0;
          while (!n.set.test(byte)) ++byte;
          Emit(Op::kByte, byte);
          return;
        }
        if (n.set_id < 0) {  // copies from {n,m} share one set
          n.set_id = static_cast<int>(re_.sets_.size());
          re_.sets_.push_back(n.set);
        }
        Emit(Op::kSet, static_cast<uint32_t>(n.set_id));
        return;
      case Node::Kind::kAssert:
        Emit(n.assertion);
        return;
      case Node::Kind::kConcat:
        for (Node& c : n.children) Generate(c);
        return;
      case Node::Kind::kAlternation: {
        std::vector<uint32_t> jumps;
        for (size_t i = 0; i + 1 < n.children.size(); ++i) {
          uint32_t split = Emit(Op::kSplit);
          re_.program_[split].arg = Here();
          Generate(n.children[i]);
          jumps.push_back(Emit(Op::kJump));
          re_.program_[split].arg2 = Here();
        }
        Generate(n.children.back());
        for (uint32_t j : jumps) re_.program_[j].arg = Here();
        return;
      }
      case Node::Kind::kRepeat:
        GenerateRepeat(n);
        return;
    }
  }

  void GenerateRepeat(Node& n) {
    Node& child = n.children[0];
    if (n.max == kUnbounded) {
      if (n.min > 0) {  // min - 1 copies, then one that loops back
        for (uint32_t i = 1; i < n.min; ++i) Generate(child);
        uint32_t loop = Here();
        Generate(child);
        Emit(Op::kSplit, loop, Here() + 1);
        return;
      }
      uint32_t split = Emit(Op::kSplit);
      re_.program_[split].arg = Here();
      Generate(child);
      Emit(Op::kJump, split);
      re_.program_[split].arg2 = Here();
      return;
    }
    for (uint32_t i = 0; i < n.min; ++i) Generate(child);
    for (uint32_t i = n.min; i < n.max; ++i) {
      uint32_t split = Emit(Op::kSplit);
      re_.program_[split].arg = Here();
      Generate(child);
      re_.program_[split].arg2 = Here();
    }
  }

  std::string_view p_;
  size_t pos_ = 0;
  Status error_;
  CompiledRegex re_;
};

Result<CompiledRegex> CompileRegex(std::string_view pattern) {
  return RegexCompiler(pattern).Compile();
}

namespace {

// A set of program counters with O(1) insert, lookup and clear, iterated in
// insertion order (Briggs and Torczon's sparse set).
class PcSet {
 public:
  explicit PcSet(size_t capacity) : dense_(capacity), sparse_(capacity) {}
  bool Contains(uint32_t pc) const {
    uint32_t i = sparse_[pc];
    return i < size_ && dense_[i] == pc;
  }
  void Insert(uint32_t pc) {
    sparse_[pc] = size_;
    dense_[size_++] = pc;
  }
  void Clear() { size_ = 0; }
  uint32_t size() const { return size_; }
  uint32_t operator[](uint32_t i) const { return dense_[i]; }

 private:
  std::vector<uint32_t> dense_;
  std::vector<uint32_t> sparse_;
  uint32_t size_ = 0;
};

}  // namespace

bool CompiledRegex::Search(std::string_view text) const {
  const size_t n = program_.size();
  if (n == 0) return false;
  PcSet current(n), next(n);
  std::vector<uint32_t> stack;
  stack.reserve(2 * n + 1);
  const bool anchored = program_[0].op == Op::kBegin;

  // Follows every non-consuming instruction from `pc` at `pos` into `set`;
  // true when that reaches kMatch. Each pc enters a set once per position,
  // so a closure costs O(n) however the program loops.
  auto add = [&](PcSet& set, uint32_t start, size_t pos) {
    const bool left_word = pos > 0 && IsWordByte(static_cast<unsigned char>(text[pos - 1]));
    const bool right_word = pos < text.size() && IsWordByte(static_cast<unsigned char>(text[pos]));
    stack.clear();
    stack.push_back(start);
    while (!stack.empty()) {
      uint32_t pc = stack.back();
      stack.pop_back();
      if (set.Contains(pc)) continue;
      set.Insert(pc);
      const Inst& inst = program_[pc];
      switch (inst.op) {
        case Op::kByte:
        case Op::kSet:
          break;  // waits for the next byte
        case Op::kJump:
          stack.push_back(inst.arg);
          break;
        case Op::kSplit:
          stack.push_back(inst.arg2);
          stack.push_back(inst.arg);
          break;
        case Op::kBegin:
          if (pos == 0) stack.push_back(pc + 1);
          break;
        case Op::kEnd:
          if (pos == text.size()) stack.push_back(pc + 1);
          break;
        case Op::kWordB:
          if (left_word != right_word) stack.push_back(pc + 1);
          break;
        case Op::kNotWordB:
          if (left_word == right_word) stack.push_back(pc + 1);
          break;
        case Op::kMatch:
          return true;
      }
    }
    return false;
  };

  for (size_t pos = 0;; ++pos) {
    // Unanchored: a new thread starts at every position. An anchored
    // program's threads all started at 0; once they are gone, no match.
    if (!anchored || pos == 0) {
      if (add(current, 0, pos)) return true;
    } else if (current.size() == 0) {
      return false;
    }
    if (pos == text.size()) return false;
    const auto byte = static_cast<unsigned char>(text[pos]);
    next.Clear();
    for (uint32_t i = 0; i < current.size(); ++i) {
      uint32_t pc = current[i];
      const Inst& inst = program_[pc];
      bool takes = (inst.op == Op::kByte && inst.arg == byte) ||
                   (inst.op == Op::kSet && sets_[inst.arg].test(byte));
      if (takes && add(next, pc + 1, pos + 1)) return true;
    }
    std::swap(current, next);
  }
}

}  // namespace kvcached
