"""The C ABI (include/kvcached/kvcached.h) itself: the C program capi_check
(compiled as C, so the header is proven plain C) against the running pool,
and the same argument checks made through ctypes: NULL keys, NULL buffers
and zero sizes return INVALID_PARAMS with a last-error text naming the
problem, before anything is sent. Only kvcached_* symbols are exported."""

import ctypes
import os
import subprocess

import pytest

import kvcached
from conftest import HOST_ID
from kvcached import _lib, errors

L = _lib.lib


def test_capi_check_program(cluster):
    program = os.environ.get("KVCACHED_CAPI_CHECK")
    if not program:
        pytest.skip("KVCACHED_CAPI_CHECK is not set (ctest sets it)")
    env = {k: v for k, v in os.environ.items() if k != "LD_PRELOAD"}  # it links its own runtime
    out = subprocess.run([program, cluster.rpc, HOST_ID], capture_output=True, text=True,
                         timeout=60, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "all checks passed (with a pool)" in out.stdout


def test_bad_arguments_through_ctypes(store, prefix):
    h = store._handle
    key = (prefix + "k").encode()
    buf = ctypes.create_string_buffer(64)
    cases = [
        (lambda: L.kvcached_put(h, None, 3, buf, 64, None), "key is NULL"),
        (lambda: L.kvcached_put(h, key, len(key), None, 64, None), "buffer is NULL"),
        (lambda: L.kvcached_put(h, key, len(key), buf, 0, None), "size is 0"),
        (lambda: L.kvcached_put_from(h, key, len(key), None, 64, None), "buffer is NULL"),
        (lambda: L.kvcached_get_into(h, None, 1, buf, 64), "key is NULL"),
        (lambda: L.kvcached_get_into(h, key, len(key), None, 64), "buffer is NULL"),
        (lambda: L.kvcached_get_into(h, key, len(key), buf, 0), "size is 0"),
        (lambda: L.kvcached_exist(None, key, len(key)), "client is NULL"),
        (lambda: L.kvcached_get_size(h, None, 0), "key is NULL"),
        (lambda: L.kvcached_remove(h, None, 0, 0), "key is NULL"),
        (lambda: L.kvcached_register_buffer(h, None, 64), ""),
        (lambda: L.kvcached_batch_exist(h, 1, None, None, None), "NULL"),
    ]
    for call, text in cases:
        assert call() == errors.INVALID_PARAMS
        err = _lib.last_error()
        assert err.startswith("INVALID_PARAMS") and text in err, err
    # A success clears the text.
    assert L.kvcached_exist(h, key, len(key)) == 0
    assert _lib.last_error() == ""
    # A missing key: the code and a text naming it.
    assert L.kvcached_get_into(h, key, len(key), buf, 64) == errors.OBJECT_NOT_FOUND
    assert "OBJECT_NOT_FOUND" in _lib.last_error() and prefix in _lib.last_error()


def test_last_error_is_per_thread(store):
    import threading
    assert L.kvcached_put(store._handle, None, 1, None, 0, None) == errors.INVALID_PARAMS
    seen = []
    t = threading.Thread(target=lambda: seen.append(_lib.last_error()))
    t.start()
    t.join()
    assert seen == [""] and _lib.last_error() != ""


def test_only_c_symbols_are_exported():
    out = subprocess.run(["nm", "-D", "--defined-only", kvcached.library_path],
                         capture_output=True, text=True)
    if out.returncode != 0:
        pytest.skip("nm is not available")
    names = [line.split()[-1] for line in out.stdout.splitlines() if line.strip()]
    exported = [n for n in names if not n.startswith("KVCACHED_")]
    assert exported and all(n.startswith("kvcached_") for n in exported), \
        [n for n in exported if not n.startswith("kvcached_")][:20]


def test_open_settings_names(cluster):
    def open_with(**settings):
        names = [k.encode() for k in settings]
        values = [str(v).encode() for v in settings.values()]
        out = ctypes.c_void_p()
        rc = L.kvcached_open_settings((ctypes.c_char_p * len(names))(*names),
                                      (ctypes.c_char_p * len(values))(*values), len(names), 0,
                                      ctypes.byref(out))
        if out.value:
            L.kvcached_destroy(out.value)
        return rc, _lib.last_error()

    assert open_with(master_server_addr=cluster.rpc, transport="tcp", checksums="false",
                     rpc_timeout_ms="2000", tcp_streams=2, tcp_split_bytes="256KiB",
                     copy_threads=3)[0] == 0
    rc, err = open_with(master_server_addr=cluster.rpc, transport="rdma-please")
    assert rc == errors.INVALID_PARAMS and "transport" in err
    rc, err = open_with(master_server_addr=cluster.rpc, tcp_streams="many")
    assert rc == errors.INVALID_PARAMS and "tcp_streams" in err
    rc, err = open_with(master_server_addr=cluster.rpc, tcp_streams=0)
    assert rc == errors.INVALID_PARAMS
    rc, err = open_with(master_server_addr=cluster.rpc, copy_threads="-1")
    assert rc == errors.INVALID_PARAMS and "copy_threads" in err
    rc, err = open_with(master_server_addr=cluster.rpc, copy_threads=65)
    assert rc == errors.INVALID_PARAMS and "copy_threads" in err
    rc, err = open_with(master_server_addr=cluster.rpc, config_path="/nonexistent.json")
    assert rc == errors.INVALID_PARAMS and "/nonexistent.json" in err
