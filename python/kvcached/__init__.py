"""kvcached: the Python client of a kvcached pool, a drop-in for Mooncake
Store's Python API, over the C library libkvcached.so (ctypes; no compiled
extension). docs/python.md describes it.

    from kvcached import MooncakeDistributedStore, ReplicateConfig
    store = MooncakeDistributedStore()
    store.setup("node1", "P2PHANDSHAKE", 0, 16 << 20, "tcp", "", "10.0.0.1:50051")

Submodules: kvcached.errors (Mooncake's error codes), kvcached.sglang (a
HiCache storage backend for SGLang's dynamic backend loading),
kvcached.shim (`python -m kvcached.shim install` makes
`from mooncake.store import MooncakeDistributedStore` load this package).

The C library is loaded on first use of a name that needs it, so
`kvcached.errors` and `python -m kvcached.shim` work before it is built or
installed; that first use raises ImportError naming every place tried.
"""

from . import errors
from .errors import *  # noqa: F401,F403  the codes as module constants, as Mooncake users expect

__version__ = "0.1.0"

_LAZY = {
    "MooncakeDistributedStore": ("store", "MooncakeDistributedStore"),
    "ReplicateConfig": ("store", "ReplicateConfig"),
    "BufferHandle": ("store", "BufferHandle"),
    "MooncakeHostMemAllocator": ("store", "MooncakeHostMemAllocator"),
    "ParallelAxis": ("_tensor", "ParallelAxis"),
    "TensorParallelism": ("_tensor", "TensorParallelism"),
    "ReadTarget": ("_tensor", "ReadTarget"),
    "ReplicaStatus": ("_replica", "ReplicaStatus"),
    "ReplicaDescriptor": ("_replica", "ReplicaDescriptor"),
    "MemoryDescriptor": ("_replica", "MemoryDescriptor"),
    "Descriptor": ("_replica", "Descriptor"),
    "DiskDescriptor": ("_replica", "DiskDescriptor"),
    # ReplicaStatus's members that Mooncake's module has (_replica.EXPORTED_MEMBERS).
    "UNDEFINED": ("_replica", "UNDEFINED"),
    "INITIALIZED": ("_replica", "INITIALIZED"),
    "COMPLETE": ("_replica", "COMPLETE"),
    "REMOVED": ("_replica", "REMOVED"),
    "TaskType": ("_task", "TaskType"),
    "TaskStatus": ("_task", "TaskStatus"),
    "QueryTaskResponse": ("_task", "QueryTaskResponse"),
    # The members of TaskType and TaskStatus, module names in Mooncake too.
    "REPLICA_COPY": ("_task", "REPLICA_COPY"),
    "REPLICA_MOVE": ("_task", "REPLICA_MOVE"),
    "PENDING": ("_task", "PENDING"),
    "PROCESSING": ("_task", "PROCESSING"),
    "SUCCESS": ("_task", "SUCCESS"),
    "FAILED": ("_task", "FAILED"),
    "bind_to_numa_node": ("_numa", "bind_to_numa_node"),
    "library_path": ("_lib", "path"),
    "library_version": ("_lib", "version"),
}

__all__ = ["errors", "__version__"] + list(_LAZY) + list(errors.NAMES.values())


def __getattr__(name):
    if name in _LAZY:
        import importlib
        module, attr = _LAZY[name]
        value = getattr(importlib.import_module(f".{module}", __name__), attr)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'kvcached' has no attribute {name!r}")
