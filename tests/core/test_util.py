"""minray.util on a real runtime: ActorPool, Queue, placement groups, scheduling
strategies, named-actor listing and the module's public surface."""
import asyncio
import os
import subprocess
import sys
import time

import pytest

import minray as ray
from minray.exceptions import ActorDiedError, RayActorError
from minray.util import (ActorPool, get_current_placement_group, get_placement_group,
                         placement_group, placement_group_table, remove_placement_group)
from minray.util.placement_group import PlacementGroup
from minray.util.queue import Empty, Full, Queue
from minray.util.scheduling_strategies import (NodeAffinitySchedulingStrategy,
                                                PlacementGroupSchedulingStrategy)
from helpers import wait_until as _wait_until


def _cpus_available(n, timeout=10.0):
    """Wait until exactly ``n`` CPUs are free (idle task leases go back within ~1 s)."""
    return _wait_until(lambda: ray.available_resources().get("CPU", 0) == n, timeout)


# ================================================================ module surface
def test_util_exports():
    import minray.util as util
    for name in ["ActorPool", "placement_group", "remove_placement_group",
                 "get_placement_group", "placement_group_table",
                 "get_current_placement_group", "list_named_actors", "get_node_ip_address"]:
        assert callable(getattr(util, name)), name
    # As in Ray, scheduling strategies live only in util.scheduling_strategies.
    assert not hasattr(util, "PlacementGroupSchedulingStrategy")
    assert util.queue.Queue is Queue
    assert util.get_node_ip_address() == "127.0.0.1"


def test_import_minray_does_not_load_util():
    code = ("import sys, minray; assert 'minray.util' not in sys.modules; "
            "import minray.util; assert 'minray.util.queue' not in sys.modules; "
            "minray.util.queue; assert 'minray.util.queue' in sys.modules; print('ok')")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


# ===================================================================== ActorPool
@ray.remote
class PoolWorker:
    def work(self, item):
        delay, value = item
        time.sleep(delay)
        return value

    def double(self, v):
        return 2 * v

    def pid(self):
        return os.getpid()


@pytest.fixture(scope="module")
def pool_actors(ray_module):
    actors = [PoolWorker.remote() for _ in range(2)]
    ray.get([a.pid.remote() for a in actors])
    return actors


@pytest.mark.both_backends
def test_pool_map_keeps_input_order(pool_actors):
    pool = ActorPool(pool_actors)
    # The first item is the slowest, yet map yields results in input order.
    items = [(0.4, "a"), (0.0, "b"), (0.1, "c"), (0.0, "d")]
    assert list(pool.map(lambda a, v: a.work.remote(v), items)) == ["a", "b", "c", "d"]


def test_pool_map_unordered_yields_fastest_first(pool_actors):
    pool = ActorPool(pool_actors)
    items = [(1.0, "slow"), (0.0, "fast")]
    results = list(pool.map_unordered(lambda a, v: a.work.remote(v), items))
    assert results == ["fast", "slow"]


@pytest.mark.both_backends
def test_pool_map_many_items_over_few_actors(pool_actors):
    pool = ActorPool(pool_actors)
    assert list(pool.map(lambda a, v: a.double.remote(v), range(20))) == \
        [2 * i for i in range(20)]
    assert sorted(pool.map_unordered(lambda a, v: a.double.remote(v), range(20))) == \
        [2 * i for i in range(20)]


def test_pool_uses_every_actor(pool_actors):
    pool = ActorPool(pool_actors)
    pids = set(pool.map(lambda a, _: a.pid.remote(), range(6)))
    assert len(pids) == 2


@pytest.mark.both_backends
def test_pool_submit_and_get_next_in_order(pool_actors):
    pool = ActorPool(pool_actors)
    assert not pool.has_next()
    pool.submit(lambda a, v: a.work.remote(v), (0.3, 1))
    pool.submit(lambda a, v: a.work.remote(v), (0.0, 2))
    pool.submit(lambda a, v: a.work.remote(v), (0.0, 3))   # waits for a free actor
    assert pool.has_next()
    assert not pool.has_free()
    assert [pool.get_next(), pool.get_next(), pool.get_next()] == [1, 2, 3]
    assert not pool.has_next()
    with pytest.raises(StopIteration):
        pool.get_next()


def test_pool_get_next_unordered(pool_actors):
    pool = ActorPool(pool_actors)
    pool.submit(lambda a, v: a.work.remote(v), (0.8, "slow"))
    pool.submit(lambda a, v: a.work.remote(v), (0.0, "fast"))
    assert pool.get_next_unordered() == "fast"
    assert pool.get_next_unordered() == "slow"
    with pytest.raises(StopIteration):
        pool.get_next_unordered()


def test_pool_get_next_after_get_next_unordered_is_an_error(pool_actors):
    pool = ActorPool(pool_actors)
    pool.submit(lambda a, v: a.work.remote(v), (0.8, "slow"))
    pool.submit(lambda a, v: a.work.remote(v), (0.0, "fast"))
    assert pool.get_next_unordered() == "fast"
    with pytest.raises(ValueError):
        pool.get_next()
    assert pool.get_next_unordered() == "slow"


def test_pool_get_next_timeout(pool_actors):
    pool = ActorPool(pool_actors)
    pool.submit(lambda a, v: a.work.remote(v), (1.0, "late"))
    start = time.monotonic()
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1)
    assert time.monotonic() - start < 0.9
    assert pool.get_next() == "late"          # still there after the timeout
    pool.submit(lambda a, v: a.work.remote(v), (1.0, "late"))
    with pytest.raises(TimeoutError):
        pool.get_next_unordered(timeout=0.1)
    assert pool.get_next_unordered() == "late"


def test_pool_get_next_ignore_if_timedout_drops_the_task(pool_actors):
    pool = ActorPool(pool_actors)
    pool.submit(lambda a, v: a.work.remote(v), (1.0, "dropped"))
    pool.submit(lambda a, v: a.work.remote(v), (0.0, "kept"))
    with pytest.raises(TimeoutError):
        pool.get_next(timeout=0.1, ignore_if_timedout=True)
    assert pool.get_next() == "kept"
    assert not pool.has_next()


@pytest.mark.both_backends
def test_pool_map_discards_unfetched_results(pool_actors):
    pool = ActorPool(pool_actors)
    pool.submit(lambda a, v: a.double.remote(v), 100)
    time.sleep(0.3)
    assert list(pool.map(lambda a, v: a.double.remote(v), [1, 2])) == [2, 4]


@pytest.mark.both_backends
def test_pool_pop_idle_and_push(pool_actors):
    first, second = pool_actors
    pool = ActorPool([first])
    pool.submit(lambda a, v: a.double.remote(v), 1)
    assert pool.pop_idle() is None               # busy
    assert pool.get_next() == 2
    assert pool.has_free()
    assert pool.pop_idle() == first
    assert not pool.has_free()                   # the pool is empty now
    pool.push(first)
    pool.push(second)
    with pytest.raises(ValueError):
        pool.push(first)                         # already in the pool
    assert sorted(pool.map(lambda a, v: a.double.remote(v), [1, 2, 3])) == [2, 4, 6]


@pytest.mark.both_backends
def test_pool_push_takes_a_pending_submission(pool_actors):
    first, second = pool_actors
    pool = ActorPool([first])
    pool.submit(lambda a, v: a.work.remote(v), (0.5, "on first"))
    pool.submit(lambda a, v: a.pid.remote(), None)       # no free actor: queued
    pool.push(second)                                    # ... runs on the new actor
    assert pool.get_next() == "on first"
    assert pool.get_next() == ray.get(second.pid.remote())


@pytest.mark.both_backends
def test_pool_multi_return_futures(pool_actors):
    @ray.remote
    class Pair:
        @ray.method(num_returns=2)
        def split(self, v):
            return v, -v

    pool = ActorPool([Pair.remote(), Pair.remote()])
    assert list(pool.map(lambda a, v: a.split.remote(v), [1, 2])) == [[1, -1], [2, -2]]
    pool.submit(lambda a, v: a.split.remote(v), 3)
    assert pool.get_next_unordered() == [3, -3]


def test_pool_reports_a_dead_actor(ray_start_regular):
    a, b = PoolWorker.remote(), PoolWorker.remote()
    pool = ActorPool([a, b])
    ray.kill(b)
    with pytest.raises(ActorDiedError):
        for _ in pool.map(lambda actor, v: actor.double.remote(v), [1, 2]):
            pass


# ========================================================================= Queue
@pytest.mark.both_backends
def test_queue_fifo_and_sizes(ray_module):
    q = Queue(maxsize=3)
    assert q.empty() and not q.full() and q.qsize() == 0 and len(q) == 0
    for item in ["a", "b", "c"]:
        q.put(item)
    assert q.full() and q.size() == 3 and len(q) == 3
    assert [q.get(), q.get(), q.get()] == ["a", "b", "c"]
    assert q.empty()
    q.shutdown()


@pytest.mark.both_backends
def test_queue_get_nonblocking_and_timeout_raise_empty(ray_module):
    q = Queue()
    with pytest.raises(Empty):
        q.get(block=False)
    with pytest.raises(Empty):
        q.get_nowait()
    start = time.monotonic()
    with pytest.raises(Empty):
        q.get(timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 5
    q.shutdown()


@pytest.mark.both_backends
def test_queue_put_on_full_raises_full(ray_module):
    q = Queue(maxsize=1)
    q.put_nowait(1)
    with pytest.raises(Full):
        q.put_nowait(2)
    with pytest.raises(Full):
        q.put(2, block=False)
    start = time.monotonic()
    with pytest.raises(Full):
        q.put(2, timeout=0.3)
    assert 0.25 <= time.monotonic() - start < 5
    assert q.get() == 1 and q.empty()       # nothing extra got in
    q.shutdown()


@pytest.mark.both_backends
def test_queue_negative_timeout_is_a_value_error(ray_module):
    q = Queue()
    with pytest.raises(ValueError):
        q.put(1, timeout=-1)
    with pytest.raises(ValueError):
        q.get(timeout=-1)
    q.shutdown()


@pytest.mark.both_backends
def test_queue_batches(ray_module):
    q = Queue(maxsize=4)
    q.put_nowait_batch([1, 2, 3])
    with pytest.raises(Full):
        q.put_nowait_batch([4, 5])          # would exceed maxsize: nothing is added
    assert q.qsize() == 3
    with pytest.raises(Empty):
        q.get_nowait_batch(4)               # fewer items than asked: nothing is taken
    assert q.get_nowait_batch(2) == [1, 2]
    assert q.get_nowait_batch(1) == [3]
    assert q.get_nowait_batch(0) == []
    with pytest.raises(TypeError):
        q.put_nowait_batch(5)
    with pytest.raises(TypeError):
        q.get_nowait_batch("2")
    with pytest.raises(ValueError):
        q.get_nowait_batch(-1)
    q.shutdown()


@pytest.mark.both_backends
def test_queue_async_variants(ray_module):
    q = Queue(maxsize=1)

    async def main():
        await q.put_async("x")
        with pytest.raises(Full):
            await q.put_async("y", block=False)
        with pytest.raises(Full):
            await q.put_async("y", timeout=0.1)
        got = await q.get_async()
        with pytest.raises(Empty):
            await q.get_async(block=False)
        with pytest.raises(Empty):
            await q.get_async(timeout=0.1)
        return got

    assert asyncio.run(main()) == "x"
    q.shutdown()


def test_queue_blocking_get_waits_for_a_producer(ray_module):
    q = Queue()

    @ray.remote
    def put_later(queue, item, delay):
        time.sleep(delay)
        queue.put(item)

    put_later.remote(q, "late item", 0.5)
    start = time.monotonic()
    assert q.get(timeout=20) == "late item"     # a blocked get lets the put through
    assert time.monotonic() - start >= 0.4
    q.shutdown()


@pytest.mark.both_backends
def test_queue_blocking_put_waits_for_a_consumer(ray_module):
    q = Queue(maxsize=1)
    q.put("first")

    @ray.remote
    def get_later(queue, delay):
        time.sleep(delay)
        return queue.get()

    ref = get_later.remote(q, 0.5)
    q.put("second", timeout=20)                 # blocks until the task takes "first"
    assert ray.get(ref) == "first"
    assert q.get_nowait() == "second"
    q.shutdown()


def test_queue_producers_and_consumers_in_tasks(ray_module):
    q = Queue(maxsize=5)

    @ray.remote
    def produce(queue, start, n):
        for i in range(start, start + n):
            queue.put(i)
        return n

    @ray.remote
    def consume(queue, n):
        return [queue.get(timeout=30) for _ in range(n)]

    consumers = [consume.remote(q, 10) for _ in range(2)]
    producers = [produce.remote(q, 0, 10), produce.remote(q, 100, 10)]
    assert ray.get(producers, timeout=60) == [10, 10]
    got = [x for part in ray.get(consumers, timeout=60) for x in part]
    assert sorted(got) == list(range(10)) + list(range(100, 110))
    # Each producer's items come out in the order it put them.
    for part in ray.get(consumers):
        lows = [x for x in part if x < 100]
        assert lows == sorted(lows)
    assert q.empty()
    q.shutdown()


@pytest.mark.both_backends
def test_queue_actor_options_and_shutdown(ray_module):
    q = Queue(actor_options={"name": "test_queue_actor", "num_cpus": 0})
    q.put(1)
    assert "test_queue_actor" in ray.util.list_named_actors()
    q.shutdown()
    assert q.actor is None
    assert _wait_until(lambda: "test_queue_actor" not in ray.util.list_named_actors())


@pytest.mark.both_backends
def test_queue_force_shutdown(ray_module):
    q = Queue()
    actor = q.actor
    q.put(1)
    q.shutdown(force=True)
    with pytest.raises(RayActorError):
        ray.get(actor.qsize.remote(), timeout=20)


# ============================================================== placement groups
@pytest.mark.parametrize("bundles, kwargs", [
    ([], {}),                                          # no bundles
    ([{}], {}),                                        # an empty bundle
    ([{"CPU": 0}], {}),                                # only zero amounts
    ({"CPU": 1}, {}),                                  # not a list
    ([{"CPU": 1}], {"strategy": "BEST_EFFORT"}),       # unknown strategy
    ([{"CPU": 1}], {"lifetime": "forever"}),           # bad lifetime
    ([{"CPU": -1}], {}),                               # negative amount
    (["CPU"], {}),                                     # a bundle that is no dict
])
def test_placement_group_validation(ray_module, bundles, kwargs):
    with pytest.raises(ValueError):
        placement_group(bundles, **kwargs)


def test_placement_group_reserves_bundles(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], name="test_pg_two")
    assert ray.get(pg.ready(), timeout=20) == pg
    assert pg.wait(timeout_seconds=10)
    assert pg.bundle_specs == [{"CPU": 1}, {"CPU": 1}]
    assert pg.bundle_count == 2
    assert len(pg.id.binary()) == 18 and pg.id.hex() == pg.id.binary().hex()
    assert _cpus_available(2), ray.available_resources()
    row = placement_group_table(pg)
    assert row["state"] == "CREATED"
    assert row["name"] == "test_pg_two"
    assert row["strategy"] == "PACK"
    assert row["placement_group_id"] == pg.id.hex()
    assert [row["bundles"][i] for i in sorted(row["bundles"])] == [{"CPU": 1}, {"CPU": 1}]
    assert pg.id.hex() in placement_group_table()
    remove_placement_group(pg)
    assert _cpus_available(4)
    assert placement_group_table(pg)["state"] == "REMOVED"


def test_tasks_run_in_placement_group_bundles(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(pg.ready(), timeout=20)

    @ray.remote(num_cpus=1)
    def where():
        return os.getpid()

    refs = [where.options(scheduling_strategy=PlacementGroupSchedulingStrategy(
        pg, placement_group_bundle_index=i)).remote() for i in (0, 1, -1)]
    assert all(isinstance(p, int) for p in ray.get(refs, timeout=30))
    # Work in the group is charged to its bundles, not to the node's free CPUs.
    assert _cpus_available(2)
    remove_placement_group(pg)


def test_placement_group_capacity_is_enforced(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(pg.ready(), timeout=20)
    strategy = PlacementGroupSchedulingStrategy(pg)

    @ray.remote(num_cpus=1)
    class Holder:
        def ping(self):
            return "held"

    holders = [Holder.options(scheduling_strategy=strategy).remote() for _ in range(2)]
    assert ray.get([h.ping.remote() for h in holders], timeout=30) == ["held", "held"]

    @ray.remote(num_cpus=1)
    def one():
        return 1

    in_group = one.options(scheduling_strategy=strategy).remote()
    ready, _ = ray.wait([in_group], timeout=1.0)
    assert not ready                                   # both bundles are taken ...
    assert ray.get(one.remote(), timeout=30) == 1      # ... the node's other CPUs are not
    ray.kill(holders[0])
    assert ray.get(in_group, timeout=30) == 1          # a bundle freed up: it runs
    remove_placement_group(pg)


def test_actor_in_placement_group_dies_when_group_is_removed(ray_start_regular):
    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=20)

    @ray.remote(num_cpus=1)
    class InGroup:
        def ping(self):
            return "pong"

    a = InGroup.options(scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote()
    assert ray.get(a.ping.remote(), timeout=30) == "pong"
    assert _cpus_available(3)
    remove_placement_group(pg)
    with pytest.raises(RayActorError):
        ray.get(a.ping.remote(), timeout=30)
    assert _cpus_available(4)


def test_placement_group_option_of_a_task(ray_start_regular):
    # The legacy options placement_group= / placement_group_bundle_index= still work.
    pg = placement_group([{"CPU": 1}])
    ray.get(pg.ready(), timeout=20)

    @ray.remote(num_cpus=1)
    def f():
        return "ran"

    assert ray.get(f.options(placement_group=pg, placement_group_bundle_index=0).remote(),
                   timeout=30) == "ran"
    remove_placement_group(pg)


@pytest.mark.parametrize("strategy", ["PACK", "SPREAD", "STRICT_PACK"])
def test_placement_group_strategies_that_fit_one_node(ray_start_regular, strategy):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy=strategy)
    assert pg.wait(timeout_seconds=20)
    assert placement_group_table(pg)["strategy"] == strategy
    remove_placement_group(pg)


def test_strict_spread_on_one_node_stays_pending(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}], strategy="STRICT_SPREAD")
    start = time.monotonic()
    assert pg.wait(timeout_seconds=0.5) is False
    assert time.monotonic() - start >= 0.4
    ready, _ = ray.wait([pg.ready()], timeout=0.5)
    assert not ready
    assert placement_group_table(pg)["state"] == "PENDING"
    assert ray.available_resources()["CPU"] == 4       # nothing was reserved
    remove_placement_group(pg)


def test_infeasible_placement_group_stays_pending(ray_start_regular):
    pg = placement_group([{"CPU": 100}])
    assert pg.wait(timeout_seconds=0.3) is False
    assert placement_group_table(pg)["state"] == "PENDING"
    remove_placement_group(pg)


def test_pending_group_is_placed_once_resources_free_up(ray_start_regular):
    big = placement_group([{"CPU": 4}])
    assert big.wait(timeout_seconds=20)
    waiting = placement_group([{"CPU": 2}])
    ready_ref = waiting.ready()
    assert not waiting.wait(timeout_seconds=0.3)
    remove_placement_group(big)
    assert ray.get(ready_ref, timeout=20) == waiting
    assert waiting.wait(timeout_seconds=5)
    remove_placement_group(waiting)


def test_get_placement_group_by_name(ray_start_regular):
    pg = placement_group([{"CPU": 1}], name="test_named_pg")
    found = get_placement_group("test_named_pg")
    assert found == pg and found.id.hex() == pg.id.hex()
    assert found.bundle_specs == [{"CPU": 1}]
    with pytest.raises(ValueError):
        get_placement_group("no_group_has_this_name")
    with pytest.raises(ValueError):
        get_placement_group("")
    remove_placement_group(pg)


def test_placement_group_handle_travels_to_tasks(ray_start_regular):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])

    @ray.remote(num_cpus=0)
    def use_group(group):
        ray.get(group.ready())

        @ray.remote(num_cpus=1)
        def inner():
            return "inner ran"

        strategy = PlacementGroupSchedulingStrategy(group, placement_group_bundle_index=1)
        return group.bundle_count, ray.get(inner.options(scheduling_strategy=strategy).remote())

    assert ray.get(use_group.remote(pg), timeout=30) == (2, "inner ran")
    remove_placement_group(pg)


_PG_DRIVER = """
import sys, minray as ray
from minray.util import placement_group
ray.init(address=sys.argv[1])
scoped = placement_group([{"CPU": 2}])
detached = placement_group([{"CPU": 1}], lifetime="detached")
assert scoped.wait(20) and detached.wait(20)
print(scoped.id.hex(), detached.id.hex())
"""


def _pg_state(pg_hex):
    row = placement_group_table().get(pg_hex)
    return row["state"] if row else "REMOVED"


def test_detached_placement_group_outlives_its_driver(ray_start_regular):
    out = subprocess.run([sys.executable, "-c", _PG_DRIVER, ray_start_regular["session_dir"]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    _, detached_hex = out.stdout.split()
    time.sleep(0.5)
    assert _pg_state(detached_hex) == "CREATED"
    remove_placement_group(_pg_by_hex(detached_hex))
    assert _pg_state(detached_hex) == "REMOVED"


def test_placement_group_is_removed_with_its_driver(ray_start_regular):
    out = subprocess.run([sys.executable, "-c", _PG_DRIVER, ray_start_regular["session_dir"]],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    scoped_hex, _ = out.stdout.split()
    assert _wait_until(lambda: _pg_state(scoped_hex) == "REMOVED", timeout=3)
    assert _cpus_available(3)          # only the detached group's CPU is still reserved


def _pg_by_hex(pg_hex):
    from minray.util.placement_group import PlacementGroupID
    return PlacementGroup(PlacementGroupID.from_hex(pg_hex))


@pytest.mark.both_backends
def test_get_current_placement_group_in_driver_is_none(ray_module):
    assert get_current_placement_group() is None


def test_get_current_placement_group_inside_task(ray_start_regular):
    pg = placement_group([{"CPU": 1}])

    @ray.remote(num_cpus=1)
    def current():
        return get_current_placement_group()

    got = ray.get(current.options(
        scheduling_strategy=PlacementGroupSchedulingStrategy(pg)).remote(), timeout=30)
    assert got == pg


@pytest.mark.parametrize("options", [
    {"bundle_index": 5, "num_cpus": 1},
    {"bundle_index": -1, "num_cpus": 2},
])
def test_placement_group_request_that_cannot_fit_raises(ray_start_regular, options):
    pg = placement_group([{"CPU": 1}, {"CPU": 1}])
    ray.get(pg.ready(), timeout=20)

    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError):
        f.options(num_cpus=options["num_cpus"],
                  scheduling_strategy=PlacementGroupSchedulingStrategy(
                      pg, placement_group_bundle_index=options["bundle_index"])).remote()


def test_empty_placement_group():
    pg = PlacementGroup.empty()
    assert pg.is_empty
    assert pg.wait(0) is True


# ========================================================= scheduling strategies
@pytest.mark.both_backends
def test_node_affinity_hard_runs_on_this_node(ray_module):
    node_id = ray.get_runtime_context().get_node_id()

    @ray.remote
    def where():
        return ray.get_runtime_context().get_node_id()

    strategy = NodeAffinitySchedulingStrategy(node_id=node_id, soft=False)
    assert ray.get(where.options(scheduling_strategy=strategy).remote(), timeout=30) == node_id


@pytest.mark.both_backends
def test_spread_strategy_runs(ray_module):
    @ray.remote
    def square(x):
        return x * x

    refs = [square.options(scheduling_strategy="SPREAD").remote(i) for i in range(8)]
    assert ray.get(refs, timeout=30) == [i * i for i in range(8)]


# ============================================================= named actor list
@pytest.mark.both_backends
def test_list_named_actors(ray_module):
    @ray.remote
    class Named:
        def ping(self):
            return "pong"

    a = Named.options(name="test_list_a").remote()
    b = Named.options(name="test_list_b", namespace="test_other_ns").remote()
    ray.get([a.ping.remote(), b.ping.remote()])
    names = ray.util.list_named_actors()
    assert "test_list_a" in names and "test_list_b" not in names
    everywhere = ray.util.list_named_actors(all_namespaces=True)
    assert {"name": "test_list_b", "namespace": "test_other_ns"} in everywhere
    assert any(d["name"] == "test_list_a" for d in everywhere)
    ray.kill(a)
    assert _wait_until(lambda: "test_list_a" not in ray.util.list_named_actors())
