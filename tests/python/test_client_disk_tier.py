"""A client that contributes a segment with a disk tier under it, set up the
way SGLang sets up Mooncake (`setup(..., enable_ssd_offload=True,
ssd_offload_path=DIR)`), from the outside: a real master with no store, so
every object lives in the clients' own 16 MiB segments; 1 MiB objects whose
bytes follow from the key, every read compared byte for byte. What is
checked:

- four segments' worth of objects put through one client all read back
  exact, through demotions to its disk tier and promotions from it; the
  tier's file is <DIR>/kvcached-client-0.kvtier, sized by the settings;
- without the switch (no keywords, or enable_ssd_offload=False with a
  path) the client behaves as before: objects beyond its memory are
  evicted (reads are exact or a miss) and nothing is written to DIR;
- enable_ssd_offload with no directory anywhere fails setup with
  INVALID_PARAMS, MOONCAKE_OFFLOAD_FILE_STORAGE_PATH supplies one (as in
  Mooncake), and a client that contributes no segment ignores the switch;
- two clients alive at once with one DIR get a file each; a client set up
  again with the DIR of one that closed reopens its file (the lowest free
  one) and finds the objects that had reached it.

Waits poll the master's /metrics and /api/v1/segments with a deadline. The
tier's file uses O_DIRECT, which tmpfs refuses: DIR lives under /var/tmp."""

import ctypes
import hashlib
import os
import random
import shutil
import tempfile
import time

import pytest

from conftest import Cluster, metrics, odirect_dir, segments, wait_for
from kvcached import MooncakeDistributedStore, ReplicateConfig, errors

MiB = 1 << 20
OBJECT = MiB
SEGMENT_BYTES = 16 * MiB
OBJECTS = 4 * SEGMENT_BYTES // OBJECT  # four segments' worth
TIER_0 = "kvcached-client-0.kvtier"
TIER_1 = "kvcached-client-1.kvtier"


def value_of(key, size=OBJECT):
    """The bytes of `key`'s object, from a hash of the key alone."""
    seed = int.from_bytes(hashlib.blake2b(key.encode(), digest_size=16).digest(), "little")
    return random.Random(seed).randbytes(size)


def read_all(store, keys):
    """{"exact" | "miss" | "wrong" | "error NAME": [keys]} over `keys`."""
    buf = ctypes.create_string_buffer(OBJECT)
    addr = ctypes.addressof(buf)
    out = {}
    for k in keys:
        n = store.get_into(k, addr, OBJECT)
        if n == errors.OBJECT_NOT_FOUND:
            kind = "miss"
        elif n < 0:
            kind = f"error {errors.error_name(n)}"
        else:
            kind = "exact" if ctypes.string_at(addr, n) == value_of(k) else "wrong"
        out.setdefault(kind, []).append(k)
    return out


def count(result, kind):
    return len(result.get(kind, []))


def others(result, allowed):
    return {kind: keys for kind, keys in result.items() if kind not in allowed}


def put_all(store, keys, config=None):
    """{key: error name} of the puts that did not return 0."""
    failed = {}
    for k in keys:
        rc = store.put(k, value_of(k), config)
        if rc != 0:
            failed[k] = errors.error_name(rc)
    return failed


def open_client(cluster, segment_bytes=SEGMENT_BYTES, **keywords):
    """A client of `cluster` contributing `segment_bytes`, set up with
    Mooncake's seven arguments and SGLang's keywords; (store, return code)."""
    s = MooncakeDistributedStore()
    return s, s.setup(*cluster.setup_args(segment_bytes), **keywords)




def master_count(cluster, name):
    return int(metrics(cluster.master)[f"kvcached_master_{name}_total"])


def disk_objects(cluster, segment):
    return int(metrics(cluster.master).get(
        f'kvcached_master_segment_disk_objects{{segment="{segment}"}}', 0))






def show(title, **counts):
    print(f"\n[{title}] " + ", ".join(f"{k}={v}" for k, v in counts.items()))


@pytest.fixture
def master():
    """A master with no store: the clients' segments are the whole pool."""
    c = Cluster()
    yield c
    c.stop()


@pytest.fixture
def disk():
    """An empty directory on a disk (not tmpfs: the tier's file is O_DIRECT)."""
    yield from odirect_dir("kvcached-client-disk-")


@pytest.fixture(autouse=True)
def no_disk_variables(monkeypatch):
    """The library reads these at setup: none leaks in from the caller."""
    for var in ("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", "MOONCAKE_ENABLE_SSD_OFFLOAD",
                "KVCACHED_DISK_PATH", "KVCACHED_DISK_SIZE", "KVCACHED_DISK_FSYNC"):
        monkeypatch.delenv(var, raising=False)


def default_size(path):
    """The tier file's size when none is set: 4x the segment, at most half
    the free space under `path` (4 KiB blocks)."""
    st = os.statvfs(path)
    half_free = st.f_bavail * st.f_frsize // 2 // 4096 * 4096
    return min(4 * SEGMENT_BYTES, half_free)


# ---- 1. four segments' worth through one client ------------------------------------------------

def test_ssd_offload_holds_four_segments(master, disk, monkeypatch):
    # The tier's file is a little larger than the objects (a 4 KiB header each).
    monkeypatch.setenv("KVCACHED_DISK_SIZE", "80MiB")
    s, rc = open_client(master, enable_ssd_offload=True, ssd_offload_path=disk)
    assert rc == 0
    keys = [f"cdt/{i}" for i in range(OBJECTS)]
    try:
        segment = s.get_hostname()
        t0 = time.monotonic()
        failed = put_all(s, keys)
        t_put = time.monotonic() - t0
        t0 = time.monotonic()
        got = read_all(s, keys)
        t_get = time.monotonic() - t0
        on_disk = disk_objects(master, segment)
        files = sorted(os.listdir(disk))
        size = os.path.getsize(os.path.join(disk, TIER_0))
    finally:
        s.close()
    counts = {k: master_count(master, k) for k in ("demoted", "promoted", "demote_failures",
                                                   "promote_failures", "disk_dropped")}
    show(f"{OBJECTS} MiB through a {SEGMENT_BYTES // MiB} MiB client segment", files=files,
         tier_bytes=size, exact=count(got, "exact"), misses=count(got, "miss"),
         on_disk_after_reads=on_disk, put_s=f"{t_put:.2f}", get_s=f"{t_get:.2f}", **counts)
    assert not failed, f"puts failed: {failed}"
    assert count(got, "exact") == OBJECTS, f"not every object read back exact: {others(got, ('exact',))}"
    assert files == [TIER_0, "kvcached-client-0.lock"], files
    assert size == 80 * MiB
    assert counts["demoted"] > 0 and counts["promoted"] > 0, counts
    assert counts["demote_failures"] == 0 and counts["promote_failures"] == 0, counts


# ---- 2. without the switch, as before ---------------------------------------------------------

@pytest.mark.parametrize("keywords", ["none", "disabled-with-path"])
def test_without_ssd_offload_behaves_as_before(master, disk, keywords):
    kw = {} if keywords == "none" else {"enable_ssd_offload": False, "ssd_offload_path": disk}
    s, rc = open_client(master, **kw)
    assert rc == 0
    keys = [f"cdt/off/{keywords}/{i}" for i in range(OBJECTS)]
    try:
        failed = put_all(s, keys)
        got = read_all(s, keys)
        fresh = [f"cdt/off/{keywords}/fresh/{i}" for i in range(8)]
        fresh_failed = put_all(s, fresh)
        fresh_got = read_all(s, fresh)
    finally:
        s.close()
    show(f"no disk tier ({keywords})", exact=count(got, "exact"), misses=count(got, "miss"),
         put_failures=len(failed), demotions=master_count(master, "demotions"))
    assert not failed and not fresh_failed, (failed, fresh_failed)
    assert not others(got, ("exact", "miss")), others(got, ("exact", "miss"))
    assert count(got, "miss") > 0  # more than the segment holds: evicted
    assert count(fresh_got, "exact") == len(fresh), fresh_got
    assert master_count(master, "demotions") == 0
    assert os.listdir(disk) == []


# ---- 3. the directory: none, Mooncake's variable, no segment --------------------------------------

def test_where_the_tier_goes(master, disk, monkeypatch):
    # On with no directory anywhere: refused, not guessed.
    s, rc = open_client(master, enable_ssd_offload=True)
    assert rc == errors.INVALID_PARAMS
    s.close()

    # Mooncake's variable names it when setup() does not (setup(dict) too).
    monkeypatch.setenv("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH", disk)
    s, rc = open_client(master, enable_ssd_offload=True)
    assert rc == 0
    try:
        assert os.path.getsize(os.path.join(disk, TIER_0)) == default_size(disk)
    finally:
        s.close()
    monkeypatch.delenv("MOONCAKE_OFFLOAD_FILE_STORAGE_PATH")
    s = MooncakeDistributedStore()
    config = {"local_hostname": master.setup_args()[0], "metadata_server": "P2PHANDSHAKE",
              "global_segment_size": SEGMENT_BYTES, "master_server_address": master.rpc,
              "enable_ssd_offload": "true", "ssd_offload_path": disk}
    assert s.setup(config) == 0
    s.close()

    # A client that contributes no segment has nothing to put a tier under.
    other = tempfile.mkdtemp(prefix="kvcached-client-disk-none-", dir="/var/tmp")
    try:
        s, rc = open_client(master, 0, enable_ssd_offload=True, ssd_offload_path=other)
        assert rc == 0
        s.close()
        assert os.listdir(other) == []
    finally:
        shutil.rmtree(other, ignore_errors=True)


# ---- 4. two clients at once, and a client set up again -------------------------------------------

def test_clients_sharing_a_directory_and_a_restart(master, disk):
    a, rc = open_client(master, enable_ssd_offload=True, ssd_offload_path=disk)
    assert rc == 0
    b, rc = open_client(master, enable_ssd_offload=True, ssd_offload_path=disk)
    assert rc == 0
    files = sorted(f for f in os.listdir(disk) if f.endswith(".kvtier"))
    b.close()
    assert files == [TIER_0, TIER_1], files

    keys = [f"cdt/restart/{i}" for i in range(3 * SEGMENT_BYTES // OBJECT)]
    here = ReplicateConfig(preferred_segment=a.get_hostname())
    try:
        segment = a.get_hostname()
        failed = put_all(a, keys, here)
        assert not failed, f"puts failed: {failed}"
        on_disk = wait_for("two segments' worth on disk",
                           lambda: (lambda n: n if n >= len(keys) - SEGMENT_BYTES // OBJECT
                                    else 0)(disk_objects(master, segment)),
                           logs=(master.master,))
    finally:
        a.close()

    # Set up again: the lowest free file, kvcached-client-0, is a's, with its records.
    c, rc = open_client(master, enable_ssd_offload=True, ssd_offload_path=disk)
    assert rc == 0
    try:
        segment = c.get_hostname()
        found = wait_for("the reopened tier's objects at the master",
                         lambda: disk_objects(master, segment), logs=(master.master,))
        wait_for("the remounted segment's quarantine ends",
                 lambda: not segments(master)[segment].get("quarantined", False),
                 logs=(master.master,))
        got = read_all(c, keys)
    finally:
        c.close()
    show("set up again", on_disk_at_close=on_disk, found=found, exact=count(got, "exact"),
         misses=count(got, "miss"))
    assert found >= on_disk, (found, on_disk)
    assert not others(got, ("exact", "miss")), others(got, ("exact", "miss"))
    assert count(got, "exact") >= on_disk, got
    assert sorted(f for f in os.listdir(disk) if f.endswith(".kvtier")) == [TIER_0, TIER_1]
