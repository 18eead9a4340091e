"""Segments a client adds after setup (Mooncake's mount_segment,
allocate_and_mount_segment, unmount_segment, unmount_and_free_segment,
init_all, alloc_from_mem_pool) against a real master: each extra segment is
listed by the master's admin API under an owner of its own, takes the
objects put with preferred_segment = its id (get_replica_desc says so, and
for a file the bytes are in the file where the replica description says),
is read back byte-exact by this client, by a same-host client (shared
memory, or TCP for a file mapped from a non-zero offset) and by a client of
another host id (TCP); unmounting it drops exactly its objects; bad input
returns its error and changes nothing; close() removes every segment."""

import ctypes
import json
import logging
import os
import threading

import pytest

from conftest import segments, wait_for as wait_until
from kvcached import MooncakeDistributedStore, ReplicateConfig, _lib, errors

PAGE = os.sysconf("SC_PAGE_SIZE")
MiB = 1 << 20
DEADLINE_S = 20
OTHER_HOST = "pytest-other-host"  # a host id no store shares: everything over TCP


# ---- helpers ----------------------------------------------------------------------------

def wait_for(what, predicate):
    return wait_until(what, predicate, timeout_s=DEADLINE_S)


def value(key, size):
    seed = f"<{key}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


def client(cluster, host_id=None, segment_size=0):
    s = MooncakeDistributedStore()
    args = list(cluster.setup_args(segment_size))
    if host_id:
        args[0] = host_id
    assert s.setup(*args) == 0
    return s


def put_into(store, segment, key, data):
    assert store.put(key, data, ReplicateConfig(preferred_segment=segment)) == 0
    desc = store.get_replica_desc(key)
    assert len(desc) == 1
    d = desc[0].get_memory_descriptor().buffer_descriptor
    assert d.transport_endpoint == segment, f"{key} landed in {d.transport_endpoint}"
    assert d.size == len(data)
    return d.buffer_address  # the object's offset in the segment


def transfers(store):
    s = store.stats()
    return s["shm_transfers"], s["tcp_transfers"]


def read_via(reader, key, data, path):
    """reader.get(key) == data, moved by `path` ("shm" or "tcp")."""
    shm0, tcp0 = transfers(reader)
    assert reader.get(key) == data
    shm1, tcp1 = transfers(reader)
    if path == "shm":
        assert shm1 > shm0 and tcp1 == tcp0, (shm0, shm1, tcp0, tcp1)
    else:
        assert tcp1 > tcp0 and shm1 == shm0, (shm0, shm1, tcp0, tcp1)


def mappings(text):
    """How many mappings of this process name `text` (a file, or a memfd's name)."""
    with open("/proc/self/maps") as f:
        return sum(1 for line in f if line.rstrip().endswith(str(text)) or
                   f"memfd:{text} " in line + " ")


def mapped(path):
    return mappings(path) > 0


def wait_unmapped(cluster, path, clients, prefix):
    """Until no mapping of `path` is left in this process. The segment's
    own mapping goes at unmount; a client that attached to the segment over
    shared memory drops its mapping when it notices the hang-up, which it
    checks (at most once a second) when it next copies through shared
    memory: each polls by reading an object of the pool's store."""
    key = prefix + "probe"
    store_segment = cluster.stores[0].segment
    put_into(clients[0], store_segment, key, b"p" * 64)

    def done():
        for c in clients:
            assert c.get(key) == b"p" * 64
        return not mapped(path)

    wait_for(f"{path} unmapped", done)


def gone(store, keys):
    return all(store.get_size(k) == errors.OBJECT_NOT_FOUND for k in keys)


@pytest.fixture
def shm_file(request):
    """A /dev/shm object of 8 MiB the test owns (removed afterwards)."""
    path = f"/dev/shm/kvcached-test-{os.getpid()}-{request.node.name[:40]}"
    with open(path, "wb") as f:
        f.truncate(8 * MiB)
    yield path
    os.unlink(path)


@pytest.fixture
def readers(cluster):
    """Two more clients, each contributing no memory: one with the pool's
    host id (shared memory) and one with another host id (TCP)."""
    same, other = client(cluster), client(cluster, host_id=OTHER_HOST)
    yield same, other
    same.close()
    other.close()


@pytest.fixture
def owner(cluster):
    """A client with a 16 MiB setup segment, which then mounts more."""
    s = client(cluster, segment_size=16 * MiB)
    yield s
    s.close()


# ---- mounting, placing, reading, unmounting ---------------------------------------------------

def test_allocate_and_mount_segment_serves_its_objects(cluster, owner, readers, prefix):
    same, other = readers
    r = owner.allocate_and_mount_segment(3 * MiB + 5)
    assert r["ret"] == 0, r
    assert r["allocated_size"] == 3 * MiB + PAGE  # rounded up to the page size, and said so
    (seg,) = r["segment_ids"]
    assert isinstance(seg, str) and seg != owner.get_hostname()
    assert seg.startswith("pytest-host:%d:" % os.getpid())
    listed = segments(cluster)
    assert listed[seg]["capacity_bytes"] == 3 * MiB + PAGE
    assert listed[seg]["owner"] != listed[owner.get_hostname()]["owner"]
    assert json.loads(listed[seg]["endpoint"])["shm"]

    data = value(prefix + "a", 200_000)
    put_into(owner, seg, prefix + "a", data)
    home = prefix + "home"
    put_into(owner, owner.get_hostname(), home, value(home, 1000))
    assert owner.get(prefix + "a") == data
    read_via(same, prefix + "a", data, "shm")
    read_via(other, prefix + "a", data, "tcp")
    assert segments(cluster)[seg]["objects"] == 1

    memfd = "kvcached:" + seg
    assert mappings(memfd) == 3  # the segment's, and the owner's and reader's shm mappings
    assert owner.unmount_and_free_segment(r["segment_ids"]) == 0
    assert mappings(memfd) == 2  # the segment's own is released at once
    wait_for("the segment leaves the master's list", lambda: seg not in segments(cluster))
    wait_for("its object leaves the pool", lambda: gone(same, [prefix + "a"]))
    assert owner.get(prefix + "a") == b""
    assert other.get(prefix + "a") == b""
    # Objects elsewhere stay, and the client goes on.
    assert owner.get(home) == value(home, 1000)
    assert same.get(home) == value(home, 1000)
    assert owner.unmount_and_free_segment(r["segment_ids"]) == errors.SEGMENT_NOT_FOUND
    wait_unmapped(cluster, memfd, [owner, same], prefix)  # and the memfd is freed


def test_mount_segment_on_a_dev_shm_object(cluster, owner, readers, shm_file, prefix):
    same, other = readers
    size = 4 * MiB
    r = owner.mount_segment(shm_file, size)
    assert r["ret"] == 0 and len(r["segment_ids"]) == 1, r
    seg = r["segment_ids"][0]
    assert segments(cluster)[seg]["capacity_bytes"] == size
    assert json.loads(segments(cluster)[seg]["endpoint"])["shm"]  # offset 0: shared memory too

    data = value(prefix + "f", 300_000)
    offset = put_into(owner, seg, prefix + "f", data)
    with open(shm_file, "rb") as f:  # the bytes are in the file, where the master says
        f.seek(offset)
        assert f.read(len(data)) == data
    read_via(same, prefix + "f", data, "shm")
    read_via(other, prefix + "f", data, "tcp")
    assert owner.get(prefix + "f") == data

    # The segment's own mapping, the owner's and the same-host reader's (through the shm socket).
    assert mappings(shm_file) == 3
    assert owner.unmount_segment(r["segment_ids"]) == 0
    assert mappings(shm_file) == 2  # the segment's own is released at once
    wait_for("the segment leaves the master's list", lambda: seg not in segments(cluster))
    wait_for("its object leaves the pool", lambda: gone(other, [prefix + "f"]))
    # The file is left alone: same size, same bytes.
    assert os.path.getsize(shm_file) == 8 * MiB
    with open(shm_file, "rb") as f:
        f.seek(offset)
        assert f.read(len(data)) == data
    # ... and no longer mapped by this process.
    wait_unmapped(cluster, shm_file, [owner, same], prefix)


def test_mount_segment_from_an_offset_serves_tcp_only(cluster, owner, readers, tmp_path,
                                                      prefix):
    same, other = readers
    path = tmp_path / "segment.bin"
    offset, size = 3 * PAGE, 2 * MiB
    with open(path, "wb") as f:
        f.write(b"\xa5" * (offset + size + PAGE))
    r = owner.mount_segment(str(path), size, offset)
    assert r["ret"] == 0, r
    seg = r["segment_ids"][0]
    endpoint = json.loads(segments(cluster)[seg]["endpoint"])
    assert endpoint.get("tcp") and not endpoint.get("shm")  # shm would map from offset 0

    data = value(prefix + "o", 100_000)
    at = put_into(owner, seg, prefix + "o", data)
    with open(path, "rb") as f:
        f.seek(offset + at)
        assert f.read(len(data)) == data
        f.seek(0)
        assert f.read(offset) == b"\xa5" * offset  # nothing before the offset was touched
    read_via(same, prefix + "o", data, "tcp")  # same host, but no shared memory for it
    read_via(other, prefix + "o", data, "tcp")
    read_via(owner, prefix + "o", data, "tcp")

    assert owner.unmount_segment(seg) == 0  # one id as a str works too
    wait_for("its object leaves the pool", lambda: gone(same, [prefix + "o"]))
    assert seg not in segments(cluster)
    assert os.path.getsize(path) == offset + size + PAGE
    assert not mapped(path)  # served over TCP only: nobody else mapped it


def test_several_segments_and_get_hostname(cluster, owner, prefix):
    first = owner.get_hostname()
    ids = [owner.allocate_and_mount_segment(MiB)["segment_ids"][0] for _ in range(3)]
    assert len(set(ids + [first])) == 4
    listed = segments(cluster)
    assert len({listed[s]["owner"] for s in ids + [first]}) == 4  # an owner each
    assert owner.get_hostname() == first
    keys = {}
    for s in ids:
        keys[s] = prefix + s
        put_into(owner, s, keys[s], value(keys[s], 5000))
    # Unmounting two leaves the third's object (and the third) in place.
    assert owner.unmount_segment(ids[:2]) == 0
    wait_for("two segments' objects leave", lambda: gone(owner, [keys[ids[0]], keys[ids[1]]]))
    assert owner.get(keys[ids[2]]) == value(keys[ids[2]], 5000)
    assert ids[2] in segments(cluster)
    # unmount_segment takes allocated segments too (the memory is freed as well).
    assert owner.unmount_segment([ids[2], ids[2]]) == 0  # a duplicate counts once
    wait_for("the last one leaves", lambda: ids[2] not in segments(cluster))


def test_close_unmounts_every_segment(cluster, shm_file, prefix):
    s = client(cluster, segment_size=8 * MiB)
    ids = [s.allocate_and_mount_segment(MiB)["segment_ids"][0],
           s.mount_segment(shm_file, MiB)["segment_ids"][0], s.get_hostname()]
    key = prefix + "k"
    put_into(s, ids[0], key, b"x" * 100)
    assert all(i in segments(cluster) for i in ids)
    assert s.close() == 0
    wait_for("every segment of the closed client leaves",
             lambda: not set(ids) & set(segments(cluster)))
    reader = client(cluster)
    try:
        assert reader.get_size(key) == errors.OBJECT_NOT_FOUND
    finally:
        reader.close()
    assert not mapped(shm_file)  # nobody read it over shared memory
    assert s.allocate_and_mount_segment(MiB) == {
        "ret": errors.UNAVAILABLE_IN_CURRENT_STATUS, "segment_ids": [], "allocated_size": 0}
    assert s.mount_segment(shm_file, MiB)["ret"] == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.unmount_segment(ids[:1]) == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.unmount_and_free_segment(ids[:1]) == errors.UNAVAILABLE_IN_CURRENT_STATUS


def test_client_without_a_setup_segment_can_mount(cluster, prefix):
    s = client(cluster)
    try:
        assert s.get_hostname() == "pytest-host"
        seg = s.allocate_and_mount_segment(MiB)["segment_ids"][0]
        data = value(prefix, 4096)
        put_into(s, seg, prefix, data)
        assert s.get(prefix) == data
        assert s.get_hostname() == "pytest-host"  # still no setup segment
    finally:
        s.close()
    wait_for("its segment leaves", lambda: seg not in segments(cluster))


# ---- bad input ------------------------------------------------------------------------------

def test_bad_input_changes_nothing(cluster, owner, shm_file, tmp_path, caplog):
    before = set(segments(cluster))
    small = tmp_path / "small.bin"
    small.write_bytes(b"s" * (2 * PAGE))
    cases = [
        (lambda: owner.allocate_and_mount_segment(0), errors.INVALID_PARAMS),
        (lambda: owner.allocate_and_mount_segment(-1), errors.INVALID_PARAMS),
        (lambda: owner.allocate_and_mount_segment("1mb"), errors.INVALID_PARAMS),
        (lambda: owner.allocate_and_mount_segment(1.5), errors.INVALID_PARAMS),
        (lambda: owner.allocate_and_mount_segment(True), errors.INVALID_PARAMS),
        (lambda: owner.allocate_and_mount_segment(MiB, protocol="udp"), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, 0), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, -PAGE), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, "4096"), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, MiB, offset=100), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, MiB, offset=-PAGE), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, 8 * MiB, offset=PAGE), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(shm_file, 8 * MiB + 1), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment("/dev/shm/kvcached-no-such-file", MiB),
         errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(str(tmp_path), PAGE), errors.INVALID_PARAMS),  # a directory
        (lambda: owner.mount_segment("/dev/zero", PAGE), errors.INVALID_PARAMS),  # not regular
        (lambda: owner.mount_segment(str(small), 3 * PAGE), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment("", PAGE), errors.INVALID_PARAMS),
        (lambda: owner.mount_segment(None, PAGE), errors.INVALID_PARAMS),
    ]
    for i, (call, code) in enumerate(cases):
        caplog.clear()
        r = call()
        assert r["ret"] == code, (i, r)
        assert r["segment_ids"] == []
        assert caplog.records, f"case {i}: no reason logged"
    assert set(segments(cluster)) == before
    assert os.path.getsize(shm_file) == 8 * MiB  # never grown
    assert small.read_bytes() == b"s" * (2 * PAGE)


def test_bad_unmounts_unmount_nothing(cluster, owner, shm_file, caplog):
    alloc = owner.allocate_and_mount_segment(MiB)["segment_ids"][0]
    filed = owner.mount_segment(shm_file, MiB)["segment_ids"][0]
    cases = [
        (lambda: owner.unmount_segment([alloc, "no-such-segment"]), errors.SEGMENT_NOT_FOUND),
        (lambda: owner.unmount_and_free_segment([alloc, filed]), errors.INVALID_PARAMS),
        (lambda: owner.unmount_segment([alloc, owner.get_hostname()]), errors.INVALID_PARAMS),
        (lambda: owner.unmount_segment([]), errors.INVALID_PARAMS),
        (lambda: owner.unmount_segment([alloc, 7]), errors.INVALID_PARAMS),
        (lambda: owner.unmount_segment([alloc], grace_period_seconds=-1), errors.INVALID_PARAMS),
        (lambda: owner.unmount_segment(None), errors.INVALID_PARAMS),
    ]
    for i, (call, code) in enumerate(cases):
        caplog.clear()
        assert call() == code, i
        assert caplog.records, f"case {i}: no reason logged"
        listed = segments(cluster)
        assert alloc in listed and filed in listed, i
    # Both kinds through unmount_segment is fine.
    assert owner.unmount_segment([alloc, filed], grace_period_seconds=1) == 0
    wait_for("both leave", lambda: not {alloc, filed} & set(segments(cluster)))


def test_calls_before_setup():
    s = MooncakeDistributedStore()
    assert s.mount_segment("/dev/shm/x", MiB) == {
        "ret": errors.UNAVAILABLE_IN_CURRENT_STATUS, "segment_ids": []}
    assert s.allocate_and_mount_segment(MiB)["ret"] == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.unmount_segment(["x"]) == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.unmount_and_free_segment(["x"]) == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.alloc_from_mem_pool(4096) == 0


def test_rdma_protocol_and_location_are_accepted(cluster, owner, prefix, caplog):
    caplog.set_level(logging.INFO, logger="kvcached")
    # No RDMA device here: a warning, and the segment is served over TCP.
    r = owner.allocate_and_mount_segment(MiB, protocol="rdma", location="cpu:0")
    assert r["ret"] == 0, r
    assert any("location" in rec.getMessage() for rec in caplog.records)
    seg = r["segment_ids"][0]
    put_into(owner, seg, prefix, b"r" * 1000)
    assert owner.get(prefix) == b"r" * 1000
    assert owner.unmount_and_free_segment(r["segment_ids"]) == 0


# ---- races ----------------------------------------------------------------------------------

def test_unmount_while_puts_and_gets_run(cluster, owner, readers, prefix):
    """Puts and gets into a segment while it is unmounted: each one succeeds
    or fails with an error code, nothing crashes, and what was read is
    exactly what was put."""
    same, other = readers
    for round_ in range(3):
        seg = owner.allocate_and_mount_segment(4 * MiB)["segment_ids"][0]
        stop = threading.Event()
        bad = []

        def work(store, tag):
            n = 0
            while not stop.is_set():
                key = f"{prefix}{round_}-{tag}-{n}"
                data = value(key, 20_000)
                rc = store.put(key, data, ReplicateConfig(preferred_segment=seg))
                if rc == 0:
                    got = store.get(key)
                    if got not in (b"", data):
                        bad.append(key)
                elif rc > 0:
                    bad.append((key, rc))
                n += 1

        threads = [threading.Thread(target=work, args=(s, t))
                   for s, t in ((owner, "own"), (same, "shm"), (other, "tcp"))]
        for t in threads:
            t.start()
        wait_for("some puts landed", lambda: segments(cluster).get(seg, {}).get("objects", 0) > 3)
        assert owner.unmount_and_free_segment([seg]) == 0
        stop.set()
        for t in threads:
            t.join()
        assert not bad
        assert seg not in segments(cluster)


# ---- init_all and alloc_from_mem_pool ---------------------------------------------------------

def test_init_all_sets_up_from_the_environment(cluster, monkeypatch, prefix):
    monkeypatch.setenv("MOONCAKE_MASTER", cluster.rpc)
    monkeypatch.setenv("MOONCAKE_LOCAL_HOSTNAME", "pytest-host")
    monkeypatch.delenv("MOONCAKE_CONFIG_PATH", raising=False)
    s = MooncakeDistributedStore()
    assert s.init_all("tcp", "", 4 * MiB) == 0
    try:
        seg = s.get_hostname()
        assert segments(cluster)[seg]["capacity_bytes"] == 4 * MiB
        put_into(s, seg, prefix, b"i" * 100)
    finally:
        s.close()
    assert MooncakeDistributedStore().init_all("tcp", "", -1) == errors.INVALID_PARAMS
    monkeypatch.setenv("MOONCAKE_MASTER", "127.0.0.1:1")
    assert MooncakeDistributedStore().init_all("tcp", "", 0) == errors.RPC_FAIL


def test_alloc_from_mem_pool(cluster, store, prefix):
    ptr = store.alloc_from_mem_pool(64 * 1024)
    assert ptr != 0 and ptr % PAGE == 0
    buf = (ctypes.c_char * (64 * 1024)).from_address(ptr)
    data = value(prefix, 64 * 1024)
    buf[:] = data
    assert store.put_from(prefix, ptr, len(data)) == 0
    ctypes.memset(ptr, 0, len(data))
    assert store.get_into(prefix, ptr, len(data)) == len(data)
    assert bytes(buf) == data
    # It is registered: registering it again overlaps.
    assert store.register_buffer(ptr, 4096) == errors.INVALID_PARAMS
    assert store.alloc_from_mem_pool(0) == 0
    assert store.alloc_from_mem_pool(-5) == 0
    assert store.alloc_from_mem_pool("x") == 0
    assert store.alloc_from_mem_pool(4096) != ptr


# ---- the C ABI under them ---------------------------------------------------------------------

def test_c_abi_refuses_null_arguments(owner):
    L = _lib.lib
    name = ctypes.c_void_p()
    assert L.kvcached_mount_segment(None, None, 0, MiB, None, ctypes.byref(name), None) == \
        errors.INVALID_PARAMS
    assert L.kvcached_mount_segment(owner._handle, None, 0, MiB, None, None, None) == \
        errors.INVALID_PARAMS
    assert L.kvcached_mount_segment(owner._handle, None, PAGE, MiB, None, ctypes.byref(name),
                                    None) == errors.INVALID_PARAMS  # an offset needs a path
    assert name.value is None
    assert L.kvcached_unmount_segments(owner._handle, 1, None, 0) == errors.INVALID_PARAMS
    assert L.kvcached_unmount_segments(None, 0, None, 0) == errors.INVALID_PARAMS
    size = ctypes.c_uint64()
    assert L.kvcached_mount_segment(owner._handle, None, 0, 1, b"tcp", ctypes.byref(name),
                                    ctypes.byref(size)) == 0
    try:
        assert size.value == PAGE
        text = ctypes.string_at(name.value)
    finally:
        L.kvcached_free_string(name.value)
    names = (ctypes.c_char_p * 1)(text)
    assert L.kvcached_unmount_segments(owner._handle, 1, names, 1) == 0
