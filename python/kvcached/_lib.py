"""Loads libkvcached.so (the C ABI of include/kvcached/kvcached.h) and declares
its functions for ctypes. Responsible for finding the library and for the
argument types; not for any policy (store.py has that).

Lookup order, first hit wins:
  1. $KVCACHED_LIBRARY, a path to the library (when set, only that one: a
     library that does not load is an ImportError, not a reason to look on);
  2. the build tree next to this source checkout: <repo>/build/libkvcached.so
     when this file is <repo>/python/kvcached/_lib.py;
  3. the system loader, by soname libkvcached.so.0 (installed packages).

ctypes releases the GIL for the duration of every call into the library, so
threads calling the store run in parallel. Import-time only; thread-safe after.
"""

import ctypes
import json
import os
from ctypes import (POINTER, c_char_p, c_int, c_int32, c_int64, c_size_t, c_uint32, c_uint64,
                    c_void_p)

SONAME = "libkvcached.so.0"

_HERE = os.path.dirname(os.path.abspath(__file__))
_REPO = os.path.dirname(os.path.dirname(_HERE))


class KvcachedConfig(ctypes.Structure):
    """kvcached_config_t; always initialised by kvcached_config_init."""
    _fields_ = [
        ("struct_size", c_size_t),
        ("local_hostname", c_char_p),
        ("metadata_server", c_char_p),
        ("global_segment_size", c_uint64),
        ("local_buffer_size", c_uint64),
        ("protocol", c_char_p),
        ("rdma_devices", c_char_p),
        ("master_server_addr", c_char_p),
        ("token", c_char_p),
        ("transport", c_char_p),
        ("checksums", c_int32),
        ("rpc_timeout_ms", c_uint32),
        ("io_timeout_ms", c_uint32),
        ("connect_timeout_ms", c_uint32),
        ("tcp_streams", c_uint32),
        ("tcp_split_bytes", c_uint64),
        ("segment_bind_host", c_char_p),
        ("segment_name", c_char_p),
        ("hugepages", c_int32),
        ("ping_interval_ms", c_uint32),
        ("copy_threads", c_uint32),
    ]


class KvcachedReplicateConfig(ctypes.Structure):
    _fields_ = [("replica_num", c_uint32), ("preferred_segment", c_char_p)]


# Flags OR'd into KvcachedReplicateConfig.replica_num (kvcached.h).
REPLICATE_SOFT_PIN = 1 << 16
REPLICATE_HARD_PIN = 1 << 17


class KvcachedTaskId(ctypes.Structure):
    _fields_ = [("hi", c_uint64), ("lo", c_uint64)]


class KvcachedTaskInfo(ctypes.Structure):
    _fields_ = [("id", KvcachedTaskId), ("type", c_int32), ("status", c_int32),
                ("created_at_ms_epoch", c_uint64), ("last_updated_at_ms_epoch", c_uint64),
                ("assigned_client", c_void_p), ("message", c_void_p)]


class KvcachedStats(ctypes.Structure):
    _fields_ = [(name, c_uint64) for name in (
        "puts", "gets", "bytes_written", "bytes_read", "shm_transfers", "tcp_transfers",
        "checksum_mismatches", "lease_expirations", "tcp_connections_opened")]


def _candidates():
    if os.path.basename(os.path.dirname(_HERE)) == "python":  # <repo>/python/kvcached
        yield "build tree", os.path.join(_REPO, "build", "libkvcached.so")
    yield "system loader", SONAME


def _load():
    tried = []
    env = os.environ.get("KVCACHED_LIBRARY")
    if env:
        # Named explicitly: that library or none, never a different one found later.
        try:
            return ctypes.CDLL(env), env
        except OSError as e:
            raise ImportError(f"kvcached: cannot load $KVCACHED_LIBRARY={env}: {e}") from None
    for origin, path in _candidates():
        if origin == "build tree" and not os.path.exists(path):
            tried.append(f"{origin}: {path} (not there)")
            continue
        try:
            return ctypes.CDLL(path), path
        except OSError as e:
            tried.append(f"{origin}: {path} ({e})")
    raise ImportError(
        "kvcached: cannot load the kvcached C library (libkvcached.so). Tried:\n  "
        + "\n  ".join(tried)
        + "\nSet KVCACHED_LIBRARY to its path, build it (ninja -C build kvcached_shared), "
          "or install the kvcached package.")


lib, path = _load()

_i32, _i64, _p = c_int32, c_int64, c_void_p
_client = c_void_p
_key = c_char_p  # bytes passed straight through, with an explicit length

_SIGNATURES = {
    "kvcached_version": (c_char_p, []),
    "kvcached_last_error": (c_char_p, []),
    "kvcached_error_name": (c_char_p, [_i32]),
    "kvcached_set_log_level": (_i32, [c_char_p]),
    "kvcached_settings_json": (c_char_p, []),
    "kvcached_parse_size": (_i32, [c_char_p, POINTER(c_uint64)]),
    "kvcached_config_init": (None, [POINTER(KvcachedConfig)]),
    "kvcached_open": (_i32, [POINTER(KvcachedConfig), POINTER(c_void_p)]),
    "kvcached_open_settings": (_i32, [_p, _p, c_size_t, c_int, POINTER(c_void_p)]),
    "kvcached_open_env": (_i32, [POINTER(c_void_p)]),
    "kvcached_close": (_i32, [_client]),
    "kvcached_destroy": (None, [_client]),
    "kvcached_health_check": (_i32, [_client]),
    "kvcached_host_id": (c_char_p, [_client]),
    "kvcached_segment_name": (c_char_p, [_client]),
    "kvcached_stats": (_i32, [_client, POINTER(KvcachedStats)]),
    "kvcached_put": (_i32, [_client, _key, c_size_t, _p, c_uint64, _p]),
    "kvcached_get": (_i64, [_client, _key, c_size_t, _p, c_uint64, POINTER(c_uint64)]),
    "kvcached_put_from": (_i32, [_client, _key, c_size_t, _p, c_uint64, _p]),
    "kvcached_get_into": (_i64, [_client, _key, c_size_t, _p, c_uint64]),
    "kvcached_exist": (_i32, [_client, _key, c_size_t]),
    "kvcached_get_size": (_i64, [_client, _key, c_size_t]),
    "kvcached_remove": (_i32, [_client, _key, c_size_t, c_int]),
    "kvcached_remove_all": (_i64, [_client, c_int]),
    "kvcached_remove_by_regex": (_i64, [_client, c_char_p, c_int]),
    "kvcached_upsert_from": (_i32, [_client, _key, c_size_t, _p, c_uint64, _p]),
    # Arrays are passed as addresses (ints) or ctypes arrays.
    "kvcached_batch_put_from": (_i32, [_client, c_size_t, _p, _p, _p, _p, _p, _p]),
    "kvcached_batch_upsert_from": (_i32, [_client, c_size_t, _p, _p, _p, _p, _p, _p]),
    "kvcached_batch_get_into": (_i32, [_client, c_size_t, _p, _p, _p, _p, _p]),
    "kvcached_batch_exist": (_i32, [_client, c_size_t, _p, _p, _p]),
    "kvcached_batch_replica_desc_json": (_i32, [_client, c_size_t, _p, _p, POINTER(c_void_p)]),
    "kvcached_free_string": (None, [c_void_p]),
    "kvcached_register_buffer": (_i32, [_client, _p, c_uint64]),
    "kvcached_unregister_buffer": (_i32, [_client, _p]),
    "kvcached_mount_segment": (_i32, [_client, c_char_p, c_uint64, c_uint64, c_char_p,
                                      POINTER(c_void_p), POINTER(c_uint64)]),
    "kvcached_unmount_segments": (_i32, [_client, c_size_t, _p, c_int]),
    "kvcached_create_copy_task": (_i32, [_client, c_char_p, _p, c_size_t,
                                         POINTER(KvcachedTaskId)]),
    "kvcached_create_move_task": (_i32, [_client, c_char_p, c_char_p, c_char_p,
                                         POINTER(KvcachedTaskId)]),
    "kvcached_query_task": (_i32, [_client, KvcachedTaskId, POINTER(KvcachedTaskInfo)]),
}

for _name, (_restype, _argtypes) in _SIGNATURES.items():
    _fn = getattr(lib, _name)
    _fn.restype = _restype
    _fn.argtypes = _argtypes


def last_error():
    """The text of the calling thread's last failed call into the library."""
    return lib.kvcached_last_error().decode(errors="replace")


def version():
    return lib.kvcached_version().decode()


def settings():
    """The library's client settings table (kvcached_settings_json): a list
    of dicts with name, aliases, mooncake_env, kvcached_env, json_key, kind,
    min, max, choices, default and help. Read once."""
    global _settings
    if _settings is None:
        _settings = json.loads(lib.kvcached_settings_json().decode())
    return _settings


_settings = None


def parse_size(text):
    """Bytes in a size string, by the library's grammar ("4gb", "512 MiB",
    "1.5g"; binary multiples). ValueError with the library's reason."""
    out = c_uint64()
    if lib.kvcached_parse_size(str(text).encode(), ctypes.byref(out)) != 0:
        raise ValueError(last_error())
    return out.value
