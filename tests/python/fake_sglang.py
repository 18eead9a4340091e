"""Stand-ins for the pieces of SGLang a HiCache storage backend touches: the
HiCacheStorageConfig it is built with, and a host KV pool laid out
page_first as SGLang's MHATokenToKVPoolHost / MLATokenToKVPoolHost lay it
out (one contiguous K object and one V object per page for MHA, one object
per page for MLA), with the same get_page_buffer_meta() contract: per page,
in order, the address and size of each object."""

import ctypes
import hashlib
import mmap
import types


class FakeTensor:
    """What the backends read of a torch tensor: its address and size."""

    def __init__(self, region):
        self.region = region
        self._ptr = ctypes.addressof(ctypes.c_char.from_buffer(region))

    def data_ptr(self):
        return self._ptr

    def numel(self):
        return len(self.region)

    def element_size(self):
        return 1


class FakeHostPool:
    """`pages` pages of `page_size` tokens. MHA: kv_buffer is
    [2][tokens][layers x heads x head_dim x dtype] (K half, then V half);
    MLA: [tokens][layers x (kv_lora_rank + rope dim) x dtype]."""

    def __init__(self, pages=64, page_size=16, layers=4, heads=2, head_dim=64, dtype_bytes=2,
                 mla=False):
        self.page_size = page_size
        self.layout = "page_first"
        self.mla = mla
        self.size = pages * page_size
        self.token_bytes = layers * (1 if mla else heads) * head_dim * dtype_bytes
        halves = 1 if mla else 2
        self.region = mmap.mmap(-1, halves * self.size * self.token_bytes)
        self.kv_buffer = FakeTensor(self.region)
        self.base = self.kv_buffer.data_ptr()

    def page_object_bytes(self):
        return self.token_bytes * self.page_size

    def get_page_buffer_meta(self, indices):
        ptrs, sizes = [], []
        obj = self.page_object_bytes()
        for index in list(indices)[::self.page_size]:
            k = self.base + index * self.token_bytes
            ptrs.append(k)
            sizes.append(obj)
            if not self.mla:
                ptrs.append(k + self.size * self.token_bytes)  # V: same token, second half
                sizes.append(obj)
        return ptrs, sizes

    def page_indices(self, page):
        return list(range(page * self.page_size, (page + 1) * self.page_size))

    def indices(self, pages):
        out = []
        for p in pages:
            out += self.page_indices(p)
        return out

    def page_bytes(self, page):
        """The bytes of a page's objects, K then V."""
        obj = self.page_object_bytes()
        k = page * obj
        out = bytes(self.region[k:k + obj])
        if not self.mla:
            v = self.size * self.token_bytes + k
            out += bytes(self.region[v:v + obj])
        return out

    def fill_page(self, page, seed):
        obj = self.page_object_bytes()
        data = hashlib.sha256(f"{seed}".encode()).digest() * (obj // 32)
        k = page * obj
        self.region[k:k + obj] = data
        if not self.mla:
            v = self.size * self.token_bytes + k
            self.region[v:v + obj] = data[::-1]


def storage_config(rpc, tp_rank=0, tp_size=1, mla=False, model_name=None, **extra):
    """A HiCacheStorageConfig as SGLang fills it for --hicache-storage-backend
    dynamic, with the extra_config of the documented command line."""
    extra_config = {"backend_name": "kvcached", "module_path": "kvcached.sglang",
                    "class_name": "KvcachedHiCacheStorage", "interface_v1": 1,
                    "master_server_address": rpc, "local_hostname": "pytest-host"}
    extra_config.update(extra)
    return types.SimpleNamespace(
        tp_rank=tp_rank, tp_size=tp_size, pp_rank=0, pp_size=1, attn_cp_rank=0,
        attn_cp_size=1, is_mla_model=mla, enable_storage_metrics=False,
        is_page_first_layout=True, model_name=model_name, dp_rank=0, dp_size=1,
        tp_lcm_size=None, should_split_heads=False, extra_config=extra_config)


def page_keys(tag, n):
    """SGLang's page keys: 64-hex SHA-256 hashes."""
    return [hashlib.sha256(f"{tag}-{i}".encode()).hexdigest() for i in range(n)]
