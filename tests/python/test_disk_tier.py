"""The store's disk tier (`kvcached store --disk-path DIR --disk-size SIZE`)
from the outside: a real master and store on loopback, a client putting
1 MiB objects whose bytes follow from the key, every read compared byte for
byte. What is checked:

- a working set 8x the 16 MiB segment: every object reads back exact or is
  a miss, misses no more than the disk LRU dropped, and reads of objects
  only on disk are answered through promotions; with a disk that holds the
  whole set, every object is a hit;
- a store killed (SIGKILL) while demotions are being written and restarted
  with the same --segment-name, --owner-file and --disk-path finds every
  object that had reached disk; objects put around the kill are exact or
  missing, never other bytes (a torn record is never served);
- a --disk-path that cannot be used (missing, under a regular file, a
  regular file, not writable): the store starts, logs the path and the
  cause, reports kvcached_store_disk_tier_online 0, and serves from memory;
- a disk that fails under a running store (the KVCACHED_FAULT_DISK_EIO_AFTER
  fault hook): the tier goes offline, logged once, its objects become
  misses, and the memory tier goes on;
- a master killed and restarted on its ports: objects that were only on
  disk are found again once the store has remounted.

Waits poll /metrics or the master's /api/v1/segments with a deadline; no
fixed sleep is a synchronisation. Each test prints its counts (run with -s).
The tier's file uses O_DIRECT, which tmpfs refuses: the files live under
/var/tmp."""

import ctypes
import hashlib
import os
import random
import re
import signal
import threading
import time

import pytest

from conftest import (HOST_ID, Cluster, Proc, metric, metrics, odirect_dir, segments, tails,
                      wait_for)
from kvcached import MooncakeDistributedStore, errors

MiB = 1 << 20
OBJECT = MiB  # every object of these tests
SEGMENT = "16MiB"
SEGMENT_BYTES = 16 * MiB
HIGH_WATERMARK = 0.90  # the master's default --eviction-high-watermark-ratio


# ---- objects and reads --------------------------------------------------------------------

def value_of(key, size=OBJECT):
    """The bytes of `key`'s object, from a hash of the key alone: any reader
    can check every byte, and no two keys share their bytes."""
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")
    return random.Random(seed).randbytes(size)


class Reader:
    """Reads objects into one buffer and sorts each read: exact, miss
    (OBJECT_NOT_FOUND), wrong (other bytes), or error (any other code)."""

    def __init__(self, store):
        self.store = store
        self.buf = ctypes.create_string_buffer(OBJECT)
        self.addr = ctypes.addressof(self.buf)

    def read(self, key):
        n = self.store.get_into(key, self.addr, OBJECT)
        if n == errors.OBJECT_NOT_FOUND:
            return "miss"
        if n < 0:
            return f"error {errors.error_name(n)}"
        return "exact" if ctypes.string_at(self.addr, n) == value_of(key) else "wrong"

    def read_all(self, keys):
        """{kind: [keys]} over `keys`, in order."""
        out = {}
        for k in keys:
            out.setdefault(self.read(k), []).append(k)
        return out


def count(result, kind):
    return len(result.get(kind, []))


def others(result, allowed):
    """The reads of `result` that are of no kind in `allowed`."""
    return {kind: keys for kind, keys in result.items() if kind not in allowed}


def rate(result, total):
    return f"{count(result, 'exact')}/{total} hits ({100.0 * count(result, 'exact') / total:.1f}%)"


def client(cluster):
    """A client of `cluster` that contributes no memory: every object is in the store."""
    s = MooncakeDistributedStore()
    assert s.setup(*cluster.setup_args(0)) == 0
    return s


def put_all(store, keys):
    """Puts each key's value; {key: code} of the puts that did not return 0."""
    failed = {}
    for k in keys:
        rc = store.put(k, value_of(k))
        if rc != 0:
            failed[k] = errors.error_name(rc)
    return failed


# ---- processes ----------------------------------------------------------------------------

def start_store(cluster, name, disk=None, disk_size=None, owner_file=None, env=None):
    """A store of SEGMENT bytes named `name` at `cluster`'s master, with a
    disk tier in `disk` when given; restart() starts it again with the same
    arguments. It is stopped with the cluster."""
    args = ["store", "--master", cluster.rpc, "--segment-size", SEGMENT, "--segment-name", name,
            "--host-id", HOST_ID, "--ping-interval", "200ms", "--threads", "2"]
    if disk is not None:
        args += ["--disk-path", disk, "--disk-size", disk_size]
    if owner_file is not None:
        args += ["--owner-file", owner_file]
    store = Proc(args + cluster.extra, env_extra=env)
    store.segment, store.env = name, env
    cluster.stores.append(store)
    return store


def kill9(proc):
    """SIGKILL, as a crash: nothing of the process runs after it."""
    proc.proc.send_signal(signal.SIGKILL)
    proc.proc.wait()


def restart(cluster, store):
    """The killed `store` started again with its arguments (and environment)."""
    again = Proc(store.args, env_extra=store.env)
    again.segment, again.env = store.segment, store.env
    cluster.stores.append(again)
    return again


@pytest.fixture
def cluster():
    """A master with no store yet (each test starts its own)."""
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def workdir():
    """A directory on a disk (not tmpfs: the tier's file is O_DIRECT), removed afterwards."""
    yield from odirect_dir("kvcached-disk-tier-")


def disk_dir(workdir):
    path = os.path.join(workdir, "disk")
    os.mkdir(path)
    return path


# ---- metrics and the master's view ------------------------------------------------------------









MASTER_TIER = ("demotions", "demoted", "demote_failures", "clean_drops", "promotions", "promoted",
               "promote_failures", "promote_no_room", "disk_dropped")
STORE_TIER = ("writes", "reads", "evictions", "corrupt", "write_errors", "read_errors", "refused")


def master_counts(cluster):
    m = metrics(cluster.master)
    return {k: int(m[f"kvcached_master_{k}_total"]) for k in MASTER_TIER}


def store_counts(store):
    m = metrics(store)
    out = {k: int(m[f"kvcached_store_disk_{k}_total"]) for k in STORE_TIER}
    out["online"] = int(m["kvcached_store_disk_tier_online"])
    out["objects"] = int(m["kvcached_store_disk_objects"])
    return out


def settled(cluster, store):
    """Every demotion the master asked for is answered, and reached the
    file; the segment is under the high watermark (so no more will be
    asked for without new puts or reads). The counts, or None."""
    mc, sc = master_counts(cluster), store_counts(store)
    seg = segments(cluster).get(store.segment)
    if seg is None or mc["demotions"] != mc["demoted"] + mc["demote_failures"]:
        return None
    if seg["allocated_bytes"] > HIGH_WATERMARK * seg["capacity_bytes"]:
        return None
    if sc["writes"] < mc["demoted"]:
        return None
    return mc, sc


def settle(cluster, store):
    """Waits until settled(); (master counts, store counts)."""
    return wait_for(
        "the demotions settled and written", lambda: settled(cluster, store),
        logs=[store, cluster.master],
        state=lambda: f"master {master_counts(cluster)}, store {store_counts(store)}, "
                      f"segment {segments(cluster).get(store.segment)}")


def require_online(store):
    assert metric(store, "kvcached_store_disk_tier_online") == 1, \
        f"the disk tier is not online:\n{store.log()[-4000:]}"




def logged_at(level, text):
    """The lines of a kvcached log `text` at `level` ("error", "warning", "info"):
    each line is "<timestamp> <level> <role>: <message>"."""
    return [line for line in text.splitlines() if line.split(" ", 2)[1:2] == [level]]


def show(title, **counts):
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in counts.items()))


# ---- 1. a working set larger than memory ---------------------------------------------------

@pytest.mark.parametrize("disk_size, objects", [("64MiB", 128), ("256MiB", 128)],
                         ids=["disk-smaller-than-working-set", "disk-holds-working-set"])
def test_working_set_eight_times_the_segment(cluster, workdir, disk_size, objects):
    store = start_store(cluster, f"dt-ws-{os.getpid()}", disk_dir(workdir), disk_size)
    require_online(store)
    keys = [f"ws/{disk_size}/{i}" for i in range(objects)]
    s = client(cluster)
    try:
        t0 = time.monotonic()
        failed = put_all(s, keys)
        t_put = time.monotonic() - t0
        assert not failed, f"puts failed: {failed}"
        # Before any read, the objects only on disk are the store's records:
        # the master has heard of every record the disk LRU dropped.
        settle(cluster, store)
        wait_for("the master's objects on disk are the store's records",
                 lambda: metric(cluster.master, "kvcached_master_segment_disk_objects",
                                store.segment) == metric(store, "kvcached_store_disk_objects"),
                 logs=[store, cluster.master])
        put_mc = master_counts(cluster)
        t0 = time.monotonic()
        got = Reader(s).read_all(keys)
        t_get = time.monotonic() - t0
    finally:
        s.close()
    mc, sc = master_counts(cluster), store_counts(store)
    show(f"working set {objects} MiB, segment {SEGMENT}, disk {disk_size}",
         hits=rate(got, objects), misses=count(got, "miss"), put_s=f"{t_put:.2f}",
         get_s=f"{t_get:.2f}", dropped_before_gets=put_mc["disk_dropped"],
         **{f"master_{k}": v for k, v in mc.items()}, **{f"store_{k}": v for k, v in sc.items()})
    logs = tails(store, cluster.master)
    assert not others(got, ("exact", "miss")), \
        f"reads neither exact nor a miss: {others(got, ('exact', 'miss'))}{logs}"
    # Every miss is an object whose record the disk LRU dropped: the master
    # removed it when told, or when a load found the record gone (a drop
    # racing the read).
    misses = count(got, "miss")
    assert misses <= sc["evictions"] and misses <= mc["disk_dropped"] + mc["promote_failures"], \
        f"{got.get('miss')} {mc} {sc}{logs}"
    # Reads of objects only on disk went through promotions.
    assert mc["promoted"] > 0, mc
    assert mc["demoted"] > 0 and sc["writes"] > 0 and sc["corrupt"] == 0, (mc, sc)
    assert sc["online"] == 1 and sc["read_errors"] == sc["write_errors"] == 0, sc
    if disk_size == "64MiB":
        # The working set does not fit: the disk LRU ran, and the master heard.
        assert sc["evictions"] > 0 and put_mc["disk_dropped"] > 0, (put_mc, sc)
        assert count(got, "exact") > 0, got
    else:
        assert count(got, "exact") == objects, \
            f"not every object was a hit: {rate(got, objects)}: {others(got, ('exact',))}{logs}"
        assert sc["evictions"] == 0 and mc["disk_dropped"] == mc["promote_failures"] == 0, (mc, sc)


# ---- 2. kill -9 of the store mid-demotion, and a restart ------------------------------------

def test_store_killed_mid_demotion_finds_what_reached_disk(cluster, workdir):
    disk = disk_dir(workdir)
    owner = os.path.join(workdir, "owner-proof")
    store = start_store(cluster, f"dt-kill-{os.getpid()}", disk, "256MiB", owner)
    require_online(store)
    s = client(cluster)
    phase1 = [f"kill/p1/{i}" for i in range(24)]
    # A segment's worth more pushes every phase-1 object (the least recently
    # used) to disk; these may be on disk or only in memory at the kill.
    filler = [f"kill/f/{i}" for i in range(16)]
    phase2 = [f"kill/p2/{i}" for i in range(120)]
    try:
        failed = put_all(s, phase1 + filler)
        assert not failed, f"puts failed: {failed}"
        wait_for("phase 1 on disk: the master counts its objects only on disk",
                 lambda: metric(cluster.master, "kvcached_master_segment_disk_objects",
                                store.segment) >= len(phase1), logs=[store, cluster.master])
        mc, sc = settle(cluster, store)
        assert mc["demote_failures"] == 0, mc
        show("phase 1 on disk", objects=len(phase1) + len(filler), **mc,
             store_writes=sc["writes"])

        # Phase 2: puts in the background drive demotions; the store dies
        # while their writes are still coming.
        stop = threading.Event()
        done = []  # keys whose put was attempted, and the codes

        def load():
            for k in phase2:
                if stop.is_set():
                    break
                done.append((k, s.put(k, value_of(k))))

        writes_before = sc["writes"]
        putter = threading.Thread(target=load)
        putter.start()
        try:
            wait_for("phase 2 drives disk writes",
                     lambda: store_counts(store)["writes"] >= writes_before + 8,
                     logs=[store, cluster.master])
            assert putter.is_alive(), "phase 2 ended before the kill: nothing was in flight"
            at_kill = master_counts(cluster)
            kill9(store)
        finally:
            stop.set()
            putter.join()
        in_flight = at_kill["demotions"] - at_kill["demoted"] - at_kill["demote_failures"]
        acked = sum(1 for _, rc in done if rc == 0)
        show("killed", phase2_puts=len(done), acked=acked, demotions_in_flight=in_flight,
             **{f"master_{k}": v for k, v in at_kill.items()})
        first_log = store.log()
    finally:
        s.close()

    again = restart(cluster, store)
    require_online(again)
    found = re.search(r"(\d+) object\(s\) \(([^)]*)\) found and offered to the master([^\n]*)",
                      again.log())
    assert found, again.log()
    show("restarted", found=found.group(1), bytes=found.group(2), dropped=found.group(3) or "none",
         corrupt=store_counts(again)["corrupt"])
    assert int(found.group(1)) >= len(phase1), again.log()

    r = client(cluster)
    try:
        reader = Reader(r)
        got1 = reader.read_all(phase1)
        got2 = reader.read_all(filler + [k for k, _ in done])
    finally:
        r.close()
    show("after the restart", phase1=rate(got1, len(phase1)),
         phase2=rate(got2, len(filler) + len(done)), phase2_misses=count(got2, "miss"),
         **{f"master_{k}": v for k, v in master_counts(cluster).items()})
    logs = f"\n--- killed store ---\n{first_log[-3000:]}\n--- restarted ---\n{again.log()[-3000:]}"
    assert count(got1, "exact") == len(phase1), \
        f"phase 1 lost or damaged: {others(got1, ('exact',))}{logs}"
    assert not others(got2, ("exact", "miss")), \
        f"phase 2 neither exact nor missing: {others(got2, ('exact', 'miss'))}{logs}"


# ---- 3. a --disk-path that cannot be used -----------------------------------------------------

def unusable_path(workdir, kind):
    """(path, the cause the log must name) for each kind of unusable --disk-path."""
    if kind == "missing":
        return os.path.join(workdir, "no-such-dir"), r"does not exist"
    if kind == "no-space":  # a directory fine, but a file larger than its disk
        path = os.path.join(workdir, "disk")
        os.mkdir(path)
        return path, r"cannot (allocate|truncate).*(No space|too large)"
    plain = os.path.join(workdir, "plain-file")
    with open(plain, "wb") as f:
        f.write(b"not a directory")
    if kind == "under-a-file":
        return os.path.join(plain, "disk"), r"[Nn]ot a directory"
    if kind == "a-file":
        return plain, r"not a directory"
    # Not writable. Root writes through any mode bits: as root, sysfs, which
    # refuses every new file.
    if os.geteuid() == 0:
        return "/sys", r"Permission denied"
    locked = os.path.join(workdir, "read-only")
    os.mkdir(locked, 0o500)
    return locked, r"Permission denied"


@pytest.mark.parametrize("kind", ["missing", "under-a-file", "a-file", "not-writable", "no-space"])
def test_unusable_disk_path_runs_on_memory_alone(cluster, workdir, kind):
    path, cause = unusable_path(workdir, kind)
    size = "64MiB"
    if kind == "no-space":  # 1 TiB more than is free, within ext4's 16 TiB file limit
        st = os.statvfs(path)
        free_tib = st.f_bavail * st.f_frsize // (1 << 40)
        if free_tib > 14:
            pytest.skip(f"{free_tib} TiB free under {path}: no file here can be too large")
        size = f"{free_tib + 1}TiB"
    store = start_store(cluster, f"dt-bad-{kind}-{os.getpid()}", path, size)
    log = store.log()
    lines = [line for line in log.splitlines() if path in line and re.search(cause, line)]
    show(f"--disk-path {kind}", path=path, logged=lines[:1])
    assert lines, f"no log line names {path} and the cause /{cause}/:\n{log}"
    assert set(lines) & set(logged_at("error", log)), f"not logged as an error: {lines}"
    assert metric(store, "kvcached_store_disk_tier_online") == 0
    assert metric(cluster.master, "kvcached_master_segment_disk_capacity_bytes", store.segment) == 0

    keys = [f"bad/{kind}/{i}" for i in range(40)]  # 2.5 segments
    s = client(cluster)
    try:
        failed = put_all(s, keys)
        got = Reader(s).read_all(keys)
        # Half a segment put now is all hits (eviction takes the older objects).
        fresh = [f"bad/{kind}/fresh/{i}" for i in range(8)]
        fresh_failed = put_all(s, fresh)
        fresh_got = Reader(s).read_all(fresh)
    finally:
        s.close()
    mc = master_counts(cluster)
    show(f"--disk-path {kind}: memory only", hits=rate(got, len(keys)), misses=count(got, "miss"),
         put_failures=len(failed), fresh_hits=rate(fresh_got, len(fresh)),
         demotions=mc["demotions"])
    assert not failed and not fresh_failed, f"puts failed: {failed} {fresh_failed}"
    assert not others(got, ("exact", "miss")), others(got, ("exact", "miss"))
    assert count(got, "miss") > 0  # more than the segment: evicted, as without a tier
    assert count(fresh_got, "exact") == len(fresh), fresh_got
    assert mc["demotions"] == 0 and mc["promotions"] == 0, mc


# ---- 4. the disk fails under a running store -----------------------------------------------------

EIO_AFTER = 8


def test_disk_failing_under_a_running_store(cluster, workdir):
    store = start_store(cluster, f"dt-eio-{os.getpid()}", disk_dir(workdir), "256MiB",
                        env={"KVCACHED_FAULT_DISK_EIO_AFTER": str(EIO_AFTER)})
    if "fault hook" not in store.log():
        pytest.fail("the binary has no fault hooks: build with -DKVCACHED_FAULT_HOOKS=ON\n"
                    + store.log())
    require_online(store)
    keys = [f"eio/{i}" for i in range(48)]  # 3 segments: about 32 demotions asked for
    s = client(cluster)
    try:
        failed = put_all(s, keys)
        wait_for("the disk tier goes offline",
                 lambda: metric(store, "kvcached_store_disk_tier_online") == 0,
                 logs=[store, cluster.master])
        wait_for("the master holds nothing on that disk",
                 lambda: metric(cluster.master, "kvcached_master_segment_disk_objects",
                                store.segment) == 0, logs=[store, cluster.master],
                 state=lambda: f"master {master_counts(cluster)}, store {store_counts(store)}")
        got = Reader(s).read_all(keys)

        # The memory tier goes on: rounds of half a segment, each read back whole.
        rounds = []
        for r in range(4):
            fresh = [f"eio/after/{r}/{i}" for i in range(8)]
            rounds.append((put_all(s, fresh), Reader(s).read_all(fresh)))
        earlier = Reader(s).read_all([f"eio/after/{r}/{i}" for r in range(4) for i in range(8)])
    finally:
        s.close()
    mc, sc = master_counts(cluster), store_counts(store)
    offline = [line for line in logged_at("error", store.log()) if "disk tier" in line]
    show("disk failed", put_failures=len(failed), hits=rate(got, len(keys)),
         misses=count(got, "miss"), offline_lines=len(offline),
         **{f"master_{k}": v for k, v in mc.items()}, **{f"store_{k}": v for k, v in sc.items()})
    assert not failed, f"puts failed: {failed}"
    assert len(offline) == 1 and "offline" in offline[0], \
        f"expected one error line saying the tier went offline, got: {offline}"
    assert sc["writes"] == EIO_AFTER and sc["online"] == 0 and sc["objects"] == 0, sc
    # What had reached the disk is gone from the pool: misses, never other bytes.
    assert not others(got, ("exact", "miss")), others(got, ("exact", "miss"))
    assert count(got, "miss") >= EIO_AFTER, got
    assert mc["disk_dropped"] >= EIO_AFTER, mc
    for i, (put_failed, read) in enumerate(rounds):
        assert not put_failed and count(read, "exact") == 8, (i, put_failed, read)
    assert not others(earlier, ("exact", "miss")), others(earlier, ("exact", "miss"))


# ---- 5. a master restart with a disk-tier store -----------------------------------------------

def test_master_restart_finds_objects_on_disk(cluster, workdir):
    store = start_store(cluster, f"dt-master-{os.getpid()}", disk_dir(workdir), "256MiB")
    require_online(store)
    keys = [f"master/{i}" for i in range(40)]
    s = client(cluster)
    try:
        failed = put_all(s, keys)
    finally:
        s.close()
    assert not failed, f"puts failed: {failed}"
    mc, sc = settle(cluster, store)
    on_disk = int(metric(cluster.master, "kvcached_master_segment_disk_objects", store.segment))
    assert on_disk >= len(keys) - SEGMENT_BYTES // OBJECT, (on_disk, mc, sc)

    old = cluster.master
    rpc_port = old.address("rpc").rsplit(":", 1)[1]
    admin_port = old.address("admin").rsplit(":", 1)[1]
    kill9(old)
    old_log = old.log()
    old.stop()
    t0 = time.monotonic()
    cluster.master = Proc(["master", "--port", rpc_port, "--admin-port", admin_port, "--no-meta"]
                          + cluster.extra)
    assert cluster.master.address("rpc") == cluster.rpc
    wait_for("the store remounts with its objects on disk",
             lambda: store.segment in segments(cluster) and metric(
                 cluster.master, "kvcached_master_segment_disk_objects",
                 store.segment) == on_disk, logs=[store, cluster.master])
    t_remount = time.monotonic() - t0

    # Observed, not asserted: a read while the rebuilt segment is quarantined
    # (no new ranges for one lease) cannot be given a range to load into.
    s = client(cluster)
    try:
        early = Reader(s).read(keys[0])
        wait_for("the segment's quarantine ends",
                 lambda: not segments(cluster)[store.segment]["quarantined"],
                 logs=[store, cluster.master])
        got = Reader(s).read_all(keys)
    finally:
        s.close()
    mc2 = master_counts(cluster)
    show("master restarted", on_disk=on_disk, remount_s=f"{t_remount:.2f}",
         read_in_quarantine=early, hits=rate(got, len(keys)),
         **{f"new_master_{k}": v for k, v in mc2.items()})
    assert count(got, "exact") == len(keys), \
        f"{others(got, ('exact',))}\n--- store log ---\n{store.log()[-4000:]}\n" \
        f"--- old master ---\n{old_log[-2000:]}"
    assert mc2["promoted"] >= on_disk, mc2  # each object only on disk was loaded to be read
