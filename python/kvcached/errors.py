"""Mooncake Store's error codes, as kvcached returns them (the one table is
src/core/error_code.cpp; kvcached.h has the same values as KVCACHED_*
macros, and the ctest errors/copies fails when this list, kvcached.h or the
docs disagree with the table). Plain ints, so code written against Mooncake
keeps comparing results with its own numbers."""

OK = 0
INTERNAL_ERROR = -1
BUFFER_OVERFLOW = -10
SHARD_INDEX_OUT_OF_RANGE = -100
SEGMENT_NOT_FOUND = -101
SEGMENT_ALREADY_EXISTS = -102
CLIENT_NOT_FOUND = -103
NO_AVAILABLE_HANDLE = -200
INVALID_VERSION = -300
INVALID_KEY = -400
WRITE_FAIL = -500
INVALID_PARAMS = -600
ILLEGAL_CLIENT = -601
INVALID_WRITE = -700
INVALID_READ = -701
INVALID_REPLICA = -702
REPLICA_IS_NOT_READY = -703
OBJECT_NOT_FOUND = -704
OBJECT_ALREADY_EXISTS = -705
OBJECT_HAS_LEASE = -706
LEASE_EXPIRED = -707
TRANSFER_FAIL = -800
CHECKSUM_MISMATCH = -801
RPC_FAIL = -900
RPC_TIMEOUT = -901
ETCD_OPERATION_ERROR = -1000
UNAVAILABLE_IN_CURRENT_STATUS = -1010
UNAVAILABLE_IN_CURRENT_MODE = -1011
NOT_SUPPORTED = -1012
TASK_NOT_FOUND = -1400
TASK_PENDING_LIMIT_EXCEEDED = -1401

NAMES = {v: k for k, v in globals().items() if k.isupper() and isinstance(v, int)}


def error_name(code):
    """"OBJECT_NOT_FOUND" for -704; "OK" for 0; "UNKNOWN(<n>)" otherwise."""
    return NAMES.get(code, f"UNKNOWN({code})")

__all__ = list(NAMES.values()) + ["error_name"]
