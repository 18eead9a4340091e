// errors/copies: checks every copy of the error table against the one table
// in src/core/error_code.cpp (ErrorTableBegin..End). The copies are the enum
// in include/kvcached/error_code.h, the C ABI's KVCACHED_* macros in
// include/kvcached/kvcached.h, python/kvcached/errors.py, the full table in
// docs/architecture.md ("## Error codes": value, name, HTTP status, exit code)
// and the subset in docs/protocol.md ("### Result codes": value and name).
// Run by ctest with the source tree as its argument; prints each disagreement
// and exits 1 when there is any.
#include <cstdio>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <sstream>
#include <string>
#include <vector>

#include "core/error_code.h"

namespace {

using kvcached::ErrorInfo;

struct Row {
  int value = 0;
  std::optional<int> http_status;
  std::optional<int> exit_code;
};
using Copy = std::map<std::string, Row>;  // by name

int failures = 0;

void Fail(const std::string& where, const std::string& what) {
  std::fprintf(stderr, "%s: %s\n", where.c_str(), what.c_str());
  ++failures;
}

std::optional<std::string> ReadFile(const std::string& path) {
  std::ifstream in(path);
  if (!in) return std::nullopt;
  std::ostringstream s;
  s << in.rdbuf();
  return s.str();
}

// The lines from the first one that starts with `start` up to (not including)
// the first one after it that starts with `stop`; empty when `start` is absent.
std::vector<std::string> Section(const std::string& text, const std::string& start,
                                 const std::string& stop) {
  std::vector<std::string> out;
  std::istringstream in(text);
  std::string line;
  bool inside = false;
  while (std::getline(in, line)) {
    if (!inside) {
      inside = line.rfind(start, 0) == 0;
      continue;
    }
    if (line.rfind(stop, 0) == 0) break;
    out.push_back(line);
  }
  return out;
}

// Every line of `lines` matching `re` (group 1 the name, group 2 the value,
// groups 3 and 4, when present, the HTTP status and exit code) as a row.
Copy Rows(const std::string& where, const std::vector<std::string>& lines, const std::regex& re,
          bool name_first = true) {
  Copy rows;
  std::smatch m;
  for (const std::string& line : lines) {
    if (!std::regex_search(line, m, re)) continue;
    std::string name = name_first ? m[1].str() : m[2].str();
    Row row;
    row.value = std::stoi(name_first ? m[2].str() : m[1].str());
    if (m.size() > 4 && m[3].matched) row.http_status = std::stoi(m[3].str());
    if (m.size() > 4 && m[4].matched) row.exit_code = std::stoi(m[4].str());
    if (!rows.emplace(name, row).second) Fail(where, name + " appears twice");
  }
  if (rows.empty()) Fail(where, "no error codes found (has the layout changed?)");
  return rows;
}

// `copy` against the table: the same names with the same values (and HTTP
// statuses and exit codes where the copy has them); with `whole`, no code
// missing either.
void Compare(const std::string& where, const Copy& copy, bool whole) {
  for (const ErrorInfo* row = kvcached::ErrorTableBegin(); row != kvcached::ErrorTableEnd();
       ++row) {
    std::string name(row->name);
    auto it = copy.find(name);
    if (it == copy.end()) {
      if (whole) Fail(where, name + " is missing");
      continue;
    }
    const int value = static_cast<int>(row->code);
    if (it->second.value != value) {
      Fail(where, name + " is " + std::to_string(it->second.value) + ", the table says " +
                      std::to_string(value));
    }
    if (it->second.http_status && *it->second.http_status != row->http_status) {
      Fail(where, name + " has HTTP " + std::to_string(*it->second.http_status) +
                      ", the table says " + std::to_string(row->http_status));
    }
    if (it->second.exit_code && *it->second.exit_code != row->exit_code) {
      Fail(where, name + " exits " + std::to_string(*it->second.exit_code) + ", the table says " +
                      std::to_string(row->exit_code));
    }
  }
  for (const auto& [name, row] : copy) {
    if (!kvcached::ErrorCodeFromName(name)) Fail(where, name + " is not in the table");
  }
}

void Check(const std::string& root, const std::string& file, const std::string& start,
           const std::string& stop, const std::regex& re, bool whole, bool name_first = true) {
  const std::string path = root + "/" + file;
  std::optional<std::string> text = ReadFile(path);
  if (!text) return Fail(path, "cannot read");
  std::vector<std::string> lines = Section(*text, start, stop);
  if (lines.empty()) return Fail(path, "no section starting with '" + start + "'");
  Compare(path, Rows(path, lines, re, name_first), whole);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: %s SOURCE_DIR\n", argv[0]);
    return 2;
  }
  const std::string root = argv[1];
  Check(root, "include/kvcached/error_code.h", "enum class ErrorCode", "};",
        std::regex(R"(^\s+([A-Z][A-Z_]*) = (-?[0-9]+),)"), true);
  Check(root, "include/kvcached/kvcached.h", "/* Error codes", "typedef",
        std::regex(R"(^#define KVCACHED_([A-Z][A-Z_]*) \(?(-?[0-9]+)\)?\s*$)"), true);
  Check(root, "python/kvcached/errors.py", "\"\"\"Mooncake",
        "NAMES =", std::regex(R"(^([A-Z][A-Z_]*) = (-?[0-9]+)\s*$)"), true);
  Check(root, "docs/architecture.md", "## Error codes", "## ",
        std::regex(R"(^\| (-?[0-9]+) \| `([A-Z][A-Z_]*)`[^|]*\| ([0-9]+) \| ([0-9]+) \|)"), true,
        /*name_first=*/false);
  Check(root, "docs/protocol.md", "### Result codes", "## ",
        std::regex(R"(^\| (-?[0-9]+) \| `([A-Z][A-Z_]*)` \|)"), false, /*name_first=*/false);
  if (failures > 0) {
    std::fprintf(stderr, "%d disagreement(s) with src/core/error_code.cpp's table\n", failures);
    return 1;
  }
  std::printf("every copy of the error table agrees with src/core/error_code.cpp (%d codes)\n",
              static_cast<int>(kvcached::ErrorTableEnd() - kvcached::ErrorTableBegin()));
  return 0;
}
