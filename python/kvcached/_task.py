"""Replica tasks (Mooncake's create_copy_task, create_move_task and
query_task): the names MooncakeDistributedStore's task calls return.
TaskType and TaskStatus have Mooncake's members and values; their members
are also module names (Mooncake's enums export_values()), and TaskStatus
is bound after ReplicaStatus there, so the module's PROCESSING and FAILED
are TaskStatus's. A task id is a tuple of two ints, as Mooncake's UUID
converts to Python; (0, 0) names no task."""

import enum


class TaskType(enum.IntEnum):
    REPLICA_COPY = 0
    REPLICA_MOVE = 1


class TaskStatus(enum.IntEnum):
    PENDING = 0
    PROCESSING = 1
    SUCCESS = 2
    FAILED = 3


REPLICA_COPY = TaskType.REPLICA_COPY
REPLICA_MOVE = TaskType.REPLICA_MOVE
PENDING = TaskStatus.PENDING
PROCESSING = TaskStatus.PROCESSING
SUCCESS = TaskStatus.SUCCESS
FAILED = TaskStatus.FAILED

NO_TASK = (0, 0)


class QueryTaskResponse:
    """What query_task() says of a task (read-only fields): id (a tuple of
    two ints), type (TaskType), status (TaskStatus), created_at_ms_epoch and
    last_updated_at_ms_epoch (wall clock, ms), assigned_client (the id of
    the client that moves the bytes: the task's creator) and message (why it
    failed; "" otherwise)."""

    __slots__ = ("_id", "_type", "_status", "_created", "_updated", "_client", "_message")

    def __init__(self, id=NO_TASK, type=TaskType.REPLICA_COPY, status=TaskStatus.PENDING,
                 created_at_ms_epoch=0, last_updated_at_ms_epoch=0, assigned_client="",
                 message=""):
        self._id = tuple(id)
        self._type = TaskType(type)
        self._status = TaskStatus(status)
        self._created = int(created_at_ms_epoch)
        self._updated = int(last_updated_at_ms_epoch)
        self._client = str(assigned_client)
        self._message = str(message)

    id = property(lambda self: self._id)
    type = property(lambda self: self._type)
    status = property(lambda self: self._status)
    created_at_ms_epoch = property(lambda self: self._created)
    last_updated_at_ms_epoch = property(lambda self: self._updated)
    assigned_client = property(lambda self: self._client)
    message = property(lambda self: self._message)

    def __repr__(self):
        return (f"QueryTaskResponse(id={self._id}, type={self._type.name}, "
                f"status={self._status.name}, message={self._message!r})")
