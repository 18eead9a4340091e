"""`mooncake.store` served by kvcached: MooncakeDistributedStore,
ReplicateConfig and the other classes are kvcached's (docs/python.md, "The
Mooncake import shim")."""

try:
    import kvcached
except ImportError:
    # Used from a source checkout: this file is <repo>/python/kvcached/_shim/mooncake/store.py.
    import os
    import sys
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__))))))
    import kvcached

from kvcached import (  # noqa: F401
    COMPLETE, FAILED, INITIALIZED, PENDING, PROCESSING, REMOVED, REPLICA_COPY, REPLICA_MOVE,
    SUCCESS, UNDEFINED, BufferHandle, Descriptor, DiskDescriptor, MemoryDescriptor,
    MooncakeDistributedStore, MooncakeHostMemAllocator, ParallelAxis, QueryTaskResponse,
    ReadTarget, ReplicaDescriptor, ReplicaStatus, ReplicateConfig, TaskStatus, TaskType,
    TensorParallelism, bind_to_numa_node)
from kvcached.errors import *  # noqa: F401,F403

KVCACHED_SHIM = True
