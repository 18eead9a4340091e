"""MooncakeDistributedStore's methods, one by one, against a real master and
store: results, return codes for missing keys, bad arguments and a closed
store, and Mooncake's conventions (a put of an existing key returns 0 and
leaves it unchanged; is_exist is 1/0/negative)."""

import ctypes
import inspect
import threading

import pytest

import kvcached
from kvcached import MooncakeDistributedStore, ReplicateConfig, errors


def test_module_exports_codes_and_versions():
    assert kvcached.OBJECT_NOT_FOUND == -704
    assert kvcached.INVALID_PARAMS == -600
    assert kvcached.errors.NO_AVAILABLE_HANDLE == -200
    assert kvcached.errors.UNAVAILABLE_IN_CURRENT_STATUS == -1010
    assert errors.error_name(-704) == "OBJECT_NOT_FOUND"
    assert kvcached.library_version() == kvcached.__version__
    assert "libkvcached" in kvcached.library_path


def test_signatures_match_mooncake():
    sig = lambda name: list(inspect.signature(getattr(MooncakeDistributedStore, name)).parameters)
    assert sig("setup")[:8] == ["self", "local_hostname", "metadata_server", "global_segment_size",
                                "local_buffer_size", "protocol", "rdma_devices",
                                "master_server_addr"]
    assert sig("put") == ["self", "key", "value", "config"]
    assert sig("put_from") == ["self", "key", "buffer_ptr", "size", "config"]
    assert sig("get_into") == ["self", "key", "buffer_ptr", "size"]
    assert sig("batch_put_from") == ["self", "keys", "buffer_ptrs", "sizes", "config"]
    assert sig("batch_get_into") == ["self", "keys", "buffer_ptrs", "sizes"]
    assert sig("remove") == ["self", "key", "force"]
    assert sig("remove_all") == ["self", "force"]
    rc = ReplicateConfig()
    assert rc.replica_num == 1 and rc.preferred_segment == "" and rc.preferred_segments == []
    assert not hasattr(rc, "group_ids")  # SGLang probes for it and falls back without


def test_put_get_and_existing_key_unchanged(store, prefix):
    k = prefix + "a"
    assert store.is_exist(k) == 0
    assert store.get(k) == b""
    assert store.get_size(k) == errors.OBJECT_NOT_FOUND
    assert store.put(k, b"first value") == 0
    assert store.is_exist(k) == 1
    assert store.get_size(k) == len(b"first value")
    assert store.get(k) == b"first value"
    # Mooncake's convention: 0, and the object keeps its bytes and size.
    assert store.put(k, b"second, longer value") == 0
    assert store.get(k) == b"first value"
    # bytes-like values of every kind.
    assert store.put(prefix + "ba", bytearray(b"from a bytearray")) == 0
    assert store.put(prefix + "mv", memoryview(b"0123456789")[2:8]) == 0
    assert store.get(prefix + "ba") == b"from a bytearray"
    assert store.get(prefix + "mv") == b"234567"
    # A str key with non-ASCII characters, and a binary value.
    value = bytes(range(256)) * 64
    assert store.put(prefix + "ключ", value) == 0
    assert store.get(prefix + "ключ") == value


def test_bad_arguments(store, prefix):
    assert store.put(prefix + "empty", b"") == errors.INVALID_PARAMS
    assert store.put("", b"x") == errors.INVALID_KEY
    assert store.put("k" * 5000, b"x") == errors.INVALID_KEY
    assert store.is_exist("") == errors.INVALID_KEY
    with pytest.raises(TypeError):
        store.put(123, b"x")
    with pytest.raises(TypeError):
        store.put(prefix + "x", "not bytes")
    with pytest.raises(TypeError):
        store.put(prefix + "x", b"v", config="not a ReplicateConfig")
    buf = ctypes.create_string_buffer(64)
    addr = ctypes.addressof(buf)
    assert store.put_from(prefix + "z", 0, 64) == errors.INVALID_PARAMS
    assert store.put_from(prefix + "z", addr, 0) == errors.INVALID_PARAMS
    assert store.get_into(prefix + "z", 0, 64) == errors.INVALID_PARAMS
    assert store.get_into(prefix + "z", addr, 0) == errors.INVALID_PARAMS
    assert store.register_buffer(0, 64) == errors.INVALID_PARAMS
    assert store.register_buffer(addr, 0) == errors.INVALID_PARAMS
    assert store.unregister_buffer(addr) == errors.INVALID_PARAMS
    # Batches: mismatched lengths fail every key; a bad entry fails only itself.
    assert store.batch_put_from([prefix + "a", prefix + "b"], [addr], [64]) == \
        [errors.INVALID_PARAMS] * 2
    assert store.batch_get_into([prefix + "a"], [addr, addr], [64]) == [errors.INVALID_PARAMS]
    assert store.put_batch([prefix + "a"], []) == errors.INVALID_PARAMS
    assert store.batch_put_from([prefix + "ok", prefix + "null", prefix + "zero"],
                                [addr, 0, addr], [64, 64, 0]) == \
        [0, errors.INVALID_PARAMS, errors.INVALID_PARAMS]
    assert store.is_exist(prefix + "ok") == 1
    assert store.is_exist(prefix + "null") == 0


def test_get_into_too_small_writes_nothing(store, prefix):
    k = prefix + "big"
    assert store.put(k, b"x" * 1000) == 0
    buf = ctypes.create_string_buffer(b"\xab" * 100, 100)
    assert store.get_into(k, ctypes.addressof(buf), 100) == errors.INVALID_PARAMS
    assert buf.raw == b"\xab" * 100
    assert store.get_into(prefix + "missing", ctypes.addressof(buf), 100) == \
        errors.OBJECT_NOT_FOUND


def test_batches_copying(store, prefix):
    keys = [f"{prefix}{i}" for i in range(20)]
    values = [bytes([i]) * (100 + i) for i in range(20)]
    assert store.put_batch(keys, values) == 0
    assert store.get_batch(keys) == values
    assert store.get_batch([keys[0], prefix + "missing", keys[3]]) == [values[0], b"", values[3]]
    assert store.batch_is_exist(keys[:3] + [prefix + "missing"]) == [1, 1, 1, 0]
    assert store.batch_is_exist([]) == []
    assert store.put_batch([], []) == 0
    assert store.get_batch([]) == []
    # A batch with a bad key reports that key's code.
    assert store.put_batch([prefix + "new", ""], [b"a", b"b"]) == errors.INVALID_KEY
    assert store.is_exist(prefix + "new") == 1


def test_remove_and_leases(store, prefix):
    k = prefix + "r"
    assert store.remove(k) == errors.OBJECT_NOT_FOUND
    assert store.put(k, b"v") == 0
    # A get's lease ends when the get is done: a plain remove right after it
    # succeeds (a reader still in its transfer would make it OBJECT_HAS_LEASE).
    assert store.get(k) == b"v"
    assert store.remove(k) == 0
    assert store.is_exist(k) == 0
    assert store.put(k, b"v") == 0
    assert store.remove(k, force=True) == 0
    assert store.is_exist(k) == 0
    assert store.put(k, b"v2") == 0
    assert store.get(k) == b"v2"  # removed keys can be put again


def test_remove_all(fresh_cluster):
    c = fresh_cluster("64MiB")
    s = MooncakeDistributedStore()
    assert s.setup(*c.setup_args()) == 0
    for i in range(5):
        assert s.put(f"ra-{i}", b"v" * 10) == 0
    assert s.is_exist("ra-1") == 1  # a check leases nothing
    assert s.get("ra-0") == b"v" * 10  # a read that is done holds no lease
    assert s.remove_all() == 5
    assert s.remove_all(force=True) == 0
    assert s.remove_all() == 0
    assert s.batch_is_exist([f"ra-{i}" for i in range(5)]) == [0] * 5
    s.close()


def test_replicate_config(fresh_cluster):
    c = fresh_cluster("64MiB")
    second = c.add_store("64MiB")
    s = MooncakeDistributedStore()
    assert s.setup(*c.setup_args()) == 0
    rc = ReplicateConfig()
    rc.replica_num = 2
    assert s.put("two-copies", b"x" * 4096, rc) == 0
    assert s.get("two-copies") == b"x" * 4096
    rc = ReplicateConfig()
    rc.preferred_segment = second.segment
    assert s.put("preferred", b"y" * 4096, rc) == 0
    rc = ReplicateConfig(preferred_segments=[c.stores[0].segment])
    buf = ctypes.create_string_buffer(b"z" * 4096, 4096)
    assert s.batch_put_from(["pref-batch"], [ctypes.addressof(buf)], [4096], rc) == [0]
    rc.replica_num = 0
    assert s.put("zero-copies", b"x", rc) == errors.INVALID_PARAMS
    s.close()


def test_setup_forms_and_lifecycle(cluster, prefix):
    s = MooncakeDistributedStore()
    # Before setup: every call answers, none raises.
    assert s.health_check() == 1
    assert s.put(prefix + "a", b"v") == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.get(prefix + "a") == b""
    assert s.is_exist(prefix + "a") == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.batch_is_exist([prefix + "a"]) == [errors.UNAVAILABLE_IN_CURRENT_STATUS]
    assert s.close() == 0
    # The dict form, with Mooncake's and the JSON file's spellings and sizes as strings.
    assert s.setup({"local_hostname": "pytest-host", "metadata_server": "P2PHANDSHAKE",
                    "global_segment_size": "0", "local_buffer_size": "16mb",
                    "protocol": "tcp", "device_name": "",
                    "master_server_address": cluster.rpc, "check_server": False}) == 0
    assert s.health_check() == 0
    assert s.get_hostname() == "pytest-host"
    assert s.put(prefix + "a", b"v") == 0
    assert s.close() == 0
    assert s.close() == 0
    # After close: UNAVAILABLE_IN_CURRENT_STATUS everywhere, health 1.
    assert s.health_check() == 1
    assert s.put(prefix + "b", b"v") == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.get(prefix + "a") == b""
    assert s.get_size(prefix + "a") == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.is_exist(prefix + "a") == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.batch_is_exist([prefix + "a"]) == [errors.UNAVAILABLE_IN_CURRENT_STATUS]
    assert s.batch_get_into([prefix + "a"], [1], [1]) == [errors.UNAVAILABLE_IN_CURRENT_STATUS]
    assert s.remove(prefix + "a") == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.remove_all() == errors.UNAVAILABLE_IN_CURRENT_STATUS
    # setup again after close gives a working client.
    assert s.setup(*cluster.setup_args()) == 0
    assert s.get(prefix + "a") == b"v"
    s.close()


def test_setup_failures(cluster):
    s = MooncakeDistributedStore()
    assert s.setup("h", "P2PHANDSHAKE", 0, 0, "tcp", "", "127.0.0.1:1") == errors.RPC_FAIL
    assert s.setup("h", "P2PHANDSHAKE", 0, 0, "carrier-pigeon", "", cluster.rpc) == \
        errors.INVALID_PARAMS
    # RDMA named by a device this host lacks (no RDMA here at all).
    assert s.setup("h", "P2PHANDSHAKE", 0, 0, "rdma", "mlx5_9", cluster.rpc) == \
        errors.UNAVAILABLE_IN_CURRENT_MODE
    assert s.setup("h", "P2PHANDSHAKE", "lots", 0, "tcp", "", cluster.rpc) == \
        errors.INVALID_PARAMS
    assert s.setup({"master_server_address": cluster.rpc, "no_such_setting": 1}) == \
        errors.INVALID_PARAMS
    # SGLang passes newer keyword arguments and drops those a TypeError names.
    with pytest.raises(TypeError, match="no_such_keyword"):
        s.setup("h", "P2PHANDSHAKE", 0, 0, "tcp", "", cluster.rpc, None, no_such_keyword=1)
    # A tenant id outside the rule (docs/master.md, "Tenants") is refused.
    assert s.setup("h", "P2PHANDSHAKE", 0, 0, "tcp", "", cluster.rpc, None,
                   tenant_id="team a") == errors.INVALID_PARAMS
    assert s.setup({"master_server_address": cluster.rpc, "tenant_id": "t" * 65}) == \
        errors.INVALID_PARAMS
    assert s.health_check() == 1
    assert s.setup({"master_server_address": cluster.rpc, "tenant_id": " default "}) == 0
    assert s.close() == 0


def test_setup_with_rdma_and_no_device_works_over_tcp(cluster, prefix):
    # Mooncake's recipe sets MOONCAKE_PROTOCOL=rdma everywhere; on a host
    # without RDMA devices (this one) that is a warning, and TCP.
    s = MooncakeDistributedStore()
    assert s.setup("h", "P2PHANDSHAKE", 0, 16 << 20, "rdma", "", cluster.rpc) == 0
    assert s.put(prefix + "rdma-fallback", b"bytes") == 0
    assert s.get(prefix + "rdma-fallback") == b"bytes"
    s.close()


def test_setup_accepts_sglang_call(cluster):
    """SGLang's Mooncake backend passes an 8th positional argument (a transfer
    engine, None) and keyword options kvcached ignores."""
    s = MooncakeDistributedStore()
    assert s.setup("pytest-host", "P2PHANDSHAKE", 0, 16 << 20, "tcp", "", cluster.rpc, None,
                   enable_client_http_server=True, client_http_port=9300) == 0
    assert s.health_check() == 0
    s.close()


def test_contributed_segment(cluster, prefix):
    """global_segment_size > 0 makes the client a store, as in Mooncake."""
    s = MooncakeDistributedStore()
    assert s.setup(*cluster.setup_args(segment_size=32 << 20)) == 0
    assert s.segment_name() != ""
    rc = ReplicateConfig(preferred_segment=s.segment_name())
    assert s.put(prefix + "own", b"in my segment" * 100, rc) == 0
    other = MooncakeDistributedStore()
    assert other.setup(*cluster.setup_args()) == 0
    assert other.get(prefix + "own") == b"in my segment" * 100
    s.close()  # the segment leaves the pool with its objects
    assert other.is_exist(prefix + "own") == 0
    other.close()


def test_get_hostname_keeps_objects_local(cluster, prefix):
    """Mooncake's idiom: preferred_segment=store.get_hostname() places every
    object in the caller's own segment, though another store has room."""
    s = MooncakeDistributedStore()
    assert s.setup(*cluster.setup_args(segment_size=32 << 20)) == 0
    assert s.get_hostname() == s.segment_name() != ""
    rc = ReplicateConfig(preferred_segment=s.get_hostname())
    keys = [f"{prefix}{i}" for i in range(8)]
    for k in keys:
        assert s.put(k, k.encode() * 1000, rc) == 0
    other = MooncakeDistributedStore()
    assert other.setup(*cluster.setup_args()) == 0
    assert other.batch_is_exist(keys) == [1] * 8
    s.close()  # every object was in s's segment: all leave with it
    assert other.batch_is_exist(keys) == [0] * 8
    other.close()


def test_health_check_sees_master_go(fresh_cluster):
    c = fresh_cluster("64MiB")
    s = MooncakeDistributedStore()
    assert s.setup({"master_server_address": c.rpc, "local_hostname": "pytest-host",
                    "rpc_timeout_ms": 1000, "connect_timeout_ms": 500}) == 0
    assert s.health_check() == 0
    c.stores[0].stop()
    c.stores.clear()
    c.master.stop()
    assert s.health_check() == 2
    assert s.put("after", b"v") in (errors.RPC_FAIL, errors.RPC_TIMEOUT)
    s.close()


def test_threads_share_one_store(store, prefix):
    """Calls from many threads at once (the library runs them without the GIL)."""
    failures = []

    def worker(t):
        for i in range(30):
            k = f"{prefix}{t}-{i}"
            v = f"{t}:{i}".encode() * 50
            if store.put(k, v) != 0 or store.get(k) != v:
                failures.append(k)

    threads = [threading.Thread(target=worker, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert failures == []


def test_stats(store, prefix):
    assert store.put(prefix + "s", b"v" * 100) == 0
    assert store.get(prefix + "s") == b"v" * 100
    st = store.stats()
    assert st["puts"] >= 1 and st["gets"] >= 1 and st["shm_transfers"] >= 2


def test_buffers_parts_and_batch_remove(store, prefix):
    """Mooncake's get_buffer / batch_get_buffer (BufferHandle: buffer protocol,
    ptr(), size()), put_parts and batch_remove."""
    a, b, gone = prefix + "a", prefix + "b", prefix + "never-put"
    assert store.put_parts(a, b"head-", memoryview(b"middle-"), bytearray(b"tail")) == 0
    assert store.get(a) == b"head-middle-tail"
    assert store.put_parts(b, b"x" * 5000, config=ReplicateConfig()) == 0

    buf = store.get_buffer(a)
    assert isinstance(buf, kvcached.BufferHandle)
    assert buf.size() == len(buf) == 16
    assert bytes(memoryview(buf)) == b"head-middle-tail"
    assert ctypes.string_at(buf.ptr(), buf.size()) == b"head-middle-tail"
    assert store.get_buffer(gone) is None

    bufs = store.batch_get_buffer([b, gone, a])
    assert bufs[1] is None
    assert bytes(bufs[0]) == b"x" * 5000 and bytes(bufs[2]) == b"head-middle-tail"

    assert store.batch_remove([a, gone, b]) == [0, errors.OBJECT_NOT_FOUND, 0]
    assert store.batch_is_exist([a, b]) == [0, 0]
    assert store.batch_get_buffer([a]) == [None]


def test_get_into_ranges(store, prefix):
    """Mooncake's buffer-major ranged read: fragments of several objects into
    registered buffers; a bad fragment fails alone."""
    one, two, gone = prefix + "one", prefix + "two", prefix + "gone"
    v1 = bytes(range(256)) * 4          # 1024 bytes
    v2 = bytes(reversed(range(256)))    # 256 bytes
    assert store.put(one, v1) == 0 and store.put(two, v2) == 0
    b0 = (ctypes.c_ubyte * 64)()
    b1 = (ctypes.c_ubyte * 16)()
    unregistered = (ctypes.c_ubyte * 16)()
    p0, p1, p2 = (ctypes.addressof(b) for b in (b0, b1, unregistered))
    assert store.register_buffer(p0, 64) == 0 and store.register_buffer(p1, 16) == 0
    results = store.get_into_ranges(
        [p0, p1, p2],
        [[one, two, gone], [two], [one]],
        [[[0, 10], [20], [40]], [[0, 8]], [[0]]],
        [[[100, 1000], [5], [0]], [[250, 0]], [[0]]],
        [[[10, 25], [7], [4]], [[6, 9]], [[4]]],
    )
    assert results == [
        [[10, errors.INVALID_PARAMS], [7], [errors.OBJECT_NOT_FOUND]],  # 1000+25 > 1024
        [[6, errors.INVALID_PARAMS]],                                    # 8+9 > 16 bytes
        [[errors.INVALID_PARAMS]],                                       # not registered
    ]
    assert bytes(b0[0:10]) == v1[100:110]
    assert bytes(b0[10:20]) == bytes(10)  # the failed fragment wrote nothing
    assert bytes(b0[20:27]) == v2[5:12]
    assert bytes(b1[0:6]) == v2[250:256] and bytes(b1[6:16]) == bytes(10)
    assert bytes(unregistered) == bytes(16)
    # Shape mismatches fail the entries they concern.
    assert store.get_into_ranges([p0], [[one]], [[[0, 1]]], [[[0]]], [[[1]]]) == \
        [[[errors.INVALID_PARAMS, errors.INVALID_PARAMS]]]
    assert store.get_into_ranges([p0, p1], [[one]], [[[0]]], [[[0]]], [[[1]]]) == \
        [[[errors.INVALID_PARAMS]]]
    assert store.unregister_buffer(p0) == 0 and store.unregister_buffer(p1) == 0
    assert store.get_into_ranges([p0], [[one]], [[[0]]], [[[0]]], [[[1]]]) == \
        [[[errors.INVALID_PARAMS]]]
