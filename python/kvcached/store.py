"""MooncakeDistributedStore and ReplicateConfig: Mooncake Store's Python API
(module mooncake.store) over kvcached's C ABI, with the same method names,
argument order, defaults and return conventions, so SGLang, vLLM and LMCache
run unchanged. Results are ints (0 / byte counts / Mooncake's negative error
codes, kvcached.errors); nothing raises on the data path except TypeError
for arguments of the wrong Python type, as Mooncake's bindings do.

Thread-safety: any number of threads may call one store at once; the
library runs each call without the GIL. setup() and close() are serialised
by a lock. Ownership: memory passed by address (put_from, get_into,
register_buffer, ...) stays the caller's and must outlive the call (or, when
registered, the registration).
"""

import ctypes
import json
import logging
import mmap
import os
import threading
import urllib.error
import urllib.request
from array import array
from collections.abc import Mapping, Sequence
from ctypes import byref, c_char, c_char_p, c_uint64, c_void_p

from . import _lib
from . import _replica
from . import _task
from . import errors
from ._tensor import TensorMixin

log = logging.getLogger("kvcached")

_L = _lib.lib
_MiB = 1 << 20

# setup(dict) keys Mooncake's loaders know but kvcached has no use for.
_IGNORED_MOONCAKE_KEYS = frozenset({
    "master_metrics_port", "check_server", "standalone_storage", "client_server_address",
    "enable_client_http_server", "client_http_port", "extra_backend_tag",
    "enable_group_semantics"})

# setup(dict) keys passed to the library: the kvcached_open_settings names
# and aliases of its settings table (one table, in the library).
_SETTINGS = frozenset(
    n for s in _lib.settings() for n in [s["name"], *s["aliases"]])


class ReplicateConfig:
    """Where a put goes: `replica_num` copies (1 to 16), on
    `preferred_segment` (or the first of `preferred_segments`) when it has
    room, else where the master chooses. `with_soft_pin`: evicted only after
    every unpinned object while the soft pin lasts (the master's
    --default-kv-soft-pin-ttl from the put and from each read);
    `with_hard_pin`: never evicted (docs/master.md, "Pins").
    `prefer_alloc_in_same_node` is accepted; placement follows the master's
    --allocation-strategy (local-first keeps objects on the writer's host)."""

    def __init__(self, replica_num=1, preferred_segment="", preferred_segments=None,
                 with_soft_pin=False, with_hard_pin=False, prefer_alloc_in_same_node=False):
        self.replica_num = replica_num
        self.preferred_segment = preferred_segment
        self.preferred_segments = list(preferred_segments or [])
        self.with_soft_pin = with_soft_pin
        self.with_hard_pin = with_hard_pin
        self.prefer_alloc_in_same_node = prefer_alloc_in_same_node

    def __repr__(self):
        return (f"ReplicateConfig(replica_num={self.replica_num}, "
                f"preferred_segment={self.preferred_segment!r}, "
                f"preferred_segments={self.preferred_segments!r}, "
                f"with_soft_pin={self.with_soft_pin}, with_hard_pin={self.with_hard_pin})")

    def _as_c(self):
        segment = self.preferred_segment or (
            self.preferred_segments[0] if self.preferred_segments else "")
        count = int(self.replica_num)
        if not 0 < count <= 16:
            count = 0  # refused by the library with INVALID_PARAMS, never a flag bit
        if self.with_soft_pin:
            count |= _lib.REPLICATE_SOFT_PIN
        if self.with_hard_pin:
            count |= _lib.REPLICATE_HARD_PIN
        c = _lib.KvcachedReplicateConfig(count, None)
        if segment:
            c.preferred_segment = segment.encode()
        return c


def _replicate_arg(config):
    """A pointer for the C call, or None for the defaults."""
    if config is None:
        return None
    if not isinstance(config, ReplicateConfig):
        raise TypeError(f"config must be a ReplicateConfig, not {type(config).__name__}")
    if (config.replica_num == 1 and not config.preferred_segment and not config.preferred_segments
            and not config.with_soft_pin and not config.with_hard_pin):
        return None
    return byref(config._as_c())


def _key(key):
    if type(key) is str:
        return key.encode()
    if isinstance(key, (bytes, bytearray)):
        return bytes(key)
    raise TypeError(f"key must be str, not {type(key).__name__}")


def _keys(keys):
    """(bytes keys kept alive, char* array, length array) for a batch."""
    bkeys = [k.encode() if type(k) is str else _key(k) for k in keys]
    return bkeys, (c_char_p * len(bkeys))(*bkeys), array("Q", map(len, bkeys))


def _transfer_args(keys, buffer_ptrs, sizes):
    """_keys() plus the address and size arrays of a zero-copy batch."""
    return (*_keys(keys), array("Q", buffer_ptrs), array("Q", sizes))


def _readable(value):
    """(address-or-bytes for a c_void_p argument, size, object to keep alive)."""
    if type(value) is bytes:
        return value, len(value), value  # ctypes passes a pointer to the bytes' own buffer
    try:
        view = memoryview(value)
    except TypeError:
        raise TypeError(f"value must be a bytes-like object, not {type(value).__name__}") from None
    if view.readonly or not view.c_contiguous:
        data = view.tobytes()
        return data, len(data), data
    view = view.cast("B")
    buf = (c_char * view.nbytes).from_buffer(view)
    return buf, view.nbytes, (view, buf)


def _writable_addr(buf):
    return ctypes.addressof((c_char * len(buf)).from_buffer(buf))


def _len_at(nested, i, j):
    """len(nested[i][j]) when that exists, else 0."""
    try:
        return len(nested[i][j])
    except (IndexError, TypeError):
        return 0


class BufferHandle(bytearray):
    """An object's bytes as get_buffer() returns them (Mooncake's
    BufferHandle): a bytearray of its own, so it has the buffer protocol
    (memoryview, numpy.frombuffer), with Mooncake's ptr() and size()."""

    def ptr(self):
        """The address of the first byte (0 when empty); valid while this
        object lives and is not resized."""
        return _writable_addr(self) if len(self) else 0

    def size(self):
        return len(self)


class MooncakeHostMemAllocator:
    """Host memory for an inference process's KV pool in standalone mode
    (Mooncake's MooncakeHostMemAllocator, which SGLang's
    MooncakeHostTensorAllocator wraps): alloc(size) returns the address of
    `size` zeroed, page-aligned bytes (0 when the memory cannot be had, the
    reason logged); free(address) gives them back (0, or INVALID_PARAMS for
    an address this allocator did not hand out). Memory not freed lives as
    long as the allocator. With kvcached no other process maps this memory:
    the client maps the local store's segment and copies in the inference
    process (docs/python.md, "Standalone mode")."""

    def __init__(self):
        self._maps = {}  # address -> mmap
        self._lock = threading.Lock()

    def alloc(self, size):
        if not isinstance(size, int) or isinstance(size, bool):
            raise TypeError("alloc(size): size must be an int")
        if size <= 0:
            log.error("kvcached: MooncakeHostMemAllocator.alloc(%d): size must be positive", size)
            return 0
        m, address = _anonymous_map(size, "MooncakeHostMemAllocator.alloc")
        if m is None:
            return 0
        with self._lock:
            self._maps[address] = m
        return address

    def free(self, ptr):
        if not isinstance(ptr, int) or isinstance(ptr, bool):
            raise TypeError("free(ptr): ptr must be an int")
        with self._lock:
            m = self._maps.pop(ptr, None)
        if m is None:
            log.error("kvcached: MooncakeHostMemAllocator.free(%#x): not an address it handed out",
                      ptr)
            return errors.INVALID_PARAMS
        m.close()
        return 0


def _anonymous_map(size, call):
    """`size` zeroed, page-aligned bytes: (the mmap, its address), or
    (None, 0) with the reason logged."""
    try:
        m = mmap.mmap(-1, size, mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    except (OSError, OverflowError, ValueError) as e:
        log.error("kvcached: %s(%d): %s", call, size, e)
        return None, 0
    return m, ctypes.addressof(ctypes.c_char.from_buffer(m))


def _store_client_info(server_address):
    """GET /api/v1/client from a kvcached store's admin port: its master,
    host id and segment (a dict), or an error code (the reason logged)."""
    address = str(server_address or "").strip()
    if not address:
        log.error("kvcached: setup_dummy: no server address; give the admin address (host:port) "
                  "of the kvcached store on this host (MOONCAKE_CLIENT)")
        return errors.INVALID_PARAMS
    if "://" not in address:
        address = "http://" + address
    request = urllib.request.Request(address.rstrip("/") + "/api/v1/client")
    token_file = os.environ.get("KVCACHED_TOKEN_FILE")
    if token_file:
        try:
            with open(token_file) as f:
                request.add_header("Authorization", "Bearer " + f.read().strip())
        except OSError as e:
            log.error("kvcached: setup_dummy: cannot read KVCACHED_TOKEN_FILE: %s", e)
            return errors.INVALID_PARAMS
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            info = json.loads(r.read().decode())
    except urllib.error.HTTPError as e:
        log.error("kvcached: setup_dummy: the store at %s answered %d %s%s", address, e.code,
                  e.reason, " (is KVCACHED_TOKEN_FILE the cluster token?)" if e.code == 401
                  else " (is this a kvcached store's admin port?)")
        return errors.ILLEGAL_CLIENT if e.code == 401 else errors.INVALID_PARAMS
    except (urllib.error.URLError, OSError) as e:
        log.error("kvcached: setup_dummy: no kvcached store answers at %s: %s", address, e)
        return errors.RPC_FAIL
    except ValueError as e:
        log.error("kvcached: setup_dummy: %s answered something that is not JSON: %s", address, e)
        return errors.INVALID_PARAMS
    if not isinstance(info, dict) or not isinstance(info.get("master"), str) or \
            not isinstance(info.get("host_id"), str):
        log.error("kvcached: setup_dummy: %s answered without a master and host id", address)
        return errors.INVALID_PARAMS
    return info


class MooncakeDistributedStore(TensorMixin):
    """A client of a kvcached pool with Mooncake's MooncakeDistributedStore API.

    Call setup() (or setup_from_env()) once before anything else. Calls made
    before setup, or after close(), return UNAVAILABLE_IN_CURRENT_STATUS
    (health_check: 1); copying gets return b"" and batch calls a list of that
    code."""

    def __init__(self):
        self._handle = None  # the library's kvcached_client_t*, as an int
        self._lock = threading.Lock()
        self._registered = {}  # start address -> size, for get_into_ranges' bounds
        self._pool = {}  # alloc_from_mem_pool: address -> mmap, freed by close()
        self._location_logged = False

    # ---- lifecycle -------------------------------------------------------------

    def setup(self, local_hostname, metadata_server=None, global_segment_size=16 * _MiB,
              local_buffer_size=16 * _MiB, protocol="tcp", rdma_devices="",
              master_server_addr="127.0.0.1:50051", engine=None, *,
              enable_client_http_server=None, client_http_port=None, enable_ssd_offload=None,
              ssd_offload_path=None, tenant_id=None):
        """Connects to the master, and when global_segment_size > 0
        contributes a segment of that size to the pool (served by this
        process until close()). Returns 0, or Mooncake's error code:
        RPC_FAIL (no master), INVALID_PARAMS (a bad setting; the reason is
        logged), ILLEGAL_CLIENT (token), UNAVAILABLE_IN_CURRENT_MODE (rdma).

        setup(config: dict) takes the same settings by name (Mooncake's and
        MOONCAKE_CONFIG_PATH's spellings both work, plus kvcached's: token,
        token_file, transport, checksums, *_timeout_ms, tcp_streams, ...).
        `tenant_id` names the key space this client's keys live in (letters,
        digits, '.', '_', '-'; None, "" or "default": the default tenant's):
        other tenants' objects are invisible to it and its remove_all
        removes its tenant's only (MOONCAKE_TENANT_ID and a config file's
        tenant_id name it too). `enable_ssd_offload=True` puts a disk tier
        under the contributed segment, in the existing directory
        `ssd_offload_path` (else MOONCAKE_OFFLOAD_FILE_STORAGE_PATH, as in
        Mooncake; neither: INVALID_PARAMS): objects evicted from the segment
        go to a file there and are read back on a get (docs/python.md,
        "Disk tier"); without it `ssd_offload_path` is unused. `engine` (a
        Mooncake TransferEngine to reuse) and the other keyword-only options
        are accepted and ignored. The KVCACHED_* variables of the library's
        settings table (KVCACHED_TOKEN_FILE, KVCACHED_TRANSPORT,
        KVCACHED_RDMA_GID_INDEX, KVCACHED_SEGMENT_BIND_HOST: the address a
        contributed segment's data port binds, KVCACHED_DISK_PATH,
        KVCACHED_DISK_SIZE, KVCACHED_DISK_FSYNC) apply in both forms, before
        the arguments."""
        if isinstance(local_hostname, Mapping):
            settings = self._settings_from_dict(local_hostname)
            if settings is None:
                return errors.INVALID_PARAMS
        else:
            settings = [("local_hostname", local_hostname),
                        ("metadata_server", metadata_server or "P2PHANDSHAKE"),
                        ("global_segment_size", global_segment_size),
                        ("local_buffer_size", local_buffer_size),
                        ("protocol", protocol),
                        ("rdma_devices", rdma_devices),
                        ("master_server_addr", master_server_addr)]
            if tenant_id is not None:
                settings.append(("tenant_id", tenant_id))
            if enable_ssd_offload is not None:
                settings.append(("enable_ssd_offload", enable_ssd_offload))
            if ssd_offload_path is not None:
                settings.append(("ssd_offload_path", ssd_offload_path))
        if engine is not None:
            log.info("kvcached: ignoring the TransferEngine passed to setup(); kvcached has its own")
        return self._open(_env_settings() + settings, from_environment=False)

    def setup_dummy(self, mem_pool_size, local_buffer_size, server_address):
        """Standalone mode (Mooncake's dummy client, SGLang's
        standalone_storage): the inference process contributes no memory and
        uses the pool through the kvcached store on its host. server_address
        (MOONCAKE_CLIENT, client_server_address) is that store's admin
        address, host:port (`kvcached store --admin-port`); the store says
        which master it uses and its host id, and the client uses that
        master with the store's host id, so bytes move between the caller's
        memory and the store's segment by shared memory. mem_pool_size and
        local_buffer_size are checked and otherwise unused (nothing needs the
        caller's pool mapped elsewhere). The KVCACHED_* variables apply as in
        setup(). Returns 0 or an error code: RPC_FAIL (no store answers),
        ILLEGAL_CLIENT (token), INVALID_PARAMS."""
        for name, v in (("mem_pool_size", mem_pool_size), ("local_buffer_size", local_buffer_size)):
            if not isinstance(v, int) or isinstance(v, bool):
                raise TypeError(f"setup_dummy(): {name} must be an int")
            if v < 0:
                log.error("kvcached: setup_dummy: %s must not be negative", name)
                return errors.INVALID_PARAMS
        info = _store_client_info(server_address)
        if isinstance(info, int):
            return info
        if not info.get("shm", False):
            log.warning("kvcached: setup_dummy: the store at %s serves no shared memory (--shm-socket "
                        "off); bytes move over TCP", server_address)
        settings = [("master_server_addr", info["master"]), ("local_hostname", info["host_id"]),
                    ("global_segment_size", 0)]
        rc = self._open(_env_settings() + settings, from_environment=False)
        if rc == 0:
            log.info("kvcached: setup_dummy: using store segment '%s' on host '%s', master %s",
                     info.get("segment", "?"), info["host_id"], info["master"])
        return rc

    def setup_from_env(self, **overrides):
        """kvcached's addition: settings from the environment as Mooncake reads
        them (MOONCAKE_CONFIG_PATH's JSON, else MOONCAKE_MASTER,
        MOONCAKE_LOCAL_HOSTNAME, MOONCAKE_TE_META_DATA_SERVER,
        MOONCAKE_GLOBAL_SEGMENT_SIZE, MOONCAKE_LOCAL_BUFFER_SIZE,
        MOONCAKE_PROTOCOL, MOONCAKE_DEVICE, MOONCAKE_TENANT_ID,
        MOONCAKE_ENABLE_SSD_OFFLOAD, MOONCAKE_OFFLOAD_FILE_STORAGE_PATH; plus
        the KVCACHED_* variables: KVCACHED_TOKEN_FILE, KVCACHED_TRANSPORT,
        KVCACHED_RDMA_GID_INDEX, KVCACHED_SEGMENT_BIND_HOST,
        KVCACHED_DISK_PATH, ...), then the JSON file named by
        SGLANG_HICACHE_MOONCAKE_CONFIG_PATH if set, then `overrides` (setting
        names as in setup(dict)). Returns 0 or an error code."""
        # The library reads every variable of its table itself.
        settings = []
        sglang_file = os.environ.get("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH")
        if sglang_file:
            settings.append(("config_path", sglang_file))
        extra = self._settings_from_dict(overrides)
        if extra is None:
            return errors.INVALID_PARAMS
        return self._open(settings + extra, from_environment=True)

    @staticmethod
    def _settings_from_dict(config):
        settings = []
        for name, value in config.items():
            if name in _SETTINGS:
                if value is not None:
                    settings.append((name, value))
            elif name in _IGNORED_MOONCAKE_KEYS:
                continue
            else:
                log.error("kvcached: unknown setup() setting %r", name)
                return None
        return settings

    def _open(self, settings, from_environment):
        names = [n.encode() for n, _ in settings]
        values = [_setting_text(v) for _, v in settings]
        handle = c_void_p()
        with self._lock:
            if self._handle is not None:
                _L.kvcached_destroy(self._handle)  # a second setup replaces the first client
                self._handle = None
                self._registered.clear()
                self._free_pool()
            if os.environ.get("KVCACHED_LOG_LEVEL"):
                _L.kvcached_set_log_level(os.environ["KVCACHED_LOG_LEVEL"].encode())
            rc = _L.kvcached_open_settings((c_char_p * len(names))(*names),
                                           (c_char_p * len(values))(*values), len(names),
                                           1 if from_environment else 0, byref(handle))
            if rc != 0:
                log.error("kvcached: setup failed: %s", _lib.last_error())
                return rc
            self._handle = handle.value
        return 0

    def close(self):
        """Unmounts this client's segments (its setup segment and every one
        mount_segment or allocate_and_mount_segment added: their objects
        leave the pool), closes every connection and frees the memory
        alloc_from_mem_pool handed out. Later calls return
        UNAVAILABLE_IN_CURRENT_STATUS. Returns 0; idempotent."""
        with self._lock:
            if self._handle is not None:
                _L.kvcached_close(self._handle)
            self._registered.clear()
            self._free_pool()
        return 0

    def _free_pool(self):
        # Called with the client closed or destroyed: nothing moves bytes
        # through these buffers any more.
        pool, self._pool = self._pool, {}
        for m in pool.values():
            try:
                m.close()
            except BufferError:  # the caller still holds a view of it: freed with that
                log.warning("kvcached: a buffer from alloc_from_mem_pool is still exported; it "
                            "is freed when its last view is")

    def __del__(self):
        handle, self._handle = getattr(self, "_handle", None), None
        if handle is not None and _L is not None:
            try:
                _L.kvcached_destroy(handle)
            except Exception:  # interpreter shutdown
                pass

    def health_check(self):
        """0 healthy, 1 not set up or closed, 2 the master cannot be reached."""
        h = self._handle
        if h is None:
            return 1
        return _L.kvcached_health_check(h)

    def get_hostname(self):
        """What Mooncake's get_hostname() returns: the name of the segment
        this client contributes, which callers pass as
        ReplicateConfig.preferred_segment to keep objects in their own
        memory; the host id when the client contributes none ("" before
        setup)."""
        h = self._handle
        if h is None:
            return ""
        return _L.kvcached_segment_name(h).decode() or _L.kvcached_host_id(h).decode()

    # ---- copying API --------------------------------------------------------------

    def put(self, key, value, config=None):
        """0, or a negative code. A put of an existing key returns 0 and leaves
        the object unchanged. An empty value is INVALID_PARAMS."""
        return self._put_one(key, value, config, _L.kvcached_put)

    def upsert(self, key, value, config=None):
        """put(), but an object of the key that exists is replaced. Once the
        master has placed the new object and until the call returns, a lookup
        of the key finds nothing; a reader already holding the old object
        reads it whole. Refused by the master (no room), the old object
        stays; failed after placement, the key has no object."""
        return self._put_one(key, value, config, _L.kvcached_upsert_from)

    def _put_one(self, key, value, config, call):
        if self._handle is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        data, size, keep = _readable(value)  # `keep` holds the bytes for the call
        return self._from_one(key, data, size, config, call)

    def get(self, key):
        """The object's bytes, or b"" when it is missing or cannot be read."""
        buf = self._read(key)
        return b"" if buf is None else bytes(buf)

    def get_buffer(self, key):
        """The object's bytes in a BufferHandle, or None when it is missing or
        cannot be read."""
        return self._read(key)

    def _read(self, key):
        h = self._handle
        if h is None:
            return None
        k = _key(key)
        for _ in range(3):  # the object may be replaced between size and read
            size = _L.kvcached_get_size(h, k, len(k))
            if size <= 0:
                return None
            buf = BufferHandle(size)
            n = _L.kvcached_get_into(h, k, len(k), _writable_addr(buf), size)
            if n >= 0:
                del buf[n:]
                return buf
            if n != errors.INVALID_PARAMS:
                return None
        return None

    def put_parts(self, key, *parts, config=None):
        """put() of the parts (bytes-like objects) joined into one value."""
        return self.put(key, b"".join(parts), config)

    def upsert_parts(self, key, *parts, config=None):
        """upsert() of the parts (bytes-like objects) joined into one value."""
        return self.upsert(key, b"".join(parts), config)

    def put_batch(self, keys, values, config=None):
        """0 when every object was stored (or existed), else the first
        failure's code."""
        return self._values_batch(keys, values, config, upsert=False)

    def upsert_batch(self, keys, values, config=None):
        """upsert() of each key: 0 when every object was stored, else the
        first failure's code."""
        return self._values_batch(keys, values, config, upsert=True)

    def _values_batch(self, keys, values, config, upsert):
        if len(keys) != len(values):
            return errors.INVALID_PARAMS
        if not keys:
            return 0
        if self._handle is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        parts = [_readable(v) for v in values]
        ptrs = [ctypes.cast(p[0], c_void_p).value if type(p[0]) is bytes
                else ctypes.addressof(p[0]) for p in parts]
        results = self._batch_put(keys, ptrs, [p[1] for p in parts], config, upsert)
        return next((r for r in results if r != 0), 0)

    def get_batch(self, keys):
        """One bytes object per key, in order; b"" for a key that is missing or
        cannot be read."""
        return [b"" if b is None else bytes(b) for b in self._read_batch(keys)]

    def batch_get_buffer(self, keys):
        """One BufferHandle per key, in order; None for a key that is missing
        or cannot be read."""
        return self._read_batch(keys)

    def _read_batch(self, keys):
        h = self._handle
        out = [None] * len(keys)
        if h is None:
            return out
        bufs, want, where = [], [], []
        for i, key in enumerate(keys):
            k = _key(key)
            size = _L.kvcached_get_size(h, k, len(k))
            if size > 0:
                bufs.append(BufferHandle(size))
                want.append(key)
                where.append(i)
        if want:
            results = self.batch_get_into(want, [_writable_addr(b) for b in bufs],
                                          [len(b) for b in bufs])
            for i, buf, n in zip(where, bufs, results):
                if n > 0:
                    del buf[n:]
                    out[i] = buf
        return out

    # ---- zero-copy API ----------------------------------------------------------------

    def register_buffer(self, buffer_ptr, size):
        """0, or INVALID_PARAMS for a null or empty range or one overlapping
        a registered range. Over TCP and shared memory registration is not
        required; code written for Mooncake registers its host pool anyway."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        rc = _L.kvcached_register_buffer(h, buffer_ptr, size)
        if rc == 0:
            self._registered[buffer_ptr] = size
        return rc

    def unregister_buffer(self, buffer_ptr):
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        rc = _L.kvcached_unregister_buffer(h, buffer_ptr)
        if rc == 0:
            self._registered.pop(buffer_ptr, None)
        return rc

    def _registered_room(self, ptr):
        """Bytes from `ptr` to the end of the registered range holding it, or
        None when no registered range holds it."""
        for start, size in list(self._registered.items()):
            if start <= ptr < start + size:
                return start + size - ptr
        return None

    def get_into_ranges(self, buffer_ptrs, all_keys, all_dst_offsets, all_src_offsets,
                        all_sizes):
        """Mooncake's ranged read, buffer-major: for each buffer i, key j and
        fragment k, copies bytes [src, src + size) of object all_keys[i][j]
        to buffer_ptrs[i] + dst. Returns results[i][j][k]: the bytes copied,
        or a negative code for that fragment alone (INVALID_PARAMS for a
        shape mismatch, a buffer not registered, or a range outside the
        registered buffer or the object; OBJECT_NOT_FOUND for a missing key).
        Each object named is read whole once per call, then its fragments
        are copied out of it."""
        bad = errors.INVALID_PARAMS
        lists = (all_keys, all_dst_offsets, all_src_offsets, all_sizes)
        if any(len(x) != len(buffer_ptrs) for x in lists):
            return [[[bad] * max(1, _len_at(all_sizes, i, j)) for j in range(len(keys))]
                    for i, keys in enumerate(all_keys)]
        objects = {}
        for keys in all_keys:
            for key in keys:
                if key not in objects:
                    objects[key] = self._read(key)
        results = []
        for i, keys in enumerate(all_keys):
            room = self._registered_room(buffer_ptrs[i])
            per_buffer = []
            for j, key in enumerate(keys):
                frags = [all_dst_offsets[i], all_src_offsets[i], all_sizes[i]]
                if any(len(f) != len(keys) for f in frags):
                    per_buffer.append([bad] * max(1, _len_at(all_sizes, i, j)))
                    continue
                dsts, srcs, sizes = (f[j] for f in frags)
                n = max(len(dsts), len(srcs), len(sizes), 1)
                if not len(dsts) == len(srcs) == len(sizes) or room is None:
                    per_buffer.append([bad] * n)
                    continue
                obj = objects[key]
                if obj is None:
                    per_buffer.append([errors.OBJECT_NOT_FOUND] * n)
                    continue
                per_key = []
                for dst, src, size in zip(dsts, srcs, sizes):
                    if min(dst, src, size) < 0 or src + size > len(obj) or dst + size > room:
                        per_key.append(bad)
                        continue
                    if size:
                        ctypes.memmove(buffer_ptrs[i] + dst, obj.ptr() + src, size)
                    per_key.append(size)
                per_buffer.append(per_key)
            results.append(per_buffer)
        return results

    def put_from(self, key, buffer_ptr, size, config=None):
        """Stores `size` bytes at address `buffer_ptr`. 0 or a negative code."""
        return self._from_one(key, buffer_ptr, size, config, _L.kvcached_put_from)

    def upsert_from(self, key, buffer_ptr, size, config=None):
        """put_from(), replacing an object of the key that exists (as upsert())."""
        return self._from_one(key, buffer_ptr, size, config, _L.kvcached_upsert_from)

    def _from_one(self, key, buffer_ptr, size, config, call):
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        k = _key(key)
        return call(h, k, len(k), buffer_ptr, size, _replicate_arg(config))

    def get_into(self, key, buffer_ptr, size):
        """Reads the object to address `buffer_ptr`: its size in bytes, or a
        negative code (INVALID_PARAMS, with nothing written, when `size` is
        smaller than the object)."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        k = _key(key)
        return _L.kvcached_get_into(h, k, len(k), buffer_ptr, size)

    def batch_put_from(self, keys, buffer_ptrs, sizes, config=None):
        """One result per key: 0 or a negative code."""
        if not (len(keys) == len(buffer_ptrs) == len(sizes)):
            return [errors.INVALID_PARAMS] * len(keys)
        return self._batch_put(keys, buffer_ptrs, sizes, config)

    def batch_upsert_from(self, keys, buffer_ptrs, sizes, config=None):
        """batch_put_from(), replacing objects of keys that exist (as
        upsert()). One result per key: 0 or a negative code."""
        if not (len(keys) == len(buffer_ptrs) == len(sizes)):
            return [errors.INVALID_PARAMS] * len(keys)
        return self._batch_put(keys, buffer_ptrs, sizes, config, upsert=True)

    def _batch_put(self, keys, buffer_ptrs, sizes, config, upsert=False):
        n = len(keys)
        h = self._handle
        if h is None:
            return [errors.UNAVAILABLE_IN_CURRENT_STATUS] * n
        if n == 0:
            return []
        bkeys, karr, lens, ptrs, szs = _transfer_args(keys, buffer_ptrs, sizes)
        results = array("i", bytes(4 * n))
        call = _L.kvcached_batch_upsert_from if upsert else _L.kvcached_batch_put_from
        call(h, n, karr, lens.buffer_info()[0], ptrs.buffer_info()[0], szs.buffer_info()[0],
             _replicate_arg(config), results.buffer_info()[0])
        return results.tolist()

    def batch_get_into(self, keys, buffer_ptrs, sizes):
        """One result per key: the object's size, or a negative code."""
        n = len(keys)
        if not (n == len(buffer_ptrs) == len(sizes)):
            return [errors.INVALID_PARAMS] * n
        h = self._handle
        if h is None:
            return [errors.UNAVAILABLE_IN_CURRENT_STATUS] * n
        if n == 0:
            return []
        bkeys, karr, lens, ptrs, szs = _transfer_args(keys, buffer_ptrs, sizes)
        results = array("q", bytes(8 * n))
        _L.kvcached_batch_get_into(h, n, karr, lens.buffer_info()[0], ptrs.buffer_info()[0],
                                   szs.buffer_info()[0], results.buffer_info()[0])
        return results.tolist()

    def put_from_with_metadata(self, key, buffer_ptr, metadata_buffer_ptr, size, metadata_size,
                               config=None):
        """Stores the object `metadata_size` bytes at `metadata_buffer_ptr`
        followed by `size` bytes at `buffer_ptr` (Mooncake's order: the
        metadata first), gathered through one staging copy. 0 or a negative
        code; as in Mooncake, `size` 0 stores nothing and returns 0."""
        if self._handle is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        if size == 0:
            log.warning("put_from_with_metadata of %r: no data bytes, nothing stored", key)
            return 0
        if metadata_size < 0 or size < 0 or (metadata_size and not metadata_buffer_ptr) \
                or not buffer_ptr:
            return errors.INVALID_PARAMS
        ptrs, sizes = [buffer_ptr], [size]
        if metadata_size:
            ptrs, sizes = [metadata_buffer_ptr, buffer_ptr], [metadata_size, size]
        return self.batch_put_from_multi_buffers([key], [ptrs], [sizes], config)[0]

    def batch_put_from_multi_buffers(self, keys, all_buffer_ptrs, all_sizes, config=None):
        """Mooncake's gather form: object i is the concatenation of the
        buffers all_buffer_ptrs[i] (sizes all_sizes[i]). kvcached gathers
        them into one staging buffer per object (one extra copy)."""
        if not (len(keys) == len(all_buffer_ptrs) == len(all_sizes)):
            return [errors.INVALID_PARAMS] * len(keys)
        staging = []
        for ptrs, sizes in zip(all_buffer_ptrs, all_sizes):
            buf = bytearray(sum(sizes))
            base, at = _writable_addr(buf) if buf else 0, 0
            for p, s in zip(ptrs, sizes):
                ctypes.memmove(base + at, p, s)
                at += s
            staging.append(buf)
        return self._batch_put(keys, [_writable_addr(b) if b else 0 for b in staging],
                               [len(b) for b in staging], config)

    def batch_get_into_multi_buffers(self, keys, all_buffer_ptrs, all_sizes):
        """The scatter form of batch_get_into: the object is split over the
        buffers all_buffer_ptrs[i] in order. Results as batch_get_into."""
        if not (len(keys) == len(all_buffer_ptrs) == len(all_sizes)):
            return [errors.INVALID_PARAMS] * len(keys)
        staging = [bytearray(sum(sizes)) for sizes in all_sizes]
        results = self.batch_get_into(keys, [_writable_addr(b) if b else 0 for b in staging],
                                      [len(b) for b in staging])
        for buf, ptrs, sizes, n in zip(staging, all_buffer_ptrs, all_sizes, results):
            if n < 0:
                continue
            base, at = _writable_addr(buf), 0
            for p, s in zip(ptrs, sizes):
                ctypes.memmove(p, base + at, min(s, max(0, n - at)))
                at += s
        return results

    # ---- queries and removal -------------------------------------------------------------

    def is_exist(self, key):
        """1 the object exists, 0 it does not, or a negative code."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        k = _key(key)
        return _L.kvcached_exist(h, k, len(k))

    def batch_is_exist(self, keys):
        """One result per key: 1, 0 or a negative code."""
        n = len(keys)
        h = self._handle
        if h is None:
            return [errors.UNAVAILABLE_IN_CURRENT_STATUS] * n
        if n == 0:
            return []
        bkeys, karr, lens = _keys(keys)
        results = array("i", bytes(4 * n))
        _L.kvcached_batch_exist(h, n, karr, lens.buffer_info()[0], results.buffer_info()[0])
        return results.tolist()

    def get_size(self, key):
        """The object's size, or a negative code (OBJECT_NOT_FOUND)."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        k = _key(key)
        return _L.kvcached_get_size(h, k, len(k))

    def get_replica_desc(self, key):
        """Where the object lives, moving no bytes: a list of
        ReplicaDescriptor, one per replica in the master's order (each a
        COMPLETE memory replica; see kvcached._replica). An empty list when
        the key is missing (or its put is in progress) or the call fails, as
        Mooncake's; the reason of a failure other than a miss is logged.
        Asking takes no lease that outlives the call."""
        found = self._replica_descs([_key(key)], "get_replica_desc")
        return found[0] if found and found[0] is not None else []

    def batch_get_replica_desc(self, keys):
        """get_replica_desc() of each key as one call: a dict from each key
        found to its list of ReplicaDescriptor; keys that are missing or
        fail are left out, as Mooncake's. `keys` is a list (or another
        sequence) of str."""
        if isinstance(keys, (str, bytes, bytearray)) or not isinstance(keys, Sequence):
            raise TypeError("batch_get_replica_desc(): keys must be a list of str, not "
                            f"{type(keys).__name__}")
        found = self._replica_descs(keys, "batch_get_replica_desc")
        if not found:
            return {}
        return {key: replicas for key, replicas in zip(keys, found) if replicas is not None}

    def _replica_descs(self, keys, caller):
        """Per key its list of ReplicaDescriptor, or None where it failed;
        None as a whole when the call could not be made (logged)."""
        h = self._handle
        if h is None:
            log.error("kvcached: %s: the store is not set up (call setup() first)", caller)
            return None
        bkeys, karr, lens = _keys(keys)
        text = c_void_p()
        rc = _L.kvcached_batch_replica_desc_json(h, len(bkeys), karr, lens.buffer_info()[0],
                                                 byref(text))
        if rc != 0:
            log.error("kvcached: %s failed: %s", caller, _lib.last_error())
            return None
        try:
            entries = json.loads(ctypes.string_at(text.value).decode())
        finally:
            _L.kvcached_free_string(text)
        out, failed = [], []
        for key, entry in zip(bkeys, entries):
            code = entry["code"]
            out.append(_replica.from_entry(entry) if code == 0 else None)
            if code == errors.OBJECT_NOT_FOUND:
                log.debug("kvcached: %s: no object under %r", caller, key[:80])
            elif code != 0:
                failed.append((key, code))
        if failed:  # one line per call, not per key
            key, code = failed[0]
            log.error("kvcached: %s: %d of %d keys failed; the first, %r: %s", caller,
                      len(failed), len(bkeys), key[:80], errors.error_name(code))
        return out

    def remove(self, key, force=False):
        """0, OBJECT_NOT_FOUND, or OBJECT_HAS_LEASE while a reader holds a
        lease (unless force)."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        k = _key(key)
        return _L.kvcached_remove(h, k, len(k), 1 if force else 0)

    def batch_remove(self, keys, force=False):
        """remove() of each key, in order: a list of codes (0 for removed)."""
        return [self.remove(key, force) for key in keys]

    def remove_all(self, force=False):
        """How many objects were removed, or a negative code. Objects under a
        read lease are skipped unless force."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        return _L.kvcached_remove_all(h, 1 if force else 0)

    def remove_by_regex(self, regex_pattern, force=False):
        """Removes the objects whose keys match `regex_pattern` (an ECMAScript
        subset, docs/protocol.md: matched anywhere in the key, in linear time;
        no back-references or lookaround): how many
        were removed, or a negative code (INVALID_PARAMS for a bad pattern).
        Objects under a read lease are kept unless force."""
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        if not isinstance(regex_pattern, str):
            raise TypeError(f"regex_pattern must be a str, not {type(regex_pattern).__name__}")
        pattern = regex_pattern.encode()
        if b"\0" in pattern:
            return errors.INVALID_PARAMS
        return _L.kvcached_remove_by_regex(h, pattern, 1 if force else 0)

    # ---- segments and memory --------------------------------------------------------

    def init_all(self, protocol, device_name, mount_segment_size=16 * _MiB):
        """Mooncake's one-call set-up: the settings of setup_from_env()
        (MOONCAKE_MASTER, MOONCAKE_LOCAL_HOSTNAME, ... and the KVCACHED_*
        variables), with `protocol` and `device_name` (RDMA devices) as
        given and a segment of `mount_segment_size` bytes (0: none). Returns
        0 or an error code, as setup()."""
        if not _is_int(mount_segment_size) or mount_segment_size < 0:
            log.error("kvcached: init_all: mount_segment_size must be a non-negative int, not %r",
                      mount_segment_size)
            return errors.INVALID_PARAMS
        return self.setup_from_env(protocol=protocol or "tcp", rdma_devices=device_name or "",
                                   global_segment_size=mount_segment_size)

    def mount_segment(self, path, size, offset=0, protocol="tcp", location=""):
        """Contributes `size` bytes of the existing file at `path` (a
        /dev/shm object, a regular file), from byte `offset` (a multiple of
        the page size), as one more segment served by this process until
        unmount_segment() or close(). The file is mapped MAP_SHARED: puts
        write into it; it is never grown, truncated or removed. With offset
        0 same-host clients reach it by shared memory, otherwise over TCP.
        Returns {"ret": 0 or an error code, "segment_ids": [id]}: the id is
        the segment's name (what ReplicateConfig.preferred_segment takes and
        get_replica_desc reports). INVALID_PARAMS (the reason logged,
        nothing changed) for a size that is not a positive int, an offset
        that is not a page-aligned non-negative int, or a file that is
        missing, not readable and writable, not a regular file or shorter
        than offset + size. `location` is accepted and ignored."""
        ret = self._check_mount("mount_segment", size, protocol, location)
        if ret == 0 and (not _is_int(offset) or offset < 0):
            log.error("kvcached: mount_segment: offset must be a non-negative int, not %r", offset)
            ret = errors.INVALID_PARAMS
        if ret == 0 and (not isinstance(path, (str, bytes, os.PathLike)) or not os.fspath(path)):
            log.error("kvcached: mount_segment: path must be a file's path, not %r", path)
            ret = errors.INVALID_PARAMS
        if ret != 0:
            return {"ret": ret, "segment_ids": []}
        ret, name, _ = self._mount(os.fsencode(path), offset, size, protocol, "mount_segment")
        return {"ret": ret, "segment_ids": [name] if ret == 0 else []}

    def allocate_and_mount_segment(self, size, protocol="tcp", location=""):
        """Allocates `size` bytes (rounded up to the page size) and
        contributes them as one more segment, as mount_segment does a
        file's. Returns {"ret", "segment_ids", "allocated_size"}:
        allocated_size is the rounded size (0 on failure). Free it with
        unmount_and_free_segment (or unmount_segment) or close()."""
        ret = self._check_mount("allocate_and_mount_segment", size, protocol, location)
        if ret != 0:
            return {"ret": ret, "segment_ids": [], "allocated_size": 0}
        ret, name, allocated = self._mount(None, 0, size, protocol, "allocate_and_mount_segment")
        return {"ret": ret, "segment_ids": [name] if ret == 0 else [],
                "allocated_size": allocated if ret == 0 else 0}

    def unmount_segment(self, segment_ids, grace_period_seconds=0):
        """Unmounts segments this client mounted (either kind), all or
        none: the master drops their objects, and their memory is given back
        (a file's mapping is released; the file stays). Returns 0,
        SEGMENT_NOT_FOUND for an id this client has not mounted, or
        INVALID_PARAMS (an empty list, the setup segment's id, a bad
        grace_period_seconds); nothing is unmounted then.
        grace_period_seconds is accepted and unused: an unmount never
        waits, and a transfer still running into the segment fails cleanly
        or completes."""
        return self._unmount(segment_ids, grace_period_seconds, False, "unmount_segment")

    def unmount_and_free_segment(self, segment_ids, grace_period_seconds=0):
        """As unmount_segment, for segments allocate_and_mount_segment
        made: an id from mount_segment is refused (INVALID_PARAMS, nothing
        unmounted), as that memory is a file's, not the pool's to free."""
        return self._unmount(segment_ids, grace_period_seconds, True, "unmount_and_free_segment")

    def alloc_from_mem_pool(self, size):
        """The address of `size` zeroed bytes of page-aligned host memory,
        registered with register_buffer, for put_from/get_into and the
        other zero-copy calls; 0 on failure (the reason logged). In Mooncake
        this carves the client's registered local buffer; kvcached has no
        such pool, so each call maps memory of its own, which lives until
        close() (or a new setup()). Over TCP and shared memory the
        registration changes nothing; with RDMA it registers the range with
        the NICs once."""
        if not _is_int(size) or size <= 0:
            log.error("kvcached: alloc_from_mem_pool: size must be a positive int, not %r", size)
            return 0
        with self._lock:
            if self._handle is None:
                log.error("kvcached: alloc_from_mem_pool: the store is not set up (or closed)")
                return 0
            m, address = _anonymous_map(size, "alloc_from_mem_pool")
            if m is None:
                return 0
            rc = _L.kvcached_register_buffer(self._handle, address, size)
            if rc != 0:
                log.error("kvcached: alloc_from_mem_pool(%d): register_buffer: %s", size,
                          _lib.last_error())
                m.close()
                return 0
            self._registered[address] = size
            self._pool[address] = m
        return address

    def _check_mount(self, call, size, protocol, location):
        if self._handle is None:
            log.error("kvcached: %s: the store is not set up (or closed)", call)
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        if not _is_int(size) or size <= 0:
            log.error("kvcached: %s: size must be a positive int, not %r", call, size)
            return errors.INVALID_PARAMS
        if protocol not in ("tcp", "rdma"):
            log.error("kvcached: %s: protocol must be 'tcp' or 'rdma', not %r", call, protocol)
            return errors.INVALID_PARAMS
        if location and not self._location_logged:
            self._location_logged = True
            log.info("kvcached: %s: location %r is ignored (kvcached places no segment by NUMA "
                     "location)", call, location)
        return 0

    def _mount(self, path, offset, size, protocol, call):
        h = self._handle
        if h is None:
            return errors.UNAVAILABLE_IN_CURRENT_STATUS, "", 0
        name = c_void_p()
        allocated = c_uint64()
        rc = _L.kvcached_mount_segment(h, path, offset, size, protocol.encode(), byref(name),
                                       byref(allocated))
        if rc != 0:
            log.error("kvcached: %s: %s", call, _lib.last_error())
            return rc, "", 0
        try:
            text = ctypes.string_at(name.value).decode(errors="replace")
        finally:
            _L.kvcached_free_string(name.value)
        return 0, text, allocated.value

    def _unmount(self, segment_ids, grace_period_seconds, free_memory, call):
        h = self._handle
        if h is None:
            log.error("kvcached: %s: the store is not set up (or closed)", call)
            return errors.UNAVAILABLE_IN_CURRENT_STATUS
        if isinstance(segment_ids, str):
            segment_ids = [segment_ids]
        if not isinstance(segment_ids, Sequence) or \
                not all(isinstance(i, str) and i and "\0" not in i for i in segment_ids):
            log.error("kvcached: %s: segment_ids must be a list of segment ids (str), not %r",
                      call, segment_ids)
            return errors.INVALID_PARAMS
        if isinstance(grace_period_seconds, bool) or \
                not isinstance(grace_period_seconds, (int, float)) or grace_period_seconds < 0:
            log.error("kvcached: %s: grace_period_seconds must be a non-negative number, not %r",
                      call, grace_period_seconds)
            return errors.INVALID_PARAMS
        names = [i.encode() for i in segment_ids]
        rc = _L.kvcached_unmount_segments(h, len(names), (c_char_p * len(names))(*names),
                                          1 if free_memory else 0)
        if rc != 0:
            log.error("kvcached: %s: %s", call, _lib.last_error())
        return rc

    # ---- replica tasks ------------------------------------------------------------------------

    def create_copy_task(self, key, targets):
        """Adds a replica of `key`'s object in each segment named in
        `targets` (segment names, as get_replica_desc reports them) that
        lacks one. Returns (task_id, 0) once the master has recorded the
        task, this client then copies the bytes in the background; follow it
        with query_task(task_id). On failure ((0, 0), code):
        OBJECT_NOT_FOUND, SEGMENT_NOT_FOUND, INVALID_PARAMS (no target, one
        named twice, more than 16 replicas), TASK_PENDING_LIMIT_EXCEEDED,
        UNAVAILABLE_IN_CURRENT_STATUS before setup; the reason is logged."""
        if isinstance(targets, (str, bytes)) or not isinstance(targets, Sequence):
            raise TypeError("create_copy_task(key, targets): targets must be a list of str")
        names = [_segment_arg(t, "targets") for t in targets]
        k = _task_key(key)
        h = self._handle
        if h is None:
            return _task.NO_TASK, errors.UNAVAILABLE_IN_CURRENT_STATUS
        if k is None or not names:
            log.error("kvcached: create_copy_task: %s", "no target segment" if k is not None
                      else "the key holds a NUL byte")
            return _task.NO_TASK, errors.INVALID_PARAMS
        out = _lib.KvcachedTaskId()
        rc = _L.kvcached_create_copy_task(h, k, (c_char_p * len(names))(*names), len(names),
                                          byref(out))
        return self._task_created(rc, out, "create_copy_task")

    def create_move_task(self, key, source, target):
        """Moves `key`'s replica in segment `source` to segment `target`:
        the target gets a copy first, then the source's is dropped (readers
        still reading it finish first). Returns (task_id, 0) or ((0, 0),
        code) as create_copy_task; INVALID_REPLICA when `source` holds no
        replica of the object, INVALID_PARAMS when source is target."""
        src = _segment_arg(source, "source")
        dst = _segment_arg(target, "target")
        k = _task_key(key)
        h = self._handle
        if h is None:
            return _task.NO_TASK, errors.UNAVAILABLE_IN_CURRENT_STATUS
        if k is None:
            log.error("kvcached: create_move_task: the key holds a NUL byte")
            return _task.NO_TASK, errors.INVALID_PARAMS
        out = _lib.KvcachedTaskId()
        rc = _L.kvcached_create_move_task(h, k, src, dst, byref(out))
        return self._task_created(rc, out, "create_move_task")

    @staticmethod
    def _task_created(rc, out, call):
        if rc != 0:
            log.error("kvcached: %s: %s", call, _lib.last_error())
            return _task.NO_TASK, rc
        return (out.hi, out.lo), 0

    def query_task(self, task_id):
        """(QueryTaskResponse, 0), or (None, code): TASK_NOT_FOUND for an id
        the master does not know (never created, another tenant's,
        forgotten after --max-finished-tasks newer ones, or from before a
        master restart), UNAVAILABLE_IN_CURRENT_STATUS before setup."""
        if (not isinstance(task_id, Sequence) or isinstance(task_id, (str, bytes))
                or len(task_id) != 2 or not all(_is_int(v) for v in task_id)):
            raise TypeError("query_task(task_id): task_id must be a pair of ints, as "
                            "create_copy_task returns it")
        if not all(0 <= v < 1 << 64 for v in task_id):
            return None, errors.TASK_NOT_FOUND
        h = self._handle
        if h is None:
            return None, errors.UNAVAILABLE_IN_CURRENT_STATUS
        info = _lib.KvcachedTaskInfo()
        rc = _L.kvcached_query_task(h, _lib.KvcachedTaskId(task_id[0], task_id[1]), byref(info))
        if rc != 0:
            log.debug("kvcached: query_task: %s", _lib.last_error())
            return None, rc
        try:
            client = ctypes.string_at(info.assigned_client).decode(errors="replace")
            message = ctypes.string_at(info.message).decode(errors="replace")
        finally:
            _L.kvcached_free_string(info.assigned_client)
            _L.kvcached_free_string(info.message)
        return _task.QueryTaskResponse((info.id.hi, info.id.lo), info.type, info.status,
                                       info.created_at_ms_epoch, info.last_updated_at_ms_epoch,
                                       client, message), 0

    # ---- kvcached's additions ----------------------------------------------------------------

    def stats(self):
        """What this client has done since setup, as a dict (docs/client.md#statistics)."""
        h = self._handle
        s = _lib.KvcachedStats()
        if h is None or _L.kvcached_stats(h, byref(s)) != 0:
            return {}
        return {name: getattr(s, name) for name, _ in s._fields_}

    def segment_name(self):
        """The name of the segment this client contributes ("" when none)."""
        h = self._handle
        return "" if h is None else _L.kvcached_segment_name(h).decode()


def _is_int(value):
    return isinstance(value, int) and not isinstance(value, bool)


def _segment_arg(name, what):
    if not isinstance(name, str):
        raise TypeError(f"{what}: a segment name must be a str, not {type(name).__name__}")
    return name.encode()


def _task_key(key):
    """The key for the C ABI's NUL-terminated argument, or None when it
    holds a NUL byte (which would cut it short)."""
    k = _key(key)
    return None if b"\0" in k else k


def _setting_text(value):
    if isinstance(value, bool):
        return b"1" if value else b"0"
    if isinstance(value, bytes):
        return value
    return str(value).encode()


def _env_settings():
    """The kvcached variables that apply to every setup(): the settings
    table's kvcached_env names (empty counts as unset, as in the library)."""
    return [(s["name"], os.environ[s["kvcached_env"]]) for s in _lib.settings()
            if s["kvcached_env"] and os.environ.get(s["kvcached_env"])]
