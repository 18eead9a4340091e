"""Pins (docs/master.md, "Pins"): ReplicateConfig's with_soft_pin and
with_hard_pin against a real master and store under eviction pressure, and
across a master killed with SIGKILL and restarted (the stores' tables carry
the pins). Every value read back is derived from its key."""

import json
import time
import urllib.request

from conftest import Cluster, Proc
from kvcached import MooncakeDistributedStore, ReplicateConfig, errors

MiB = 1 << 20
SIZE = 4 * MiB
HARD = ReplicateConfig(with_hard_pin=True)
SOFT = ReplicateConfig(with_soft_pin=True)


def value(key, size=SIZE):
    seed = f"<{key}>".encode()
    return (seed * (size // len(seed) + 1))[:size]


def segments(cluster):
    with urllib.request.urlopen("http://" + cluster.master.address("admin") + "/api/v1/segments",
                                timeout=10) as r:
        return json.loads(r.read())["segments"]


def wait_remounted(cluster, objects, timeout_s=60):
    """Until the (new) master lists the store's segment with `objects`
    objects and out of its quarantine: the state the test needs, read from
    the admin API."""
    deadline = time.monotonic() + timeout_s
    seen = None
    while time.monotonic() < deadline:
        seen = segments(cluster)
        if len(seen) == 1 and seen[0]["objects"] == objects and not seen[0]["quarantined"]:
            return
        time.sleep(0.05)
    raise AssertionError(f"the store did not remount {objects} objects: {seen}")


def test_eviction_takes_unpinned_then_soft_never_hard():
    c = Cluster(master_extra=["--eviction-ratio", "0.01"])
    try:
        c.add_store("32MiB")
        s = MooncakeDistributedStore()
        assert s.setup(*c.setup_args()) == 0
        hard = [f"hard-{i}" for i in range(3)]  # 12 MiB
        soft = [f"soft-{i}" for i in range(2)]  # 8 MiB
        for k in hard:
            assert s.put(k, value(k), HARD) == 0
        for k in soft:
            assert s.put(k, value(k), SOFT) == 0
        # Ten times the free space of unpinned puts: each evicts unpinned
        # objects only, although the pinned ones are older.
        for i in range(30):
            k = f"plain-{i}"
            assert s.put(k, value(k)) == 0, k
            assert s.get(k) == value(k)
        for k in hard + soft:
            assert s.get(k) == value(k), k
        # Hard pins fill the pool: the soft pins go, the hard pins never.
        more_hard = []
        for i in range(8):
            k = f"hard-more-{i}"
            code = s.put(k, value(k), HARD)
            if code == errors.NO_AVAILABLE_HANDLE:
                break
            assert code == 0, (k, code)
            more_hard.append(k)
        else:
            raise AssertionError("eight more hard-pinned 4 MiB objects fit a 32 MiB pool")
        assert len(more_hard) == 5  # 32 MiB holds eight, three were there
        assert s.batch_is_exist(soft) == [0, 0]
        for k in hard + more_hard:
            assert s.get(k) == value(k), k
        assert s.put("plain-last", value("plain-last")) == errors.NO_AVAILABLE_HANDLE
        # Removing a hard-pinned object is allowed; its room serves puts again.
        assert s.remove(more_hard[0]) == 0
        assert s.put("plain-last", value("plain-last")) == 0
        s.close()
    finally:
        c.stop()


def test_pins_survive_a_master_restart():
    # A short lease keeps the rebuilt segment's quarantine (one lease TTL)
    # short; not so short that a read under a sanitizer on a loaded machine
    # outlives it (LEASE_EXPIRED reads as a miss).
    c = Cluster(master_extra=["--default-kv-lease-ttl", "3s"])
    try:
        c.add_store("16MiB")
        s = MooncakeDistributedStore()
        assert s.setup(*c.setup_args()) == 0
        assert s.put("pinned", value("pinned"), HARD) == 0
        assert s.put("plain", value("plain")) == 0
        port = c.rpc.rsplit(":", 1)[1]
        c.master.proc.kill()
        c.master.proc.wait()
        c.master.stop()
        c.master = Proc(["master", "--port", port, "--admin-port", "0", "--no-meta",
                         "--default-kv-lease-ttl", "3s"])
        wait_remounted(c, objects=2)
        # A 16 MiB object needs the whole pool: the new master evicts the
        # unpinned object for it but not the pinned one, so it does not fit.
        # 8 MiB then does, and leaves the pool below the high watermark (90%),
        # so the periodic pass cannot take it before it is read.
        assert s.put("whole", value("whole", 16 * MiB)) == errors.NO_AVAILABLE_HANDLE
        assert s.put("most", value("most", 8 * MiB)) == 0
        assert s.get("most") == value("most", 8 * MiB)
        assert s.get("pinned") == value("pinned")
        assert s.is_exist("plain") == 0
        s.close()
    finally:
        c.stop()


def test_replicate_config_fields():
    rc = ReplicateConfig()
    assert (rc.with_soft_pin, rc.with_hard_pin, rc.prefer_alloc_in_same_node) == (False,) * 3
    rc = ReplicateConfig(2, with_hard_pin=True, prefer_alloc_in_same_node=True)
    assert rc.replica_num == 2 and rc.with_hard_pin and rc.prefer_alloc_in_same_node
    assert "with_hard_pin=True" in repr(rc)


def test_a_replica_count_out_of_range_is_refused_not_read_as_flags(store, prefix):
    for n in (0, 17, 1 << 16, (1 << 17) + 1):
        assert store.put(prefix + "x", b"v", ReplicateConfig(n)) == errors.INVALID_PARAMS, n
    assert store.is_exist(prefix + "x") == 0
