"""Identifiers: cheap, unique, and readable as hex.

The layout and the codec live in `minray._ext.ids` (compiled, with a pure-
Python twin): a task id is an 8-byte per-process prefix and an 8-byte
counter; an object id is its creating task's id and a 4-byte return index.
This module keeps the process's one generator and re-creates it after fork,
so a forked child never hands out its parent's ids.
"""

import os

from minray._ext import ids as _codec

object_id_for = _codec.object_id_for
task_id_of = _codec.task_id_of
index_of = _codec.index_of

_GEN = _codec.IdGenerator()
new_task_id = _GEN.new_task_id


def reset_after_fork():
    """Give a forked child its own prefix so ids never collide with the parent's."""
    global _GEN, new_task_id
    _GEN = _codec.IdGenerator()
    new_task_id = _GEN.new_task_id


def new_unique_id(nbytes=16):
    return os.urandom(nbytes)


NIL_TASK_ID = b"\x00" * 16
