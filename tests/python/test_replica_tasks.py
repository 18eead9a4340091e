"""Replica tasks (create_copy_task, create_move_task, query_task) against a
real master and two stores: a copy's new replica serves reads alone once
the original's store is gone, a move leaves exactly the target's replica,
both over shared memory and over TCP; every refusal Mooncake's callers can
meet; tasks of another tenant; the module's enums and class; the C ABI
calls under them. Values are derived from the key, so every read is
checked against what was put."""

import ctypes
import hashlib
import json
import re
import time
import urllib.request

import pytest

import kvcached
from kvcached import (FAILED, PENDING, PROCESSING, REPLICA_COPY, REPLICA_MOVE, SUCCESS,
                      MooncakeDistributedStore, QueryTaskResponse, ReplicateConfig, TaskStatus,
                      TaskType, _lib, errors)

L = _lib.lib
TASK_DEADLINE_S = 60


def value_of(key, size=300_000):
    seed = hashlib.sha256(key.encode()).digest()
    return (seed * (size // len(seed) + 1))[:size]


def admin(cluster, path):
    with urllib.request.urlopen("http://" + cluster.master.address("admin") + path,
                                timeout=10) as r:
        return r.read().decode()


def holders(store, key):
    return sorted(d.get_memory_descriptor().buffer_descriptor.transport_endpoint
                  for d in store.get_replica_desc(key))


def metric(cluster, name):
    m = re.search(r"^" + name + r" (\d+)", admin(cluster, "/metrics"), re.M)
    assert m, f"no {name} in /metrics"
    return int(m.group(1))


def wait_task(store, task_id):
    """The task's QueryTaskResponse once it is over (SUCCESS or FAILED)."""
    deadline = time.monotonic() + TASK_DEADLINE_S
    while True:
        resp, rc = store.query_task(task_id)
        assert rc == 0, errors.error_name(rc)
        if resp.status in (TaskStatus.SUCCESS, TaskStatus.FAILED):
            return resp
        assert resp.status in (TaskStatus.PENDING, TaskStatus.PROCESSING)
        assert time.monotonic() < deadline, f"task {task_id} still {resp.status.name}"
        time.sleep(0.02)


@pytest.fixture
def two_stores(fresh_cluster):
    c = fresh_cluster("64MiB")
    c.add_store("64MiB")
    return c


def client(cluster, host_id=None):
    s = MooncakeDistributedStore()
    args = list(cluster.setup_args())
    if host_id:
        args[0] = host_id
    assert s.setup(*args) == 0
    return s


def put_on(store, key, segment):
    cfg = ReplicateConfig()
    cfg.preferred_segment = segment
    assert store.put(key, value_of(key), cfg) == 0
    assert holders(store, key) == [segment]


# ---- names -----------------------------------------------------------------------------

def test_task_enums_and_response_have_mooncakes_names_and_values():
    assert {m.name: int(m) for m in TaskType} == {"REPLICA_COPY": 0, "REPLICA_MOVE": 1}
    assert {m.name: int(m) for m in TaskStatus} == {
        "PENDING": 0, "PROCESSING": 1, "SUCCESS": 2, "FAILED": 3}
    # export_values(): the members are module names too; TaskStatus is
    # bound after ReplicaStatus, so PROCESSING and FAILED are its.
    assert (REPLICA_COPY, REPLICA_MOVE) == (TaskType.REPLICA_COPY, TaskType.REPLICA_MOVE)
    assert (PENDING, PROCESSING, SUCCESS, FAILED) == tuple(TaskStatus)
    assert kvcached.PROCESSING is TaskStatus.PROCESSING
    r = QueryTaskResponse()
    for name in ("id", "type", "status", "created_at_ms_epoch", "last_updated_at_ms_epoch",
                 "assigned_client", "message"):
        with pytest.raises(AttributeError):
            setattr(r, name, 1)


# ---- copies and moves --------------------------------------------------------------------

@pytest.mark.parametrize("host_id", [None, "tasks-other-host"], ids=["shm", "tcp"])
def test_a_copy_serves_reads_alone_once_the_original_is_gone(two_stores, prefix, host_id):
    a, b = two_stores.stores
    s = client(two_stores, host_id)
    keys = [f"{prefix}{i}" for i in range(12)]
    for k in keys:
        put_on(s, k, a.segment)
    before = metric(two_stores, "kvcached_master_tasks_succeeded_total")
    tasks = []
    for k in keys:
        task_id, rc = s.create_copy_task(k, [b.segment])
        assert rc == 0, errors.error_name(rc)
        assert isinstance(task_id, tuple) and len(task_id) == 2 and task_id != (0, 0)
        tasks.append(task_id)
    assert len(set(tasks)) == len(tasks)
    started = int(time.time() * 1000)
    for k, t in zip(keys, tasks):
        resp = wait_task(s, t)
        assert resp.status == SUCCESS, resp.message
        assert resp.id == t
        assert resp.type == TaskType.REPLICA_COPY
        assert resp.message == ""
        assert resp.assigned_client  # this client's id
        assert resp.created_at_ms_epoch <= resp.last_updated_at_ms_epoch
        assert abs(resp.created_at_ms_epoch - started) < 600_000
        assert holders(s, k) == sorted([a.segment, b.segment])
    assert metric(two_stores, "kvcached_master_tasks_succeeded_total") == before + len(keys)
    # The store that held the originals goes: every read now comes from the copies.
    a.stop()
    deadline = time.monotonic() + TASK_DEADLINE_S
    while a.segment in json.dumps(json.loads(admin(two_stores, "/api/v1/segments"))):
        assert time.monotonic() < deadline, "the stopped store's segment stays mounted"
        time.sleep(0.02)
    for k in keys:
        assert holders(s, k) == [b.segment]
        assert s.get(k) == value_of(k)
    s.close()


@pytest.mark.parametrize("host_id", [None, "tasks-other-host"], ids=["shm", "tcp"])
def test_a_move_leaves_exactly_the_target_replica(two_stores, prefix, host_id):
    a, b = two_stores.stores
    s = client(two_stores, host_id)
    key = prefix + "moved"
    put_on(s, key, a.segment)
    task_id, rc = s.create_move_task(key, a.segment, b.segment)
    assert rc == 0, errors.error_name(rc)
    resp = wait_task(s, task_id)
    assert resp.status == SUCCESS, resp.message
    assert resp.type == TaskType.REPLICA_MOVE
    assert holders(s, key) == [b.segment]
    lines = admin(two_stores, "/query_key?key=" + urllib.request.quote(key, safe=""))
    assert [json.loads(x)["transport_endpoint_"] for x in lines.splitlines()] == [b.segment]
    assert s.get(key) == value_of(key)
    # The moved object can be moved back, and is still the same bytes.
    task_id, rc = s.create_move_task(key, b.segment, a.segment)
    assert rc == 0
    assert wait_task(s, task_id).status == SUCCESS
    assert holders(s, key) == [a.segment]
    assert s.get(key) == value_of(key)
    s.close()


def test_a_copy_to_a_segment_holding_the_object_succeeds_with_nothing_to_do(two_stores, prefix):
    a, _ = two_stores.stores
    s = client(two_stores)
    key = prefix + "k"
    put_on(s, key, a.segment)
    task_id, rc = s.create_copy_task(key, [a.segment])
    assert rc == 0
    assert wait_task(s, task_id).status == SUCCESS
    assert holders(s, key) == [a.segment]
    s.close()


# ---- refusals ------------------------------------------------------------------------------

def test_refused_tasks_return_mooncakes_codes_and_change_nothing(two_stores, prefix):
    a, b = two_stores.stores
    s = client(two_stores)
    key = prefix + "k"
    put_on(s, key, a.segment)
    none = (0, 0)
    assert s.create_copy_task(prefix + "missing", [b.segment]) == (none, errors.OBJECT_NOT_FOUND)
    assert s.create_copy_task(key, ["no-such-segment"]) == (none, errors.SEGMENT_NOT_FOUND)
    assert s.create_copy_task(key, []) == (none, errors.INVALID_PARAMS)
    assert s.create_copy_task(key, [b.segment, b.segment]) == (none, errors.INVALID_PARAMS)
    assert s.create_copy_task(key, [""]) == (none, errors.INVALID_PARAMS)
    assert s.create_copy_task("", [b.segment]) == (none, errors.INVALID_KEY)
    assert s.create_copy_task("a\0b", [b.segment]) == (none, errors.INVALID_PARAMS)
    assert s.create_move_task(key, b.segment, a.segment) == (none, errors.INVALID_REPLICA)
    assert s.create_move_task(key, a.segment, a.segment) == (none, errors.INVALID_PARAMS)
    assert s.create_move_task(key, "", b.segment) == (none, errors.INVALID_PARAMS)
    assert s.create_move_task(key, a.segment, "no-such-segment") == (none,
                                                                     errors.SEGMENT_NOT_FOUND)
    with pytest.raises(TypeError):
        s.create_copy_task(key, b.segment)  # a str, not a list
    with pytest.raises(TypeError):
        s.create_move_task(key, 1, b.segment)
    assert s.query_task((12345, 67890)) == (None, errors.TASK_NOT_FOUND)
    assert s.query_task((-1, 0)) == (None, errors.TASK_NOT_FOUND)
    for bad in ("abc", (1,), (1, 2, 3), (1.0, 2), None):
        with pytest.raises(TypeError):
            s.query_task(bad)
    assert holders(s, key) == [a.segment]
    assert s.get(key) == value_of(key)
    s.close()
    # Closed, and never set up: Mooncake's "not now" code.
    assert s.create_copy_task(key, [b.segment]) == (none, errors.UNAVAILABLE_IN_CURRENT_STATUS)
    fresh = MooncakeDistributedStore()
    assert fresh.query_task((1, 2)) == (None, errors.UNAVAILABLE_IN_CURRENT_STATUS)
    assert fresh.create_move_task(key, a.segment, b.segment) == (
        none, errors.UNAVAILABLE_IN_CURRENT_STATUS)


def test_a_tenants_tasks_are_invisible_to_other_tenants(two_stores, prefix):
    a, b = two_stores.stores
    team_a = MooncakeDistributedStore()
    assert team_a.setup(*two_stores.setup_args(), None, tenant_id="team-a") == 0
    team_b = MooncakeDistributedStore()
    assert team_b.setup(*two_stores.setup_args(), None, tenant_id="team-b") == 0
    key = prefix + "k"
    put_on(team_a, key, a.segment)
    # team-b has no object under that key.
    assert team_b.create_copy_task(key, [b.segment]) == ((0, 0), errors.OBJECT_NOT_FOUND)
    task_id, rc = team_a.create_copy_task(key, [b.segment])
    assert rc == 0
    assert wait_task(team_a, task_id).status == SUCCESS
    assert team_b.query_task(task_id) == (None, errors.TASK_NOT_FOUND)
    team_a.close()
    team_b.close()


def test_the_pending_task_limit(fresh_cluster, prefix):
    c = fresh_cluster("64MiB", master_extra=["--max-pending-tasks", "1"])
    c.add_store("64MiB")
    a, b = c.stores
    s = client(c)
    keys = [prefix + str(i) for i in range(2)]
    for k in keys:
        put_on(s, k, a.segment)
    results = [s.create_copy_task(k, [b.segment]) for k in keys]
    # The first task may be over before the second is asked for; if not,
    # the second is refused with Mooncake's code. Both ways, nothing is lost.
    assert results[0][1] == 0
    assert results[1][1] in (0, errors.TASK_PENDING_LIMIT_EXCEEDED)
    for (task_id, rc), k in zip(results, keys):
        if rc == 0:
            assert wait_task(s, task_id).status == SUCCESS
            assert holders(s, k) == sorted([a.segment, b.segment])
        else:
            assert task_id == (0, 0)
            assert holders(s, k) == [a.segment]
    s.close()


# ---- the C ABI under them ------------------------------------------------------------------

def test_c_abi_task_calls_refuse_null_arguments(store):
    out = _lib.KvcachedTaskId(5, 6)
    assert L.kvcached_create_copy_task(None, b"k", None, 0, ctypes.byref(out)) == \
        errors.INVALID_PARAMS
    assert (out.hi, out.lo) == (0, 0)
    h = store._handle
    targets = (ctypes.c_char_p * 1)(b"x")
    assert L.kvcached_create_copy_task(h, None, targets, 1, ctypes.byref(out)) == \
        errors.INVALID_PARAMS
    assert L.kvcached_create_copy_task(h, b"k", targets, 0, ctypes.byref(out)) == \
        errors.INVALID_PARAMS
    assert L.kvcached_create_copy_task(h, b"k", targets, 1, None) == errors.INVALID_PARAMS
    assert L.kvcached_create_move_task(h, b"k", None, b"y", ctypes.byref(out)) == \
        errors.INVALID_PARAMS
    info = _lib.KvcachedTaskInfo()
    assert L.kvcached_query_task(h, _lib.KvcachedTaskId(1, 2), None) == errors.INVALID_PARAMS
    assert L.kvcached_query_task(h, _lib.KvcachedTaskId(1, 2), ctypes.byref(info)) == \
        errors.TASK_NOT_FOUND
    assert info.assigned_client is None and info.message is None


# ---- a master restart ----------------------------------------------------------------------

def store_objects(store):
    with urllib.request.urlopen("http://" + store.address("admin") + "/metrics", timeout=10) as r:
        m = re.search(r"^kvcached_store_objects (\d+)", r.read().decode(), re.M)
    assert m, "no kvcached_store_objects in the store's /metrics"
    return int(m.group(1))


def wait_for(what, check):
    deadline = time.monotonic() + TASK_DEADLINE_S
    while not check():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_copies_and_moves_survive_a_master_killed_and_restarted(prefix):
    """The stores' tables learn of each new replica and each dropped source,
    so the index a new master rebuilds from them has exactly the replicas
    the tasks left."""
    from conftest import Cluster, Proc
    c = Cluster(master_extra=["--default-kv-lease-ttl", "3s"])
    try:
        a = c.add_store("64MiB")
        b = c.add_store("64MiB")
        s = client(c)
        copied, moved = prefix + "copied", prefix + "moved"
        put_on(s, copied, a.segment)
        put_on(s, moved, a.segment)
        for task_id, rc in (s.create_copy_task(copied, [b.segment]),
                            s.create_move_task(moved, a.segment, b.segment)):
            assert rc == 0
            assert wait_task(s, task_id).status == SUCCESS
        # The tables the new master will rebuild from: a holds the copied
        # key's original, b the copy and the moved key.
        wait_for("the stores' tables follow the tasks",
                 lambda: (store_objects(a), store_objects(b)) == (1, 2))
        port = c.rpc.rsplit(":", 1)[1]
        c.master.proc.kill()
        c.master.proc.wait()
        c.master.stop()
        c.master = Proc(["master", "--port", port, "--admin-port", "0", "--no-meta",
                         "--default-kv-lease-ttl", "3s"])

        def remounted():
            segs = {x["name"]: x for x in json.loads(admin(c, "/api/v1/segments"))["segments"]}
            return (len(segs) == 2 and segs[a.segment]["objects"] == 1
                    and segs[b.segment]["objects"] == 2)
        wait_for("both stores remount their objects", remounted)
        assert holders(s, copied) == sorted([a.segment, b.segment])
        assert holders(s, moved) == [b.segment]
        for k in (copied, moved):
            assert s.get(k) == value_of(k)
        # Tasks are not kept across a restart.
        assert s.query_task(task_id) == (None, errors.TASK_NOT_FOUND)
        s.close()
    finally:
        c.stop()


def test_reads_during_moves_always_find_the_exact_bytes(two_stores, prefix):
    """Readers on other threads while every object moves back and forth
    between the two stores: each get returns the key's own bytes, never a
    miss (the target's replica joins before the source's is dropped, and the
    source's range waits for the leases readers hold)."""
    import threading
    a, b = two_stores.stores
    s = client(two_stores)
    keys = [f"{prefix}{i}" for i in range(16)]
    for k in keys:
        put_on(s, k, a.segment)
    stop = threading.Event()
    reads, bad = [0], []

    def reader():
        r = client(two_stores, "tasks-reader-host")  # over TCP, the stores' host is another
        while not stop.is_set():
            for k in keys:
                got = r.get(k)
                reads[0] += 1
                if got != value_of(k):
                    bad.append((k, len(got)))
        r.close()

    threads = [threading.Thread(target=reader) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        wait_for("the readers read", lambda: reads[0] >= len(keys) or bad)
        before = reads[0]
        where = {k: a.segment for k in keys}
        for _ in range(3):
            tasks = []
            for k in keys:
                dst = b.segment if where[k] == a.segment else a.segment
                task_id, rc = s.create_move_task(k, where[k], dst)
                assert rc == 0, errors.error_name(rc)
                tasks.append((k, task_id, dst))
            for k, task_id, dst in tasks:
                resp = wait_task(s, task_id)
                assert resp.status == SUCCESS, resp.message
                where[k] = dst
                assert holders(s, k) == [dst]
        during = reads[0] - before  # reads that overlapped the moves
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert during > 0
    assert bad == []
    s.close()
