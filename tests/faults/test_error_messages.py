"""Errors a user meets name the cause and the fix.

Infeasible resource requests, unserializable arguments, values nested too
deeply, recursion in a task, and objects too large for the store. (The basic
unpicklable-argument and option errors are in tests/core/test_errors.py.)
"""

import mmap
import os
import threading
import time

import numpy as np
import pytest

import minray as ray
from minray._private.objects import shm
from minray.exceptions import GetTimeoutError, ObjectStoreFullError, RayTaskError


class LockHolder:
    def __init__(self):
        self.name = "holder"
        self.my_mutex = threading.Lock()


@ray.remote
def use(a, b=None, *, c=None):
    return 1


def test_get_timeout_on_an_infeasible_task_names_request_and_resources(ray_module):
    @ray.remote(num_cpus=1, resources={"unicorn": 2})
    def never():
        return 1

    ref = never.remote()
    with pytest.raises(GetTimeoutError) as info:
        ray.get(ref, timeout=0.5)
    msg = str(info.value)
    assert "can never be scheduled" in msg
    assert "'unicorn': 2.0" in msg and "total:" in msg and "'CPU': 4.0" in msg
    assert "init(num_cpus=..., resources=" in msg
    ray.cancel(ref)


def test_infeasible_warning_is_printed_immediately(ray_module, capfd):
    @ray.remote(resources={"dragon": 1})
    def never():
        return 1

    ref = never.remote()
    deadline = time.monotonic() + 10
    err = ""
    while "dragon" not in err and time.monotonic() < deadline:
        time.sleep(0.05)
        err += capfd.readouterr().err
    assert "Warning: a task or actor requests" in err and "'dragon': 1.0" in err
    assert "total:" in err
    ray.cancel(ref)


def test_unserializable_argument_names_which_argument_and_attribute(ray_module):
    with pytest.raises(TypeError) as info:
        use.remote(1, LockHolder())
    msg = str(info.value)
    assert msg.startswith("argument 1 (LockHolder) could not be serialized")
    assert "'my_mutex'" in msg and "_thread.lock" in msg and "Fix:" in msg
    with pytest.raises(TypeError, match=r"keyword argument 'c' \(LockHolder\).*my_mutex"):
        use.remote(1, c=LockHolder())


def deep_list(depth):
    v = []
    for _ in range(depth):
        v = [v]
    return v


def test_value_nested_too_deeply_says_so(ray_module):
    deep = deep_list(50_000)
    with pytest.raises(TypeError, match="nested too deeply.*setrecursionlimit"):
        ray.put(deep)
    with pytest.raises(TypeError, match="argument 0 \\(list\\).*nested too deeply"):
        use.remote(deep)


def test_recursion_in_a_task_is_a_recursion_error(ray_module):
    @ray.remote
    def forever(n):
        return forever_local(n)

    def forever_local(n):
        return forever_local(n + 1)

    with pytest.raises(RecursionError) as info:
        ray.get(forever.remote(0), timeout=60)
    assert isinstance(info.value, RayTaskError)
    assert "forever_local" in str(info.value)


def test_object_larger_than_shared_memory_names_sizes_and_fix(ray_module, tmp_path):
    """A sparse file mapped as an array: a value bigger than /dev/shm, costing nothing."""
    size = shm.shm_free_bytes() + (1 << 30)
    path = tmp_path / "huge.bin"
    with open(path, "wb") as f:
        f.truncate(size)
    fd = os.open(path, os.O_RDONLY)
    mm = mmap.mmap(fd, 0, prot=mmap.PROT_READ)
    try:
        huge = np.frombuffer(mm, dtype=np.uint8)
        with pytest.raises(ObjectStoreFullError) as info:
            ray.put(huge)
        msg = str(info.value)
        assert "MiB free" in msg and "must fit in shared memory" in msg
        assert "--shm-size" in msg
    finally:
        os.close(fd)   # the mapping goes with the last view of it
    assert ray.get(ray.put(np.ones(3))).sum() == 3   # the store is fine afterwards

