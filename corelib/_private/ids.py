"""Identifiers: cheap, unique, and readable as hex.

A task id is 16 bytes: an 8-byte random prefix drawn once per process, then an
8-byte big-endian counter.  An object id is the id of the task that creates it
followed by a 4-byte return index, so the owner of a return value can be found
from the task id and a generator's n-th item has a predictable id.
"""

import itertools
import os
import struct

_PREFIX = os.urandom(8)
_COUNTER = itertools.count(1)
_INDEX = struct.Struct(">I")


def reset_after_fork():
    """Give a forked child its own prefix so ids never collide with the parent's."""
    global _PREFIX, _COUNTER
    _PREFIX = os.urandom(8)
    _COUNTER = itertools.count(1)


def new_task_id():
    return _PREFIX + next(_COUNTER).to_bytes(8, "big")


def object_id_for(task_id, index):
    return task_id + _INDEX.pack(index)


def task_id_of(object_id):
    return object_id[:16]


def index_of(object_id):
    return _INDEX.unpack_from(object_id, 16)[0]


def new_unique_id(nbytes=16):
    return os.urandom(nbytes)


NIL_TASK_ID = b"\x00" * 16
