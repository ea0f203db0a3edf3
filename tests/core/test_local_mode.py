"""Local mode: ``init(local_mode=True)`` runs every task and actor call in the driver.

What only local mode has: the code runs in the driver's process and thread at
``.remote()`` time (so pdb works in it, and calls run in submission order with
no parallelism), its simulation of what a worker process would do (sys.exit,
restarts, the CPU a nested call borrows, calls held back by busy resources or
unplaced placement groups), and its private answers to node-manager requests.

The Ray semantics both backends share are not restated here: the core tests
marked ``@pytest.mark.both_backends`` run on the process runtime and in local
mode (tests/core/conftest.py).
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
                               ObjectLostError, RayActorError,
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


# ---------------------------------------------------------------- errors
def test_sys_exit_in_a_task_is_a_worker_crash(local):
    @ray.remote(max_retries=0)
    def leave():
        sys.exit(3)

    with pytest.raises(WorkerCrashedError):
        ray.get(leave.remote())


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


def test_get_of_a_ref_from_an_earlier_runtime_raises_object_lost(local_init):
    local_init(num_cpus=1)
    ref = ray.put(1)
    ray.shutdown()
    local_init(num_cpus=1)
    with pytest.raises(ObjectLostError):
        ray.get(ref)


# ---------------------------------------------------------------- actors
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
