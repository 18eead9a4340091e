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


def test_settings_table_through_the_abi():
    import json
    table = json.loads(L.kvcached_settings_json().decode())
    by_name = {s["name"]: s for s in table}
    names = {n for s in table for n in [s["name"], *s["aliases"]]}
    # Every name kvcached_open_settings took before the table existed.
    assert names >= {
        "local_hostname", "metadata_server", "global_segment_size", "local_buffer_size",
        "protocol", "rdma_devices", "device_name", "master_server_addr",
        "master_server_address", "token", "token_file", "transport", "checksums",
        "rpc_timeout_ms", "io_timeout_ms", "connect_timeout_ms", "tcp_streams",
        "tcp_split_bytes", "segment_bind_host", "segment_name", "hugepages",
        "ping_interval_ms", "copy_threads", "config_path"}
    # Mooncake's variables and file fields, as its loader reads them.
    assert {s["mooncake_env"]: s["json_key"] for s in table if s["mooncake_env"]} == {
        "MOONCAKE_MASTER": "master_server_address",
        "MOONCAKE_LOCAL_HOSTNAME": "local_hostname",
        "MOONCAKE_TE_META_DATA_SERVER": "metadata_server",
        "MOONCAKE_GLOBAL_SEGMENT_SIZE": "global_segment_size",
        "MOONCAKE_LOCAL_BUFFER_SIZE": "local_buffer_size",
        "MOONCAKE_PROTOCOL": "protocol",
        "MOONCAKE_DEVICE": "device_name",
        "MOONCAKE_TENANT_ID": "tenant_id",
        "MOONCAKE_ENABLE_SSD_OFFLOAD": "enable_ssd_offload",
        "MOONCAKE_OFFLOAD_FILE_STORAGE_PATH": "ssd_offload_path"}
    assert by_name["transport"]["choices"] == ["auto", "shm", "tcp", "rdma"]
    assert by_name["tcp_streams"]["min"] == 1 and by_name["tcp_streams"]["max"] == 64
    assert by_name["tcp_streams"]["default"] == "4"
    # The Python module reads the same table.
    from kvcached import store
    assert store._SETTINGS == names


def test_parse_size_through_the_abi():
    from kvcached.sglang import parse_size
    assert parse_size("4gb") == 4 << 30 and parse_size(" 512 MiB ") == 512 << 20
    assert parse_size("1.5k") == 1536 and parse_size("4096") == 4096
    for bad in ("lots", "-1", "1.5", "", "99999999999999999999"):
        with pytest.raises(ValueError):
            parse_size(bad)
    out = ctypes.c_uint64()
    assert L.kvcached_parse_size(b"lots", ctypes.byref(out)) == errors.INVALID_PARAMS
    assert "lots" in _lib.last_error()
    assert L.kvcached_parse_size(None, ctypes.byref(out)) == errors.INVALID_PARAMS


def test_open_settings_ranges(cluster):
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

    # A contributed segment is at least 1 MiB, as `kvcached store` requires.
    rc, err = open_with(master_server_addr=cluster.rpc, global_segment_size="512KiB")
    assert rc == errors.INVALID_PARAMS and "global_segment_size" in err
    for name, value in (("tcp_split_bytes", "1k"), ("rdma_gid_index", 256),
                        ("rpc_timeout_ms", 0), ("protocol", "udp")):
        rc, err = open_with(master_server_addr=cluster.rpc, **{name: value})
        assert rc == errors.INVALID_PARAMS and name in err, (name, err)
    # ping_interval_ms's range holds only for a client contributing a segment.
    assert open_with(master_server_addr=cluster.rpc, ping_interval_ms=10)[0] == 0
    rc, err = open_with(master_server_addr=cluster.rpc, ping_interval_ms=10,
                        global_segment_size="4MiB")
    assert rc == errors.INVALID_PARAMS and "ping_interval_ms" in err
    # The C struct goes through the same checks.
    config = _lib.KvcachedConfig()
    L.kvcached_config_init(ctypes.byref(config))
    config.master_server_addr = cluster.rpc.encode()
    config.global_segment_size = 4096
    out = ctypes.c_void_p()
    assert L.kvcached_open(ctypes.byref(config), ctypes.byref(out)) == errors.INVALID_PARAMS
    assert "global_segment_size" in _lib.last_error() and not out.value
    config.global_segment_size = 0
    config.transport = b"carrier-pigeon"
    assert L.kvcached_open(ctypes.byref(config), ctypes.byref(out)) == errors.INVALID_PARAMS
    assert "transport" in _lib.last_error()
