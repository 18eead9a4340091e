"""Mooncake's replica descriptor classes (module mooncake.store), as
MooncakeDistributedStore.get_replica_desc() and batch_get_replica_desc()
return them: ReplicaStatus, ReplicaDescriptor, MemoryDescriptor, Descriptor
and DiskDescriptor, with Mooncake's names, enum values and conventions.

kvcached holds every object in memory, so each replica it describes is a
memory replica with status COMPLETE. A Descriptor's `transport_endpoint` is
the holding segment's name (what the holder's get_hostname() returns, and
what the master's /query_key shows) and its `buffer_address` the object's
offset in that segment: kvcached does not hand out the holders' virtual
addresses (docs/python.md, "Replica descriptors"). Pure Python: no library
is needed to import this module. The objects are plain values, not shared
between threads by the library.
"""

import enum


class ReplicaStatus(enum.IntEnum):
    """The state of a replica (Mooncake's ReplicaStatus, same values)."""
    UNDEFINED = 0    # uninitialized
    INITIALIZED = 1  # space allocated, waiting for the write
    PROCESSING = 2   # write in progress
    COMPLETE = 3     # written: the replica can be read
    REMOVED = 4      # removed
    FAILED = 5       # failed


# Mooncake's bindings copy the enum's members into the module
# (export_values); its TaskStatus, bound later, then takes PROCESSING and
# FAILED. These four are the ReplicaStatus members left in Mooncake's module.
UNDEFINED = ReplicaStatus.UNDEFINED
INITIALIZED = ReplicaStatus.INITIALIZED
COMPLETE = ReplicaStatus.COMPLETE
REMOVED = ReplicaStatus.REMOVED
EXPORTED_MEMBERS = ("UNDEFINED", "INITIALIZED", "COMPLETE", "REMOVED")


class Descriptor:
    """Where a memory replica's bytes are (Mooncake's Descriptor, the
    allocated buffer's descriptor): `size` in bytes, `buffer_address` (here
    the offset of the object in its segment), `transport_endpoint` (here the
    segment's name). kvcached adds `data_endpoint`: the segment's TCP data
    port, "host:port" ("" when it serves none)."""

    __slots__ = ("size", "buffer_address", "transport_endpoint", "data_endpoint")

    def __init__(self, size=0, buffer_address=0, transport_endpoint="", data_endpoint=""):
        self.size = size
        self.buffer_address = buffer_address
        self.transport_endpoint = transport_endpoint
        self.data_endpoint = data_endpoint

    def __repr__(self):
        # Mooncake's text.
        return (f"<Descriptor size={self.size} buffer_address={self.buffer_address} "
                f"transport_endpoint={self.transport_endpoint}>")


class MemoryDescriptor:
    """A memory replica (Mooncake's MemoryDescriptor): its buffer_descriptor,
    a Descriptor."""

    __slots__ = ("buffer_descriptor",)

    def __init__(self, buffer_descriptor=None):
        self.buffer_descriptor = Descriptor() if buffer_descriptor is None else buffer_descriptor

    def __repr__(self):
        return f"<MemoryDescriptor buffer_descriptor={self.buffer_descriptor!r}>"


class DiskDescriptor:
    """A disk replica (Mooncake's DiskDescriptor): `file_path` and
    `object_size`. kvcached has no disk tier, so none of its replicas has
    one; the class exists for code that names it."""

    __slots__ = ("file_path", "object_size")

    def __init__(self, file_path="", object_size=0):
        self.file_path = file_path
        self.object_size = object_size

    def __repr__(self):
        return f"<DiskDescriptor file_path={self.file_path!r} object_size={self.object_size}>"


class ReplicaDescriptor:
    """One replica of an object (Mooncake's ReplicaDescriptor): its read-only
    `status`, is_memory_replica() / is_disk_replica(), and
    get_memory_descriptor() / get_disk_descriptor(), which raise
    RuntimeError for the other kind, as Mooncake's do. Mooncake's class has
    no constructor; kvcached's takes the MemoryDescriptor or DiskDescriptor
    and the status."""

    __slots__ = ("_descriptor", "_status")

    def __init__(self, descriptor, status=ReplicaStatus.COMPLETE):
        if not isinstance(descriptor, (MemoryDescriptor, DiskDescriptor)):
            raise TypeError("ReplicaDescriptor: descriptor must be a MemoryDescriptor or a "
                            f"DiskDescriptor, not {type(descriptor).__name__}")
        self._descriptor = descriptor
        self._status = ReplicaStatus(status)

    @property
    def status(self):
        return self._status

    def is_memory_replica(self):
        return isinstance(self._descriptor, MemoryDescriptor)

    def is_disk_replica(self):
        return isinstance(self._descriptor, DiskDescriptor)

    def get_memory_descriptor(self):
        if not self.is_memory_replica():
            raise RuntimeError("Expected MemoryDescriptor")
        return self._descriptor

    def get_disk_descriptor(self):
        if not self.is_disk_replica():
            raise RuntimeError("Expected DiskDescriptor")
        return self._descriptor

    def __repr__(self):
        return f"<ReplicaDescriptor status={self._status.name} {self._descriptor!r}>"


def from_entry(entry):
    """The ReplicaDescriptors of one successful entry of the library's
    kvcached_batch_replica_desc_json array, in the master's order."""
    size = entry["size"]
    return [ReplicaDescriptor(MemoryDescriptor(Descriptor(
        size=size, buffer_address=r["offset"], transport_endpoint=r["segment"],
        data_endpoint=r["data_endpoint"]))) for r in entry["replicas"]]
