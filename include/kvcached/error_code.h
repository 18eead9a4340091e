// ErrorCode: the one list of outcomes every kvcached component reports, with
// Mooncake Store's numeric values so a Mooncake user's error handling keeps
// working. The single table from a code to its name, its text, the HTTP
// status an HTTP front end answers with, and the process exit code a command
// returns is src/core/error_code.cpp, read through the functions below; the
// ctest errors/copies checks every other copy (this enum, kvcached.h's
// KVCACHED_* macros, python/kvcached/errors.py, docs) against it. Pure data;
// safe from any thread.
#pragma once

#include <cstdint>
#include <optional>
#include <string_view>

namespace kvcached {

enum class ErrorCode : int32_t {
  OK = 0,
  INTERNAL_ERROR = -1,
  BUFFER_OVERFLOW = -10,
  SHARD_INDEX_OUT_OF_RANGE = -100,
  SEGMENT_NOT_FOUND = -101,
  SEGMENT_ALREADY_EXISTS = -102,
  CLIENT_NOT_FOUND = -103,
  NO_AVAILABLE_HANDLE = -200,
  INVALID_VERSION = -300,
  INVALID_KEY = -400,
  WRITE_FAIL = -500,
  INVALID_PARAMS = -600,
  ILLEGAL_CLIENT = -601,
  INVALID_WRITE = -700,
  INVALID_READ = -701,
  INVALID_REPLICA = -702,
  REPLICA_IS_NOT_READY = -703,
  OBJECT_NOT_FOUND = -704,
  OBJECT_ALREADY_EXISTS = -705,
  OBJECT_HAS_LEASE = -706,
  LEASE_EXPIRED = -707,
  TRANSFER_FAIL = -800,
  CHECKSUM_MISMATCH = -801,
  RPC_FAIL = -900,
  RPC_TIMEOUT = -901,
  ETCD_OPERATION_ERROR = -1000,
  UNAVAILABLE_IN_CURRENT_STATUS = -1010,
  UNAVAILABLE_IN_CURRENT_MODE = -1011,
  NOT_SUPPORTED = -1012,
  TASK_NOT_FOUND = -1400,
  TASK_PENDING_LIMIT_EXCEEDED = -1401,
};

// One row of the table. `http_status` is what an HTTP front end answers when
// an operation fails with this code; `exit_code` what a command exits with.
struct ErrorInfo {
  ErrorCode code;
  std::string_view name;  // "OBJECT_NOT_FOUND"
  std::string_view text;  // "object not found"
  int http_status;
  int exit_code;
};

// Process exit codes used by every subcommand (sysexits.h values where one fits).
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;
inline constexpr int kExitUsage = 2;         // bad command line
inline constexpr int kExitUnavailable = 69;  // EX_UNAVAILABLE: not built, or a peer is down
inline constexpr int kExitSoftware = 70;     // EX_SOFTWARE: internal error
inline constexpr int kExitConfig = 78;       // EX_CONFIG: bad configuration at start-up

// The whole table, in enum order.
const ErrorInfo* ErrorTableBegin();
const ErrorInfo* ErrorTableEnd();

// Lookups. An unknown numeric value maps to INTERNAL_ERROR's row for
// Info(), and to nullopt for FromInt().
const ErrorInfo& Info(ErrorCode code);
std::string_view ErrorName(ErrorCode code);
std::string_view ErrorText(ErrorCode code);
int HttpStatus(ErrorCode code);
int ExitCode(ErrorCode code);
std::optional<ErrorCode> ErrorCodeFromInt(int32_t value);
std::optional<ErrorCode> ErrorCodeFromName(std::string_view name);

}  // namespace kvcached
