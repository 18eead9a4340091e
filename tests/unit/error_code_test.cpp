#include "core/error_code.h"

#include <doctest/doctest.h>

#include <set>

#include "core/status.h"

namespace kvcached {
namespace {

TEST_CASE("error codes keep Mooncake's numeric values") {
  CHECK(static_cast<int>(ErrorCode::OK) == 0);
  CHECK(static_cast<int>(ErrorCode::INTERNAL_ERROR) == -1);
  CHECK(static_cast<int>(ErrorCode::BUFFER_OVERFLOW) == -10);
  CHECK(static_cast<int>(ErrorCode::SEGMENT_NOT_FOUND) == -101);
  CHECK(static_cast<int>(ErrorCode::NO_AVAILABLE_HANDLE) == -200);
  CHECK(static_cast<int>(ErrorCode::INVALID_KEY) == -400);
  CHECK(static_cast<int>(ErrorCode::INVALID_PARAMS) == -600);
  CHECK(static_cast<int>(ErrorCode::OBJECT_NOT_FOUND) == -704);
  CHECK(static_cast<int>(ErrorCode::OBJECT_ALREADY_EXISTS) == -705);
  CHECK(static_cast<int>(ErrorCode::LEASE_EXPIRED) == -707);
  CHECK(static_cast<int>(ErrorCode::CHECKSUM_MISMATCH) == -801);
  CHECK(static_cast<int>(ErrorCode::RPC_TIMEOUT) == -901);
  CHECK(static_cast<int>(ErrorCode::UNAVAILABLE_IN_CURRENT_STATUS) == -1010);
  CHECK(static_cast<int>(ErrorCode::NOT_SUPPORTED) == -1012);
  CHECK(static_cast<int>(ErrorCode::TASK_NOT_FOUND) == -1400);
  CHECK(static_cast<int>(ErrorCode::TASK_PENDING_LIMIT_EXCEEDED) == -1401);
}

TEST_CASE("the table has one row per code, unique names, sane HTTP statuses") {
  std::set<int> values;
  std::set<std::string_view> names;
  for (const ErrorInfo* row = ErrorTableBegin(); row != ErrorTableEnd(); ++row) {
    CAPTURE(row->name);
    CHECK(values.insert(static_cast<int>(row->code)).second);
    CHECK(names.insert(row->name).second);
    CHECK(!row->text.empty());
    CHECK(row->http_status >= 200);
    CHECK(row->http_status <= 599);
    CHECK((row->code == ErrorCode::OK) == (row->http_status == 200));
    CHECK((row->code == ErrorCode::OK) == (row->exit_code == 0));
    CHECK(ErrorCodeFromInt(static_cast<int>(row->code)) == row->code);
    CHECK(ErrorCodeFromName(row->name) == row->code);
    CHECK(&Info(row->code) == row);
  }
  CHECK(values.size() == 31);
}

TEST_CASE("lookups of unknown values fail cleanly") {
  CHECK_FALSE(ErrorCodeFromInt(-12345).has_value());
  CHECK_FALSE(ErrorCodeFromName("NOPE").has_value());
  CHECK(Info(static_cast<ErrorCode>(-12345)).code == ErrorCode::INTERNAL_ERROR);
  CHECK(HttpStatus(ErrorCode::OBJECT_NOT_FOUND) == 404);
  CHECK(HttpStatus(ErrorCode::NO_AVAILABLE_HANDLE) == 507);
  CHECK(HttpStatus(ErrorCode::ILLEGAL_CLIENT) == 401);
}

TEST_CASE("Status and Result carry code and message") {
  Status ok;
  CHECK(ok.ok());
  CHECK(ok.ToString() == "OK");
  Status bad(ErrorCode::OBJECT_NOT_FOUND, "no key 'a'");
  CHECK_FALSE(bad.ok());
  CHECK(bad.ToString() == "OBJECT_NOT_FOUND: no key 'a'");
  Result<int> r = 5;
  CHECK(r.ok());
  CHECK(*r == 5);
  CHECK(r.code() == ErrorCode::OK);
  Result<int> e(ErrorCode::INVALID_KEY, "empty");
  CHECK_FALSE(e.ok());
  CHECK(e.code() == ErrorCode::INVALID_KEY);
  CHECK(e.status().message() == "empty");
}

}  // namespace
}  // namespace kvcached
