"""get_replica_desc and batch_get_replica_desc (Mooncake's replica
descriptors) against a real master and stores: objects of one and two
replicas described as the master's admin API shows them, a missing key as
Mooncake answers one, bad arguments, a store before setup and after close,
asking that leaves no lease behind, and the C ABI call under them
(kvcached_batch_replica_desc_json) through ctypes. The module classes and
enum are checked against Mooncake's names and values."""

import ctypes
import json
import logging
import re
import urllib.request

import pytest

import kvcached
from kvcached import (Descriptor, DiskDescriptor, MemoryDescriptor, MooncakeDistributedStore,
                      ReplicaDescriptor, ReplicaStatus, ReplicateConfig, _lib, errors)

L = _lib.lib


def admin(cluster, path):
    with urllib.request.urlopen("http://" + cluster.master.address("admin") + path,
                                timeout=10) as r:
        return r.read().decode()


def query_key(cluster, key):
    """The master's /query_key answer: (size, offset, segment) per replica."""
    lines = admin(cluster, "/query_key?key=" + urllib.request.quote(key, safe="")).splitlines()
    docs = [json.loads(line) for line in lines]
    return sorted((d["size_"], d["buffer_address_"], d["transport_endpoint_"]) for d in docs)


def data_ports(cluster):
    """Segment name -> its TCP data port, from the master's /api/v1/segments."""
    doc = json.loads(admin(cluster, "/api/v1/segments"))
    return {s["name"]: json.loads(s["endpoint"])["tcp"] for s in doc["segments"]}


def leases_released(cluster):
    m = re.search(r"^kvcached_master_leases_released_total (\d+)", admin(cluster, "/metrics"),
                  re.M)
    assert m, "no kvcached_master_leases_released_total in /metrics"
    return int(m.group(1))


def places(replicas):
    """(size, buffer_address, transport_endpoint) per replica, sorted, after
    checking every replica is a complete memory replica."""
    out = []
    for r in replicas:
        assert isinstance(r, ReplicaDescriptor)
        assert r.status is ReplicaStatus.COMPLETE
        assert r.is_memory_replica() and not r.is_disk_replica()
        with pytest.raises(RuntimeError, match="Expected DiskDescriptor"):
            r.get_disk_descriptor()
        d = r.get_memory_descriptor().buffer_descriptor
        assert isinstance(d, Descriptor)
        out.append((d.size, d.buffer_address, d.transport_endpoint))
    return sorted(out)


# ---- the module's classes ------------------------------------------------------------

def test_replica_status_has_mooncakes_members_and_values():
    assert {m.name: int(m) for m in ReplicaStatus} == {
        "UNDEFINED": 0, "INITIALIZED": 1, "PROCESSING": 2, "COMPLETE": 3, "REMOVED": 4,
        "FAILED": 5}
    # The members Mooncake's module keeps (export_values); its PROCESSING and
    # FAILED are TaskStatus's (bound after ReplicaStatus).
    for name in ("UNDEFINED", "INITIALIZED", "COMPLETE", "REMOVED"):
        assert getattr(kvcached, name) is ReplicaStatus[name]
    for name in ("PROCESSING", "FAILED"):
        assert getattr(kvcached, name) is kvcached.TaskStatus[name]


def test_descriptor_classes():
    d = Descriptor()
    assert (d.size, d.buffer_address, d.transport_endpoint, d.data_endpoint) == (0, 0, "", "")
    d.size, d.buffer_address, d.transport_endpoint = 4096, 128, "seg-a"
    assert repr(d) == "<Descriptor size=4096 buffer_address=128 transport_endpoint=seg-a>"
    memory = MemoryDescriptor(d)
    assert memory.buffer_descriptor is d
    disk = DiskDescriptor("/data/obj", 77)
    assert (disk.file_path, disk.object_size) == ("/data/obj", 77)

    r = ReplicaDescriptor(memory)
    assert r.status is ReplicaStatus.COMPLETE
    assert r.is_memory_replica() and not r.is_disk_replica()
    assert r.get_memory_descriptor() is memory
    with pytest.raises(RuntimeError, match="Expected DiskDescriptor"):
        r.get_disk_descriptor()
    with pytest.raises(AttributeError):
        r.status = ReplicaStatus.FAILED  # read-only, as Mooncake's

    on_disk = ReplicaDescriptor(disk, ReplicaStatus.PROCESSING)
    assert on_disk.status is ReplicaStatus.PROCESSING
    assert on_disk.is_disk_replica() and not on_disk.is_memory_replica()
    assert on_disk.get_disk_descriptor() is disk
    with pytest.raises(RuntimeError, match="Expected MemoryDescriptor"):
        on_disk.get_memory_descriptor()
    with pytest.raises(TypeError):
        ReplicaDescriptor(d)  # a Descriptor is not a replica's descriptor
    with pytest.raises(ValueError):
        ReplicaDescriptor(memory, 9)  # no such status


# ---- against a pool ------------------------------------------------------------------------

def test_one_and_two_replicas_as_the_master_knows_them(fresh_cluster):
    c = fresh_cluster("64MiB")
    second = c.add_store("64MiB")
    first = c.stores[0]
    s = MooncakeDistributedStore()
    assert s.setup(*c.setup_args()) == 0
    assert s.put("one", b"1" * 5000, ReplicateConfig(preferred_segment=second.segment)) == 0
    assert s.put("two", b"2" * 3000, ReplicateConfig(replica_num=2)) == 0

    one = s.get_replica_desc("one")
    assert len(one) == 1
    assert places(one) == query_key(c, "one")
    assert places(one)[0][0] == 5000 and places(one)[0][2] == second.segment

    two = s.get_replica_desc("two")
    assert len(two) == 2
    assert places(two) == query_key(c, "two")
    assert {p[2] for p in places(two)} == {first.segment, second.segment}  # two segments
    assert all(p[0] == 3000 for p in places(two))

    # Every segment named is mounted, and its data port is the one it published.
    mounted = set(admin(c, "/get_all_segments").splitlines())
    assert mounted == {first.segment, second.segment}
    ports = data_ports(c)
    for r in one + two:
        d = r.get_memory_descriptor().buffer_descriptor
        assert d.transport_endpoint in mounted
        assert d.data_endpoint == ports[d.transport_endpoint]
        assert re.fullmatch(r"127\.0\.0\.1:\d+", d.data_endpoint)

    batch = s.batch_get_replica_desc(["two", "missing", "one"])
    assert set(batch) == {"one", "two"}
    assert places(batch["one"]) == places(one) and places(batch["two"]) == places(two)
    s.close()


def test_asking_leaves_no_lease(fresh_cluster):
    c = fresh_cluster("64MiB")
    s = MooncakeDistributedStore()
    assert s.setup(*c.setup_args()) == 0
    keys = ["a", "b", "c"]
    for k in keys:
        assert s.put(k, k.encode() * 100) == 0
    before = leases_released(c)
    # A lookup's lease lasts 10 s unless ended: a remove right after (same
    # thread, so the master has the release first) would be refused.
    assert len(s.get_replica_desc("a")) == 1
    assert s.remove("a") == 0
    assert set(s.batch_get_replica_desc(["b", "c", "a"])) == {"b", "c"}
    assert s.batch_remove(["b", "c"]) == [0, 0]
    assert leases_released(c) - before == 3
    assert s.get_replica_desc("b") == [] and s.batch_get_replica_desc(keys) == {}
    s.close()


def test_missing_keys_and_bad_arguments(store, prefix, caplog):
    k = prefix + "k"
    assert store.put(k, b"x" * 64) == 0
    assert store.get_replica_desc(prefix + "none") == []  # Mooncake's answer for a miss
    assert store.batch_get_replica_desc([prefix + "none", prefix + "none2"]) == {}
    assert store.batch_get_replica_desc([]) == {}
    # bytes keys name the same object; a batch keeps the caller's key objects.
    assert places(store.get_replica_desc(k.encode())) == places(store.get_replica_desc(k))
    assert list(store.batch_get_replica_desc([k.encode()])) == [k.encode()]
    assert list(store.batch_get_replica_desc((k, k))) == [k]  # any sequence; repeats once

    for bad in (None, 7, ["k"]):
        with pytest.raises(TypeError):
            store.get_replica_desc(bad)
    for bad in ("k", b"k", None, 7, {"k"}):
        with pytest.raises(TypeError):
            store.batch_get_replica_desc(bad)
    with pytest.raises(TypeError):
        store.batch_get_replica_desc([k, 7])

    # A key the master would refuse: no descriptors, and the reason logged.
    with caplog.at_level(logging.ERROR, logger="kvcached"):
        assert store.get_replica_desc("") == []
        assert store.batch_get_replica_desc([k, "x" * 5000]).keys() == {k}
    assert caplog.text.count("INVALID_KEY") == 2


def test_before_setup_and_after_close(cluster, prefix, caplog):
    s = MooncakeDistributedStore()
    with caplog.at_level(logging.ERROR, logger="kvcached"):
        assert s.get_replica_desc(prefix + "k") == []
        assert s.batch_get_replica_desc([prefix + "k"]) == {}
    assert caplog.text.count("not set up") == 2
    caplog.clear()

    assert s.setup(*cluster.setup_args()) == 0
    assert s.put(prefix + "k", b"v" * 10) == 0
    assert len(s.get_replica_desc(prefix + "k")) == 1
    assert s.close() == 0
    with caplog.at_level(logging.ERROR, logger="kvcached"):
        assert s.get_replica_desc(prefix + "k") == []
        assert s.batch_get_replica_desc([prefix + "k", prefix + "j"]) == {}
    assert caplog.text.count("UNAVAILABLE_IN_CURRENT_STATUS") == 2
    assert "2 of 2 keys failed" in caplog.text


# ---- the C ABI call ----------------------------------------------------------------------

def call_json(handle, keys, key_lens="auto"):
    """kvcached_batch_replica_desc_json: (rc, parsed array or None)."""
    n = len(keys)
    arr = (ctypes.c_char_p * n)(*keys)
    lens = None
    if key_lens == "auto":
        lens = (ctypes.c_size_t * n)(*[len(k) if k is not None else 0 for k in keys])
    out = ctypes.c_void_p(0xdead)  # must be overwritten
    rc = L.kvcached_batch_replica_desc_json(handle, n, arr, lens, ctypes.byref(out))
    if rc != 0:
        assert out.value is None
        return rc, None
    try:
        return rc, json.loads(ctypes.string_at(out.value).decode())
    finally:
        L.kvcached_free_string(out)


def test_c_abi_json(cluster, store, prefix):
    h = store._handle
    k = (prefix + "k").encode()
    segment = cluster.stores[0].segment
    assert store.put(k, b"z" * 333, ReplicateConfig(preferred_segment=segment)) == 0

    rc, doc = call_json(h, [k, None, (prefix + "none").encode(), b""])
    assert rc == 0 and len(doc) == 4
    entry = doc[0]
    assert set(entry) == {"code", "size", "version", "replicas"}
    assert entry["code"] == 0 and entry["size"] == 333
    assert isinstance(entry["version"], int) and entry["version"] > 0
    assert entry["replicas"] == [{"segment": segment, "data_endpoint": data_ports(cluster)[segment],
                                  "offset": query_key(cluster, k.decode())[0][1]}]
    assert doc[1:] == [{"code": errors.INVALID_PARAMS}, {"code": errors.OBJECT_NOT_FOUND},
                       {"code": errors.INVALID_KEY}]
    # The first failing entry's text (the NULL key) is the thread's last error.
    assert "key is NULL" in _lib.last_error()

    # NUL-terminated keys (key_lens NULL); an upsert gives the key a newer version.
    rc, again = call_json(h, [k], key_lens=None)
    assert rc == 0 and again == [entry]
    assert _lib.last_error() == ""
    assert store.upsert(k, b"y" * 20) == 0
    rc, newer = call_json(h, [k])
    assert newer[0]["size"] == 20 and newer[0]["version"] > entry["version"]

    assert call_json(h, []) == (0, [])
    # Refused as a whole: a NULL client, keys or json_out.
    assert call_json(None, [k]) == (errors.INVALID_PARAMS, None)
    assert "NULL" in _lib.last_error()
    assert L.kvcached_batch_replica_desc_json(h, 1, None, None, ctypes.byref(ctypes.c_void_p())) \
        == errors.INVALID_PARAMS
    assert L.kvcached_batch_replica_desc_json(h, 0, None, None, None) == errors.INVALID_PARAMS
    L.kvcached_free_string(None)  # ignored
