"""The zero-copy API through registered buffers (anonymous mmap regions, as
an inference engine's host KV pool is): put_from / get_into and their batch
forms, over shared memory and over TCP, with every byte checked; and a batch
of 256 objects of 4 MiB."""

import ctypes
import mmap
import os

import pytest

from kvcached import MooncakeDistributedStore, errors

MiB = 1 << 20


def address(region):
    """The address of an mmap region or bytearray (kept alive by the caller)."""
    return ctypes.addressof(ctypes.c_char.from_buffer(region))


def pattern(seed, size):
    """Distinct, position-dependent bytes: a random 64 KiB block stamped with
    the seed and the offset of each 4 KiB."""
    block = bytearray(os.urandom(min(size, 64 * 1024)))
    out = bytearray(block * (size // len(block)) + block[:size % len(block)])
    for off in range(0, size - 15, 4096):
        out[off:off + 16] = seed.to_bytes(8, "little") + off.to_bytes(8, "little")
    return out


@pytest.mark.parametrize("transport", ["auto", "tcp"])
def test_round_trip_through_registered_buffers(cluster, prefix, transport):
    s = MooncakeDistributedStore()
    assert s.setup({"master_server_address": cluster.rpc, "local_hostname": "pytest-host",
                    "transport": transport}) == 0
    n, size = 16, 256 * 1024 + 123  # not a multiple of anything the transport likes
    src = mmap.mmap(-1, n * size)
    dst = mmap.mmap(-1, n * size)
    src_addr, dst_addr = address(src), address(dst)
    assert s.register_buffer(src_addr, n * size) == 0
    assert s.register_buffer(dst_addr, n * size) == 0
    assert s.register_buffer(src_addr + 4096, 4096) == errors.INVALID_PARAMS  # overlaps
    for i in range(n):
        src[i * size:(i + 1) * size] = pattern(i, size)

    keys = [f"{prefix}{i}" for i in range(n)]
    # Single calls for the first half, batches for the second.
    for i in range(n // 2):
        assert s.put_from(keys[i], src_addr + i * size, size) == 0
    half = list(range(n // 2, n))
    assert s.batch_put_from([keys[i] for i in half], [src_addr + i * size for i in half],
                            [size] * len(half)) == [0] * len(half)
    for i in range(n // 2):
        assert s.get_into(keys[i], dst_addr + i * size, size) == size
    assert s.batch_get_into([keys[i] for i in half], [dst_addr + i * size for i in half],
                            [size] * len(half)) == [size] * len(half)
    assert dst[:] == src[:]

    # A larger buffer than the object: the size comes back, the rest is untouched.
    spare = bytearray(b"\x5a" * (size + 100))
    assert s.get_into(keys[0], address(spare), len(spare)) == size
    assert spare[:size] == src[:size] and spare[size:] == b"\x5a" * 100
    # Missing keys in a batch fail alone.
    assert s.batch_get_into([keys[1], prefix + "missing"], [dst_addr, dst_addr + size],
                            [size, size]) == [size, errors.OBJECT_NOT_FOUND]

    stats = s.stats()
    if transport == "tcp":
        assert stats["tcp_transfers"] >= 2 * n and stats["shm_transfers"] == 0
    else:
        assert stats["shm_transfers"] >= 2 * n and stats["tcp_transfers"] == 0
    assert s.unregister_buffer(src_addr) == 0
    assert s.unregister_buffer(dst_addr) == 0
    assert s.unregister_buffer(dst_addr) == errors.INVALID_PARAMS
    s.close()


def test_multi_buffer_forms(store, prefix):
    parts = [bytearray(os.urandom(n)) for n in (1000, 2000, 3000)]
    ptrs = [address(p) for p in parts]
    sizes = [len(p) for p in parts]
    assert store.batch_put_from_multi_buffers([prefix + "m"], [ptrs], [sizes]) == [0]
    assert store.get(prefix + "m") == b"".join(parts)
    outs = [bytearray(n) for n in sizes]
    assert store.batch_get_into_multi_buffers([prefix + "m"], [[address(o) for o in outs]],
                                              [sizes]) == [6000]
    assert outs == parts


def test_batch_of_256_objects_of_4_mib(fresh_cluster):
    """256 keys x 4 MiB in one batch each way (1 GiB), every byte compared.
    The read lease is long: under a sanitizer on a loaded machine moving a
    GiB can take longer than the default 10 s, and this test is about the
    bytes, not the lease (the client's lease checks are tested in
    tests/unit/client_stages_test.cpp)."""
    c = fresh_cluster("1536MiB", master_extra=("--default-kv-lease-ttl", "10m"))
    s = MooncakeDistributedStore()
    assert s.setup(*c.setup_args()) == 0
    n, size = 256, 4 * MiB
    src = mmap.mmap(-1, n * size)
    dst = mmap.mmap(-1, n * size)
    src_addr, dst_addr = address(src), address(dst)
    assert s.register_buffer(src_addr, n * size) == 0
    assert s.register_buffer(dst_addr, n * size) == 0
    base = pattern(0, size)
    for i in range(n):
        src[i * size:i * size + size] = base
        src[i * size:i * size + 8] = i.to_bytes(8, "little")  # every object distinct
        src[i * size + size - 8:i * size + size] = (i * 7919).to_bytes(8, "little")
    keys = [f"{'%064x' % i}_0_k" for i in range(n)]  # SGLang-shaped keys

    assert s.batch_put_from(keys, [src_addr + i * size for i in range(n)], [size] * n) == [0] * n
    assert s.batch_is_exist(keys) == [1] * n
    assert s.batch_get_into(keys, [dst_addr + i * size for i in range(n)], [size] * n) == \
        [size] * n
    for i in range(n):
        assert dst[i * size:(i + 1) * size] == src[i * size:(i + 1) * size], f"object {i}"
    # Again in reverse order into the same memory: placement follows the keys.
    ctypes.memset(dst_addr, 0, n * size)
    rev = list(reversed(range(n)))
    assert s.batch_get_into([keys[i] for i in rev], [dst_addr + j * size for j in range(n)],
                            [size] * n) == [size] * n
    for j, i in enumerate(rev):
        assert dst[j * size:(j + 1) * size] == src[i * size:(i + 1) * size], f"object {i}"
    assert s.remove_all(force=True) == n
    s.close()
    src.close()
    dst.close()
