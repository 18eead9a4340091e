#include "core/error_code.h"

#include <iterator>

namespace kvcached {
namespace {

using E = ErrorCode;

// The one table. HTTP statuses follow RFC 9110 meanings; exit codes follow
// sysexits.h where a value fits (69 unavailable, 70 software, 74 I/O, 75
// temporary failure, 76 protocol, 77 permission, 78 configuration).
constexpr ErrorInfo kTable[] = {
    {E::OK, "OK", "success", 200, 0},
    {E::INTERNAL_ERROR, "INTERNAL_ERROR", "internal error", 500, 70},
    {E::BUFFER_OVERFLOW, "BUFFER_OVERFLOW", "data larger than the buffer or limit", 413, 1},
    {E::SHARD_INDEX_OUT_OF_RANGE, "SHARD_INDEX_OUT_OF_RANGE", "shard index out of range", 400, 1},
    {E::SEGMENT_NOT_FOUND, "SEGMENT_NOT_FOUND", "segment not found", 404, 1},
    {E::SEGMENT_ALREADY_EXISTS, "SEGMENT_ALREADY_EXISTS", "segment already mounted", 409, 1},
    {E::CLIENT_NOT_FOUND, "CLIENT_NOT_FOUND", "client not found", 404, 1},
    {E::NO_AVAILABLE_HANDLE, "NO_AVAILABLE_HANDLE", "no space left in the pool", 507, 75},
    {E::INVALID_VERSION, "INVALID_VERSION", "protocol version mismatch", 400, 76},
    {E::INVALID_KEY, "INVALID_KEY", "invalid key", 400, 1},
    {E::WRITE_FAIL, "WRITE_FAIL", "write failed", 500, 74},
    {E::INVALID_PARAMS, "INVALID_PARAMS", "invalid parameters", 400, 78},
    {E::ILLEGAL_CLIENT, "ILLEGAL_CLIENT", "client not authorised", 401, 77},
    {E::INVALID_WRITE, "INVALID_WRITE", "invalid write", 400, 1},
    {E::INVALID_READ, "INVALID_READ", "invalid read", 400, 1},
    {E::INVALID_REPLICA, "INVALID_REPLICA", "invalid replica", 400, 1},
    {E::REPLICA_IS_NOT_READY, "REPLICA_IS_NOT_READY", "replica not ready", 409, 75},
    {E::OBJECT_NOT_FOUND, "OBJECT_NOT_FOUND", "object not found", 404, 1},
    {E::OBJECT_ALREADY_EXISTS, "OBJECT_ALREADY_EXISTS", "object already exists", 409, 1},
    {E::OBJECT_HAS_LEASE, "OBJECT_HAS_LEASE", "object is leased", 409, 75},
    {E::LEASE_EXPIRED, "LEASE_EXPIRED", "lease expired before the transfer finished", 409, 75},
    {E::TRANSFER_FAIL, "TRANSFER_FAIL", "transfer failed", 502, 74},
    {E::CHECKSUM_MISMATCH, "CHECKSUM_MISMATCH", "checksum mismatch", 502, 74},
    {E::RPC_FAIL, "RPC_FAIL", "RPC failed", 502, 69},
    {E::RPC_TIMEOUT, "RPC_TIMEOUT", "RPC timed out", 504, 75},
    {E::ETCD_OPERATION_ERROR, "ETCD_OPERATION_ERROR", "etcd operation failed", 502, 69},
    {E::UNAVAILABLE_IN_CURRENT_STATUS, "UNAVAILABLE_IN_CURRENT_STATUS",
     "unavailable in the current state", 503, 75},
    {E::UNAVAILABLE_IN_CURRENT_MODE, "UNAVAILABLE_IN_CURRENT_MODE",
     "unavailable in the current mode", 503, 69},
    {E::NOT_SUPPORTED, "NOT_SUPPORTED", "not supported", 501, 69},
    {E::TASK_NOT_FOUND, "TASK_NOT_FOUND", "task not found", 404, 1},
    {E::TASK_PENDING_LIMIT_EXCEEDED, "TASK_PENDING_LIMIT_EXCEEDED",
     "too many unfinished tasks", 429, 75},
};

}  // namespace

const ErrorInfo* ErrorTableBegin() { return std::begin(kTable); }
const ErrorInfo* ErrorTableEnd() { return std::end(kTable); }

const ErrorInfo& Info(ErrorCode code) {
  for (const ErrorInfo& row : kTable) {
    if (row.code == code) return row;
  }
  return kTable[1];  // INTERNAL_ERROR
}

std::string_view ErrorName(ErrorCode code) { return Info(code).name; }
std::string_view ErrorText(ErrorCode code) { return Info(code).text; }
int HttpStatus(ErrorCode code) { return Info(code).http_status; }
int ExitCode(ErrorCode code) { return Info(code).exit_code; }

std::optional<ErrorCode> ErrorCodeFromInt(int32_t value) {
  for (const ErrorInfo& row : kTable) {
    if (static_cast<int32_t>(row.code) == value) return row.code;
  }
  return std::nullopt;
}

std::optional<ErrorCode> ErrorCodeFromName(std::string_view name) {
  for (const ErrorInfo& row : kTable) {
    if (row.name == name) return row.code;
  }
  return std::nullopt;
}

}  // namespace kvcached
