"""Core I: objects on one machine — put/get, shared memory, reference counting, spilling.

Large values (>= 100 KiB) live in POSIX shared memory segments, /dev/shm/mr*;
``get`` of a large numpy array returns a read-only view of the segment (no
copy).  A segment is unlinked once the last reference to its object is gone,
and when the store is full objects spill to ``<session_dir>/spill`` and come
back on demand, bit-exact.  Nothing is left in /dev/shm after shutdown.
"""

import collections
import dataclasses
import decimal
import fractions
import mmap
import os
import time
import uuid

import numpy as np
import pytest

import minray as ray
from minray._private import state
from helpers import block_until, touch, wait_until

MiB = 1024 * 1024


# ----------------------------------------------------------------- helpers
def shm_segments():
    """Names of minray's segments in /dev/shm (they all start with "mr")."""
    return {n for n in os.listdir("/dev/shm") if n.startswith("mr")}


def session_segments(session_dir):
    # The node manager names every segment of a session "mr" + the last 8
    # characters of the session directory's name + "_" (NodeManager.segment_prefix).
    prefix = "mr" + os.path.basename(session_dir)[-8:] + "_"
    return {n for n in shm_segments() if n.startswith(prefix)}


def base_chain(arr):
    """The objects behind a numpy array: its bases, then what memoryviews view."""
    chain, obj = [], arr
    while obj is not None and len(chain) < 20:
        chain.append(obj)
        obj = obj.obj if isinstance(obj, memoryview) else getattr(obj, "base", None)
    return chain


def new_segments_after(before, action):
    """Run ``action`` and return (its result, the segments it created)."""
    result = action()
    return result, shm_segments() - before


@dataclasses.dataclass
class Point:
    x: int
    y: float
    tags: list


class Custom:
    def __init__(self, value):
        self.value = value

    def __eq__(self, other):
        return type(other) is Custom and other.value == self.value


SMALL_VALUES = [
    0, -7, 2 ** 100, 3.5, float("inf"), complex(1, 2), True, None, "", "héllo ✓",
    b"", b"\x00\xffbytes", bytearray(b"abc"), [1, [2, [3]]], (1, "a", None),
    {"a": 1, 2: [3], (4, 5): {"nested": True}}, {1, 2, 3}, frozenset({"x"}),
    range(3, 10, 2), slice(1, 5), decimal.Decimal("1.10"), fractions.Fraction(3, 7),
    uuid.UUID(int=12345), collections.OrderedDict(b=1, a=2),
    collections.Counter("hello"), Point(1, 2.5, ["t"]), Custom({"k": [1, 2]}),
    ValueError("an exception as a value"), np.int64(5), np.float32(1.5),
    np.arange(10), np.zeros((3, 4), dtype=np.float32), np.array(["a", "bc"]),
    np.array([1, "x", None], dtype=object), np.array(3.0),
]


def assert_same(a, b):
    if isinstance(b, np.ndarray):
        assert isinstance(a, np.ndarray) and a.dtype == b.dtype and a.shape == b.shape
        assert np.array_equal(a, b) or (a.dtype == object and list(a) == list(b))
    elif isinstance(b, BaseException):
        assert type(a) is type(b) and a.args == b.args
    else:
        assert type(a) is type(b) and a == b


# --------------------------------------------------------------- round trips
@pytest.mark.parametrize("value", SMALL_VALUES, ids=lambda v: type(v).__name__)
def test_put_get_round_trip(ray_module, value):
    assert_same(ray.get(ray.put(value)), value)


@pytest.mark.both_backends
def test_round_trip_through_tasks(ray_module):
    @ray.remote
    def echo(x):
        return x

    refs = [echo.remote(v) for v in SMALL_VALUES]
    for got, want in zip(ray.get(refs), SMALL_VALUES):
        assert_same(got, want)


@pytest.mark.both_backends
def test_functions_and_lambdas_round_trip(ray_module):
    factor = 3
    fn = ray.get(ray.put(lambda x: x * factor))
    assert fn(5) == 15

    @ray.remote
    def apply(f, x):
        return f(x)

    assert ray.get(apply.remote(lambda x: x + factor, 1)) == 4


LARGE_VALUES = {
    "bytes": b"\x01\x02" * (300 * 1024),
    "str": "minray " * 100_000,
    "float64": np.random.default_rng(0).random(300_000),
    "int8": np.arange(1_000_000, dtype=np.int8),
    "uint16_2d": np.arange(600 * 400, dtype=np.uint16).reshape(600, 400),
    "fortran": np.asfortranarray(np.arange(200_000, dtype=np.float32).reshape(400, 500)),
    "non_contiguous": np.arange(400_000, dtype=np.int64)[::3],
    "bool": np.random.default_rng(1).random(500_000) > 0.5,
    "complex": np.arange(50_000, dtype=np.complex128) * 1j,
    "structured": np.zeros(20_000, dtype=[("a", "i4"), ("b", "f8"), ("c", "S4")]),
    "dict_of_arrays": {"x": np.ones(100_000), "y": list(range(10)),
                       "z": np.full(50_000, 7, dtype=np.int32)},
    "list_of_arrays": [np.full(40_000, i) for i in range(4)],
}


@pytest.mark.parametrize("name", sorted(LARGE_VALUES))
def test_large_values_round_trip(ray_module, name):
    value = LARGE_VALUES[name]
    got = ray.get(ray.put(value))
    _deep_equal(got, value)

    @ray.remote
    def echo(x):
        return x

    _deep_equal(ray.get(echo.remote(value)), value)


def _deep_equal(got, want):
    if isinstance(want, np.ndarray):
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype and got.shape == want.shape
        assert np.array_equal(got, want)
    elif isinstance(want, dict):
        assert got.keys() == want.keys()
        for k in want:
            _deep_equal(got[k], want[k])
    elif isinstance(want, list):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _deep_equal(g, w)
    else:
        assert type(got) is type(want) and got == want


@pytest.mark.both_backends
def test_get_same_ref_many_times(ray_module):
    ref = ray.put(np.arange(200_000))
    a, b = ray.get([ref, ref])
    c = ray.get(ref)
    assert np.array_equal(a, b) and np.array_equal(a, c)


@pytest.mark.both_backends
def test_put_of_object_ref_is_rejected(ray_module):
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.put(ref)


# ------------------------------------------------------------ zero-copy reads
def test_large_array_is_read_only_shared_memory_view(ray_module):
    arr = ray.get(ray.put(np.arange(1_000_000, dtype=np.int64)))
    assert arr.flags.writeable is False
    assert arr.flags.owndata is False
    chain = base_chain(arr)
    assert any(isinstance(x, mmap.mmap) for x in chain), [type(x) for x in chain]
    with pytest.raises(ValueError):
        arr[0] = 1
    assert int(arr[123_456]) == 123_456


def test_task_returned_array_is_read_only_view(ray_module):
    @ray.remote
    def make():
        return np.full(500_000, 3, dtype=np.float64)

    arr = ray.get(make.remote())
    assert arr.flags.writeable is False and arr.flags.owndata is False
    assert any(isinstance(x, mmap.mmap) for x in base_chain(arr))
    assert float(arr.sum()) == 1_500_000.0
    # A copy is an ordinary, writable array.
    copy = arr.copy()
    copy[0] = 0
    assert copy.flags.writeable and arr[0] == 3


@pytest.mark.both_backends
def test_two_gets_share_the_same_memory(ray_module):
    ref = ray.put(np.arange(300_000, dtype=np.int32))
    a, b = ray.get(ref), ray.get(ref)
    assert np.shares_memory(a, b)


# ------------------------------------------------------- reference counting
# Freed segments of 1 MiB or more may be kept in a pool for reuse by the next
# large put (ObjectDirectory.alloc), so tests that watch one segment's name
# use objects that are large (in shared memory) but too small to be pooled.
try:
    from minray._private.objects.directory import POOL_MIN_BYTES
except ImportError:   # no pool
    POOL_MIN_BYTES = 1 << 20
UNPOOLED = max(POOL_MIN_BYTES // 4, 128 * 1024) // 8     # float64 items: 256 KiB


def object_stats():
    return state.current_client().call("object_stats")


def test_put_segment_freed_after_del(ray_module):
    before = shm_segments()
    ref = ray.put(np.ones(UNPOOLED))
    new = shm_segments() - before
    assert len(new) == 1, new
    assert ray.get(ref).sum() == UNPOOLED
    del ref
    assert wait_until(lambda: not (new & shm_segments()), timeout=5), new


def test_small_objects_use_no_segment(ray_module):
    before = shm_segments()
    ref = ray.put(np.ones(1000))
    assert shm_segments() - before == set()
    assert ray.get(ref).sum() == 1000


def test_task_return_segment_freed_after_del(ray_module):
    @ray.remote
    def make(n):
        return np.ones(n)

    before = shm_segments()
    ref = make.remote(UNPOOLED)
    assert ray.get(ref).shape == (UNPOOLED,)
    new = shm_segments() - before
    assert len(new) == 1, new
    del ref
    assert wait_until(lambda: not (new & shm_segments()), timeout=5), new


def test_large_argument_segment_freed_after_task(ray_module):
    @ray.remote
    def total(arr):
        return float(arr.sum())

    before = shm_segments()
    assert ray.get(total.remote(np.ones(UNPOOLED))) == float(UNPOOLED)
    assert wait_until(lambda: not (shm_segments() - before), timeout=5), \
        shm_segments() - before


def test_large_object_memory_released_after_del(ray_module):
    """Objects of any size give their store memory back (unlinked, or pooled for reuse)."""
    size = 16 * MiB
    time.sleep(0.3)           # let releases of earlier tests settle
    base = object_stats()["shm_bytes"]
    ref = ray.put(np.ones(size // 8))
    held = object_stats()
    assert held["shm_bytes"] >= base + size
    assert ray.get(ref).nbytes == size
    del ref
    assert wait_until(lambda: object_stats()["shm_bytes"] <= held["shm_bytes"] - size,
                      timeout=5), object_stats()
    # Whatever stays in /dev/shm for reuse is bounded by the pool's accounting.
    stats = object_stats()
    resident = sum(os.path.getsize(os.path.join("/dev/shm", n))
                   for n in session_segments(ray_module["session_dir"]))
    assert resident <= stats["shm_bytes"] + stats.get("pool_bytes", 0) + MiB


@pytest.mark.both_backends
def test_live_array_never_sees_a_reused_segment(ray_module):
    """A numpy array that outlives its ref keeps its data while new objects are made."""
    n = 4 * MiB // 8
    ref = ray.put(np.full(n, 1.0))
    arr = ray.get(ref)
    del ref
    time.sleep(0.3)

    @ray.remote
    def make(v, n):
        return np.full(n, v)

    for i in range(3):
        other = ray.put(np.full(n, 2.0 + i))
        assert float(ray.get(other)[0]) == 2.0 + i
        del other
        ret = make.remote(10.0 + i, n)
        assert float(ray.get(ret)[-1]) == 10.0 + i
        del ret
        time.sleep(0.15)
    assert (arr == 1.0).all()


def test_nested_ref_segment_kept_alive_by_outer_value(ray_module):
    before = shm_segments()
    inner = ray.put(np.arange(UNPOOLED))
    inner_seg = shm_segments() - before
    assert len(inner_seg) == 1
    outer = ray.put({"inner": inner})
    del inner
    time.sleep(0.5)
    # The outer value still refers to it: it must survive ...
    assert inner_seg <= shm_segments()
    del outer
    # ... until the outer value goes.
    assert wait_until(lambda: not (inner_seg & shm_segments()), timeout=5)


@pytest.mark.both_backends
def test_nested_ref_readable_after_owner_dropped_it(ray_module):
    before = shm_segments()
    inner = ray.put(np.arange(UNPOOLED))
    inner_seg = shm_segments() - before
    outer = ray.put({"inner": inner})
    del inner
    time.sleep(0.3)   # let the periodic release reach the node manager
    got = ray.get(ray.get(outer)["inner"], timeout=5)
    assert int(got[-1]) == UNPOOLED - 1
    del outer, got
    assert wait_until(lambda: not (inner_seg & shm_segments()), timeout=5)


def test_ref_passed_to_pending_task_survives_driver_del(ray_module, tmp_path):
    d = str(tmp_path)

    @ray.remote
    def later(container, d):
        block_until(os.path.join(d, "release"))
        return int(ray.get(container[0]).sum())

    before = shm_segments()
    ref = ray.put(np.ones(UNPOOLED, dtype=np.int64))
    seg = shm_segments() - before
    assert len(seg) == 1
    result = later.remote([ref], d)
    del ref
    time.sleep(0.5)
    try:
        assert seg <= shm_segments()
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(result, timeout=30) == UNPOOLED
    del result
    assert wait_until(lambda: not (seg & shm_segments()), timeout=5)


@pytest.mark.both_backends
def test_ref_created_in_worker_is_readable_by_driver(ray_module):
    @ray.remote
    def make():
        return [ray.put(np.full(200_000, 9, dtype=np.int16)), ray.put("small")]

    big, small = ray.get(make.remote())
    assert ray.get(small) == "small"
    arr = ray.get(big, timeout=30)
    assert arr.shape == (200_000,) and (arr == 9).all()


# ------------------------------------------------------------------
# Tests with their own runtime: they run after every ray_module test above
# (ray_init shuts the shared runtime down).
def test_no_segments_left_after_shutdown(ray_init):
    ctx = ray_init(num_cpus=2)
    session_dir = ctx["session_dir"]

    @ray.remote
    def make(i):
        return np.full(300_000, i)

    refs = [ray.put(np.ones(300_000)) for _ in range(3)]
    refs += [make.remote(i) for i in range(3)]
    ray.get(refs)
    assert len(session_segments(session_dir)) >= 6
    ray.shutdown()
    assert session_segments(session_dir) == set()
    assert not os.path.exists(session_dir)


@pytest.mark.slow
def test_spill_to_disk_and_restore(ray_init):
    store = 64 * MiB
    ctx = ray_init(num_cpus=2, object_store_memory=store)
    session_dir = ctx["session_dir"]
    spill_dir = os.path.join(session_dir, "spill")
    item = 16 * MiB
    count = 40                                   # 640 MiB: 10x the store

    def value(i):
        return np.random.default_rng(i).integers(0, 2 ** 63, item // 8, dtype=np.int64)

    refs = []
    max_resident = 0
    for i in range(count):
        refs.append(ray.put(value(i)))
        resident = sum(os.path.getsize(os.path.join("/dev/shm", n))
                       for n in session_segments(session_dir))
        max_resident = max(max_resident, resident)
    # The store stayed bounded: the rest went to disk.
    assert max_resident <= store + item, max_resident / MiB
    spilled = os.listdir(spill_dir)
    assert len(spilled) >= count - store // item - 1
    stats = state.current_client().call("object_stats")
    assert stats["num_spilled"] >= len(spilled)
    assert stats["spilled_bytes"] >= len(spilled) * item

    @ray.remote
    def checksum(arr):
        return int(arr[::4096].sum() % 1_000_003)

    # The oldest objects are on disk now; a worker reads them back too.
    want = [int(value(i)[::4096].sum() % 1_000_003) for i in range(3)]
    assert ray.get([checksum.remote(refs[i]) for i in range(3)], timeout=60) == want

    for i, ref in enumerate(refs):
        got = ray.get(ref, timeout=60)
        assert np.array_equal(got, value(i)), f"object {i} changed after spilling"
        del got
    stats = state.current_client().call("object_stats")
    assert stats["num_restored"] > 0

    del refs
    ray.shutdown()
    assert not os.path.exists(spill_dir)
    assert session_segments(session_dir) == set()
