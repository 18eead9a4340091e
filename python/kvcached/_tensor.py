"""Mooncake's tensor calls of MooncakeDistributedStore (put_tensor, get_tensor,
their batch, *_into, *_from, *_with_tp, *_with_parallelism, pub and upsert
forms) as a mixin the store class inherits, and the module classes
ParallelAxis, TensorParallelism and ReadTarget. It moves no bytes itself: a
tensor becomes one object in Mooncake's tensor object layout (a 304-byte
header, then the data; docs/python.md, "Tensor calls") built in host memory,
written with the store's batch_put_from / batch_upsert_from and read back
with get_into / batch_get_into.

PyTorch is imported on first use, never at import: without it a tensor call
logs why and fails (writes NOT_SUPPORTED, reads None). A CUDA tensor is
staged through host memory (one device-to-host copy); reads return CPU
tensors, as Mooncake's do.

Thread-safety: as the store's; the calls keep no state of their own.
Ownership: a tensor returned by a get call owns its memory, except those of
the *_into calls, which are views of the caller's buffer and valid while it
is.
"""

import ctypes
import logging
import struct
from collections import namedtuple

from . import errors

log = logging.getLogger("kvcached")

# ---- Mooncake's tensor object layout (integration_utils.h, version 1) ----------
# All fields little-endian, packed as the C structs on x86-64 (no padding).
_MAGIC = 0x4D4F4F4E
_VERSION = 1
_MAX_DIMS = 8
_MAX_AXES = 4
_HEADER = struct.Struct("<IHHiiIIQQ")  # magic, version, header_size, dtype, ndim,
#                                        layout_kind, reserved_flags, data_offset, data_bytes
_SHAPES = struct.Struct("<8q8qII")     # global_shape, local_shape, axis_count, reserved0
_AXIS = struct.Struct("<iiiiiiq")      # kind, axis_index, shard_rank, shard_count,
#                                        split_dim, reserved0 (expert/stage id), reserved1
HEADER_SIZE = _HEADER.size + _SHAPES.size + _MAX_AXES * _AXIS.size
assert HEADER_SIZE == 304
_FULL, _SHARD = 0, 1

# A manifest (WriterShardManifest) names how a tensor was split: stored
# under <key>__writer_manifest or <key>__parallelism_manifest.
_MANIFEST = struct.Struct("<IHHiiiii4x8q")  # magic, version, header_size, dtype, ndim,
#                                             split_dim, shard_count, reserved0, global_shape
assert _MANIFEST.size == 96
_MANIFEST_MAGIC = 0x574D414E

# Mooncake's TensorDtype codes are the positions in this tuple; the element
# size is kept here so objects can be checked without PyTorch.
_DTYPES = (("float32", 4), ("float64", 8), ("int8", 1), ("uint8", 1), ("int16", 2),
           ("uint16", 2), ("int32", 4), ("uint32", 4), ("int64", 8), ("uint64", 8),
           ("bool", 1), ("float16", 2), ("bfloat16", 2), ("float8_e4m3fn", 1),
           ("float8_e5m2", 1))

# LayoutAxisKind codes, and the order of axes in a canonical key.
_AXIS_KINDS = ("dp", "tp", "ep", "pp", "reserved")
_CANONICAL_ORDER = {"dp": 0, "tp": 1, "ep": 2, "pp": 3}
_READ_MODES = ("as_stored", "shard", "full")


# ---- the module classes ------------------------------------------------------------

class ParallelAxis:
    """One axis of a shard's identity (Mooncake's ParallelAxis): `kind` is
    "tp", "dp", "ep" or "pp" (any case); `rank` and `size` place the shard on
    that axis; `split_dim` is the dimension a TP axis splits (required for
    TP, refused for the others); `expert_id` (EP) and `stage_id` (PP) are
    required for their kinds."""

    __slots__ = ("kind", "rank", "size", "split_dim", "expert_id", "stage_id")

    def __init__(self, kind="", rank=0, size=1, split_dim=None, expert_id=None, stage_id=None):
        self.kind = kind
        self.rank = rank
        self.size = size
        self.split_dim = split_dim
        self.expert_id = expert_id
        self.stage_id = stage_id

    def __repr__(self):
        fields = ", ".join(f"{n}={getattr(self, n)!r}" for n in self.__slots__)
        return f"ParallelAxis({fields})"


class TensorParallelism:
    """The ordered axes (a list of ParallelAxis) naming a stored or requested
    shard (Mooncake's TensorParallelism)."""

    __slots__ = ("axes",)

    def __init__(self, axes=None):
        self.axes = list(axes or [])

    def __repr__(self):
        return f"TensorParallelism(axes={self.axes!r})"


class ReadTarget:
    """What a get_tensor_with_parallelism call returns (Mooncake's
    ReadTarget): `mode` "as_stored" (the object as written), "shard" (the
    shard `parallelism` names, resharded from what is stored when needed)
    or "full" (the whole tensor, gathered from its shards); `parallelism`
    is a TensorParallelism or None. Setting another mode raises
    RuntimeError, as Mooncake's binding does."""

    __slots__ = ("_mode", "parallelism")

    def __init__(self, mode="as_stored", parallelism=None):
        self.mode = mode
        self.parallelism = parallelism

    @property
    def mode(self):
        return self._mode

    @mode.setter
    def mode(self, value):
        mode = str(value).lower()
        if mode not in _READ_MODES:
            raise RuntimeError(f"Unsupported ReadTarget mode: {value!r}")
        self._mode = mode

    def __repr__(self):
        return f"ReadTarget(mode={self._mode!r}, parallelism={self.parallelism!r})"


# ---- PyTorch, optional --------------------------------------------------------------

def _import_torch(op):
    """The torch module, or None with the reason logged."""
    try:
        import torch
    except ImportError as e:
        log.error("kvcached: %s needs PyTorch, which cannot be imported here (%s)", op, e)
        return None
    return torch


def _dtype_code(torch, dtype):
    for code, (name, _) in enumerate(_DTYPES):
        if getattr(torch, name, None) == dtype:
            return code
    return None


# ---- the header -----------------------------------------------------------------------

# An axis as the calls use it; split_dim, expert_id and stage_id may be None.
_Axis = namedtuple("_Axis", "kind rank size split_dim expert_id stage_id")

# A parsed header: dtype code, layout kind, shapes (tuples), axes (_Axis), data.
_Meta = namedtuple("_Meta", "dtype kind global_shape local_shape axes data_offset data_bytes")


def _numel(shape):
    n = 1
    for d in shape:
        n *= d
    return n


def _pad(shape):
    return list(shape) + [-1] * (_MAX_DIMS - len(shape))


def _pack_header(dtype, global_shape, local_shape, axes=(), kind=None):
    """The 304 header bytes of an object whose data directly follows."""
    kind = (_SHARD if axes else _FULL) if kind is None else kind
    data_bytes = _numel(local_shape) * _DTYPES[dtype][1]
    out = bytearray(HEADER_SIZE)
    _HEADER.pack_into(out, 0, _MAGIC, _VERSION, HEADER_SIZE, dtype, len(global_shape), kind, 0,
                      HEADER_SIZE, data_bytes)
    _SHAPES.pack_into(out, _HEADER.size, *_pad(global_shape), *_pad(local_shape), len(axes), 0)
    for i, a in enumerate(axes):
        extra = a.expert_id if a.kind == "ep" else a.stage_id if a.kind == "pp" else 0
        extent = local_shape[a.split_dim] if a.split_dim is not None else 0
        _AXIS.pack_into(out, _HEADER.size + _SHAPES.size + i * _AXIS.size,
                        _AXIS_KINDS.index(a.kind), i, a.rank, a.size,
                        -1 if a.split_dim is None else a.split_dim, extra or 0, extent)
    return out


def _parse_header(data, total):
    """The _Meta of the `total`-byte object whose bytes `data` (bytes-like,
    at least its header) starts, or None when it is not a valid tensor
    object (the reason logged). Mooncake's ValidateTensorMetadata rules,
    plus: the data size must match the local shape and dtype."""
    if total < HEADER_SIZE or len(data) < HEADER_SIZE:
        return _bad(f"{total} bytes, shorter than the {HEADER_SIZE}-byte tensor header")
    (magic, version, header_size, dtype, ndim, kind, _, data_offset,
     data_bytes) = _HEADER.unpack_from(data, 0)
    if magic != _MAGIC or version != _VERSION or header_size != HEADER_SIZE:
        return _bad("not a tensor object (magic, version or header size)")
    if not 0 <= dtype < len(_DTYPES) or not 0 <= ndim <= _MAX_DIMS or kind > _SHARD:
        return _bad(f"dtype {dtype}, ndim {ndim} or layout {kind} out of range")
    if not HEADER_SIZE <= data_offset <= total or data_bytes != total - data_offset:
        return _bad("data offset or size disagrees with the object's size")
    shapes = _SHAPES.unpack_from(data, _HEADER.size)
    global_shape, local_shape = shapes[:ndim], shapes[_MAX_DIMS:_MAX_DIMS + ndim]
    axis_count = shapes[2 * _MAX_DIMS]
    if any(d <= 0 for d in global_shape) or any(d < 0 for d in local_shape) or \
            any(d != -1 for d in shapes[ndim:_MAX_DIMS] + shapes[_MAX_DIMS + ndim:2 * _MAX_DIMS]):
        return _bad("bad shape")
    if axis_count > _MAX_AXES:
        return _bad(f"{axis_count} axes")
    axes = []
    for i in range(axis_count):
        k, _, rank, size, split_dim, extra, _ = _AXIS.unpack_from(
            data, _HEADER.size + _SHAPES.size + i * _AXIS.size)
        if not 0 <= k < len(_AXIS_KINDS) or not 0 <= rank < size or not -1 <= split_dim < ndim:
            return _bad("bad parallel axis")
        name = _AXIS_KINDS[k]
        axes.append(_Axis(name, rank, size, None if split_dim < 0 else split_dim,
                          extra if name == "ep" else None, extra if name == "pp" else None))
    if data_bytes != _numel(local_shape) * _DTYPES[dtype][1]:
        return _bad("data size does not match shape and dtype")
    return _Meta(dtype, kind, tuple(global_shape), tuple(local_shape), tuple(axes), data_offset,
                 data_bytes)


def _bad(reason):
    log.error("kvcached: invalid tensor object: %s", reason)
    return None


# ---- tensors to objects and back -------------------------------------------------------------

def _host_tensor(torch, tensor, what):
    """(contiguous CPU tensor, dtype code) of a tensor to store, or
    (None, INVALID_PARAMS) with the reason logged. A tensor on another
    device is copied to host memory here."""
    if not isinstance(tensor, torch.Tensor):
        log.error("kvcached: %s: not a PyTorch tensor but %s", what, type(tensor).__name__)
        return None, errors.INVALID_PARAMS
    code = _dtype_code(torch, tensor.dtype)
    if code is None or tensor.dim() > _MAX_DIMS:
        log.error("kvcached: %s: dtype %s or %d dimensions not supported (at most %d)", what,
                  tensor.dtype, tensor.dim(), _MAX_DIMS)
        return None, errors.INVALID_PARAMS
    try:
        t = tensor.detach()
        if t.device.type != "cpu":
            t = t.to("cpu")  # staged through host memory
        return t.contiguous(), code
    except RuntimeError as e:  # sparse, meta and other layouts without plain memory
        log.error("kvcached: %s: cannot read the tensor's memory: %s", what, e)
        return None, errors.INVALID_PARAMS


def _object(t, dtype, global_shape=None, axes=()):
    """One object: the header, then the bytes of contiguous CPU tensor `t`
    (its shape is the local shape)."""
    local_shape = tuple(t.shape)
    header = _pack_header(dtype, tuple(global_shape or local_shape), local_shape, axes)
    nbytes = t.numel() * t.element_size()
    out = bytearray(HEADER_SIZE + nbytes)
    out[:HEADER_SIZE] = header
    if nbytes:
        ctypes.memmove(_addr(out) + HEADER_SIZE, t.data_ptr(), nbytes)
    return out


def _full_object(torch, tensor, what):
    """The object of a whole tensor, or an error code. Mooncake refuses a
    tensor with an empty dimension (its header allows none)."""
    t, code = _host_tensor(torch, tensor, what)
    if t is None:
        return code
    if 0 in t.shape:
        log.error("kvcached: %s: shape %s has an empty dimension", what, tuple(t.shape))
        return errors.INVALID_PARAMS
    return _object(t, code)


def _tensor_from(torch, buf, meta, what):
    """A tensor over the data of the object in `buf` (a writable bytes-like
    object the tensor keeps alive), or None."""
    dtype = getattr(torch, _DTYPES[meta.dtype][0], None)
    if dtype is None:
        log.error("kvcached: %s: this PyTorch has no %s", what, _DTYPES[meta.dtype][0])
        return None
    if meta.data_bytes == 0:
        return torch.empty(meta.local_shape, dtype=dtype)
    flat = torch.frombuffer(buf, dtype=dtype, count=_numel(meta.local_shape),
                            offset=meta.data_offset)
    return flat.reshape(meta.local_shape)


def _decode(torch, buf, what):
    """(meta, tensor) of the object held in `buf`, or (None, None)."""
    meta = _parse_header(memoryview(buf)[:HEADER_SIZE], len(buf))
    if meta is None:
        return None, None
    t = _tensor_from(torch, buf, meta, what)
    return (meta, t) if t is not None else (None, None)


def _view(address, size):
    return (ctypes.c_char * size).from_address(address)


def _addr(buf):
    return ctypes.addressof(ctypes.c_char.from_buffer(buf))


def _write_into(torch, buffer_ptr, size, header, t):
    """Writes the object (header, then contiguous `t`) to the caller's
    buffer and returns the view tensor over it; None, with nothing written,
    when it does not fit."""
    nbytes = t.numel() * t.element_size()
    if HEADER_SIZE + nbytes > size:
        log.error("kvcached: the buffer (%d bytes) is smaller than the tensor object (%d)", size,
                  HEADER_SIZE + nbytes)
        return None
    ctypes.memmove(buffer_ptr, bytes(header), HEADER_SIZE)
    if nbytes:
        ctypes.memmove(buffer_ptr + HEADER_SIZE, t.data_ptr(), nbytes)
    return _decode(torch, _view(buffer_ptr, HEADER_SIZE + nbytes), "into")[1]


# ---- shards --------------------------------------------------------------------------------

def _shard_range(extent, rank, count):
    """(start, length) of shard `rank` of `count` along a dimension of
    `extent`, as Mooncake's calculate_shard_range: [e*r//n, e*(r+1)//n)."""
    start = extent * rank // count
    return start, extent * (rank + 1) // count - start


def _tp_key(key, rank):
    return f"{key}_tp_{rank}"


def _writer_key(key, rank, size, split_dim):
    return f"{key}__writer_{rank}of{size}_sd{split_dim}"


def _axis_suffix(a):
    s = f"{a.kind}_{a.rank}of{a.size}"
    if a.split_dim is not None:
        s += f"_sd{a.split_dim}"
    if a.expert_id is not None:
        s += f"_eid{a.expert_id}"
    if a.stage_id is not None:
        s += f"_sid{a.stage_id}"
    return s


def _canonical(axes):
    return tuple(sorted(axes, key=lambda a: _CANONICAL_ORDER.get(a.kind, 4)))


def _parallel_key(key, axes):
    """Where the shard `axes` names is stored: <key>_tp_<rank> for a lone TP
    axis (the *_with_tp layout), else <key>__<axis>... in DP, TP, EP, PP
    order, e.g. <key>__dp_0of2__tp_1of4_sd0."""
    if len(axes) == 1 and axes[0].kind == "tp":
        return _tp_key(key, axes[0].rank)
    return key + "".join("__" + _axis_suffix(a) for a in _canonical(axes))


def _tp_axis(axes):
    return next((a for a in axes if a.kind == "tp"), None)


def _with_tp_rank(axes, rank, size=None):
    return tuple(a._replace(rank=rank, size=a.size if size is None else size)
                 if a.kind == "tp" else a for a in axes)


def _to_int(v, name):
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"{name} must be an int, not {type(v).__name__}")
    return v


def _opt_int(v, name):
    return None if v is None else _to_int(v, name)


def _parse_axes(parallelism, what):
    """The validated axes of a TensorParallelism, or None (reason logged):
    Mooncake's rules (1 to 4 axes of distinct known kinds, 0 <= rank < size,
    TP with split_dim, DP/EP/PP without, EP with expert_id, PP with stage_id)."""
    try:
        axes = tuple(_Axis(str(getattr(a, "kind")).lower(), _to_int(getattr(a, "rank"), "rank"),
                           _to_int(getattr(a, "size"), "size"),
                           _opt_int(getattr(a, "split_dim", None), "split_dim"),
                           _opt_int(getattr(a, "expert_id", None), "expert_id"),
                           _opt_int(getattr(a, "stage_id", None), "stage_id"))
                     for a in getattr(parallelism, "axes"))
    except (AttributeError, TypeError, ValueError) as e:
        log.error("kvcached: %s: not a TensorParallelism of ParallelAxis: %s", what, e)
        return None
    problem = None
    if not 1 <= len(axes) <= _MAX_AXES:
        problem = f"{len(axes)} axes (1 to {_MAX_AXES})"
    elif len({a.kind for a in axes}) != len(axes):
        problem = "duplicate axis kinds"
    for a in axes:
        if problem:
            break
        if a.kind not in _CANONICAL_ORDER:
            problem = f"unknown axis kind {a.kind!r}"
        elif not 0 <= a.rank < a.size:
            problem = f"{a.kind} rank {a.rank} of size {a.size}"
        elif (a.split_dim is None) == (a.kind == "tp"):
            problem = f"{a.kind}: split_dim is required for TP and refused otherwise"
        elif a.kind == "ep" and a.expert_id is None or a.kind == "pp" and a.stage_id is None:
            problem = f"{a.kind} needs {'expert_id' if a.kind == 'ep' else 'stage_id'}"
    if problem:
        log.error("kvcached: %s: %s", what, problem)
        return None
    return axes


def _parse_writer(writer, what):
    """(rank, size, split_dim) of a writer_partition (an object with those
    attributes, or a 3-sequence), or None (reason logged)."""
    try:
        if isinstance(writer, (tuple, list)):
            rank, size, split_dim = writer
        else:
            rank, size, split_dim = writer.rank, writer.size, writer.split_dim
        rank, size, split_dim = (_to_int(v, "writer_partition") for v in (rank, size, split_dim))
    except (AttributeError, TypeError, ValueError) as e:
        log.error("kvcached: %s: writer_partition needs rank, size and split_dim: %s", what, e)
        return None
    if not 0 <= rank < size or split_dim < 0:
        log.error("kvcached: %s: invalid writer_partition %s", what, (rank, size, split_dim))
        return None
    return rank, size, split_dim


def _manifest(dtype, global_shape, split_dim, count):
    return bytearray(_MANIFEST.pack(_MANIFEST_MAGIC, 1, _MANIFEST.size, dtype, len(global_shape),
                                    split_dim, count, 0, *_pad(global_shape)))


def _parse_manifest(buf):
    """(dtype, global_shape, split_dim, shard_count), or None."""
    if buf is None or len(buf) < _MANIFEST.size:
        return None
    magic, version, size, dtype, ndim, split_dim, count, _, *shape = _MANIFEST.unpack_from(buf)
    if magic != _MANIFEST_MAGIC or version != 1 or size != _MANIFEST.size or \
            not 0 <= ndim <= _MAX_DIMS or count <= 0 or not 0 <= split_dim < ndim or \
            any(d <= 0 for d in shape[:ndim]):
        return None
    return dtype, tuple(shape[:ndim]), split_dim, count


def _uniform(shape, split_dim, count, what):
    if not 0 <= split_dim < len(shape):
        log.error("kvcached: %s: split_dim %d out of range for %d dimensions", what, split_dim,
                  len(shape))
        return False
    if shape[split_dim] % count:
        log.error("kvcached: %s: dimension %d (%d) does not split evenly in %d shards", what,
                  split_dim, shape[split_dim], count)
        return False
    return True


def _valid_config(config, what):
    """Mooncake's validate_replicate_config: preferred_segments, when given,
    name one segment per replica."""
    segments = getattr(config, "preferred_segments", None)
    if segments and len(segments) != getattr(config, "replica_num", 1):
        log.error("kvcached: %s: %d preferred_segments for replica_num %d", what, len(segments),
                  config.replica_num)
        return False
    return True


def _check_key(key):
    if type(key) is not str:
        raise TypeError(f"key must be str, not {type(key).__name__}")
    return key


def _first_failure(codes):
    return next((c for c in codes if c != 0), 0)


class TensorMixin:
    """The tensor calls of MooncakeDistributedStore. Writes return 0 or a
    negative code (batches: one per key); reads return a torch.Tensor or
    None (batches: one per key). Before setup every write returns
    UNAVAILABLE_IN_CURRENT_STATUS and every read None. Keys are str
    (TypeError otherwise); a value that is not a torch.Tensor, or a dtype
    Mooncake's layout has no code for, is INVALID_PARAMS."""

    # ---- common stages ---------------------------------------------------------------

    def _tensor_start(self, what):
        """(torch, 0) when a tensor call can run, else (None, code)."""
        if self._handle is None:
            return None, errors.UNAVAILABLE_IN_CURRENT_STATUS
        torch = _import_torch(what)
        return (torch, 0) if torch is not None else (None, errors.NOT_SUPPORTED)

    def _write_plans(self, plans, config, upsert):
        """The write stage of every tensor write. A plan is an error code or
        a list of (key, data) objects, data a bytearray or an (address,
        size) pair; every object of every plan goes in one batch call. A
        plan's result is its code, else the first failure among its
        objects, else 0."""
        keys, ptrs, sizes, keep = [], [], [], []
        for plan in plans:
            if isinstance(plan, int):
                continue
            for key, data in plan:
                keys.append(key)
                if isinstance(data, tuple):
                    ptrs.append(data[0])
                    sizes.append(data[1])
                else:
                    keep.append(data)
                    ptrs.append(_addr(data))
                    sizes.append(len(data))
        results = iter(self._write_objects(keys, ptrs, sizes, config, upsert) if keys else ())
        return [plan if isinstance(plan, int) else _first_failure([next(results) for _ in plan])
                for plan in plans]

    def _write_objects(self, keys, ptrs, sizes, config, upsert):
        write = self.batch_upsert_from if upsert else self.batch_put_from
        return write(keys, ptrs, sizes, config)

    def _write(self, what, keys, values, plan_one, config=None, upsert=False, check_config=False):
        """Plans one value per key with plan_one(torch, key, value) and
        writes them: a list of codes. Mismatched or empty lists fail every
        key with INVALID_PARAMS, as Mooncake's batch calls do."""
        keys = [_check_key(k) for k in keys]
        if len(keys) != len(values) or not keys:
            if keys:
                log.error("kvcached: %s: %d keys but %d values", what, len(keys), len(values))
            return [errors.INVALID_PARAMS] * len(keys)
        torch, code = self._tensor_start(what)
        if torch is None:
            return [code] * len(keys)
        if check_config and not _valid_config(config, what):
            return [errors.INVALID_PARAMS] * len(keys)
        plans = [plan_one(torch, key, value) for key, value in zip(keys, values)]
        return self._write_plans(plans, config, upsert)

    # ---- plans: what objects a write stores ---------------------------------------------

    @staticmethod
    def _plan_full(torch, key, tensor):
        obj = _full_object(torch, tensor, key)
        return obj if isinstance(obj, int) else [(key, obj)]

    @staticmethod
    def _plan_tp(torch, key, tensor, tp_size, split_dim):
        """The *_with_tp split: shard r of tp_size along split_dim (Mooncake's
        ranges; shards may differ by one, or be empty) under <key>_tp_<r>,
        each with its TP axis and the whole tensor's shape in its header."""
        if tp_size <= 1:
            return TensorMixin._plan_full(torch, key, tensor)
        t, code = _host_tensor(torch, tensor, key)
        if t is None:
            return code
        if not 0 <= split_dim < t.dim() or 0 in t.shape:
            log.error("kvcached: %s: cannot split shape %s along dimension %d", key,
                      tuple(t.shape), split_dim)
            return errors.INVALID_PARAMS
        return [(_tp_key(key, r), _object(t.narrow(split_dim, *_shard_range(
                    t.shape[split_dim], r, tp_size)).contiguous(), code, t.shape,
                    (_Axis("tp", r, tp_size, split_dim, None, None),)))
                for r in range(tp_size)]

    def _plan_from(self, key, buffer_ptr, size):
        """A tensor object already serialised in the caller's memory, stored
        as it is after its header is checked."""
        if not isinstance(buffer_ptr, int) or not isinstance(size, int) or buffer_ptr <= 0 or \
                size < HEADER_SIZE:
            log.error("kvcached: %s: no tensor object at %r (%r bytes)", key, buffer_ptr, size)
            return errors.INVALID_PARAMS
        if _parse_header(_view(buffer_ptr, HEADER_SIZE), size) is None:
            return errors.INVALID_PARAMS
        return [(key, (buffer_ptr, size))]

    @staticmethod
    def _tensor_at(torch, buffer_ptr, size, what, whole=False):
        """The tensor of the object in the caller's memory (a view), or None;
        with `whole`, None too when the object is a shard."""
        if not isinstance(buffer_ptr, int) or not isinstance(size, int) or buffer_ptr <= 0 or \
                size < HEADER_SIZE:
            log.error("kvcached: %s: no tensor object at %r (%r bytes)", what, buffer_ptr, size)
            return None
        meta, t = _decode(torch, _view(buffer_ptr, size), what)
        if whole and meta is not None and meta.kind != _FULL:
            log.error("kvcached: %s: the buffer holds a shard, not a whole tensor", what)
            return None
        return t

    def _plan_parallel(self, torch, key, tensor, parallelism, writer):
        """The objects of a *_with_parallelism write (Mooncake's routes):
        - neither: the whole tensor under `key`;
        - writer_partition (rank, size, split_dim): `tensor` is the whole
          tensor; its shard `rank` goes to <key>__writer_<r>of<n>_sd<d>,
          plus a manifest <key>__writer_manifest;
        - a lone TP axis: `tensor` is that rank's shard, stored under
          <key>_tp_<rank> (the whole shape inferred as size x its split
          dimension), plus a manifest <key>__parallelism_manifest;
        - TP with other axes: `tensor` is the whole tensor; the TP rank's
          shard goes to the canonical key, plus the manifest;
        - DP/EP/PP only: `tensor` as it is, under the canonical key.
        TP and writer splits must be even."""
        if parallelism is not None and writer is not None:
            log.error("kvcached: %s: writer_partition cannot be combined with parallelism", key)
            return errors.INVALID_PARAMS
        if writer is None and parallelism is None:
            return self._plan_full(torch, key, tensor)
        t, code = _host_tensor(torch, tensor, key)
        if t is None:
            return code
        if 0 in t.shape:
            log.error("kvcached: %s: shape %s has an empty dimension", key, tuple(t.shape))
            return errors.INVALID_PARAMS
        if writer is not None:
            w = _parse_writer(writer, key)
            if w is None or not _uniform(t.shape, w[2], w[1], key):
                return errors.INVALID_PARAMS
            return self._plan_split(key, t, code, w[2], w[0], w[1],
                                    (_Axis("tp", w[0], w[1], w[2], None, None),),
                                    _writer_key(key, *w), f"{key}__writer_manifest")
        axes = _parse_axes(parallelism, key)
        if axes is None:
            return errors.INVALID_PARAMS
        tp = _tp_axis(axes)
        if tp is None:
            return [(_parallel_key(key, axes), _object(t, code, t.shape, axes))]
        if len(axes) == 1:  # shard input
            if tp.split_dim >= t.dim():
                log.error("kvcached: %s: split_dim %d out of range", key, tp.split_dim)
                return errors.INVALID_PARAMS
            whole = list(t.shape)
            whole[tp.split_dim] *= tp.size
            return [(_tp_key(key, tp.rank), _object(t, code, whole, axes)),
                    (f"{key}__parallelism_manifest", _manifest(code, whole, tp.split_dim,
                                                              tp.size))]
        if not _uniform(t.shape, tp.split_dim, tp.size, key):
            return errors.INVALID_PARAMS
        return self._plan_split(key, t, code, tp.split_dim, tp.rank, tp.size, axes,
                                _parallel_key(key, axes), f"{key}__parallelism_manifest")

    @staticmethod
    def _plan_split(key, t, code, split_dim, rank, size, axes, shard_key, manifest_key):
        start, length = _shard_range(t.shape[split_dim], rank, size)
        shard = t.narrow(split_dim, start, length).contiguous()
        return [(shard_key, _object(shard, code, t.shape, axes)),
                (manifest_key, _manifest(code, t.shape, split_dim, size))]

    # ---- whole tensors ----------------------------------------------------------------------

    def put_tensor(self, key, tensor):
        """Stores `tensor` under `key`: 0 or a code."""
        return self._write("put_tensor", [key], [tensor], self._plan_full)[0]

    def batch_put_tensor(self, keys, tensors_list):
        """One code per key."""
        return self._write("batch_put_tensor", keys, tensors_list, self._plan_full)

    def pub_tensor(self, key, tensor, config=None):
        """put_tensor with a ReplicateConfig."""
        return self._write("pub_tensor", [key], [tensor], self._plan_full, config,
                           check_config=True)[0]

    def batch_pub_tensor(self, keys, tensors_list, config=None):
        return self._write("batch_pub_tensor", keys, tensors_list, self._plan_full, config,
                           check_config=True)

    def upsert_tensor(self, key, tensor):
        """put_tensor that replaces an existing object."""
        return self._write("upsert_tensor", [key], [tensor], self._plan_full, upsert=True)[0]

    def batch_upsert_tensor(self, keys, tensors_list):
        return self._write("batch_upsert_tensor", keys, tensors_list, self._plan_full,
                           upsert=True)

    def upsert_pub_tensor(self, key, tensor, config=None):
        return self._write("upsert_pub_tensor", [key], [tensor], self._plan_full, config,
                           upsert=True, check_config=True)[0]

    def batch_upsert_pub_tensor(self, keys, tensors_list, config=None):
        return self._write("batch_upsert_pub_tensor", keys, tensors_list, self._plan_full,
                           config, upsert=True, check_config=True)

    def get_tensor(self, key):
        """The tensor stored under `key` (on the CPU, owning its memory), or
        None when it is missing or not a tensor object."""
        return self.batch_get_tensor([key])[0]

    def batch_get_tensor(self, keys):
        """One tensor or None per key."""
        return [t for _, t in self._read_tensors(keys, "batch_get_tensor")]

    def _read_tensors(self, keys, what):
        """(meta, tensor) per key, (None, None) for a miss: the read stage."""
        keys = [_check_key(k) for k in keys]
        torch, _ = self._tensor_start(what)
        if torch is None or not keys:
            return [(None, None)] * len(keys)
        return [(None, None) if buf is None else _decode(torch, buf, key)
                for key, buf in zip(keys, self._read_batch(keys))]

    def get_tensor_into(self, key, buffer_ptr, size):
        """Reads the object into the caller's `size` bytes at `buffer_ptr`
        and returns a tensor viewing its data there; None when it is
        missing, not a tensor object, or larger than `size` (then nothing
        is written)."""
        return self.batch_get_tensor_into([key], [buffer_ptr], [size])[0]

    def batch_get_tensor_into(self, keys, buffer_ptrs, sizes):
        """One view tensor or None per key. Mismatched lists: a list of
        INVALID_PARAMS, as Mooncake returns."""
        keys = [_check_key(k) for k in keys]
        if not len(keys) == len(buffer_ptrs) == len(sizes):
            log.error("kvcached: batch_get_tensor_into: keys, buffer_ptrs and sizes differ in "
                      "length")
            return [errors.INVALID_PARAMS] * len(keys)
        return [t for _, t in self._read_into(keys, buffer_ptrs, sizes, "batch_get_tensor_into")]

    def _read_into(self, keys, buffer_ptrs, sizes, what):
        torch, _ = self._tensor_start(what)
        if torch is None or not keys:
            return [(None, None)] * len(keys)
        out = []
        for key, ptr, size, n in zip(keys, buffer_ptrs, sizes,
                                     self.batch_get_into(keys, buffer_ptrs, sizes)):
            if n < 0:
                log.error("kvcached: %s: %s: %s", what, key, errors.error_name(n))
                out.append((None, None))
            else:
                out.append(_decode(torch, _view(ptr, n), key))
        return out

    # ---- objects serialised by the caller ------------------------------------------------------

    def put_tensor_from(self, key, buffer_ptr, size):
        """Stores the tensor object (header and data, as get_tensor_into
        leaves them) of `size` bytes at `buffer_ptr`: 0 or a code
        (INVALID_PARAMS when it is not a valid tensor object)."""
        return self.batch_put_tensor_from([key], [buffer_ptr], [size])[0]

    def batch_put_tensor_from(self, keys, buffer_ptrs, sizes):
        """One code per key; when any buffer is not a valid tensor object,
        every key fails with INVALID_PARAMS, as in Mooncake."""
        return self._write_from("batch_put_tensor_from", keys, buffer_ptrs, sizes, False)

    def upsert_tensor_from(self, key, buffer_ptr, size):
        return self.batch_upsert_tensor_from([key], [buffer_ptr], [size])[0]

    def batch_upsert_tensor_from(self, keys, buffer_ptrs, sizes):
        return self._write_from("batch_upsert_tensor_from", keys, buffer_ptrs, sizes, True)

    def _write_from(self, what, keys, buffer_ptrs, sizes, upsert):
        keys = [_check_key(k) for k in keys]
        if not len(keys) == len(buffer_ptrs) == len(sizes):
            log.error("kvcached: %s: keys, buffer_ptrs and sizes differ in length", what)
            return [errors.INVALID_PARAMS] * len(keys)
        if self._handle is None:
            return [errors.UNAVAILABLE_IN_CURRENT_STATUS] * len(keys)
        plans = [self._plan_from(k, p, s) for k, p, s in zip(keys, buffer_ptrs, sizes)]
        if any(isinstance(p, int) for p in plans):
            return [errors.INVALID_PARAMS] * len(keys)
        return self._write_plans(plans, None, upsert)

    # ---- tensor parallelism (Mooncake's *_with_tp) ----------------------------------------------

    def put_tensor_with_tp(self, key, tensor, tp_rank=0, tp_size=1, split_dim=0):
        """Splits `tensor` along `split_dim` into `tp_size` shards and
        stores shard r under <key>_tp_<r> (tp_size 1: put_tensor). tp_rank
        is accepted for Mooncake's signature; every shard is written. 0 or
        the first failing shard's code."""
        return self.batch_pub_tensor_with_tp([key], [tensor], None, tp_rank, tp_size,
                                             split_dim)[0]

    def batch_put_tensor_with_tp(self, base_keys, tensors_list, tp_rank=0, tp_size=1,
                                 split_dim=0):
        return self.batch_pub_tensor_with_tp(base_keys, tensors_list, None, tp_rank, tp_size,
                                             split_dim)

    def pub_tensor_with_tp(self, key, tensor, config=None, tp_rank=0, tp_size=1, split_dim=0):
        return self.batch_pub_tensor_with_tp([key], [tensor], config, tp_rank, tp_size,
                                             split_dim)[0]

    def batch_pub_tensor_with_tp(self, base_keys, tensors_list, config=None, tp_rank=0, tp_size=1,
                                 split_dim=0):
        return self._write("batch_pub_tensor_with_tp", base_keys, tensors_list,
                           lambda torch, k, t: self._plan_tp(torch, k, t, tp_size, split_dim),
                           config, check_config=True)

    def put_tensor_with_tp_from(self, key, buffer_ptr, size, tp_rank=0, tp_size=1, split_dim=0):
        """put_tensor_with_tp of the whole tensor serialised at
        `buffer_ptr` (tp_size 1: put_tensor_from)."""
        return self.batch_put_tensor_with_tp_from([key], [buffer_ptr], [size], tp_rank, tp_size,
                                                  split_dim)[0]

    def batch_put_tensor_with_tp_from(self, base_keys, buffer_ptrs, sizes, tp_rank=0, tp_size=1,
                                      split_dim=0):
        if tp_size <= 1:
            return self.batch_put_tensor_from(base_keys, buffer_ptrs, sizes)
        if not len(base_keys) == len(buffer_ptrs) == len(sizes):
            return [errors.INVALID_PARAMS] * len(base_keys)

        def plan(torch, key, where):
            t = self._tensor_at(torch, where[0], where[1], key, whole=True)
            return errors.INVALID_PARAMS if t is None else self._plan_tp(torch, key, t, tp_size,
                                                                         split_dim)
        return self._write("batch_put_tensor_with_tp_from", base_keys,
                           list(zip(buffer_ptrs, sizes)), plan)

    def get_tensor_with_tp(self, key, tp_rank=0, tp_size=1, split_dim=0):
        """Shard `tp_rank` of a tensor stored by put_tensor_with_tp (the
        object <key>_tp_<rank>; with tp_size 1 the object `key`), or None
        when it is missing or its header names another rank."""
        return self.batch_get_tensor_with_tp([key], tp_rank, tp_size)[0]

    def batch_get_tensor_with_tp(self, base_keys, tp_rank=0, tp_size=1):
        keys = [_check_key(k) for k in base_keys]
        read = [_tp_key(k, tp_rank) for k in keys] if tp_size > 1 else keys
        return [self._tp_checked(m, t, tp_rank, tp_size, k)
                for k, (m, t) in zip(read, self._read_tensors(read, "batch_get_tensor_with_tp"))]

    @staticmethod
    def _tp_checked(meta, t, tp_rank, tp_size, key):
        if t is None or tp_size <= 1:
            return t
        tp = _tp_axis(meta.axes)
        if meta.kind != _SHARD or tp is None or tp.rank != tp_rank:
            log.error("kvcached: %s is not TP shard %d", key, tp_rank)
            return None
        return t

    def get_tensor_with_tp_into(self, key, buffer_ptr, size, tp_rank=0, tp_size=1, split_dim=0):
        return self.batch_get_tensor_with_tp_into([key], [buffer_ptr], [size], tp_rank, tp_size,
                                                  split_dim)[0]

    def batch_get_tensor_with_tp_into(self, base_keys, buffer_ptrs, sizes, tp_rank=0, tp_size=1,
                                      split_dim=0):
        keys = [_check_key(k) for k in base_keys]
        if not len(keys) == len(buffer_ptrs) == len(sizes):
            return [errors.INVALID_PARAMS] * len(keys)
        read = [_tp_key(k, tp_rank) for k in keys] if tp_size > 1 else keys
        return [self._tp_checked(m, t, tp_rank, tp_size, k) for k, (m, t) in zip(
            read, self._read_into(read, buffer_ptrs, sizes, "batch_get_tensor_with_tp_into"))]

    # ---- the unified parallelism API -----------------------------------------------------------

    def put_tensor_with_parallelism(self, key, tensor, parallelism=None, config=None,
                                    writer_partition=None):
        """Stores `tensor` whole, or as the shard `parallelism` (a
        TensorParallelism) or `writer_partition` ((rank, size, split_dim))
        names; see _plan_parallel for where. 0 or a code."""
        return self.batch_put_tensor_with_parallelism(
            [key], [tensor], None if parallelism is None else [parallelism], config,
            None if writer_partition is None else [writer_partition])[0]

    def batch_put_tensor_with_parallelism(self, keys, tensors_list, parallelisms=None, config=None,
                                          writer_partitions=None):
        return self._write_parallel("batch_put_tensor_with_parallelism", keys, tensors_list,
                                    parallelisms, config, writer_partitions, False)

    def upsert_tensor_with_parallelism(self, key, tensor, parallelism=None, config=None,
                                       writer_partition=None):
        return self.batch_upsert_tensor_with_parallelism(
            [key], [tensor], None if parallelism is None else [parallelism], config,
            None if writer_partition is None else [writer_partition])[0]

    def batch_upsert_tensor_with_parallelism(self, keys, tensors_list, parallelisms=None,
                                             config=None, writer_partitions=None):
        return self._write_parallel("batch_upsert_tensor_with_parallelism", keys, tensors_list,
                                    parallelisms, config, writer_partitions, True)

    def put_tensor_with_parallelism_from(self, key, buffer_ptr, size, parallelism=None,
                                         config=None, writer_partition=None):
        """put_tensor_with_parallelism of the tensor serialised at
        `buffer_ptr`. Without parallelism and writer_partition the object is
        stored as it is."""
        return self.batch_put_tensor_with_parallelism_from(
            [key], [buffer_ptr], [size], None if parallelism is None else [parallelism], config,
            None if writer_partition is None else [writer_partition])[0]

    def batch_put_tensor_with_parallelism_from(self, keys, buffer_ptrs, sizes, parallelisms=None,
                                               config=None, writer_partitions=None):
        return self._write_parallel_from("batch_put_tensor_with_parallelism_from", keys,
                                         buffer_ptrs, sizes, parallelisms, config,
                                         writer_partitions, False)

    def upsert_tensor_with_parallelism_from(self, key, buffer_ptr, size, parallelism=None,
                                            config=None, writer_partition=None):
        return self.batch_upsert_tensor_with_parallelism_from(
            [key], [buffer_ptr], [size], None if parallelism is None else [parallelism], config,
            None if writer_partition is None else [writer_partition])[0]

    def batch_upsert_tensor_with_parallelism_from(self, keys, buffer_ptrs, sizes,
                                                  parallelisms=None, config=None,
                                                  writer_partitions=None):
        return self._write_parallel_from("batch_upsert_tensor_with_parallelism_from", keys,
                                         buffer_ptrs, sizes, parallelisms, config,
                                         writer_partitions, True)

    def _requests(self, what, n, parallelisms, writer_partitions):
        """(parallelism, writer) per key, or None when the lists are bad."""
        if parallelisms is not None and writer_partitions is not None:
            log.error("kvcached: %s: writer_partitions cannot be combined with parallelisms", what)
            return None
        for name, given in (("parallelisms", parallelisms),
                            ("writer_partitions", writer_partitions)):
            if given is not None and (not isinstance(given, list) or len(given) != n):
                log.error("kvcached: %s: %s must be None or a list with one entry per key", what,
                          name)
                return None
        return list(zip(parallelisms or [None] * n, writer_partitions or [None] * n))

    def _write_parallel(self, what, keys, tensors_list, parallelisms, config, writer_partitions,
                        upsert):
        requests = self._requests(what, len(keys), parallelisms, writer_partitions)
        if requests is None or len(tensors_list) != len(keys):
            return [errors.INVALID_PARAMS] * len(keys)
        values = list(zip(tensors_list, requests))
        return self._write(what, keys, values,
                           lambda torch, k, v: self._plan_parallel(torch, k, v[0], *v[1]),
                           config, upsert, check_config=True)

    def _write_parallel_from(self, what, keys, buffer_ptrs, sizes, parallelisms, config,
                             writer_partitions, upsert):
        requests = self._requests(what, len(keys), parallelisms, writer_partitions)
        if requests is None or not len(keys) == len(buffer_ptrs) == len(sizes):
            return [errors.INVALID_PARAMS] * len(keys)

        def plan(torch, key, v):
            (ptr, size), (parallelism, writer) = v
            if parallelism is None and writer is None:
                return self._plan_from(key, ptr, size)
            t = self._tensor_at(torch, ptr, size, key)
            return errors.INVALID_PARAMS if t is None else self._plan_parallel(
                torch, key, t, parallelism, writer)
        return self._write(what, keys, list(zip(zip(buffer_ptrs, sizes), requests)), plan,
                           config, upsert, check_config=True)

    def get_tensor_with_parallelism(self, key, target=None):
        """The tensor `target` (a ReadTarget) asks for: None or mode
        "as_stored" without parallelism: the object `key`; "as_stored" with
        parallelism: the object stored under that shard's key; "shard": that
        shard, read as stored when its header matches, else cut from the
        whole tensor gathered from the shards stored (a TP axis is needed
        for that); "full" without parallelism: the whole tensor gathered
        from writer_partition shards (or the object `key` when there is no
        writer manifest); "full" with parallelism: the whole tensor gathered
        from its TP shards. None when it cannot be had (reason logged)."""
        torch, _ = self._tensor_start("get_tensor_with_parallelism")
        if torch is None:
            return None
        _check_key(key)
        result = self._resolve(torch, key, target)
        return None if result is None else result[1]

    def batch_get_tensor_with_parallelism(self, keys, targets=None):
        if targets is None:
            return self.batch_get_tensor(keys)
        if not isinstance(targets, list) or len(targets) != len(keys):
            log.error("kvcached: batch_get_tensor_with_parallelism: targets must be None or a "
                      "list with one entry per key")
            return [None] * len(keys)
        return [self.get_tensor_with_parallelism(k, t) for k, t in zip(keys, targets)]

    def get_tensor_with_parallelism_into(self, key, buffer_ptr, size, target=None):
        """get_tensor_with_parallelism into the caller's buffer: the object
        (header and data) is written there and the result views it. None,
        with nothing written, when it does not fit."""
        if _plain_target(target):
            return self.get_tensor_into(key, buffer_ptr, size)
        torch, _ = self._tensor_start("get_tensor_with_parallelism_into")
        if torch is None:
            return None
        _check_key(key)
        result = self._resolve(torch, key, target)
        if result is None:
            return None
        header, t = result
        return _write_into(torch, buffer_ptr, size, header, t.contiguous())

    def batch_get_tensor_with_parallelism_into(self, keys, buffer_ptrs, sizes, targets=None):
        if targets is None:
            return self.batch_get_tensor_into(keys, buffer_ptrs, sizes)
        if not isinstance(targets, list) or not \
                len(targets) == len(keys) == len(buffer_ptrs) == len(sizes):
            log.error("kvcached: batch_get_tensor_with_parallelism_into: keys, buffer_ptrs, "
                      "sizes and targets differ in length")
            return [None] * len(keys)
        return [self.get_tensor_with_parallelism_into(*args)
                for args in zip(keys, buffer_ptrs, sizes, targets)]

    # ---- reads of the parallelism API: resolve, gather, cut -----------------------------------

    def _resolve(self, torch, key, target):
        """(header bytes, tensor) of what `target` asks for, or None."""
        what = f"get_tensor_with_parallelism({key})"
        mode, parallelism = _parse_target(target, what)
        if mode is None:
            return None
        if parallelism is None:
            if mode == "shard":
                log.error("kvcached: %s: mode shard needs a parallelism", what)
                return None
            return self._read_full_writer(torch, key, what) if mode == "full" else \
                self._read_one(torch, key)
        axes = _parse_axes(parallelism, what)
        if axes is None:
            return None
        if mode == "as_stored":
            return self._read_one(torch, _parallel_key(key, axes))
        if mode == "shard":
            return self._read_shard(torch, key, axes, what)
        if _tp_axis(axes) is None:
            log.error("kvcached: %s: mode full needs a TP axis", what)
            return None
        whole = self._gather(torch, key, axes, what)
        return None if whole is None else (_pack_header(whole[0], whole[1].shape,
                                                        whole[1].shape), whole[1])

    def _read_one(self, torch, key):
        meta, t = self._read_tensors([key], "get_tensor_with_parallelism")[0]
        return None if t is None else (_repack(meta), t)

    def _read_shard(self, torch, key, axes, what):
        """The shard `axes` names: as stored under its key (or, for a lone TP
        axis, under the writer_partition key of the same split) when the
        header matches; else cut from the gathered whole tensor."""
        candidates = [_parallel_key(key, axes)]
        tp = _tp_axis(axes)
        if len(axes) == 1 and tp is not None:
            candidates.append(_writer_key(key, tp.rank, tp.size, tp.split_dim))
        for read_key in candidates:
            meta, t = self._read_tensors([read_key], what)[0]
            if t is not None and meta.kind == _SHARD and \
                    _canonical(meta.axes) == _canonical(axes):
                return _repack(meta), t
        if tp is None:
            log.error("kvcached: %s: no shard stored matches %s", what, _parallel_key("", axes))
            return None
        whole = self._gather(torch, key, axes, what)
        if whole is None:
            return None
        dtype, t = whole
        start, length = _shard_range(t.shape[tp.split_dim], tp.rank, tp.size)
        shard = t.narrow(tp.split_dim, start, length).contiguous()
        return _pack_header(dtype, t.shape, shard.shape, axes), shard

    def _gather(self, torch, key, axes, what):
        """(dtype code, whole tensor) from the TP shards stored for the
        layout `axes` belongs to: the shard count from the manifest
        <key>__parallelism_manifest, else from the stored rank 0 (lone TP
        axis) or the requested size; every shard read in one batch, checked
        against its header, and joined along the split dimension."""
        tp = _tp_axis(axes)
        manifest = _parse_manifest(self._read(f"{key}__parallelism_manifest"))
        if manifest is not None:
            count = manifest[3]
        elif len(axes) == 1:
            first = self._read_tensors([_tp_key(key, 0)], what)[0][0]
            first_tp = None if first is None else _tp_axis(first.axes)
            if first_tp is None:
                log.error("kvcached: %s: no TP shards stored", what)
                return None
            count = first_tp.size
        else:
            count = tp.size
        layout = tuple(_with_tp_rank(axes, r, count) for r in range(count))
        return self._join(torch, [_parallel_key(key, a) for a in layout], layout, tp.split_dim,
                          what)

    def _read_full_writer(self, torch, key, what):
        """The whole tensor from writer_partition shards, or the object `key`
        itself when no writer manifest is stored."""
        manifest = _parse_manifest(self._read(f"{key}__writer_manifest"))
        if manifest is None:
            return self._read_one(torch, key)
        dtype, shape, split_dim, count = manifest
        layout = [(_Axis("tp", r, count, split_dim, None, None),) for r in range(count)]
        whole = self._join(torch, [_writer_key(key, r, count, split_dim) for r in range(count)],
                           layout, split_dim, what)
        if whole is None or tuple(whole[1].shape) != shape:
            return None
        return _pack_header(dtype, shape, shape), whole[1]

    def _join(self, torch, keys, layouts, split_dim, what):
        """Reads the shards `keys` (in rank order), checks each header
        against its expected axes and the whole shape, and joins them."""
        shards = self._read_tensors(keys, what)
        metas = [m for m, _ in shards]
        if any(m is None for m in metas):
            missing = [k for k, m in zip(keys, metas) if m is None]
            log.error("kvcached: %s: shards missing or invalid: %s", what, missing)
            return None
        whole = metas[0].global_shape
        for meta, layout, k in zip(metas, layouts, keys):
            tp = _tp_axis(meta.axes)
            expect = list(whole)
            if tp is not None and split_dim < len(whole):
                expect[split_dim] = _shard_range(whole[split_dim], tp.rank, tp.size)[1]
            if meta.kind != _SHARD or _canonical(meta.axes) != _canonical(layout) or \
                    meta.global_shape != whole or list(meta.local_shape) != expect or \
                    meta.dtype != metas[0].dtype:
                log.error("kvcached: %s: %s does not belong to this layout", what, k)
                return None
        return metas[0].dtype, torch.cat([t for _, t in shards], dim=split_dim)


def _repack(meta):
    """The header of an object as read, with its data directly after it."""
    return _pack_header(meta.dtype, meta.global_shape, meta.local_shape, meta.axes, meta.kind)


def _plain_target(target):
    return target is None or (getattr(target, "parallelism", 0) is None and
                              str(getattr(target, "mode", "")).lower() == "as_stored")


def _parse_target(target, what):
    """(mode, parallelism or None) of a ReadTarget, or (None, None)."""
    if target is None:
        return "as_stored", None
    if not hasattr(target, "mode") or not hasattr(target, "parallelism"):
        log.error("kvcached: %s: the target needs mode and parallelism (a ReadTarget)", what)
        return None, None
    mode = str(target.mode).lower()
    if mode not in _READ_MODES:
        log.error("kvcached: %s: unsupported ReadTarget mode %r", what, target.mode)
        return None, None
    return mode, target.parallelism
