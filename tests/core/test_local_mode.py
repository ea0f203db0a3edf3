"""Local mode: ``init(local_mode=True)`` runs every task and actor call in the driver.

The same kinds of checks as the real-runtime tests (tasks, nested tasks,
num_returns, generators, errors, put/get isolation, wait, actors, runtime
context, placement groups), plus what local mode exists for: the code runs in
the driver's process and thread at ``.remote()`` time, so pdb works in it.
"""

import asyncio
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest

import minray as ray
from minray.exceptions import (ActorDiedError, ActorUnschedulableError, GetTimeoutError,
                               ObjectLostError, RayActorError, RayTaskError,
                               TaskCancelledError, TaskUnschedulableError, WorkerCrashedError)
from minray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                               PlacementGroupSchedulingStrategy)


@pytest.fixture
def local():
    """A fresh local-mode runtime with 4 CPUs for one test (starting one costs ~1 ms)."""
    if ray.is_initialized():
        ray.shutdown()
    ctx = ray.init(local_mode=True, num_cpus=4)
    yield ctx
    ray.shutdown()


@pytest.fixture
def local_init():
    """For tests that need their own init() arguments: ``local_init(**kw)``."""
    if ray.is_initialized():
        ray.shutdown()

    def start(**kwargs):
        return ray.init(local_mode=True, **kwargs)
    yield start
    ray.shutdown()


def _client():
    from minray._private import state
    return state.current_client()


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.n = start

    def incr(self, by=1):
        self.n += by
        return self.n

    def get(self):
        return self.n


# --------------------------------------------------- where and when code runs
def test_code_runs_in_the_driver_process_and_thread(local):
    @ray.remote
    def where():
        return os.getpid(), threading.get_ident()

    @ray.remote
    class Where:
        def sync(self):
            return os.getpid(), threading.get_ident()

        async def coro(self):
            return os.getpid(), threading.get_ident()

    here = (os.getpid(), threading.get_ident())
    w = Where.remote()
    assert ray.get(where.remote()) == here
    assert ray.get(w.sync.remote()) == here
    assert ray.get(w.coro.remote()) == here


def test_task_runs_at_remote_time_before_get(local):
    log = []

    @ray.remote
    def record(x):
        log.append(x)     # a closure: the driver's own list (functions are not pickled)
        return x

    ref = record.remote(1)
    assert log == [1]     # already ran, before any get()
    assert ray.get(ref) == 1
    c = Counter.remote()
    c.incr.remote(5)
    assert ray.get(c.get.remote()) == 5


_PDB_SCRIPT = textwrap.dedent("""
    import minray as ray
    ray.init(local_mode=True, num_cpus=1)

    @ray.remote
    def f(x):
        secret = x * 7
        breakpoint()
        return secret

    print("result", ray.get(f.remote(6)))
    ray.shutdown()
""")


def test_breakpoint_in_a_task_stops_in_the_driver(tmp_path):
    script = tmp_path / "debug_me.py"
    script.write_text(_PDB_SCRIPT)
    env = dict(os.environ)
    env.pop("PYTHONBREAKPOINT", None)
    proc = subprocess.run([sys.executable, str(script)], input="p secret\nc\n",
                          capture_output=True, text=True, timeout=60, env=env)
    assert proc.returncode == 0, proc.stderr
    assert "(Pdb)" in proc.stdout
    assert "42" in proc.stdout.split("(Pdb)", 1)[1]    # pdb printed the task's local
    assert "result 42" in proc.stdout


# ---------------------------------------------------------------- tasks
def test_tasks_and_nested_tasks(local):
    @ray.remote
    def add(a, b):
        return a + b

    @ray.remote
    def tree(n):
        if n <= 1:
            return n
        return sum(ray.get([tree.remote(n - 1), tree.remote(n - 2)]))

    assert ray.get(add.remote(1, 2)) == 3
    assert ray.get(add.remote(ray.put(1), b=ray.put(2))) == 3
    assert ray.get(tree.remote(10)) == 55


def test_num_returns(local):
    @ray.remote(num_returns=3)
    def three():
        return "a", "b", "c"

    @ray.remote
    def pair():
        return 1, 2

    @ray.remote(num_returns=0)
    def nothing():
        return None

    refs = three.remote()
    assert isinstance(refs, list) and ray.get(refs) == ["a", "b", "c"]
    assert ray.get(pair.remote()) == (1, 2)
    assert ray.get(pair.options(num_returns=2).remote()) == [1, 2]
    assert nothing.remote() is None
    with pytest.raises(ValueError, match="num_returns=3"):
        ray.get(pair.options(num_returns=3).remote()[0])


def test_streaming_generator(local):
    @ray.remote
    def gen(n):
        for i in range(n):
            yield i * i

    @ray.remote
    def broken():
        yield 1
        raise KeyError("gone")

    g = gen.remote(4)
    assert isinstance(g, ray.ObjectRefGenerator)
    assert [ray.get(r) for r in g] == [0, 1, 4, 9]
    assert g.is_finished()
    assert ray.get(g.completed()) is None
    refs = list(broken.remote())
    assert ray.get(refs[0]) == 1
    with pytest.raises(KeyError):
        ray.get(refs[1])

    async def consume():
        return [await r async for r in gen.remote(3)]
    assert asyncio.run(consume()) == [0, 1, 4]


def test_dynamic_num_returns(local):
    @ray.remote(num_returns="dynamic")
    def gen(n):
        yield from range(n)

    inner = ray.get(gen.remote(3))
    assert isinstance(inner, ray.ObjectRefGenerator)
    assert ray.get(list(inner)) == [0, 1, 2]


# ---------------------------------------------------------------- errors
class MyError(Exception):
    def __init__(self, msg, code=0):
        super().__init__(msg)
        self.code = code


class NeedsTwoArgs(Exception):
    """Pickles, but cannot be rebuilt from its args (a common user mistake)."""

    def __init__(self, a, b):
        super().__init__(f"{a}-{b}")


def test_errors_are_captured_into_refs_with_type_and_traceback(local):
    @ray.remote
    def boom():
        raise MyError("bad thing", 7)

    ref = boom.remote()                  # does not raise here
    with pytest.raises(MyError) as info:
        ray.get(ref)
    err = info.value
    assert isinstance(err, RayTaskError)
    assert err.code == 7 and err.args == ("bad thing",)
    assert "ray::test_errors_are_captured_into_refs_with_type_and_traceback.<locals>.boom()" \
        in str(err)
    assert 'raise MyError("bad thing", 7)' in err.traceback_str
    assert "_private" not in err.traceback_str         # the runtime's frames are skipped


def test_exception_that_cannot_be_unpickled_still_reaches_get(local):
    @ray.remote
    def boom():
        raise NeedsTwoArgs(1, 2)

    with pytest.raises(RayTaskError, match="NeedsTwoArgs: 1-2"):
        ray.get(boom.remote())


def test_error_propagates_through_nested_tasks_and_dependents(local):
    calls = []

    @ray.remote
    def fail():
        raise ValueError("inner")

    @ray.remote
    def outer():
        return ray.get(fail.remote())

    @ray.remote
    def dependent(x):
        calls.append(x)
        return x

    with pytest.raises(ValueError, match="inner"):
        ray.get(outer.remote())
    with pytest.raises(ValueError):
        ray.get(dependent.remote(fail.remote()))
    assert calls == []                   # a failed argument: the task never ran


def test_retry_exceptions_reruns_the_task(local):
    attempts = []

    @ray.remote(max_retries=2, retry_exceptions=[ConnectionError])
    def flaky():
        attempts.append(1)
        if len(attempts) < 3:
            raise ConnectionError("try again")
        return len(attempts)

    @ray.remote(max_retries=5, retry_exceptions=[ConnectionError])
    def wrong_kind():
        attempts.append(1)
        raise ValueError("not retried")

    assert ray.get(flaky.remote()) == 3
    attempts.clear()
    with pytest.raises(ValueError):
        ray.get(wrong_kind.remote())
    assert len(attempts) == 1


def test_sys_exit_in_a_task_is_a_worker_crash(local):
    @ray.remote(max_retries=0)
    def leave():
        sys.exit(3)

    with pytest.raises(WorkerCrashedError):
        ray.get(leave.remote())


def test_bad_input_raises_like_the_real_runtime(local):
    ref = ray.put(1)
    with pytest.raises(TypeError):
        ray.get(1)
    with pytest.raises(TypeError):
        ray.get([ref, "x"])
    with pytest.raises(TypeError):
        ray.put(ref)
    with pytest.raises(TypeError):
        ray.wait(ref)
    with pytest.raises(ValueError):
        ray.wait([ref, ref])
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=2)
    with pytest.raises(ValueError):
        ray.wait([ref], num_returns=0)
    with pytest.raises(ValueError):
        ray.wait([ref], timeout=-1)
    with pytest.raises(ValueError):
        ray.get(ref, timeout=-1)
    with pytest.raises(TypeError):
        ray.cancel("not a ref")

    @ray.remote
    def f(x):
        return x

    with pytest.raises(TypeError, match="could not be serialized"):
        f.remote(threading.Lock())             # at .remote(), as the real runtime does

    @ray.remote
    def unpicklable():
        return threading.Lock()

    with pytest.raises(TypeError, match="return value"):
        ray.get(unpicklable.remote())
    with pytest.raises(TypeError, match="directly"):
        f(1)


# ------------------------------------------------------- objects and isolation
def test_values_are_isolated_as_in_the_real_runtime(local):
    @ray.remote
    def mutate(d):
        d["touched"] = True
        return d

    original = {"a": [1, 2]}
    result = ray.get(mutate.remote(original))
    assert result == {"a": [1, 2], "touched": True}
    assert original == {"a": [1, 2]}           # the caller's object is unchanged

    value = [1, 2, 3]
    ref = ray.put(value)
    value.append(4)                            # after put: the stored copy is unchanged
    first = ray.get(ref)
    first.append(5)
    assert ray.get(ref) == [1, 2, 3]           # every get is a fresh copy

    arr = ray.get(ray.put(np.arange(10)))
    assert arr.flags.writeable is False
    with pytest.raises(ValueError):
        arr[0] = 1


def test_top_level_refs_resolved_nested_refs_passed_as_refs(local):
    @ray.remote
    def kinds(a, nested):
        return type(a).__name__, type(nested[0]).__name__, ray.get(nested[0])

    ref = ray.put("value")
    assert ray.get(kinds.remote(ref, [ref])) == ("str", "ObjectRef", "value")


def test_nested_ref_kept_alive_by_outer_value_and_freed_after(local):
    def count():
        _client().drain_releases()             # (any API call does this first)
        return _client().call("object_stats")["num_objects"]

    base = count()
    inner = ray.put("inner")
    outer = ray.put([inner])
    del inner
    assert ray.get(ray.get(outer)[0]) == "inner"
    assert count() == base + 2                 # the outer value keeps the inner alive
    del outer
    assert count() == base                     # both freed


def test_wait(local):
    refs = [ray.put(i) for i in range(4)]
    ready, not_ready = ray.wait(refs, num_returns=2)
    assert ready == refs[:2] and not_ready == refs[2:]
    ready, not_ready = ray.wait(refs, num_returns=4, timeout=0)
    assert ready == refs and not_ready == []
    assert ray.wait([]) == ([], [])
    first, second = ray.put("first"), ray.put("second")
    # Every ref is ready: wait() picks those that finished first, listed in input order.
    assert ray.wait([second, first], num_returns=1) == ([first], [second])


def test_cancel_of_a_finished_task_is_a_no_op(local):
    @ray.remote
    def f():
        return 1

    ref = f.remote()
    ray.cancel(ref)
    assert ray.get(ref) == 1


def test_futures_and_await(local):
    ref = ray.put(21)
    assert ref.future().result(timeout=5) == 21

    @ray.remote
    def fail():
        raise ValueError("async bad")

    async def main():
        value = await ref
        with pytest.raises(ValueError):
            await fail.remote()
        return value
    assert asyncio.run(main()) == 21


def test_get_of_a_ref_from_an_earlier_runtime_raises_object_lost(local_init):
    local_init(num_cpus=1)
    ref = ray.put(1)
    ray.shutdown()
    local_init(num_cpus=1)
    with pytest.raises(ObjectLostError):
        ray.get(ref)


# ---------------------------------------------------------------- actors
def test_actor_state_order_and_errors(local):
    @ray.remote
    class Acc:
        def __init__(self):
            self.items = []

        def add(self, x):
            if x < 0:
                raise ValueError("negative")
            self.items.append(x)
            return list(self.items)

        @ray.method(num_returns=2)
        def two(self):
            return len(self.items), sum(self.items)

    a = Acc.remote()
    refs = [a.add.remote(i) for i in range(3)]
    assert ray.get(refs[-1]) == [0, 1, 2]
    with pytest.raises(ValueError) as info:
        ray.get(a.add.remote(-1))
    assert isinstance(info.value, RayTaskError)
    assert ray.get(a.two.remote()) == [3, 3]   # the actor keeps working after an error


def test_actor_handles_in_tasks_and_other_actors(local):
    @ray.remote
    def bump(handles):
        return ray.get(handles[0].incr.remote())

    @ray.remote
    class Caller:
        def call(self, c):
            return ray.get(c.incr.remote(10))

    c = Counter.remote()
    assert ray.get(bump.remote([c])) == 1
    assert ray.get(Caller.remote().call.remote(c)) == 11


def test_named_actors_namespaces_and_get_if_exists(local):
    c = Counter.options(name="counter").remote()
    c.incr.remote()
    assert ray.get(ray.get_actor("counter").get.remote()) == 1
    assert "counter" in ray.util.list_named_actors()
    with pytest.raises(ValueError, match="already taken"):
        Counter.options(name="counter").remote()
    same = Counter.options(name="counter", get_if_exists=True).remote()
    assert ray.get(same.get.remote()) == 1
    with pytest.raises(ValueError, match="Failed to look up"):
        ray.get_actor("nobody")
    other = Counter.options(name="counter", namespace="elsewhere").remote(100)
    assert ray.get(ray.get_actor("counter", namespace="elsewhere").get.remote()) == 100
    assert {"name": "counter", "namespace": "elsewhere"} in \
        ray.util.list_named_actors(all_namespaces=True)
    del other


def test_kill_then_calls_raise_actor_died_and_name_is_freed(local):
    c = Counter.options(name="victim").remote()
    ray.get(c.incr.remote())
    ray.kill(c)
    with pytest.raises(ActorDiedError):
        ray.get(c.incr.remote())
    with pytest.raises(ValueError):
        ray.get_actor("victim")
    with pytest.raises(ValueError, match="only supported for actors"):
        ray.kill("not an actor")


def test_kill_with_restart_rebuilds_the_actor(local):
    c = Counter.options(max_restarts=1).remote(5)
    assert ray.get(c.incr.remote()) == 6
    ray.kill(c, no_restart=False)
    assert ray.get(c.get.remote()) == 5        # restarted: the constructor ran again
    ray.kill(c, no_restart=False)              # no restarts left: now it is dead
    with pytest.raises(RayActorError):
        ray.get(c.get.remote())


def test_exit_actor_and_ray_terminate(local):
    @ray.remote
    class Leaver:
        def leave(self):
            ray.actor.exit_actor()

        def ping(self):
            return "pong"

    a = Leaver.remote()
    assert ray.get(a.ping.remote()) == "pong"
    with pytest.raises(ActorDiedError, match="exit_actor"):
        ray.get(a.leave.remote())
    with pytest.raises(ActorDiedError):
        ray.get(a.ping.remote())

    b = Counter.remote()
    refs = [b.incr.remote() for _ in range(2)]
    b.__ray_terminate__.remote()
    assert ray.get(refs) == [1, 2]
    with pytest.raises(RayActorError):
        ray.get(b.incr.remote())
    with pytest.raises(TypeError, match="inside an actor"):
        ray.actor.exit_actor()


def test_constructor_error_fails_every_call(local):
    @ray.remote
    class Broken:
        def __init__(self):
            raise RuntimeError("cannot start")

        def f(self):
            return 1

    b = Broken.remote()                        # does not raise here
    with pytest.raises(ActorDiedError, match="cannot start"):
        ray.get(b.f.remote())


def test_actor_ends_when_its_last_handle_is_gone(local):
    deleted = []

    @ray.remote
    class Mortal:
        def __del__(self):
            deleted.append(True)

        def ping(self):
            return 1

    m = Mortal.options(name="mortal").remote()
    assert ray.get(m.ping.remote()) == 1
    del m
    ray.put(None)                              # the next API call notices
    assert deleted == [True]
    with pytest.raises(ValueError):
        ray.get_actor("mortal")

    d = Mortal.options(name="immortal", lifetime="detached").remote()
    del d
    ray.put(None)
    assert ray.get(ray.get_actor("immortal").ping.remote()) == 1


def test_actor_created_by_an_actor_dies_with_it(local):
    @ray.remote
    class Owner:
        def make(self):
            self.child = Counter.options(name="child").remote()
            return ray.get(self.child.incr.remote())

    o = Owner.remote()
    assert ray.get(o.make.remote()) == 1
    child = ray.get_actor("child")
    ray.kill(o)
    with pytest.raises(RayActorError):
        ray.get(child.get.remote())


def test_generator_methods_stream(local):
    @ray.remote
    class Gen:
        def squares(self, n):
            for i in range(n):
                yield i * i

        async def agen(self, n):
            for i in range(n):
                await asyncio.sleep(0)
                yield i

    g = Gen.remote()
    assert [ray.get(r) for r in g.squares.remote(3)] == [0, 1, 4]
    assert [ray.get(r) for r in g.agen.remote(3)] == [0, 1, 2]


def test_async_actor(local):
    @ray.remote
    class Async:
        def __init__(self):
            self.lock = asyncio.Lock()       # bound to the actor's private loop
            self.n = 0

        async def add(self, x):
            async with self.lock:
                await asyncio.sleep(0.001)
                self.n += x
                return self.n

        async def await_ref(self, ref_list):
            return await ref_list[0] * 2

        async def call_other(self, other):
            return await other.add.remote(100)

        async def leave(self):
            ray.actor.exit_actor()

    a, b = Async.remote(), Async.remote()
    assert ray.get([a.add.remote(1), a.add.remote(2)]) == [1, 3]
    assert ray.get(a.await_ref.remote([ray.put(21)])) == 42
    assert ray.get(a.call_other.remote(b)) == 100   # one async actor awaiting another

    async def driver():                        # .remote() from inside a running loop
        return await a.add.remote(10)
    assert asyncio.run(driver()) == 13
    with pytest.raises(ActorDiedError):
        ray.get(a.leave.remote())


# ------------------------------------------------------------ runtime context
def test_runtime_context(local_init):
    local_init(num_cpus=4, resources={"custom": 2})

    @ray.remote(num_cpus=2, resources={"custom": 1})
    def inside():
        ctx = ray.get_runtime_context()
        return (ctx.get_task_id(), ctx.get_actor_id(), ctx.get_assigned_resources(),
                ray.available_resources().get("CPU"))

    @ray.remote(num_cpus=1)
    class Who:
        def ids(self):
            ctx = ray.get_runtime_context()
            return ctx.get_actor_id(), ctx.get_task_id(), ctx.get_actor_name()

        def me(self):
            return ray.get(ray.get_runtime_context().current_actor.incr.remote())

        def incr(self):
            return "incr"

    driver = ray.get_runtime_context()
    assert driver.get_task_id() is None and driver.get_actor_id() is None
    assert driver.get_node_id() == ray.nodes()[0]["NodeID"]
    t1, actor_id, assigned, cpus = ray.get(inside.remote())
    t2 = ray.get(inside.remote())[0]
    assert t1 and t2 and t1 != t2
    assert actor_id is None
    assert assigned == {"CPU": 2.0, "custom": 1.0}
    assert cpus == 2.0                         # charged while the task runs
    assert ray.available_resources()["CPU"] == 4.0
    w = Who.options(name="who").remote()
    assert ray.available_resources()["CPU"] == 3.0   # an actor holds its CPU for life
    aid, tid, name = ray.get(w.ids.remote())
    assert aid == w._actor_id.hex() and tid and name == "who"
    assert ray.get(w.me.remote()) == "incr"
    ray.kill(w)
    assert ray.available_resources()["CPU"] == 4.0


def test_gpu_tasks_and_actors_see_their_gpus(local_init):
    local_init(num_cpus=2, num_gpus=2)

    @ray.remote(num_gpus=1)
    def visible():
        return os.environ["CUDA_VISIBLE_DEVICES"], ray.get_runtime_context().get_accelerator_ids()

    @ray.remote(num_gpus=2)
    class Trainer:
        def visible(self):
            return os.environ["CUDA_VISIBLE_DEVICES"]

    before = os.environ.get("CUDA_VISIBLE_DEVICES")
    assert ray.get(visible.remote()) == ("0", {"GPU": ["0"]})
    t = Trainer.remote()
    assert ray.get(t.visible.remote()) == "0,1"
    assert os.environ.get("CUDA_VISIBLE_DEVICES") == before


def test_runtime_env_env_vars(local_init):
    local_init(num_cpus=1, runtime_env={"env_vars": {"JOB_VAR": "job"}})

    @ray.remote
    def read(name):
        return os.environ.get(name)

    assert ray.get(read.remote("JOB_VAR")) == "job"
    assert "JOB_VAR" not in os.environ         # set only while the task runs
    opts = {"runtime_env": {"env_vars": {"TASK_VAR": "task"}}}
    assert ray.get(read.options(**opts).remote("TASK_VAR")) == "task"
    assert "TASK_VAR" not in os.environ


# --------------------------------------------------------- node manager calls
def test_cluster_calls(local):
    assert ray.cluster_resources()["CPU"] == 4.0
    assert not any(k.startswith("_") for k in ray.cluster_resources())
    nodes = ray.nodes()
    assert len(nodes) == 1 and nodes[0]["Alive"]
    client = _client()
    assert client.call("ping") == "pong"
    assert client.call("kv_put", b"k1", b"v1", True) is True
    assert client.call("kv_put", b"k1", b"other", False) is False
    assert client.call("kv_get", b"k1") == b"v1"
    assert client.call("kv_keys", b"k") == [b"k1"]
    assert client.call("kv_del", b"k1") is True
    assert client.call("kv_get", b"k1") is None
    status = client.call("status")
    assert status["resources_total"]["CPU"] == 4.0
    with pytest.raises(ValueError, match="unknown request"):
        client.call("no_such_method")


def test_actor_waits_for_busy_resources(local_init):
    local_init(num_cpus=2)
    big = Counter.options(num_cpus=2).remote()
    assert ray.get(big.incr.remote()) == 1
    second = Counter.options(num_cpus=2).remote()
    pending = second.incr.remote()
    ready, _ = ray.wait([pending], timeout=0.1)
    assert not ready                           # both CPUs are held by the first actor
    ray.kill(big)                              # frees them: the second starts now
    assert ray.wait([pending], timeout=0)[0] == [pending]
    assert ray.get(pending) == 1


def test_nested_calls_borrow_the_cpu_of_their_callers(local_init):
    # As a worker blocked in get() gives its CPU back, a caller lends its CPU to the
    # calls nested in it: with one CPU, tasks and actors can still nest.
    local_init(num_cpus=1)

    @ray.remote(num_cpus=1)
    def depth(n):
        return 0 if n == 0 else 1 + ray.get(depth.remote(n - 1))

    @ray.remote(num_cpus=1)
    class Holder:
        def run(self, n):
            return ray.get(depth.remote(n))

    assert ray.get(depth.remote(5)) == 5
    h = Holder.remote()
    assert ray.get(h.run.remote(3)) == 3
    assert ray.available_resources().get("CPU", 0) == 0     # the actor holds it
    ray.kill(h)
    assert ray.available_resources()["CPU"] == 1.0


def test_task_waits_for_a_full_placement_group_bundle(local):
    from minray.util import placement_group, remove_placement_group
    pg = placement_group([{"CPU": 1}])
    strategy = PlacementGroupSchedulingStrategy(pg)

    @ray.remote(num_cpus=1)
    def one():
        return 1

    holder = Counter.options(num_cpus=1, scheduling_strategy=strategy).remote()
    assert ray.get(holder.incr.remote()) == 1
    in_group = one.options(scheduling_strategy=strategy).remote()
    assert ray.wait([in_group], timeout=0.05)[0] == []   # the bundle is taken ...
    assert ray.get(one.remote()) == 1                    # ... the node's other CPUs are not
    ray.kill(holder)
    assert ray.get(in_group, timeout=1) == 1             # the bundle freed up: it ran
    remove_placement_group(pg)


def test_calls_from_many_threads(local_init):
    local_init(num_cpus=2)
    import concurrent.futures
    import time

    @ray.remote
    def square(x):
        time.sleep(0.001)
        return x * x

    @ray.remote
    class Serial:
        def __init__(self):
            self.active = self.peak = 0

        def work(self):
            self.active += 1
            self.peak = max(self.peak, self.active)
            time.sleep(0.001)
            self.active -= 1

        def get_peak(self):
            return self.peak

    s = Serial.remote()

    def job(i):
        s.work.remote()
        return ray.get(square.remote(i))

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(job, range(100))) == sum(i * i for i in range(100))
    assert ray.get(s.get_peak.remote()) == 1    # an actor's calls still take turns
    assert ray.available_resources()["CPU"] == 2.0


def test_calls_waiting_behind_an_unplaced_actor_keep_their_order(local_init):
    local_init(num_cpus=2)

    @ray.remote
    def plus_one(x):
        return x + 1

    hog = Counter.options(num_cpus=2).remote()
    waiting = Counter.options(num_cpus=1).remote()
    refs = [waiting.incr.remote() for _ in range(3)]
    dependent = plus_one.remote(refs[-1])      # a task taking a pending ref waits too
    assert ray.wait(refs + [dependent], num_returns=4, timeout=0)[0] == []
    ray.kill(hog)
    assert ray.get(refs) == [1, 2, 3]
    assert ray.get(dependent) == 4


def test_keyboard_interrupt_in_a_task_reaches_the_driver(local):
    @ray.remote
    def interrupted():
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted.remote()                   # Ctrl-C belongs to the driver
    assert ray.get(ray.put(1)) == 1            # and the runtime still works
    assert ray.get_runtime_context().get_task_id() is None


def test_infeasible_task_stays_pending_until_cancelled(local, capsys):
    @ray.remote(resources={"does-not-exist": 1})
    def never():
        return 1

    ref = never.remote()
    ready, not_ready = ray.wait([ref], timeout=0.1)
    assert ready == [] and not_ready == [ref]
    with pytest.raises(GetTimeoutError):
        ray.get(ref, timeout=0.1)
    assert "can never provide" in capsys.readouterr().err
    ray.cancel(ref)
    with pytest.raises(TaskCancelledError):
        ray.get(ref)


def test_hard_affinity_to_a_missing_node_fails(local):
    @ray.remote
    def f():
        return 1

    here = NodeAffinitySchedulingStrategy(node_id=ray.get_runtime_context().get_node_id(),
                                          soft=False)
    nowhere = NodeAffinitySchedulingStrategy(node_id="ab" * 14, soft=False)
    assert ray.get(f.options(scheduling_strategy=here).remote()) == 1
    with pytest.raises(TaskUnschedulableError):
        ray.get(f.options(scheduling_strategy=nowhere).remote())
    c = Counter.options(scheduling_strategy=nowhere).remote()
    with pytest.raises(ActorUnschedulableError):
        ray.get(c.incr.remote())


def test_placement_groups(local):
    from minray.util import placement_group, placement_group_table, remove_placement_group

    @ray.remote(num_cpus=1)
    def in_group():
        return ray.util.get_current_placement_group()

    first = placement_group([{"CPU": 2}, {"CPU": 1}])
    assert first.wait(1)
    assert ray.get(first.ready(), timeout=1) == first
    assert ray.available_resources()["CPU"] == 1.0
    strategy = PlacementGroupSchedulingStrategy(first, placement_group_bundle_index=0)
    assert ray.get(in_group.options(scheduling_strategy=strategy).remote()) == first
    member = Counter.options(num_cpus=1, scheduling_strategy=strategy).remote()
    assert ray.get(member.incr.remote()) == 1

    second = placement_group([{"CPU": 2}])      # does not fit yet: pending
    assert not second.wait(0.05)
    ready_ref = second.ready()
    queued = in_group.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        second)).remote()
    assert ray.wait([ready_ref, queued], num_returns=2, timeout=0)[0] == []
    assert placement_group_table(second)["state"] == "PENDING"

    remove_placement_group(first)              # frees 3 CPUs: the second is placed,
    assert ray.wait([ready_ref, queued], num_returns=2, timeout=0)[0] == [ready_ref, queued]
    assert ray.get(queued) == second           # and what waited for it ran
    assert placement_group_table(second)["state"] == "CREATED"
    with pytest.raises(RayActorError):         # actors in a removed group are killed
        ray.get(member.incr.remote())
    remove_placement_group(second)
    assert ray.available_resources()["CPU"] == 4.0


# ------------------------------------------------------------------ lifecycle
def test_local_mode_then_shutdown_then_a_normal_init(shutdown_only):
    ray.init(local_mode=True, num_cpus=1)

    @ray.remote
    def pid():
        return os.getpid()

    assert ray.get(pid.remote()) == os.getpid()
    ray.shutdown()
    ray.init(num_cpus=1)
    assert ray.get(pid.remote(), timeout=60) != os.getpid()   # a real worker now
    ray.shutdown()


def test_init_twice_raises_and_shutdown_frees_everything(local_init):
    local_init(num_cpus=1)
    with pytest.raises(RuntimeError, match="init twice"):
        ray.init(local_mode=True)
    c = Counter.options(name="x", lifetime="detached").remote()
    client = _client()
    ray.shutdown()
    assert client.objects == {} and all(a.state == "DEAD" for a in client.actors.values())
    del c
