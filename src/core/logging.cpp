#include "core/logging.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

#include <spdlog/pattern_formatter.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace kvcached {
namespace {

// "<3>" for error and so on: the sd-daemon(3) priority prefix journald reads.
class SyslogPriorityFlag : public spdlog::custom_flag_formatter {
 public:
  void format(const spdlog::details::log_msg& msg, const std::tm&,
              spdlog::memory_buf_t& dest) override {
    static constexpr const char* kPrefix[] = {"<7>", "<7>", "<6>", "<4>", "<3>", "<2>", "<6>"};
    const char* p = kPrefix[static_cast<int>(msg.level)];
    dest.append(p, p + 3);
  }
  std::unique_ptr<custom_flag_formatter> clone() const override {
    return std::make_unique<SyslogPriorityFlag>();
  }
};

Result<spdlog::level::level_enum> LevelFromName(std::string_view name) {
  spdlog::level::level_enum lvl = spdlog::level::from_str(std::string(name));
  // from_str maps unknown names to "off"; only "off" itself may mean off.
  if (lvl == spdlog::level::off && name != "off") {
    return Status(ErrorCode::INVALID_PARAMS,
                  "unknown log level '" + std::string(name) +
                      "' (trace, debug, info, warn, error, critical, off)");
  }
  return lvl;
}

}  // namespace

bool StderrIsJournal() {
  const char* js = std::getenv("JOURNAL_STREAM");
  if (js == nullptr) return false;
  unsigned long long dev = 0, ino = 0;
  if (std::sscanf(js, "%llu:%llu", &dev, &ino) != 2) return false;
  struct stat st {};
  if (fstat(STDERR_FILENO, &st) != 0) return false;
  return st.st_dev == dev && st.st_ino == ino;
}

Status InitLogging(std::string_view component, std::string_view level) {
  Result<spdlog::level::level_enum> lvl = LevelFromName(level);
  if (!lvl.ok()) return lvl.status();
  auto sink = std::make_shared<spdlog::sinks::stderr_color_sink_mt>();
  auto logger = std::make_shared<spdlog::logger>(std::string(component), sink);
  auto formatter = std::make_unique<spdlog::pattern_formatter>();
  if (StderrIsJournal()) {
    formatter->add_flag<SyslogPriorityFlag>('*').set_pattern("%*%l %n: %v");
  } else {
    formatter->set_pattern("%Y-%m-%dT%H:%M:%S.%e %^%-5l%$ %n: %v");
  }
  logger->set_formatter(std::move(formatter));
  logger->set_level(*lvl);
  logger->flush_on(spdlog::level::warn);
  spdlog::set_default_logger(logger);
  return Status::Ok();
}

Status SetLogLevel(std::string_view level) {
  Result<spdlog::level::level_enum> lvl = LevelFromName(level);
  if (!lvl.ok()) return lvl.status();
  spdlog::set_level(*lvl);
  return Status::Ok();
}

}  // namespace kvcached
