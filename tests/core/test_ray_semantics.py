"""Places where a user notices whether minray behaves like Ray 2.60 (issue 13).

Each test pins one semantic that Ray's own tests (python/ray/tests/test_basic*.py,
test_actor*.py, test_cancel.py, test_generators.py, test_runtime_context.py ...)
pin down, rewritten for minray. Most share one runtime (``ray_module``).
"""
import asyncio
import os
import time

import pytest

import minray as ray
from helpers import wait_until


@ray.remote
def _boom(msg="upstream"):
    raise ValueError(msg)


@ray.remote
class _Doubler:
    def f(self, x):
        return x * 2


# ------------------------------------------------- bugs that lose work (a)
@pytest.mark.both_backends
def test_failed_argument_keeps_actor_call_order(ray_module):
    a = _Doubler.remote()
    bad = _boom.remote()
    first = a.f.remote(bad)
    queued = [a.f.remote(i) for i in range(3)]     # behind the failed call
    with pytest.raises(ValueError, match="upstream"):
        ray.get(first, timeout=30)
    assert ray.get(queued, timeout=30) == [0, 2, 4]
    with pytest.raises(ValueError, match="upstream"):
        ray.get(a.f.remote(x=bad), timeout=30)
    assert ray.get(a.f.remote(21), timeout=30) == 42


# ------------------------------------------ arguments bound at .remote()
@ray.remote
def _three(a, b=2, *args, c, **kwargs):
    return a + b + c + sum(args) + sum(kwargs.values())


@ray.remote
class _Shaped:
    LIMIT = 7

    def __init__(self, x, *, y=1):
        self.x = x + y

    def add(self, a, *rest, k):
        return self.x + a + sum(rest) + k

    @staticmethod
    def helper(v):
        return v * 3

    def through_class(self):
        # Class attributes and static methods, through the decorated class, inside.
        return _Shaped.LIMIT, _Shaped.helper(2)


@pytest.mark.both_backends
def test_arguments_are_bound_to_the_signature_at_submission(ray_module):
    for call in (lambda: _three.remote(),                     # missing a
                 lambda: _three.remote(1),                    # missing keyword-only c
                 lambda: _three.remote(1, nope=2, c=3, a=1),  # a twice
                 lambda: _three.options(name="t").remote(c=1)):
        with pytest.raises(TypeError, match="missing a required argument|multiple values"):
            call()
    assert ray.get(_three.remote(1, 2, 3, 4, c=5, extra=6)) == 21
    with pytest.raises(TypeError, match="missing a required argument: 'x'"):
        _Shaped.remote()
    with pytest.raises(TypeError, match="too many positional"):
        _Shaped.remote(1, 2)
    with pytest.raises(TypeError, match="unexpected keyword"):
        _Shaped.options(name=None).remote(1, z=2)
    actor = _Shaped.remote(1, y=2)
    with pytest.raises(TypeError, match="missing a required argument: 'k'"):
        actor.add.remote(1, 2)
    with pytest.raises(TypeError):
        actor.helper.remote()
    with pytest.raises(AttributeError, match="has no method 'nope'"):
        actor.nope.remote()
    assert ray.get(actor.add.remote(1, 2, 3, k=4)) == 13
    assert ray.get(actor.helper.remote(5)) == 15


@pytest.mark.both_backends
def test_class_attributes_and_static_methods_through_the_decorated_class(ray_module):
    assert _Shaped.LIMIT == 7 and _Shaped.helper(2) == 6
    actor = _Shaped.remote(0)
    assert ray.get(actor.through_class.remote()) == (7, 6)
    with pytest.raises(AttributeError):
        _Shaped.not_there


# -------------------------------------------------- get() fails fast
@ray.remote
def _sleep_then(seconds, value=None):
    time.sleep(seconds)
    return value


def test_get_of_a_list_raises_as_soon_as_one_object_is_an_error(ray_module):
    slow = _sleep_then.remote(20)
    start = time.monotonic()
    with pytest.raises(ValueError, match="fast"):
        ray.get([slow, _boom.remote("fast")], timeout=30)
    assert time.monotonic() - start < 10
    ray.cancel(slow, force=True)


# ------------------------------------------------ retry_exceptions
def _flaky_counter(tmp_path, name):
    path = tmp_path / name

    def bump():
        n = int(path.read_text()) if path.exists() else 0
        path.write_text(str(n + 1))
        return n
    return bump


@pytest.mark.both_backends
def test_retry_exceptions_with_a_class_defined_in_a_function(ray_module, tmp_path):
    class Flaky(Exception):
        pass
    bump = _flaky_counter(tmp_path, "task")

    @ray.remote(max_retries=3, retry_exceptions=[Flaky])
    def task():
        n = bump()
        if n < 2:
            raise Flaky(n)
        return n
    assert ray.get(task.remote(), timeout=30) == 2

    @ray.remote(max_retries=3, retry_exceptions=[Flaky])
    def other():
        bump()
        raise KeyError("not in the list")
    with pytest.raises(KeyError):
        ray.get(other.remote(), timeout=30)
    assert (tmp_path / "task").read_text() == "4"     # the KeyError ran once


@pytest.mark.both_backends
def test_retry_exceptions_for_actor_methods(ray_module):
    class Flaky(Exception):
        pass

    @ray.remote(max_task_retries=2)
    class Worker:
        def __init__(self):
            self.calls = 0

        @ray.method(retry_exceptions=[Flaky])
        def listed(self):
            self.calls += 1
            if self.calls < 3:
                raise Flaky()
            return self.calls

        def plain(self):
            self.calls += 1
            raise Flaky()

    w = Worker.remote()
    assert ray.get(w.listed.remote(), timeout=30) == 3
    with pytest.raises(Flaky):
        ray.get(w.plain.remote(), timeout=30)         # not retried: 4 calls so far
    with pytest.raises(Flaky):
        ray.get(w.plain.options(retry_exceptions=True).remote(), timeout=30)  # 5, 6, 7
    assert ray.get(w.listed.remote(), timeout=30) == 8


def test_retry_exceptions_for_streaming_generators(ray_module, tmp_path):
    bump = _flaky_counter(tmp_path, "gen")

    @ray.remote(max_retries=3, retry_exceptions=True)
    def gen():
        attempt = bump()
        for i in range(4):
            if i == 2 and attempt < 2:
                raise RuntimeError("flaky")
            yield i, attempt
    assert [ray.get(r, timeout=30) for r in gen.remote()] == \
        [(0, 0), (1, 0), (2, 2), (3, 2)]

    @ray.remote(max_retries=1, retry_exceptions=True)
    def always():
        yield "first"
        raise RuntimeError("always")
    items = list(always.remote())
    assert ray.get(items[0]) == "first" and len(items) == 2
    with pytest.raises(RuntimeError, match="always"):
        ray.get(items[1])


@pytest.mark.parametrize("opts, error", [
    (dict(num_cpus="2"), TypeError), (dict(num_cpus=-1), ValueError),
    (dict(max_retries=1.5), TypeError), (dict(max_retries=-2), ValueError),
    (dict(num_returns="many"), TypeError), (dict(num_returns=-1), ValueError),
    (dict(retry_exceptions=[ValueError, 3]), ValueError),
    (dict(name=3), TypeError), (dict(resources=[("x", 1)]), TypeError),
    (dict(runtime_env="env"), TypeError), (dict(not_an_option=1), ValueError),
])
def test_option_validation_types_and_ranges(opts, error):
    with pytest.raises(error):
        _three.options(**opts)


@pytest.mark.parametrize("opts, error", [
    (dict(namespace=5), TypeError), (dict(max_concurrency=0), ValueError),
    (dict(max_restarts="3"), TypeError), (dict(lifetime="forever"), ValueError),
])
def test_actor_option_validation_types_and_ranges(opts, error):
    with pytest.raises(error):
        _Shaped.options(**opts)


# ------------------------------------------------------- generators
@pytest.mark.both_backends
def test_generator_with_num_returns_n_and_an_error_in_place(ray_module):
    @ray.remote(num_returns=3)
    def three():
        for i in range(3):
            yield i * 10
    assert ray.get(three.remote()) == [0, 10, 20]

    @ray.remote
    def fails_at_two():
        yield "a"
        yield "b"
        raise ValueError("at position 2")
    refs = list(fails_at_two.remote())
    assert [ray.get(r) for r in refs[:2]] == ["a", "b"] and len(refs) == 3
    with pytest.raises(ValueError, match="at position 2"):
        ray.get(refs[2])


def test_cancelling_a_streaming_generator(ray_module, tmp_path):
    @ray.remote
    def endless():
        i = 0
        while True:
            yield i
            i += 1
            time.sleep(0.05)
    gen = endless.remote()
    assert ray.get(next(gen), timeout=30) == 0
    ray.cancel(gen)
    seen = []
    with pytest.raises(ray.exceptions.TaskCancelledError):
        for ref in gen:
            seen.append(ray.get(ref, timeout=30))
    assert seen == list(range(1, len(seen) + 1))      # in order up to the cancel


@ray.remote
class _AsyncActor:
    def __init__(self):
        self.cancelled = False

    async def fail(self):
        raise KeyError("from an async method")

    async def wait_long(self):
        try:
            await asyncio.sleep(60)
        except asyncio.CancelledError:
            self.cancelled = True
            raise

    async def was_cancelled(self):
        return self.cancelled


def test_async_actor_errors_keep_their_type_and_cancel_cancels_the_asyncio_task(ray_module):
    a = _AsyncActor.remote()
    with pytest.raises(KeyError):
        ray.get(a.fail.remote(), timeout=30)
    ref = a.wait_long.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.5)                     # it runs
    ray.cancel(ref)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    assert ray.get(a.was_cancelled.remote(), timeout=30) is True


def test_recursive_cancel_cancels_the_tasks_a_task_submitted(ray_module, tmp_path):
    marker = tmp_path / "child-finished"
    started = tmp_path / "child-started"

    @ray.remote
    def child():
        started.write_text("")
        time.sleep(3)
        marker.write_text("")

    @ray.remote
    def parent():
        ray.get(child.remote())

    ref = parent.remote()
    assert wait_until(started.exists, timeout=30)
    ray.cancel(ref, recursive=True)
    with pytest.raises(ray.exceptions.TaskCancelledError):
        ray.get(ref, timeout=30)
    time.sleep(3.5)
    assert not marker.exists()


# ------------------------------------------------- placement groups
def test_child_tasks_captured_in_the_parents_placement_group(ray_module):
    from minray.util.placement_group import (get_current_placement_group, placement_group,
                                             remove_placement_group)
    from minray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    @ray.remote(num_cpus=1)
    def child():
        pg = get_current_placement_group()
        return pg.id.hex() if pg else None, ray.get_runtime_context().get_placement_group_id()

    @ray.remote(num_cpus=1)
    def parent():
        ctx = ray.get_runtime_context()
        return ray.get(child.remote()), ctx.should_capture_child_tasks_in_placement_group

    pg = placement_group([{"CPU": 2}])
    ray.get(pg.ready(), timeout=30)
    try:
        hexid = pg.id.hex()
        captured = parent.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
            pg, placement_group_capture_child_tasks=True)).remote()
        assert ray.get(captured, timeout=30) == ((hexid, hexid), True)
        by_option = parent.options(placement_group=pg,
                                   placement_group_capture_child_tasks=True).remote()
        assert ray.get(by_option, timeout=30) == ((hexid, hexid), True)
        free = parent.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
        assert ray.get(free, timeout=30) == ((None, None), False)
        assert get_current_placement_group() is None     # a driver is in no group
    finally:
        remove_placement_group(pg)


# ------------------------------------------------- runtime context
def test_runtime_context_has_rays_full_set(ray_module):
    @ray.remote
    def in_task():
        c = ray.get_runtime_context()
        return dict(namespace=c.namespace, node=c.get_node_id(), task=c.get_task_id(),
                    actor=c.get_actor_id(), job=c.get_job_id(), worker=c.get_worker_id(),
                    acc=c.get_accelerator_ids(), res=c.get_assigned_resources(),
                    pg=c.get_placement_group_id(), env=c.runtime_env,
                    capture=c.should_capture_child_tasks_in_placement_group,
                    pg_id_nil=c.current_placement_group_id.is_nil())

    driver = ray.get_runtime_context()
    got = ray.get(in_task.remote(), timeout=30)
    assert got["namespace"] == driver.namespace and got["node"] == driver.get_node_id()
    assert got["job"] == driver.get_job_id() and got["task"] and got["actor"] is None
    assert got["worker"] != driver.get_worker_id()
    assert got["acc"] == {"GPU": []} and got["res"] == {"CPU": 1.0}
    assert got["pg"] is None and got["env"] == {} and got["capture"] is False
    assert got["pg_id_nil"] is True

    @ray.remote
    class Named:
        def ctx(self):
            c = ray.get_runtime_context()
            return (c.get_actor_id(), c.get_actor_name(), c.namespace,
                    c.was_current_actor_reconstructed, c.current_actor._actor_id.hex())
    a = Named.options(name="ctx-probe").remote()
    aid = a._actor_id.hex()
    assert ray.get(a.ctx.remote(), timeout=30) == (aid, "ctx-probe", driver.namespace,
                                                   False, aid)


@pytest.mark.parametrize("bundles", [
    [{"CPU": 1, "bundle": 1}], [{"_node_id:abc": 1}], [{}], [{"CPU": 0}], [{"CPU": -1}],
    [{"CPU": "1"}], [{1: 1}], ["CPU"], {"CPU": 1}, [],
])
def test_reserved_or_malformed_bundles_are_refused(ray_module, bundles):
    from minray.util.placement_group import placement_group
    with pytest.raises(ValueError):
        placement_group(bundles)


# ---------------------------------------------------- serializers, store
class _Unpicklable:
    def __init__(self, value):
        import threading
        self.value = value
        self.lock = threading.Lock()


@pytest.mark.both_backends
def test_register_and_deregister_a_serializer(ray_module):
    with pytest.raises(TypeError):
        ray.put(_Unpicklable(1))
    ray.util.register_serializer(_Unpicklable, serializer=lambda o: o.value,
                                 deserializer=lambda v: _Unpicklable(v * 10))
    try:
        assert ray.get(ray.put(_Unpicklable(2))).value == 20

        @ray.remote
        def read(obj):
            return obj.value
        assert ray.get(read.remote(_Unpicklable(3)), timeout=30) == 30
    finally:
        ray.util.deregister_serializer(_Unpicklable)
    ray.util.deregister_serializer(_Unpicklable)          # a second time: a no-op
    with pytest.raises(TypeError):
        ray.put(_Unpicklable(1))


def test_object_store_memory_drops_while_objects_are_held(ray_module):
    import numpy as np
    free = ray.available_resources()["object_store_memory"]
    ref = ray.put(np.ones(8 << 20, dtype=np.uint8))
    assert wait_until(lambda: ray.available_resources()["object_store_memory"]
                      <= free - (8 << 20)), ray.available_resources()
    del ref
    assert wait_until(lambda: ray.available_resources()["object_store_memory"] >= free), \
        ray.available_resources()
