// Command-line helpers shared by the bench programs: a walk over
// `--name value` and `--name=value` arguments, comma lists, and where the
// `kvcached` binary is when --bin is not given.
#pragma once

#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <string>
#include <vector>

namespace kvcached::bench {

// Each program's usage printer: prints `error` (none for --help) and exits.
using UsageFn = void (*)(const std::string& error);

class ArgWalk {
 public:
  ArgWalk(int argc, char** argv, UsageFn usage) : args_(argv + 1, argv + argc), usage_(usage) {}

  // Steps to the next argument; false after the last.
  bool Next() {
    if (++i_ >= args_.size()) return false;
    name_ = args_[i_];
    value_.clear();
    has_value_ = false;
    if (size_t eq = name_.find('='); eq != std::string::npos) {
      value_ = name_.substr(eq + 1);
      name_.resize(eq);
      has_value_ = true;
    }
    return true;
  }
  // The option's name, without a `=value`.
  const std::string& name() const { return name_; }
  // Its value: after `=`, else the next argument; a usage error when none.
  std::string Value() {
    if (has_value_) return value_;
    if (i_ + 1 >= args_.size()) {
      usage_(name_ + " needs a value");
      std::abort();  // usage_ exits
    }
    return args_[++i_];
  }

 private:
  std::vector<std::string> args_;
  UsageFn usage_;
  size_t i_ = static_cast<size_t>(-1);
  std::string name_, value_;
  bool has_value_ = false;
};

inline std::vector<std::string> SplitCommas(const std::string& s) {
  std::vector<std::string> out;
  size_t start = 0;
  while (start <= s.size()) {
    size_t end = std::min(s.find(',', start), s.size());
    if (end > start) out.push_back(s.substr(start, end - start));
    start = end + 1;
  }
  return out;
}

// $KVCACHED_BIN when set, else `kvcached` next to this program.
inline std::string DefaultKvcachedBin(const char* argv0) {
  if (const char* env = std::getenv("KVCACHED_BIN"); env != nullptr && *env != '\0') return env;
  char self[4096] = {};
  ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
  std::string path = n > 0 ? std::string(self, static_cast<size_t>(n)) : std::string(argv0);
  return path.substr(0, path.rfind('/') + 1) + "kvcached";
}

}  // namespace kvcached::bench
