"""Task and object ids: the pure-Python twin of `_ids.pyx`.

A task id is 16 bytes: an 8-byte prefix drawn once per process (random), then
an 8-byte big-endian counter. An object id is the id of the task that creates
it followed by a 4-byte big-endian return index (0 for `put` and for values
stored on a task's behalf, 1.. for its returns), so a value's creating task,
and through it its owner, can be read off the id, and a generator's n-th item
has a predictable id.

    offset  size  field
    0       8     prefix   (per process)
    8       8     counter  (per process, from 1)
    16      4     index    (object ids only)

>>> gen = IdGenerator(b"\\x01" * 8)
>>> tid = gen.new_task_id()
>>> tid.hex()
'01010101010101010000000000000001'
>>> object_id_for(tid, 2).hex()[32:]
'00000002'
>>> task_id_of(object_id_for(tid, 2)) == tid, index_of(object_id_for(tid, 2))
(True, 2)
"""

import os

TASK_ID_SIZE = 16
OBJECT_ID_SIZE = 20
PREFIX_SIZE = 8
MAX_INDEX = 0xFFFFFFFF


def _check_id(value, size, what):
    if type(value) is not bytes:
        raise TypeError(f"{what} must be bytes, got {type(value).__name__}")
    if len(value) != size:
        raise ValueError(f"{what} must be {size} bytes, got {len(value)}")


def _check_index(index):
    if type(index) is not int:
        raise TypeError(f"index must be an int, got {type(index).__name__}")
    if not 0 <= index <= MAX_INDEX:
        raise ValueError(f"index must be in 0..{MAX_INDEX}, got {index}")


class IdGenerator:
    """Hands out task ids: one prefix per process, then a counter.

    >>> IdGenerator(b"abcdefgh").new_task_id()[:8]
    b'abcdefgh'
    """

    def __init__(self, prefix=None):
        if prefix is None:
            prefix = os.urandom(PREFIX_SIZE)
        _check_id(prefix, PREFIX_SIZE, "prefix")
        self._prefix = prefix
        self._counter = 0

    @property
    def prefix(self):
        return self._prefix

    @property
    def counter(self):
        """How many task ids this generator has handed out."""
        return self._counter

    def new_task_id(self):
        self._counter += 1
        return self._prefix + self._counter.to_bytes(8, "big")


def object_id_for(task_id, index):
    """The id of return value `index` of task `task_id`."""
    _check_id(task_id, TASK_ID_SIZE, "task_id")
    _check_index(index)
    return task_id + index.to_bytes(4, "big")


def task_id_of(object_id):
    """The id of the task that creates `object_id`."""
    _check_id(object_id, OBJECT_ID_SIZE, "object_id")
    return object_id[:TASK_ID_SIZE]


def index_of(object_id):
    """The return index of `object_id` (0 for put objects)."""
    _check_id(object_id, OBJECT_ID_SIZE, "object_id")
    return int.from_bytes(object_id[TASK_ID_SIZE:], "big")
