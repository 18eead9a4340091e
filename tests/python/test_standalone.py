"""Standalone mode (docs/python.md, "Standalone mode"): SGLang's
standalone_storage allocates its host pool with MooncakeHostMemAllocator and
calls setup_dummy(mem_pool_size, local_buffer_size, MOONCAKE_CLIENT). Here
MOONCAKE_CLIENT is the admin address of the kvcached store on this host; the
bytes then move by shared memory between the caller's memory and the store's
segment. Every byte read back is checked."""
import ctypes
import json
import mmap
import os
import urllib.error
import urllib.request

import pytest

from kvcached import MooncakeDistributedStore, MooncakeHostMemAllocator, errors

MiB = 1 << 20


def pattern(key, size):
    seed = f"{key}|".encode()
    return (seed * (size // len(seed) + 1))[:size]


def test_allocator_hands_out_zeroed_page_aligned_memory_and_takes_it_back():
    a = MooncakeHostMemAllocator()
    p = a.alloc(3 * MiB)
    assert p != 0 and p % mmap.PAGESIZE == 0
    assert ctypes.string_at(p, 4096) == bytes(4096)
    ctypes.memmove(p + 3 * MiB - 5, b"tail!", 5)
    assert ctypes.string_at(p + 3 * MiB - 5, 5) == b"tail!"
    q = a.alloc(4096)
    assert q not in (0, p)
    assert a.free(p) == 0
    assert a.free(p) == errors.INVALID_PARAMS  # twice
    assert a.free(12345) == errors.INVALID_PARAMS  # never handed out
    assert a.alloc(0) == 0
    with pytest.raises(TypeError):
        a.alloc("1MiB")
    assert a.free(q) == 0


def test_setup_dummy_moves_bytes_through_the_local_store_by_shared_memory(fresh_cluster):
    cluster = fresh_cluster("64MiB")
    store_admin = cluster.stores[0].address("admin")
    alloc = MooncakeHostMemAllocator()
    size = 8 * MiB
    pool = alloc.alloc(size)
    assert pool != 0
    dummy = MooncakeDistributedStore()
    assert dummy.setup_dummy(size, 16 * MiB, store_admin) == 0
    try:
        assert dummy.register_buffer(pool, size) == 0
        keys = [f"page-{i}" for i in range(4)]
        page = MiB
        for i, k in enumerate(keys):
            ctypes.memmove(pool + i * page, pattern(k, page), page)
        assert dummy.batch_put_from(keys, [pool + i * page for i in range(4)], [page] * 4) == \
            [0] * 4
        # Read back into the other half of the pool, every byte compared.
        out = pool + 4 * page
        assert dummy.batch_get_into(keys, [out + i * page for i in range(4)], [page] * 4) == \
            [page] * 4
        for i, k in enumerate(keys):
            assert ctypes.string_at(out + i * page, page) == pattern(k, page), k
        stats = dummy.stats()
        assert stats["shm_transfers"] >= 8 and stats["tcp_transfers"] == 0, stats
        # An ordinary client of the same pool sees the same objects.
        other = MooncakeDistributedStore()
        assert other.setup(*cluster.setup_args()) == 0
        assert other.get(keys[2]) == pattern(keys[2], page)
        other.close()
    finally:
        dummy.close()
        assert alloc.free(pool) == 0


def test_setup_dummy_failures_say_why(fresh_cluster, tmp_path, monkeypatch):
    s = MooncakeDistributedStore()
    # Nothing listens there.
    with socket_bound() as port:
        assert s.setup_dummy(MiB, MiB, f"127.0.0.1:{port}") == errors.RPC_FAIL
    assert s.setup_dummy(MiB, MiB, "") == errors.INVALID_PARAMS
    assert s.setup_dummy(-1, MiB, "127.0.0.1:1") == errors.INVALID_PARAMS
    with pytest.raises(TypeError):
        s.setup_dummy("1", MiB, "127.0.0.1:1")
    # The store's path answers GET and HEAD only.
    plain = fresh_cluster("64MiB")
    url = "http://" + plain.stores[0].address("admin") + "/api/v1/client"
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(urllib.request.Request(url, data=b"x", method="POST"), timeout=10)
    assert refused.value.code == 405
    with urllib.request.urlopen(url, timeout=10) as r:
        info = json.loads(r.read())
    assert info["master"] == plain.rpc and info["segment"] == plain.stores[0].segment
    assert info["segment_size"] == 64 * MiB and info["shm"] is True
    # A port that is not a store's admin port (the master's) answers 404.
    token = tmp_path / "token"
    token.write_text("standalone-test-token-0123456789\n")
    os.chmod(token, 0o600)
    cluster = fresh_cluster("64MiB", extra=["--token-file", str(token)])
    monkeypatch.setenv("KVCACHED_TOKEN_FILE", str(token))
    assert s.setup_dummy(MiB, MiB, cluster.master.address("admin")) == errors.INVALID_PARAMS
    assert s.health_check() == 1  # nothing was set up
    # The store's port with the cluster's token works; without it, 401.
    admin = cluster.stores[0].address("admin")
    assert s.setup_dummy(MiB, MiB, "http://" + admin) == 0
    assert s.put("with-token", b"v") == 0 and s.get("with-token") == b"v"
    s.close()
    monkeypatch.delenv("KVCACHED_TOKEN_FILE")
    assert s.setup_dummy(MiB, MiB, admin) == errors.ILLEGAL_CLIENT


class socket_bound:
    """A loopback port bound but not listening: connecting is refused."""

    def __enter__(self):
        import socket
        self.s = socket.socket()
        self.s.bind(("127.0.0.1", 0))
        return self.s.getsockname()[1]

    def __exit__(self, *exc):
        self.s.close()
