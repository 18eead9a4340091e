"""A HiCache storage backend for SGLang's dynamic backend loading, over a
kvcached pool (docs/sglang.md):

    --hicache-storage-backend dynamic --hicache-storage-backend-extra-config
    '{"backend_name": "kvcached", "module_path": "kvcached.sglang",
      "class_name": "KvcachedHiCacheStorage", "interface_v1": 1,
      "master_server_address": "10.0.0.1:50051"}'

SGLang constructs it as cls(storage_config, kwargs), hands it the host KV
pool through register_mem_pool_host(pool), and with interface_v1 calls
batch_exists / batch_get_v1 / batch_set_v1. Objects are laid out and named
exactly as SGLang's own Mooncake backend names them (page_first layout: one
object per page for MLA, `<key>_<mla suffix>_k`; two for MHA,
`<key>_<tp rank>_k` and `<key>_<tp rank>_v`; keys prefixed by
`<extra_backend_tag>_<model name>_` when those are set), so both backends
can share one pool. Transfers go straight between the pool and the host KV
pool (batch_put_from / batch_get_into at the pool's page addresses).

Importable without SGLang: the base class then is a minimal stand-in.
One instance per tensor-parallel rank, used from SGLang's I/O threads; the
client below is thread-safe. The v1 calls never raise and always return a
list (None would silently disable the storage tier in SGLang).
"""

import json
import logging
import os

from . import _lib
from . import errors
from .store import MooncakeDistributedStore

try:
    from sglang.srt.mem_cache.hicache_storage import HiCacheStorage
except ImportError:  # SGLang not installed: tests, or tools that only import this module
    class HiCacheStorage:
        """Stand-in for sglang.srt.mem_cache.hicache_storage.HiCacheStorage."""

        def register_mem_pool_host(self, mem_pool_host):
            self.mem_pool_host = mem_pool_host

        def clear(self):
            pass

        def get_stats(self):
            return None

log = logging.getLogger("kvcached.sglang")

# Settings that are per rank here, not taken from extra_config as they are:
# the segment size is the server's, divided among the ranks below, and one
# segment name would collide across ranks.
_PER_RANK = frozenset({"global_segment_size", "segment_name"})

# extra_config keys passed to the client as settings: the names and aliases
# of the library's settings table (setup(dict) names), less _PER_RANK.
_CLIENT_KEYS = tuple(n for s in _lib.settings() if s["name"] not in _PER_RANK
                     for n in [s["name"], *s["aliases"]])


def _setting(name):
    return next(s for s in _lib.settings() if s["name"] == name)


def parse_size(value):
    """Bytes in `value`: an int, or a string like "4gb", "512 MiB", "1.5g"
    (binary multiples for every spelling), parsed by the library's grammar,
    as every size setting is. ValueError for anything else."""
    if isinstance(value, int):
        return value
    return _lib.parse_size(value)


def _total_segment_size(extra):
    """The server-wide global_segment_size, from the first place that has it:
    extra_config, SGLANG_HICACHE_MOONCAKE_CONFIG_PATH's file,
    MOONCAKE_CONFIG_PATH's file, MOONCAKE_GLOBAL_SEGMENT_SIZE. 0 when unset:
    the ranks contribute no memory, the pool's stores (`kvcached store`) hold
    everything."""
    size = _setting("global_segment_size")
    if extra.get(size["name"]) is not None:
        return parse_size(extra[size["name"]])
    for var in ("SGLANG_HICACHE_MOONCAKE_CONFIG_PATH", "MOONCAKE_CONFIG_PATH"):
        path = os.environ.get(var)
        if path:
            with open(path) as f:
                value = json.load(f).get(size["json_key"])
            return 0 if value is None else parse_size(value)
    env = os.environ.get(size["mooncake_env"])
    return parse_size(env) if env else 0


def _standalone_store(extra):
    """The store address for standalone storage (extra_config's
    standalone_storage and client_server_address, else
    MOONCAKE_STANDALONE_STORAGE and MOONCAKE_CLIENT, as SGLang reads them),
    or None when standalone storage is off. ValueError when it is on without
    an address."""
    on = extra.get("standalone_storage")
    if on is None:
        on = os.environ.get("MOONCAKE_STANDALONE_STORAGE", "")
    if isinstance(on, str):
        on = on.strip().lower() in ("1", "true", "yes", "on")
    if not on:
        return None
    address = extra.get("client_server_address") or os.environ.get("MOONCAKE_CLIENT")
    if not address:
        raise ValueError("kvcached: standalone_storage needs client_server_address (or "
                         "MOONCAKE_CLIENT): the admin address of the kvcached store on this host")
    return address


def _buffer_range(buf):
    """(address, bytes) of a torch tensor, or of anything with the buffer protocol."""
    if hasattr(buf, "data_ptr"):
        return int(buf.data_ptr()), int(buf.numel()) * int(buf.element_size())
    import ctypes
    view = memoryview(buf).cast("B")
    return ctypes.addressof((ctypes.c_char * view.nbytes).from_buffer(view)), view.nbytes


class KvcachedHiCacheStorage(HiCacheStorage):
    """SGLang HiCache L3 storage on a kvcached pool (interface v1, zero copy)."""

    def __init__(self, storage_config=None, kwargs=None):
        extra = dict(getattr(storage_config, "extra_config", None) or {})
        self.storage_config = storage_config
        self.tp_rank = getattr(storage_config, "tp_rank", 0)
        tp_size = getattr(storage_config, "tp_size", 1)
        self.pp_rank = getattr(storage_config, "pp_rank", 0)
        pp_size = getattr(storage_config, "pp_size", 1)
        self.is_mla = bool(getattr(storage_config, "is_mla_model", False))
        self.mem_pool_host = None

        # Object names: as SGLang's Mooncake backend forms them.
        if pp_size > 1:
            self._mha_suffixes = [f"{self.tp_rank}_{self.pp_rank}"]
            self._mla_suffix = f"{self.pp_rank}"
        else:
            self._mha_suffixes = [f"{self.tp_rank}"]
            self._mla_suffix = ""
        self._split_factor = 0
        if getattr(storage_config, "should_split_heads", False):
            self._split_factor = storage_config.tp_lcm_size // tp_size
            base = self.tp_rank * self._split_factor
            self._mha_suffixes = [
                f"{base + i}_{self.pp_rank}" if pp_size > 1 else f"{base + i}"
                for i in range(self._split_factor)]
        prefix = []
        if extra.get("extra_backend_tag") is not None:
            prefix.append(str(extra["extra_backend_tag"]))
        model_name = getattr(storage_config, "model_name", None)
        if model_name:
            prefix.append("-".join(model_name.split("/")))
        self._prefix = "_".join(prefix) + "_" if prefix else ""

        self.store = MooncakeDistributedStore()
        standalone = _standalone_store(extra)
        if standalone is not None:
            # Standalone storage: the pool through the kvcached store on this
            # host (docs/python.md, "Standalone mode"); this process
            # contributes no memory.
            rc = self.store.setup_dummy(0, 0, standalone)
            if rc != 0:
                raise RuntimeError(
                    f"kvcached: standalone storage: setup_dummy({standalone!r}) failed "
                    f"({errors.error_name(rc)}); client_server_address / MOONCAKE_CLIENT must "
                    "be the admin address of the kvcached store on this host")
            log.info("kvcached HiCache storage: rank %s, standalone through the store at %s",
                     self.tp_rank, standalone)
            return
        # The client: the environment as Mooncake reads it, then extra_config.
        overrides = {k: extra[k] for k in _CLIENT_KEYS if extra.get(k) is not None}
        total = _total_segment_size(extra)
        overrides["global_segment_size"] = total // max(1, tp_size * pp_size)
        rc = self.store.setup_from_env(**overrides)
        if rc != 0:
            raise RuntimeError(
                f"kvcached: cannot open the pool client ({errors.error_name(rc)}); "
                "set master_server_address in --hicache-storage-backend-extra-config "
                "or MOONCAKE_MASTER")
        log.info("kvcached HiCache storage: rank %s, host id %s, prefix %r, segment %s bytes",
                 self.tp_rank, self.store.get_hostname(), self._prefix,
                 overrides["global_segment_size"])

    # ---- host pool ------------------------------------------------------------------

    def register_mem_pool_host(self, mem_pool_host):
        super().register_mem_pool_host(mem_pool_host)
        layout = getattr(mem_pool_host, "layout", "page_first")
        if layout not in ("page_first", "page_first_direct"):
            raise ValueError(
                f"kvcached HiCache storage needs --hicache-mem-layout page_first or "
                f"page_first_direct, not {layout!r}")
        buf = getattr(mem_pool_host, "kv_buffer", None)
        if buf is not None:
            ptr, size = _buffer_range(buf)
            rc = self.store.register_buffer(ptr, size)
            if rc != 0:
                raise RuntimeError(f"kvcached: register_buffer failed: {errors.error_name(rc)}")

    # ---- names and addresses -------------------------------------------------------------

    def _objects_per_page(self):
        return 1 if self.is_mla else 2 * len(self._mha_suffixes)

    def _object_keys(self, keys):
        p = self._prefix
        if self.is_mla:
            return [f"{p}{k}_{self._mla_suffix}_k" for k in keys]
        out = []
        for k in keys:
            for s in self._mha_suffixes:
                out.append(f"{p}{k}_{s}_k")
                out.append(f"{p}{k}_{s}_v")
        return out

    def _page_meta(self, keys, host_indices):
        pool = self.mem_pool_host
        if pool is None:
            raise RuntimeError("register_mem_pool_host was not called")
        if len(keys) != len(host_indices) // pool.page_size:
            raise ValueError(f"{len(keys)} keys for {len(host_indices)} host slots "
                             f"(page size {pool.page_size})")
        if self._split_factor:
            ptrs, sizes = pool.get_split_heads_page_buffer_meta(host_indices, self._split_factor)
        else:
            ptrs, sizes = pool.get_page_buffer_meta(host_indices)
        objects = self._object_keys(keys)
        if not (len(objects) == len(ptrs) == len(sizes)):
            raise ValueError(f"the host pool gave {len(ptrs)} buffers for {len(objects)} objects")
        return objects, [int(p) for p in ptrs], [int(s) for s in sizes]

    def _per_page(self, results, ok):
        n = self._objects_per_page()
        return [all(ok(r) for r in results[i:i + n]) for i in range(0, len(results), n)]

    # ---- interface v1 ---------------------------------------------------------------------

    def batch_exists(self, keys, extra_info=None):
        """How many pages, from the first, have every object in the pool."""
        try:
            found = self.store.batch_is_exist(self._object_keys(keys))
            n = self._objects_per_page()
            for i, r in enumerate(found):
                if r != 1:
                    return i // n
            return len(keys)
        except Exception:
            log.exception("kvcached: batch_exists failed")
            return 0

    def batch_get_v1(self, keys, host_indices, extra_info=None):
        """Reads the pages into the host pool at host_indices; True per page
        whose every object arrived whole."""
        try:
            objects, ptrs, sizes = self._page_meta(keys, host_indices)
            results = self.store.batch_get_into(objects, ptrs, sizes)
            return self._per_page(results, lambda r: r > 0)
        except Exception:
            log.exception("kvcached: batch_get_v1 failed")
            return [False] * len(keys)

    def batch_set_v1(self, keys, host_indices, extra_info=None):
        """Writes the pages at host_indices that the pool does not hold yet;
        True per page whose every object is now in the pool."""
        try:
            objects, ptrs, sizes = self._page_meta(keys, host_indices)
            found = self.store.batch_is_exist(objects)
            results = [0 if r == 1 else -1 for r in found]
            missing = [i for i, r in enumerate(found) if r != 1]
            if missing:
                put = self.store.batch_put_from([objects[i] for i in missing],
                                                [ptrs[i] for i in missing],
                                                [sizes[i] for i in missing])
                for i, r in zip(missing, put):
                    results[i] = r
            return self._per_page(results, lambda r: r == 0)
        except Exception:
            log.exception("kvcached: batch_set_v1 failed")
            return [False] * len(keys)

    # ---- the older interface (zero copy; target_location is an address) -------------------

    def exists(self, key):
        return self.store.is_exist(self._prefix + key) == 1

    def get(self, key, target_location=None, target_sizes=None):
        if target_location is None or target_sizes is None:
            return None
        return self.store.get_into(self._prefix + key, target_location, target_sizes) >= 0

    def batch_get(self, keys, target_locations=None, target_sizes=None):
        """How many objects, from the first, were read."""
        results = self.store.batch_get_into([self._prefix + k for k in keys],
                                            list(target_locations), list(target_sizes))
        for i, r in enumerate(results):
            if r < 0:
                return i
        return len(keys)

    def set(self, key, value=None, target_location=None, target_sizes=None):
        if target_location is None or target_sizes is None:
            return False
        return self.store.put_from(self._prefix + key, target_location, target_sizes) == 0

    def batch_set(self, keys, values=None, target_locations=None, target_sizes=None):
        if not keys or target_locations is None or target_sizes is None:
            return False
        results = self.store.batch_put_from([self._prefix + k for k in keys],
                                            list(target_locations), list(target_sizes))
        return all(r == 0 for r in results)

    def clear(self):
        """Removes every object in the pool, as SGLang's Mooncake backend does,
        and also those under a read lease (force): clearing is an operator's
        request. A reader caught mid-transfer gets an error, never wrong bytes."""
        n = self.store.remove_all(True)
        log.info("kvcached: clear removed %s objects", n)

    def close(self):
        self.store.close()

    def get_stats(self):
        return None
