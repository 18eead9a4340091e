"""Mooncake's tensor calls against a real master and store: every value and
every header byte compared exactly. The object layout is checked against
an encoder written here from Mooncake's structs (integration_utils.h:
TensorObjectHeader, TensorLayoutMetadata, LayoutAxis; store_py_internal.h:
WriterShardManifest), not against kvcached's own code: objects this file
builds by hand must read back, and objects kvcached writes must have these
bytes."""

import ctypes
import inspect
import os
import struct
import subprocess
import sys
import types

import pytest

torch = pytest.importorskip("torch", reason="the tensor calls need PyTorch (python3-torch)")

from kvcached import (MooncakeDistributedStore, ParallelAxis, ReadTarget,  # noqa: E402
                      ReplicateConfig, TensorParallelism, errors)

# ---- Mooncake's layout, written from its structs ------------------------------------------
HEADER = struct.Struct("<IHHiiIIQQ")
SHAPES = struct.Struct("<8q8qII")
AXIS = struct.Struct("<iiiiiiq")
HEADER_SIZE = 304
MANIFEST = struct.Struct("<IHHiiiii4x8q")
CODES = {torch.float32: 0, torch.float64: 1, torch.int8: 2, torch.uint8: 3, torch.int16: 4,
         torch.int32: 6, torch.int64: 8, torch.bool: 10, torch.float16: 11, torch.bfloat16: 12}
KINDS = {"dp": 0, "tp": 1, "ep": 2, "pp": 3}


def padded(shape):
    return list(shape) + [-1] * (8 - len(shape))


def mooncake_object(dtype_code, local_shape, data, global_shape=None, axes=(), element=None):
    """An object as Mooncake writes it. axes: (kind, rank, size, split_dim,
    reserved0) tuples; a shard when there are any."""
    global_shape = local_shape if global_shape is None else global_shape
    header = HEADER.pack(0x4D4F4F4E, 1, HEADER_SIZE, dtype_code, len(global_shape),
                         1 if axes else 0, 0, HEADER_SIZE, len(data))
    header += SHAPES.pack(*padded(global_shape), *padded(local_shape), len(axes), 0)
    for i, (kind, rank, size, split_dim, extra) in enumerate(axes):
        extent = local_shape[split_dim] if split_dim >= 0 else 0
        header += AXIS.pack(KINDS[kind], i, rank, size, split_dim, extra, extent)
    header += bytes(HEADER_SIZE - len(header))
    return header + data


def raw(t):
    """The bytes of a tensor's elements, in order."""
    t = t.contiguous()
    return ctypes.string_at(t.data_ptr(), t.numel() * t.element_size()) if t.numel() else b""


def same(got, want):
    """Equal dtype, shape and bytes."""
    return got is not None and got.dtype == want.dtype and tuple(got.shape) == \
        tuple(want.shape) and raw(got) == raw(want)


def sample(dtype, shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    if dtype == torch.bool:
        return torch.randint(0, 2, shape, generator=g).bool()
    if dtype == torch.uint8:
        return torch.randint(0, 256, shape, generator=g, dtype=torch.uint8)
    if dtype == torch.int64:
        return torch.randint(-2**62, 2**62, shape, generator=g, dtype=torch.int64)
    return torch.randn(shape, generator=g).to(dtype)


def shard_sizes(extent, count):
    """Mooncake's shard ranges: shard r is [e*r//n, e*(r+1)//n)."""
    return [extent * (r + 1) // count - extent * r // count for r in range(count)]


def buffer(size, fill=0xAB):
    buf = ctypes.create_string_buffer(bytes([fill]) * size, size)
    return buf, ctypes.addressof(buf)


def tp(rank, size, split_dim):
    return TensorParallelism([ParallelAxis("tp", rank, size, split_dim=split_dim)])


DTYPES = [torch.float32, torch.float16, torch.bfloat16, torch.int64, torch.uint8, torch.bool]
SHAPES_OK = [(), (7,), (3, 5), (2, 3, 4), (1, 2, 1, 3, 1, 2, 1, 2)]


# ---- the module's names ---------------------------------------------------------------------

def test_classes_have_mooncakes_fields_and_defaults():
    axis = ParallelAxis()
    assert (axis.kind, axis.rank, axis.size, axis.split_dim, axis.expert_id, axis.stage_id) == \
        ("", 0, 1, None, None, None)
    assert TensorParallelism().axes == []
    target = ReadTarget()
    assert target.mode == "as_stored" and target.parallelism is None
    target.mode = "FULL"
    assert target.mode == "full"
    with pytest.raises(RuntimeError):
        target.mode = "everything"
    assert target.mode == "full"
    with pytest.raises(AttributeError):
        axis.colour = "red"  # fixed fields, as Mooncake's bound classes


def test_signatures_match_mooncakes_bindings():
    sig = lambda name: list(inspect.signature(getattr(MooncakeDistributedStore, name)).parameters)
    assert sig("put_tensor") == ["self", "key", "tensor"]
    assert sig("batch_put_tensor") == ["self", "keys", "tensors_list"]
    assert sig("get_tensor_into") == ["self", "key", "buffer_ptr", "size"]
    assert sig("pub_tensor_with_tp") == ["self", "key", "tensor", "config", "tp_rank", "tp_size",
                                         "split_dim"]
    assert sig("batch_get_tensor_with_tp") == ["self", "base_keys", "tp_rank", "tp_size"]
    assert sig("batch_get_tensor_with_tp_into") == ["self", "base_keys", "buffer_ptrs", "sizes",
                                                    "tp_rank", "tp_size", "split_dim"]
    assert sig("put_tensor_with_parallelism") == ["self", "key", "tensor", "parallelism", "config",
                                                  "writer_partition"]
    assert sig("batch_put_tensor_with_parallelism_from") == [
        "self", "keys", "buffer_ptrs", "sizes", "parallelisms", "config", "writer_partitions"]
    assert sig("batch_get_tensor_with_parallelism_into") == ["self", "keys", "buffer_ptrs",
                                                             "sizes", "targets"]
    assert sig("upsert_pub_tensor") == ["self", "key", "tensor", "config"]


# ---- whole tensors ---------------------------------------------------------------------------

@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_round_trip_every_dtype_and_shape(store, prefix, dtype):
    tensors = [sample(dtype, s, i) for i, s in enumerate(SHAPES_OK)]
    for i, t in enumerate(tensors):
        assert store.put_tensor(f"{prefix}{i}", t) == 0
        assert same(store.get_tensor(f"{prefix}{i}"), t), SHAPES_OK[i]
    keys = [f"{prefix}b{i}" for i in range(len(tensors))]
    assert store.batch_put_tensor(keys, tensors) == [0] * len(tensors)
    got = store.batch_get_tensor(keys + [prefix + "missing"])
    assert all(same(g, t) for g, t in zip(got, tensors)) and got[-1] is None


def test_objects_have_mooncakes_bytes(store, prefix):
    t = sample(torch.int16, (3, 4), 7)
    assert store.put_tensor(prefix + "t", t) == 0
    assert store.get(prefix + "t") == mooncake_object(4, (3, 4), raw(t))
    scalar = torch.tensor(2.5, dtype=torch.float64)
    assert store.put_tensor(prefix + "s", scalar) == 0
    assert store.get(prefix + "s") == mooncake_object(1, (), raw(scalar))
    # A non-contiguous tensor is stored in its logical order.
    view = torch.arange(12, dtype=torch.int32).reshape(3, 4).t()
    assert store.put_tensor(prefix + "v", view) == 0
    assert store.get(prefix + "v") == mooncake_object(6, (4, 3), raw(view.contiguous()))
    assert same(store.get_tensor(prefix + "v"), view.contiguous())


def test_objects_built_to_mooncakes_layout_read_back(store, prefix):
    t = sample(torch.bfloat16, (2, 5), 3)
    assert store.put(prefix + "bf", mooncake_object(12, (2, 5), raw(t))) == 0
    assert same(store.get_tensor(prefix + "bf"), t)
    shard = sample(torch.float32, (2, 3), 4)
    obj = mooncake_object(0, (2, 3), raw(shard), (4, 3), [("tp", 1, 2, 0, 0)])
    assert store.put(prefix + "sh", obj) == 0
    assert same(store.get_tensor(prefix + "sh"), shard)
    # A dtype code this PyTorch may lack (uint16): read when it has it.
    data = struct.pack("<3H", 1, 2, 65535)
    assert store.put(prefix + "u16", mooncake_object(5, (3,), data)) == 0
    got = store.get_tensor(prefix + "u16")
    if hasattr(torch, "uint16"):
        assert got.dtype == torch.uint16 and raw(got) == data
    else:
        assert got is None
    # Not tensor objects: bytes, a wrong magic, a size disagreeing with the shape.
    assert store.put(prefix + "bytes", b"just bytes") == 0
    bad_magic = bytearray(mooncake_object(0, (1,), b"\0" * 4))
    bad_magic[0] ^= 1
    assert store.put(prefix + "magic", bytes(bad_magic)) == 0
    assert store.put(prefix + "short", mooncake_object(0, (2,), b"\0" * 4)) == 0
    assert store.batch_get_tensor([prefix + "bytes", prefix + "magic", prefix + "short"]) == \
        [None] * 3


def test_empty_dimensions_and_too_many_are_refused(store, prefix):
    # Mooncake's header has no room for an empty dimension of a whole tensor.
    for i, t in enumerate([torch.zeros(0), torch.zeros(3, 0), torch.zeros((1,) * 9)]):
        assert store.put_tensor(f"{prefix}{i}", t) == errors.INVALID_PARAMS
        assert store.is_exist(f"{prefix}{i}") == 0


def test_bad_arguments(store, prefix):
    assert store.put_tensor(prefix + "n", [1, 2, 3]) == errors.INVALID_PARAMS
    assert store.put_tensor(prefix + "c", torch.zeros(2, dtype=torch.complex64)) == \
        errors.INVALID_PARAMS
    assert store.is_exist(prefix + "n") == 0
    with pytest.raises(TypeError):
        store.put_tensor(7, torch.zeros(1))
    with pytest.raises(TypeError):
        store.get_tensor(b"bytes-key")
    a, b = torch.ones(2), torch.zeros(3)
    assert store.batch_put_tensor([prefix + "a", prefix + "b"], [a]) == [errors.INVALID_PARAMS] * 2
    assert store.batch_put_tensor([], []) == []
    # One bad value fails only itself.
    assert store.batch_put_tensor([prefix + "a", prefix + "x", prefix + "b"], [a, "x", b]) == \
        [0, errors.INVALID_PARAMS, 0]
    assert same(store.get_tensor(prefix + "b"), b) and store.is_exist(prefix + "x") == 0


def test_missing_keys_and_existing_keys(store, prefix):
    assert store.get_tensor(prefix + "missing") is None
    assert store.batch_get_tensor([prefix + "m1", prefix + "m2"]) == [None, None]
    first = torch.arange(4)
    assert store.put_tensor(prefix + "k", first) == 0
    # Mooncake's put convention: 0, and the object is left as it was.
    assert store.put_tensor(prefix + "k", torch.zeros(9)) == 0
    assert same(store.get_tensor(prefix + "k"), first)


def test_before_setup_and_after_close(cluster):
    s = MooncakeDistributedStore()
    t = torch.ones(2)
    assert s.put_tensor("k", t) == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.batch_put_tensor(["a", "b"], [t, t]) == [errors.UNAVAILABLE_IN_CURRENT_STATUS] * 2
    assert s.put_tensor_from("k", 4096, 400) == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.get_tensor("k") is None and s.batch_get_tensor(["a"]) == [None]
    assert s.get_tensor_with_parallelism("k", ReadTarget("full")) is None
    assert s.setup(*cluster.setup_args()) == 0
    assert s.close() == 0
    assert s.put_tensor_with_tp("k", t, 0, 2) == errors.UNAVAILABLE_IN_CURRENT_STATUS
    assert s.get_tensor_with_tp("k", 0, 2) is None


def test_pub_tensor_takes_a_replicate_config(store, prefix, cluster):
    t = sample(torch.float32, (4, 4), 1)
    local = ReplicateConfig(preferred_segment=cluster.stores[0].segment)
    assert store.pub_tensor(prefix + "p", t, local) == 0
    assert store.batch_pub_tensor([prefix + "b1", prefix + "b2"], [t, t], local) == [0, 0]
    assert store.pub_tensor_with_tp(prefix + "tp", t, local, 0, 2, 1) == 0
    assert all(same(store.get_tensor(k), t) for k in (prefix + "p", prefix + "b2"))
    # Mooncake: preferred_segments, when given, name one segment per replica.
    bad = ReplicateConfig(replica_num=1, preferred_segments=["a", "b"])
    assert store.pub_tensor(prefix + "bad", t, bad) == errors.INVALID_PARAMS
    assert store.batch_pub_tensor([prefix + "bad"], [t], bad) == [errors.INVALID_PARAMS]
    assert store.is_exist(prefix + "bad") == 0
    with pytest.raises(TypeError):
        store.pub_tensor(prefix + "c", t, config="not a config")


# ---- into the caller's buffer, from the caller's buffer ----------------------------------------

def test_get_tensor_into_views_the_callers_buffer(store, prefix):
    t = sample(torch.float16, (3, 7), 2)
    assert store.put_tensor(prefix + "t", t) == 0
    need = HEADER_SIZE + t.numel() * 2
    small, small_addr = buffer(need - 1)
    assert store.get_tensor_into(prefix + "t", small_addr, need - 1) is None
    assert small.raw == b"\xab" * (need - 1)  # nothing written
    buf, addr = buffer(need + 64)
    got = store.get_tensor_into(prefix + "t", addr, need + 64)
    assert same(got, t) and got.data_ptr() == addr + HEADER_SIZE
    assert buf.raw[:need] == store.get(prefix + "t") and buf.raw[need:] == b"\xab" * 64
    assert store.get_tensor_into(prefix + "missing", addr, need) is None


def test_batch_get_tensor_into(store, prefix):
    tensors = [sample(torch.int64, (5,), 1), torch.tensor(True), sample(torch.uint8, (2, 2), 3)]
    keys = [f"{prefix}{i}" for i in range(3)]
    assert store.batch_put_tensor(keys, tensors) == [0, 0, 0]
    sizes = [HEADER_SIZE + t.numel() * t.element_size() for t in tensors]
    bufs = [buffer(s) for s in sizes]
    bufs[2] = buffer(sizes[2] - 1)
    got = store.batch_get_tensor_into(keys + [prefix + "missing"], [a for _, a in bufs] +
                                      [bufs[0][1]], sizes[:2] + [sizes[2] - 1, sizes[0]])
    assert same(got[0], tensors[0]) and same(got[1], tensors[1])
    assert got[2] is None and bufs[2][0].raw == b"\xab" * (sizes[2] - 1)
    assert got[3] is None
    # Mismatched lists: Mooncake's list of INVALID_PARAMS.
    assert store.batch_get_tensor_into(keys, [bufs[0][1]], [sizes[0]]) == \
        [errors.INVALID_PARAMS] * 3


def test_put_tensor_from_stores_a_serialised_object(store, prefix):
    t = sample(torch.float32, (4, 3), 5)
    obj = mooncake_object(0, (4, 3), raw(t))
    buf, addr = buffer(len(obj))
    ctypes.memmove(addr, obj, len(obj))
    assert store.put_tensor_from(prefix + "f", addr, len(obj)) == 0
    assert store.get(prefix + "f") == obj and same(store.get_tensor(prefix + "f"), t)
    # The size must be the object's: header plus data, no more, no less.
    assert store.put_tensor_from(prefix + "long", addr, len(obj) - 1) == errors.INVALID_PARAMS
    junk, junk_addr = buffer(400)
    assert store.put_tensor_from(prefix + "junk", junk_addr, 400) == errors.INVALID_PARAMS
    assert store.put_tensor_from(prefix + "null", 0, 400) == errors.INVALID_PARAMS
    # Batch: any invalid buffer fails every key, as in Mooncake.
    assert store.batch_put_tensor_from([prefix + "b1", prefix + "b2"], [addr, junk_addr],
                                       [len(obj), 400]) == [errors.INVALID_PARAMS] * 2
    assert store.batch_put_tensor_from([prefix + "b1", prefix + "b2"], [addr, addr],
                                       [len(obj), len(obj)]) == [0, 0]
    assert store.batch_put_tensor_from([prefix + "b1"], [addr, addr], [len(obj)]) == \
        [errors.INVALID_PARAMS]
    assert all(store.is_exist(prefix + k) == 0 for k in ("long", "junk", "null"))


# ---- tensor parallelism ---------------------------------------------------------------------

@pytest.mark.parametrize("split_dim", [0, 1])
@pytest.mark.parametrize("tp_size", [2, 3, 4, 7])
def test_tp_shards_are_torch_splits(store, prefix, split_dim, tp_size):
    x = torch.arange(6 * 10, dtype=torch.int64).reshape(6, 10) * 1000003
    assert store.put_tensor_with_tp(prefix, x, 0, tp_size, split_dim) == 0
    assert store.is_exist(prefix) == 0
    sizes = shard_sizes(x.shape[split_dim], tp_size)
    want = torch.split(x, sizes, dim=split_dim)
    got = [store.get_tensor_with_tp(prefix, r, tp_size, split_dim) for r in range(tp_size)]
    for r in range(tp_size):
        assert store.is_exist(f"{prefix}_tp_{r}") == 1
        assert same(got[r], want[r].contiguous()), r
        if x.shape[split_dim] % tp_size == 0:
            assert same(got[r], torch.chunk(x, tp_size, dim=split_dim)[r].contiguous())
    assert same(torch.cat(got, dim=split_dim), x)
    assert store.is_exist(f"{prefix}_tp_{tp_size}") == 0


def test_tp_shard_headers_are_mooncakes(store, prefix):
    x = sample(torch.float32, (3, 5), 8)
    # Three rows in four shards: the first is empty.
    assert store.put_tensor_with_tp(prefix, x, tp_size=4, split_dim=0) == 0
    for r, rows in enumerate(shard_sizes(3, 4)):
        start = 3 * r // 4
        shard = x[start:start + rows]
        assert store.get(f"{prefix}_tp_{r}") == mooncake_object(
            0, (rows, 5), raw(shard), (3, 5), [("tp", r, 4, 0, 0)])
        assert same(store.get_tensor_with_tp(prefix, r, 4), shard)


def test_tp_batches_into_and_from(store, prefix):
    xs = [sample(torch.bfloat16, (4, 6), 1), sample(torch.int64, (8, 2), 2)]
    keys = [prefix + "a", prefix + "b"]
    assert store.batch_put_tensor_with_tp(keys, xs, 0, 2, 0) == [0, 0]
    for r in range(2):
        got = store.batch_get_tensor_with_tp(keys + [prefix + "missing"], r, 2)
        assert [same(g, x.chunk(2, 0)[r].contiguous()) for g, x in zip(got, xs)] == [True, True]
        assert got[2] is None
    sizes = [HEADER_SIZE + x[:x.shape[0] // 2].numel() * x.element_size() for x in xs]
    bufs = [buffer(s) for s in sizes]
    got = store.batch_get_tensor_with_tp_into(keys, [a for _, a in bufs], sizes, 1, 2)
    assert same(got[0], xs[0][2:]) and same(got[1], xs[1][4:])
    assert got[0].data_ptr() == bufs[0][1] + HEADER_SIZE
    small, small_addr = buffer(sizes[0] - 1)
    assert store.get_tensor_with_tp_into(keys[0], small_addr, sizes[0] - 1, 1, 2) is None
    assert small.raw == b"\xab" * (sizes[0] - 1)
    assert same(store.get_tensor_with_tp_into(keys[0], bufs[0][1], sizes[0], 0, 2), xs[0][:2])
    # tp_size 1 is the plain object.
    assert store.put_tensor_with_tp(prefix + "one", xs[0]) == 0
    assert same(store.get_tensor_with_tp(prefix + "one"), xs[0])
    # From a serialised whole tensor: split and stored like put_tensor_with_tp.
    obj = mooncake_object(8, (8, 2), raw(xs[1]))
    src, addr = buffer(len(obj))
    ctypes.memmove(addr, obj, len(obj))
    assert store.put_tensor_with_tp_from(prefix + "f", addr, len(obj), 0, 4, 0) == 0
    assert store.batch_put_tensor_with_tp_from([prefix + "g"], [addr], [len(obj)], 0, 2, 1) == [0]
    for r in range(4):
        assert same(store.get_tensor_with_tp(prefix + "f", r, 4), xs[1][2 * r:2 * r + 2])
    assert same(store.get_tensor_with_tp(prefix + "g", 1, 2), xs[1][:, 1:])
    assert store.put_tensor_with_tp_from(prefix + "h", addr, len(obj)) == 0
    assert store.get(prefix + "h") == obj


def test_tp_bad_arguments_and_mismatched_headers(store, prefix):
    x = torch.ones(4, 4)
    assert store.put_tensor_with_tp(prefix + "a", x, 0, 2, 2) == errors.INVALID_PARAMS
    assert store.put_tensor_with_tp(prefix + "b", "x", 0, 2, 0) == errors.INVALID_PARAMS
    assert store.put_tensor_with_tp(prefix + "c", torch.tensor(1.0), 0, 2, 0) == \
        errors.INVALID_PARAMS
    assert store.batch_put_tensor_with_tp([prefix + "d"], [x, x], 0, 2) == [errors.INVALID_PARAMS]
    assert all(store.is_exist(f"{prefix}{k}_tp_0") == 0 for k in "abcd")
    # A whole tensor under the shard's name is not a TP shard.
    assert store.put_tensor(prefix + "e_tp_0", x) == 0
    assert store.get_tensor_with_tp(prefix + "e", 0, 2) is None
    assert store.put_tensor_with_tp(prefix + "f", x, 0, 2) == 0
    assert store.get_tensor_with_tp(prefix + "f", 2, 4) is None  # no f_tp_2
    assert store.get_tensor_with_tp(prefix + "missing", 0, 2) is None


# ---- the unified parallelism API --------------------------------------------------------------

def test_lone_tp_axis_shards_full_and_reshard(store, prefix):
    x = sample(torch.float32, (8, 6), 11)
    for r in range(4):  # each rank writes its own shard
        assert store.put_tensor_with_parallelism(prefix, x[2 * r:2 * r + 2], tp(r, 4, 0)) == 0
        assert store.is_exist(f"{prefix}_tp_{r}") == 1
    assert store.is_exist(prefix + "__parallelism_manifest") == 1
    assert store.get(prefix + "__parallelism_manifest") == MANIFEST.pack(
        0x574D414E, 1, 96, 0, 2, 0, 4, 0, *padded((8, 6)))
    for r in range(4):
        shard = x[2 * r:2 * r + 2]
        assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", tp(r, 4, 0))),
                    shard)
        assert same(store.get_tensor_with_tp(prefix, r, 4), shard)
        assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("as_stored",
                                                                         tp(r, 4, 0))), shard)
    full = ReadTarget("full", tp(0, 4, 0))
    assert same(store.get_tensor_with_parallelism(prefix, full), x)
    # A TP layout of another size is cut from the gathered tensor.
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", tp(1, 2, 0))),
                x[4:])
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", tp(2, 8, 0))),
                x[2:3])
    # Into the caller's buffer: the whole tensor, exactly sized, and one byte short.
    need = HEADER_SIZE + x.numel() * 4
    buf, addr = buffer(need)
    got = store.get_tensor_with_parallelism_into(prefix, addr, need, full)
    assert same(got, x) and got.data_ptr() == addr + HEADER_SIZE
    assert buf.raw == mooncake_object(0, (8, 6), raw(x))
    small, small_addr = buffer(need - 1)
    assert store.get_tensor_with_parallelism_into(prefix, small_addr, need - 1, full) is None
    assert small.raw == b"\xab" * (need - 1)
    # A split dimension other than the stored one matches nothing.
    assert store.get_tensor_with_parallelism(prefix, ReadTarget("full", tp(0, 4, 1))) is None


def test_tensors_written_with_tp_read_with_parallelism(store, prefix):
    x = sample(torch.int64, (6, 4), 12)
    assert store.put_tensor_with_tp(prefix, x, 0, 3, 0) == 0
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("full", tp(0, 3, 0))), x)
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", tp(2, 3, 0))),
                x[4:])
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", tp(0, 2, 0))),
                x[:3])


def test_tp_with_other_axes_takes_the_whole_tensor(store, prefix):
    x = sample(torch.float16, (4, 6), 13)
    for r in range(2):  # axes in any order; the key orders them DP, TP
        p = TensorParallelism([ParallelAxis("TP", r, 2, split_dim=1), ParallelAxis("dp", 1, 2)])
        assert store.put_tensor_with_parallelism(prefix, x, p) == 0
        key = f"{prefix}__dp_1of2__tp_{r}of2_sd1"
        assert store.is_exist(key) == 1
        assert store.get(key) == mooncake_object(11, (4, 3), raw(x[:, 3 * r:3 * r + 3]), (4, 6),
                                                 [("tp", r, 2, 1, 0), ("dp", 1, 2, -1, 0)])
    p = TensorParallelism([ParallelAxis("dp", 1, 2), ParallelAxis("tp", 1, 2, split_dim=1)])
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", p)), x[:, 3:])
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("full", p)), x)
    other_dp = TensorParallelism([ParallelAxis("dp", 0, 2), ParallelAxis("tp", 0, 2, split_dim=1)])
    assert store.get_tensor_with_parallelism(prefix, ReadTarget("shard", other_dp)) is None
    # Even splits only.
    odd = TensorParallelism([ParallelAxis("dp", 0, 2), ParallelAxis("tp", 0, 4, split_dim=1)])
    assert store.put_tensor_with_parallelism(prefix + "odd", x, odd) == errors.INVALID_PARAMS


def test_axes_without_tp_store_the_tensor_as_it_is(store, prefix):
    x = sample(torch.uint8, (3, 3), 14)
    ep = TensorParallelism([ParallelAxis("ep", 0, 2, expert_id=5)])
    pp_dp = TensorParallelism([ParallelAxis("pp", 1, 4, stage_id=1), ParallelAxis("dp", 0, 2)])
    assert store.put_tensor_with_parallelism(prefix, x, ep) == 0
    assert store.put_tensor_with_parallelism(prefix, x + 1, pp_dp) == 0
    assert store.get(prefix + "__ep_0of2_eid5") == mooncake_object(3, (3, 3), raw(x), (3, 3),
                                                                   [("ep", 0, 2, -1, 5)])
    assert store.is_exist(prefix + "__dp_0of2__pp_1of4_sid1") == 1
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", ep)), x)
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("as_stored", pp_dp)), x + 1)
    assert store.get_tensor_with_parallelism(prefix, ReadTarget("full", ep)) is None
    other = TensorParallelism([ParallelAxis("ep", 0, 2, expert_id=6)])
    assert store.get_tensor_with_parallelism(prefix, ReadTarget("shard", other)) is None


def test_writer_partitions_and_full_reads(store, prefix):
    x = sample(torch.bfloat16, (2, 8), 15)
    writer = types.SimpleNamespace(rank=0, size=2, split_dim=1)
    assert store.put_tensor_with_parallelism(prefix, x, writer_partition=writer) == 0
    assert store.put_tensor_with_parallelism(prefix, x, writer_partition=(1, 2, 1)) == 0
    assert store.get(prefix + "__writer_1of2_sd1") == mooncake_object(
        12, (2, 4), raw(x[:, 4:]), (2, 8), [("tp", 1, 2, 1, 0)])
    assert store.get(prefix + "__writer_manifest") == MANIFEST.pack(
        0x574D414E, 1, 96, 12, 2, 1, 2, 0, *padded((2, 8)))
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("full")), x)
    # A lone TP shard request finds the writer's shard of the same split.
    assert same(store.get_tensor_with_parallelism(prefix, ReadTarget("shard", tp(1, 2, 1))),
                x[:, 4:])
    # Without a writer manifest "full" is the object itself.
    assert store.put_tensor(prefix + "plain", x) == 0
    assert same(store.get_tensor_with_parallelism(prefix + "plain", ReadTarget("full")), x)
    assert store.get_tensor_with_parallelism(prefix + "missing", ReadTarget("full")) is None
    assert store.put_tensor_with_parallelism(prefix + "odd", x, writer_partition=(0, 3, 1)) == \
        errors.INVALID_PARAMS


@pytest.mark.parametrize("axes", [
    [("tp", 0, 2, None, None, None)],        # TP without split_dim
    [("dp", 0, 2, 0, None, None)],           # DP with split_dim
    [("ep", 0, 2, None, None, None)],        # EP without expert_id
    [("pp", 0, 2, None, None, None)],        # PP without stage_id
    [("tp", 2, 2, 0, None, None)],           # rank out of range
    [("xp", 0, 2, None, None, None)],        # unknown kind
    [("dp", 0, 2, None, None, None), ("dp", 1, 2, None, None, None)],  # twice
    [],                                      # no axes
    [("dp", 0, 2, None, None, None), ("tp", 0, 2, 0, None, None), ("ep", 0, 1, None, 1, None),
     ("pp", 0, 1, None, None, 1), ("dp", 0, 1, None, None, None)],     # five
], ids=["tp-no-split", "dp-split", "ep-no-expert", "pp-no-stage", "rank", "kind", "twice",
        "none", "five"])
def test_invalid_parallelism_is_refused(store, prefix, axes):
    p = TensorParallelism([ParallelAxis(*a) for a in axes])
    x = torch.ones(4, 4)
    assert store.put_tensor_with_parallelism(prefix, x, p) == errors.INVALID_PARAMS
    assert store.get_tensor_with_parallelism(prefix, ReadTarget("shard", p)) is None
    assert store.get_size(prefix + "__parallelism_manifest") == errors.OBJECT_NOT_FOUND


def test_parallelism_bad_arguments(store, prefix):
    x = torch.ones(4, 4)
    assert store.put_tensor_with_parallelism(prefix + "a", x, tp(0, 2, 0), None, (0, 2, 0)) == \
        errors.INVALID_PARAMS
    assert store.put_tensor_with_parallelism(prefix + "b", x, parallelism=5) == \
        errors.INVALID_PARAMS
    assert store.put_tensor_with_parallelism(prefix + "c", x, writer_partition=(2, 2, 0)) == \
        errors.INVALID_PARAMS
    assert store.put_tensor_with_parallelism(prefix + "d", "x", tp(0, 2, 0)) == \
        errors.INVALID_PARAMS
    keys = [prefix + "e", prefix + "f"]
    assert store.batch_put_tensor_with_parallelism(keys, [x, x], [tp(0, 2, 0)]) == \
        [errors.INVALID_PARAMS] * 2
    assert store.batch_put_tensor_with_parallelism(keys, [x, x], [None, None],
                                                   writer_partitions=[None, None]) == \
        [errors.INVALID_PARAMS] * 2
    assert store.batch_put_tensor_with_parallelism(keys, [x], None) == [errors.INVALID_PARAMS] * 2
    assert store.get_tensor_with_parallelism(prefix, ReadTarget("shard")) is None
    assert store.get_tensor_with_parallelism(prefix, "full") is None
    assert store.batch_get_tensor_with_parallelism(keys, [None]) == [None, None]
    assert all(store.is_exist(prefix + k) == 0 for k in "abcdef")
    assert all(store.is_exist(prefix + k + "_tp_0") == 0 for k in "abcdef")


def test_parallelism_batches_and_from(store, prefix):
    x = sample(torch.int64, (4, 2), 16)
    keys = [prefix + "whole", prefix + "sharded", prefix + "writer"]
    assert store.batch_put_tensor_with_parallelism(keys[:2], [x, x[2:]],
                                                   [None, tp(1, 2, 0)]) == [0, 0]
    assert store.batch_put_tensor_with_parallelism(keys[2:], [x],
                                                   writer_partitions=[(0, 1, 0)]) == [0]
    assert store.batch_put_tensor_with_parallelism([prefix + "plain"], [x]) == [0]
    targets = [None, ReadTarget("shard", tp(1, 2, 0)), ReadTarget("full")]
    got = store.batch_get_tensor_with_parallelism(keys, targets)
    assert same(got[0], x) and same(got[1], x[2:]) and same(got[2], x)
    assert same(store.batch_get_tensor_with_parallelism([prefix + "plain"])[0], x)
    sizes = [HEADER_SIZE + 64, HEADER_SIZE + 32, HEADER_SIZE + 63]
    bufs = [buffer(s) for s in sizes]
    got = store.batch_get_tensor_with_parallelism_into(keys, [a for _, a in bufs], sizes, targets)
    assert same(got[0], x) and same(got[1], x[2:]) and got[2] is None
    assert bufs[2][0].raw == b"\xab" * sizes[2]
    assert store.batch_get_tensor_with_parallelism_into(keys, [bufs[0][1]], [64], targets) == \
        [None] * 3
    # From a serialised whole tensor.
    obj = mooncake_object(8, (4, 2), raw(x))
    src, addr = buffer(len(obj))
    ctypes.memmove(addr, obj, len(obj))
    p = TensorParallelism([ParallelAxis("dp", 0, 1), ParallelAxis("tp", 1, 2, split_dim=1)])
    assert store.put_tensor_with_parallelism_from(prefix + "f", addr, len(obj), p) == 0
    assert same(store.get_tensor_with_parallelism(prefix + "f", ReadTarget("shard", p)), x[:, 1:])
    assert store.put_tensor_with_parallelism_from(prefix + "g", addr, len(obj)) == 0
    assert store.get(prefix + "g") == obj
    assert store.batch_put_tensor_with_parallelism_from(
        [prefix + "h"], [addr], [len(obj)], writer_partitions=[(1, 2, 0)]) == [0]
    assert same(store.get_tensor_with_parallelism(prefix + "h", ReadTarget("shard", tp(1, 2, 0))),
                x[2:])
    assert store.put_tensor_with_parallelism_from(prefix + "i", addr, len(obj) - 1, p) == \
        errors.INVALID_PARAMS


# ---- upserts ------------------------------------------------------------------------------

def test_upserts_replace_objects(store, prefix):
    a, b = sample(torch.float32, (2, 3), 1), sample(torch.float32, (5,), 2)
    k = prefix + "k"
    assert store.upsert_tensor(k, a) == 0 and same(store.get_tensor(k), a)
    assert store.upsert_tensor(k, b) == 0 and same(store.get_tensor(k), b)
    assert store.batch_upsert_tensor([k, prefix + "n"], [a, b]) == [0, 0]
    assert same(store.get_tensor(k), a) and same(store.get_tensor(prefix + "n"), b)
    assert store.upsert_pub_tensor(k, b, ReplicateConfig()) == 0 and same(store.get_tensor(k), b)
    assert store.batch_upsert_pub_tensor([k], [a]) == [0] and same(store.get_tensor(k), a)
    assert store.upsert_tensor(k, "x") == errors.INVALID_PARAMS and same(store.get_tensor(k), a)
    obj = mooncake_object(0, (5,), raw(b))
    buf, addr = buffer(len(obj))
    ctypes.memmove(addr, obj, len(obj))
    assert store.upsert_tensor_from(k, addr, len(obj)) == 0 and same(store.get_tensor(k), b)
    assert store.put_tensor(k, a) == 0 and same(store.get_tensor(k), b)  # put does not replace
    assert store.batch_upsert_tensor_from([k], [addr], [len(obj) - 1]) == [errors.INVALID_PARAMS]
    x = sample(torch.int64, (4, 2), 3)
    assert store.put_tensor_with_parallelism(k, x[:2], tp(0, 2, 0)) == 0
    assert store.upsert_tensor_with_parallelism(k, x[2:], tp(0, 2, 0)) == 0
    assert same(store.get_tensor_with_tp(k, 0, 2), x[2:])
    assert store.batch_upsert_tensor_with_parallelism([k], [x[:2]], [tp(0, 2, 0)]) == [0]
    assert same(store.get_tensor_with_tp(k, 0, 2), x[:2])
    whole = mooncake_object(8, (4, 2), raw(x))
    src, src_addr = buffer(len(whole))
    ctypes.memmove(src_addr, whole, len(whole))
    assert store.upsert_tensor_with_parallelism_from(k, src_addr, len(whole),
                                                     writer_partition=(0, 2, 0)) == 0
    assert store.batch_upsert_tensor_with_parallelism_from(
        [k], [src_addr], [len(whole)], writer_partitions=[(1, 2, 0)]) == [0]
    assert same(store.get_tensor_with_parallelism(k, ReadTarget("full")), x)


# ---- devices and the absence of PyTorch -------------------------------------------------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="hardware: no CUDA device")
def test_cuda_tensors_are_staged_through_host_memory(store, prefix):
    x = sample(torch.float32, (64, 8), 17)
    assert store.put_tensor(prefix, x.cuda()) == 0
    got = store.get_tensor(prefix)
    assert got.device.type == "cpu" and same(got, x)
    assert store.put_tensor_with_tp(prefix + "tp", x.cuda(), 0, 2, 1) == 0
    assert same(store.get_tensor_with_tp(prefix + "tp", 1, 2), x[:, 4:].contiguous())


NO_TORCH = r"""
import ctypes, struct, sys
sys.modules["torch"] = None  # import torch raises ImportError
from mooncake.store import (MooncakeDistributedStore, ParallelAxis, ReadTarget,
                            TensorParallelism, NOT_SUPPORTED)
s = MooncakeDistributedStore()
assert s.setup("pytest-host", "P2PHANDSHAKE", 0, 16 << 20, "tcp", "", sys.argv[1]) == 0
key = sys.argv[2]
print("put", s.put_tensor(key, object()) == NOT_SUPPORTED)
print("batch", s.batch_put_tensor([key, key + "2"], [1, 2]) == [NOT_SUPPORTED] * 2)
print("get", s.get_tensor(key) is None, s.batch_get_tensor([key]) == [None])
target = ReadTarget("full", TensorParallelism([ParallelAxis("tp", 0, 2, split_dim=0)]))
print("parallel", s.get_tensor_with_parallelism(key, target) is None)
# A serialised object needs no PyTorch to be stored.
obj = struct.pack("<IHHiiIIQQ", 0x4D4F4F4E, 1, 304, 3, 1, 0, 0, 304, 2)
obj += struct.pack("<8q8qII", 2, *[-1] * 7, 2, *[-1] * 7, 0, 0) + bytes(128) + b"\x07\x09"
buf = ctypes.create_string_buffer(obj, len(obj))
print("from", s.put_tensor_from(key, ctypes.addressof(buf), len(obj)), s.get(key) == obj)
s.close()
"""


def test_without_pytorch(cluster, prefix, tmp_path):
    import kvcached.shim
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["PYTHONPATH"] = kvcached.shim.shim_dir()
    out = subprocess.run([sys.executable, "-c", NO_TORCH, cluster.rpc, prefix],
                         capture_output=True, text=True, env=env, timeout=60, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.split("\n")[:5] == ["put True", "batch True", "get True True",
                                          "parallel True", "from 0 True"], out.stdout
    assert "needs PyTorch" in out.stderr
