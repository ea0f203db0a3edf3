"""Core I: tasks on one machine, with real worker processes.

Remote functions and their options (resources, num_returns, streaming
generators, retries, names), argument passing (top-level refs resolved, nested
refs passed as refs, large arguments through shared memory), runtime_env,
the runtime context, resource accounting, cancel, ObjectRef as a key and as an
awaitable, wait/get semantics, and worker output forwarded to the driver.

Tasks coordinate with the test through files in ``tmp_path`` (a task creates
``started`` and blocks until the test creates ``release``) instead of sleeping
and hoping, so the tests stay fast and deterministic on a 2-core machine.
"""

import asyncio
import concurrent.futures
import os
import re
import sys
import time

import numpy as np
import psutil
import pytest

import minray as ray
from minray.exceptions import GetTimeoutError, RayTaskError, TaskCancelledError
from helpers import block_until, count_lines, touch, wait_for_path, wait_until


# ----------------------------------------------------------------- helpers


def wait_cpus_idle(total=4.0):
    """Leases of earlier tests are returned shortly after they finish."""
    ok = wait_until(lambda: ray.available_resources().get("CPU", 0) == total, timeout=10)
    assert ok, f"CPUs still busy before the test: {ray.available_resources()}"


# ---------------------------------------------------------- remote functions
@pytest.mark.both_backends
def test_remote_function_returns_value(ray_module):
    @ray.remote
    def add(a, b):
        return a + b

    assert ray.get(add.remote(1, 2)) == 3
    assert ray.get([add.remote(i, i) for i in range(20)]) == [2 * i for i in range(20)]


@pytest.mark.both_backends
def test_remote_decorator_with_options_and_kwargs(ray_module):
    @ray.remote(num_cpus=1, max_retries=0)
    def f(a, b=10, *, c):
        return (a, b, c)

    assert ray.get(f.remote(1, c=3)) == (1, 10, 3)
    assert ray.get(f.remote(1, b=2, c=3)) == (1, 2, 3)


def test_tasks_run_in_parallel_worker_processes(ray_module, tmp_path):
    """Four 1-CPU tasks on 4 CPUs run at the same time, in 4 other processes."""
    @ray.remote
    def meet(i, d):
        touch(os.path.join(d, f"started-{i}"))
        everyone = all(block_until(os.path.join(d, f"started-{j}"), timeout=20)
                       for j in range(4))
        return os.getpid(), everyone

    results = ray.get([meet.remote(i, str(tmp_path)) for i in range(4)], timeout=60)
    pids = {pid for pid, _ in results}
    assert all(everyone for _, everyone in results)
    assert len(pids) == 4
    assert os.getpid() not in pids


def test_num_cpus_limits_concurrency(ray_module, tmp_path):
    """Three 2-CPU tasks on 4 CPUs: only two run until one finishes."""
    wait_cpus_idle()

    @ray.remote(num_cpus=2)
    def hold(i, d):
        touch(os.path.join(d, f"started-{i}"))
        block_until(os.path.join(d, f"release-{i}"))
        return i

    d = str(tmp_path)
    refs = [hold.remote(i, d) for i in range(3)]
    try:
        wait_until(lambda: sum(os.path.exists(os.path.join(d, f"started-{i}"))
                               for i in range(3)) >= 2)
        time.sleep(0.5)
        started = [i for i in range(3) if os.path.exists(os.path.join(d, f"started-{i}"))]
        assert len(started) == 2, started
        (waiting,) = set(range(3)) - set(started)
        touch(os.path.join(d, f"release-{started[0]}"))
        wait_for_path(os.path.join(d, f"started-{waiting}"))
    finally:
        for i in range(3):
            touch(os.path.join(d, f"release-{i}"))
    assert ray.get(refs, timeout=30) == [0, 1, 2]


@pytest.mark.both_backends
def test_infeasible_resource_stays_pending(ray_module):
    @ray.remote(resources={"does-not-exist": 1})
    def never():
        return 1

    ref = never.remote()
    ready, not_ready = ray.wait([ref], timeout=0.5)
    assert ready == [] and not_ready == [ref]
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=10)


# ---------------------------------------------------------------- num_returns
@pytest.mark.both_backends
def test_num_returns_one_and_many(ray_module):
    @ray.remote(num_returns=3)
    def three():
        return "a", "b", "c"

    refs = three.remote()
    assert isinstance(refs, list) and len(refs) == 3
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == ["a", "b", "c"]

    @ray.remote
    def one():
        return ("a", "b")

    ref = one.options(num_returns=1).remote()
    assert isinstance(ref, ray.ObjectRef)
    assert ray.get(ref) == ("a", "b")
    two = one.options(num_returns=2).remote()
    assert ray.get(two) == ["a", "b"]


@pytest.mark.both_backends
def test_num_returns_zero_returns_none(ray_module, tmp_path):
    @ray.remote(num_returns=0)
    def side_effect(path):
        touch(path)

    assert side_effect.remote(str(tmp_path / "ran")) is None
    wait_for_path(str(tmp_path / "ran"))


@pytest.mark.both_backends
def test_num_returns_zero_runs_the_task(ray_module, tmp_path):
    @ray.remote(num_returns=0)
    def side_effect(path):
        touch(path)

    side_effect.remote(str(tmp_path / "ran"))
    wait_for_path(str(tmp_path / "ran"))


@pytest.mark.both_backends
def test_num_returns_mismatch_is_an_error(ray_module):
    @ray.remote(num_returns=2)
    def wrong():
        return 1, 2, 3

    refs = wrong.remote()
    for ref in refs:
        with pytest.raises(ValueError) as info:
            ray.get(ref, timeout=30)
        assert isinstance(info.value, RayTaskError)


@pytest.mark.both_backends
def test_num_returns_n_with_generator_function(ray_module):
    @ray.remote(num_returns=3)
    def gen():
        for i in range(3):
            yield i * 10

    refs = gen.remote()
    assert len(refs) == 3
    assert ray.get(refs) == [0, 10, 20]


@pytest.mark.both_backends
def test_num_returns_dynamic(ray_module):
    @ray.remote(num_returns="dynamic")
    def split(n):
        for i in range(n):
            yield i * 2

    ref = split.remote(3)
    assert isinstance(ref, ray.ObjectRef)
    gen = ray.get(ref, timeout=30)
    refs = list(gen)
    assert len(refs) == 3 and ray.get(refs) == [0, 2, 4]


def test_max_calls_restarts_the_worker(ray_module):
    @ray.remote(max_calls=1)
    def pid():
        return os.getpid()

    pids = [ray.get(pid.remote(), timeout=30) for _ in range(3)]
    assert len(set(pids)) == 3


# ---------------------------------------------------------------- streaming
@pytest.mark.both_backends
def test_generator_defaults_to_streaming(ray_module):
    @ray.remote
    def gen(n):
        for i in range(n):
            yield i * i

    g = gen.remote(5)
    assert isinstance(g, ray.ObjectRefGenerator)
    refs = list(g)
    assert all(isinstance(r, ray.ObjectRef) for r in refs)
    assert ray.get(refs) == [0, 1, 4, 9, 16]


def test_streaming_items_arrive_before_the_generator_ends(ray_module, tmp_path):
    @ray.remote(num_returns="streaming")
    def gen(d):
        yield "first"
        block_until(os.path.join(d, "release"))
        yield "second"

    d = str(tmp_path)
    g = gen.remote(d)
    try:
        first = next(g)
        # The generator is still blocked: the first item came while it runs.
        assert ray.get(first, timeout=10) == "first"
        assert not os.path.exists(os.path.join(d, "release"))
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(next(g), timeout=30) == "second"
    with pytest.raises(StopIteration):
        next(g)


@pytest.mark.both_backends
def test_streaming_error_surfaces_as_next_item(ray_module):
    @ray.remote
    def gen():
        yield 1
        yield 2
        raise ValueError("generator broke")

    refs = list(gen.remote())
    assert len(refs) == 3
    assert ray.get(refs[:2]) == [1, 2]
    with pytest.raises(ValueError, match="generator broke"):
        ray.get(refs[2])


@pytest.mark.both_backends
def test_streaming_error_before_first_item(ray_module):
    @ray.remote
    def gen():
        raise KeyError("nothing yielded")
        yield 1

    refs = list(gen.remote())
    assert len(refs) == 1
    with pytest.raises(KeyError):
        ray.get(refs[0], timeout=30)


@pytest.mark.both_backends
def test_streaming_large_items(ray_module):
    @ray.remote
    def gen():
        for i in range(3):
            yield np.full(100_000, i, dtype=np.int64)   # 800 KB each: shared memory

    for i, ref in enumerate(gen.remote()):
        arr = ray.get(ref)
        assert arr.shape == (100_000,) and (arr == i).all()


@pytest.mark.both_backends
def test_streaming_generator_async_iteration(ray_module):
    @ray.remote
    def gen(n):
        for i in range(n):
            yield i

    async def main():
        out = []
        async for ref in gen.remote(4):
            out.append(await ref)
        return out

    assert asyncio.run(main()) == [0, 1, 2, 3]


# -------------------------------------------------------------- retries
@pytest.mark.both_backends
def test_application_errors_not_retried_by_default(ray_module, tmp_path):
    log = str(tmp_path / "attempts")

    @ray.remote(max_retries=3)
    def fail(path):
        with open(path, "a") as f:
            f.write("x\n")
        raise ValueError("no retry")

    with pytest.raises(ValueError):
        ray.get(fail.remote(log), timeout=30)
    assert count_lines(log) == 1


@pytest.mark.both_backends
def test_retry_exceptions_true(ray_module, tmp_path):
    @ray.remote(max_retries=2, retry_exceptions=True)
    def flaky(path, failures):
        with open(path, "a") as f:
            f.write("x\n")
        if count_lines(path) <= failures:
            raise RuntimeError("transient")
        return "ok"

    ok_log = str(tmp_path / "ok")
    assert ray.get(flaky.remote(ok_log, 2), timeout=30) == "ok"
    assert count_lines(ok_log) == 3

    bad_log = str(tmp_path / "bad")
    with pytest.raises(RuntimeError, match="transient"):
        ray.get(flaky.remote(bad_log, 100), timeout=30)
    assert count_lines(bad_log) == 3     # 1 try + max_retries=2


@pytest.mark.both_backends
def test_retry_exceptions_list(ray_module, tmp_path):
    @ray.remote(max_retries=3, retry_exceptions=[KeyError])
    def flaky(path, exc_type):
        with open(path, "a") as f:
            f.write("x\n")
        if count_lines(path) == 1:
            raise exc_type("first attempt")
        return "ok"

    listed = str(tmp_path / "listed")
    assert ray.get(flaky.remote(listed, KeyError), timeout=30) == "ok"
    assert count_lines(listed) == 2

    unlisted = str(tmp_path / "unlisted")
    with pytest.raises(ValueError, match="first attempt"):
        ray.get(flaky.remote(unlisted, ValueError), timeout=30)
    assert count_lines(unlisted) == 1


@pytest.mark.both_backends
def test_retry_exceptions_via_options(ray_module, tmp_path):
    @ray.remote
    def flaky(path):
        with open(path, "a") as f:
            f.write("x\n")
        if count_lines(path) < 3:
            raise OSError("again")
        return count_lines(path)

    log = str(tmp_path / "log")
    assert ray.get(flaky.options(retry_exceptions=True).remote(log), timeout=30) == 3


# ---------------------------------------------------------------- names
@pytest.mark.both_backends
def test_task_name_option(ray_module):
    @ray.remote
    def whoami():
        return ray.get_runtime_context().get_task_name()

    assert ray.get(whoami.options(name="custom-name").remote()) == "custom-name"
    assert ray.get(whoami.remote()).endswith("whoami")


# ------------------------------------------------------- short and long tasks
def _warm_up_short(fn, *args):
    """Run ``fn`` one at a time until the submitter has measured it as short."""
    for _ in range(30):
        ray.get(fn.remote(*args), timeout=30)
    info = fn._function_info()
    if hasattr(info, "pipelinable") and not info.pipelinable():
        pytest.skip("the machine is too loaded for tasks to be measured as short")


def test_short_tasks_not_stuck_behind_another_functions_long_task(ray_module, tmp_path):
    d = str(tmp_path)

    @ray.remote
    def short(i):
        return i

    @ray.remote
    def long_task(d):
        touch(os.path.join(d, "started"))
        block_until(os.path.join(d, "release"))
        return "long"

    _warm_up_short(short, 0)
    long_ref = long_task.remote(d)
    try:
        wait_for_path(os.path.join(d, "started"))
        # Three CPUs are free: every short task must finish while the long one runs.
        refs = [short.remote(i) for i in range(100)]
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=4)
        assert len(ready) == len(refs)
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(long_ref, timeout=30) == "long"


def test_short_tasks_not_stuck_behind_a_slow_call_of_the_same_function(ray_module,
                                                                       tmp_path):
    d = str(tmp_path)

    @ray.remote
    def work(i, d=None):
        if d is not None:
            touch(os.path.join(d, "started"))
            block_until(os.path.join(d, "release"))
        return i

    _warm_up_short(work, 0)
    slow = work.remote(-1, d)
    refs = [work.remote(i) for i in range(100)]
    try:
        wait_for_path(os.path.join(d, "started"))
        ready, _ = ray.wait(refs, num_returns=len(refs), timeout=4)
        assert len(ready) == len(refs)
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(slow, timeout=30) == -1


# ------------------------------------------------------------ nested tasks
@pytest.mark.both_backends
def test_nested_task_submission(ray_module):
    @ray.remote
    def leaf(x):
        return x + 1

    @ray.remote
    def parent(n):
        return sum(ray.get([leaf.remote(i) for i in range(n)]))

    assert ray.get(parent.remote(5), timeout=60) == sum(range(1, 6))


@pytest.mark.both_backends
def test_nested_recursion_deeper_than_cpus(ray_module):
    """A task blocked in get() gives its CPU back, so depth 8 runs on 4 CPUs."""
    @ray.remote
    def fact(n):
        if n <= 1:
            return 1
        return n * ray.get(fact.remote(n - 1))

    assert ray.get(fact.remote(8), timeout=60) == 40320


@pytest.mark.both_backends
def test_nested_task_returns_ref_to_driver(ray_module):
    @ray.remote
    def leaf():
        return "leaf value"

    @ray.remote
    def parent():
        return [leaf.remote()]   # a ref owned by the worker, sent to the driver

    (inner,) = ray.get(parent.remote())
    assert isinstance(inner, ray.ObjectRef)
    assert ray.get(inner, timeout=30) == "leaf value"


# ------------------------------------------------------------ arguments
@pytest.mark.both_backends
def test_top_level_ref_args_are_resolved(ray_module):
    @ray.remote
    def kind(x):
        return type(x).__name__, x

    ref = ray.put(41)
    assert ray.get(kind.remote(ref)) == ("int", 41)

    @ray.remote
    def plus_one(x):
        return x + 1

    # Chained: the output of one task is the input of the next.
    chained = plus_one.remote(plus_one.remote(plus_one.remote(ref)))
    assert ray.get(chained) == 44


@pytest.mark.both_backends
def test_refs_inside_containers_stay_refs(ray_module):
    @ray.remote
    def inspect_arg(container):
        inner = container[0] if isinstance(container, list) else container["k"]
        return isinstance(inner, ray.ObjectRef), ray.get(inner)

    ref = ray.put("payload")
    assert ray.get(inspect_arg.remote([ref])) == (True, "payload")
    assert ray.get(inspect_arg.remote({"k": ref})) == (True, "payload")


@pytest.mark.both_backends
def test_kwarg_refs_are_resolved(ray_module):
    @ray.remote
    def f(a, *, b, c=None):
        return a, b, c

    a, b = ray.put("A"), ray.put("B")
    got_a, got_b, got_c = ray.get(f.remote(a, b=b, c=[b]))
    assert (got_a, got_b) == ("A", "B")
    # A ref inside a container passed by keyword stays a ref.
    assert isinstance(got_c[0], ray.ObjectRef) and ray.get(got_c[0]) == "B"


@pytest.mark.both_backends
def test_large_numpy_argument_through_shared_memory(ray_module):
    @ray.remote
    def describe(arr):
        return arr.flags.writeable, arr.dtype.str, arr.shape, float(arr.sum())

    big = np.arange(200_000, dtype=np.float64)         # 1.6 MB > 100 KiB
    writeable, dtype, shape, total = ray.get(describe.remote(big))
    assert (dtype, shape, total) == (big.dtype.str, big.shape, float(big.sum()))
    # Ray passes large arguments through the object store: a read-only view.
    assert writeable is False

    small = np.arange(10, dtype=np.float64)
    assert ray.get(describe.remote(small))[1:] == (small.dtype.str, (10,), 45.0)


@pytest.mark.both_backends
def test_large_numpy_ref_argument_is_zero_copy(ray_module):
    @ray.remote
    def view_info(arr):
        return arr.flags.writeable, arr.flags.owndata, int(arr[-1])

    ref = ray.put(np.arange(1_000_000, dtype=np.int64))
    assert ray.get(view_info.remote(ref)) == (False, False, 999_999)


@pytest.mark.both_backends
def test_many_args_mixed(ray_module):
    @ray.remote
    def concat(*parts, sep="-"):
        return sep.join(str(p) for p in parts)

    refs = [ray.put(i) for i in range(5)]
    assert ray.get(concat.remote(*refs, "x", sep=ray.put("+"))) == "0+1+2+3+4+x"


# ------------------------------------------------------------ runtime_env
@pytest.mark.both_backends
def test_runtime_env_per_task_without_job_env(ray_module):
    @ray.remote(runtime_env={"env_vars": {"MR_DECORATED": "yes"}})
    def env(name):
        return os.environ.get(name)

    assert ray.get(env.remote("MR_DECORATED")) == "yes"
    assert ray.get(env.options(runtime_env={"env_vars": {"MR_OTHER": "1"}})
                   .remote("MR_OTHER")) == "1"


@pytest.mark.both_backends
def test_runtime_env_inherited_by_child_tasks(ray_module):
    @ray.remote
    def child():
        return os.environ.get("MR_PARENT_ENV")

    @ray.remote
    def parent():
        return os.environ.get("MR_PARENT_ENV"), ray.get(child.remote())

    ref = parent.options(runtime_env={"env_vars": {"MR_PARENT_ENV": "p"}}).remote()
    assert ray.get(ref, timeout=30) == ("p", "p")


# ------------------------------------------------------------ runtime context
@pytest.mark.both_backends
def test_runtime_context_in_tasks(ray_module):
    @ray.remote
    def ctx():
        c = ray.get_runtime_context()
        return c.get_job_id(), c.get_task_id(), c.get_node_id(), os.getpid()

    driver = ray.get_runtime_context()
    r1, r2 = ctx.remote(), ctx.remote()
    (job1, task1, node1, _), (job2, task2, node2, _) = ray.get([r1, r2])
    assert job1 == job2 == driver.get_job_id()
    assert node1 == node2 == driver.get_node_id()
    assert task1 is not None and task2 is not None and task1 != task2
    assert task1 == r1.task_id().hex() and task2 == r2.task_id().hex()
    assert node1 == ray.nodes()[0]["NodeID"]


@pytest.mark.both_backends
def test_assigned_resources_reflect_num_cpus(ray_module):
    @ray.remote
    def assigned():
        return ray.get_runtime_context().get_assigned_resources()

    assert ray.get(assigned.remote()) == {"CPU": 1.0}
    assert ray.get(assigned.options(num_cpus=2).remote()) == {"CPU": 2.0}
    assert ray.get(assigned.options(num_cpus=0).remote()).get("CPU", 0) == 0


# ------------------------------------------------------- resource accounting
def test_available_resources_drop_while_task_runs(ray_module, tmp_path):
    wait_cpus_idle()
    total = ray.cluster_resources()
    mem = 100 * 1024 * 1024

    @ray.remote(num_cpus=2, memory=mem)
    def hold(d):
        touch(os.path.join(d, "started"))
        block_until(os.path.join(d, "release"))
        return "done"

    d = str(tmp_path)
    ref = hold.remote(d)
    try:
        wait_for_path(os.path.join(d, "started"))
        during = ray.available_resources()
        assert during["CPU"] == total["CPU"] - 2
        assert during["memory"] == total["memory"] - mem
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(ref, timeout=30) == "done"
    assert wait_until(lambda: ray.available_resources().get("CPU") == total["CPU"]
                      and ray.available_resources().get("memory") == total["memory"],
                      timeout=10), ray.available_resources()


def test_worker_killed_while_blocked_in_get_returns_its_cpu_once(ray_module, tmp_path):
    """A worker blocked in get() lends its CPU back; if it dies then, the node must
    not credit that CPU a second time (it once did, and later tasks overcommitted)."""
    wait_cpus_idle()
    d = str(tmp_path)

    @ray.remote
    def child(d):
        block_until(os.path.join(d, "release"))
        return 1

    @ray.remote(max_retries=0)
    def parent(d):
        ref = child.remote(d)
        touch(os.path.join(d, "parent"), str(os.getpid()))
        return ray.get(ref)

    ref = parent.remote(d)
    try:
        wait_for_path(os.path.join(d, "parent"))
        # The parent is blocked in get: its CPU is lent out while the child runs.
        assert wait_until(lambda: ray.available_resources().get("CPU") == 3.0, timeout=10)
        os.kill(int(open(os.path.join(d, "parent")).read()), 9)
        with pytest.raises(ray.exceptions.WorkerCrashedError):
            ray.get(ref, timeout=30)
    finally:
        touch(os.path.join(d, "release"))
    wait_cpus_idle()
    time.sleep(0.3)
    assert ray.available_resources()["CPU"] == 4.0


@pytest.mark.both_backends
def test_cluster_resources_and_nodes(ray_module):
    res = ray.cluster_resources()
    assert res["CPU"] == 4.0
    assert res["memory"] > 0 and res["object_store_memory"] > 0
    assert any(k.startswith("node:") for k in res)
    nodes = ray.nodes()
    assert len(nodes) == 1
    (node,) = nodes
    assert node["Alive"] is True
    assert node["Resources"]["CPU"] == 4.0
    assert node["NodeID"] == ray.get_runtime_context().get_node_id()
    assert node["NodeManagerAddress"] == "127.0.0.1"


# ----------------------------------------------------------------- cancel
def test_cancel_queued_task(ray_module, tmp_path):
    wait_cpus_idle()
    d = str(tmp_path)

    @ray.remote(num_cpus=4)
    def hog(d):
        touch(os.path.join(d, "hog-started"))
        block_until(os.path.join(d, "release"))
        return "hog"

    @ray.remote
    def victim(d):
        touch(os.path.join(d, "victim-ran"))
        return "victim"

    hog_ref = hog.remote(d)
    try:
        wait_for_path(os.path.join(d, "hog-started"))
        ref = victim.remote(d)
        assert ray.wait([ref], timeout=0.3)[0] == []
        ray.cancel(ref)
        with pytest.raises(TaskCancelledError):
            ray.get(ref, timeout=10)
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(hog_ref, timeout=30) == "hog"
    time.sleep(0.3)
    assert not os.path.exists(os.path.join(d, "victim-ran"))


def test_cancel_running_task_interrupts_it(ray_module, tmp_path):
    d = str(tmp_path)

    @ray.remote
    def spin(d):
        touch(os.path.join(d, "started"), str(os.getpid()))
        try:
            while True:
                time.sleep(0.02)
        except KeyboardInterrupt:
            touch(os.path.join(d, "interrupted"))
            raise

    ref = spin.remote(d)
    wait_for_path(os.path.join(d, "started"))
    pid = int(open(os.path.join(d, "started")).read())
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=15)
    assert os.path.exists(os.path.join(d, "interrupted"))
    # Not forced: the worker survives the KeyboardInterrupt.
    assert psutil.pid_exists(pid)
    # And the runtime keeps working.
    assert ray.get(ray.remote(lambda: 7).remote(), timeout=30) == 7


def test_cancel_is_recursive(ray_module, tmp_path):
    d = str(tmp_path)

    @ray.remote
    def child(d):
        touch(os.path.join(d, "child-started"))
        try:
            while True:
                time.sleep(0.02)
        except KeyboardInterrupt:
            touch(os.path.join(d, "child-interrupted"))
            raise

    @ray.remote
    def parent(d):
        return ray.get(child.remote(d))

    ref = parent.remote(d)
    wait_for_path(os.path.join(d, "child-started"))
    ray.cancel(ref)                       # recursive=True by default
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=15)
    wait_for_path(os.path.join(d, "child-interrupted"), timeout=10)


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.both_backends
def test_cancel_finished_task_is_noop(ray_module):
    ref = ray.remote(lambda: "value").remote()
    assert ray.get(ref) == "value"
    ray.cancel(ref)
    assert ray.get(ref) == "value"


# ------------------------------------------------------------ ObjectRef
@pytest.mark.both_backends
def test_object_ref_hashable_dict_key(ray_module):
    @ray.remote
    def f(i):
        return i

    refs = [f.remote(i) for i in range(5)]
    index = {ref: i for i, ref in enumerate(refs)}
    assert len(index) == 5
    for i, ref in enumerate(refs):
        assert index[ref] == i
    assert len({refs[0], refs[0], refs[1]}) == 2
    ready, _ = ray.wait(refs, num_returns=5, timeout=30)
    assert sorted(index[r] for r in ready) == list(range(5))
    assert refs[0] == refs[0] and refs[0] != refs[1]
    assert isinstance(refs[0].hex(), str) and len(refs[0].binary()) > 0


@pytest.mark.both_backends
def test_await_object_ref(ray_module):
    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def boom():
        raise ValueError("awaited error")

    async def main():
        one = await square.remote(3)
        many = await asyncio.gather(*[square.remote(i) for i in range(5)])
        with pytest.raises(ValueError, match="awaited error"):
            await boom.remote()
        return one, many

    assert asyncio.run(main()) == (9, [0, 1, 4, 9, 16])


@pytest.mark.both_backends
def test_ref_future(ray_module):
    @ray.remote
    def square(x):
        return x * x

    @ray.remote
    def boom():
        raise KeyError("future error")

    fut = square.remote(4).future()
    assert isinstance(fut, concurrent.futures.Future)
    assert fut.result(timeout=30) == 16
    futs = [square.remote(i).future() for i in range(4)]
    done, _ = concurrent.futures.wait(futs, timeout=30)
    assert len(done) == 4 and [f.result() for f in futs] == [0, 1, 4, 9]
    with pytest.raises(KeyError):
        boom.remote().future().result(timeout=30)


# -------------------------------------------------------------- wait / get
@pytest.mark.both_backends
def test_wait_returns_ready_in_input_order(ray_module):
    @ray.remote
    def delayed(x, delay):
        time.sleep(delay)
        return x

    # Finish in reverse order of submission.
    refs = [delayed.remote(i, 0.1 * (3 - i)) for i in range(4)]
    ready, not_ready = ray.wait(refs, num_returns=4, timeout=30)
    assert ready == refs and not_ready == []


def test_wait_num_returns_and_timeout(ray_module, tmp_path):
    d = str(tmp_path)

    @ray.remote
    def slow(d):
        block_until(os.path.join(d, "release"))
        return "slow"

    @ray.remote
    def fast(x):
        return x

    blocked = slow.remote(d)
    try:
        quick = [fast.remote(i) for i in range(3)]
        refs = [blocked] + quick
        ready, not_ready = ray.wait(refs, num_returns=3, timeout=30)
        assert ready == quick and not_ready == [blocked]

        ready, not_ready = ray.wait(refs, num_returns=2, timeout=30)
        assert ready == quick[:2] and not_ready == [blocked, quick[2]]

        start = time.monotonic()
        ready, not_ready = ray.wait([blocked], timeout=0.3)
        elapsed = time.monotonic() - start
        assert ready == [] and not_ready == [blocked]
        assert 0.25 <= elapsed < 3

        ready, not_ready = ray.wait(refs, num_returns=4, timeout=0)
        assert ready == quick and not_ready == [blocked]
    finally:
        touch(os.path.join(d, "release"))
    assert ray.wait([blocked], timeout=30)[0] == [blocked]


@pytest.mark.both_backends
def test_wait_empty_list(ray_module):
    assert ray.wait([]) == ([], [])


@pytest.mark.both_backends
def test_wait_num_returns_zero_is_invalid(ray_module):
    ref = ray.put(1)
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=0)


def test_get_timeout(ray_module, tmp_path):
    d = str(tmp_path)

    @ray.remote
    def slow(d):
        block_until(os.path.join(d, "release"))
        return "finally"

    ref = slow.remote(d)
    try:
        start = time.monotonic()
        with pytest.raises(GetTimeoutError) as info:
            ray.get(ref, timeout=0.3)
        assert 0.25 <= time.monotonic() - start < 3
        assert isinstance(info.value, TimeoutError)
        with pytest.raises(GetTimeoutError):
            ray.get([ray.put(1), ref], timeout=0)
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(ref, timeout=30) == "finally"
    assert ray.get(ref, timeout=0) == "finally"


@pytest.mark.both_backends
def test_get_of_failed_ref_raises_every_time(ray_module):
    @ray.remote
    def fail():
        raise ValueError("again and again")

    ref = fail.remote()
    for _ in range(2):
        with pytest.raises(ValueError, match="again and again"):
            ray.get(ref, timeout=30)
    # A timeout does not hide a failure that already happened.
    with pytest.raises(ValueError):
        ray.get(ref, timeout=0)
    ready, _ = ray.wait([ref], timeout=10)
    assert ready == [ref]


# ------------------------------------------------------------ worker output
def _read_until(capfd, needle, timeout=15.0):
    out = err = ""
    deadline = time.monotonic() + timeout
    while True:
        o, e = capfd.readouterr()
        out, err = out + o, err + e
        if needle(out, err) or time.monotonic() > deadline:
            return out, err
        time.sleep(0.1)


def test_worker_stdout_reaches_driver_with_prefix(ray_module, capfd):
    @ray.remote
    def chatty(tag):
        print(f"hello from the worker {tag}")
        print(f"an error line {tag}", file=sys.stderr)
        return os.getpid()

    pid = ray.get(chatty.remote("t1"))
    out, err = _read_until(capfd, lambda o, e: "worker t1" in o and "line t1" in e)
    line = [ln for ln in out.splitlines() if "hello from the worker t1" in ln]
    assert line, out
    m = re.match(r"\((\S+) pid=(\d+)\) hello from the worker t1$", line[0])
    assert m, line[0]
    assert m.group(1).endswith("chatty") and int(m.group(2)) == pid
    assert f"pid={pid}) an error line t1" in err


def test_worker_stdout_uses_task_name_option(ray_module, capfd):
    @ray.remote
    def chatty():
        print("named output line")
        return os.getpid()

    pid = ray.get(chatty.options(name="my-printer").remote())
    out, _ = _read_until(capfd, lambda o, e: "named output line" in o)
    assert f"(my-printer pid={pid}) named output line" in out


# ------------------------------------------------------------------
# Tests with their own runtime: they run after every ray_module test above
# (ray_init and ray_start_regular shut the shared runtime down).
def test_custom_resources_and_memory(ray_init, tmp_path):
    ray_init(num_cpus=4, resources={"widget": 2})
    assert ray.cluster_resources()["widget"] == 2.0

    @ray.remote(resources={"widget": 2})
    def use_widgets(i, d):
        touch(os.path.join(d, f"started-{i}"))
        block_until(os.path.join(d, f"release-{i}"))
        return ray.get_runtime_context().get_assigned_resources()

    d = str(tmp_path)
    refs = [use_widgets.remote(i, d) for i in range(2)]
    try:
        wait_until(lambda: any(os.path.exists(os.path.join(d, f"started-{i}"))
                               for i in range(2)))
        time.sleep(0.4)
        started = [i for i in range(2) if os.path.exists(os.path.join(d, f"started-{i}"))]
        # Both need the two widgets there are: they cannot overlap.
        assert len(started) == 1
        assert "widget" not in ray.available_resources()
        touch(os.path.join(d, f"release-{started[0]}"))
        wait_for_path(os.path.join(d, f"started-{1 - started[0]}"))
    finally:
        for i in range(2):
            touch(os.path.join(d, f"release-{i}"))
    for assigned in ray.get(refs, timeout=30):
        assert assigned["widget"] == 2.0
        assert assigned["CPU"] == 1.0

    @ray.remote
    def assigned():
        return ray.get_runtime_context().get_assigned_resources()

    mem = 64 * 1024 * 1024
    got = ray.get(assigned.options(memory=mem, num_cpus=0.5).remote())
    assert got["memory"] == float(mem)
    assert got["CPU"] == 0.5


def test_num_gpus_accounting(ray_init, tmp_path):
    ray_init(num_cpus=2, num_gpus=2)
    assert ray.cluster_resources()["GPU"] == 2.0

    @ray.remote(num_gpus=2)
    def all_gpus(d):
        touch(os.path.join(d, "started"))
        block_until(os.path.join(d, "release"))
        return ray.get_runtime_context().get_assigned_resources()

    d = str(tmp_path)
    ref = all_gpus.remote(d)
    try:
        wait_for_path(os.path.join(d, "started"))
        assert ray.available_resources().get("GPU", 0) == 0
    finally:
        touch(os.path.join(d, "release"))
    assert ray.get(ref, timeout=30) == {"CPU": 1.0, "GPU": 2.0}
    assert wait_until(lambda: ray.available_resources().get("GPU") == 2.0)


def test_num_gpus_sets_visible_devices(ray_init, tmp_path):
    """Ray gives each GPU task its own device ids via CUDA_VISIBLE_DEVICES."""
    ray_init(num_cpus=2, num_gpus=2)

    @ray.remote(num_gpus=1)
    def gpu_ids(i, d):
        touch(os.path.join(d, f"started-{i}"))
        block_until(os.path.join(d, f"started-{1 - i}"))
        return (ray.get_runtime_context().get_accelerator_ids()["GPU"],
                os.environ.get("CUDA_VISIBLE_DEVICES"))

    a, b = ray.get([gpu_ids.remote(i, str(tmp_path)) for i in range(2)], timeout=30)
    assert len(a[0]) == 1 and len(b[0]) == 1
    assert {a[0][0], b[0][0]} == {"0", "1"}
    assert a[1] == a[0][0] and b[1] == b[0][0]


def test_runtime_env_env_vars(ray_init):
    ray_init(num_cpus=2, runtime_env={"env_vars": {"MR_JOB_VAR": "job",
                                                   "MR_SHARED": "from-job"}})

    @ray.remote
    def env(*names):
        return [os.environ.get(n) for n in names]

    names = ("MR_JOB_VAR", "MR_SHARED", "MR_TASK_VAR")
    assert ray.get(env.remote(*names)) == ["job", "from-job", None]
    per_task = env.options(runtime_env={"env_vars": {"MR_TASK_VAR": "task",
                                                     "MR_SHARED": "from-task"}})
    # Task env_vars are merged with the job's; the task's win on conflicts.
    assert ray.get(per_task.remote(*names)) == ["job", "from-task", "task"]
    # ... and do not leak into workers of plain tasks afterwards.
    assert ray.get([env.remote(*names) for _ in range(4)]) == [["job", "from-job", None]] * 4


def test_cancel_force_kills_worker(ray_start_regular, tmp_path):
    d = str(tmp_path)
    log = os.path.join(d, "attempts")

    @ray.remote
    def stubborn(d):
        with open(log, "a") as f:
            f.write("x\n")
        touch(os.path.join(d, "started"), str(os.getpid()))
        while True:   # ignores KeyboardInterrupt
            try:
                time.sleep(0.05)
            except KeyboardInterrupt:
                pass

    ref = stubborn.remote(d)
    wait_for_path(os.path.join(d, "started"))
    pid = int(open(os.path.join(d, "started")).read())
    ray.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=15)
    assert wait_until(lambda: not _alive(pid), timeout=10), "worker survived force cancel"
    time.sleep(0.3)
    assert count_lines(log) == 1     # cancelled tasks are not retried
    assert ray.get(ray.remote(lambda: "alive").remote(), timeout=30) == "alive"


def test_nested_tasks_on_a_single_cpu(ray_init):
    """With one CPU, a parent blocked in get() must lend its CPU to its children."""
    ray_init(num_cpus=1)

    @ray.remote
    def fact(n):
        if n <= 1:
            return 1
        return n * ray.get(fact.remote(n - 1))

    @ray.remote
    def fib(n):
        if n < 2:
            return n
        return sum(ray.get([fib.remote(n - 1), fib.remote(n - 2)]))

    assert ray.get(fact.remote(6), timeout=60) == 720
    assert ray.get(fib.remote(3), timeout=60) == 2
    assert wait_until(lambda: ray.available_resources().get("CPU") == 1.0, timeout=10)
