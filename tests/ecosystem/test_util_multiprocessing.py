"""minray.util.multiprocessing.Pool against the standard library's Pool and Ray 2.60's
test_multiprocessing.py semantics: results, ordering, errors with the remote traceback,
callbacks, close/join/terminate, initializer, maxtasksperchild, sizing."""
import multiprocessing as mp
import os
import queue
import threading

import psutil
import pytest

import minray as ray
from minray.util.multiprocessing import Pool, RemoteTraceback, TimeoutError


def square(x):
    return x * x


def add(a, b, c=0):
    return a + b + c


def pid_of(_):
    return os.getpid()


def fails_on_three(x):
    if x == 3:
        raise ZeroDivisionError(f"item {x} cannot be divided")
    return x


def write_pid(dirname, tag):
    with open(os.path.join(dirname, str(os.getpid())), "w") as f:
        f.write(tag)


def raises_unpicklable(_):
    error = ValueError("carries a lock")
    error.lock = threading.Lock()         # an exception that cannot travel as it is
    raise error


def wait_then(args):
    """Block on the Signal actor when asked to, then return the value."""
    value, signal, blocked = args
    if value in blocked:
        ray.get(signal.wait.remote())
    return value


@ray.remote(num_cpus=0)
class Signal:
    def __init__(self):
        import asyncio
        self.event = asyncio.Event()

    async def wait(self):
        await self.event.wait()

    async def send(self):
        self.event.set()


@pytest.fixture(scope="module")
def pool4(ray_module):
    pool = Pool(processes=4)
    yield pool
    pool.terminate()
    pool.join()


@pytest.fixture(scope="module")
def stdlib_pool():
    with mp.get_context("fork").Pool(2) as pool:
        yield pool


def test_map_and_starmap_equal_the_standard_librarys(pool4, stdlib_pool):
    inputs = list(range(-50, 150))
    assert pool4.map(square, inputs) == stdlib_pool.map(square, inputs)
    assert pool4.map(square, inputs, chunksize=7) == stdlib_pool.map(square, inputs, 7)
    assert pool4.map(square, iter(inputs)) == stdlib_pool.map(square, iter(inputs))
    assert pool4.map(square, []) == stdlib_pool.map(square, []) == []
    pairs = [(i, 2 * i) for i in range(40)]
    assert pool4.starmap(add, pairs) == stdlib_pool.starmap(add, pairs)
    assert pool4.starmap_async(add, pairs).get(timeout=30) == stdlib_pool.starmap(add, pairs)
    assert pool4.apply(add, (1, 2), {"c": 3}) == stdlib_pool.apply(add, (1, 2), {"c": 3}) == 6
    assert sorted(pool4.imap_unordered(square, inputs, chunksize=9)) == \
        sorted(stdlib_pool.imap_unordered(square, inputs, chunksize=9))


def test_map_spreads_over_every_actor_process(pool4):
    pids = pool4.map(pid_of, range(400))
    assert len(set(pids)) == 4
    assert os.getpid() not in pids
    # Ray's default chunking: about four chunks per actor, so each does a fair share.
    assert all(pids.count(p) >= 50 for p in set(pids))


def test_imap_keeps_input_order_and_times_out_on_a_blocked_item(pool4):
    signal = Signal.remote()
    items = [(i, signal, {0}) for i in range(20)]
    it = pool4.imap(wait_then, items, chunksize=3)
    with pytest.raises(TimeoutError):
        it.next(timeout=0.3)       # item 0 is blocked, so nothing may come out yet
    ray.get(signal.send.remote())
    assert list(it) == list(range(20))
    with pytest.raises(StopIteration):
        it.next()
    # An iterator without len() (Ray's use_iter variant) and the default chunksize.
    assert list(pool4.imap(square, iter(range(30)))) == [x * x for x in range(30)]


def test_imap_unordered_yields_ready_results_first_and_all_of_them(pool4):
    signal = Signal.remote()
    items = [(i, signal, {0}) for i in range(30)]
    it = pool4.imap_unordered(wait_then, items)
    # Item 0 blocks one actor; the other three keep going, so later items come first.
    early = [it.next(timeout=30) for _ in range(10)]
    assert 0 not in early
    ray.get(signal.send.remote())
    rest = list(it)
    assert sorted(early + rest) == list(range(30))


def test_errors_propagate_with_the_remote_traceback(pool4, stdlib_pool):
    for pool in (pool4, stdlib_pool):
        with pytest.raises(ZeroDivisionError, match="item 3 cannot be divided") as info:
            pool.map(fails_on_three, range(10))
        cause = info.value.__cause__
        assert cause is not None and "fails_on_three" in str(cause)
    assert isinstance(info.value.__cause__, Exception)
    with pytest.raises(ZeroDivisionError) as info:
        pool4.apply(fails_on_three, (3,))
    assert isinstance(info.value.__cause__, RemoteTraceback)
    assert 'raise ZeroDivisionError' in info.value.__cause__.tb
    # A wrong call signature fails in the actor and reaches the caller too.
    with pytest.raises(TypeError):
        pool4.apply(add, (1,))
    # As in Ray, imap hands a failure back as the exception instance, in its place.
    results = list(pool4.imap(fails_on_three, range(6), chunksize=4))
    assert results[:3] == [0, 1, 2] and results[4:] == [4, 5]
    assert isinstance(results[3], ZeroDivisionError)
    assert isinstance(results[3].__cause__, RemoteTraceback)
    # An exception that cannot be pickled still reaches the caller, named.
    with pytest.raises(RuntimeError, match="ValueError: carries a lock .*could not be pickled"):
        pool4.apply(raises_unpicklable, (1,))
    # The pool survives its tasks' failures.
    assert pool4.map(square, [3]) == [9]


def test_async_results_and_callbacks(pool4):
    signal = Signal.remote()
    res = pool4.apply_async(wait_then, ((7, signal, {7}),))
    res.wait(timeout=0.05)
    assert not res.ready()
    with pytest.raises(ValueError, match="not ready"):
        res.successful()
    with pytest.raises(TimeoutError):
        res.get(timeout=0.05)
    ray.get(signal.send.remote())
    assert res.get(timeout=30) == 7 and res.successful()

    seen = queue.Queue()
    res = pool4.apply_async(square, (5,), callback=seen.put, error_callback=seen.put)
    assert seen.get(timeout=30) == 25 and res.get() == 25
    res = pool4.apply_async(fails_on_three, (3,), callback=seen.put, error_callback=seen.put)
    assert isinstance(seen.get(timeout=30), ZeroDivisionError)
    assert not res.successful()
    # map_async: the callback once with the whole list, or error_callback once.
    res = pool4.map_async(square, range(50), chunksize=4, callback=seen.put,
                          error_callback=seen.put)
    assert seen.get(timeout=30) == [x * x for x in range(50)]
    res.wait()
    assert res.successful() and seen.empty()
    res = pool4.map_async(fails_on_three, list(range(10)) * 3, chunksize=1,
                          callback=seen.put, error_callback=seen.put)
    res.wait(timeout=30)
    assert isinstance(seen.get(timeout=30), ZeroDivisionError) and seen.empty()
    with pytest.raises(ZeroDivisionError):
        res.get()


def test_callbacks_run_on_one_thread_per_result(pool4):
    threads = queue.Queue()
    res = pool4.apply_async(square, (2,), callback=lambda _: threads.put(threading.get_ident()))
    res.get(timeout=30)
    assert threads.get(timeout=30) != threading.get_ident()


def test_bad_arguments_name_the_cause(pool4):
    with pytest.raises(ValueError, match="chunksize"):
        pool4.map(square, range(3), chunksize=0)
    with pytest.raises(ValueError, match="only 4 CPUs"):
        Pool(processes=5)
    with pytest.raises(ValueError, match=">0"):
        Pool(processes=0)
    with pytest.raises(ValueError, match="maxtasksperchild"):
        Pool(processes=1, maxtasksperchild=0)


def test_initializer_runs_once_in_every_process(ray_module, tmp_path):
    with Pool(processes=3, initializer=write_pid, initargs=(str(tmp_path), "hi")) as pool:
        pids = set(pool.map(pid_of, range(30), chunksize=1))
        assert sorted(os.listdir(tmp_path)) == sorted(str(p) for p in pids)
        assert len(pids) == 3
        assert {(tmp_path / name).read_text() for name in os.listdir(tmp_path)} == {"hi"}


def test_maxtasksperchild_replaces_the_process(ray_module):
    with Pool(processes=2, maxtasksperchild=1) as pool:
        assert len(set(pool.map(pid_of, range(8), chunksize=1))) == 8


def test_close_lets_queued_work_finish_and_join_waits(ray_module):
    pool = Pool(processes=2)
    signal = Signal.remote()
    res = pool.map_async(wait_then, [(i, signal, {0, 1}) for i in range(4)], chunksize=1)
    assert not res.ready()
    pool.close()
    with pytest.raises(ValueError, match="Pool not running"):
        pool.map(square, [1])
    assert not res.ready()
    ray.get(signal.send.remote())
    pool.join()
    res.wait(timeout=30)
    assert res.successful() and res.get() == [0, 1, 2, 3]


def test_terminate_stops_running_work(ray_module):
    pool = Pool(processes=2)
    pids = set(pool.map(pid_of, range(4), chunksize=1))
    signal = Signal.remote()
    res = pool.map_async(wait_then, [(i, signal, {0, 1, 2, 3}) for i in range(4)])
    pool.terminate()
    pool.join()                 # returns although the calls would block forever
    res.wait(timeout=30)
    assert res.ready() and not res.successful()
    with pytest.raises(ray.exceptions.RayError):
        res.get()
    psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)], timeout=10)
    assert not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                   for p in pids)
    with pytest.raises(ValueError, match="still running"):
        Pool(processes=1).join()


def test_context_manager_terminates_on_exit(ray_module):
    with Pool(processes=2) as pool:
        pids = set(pool.map(pid_of, range(8), chunksize=1))
        assert len(pids) == 2
    with pytest.raises(ValueError, match="Pool not running"):
        pool.apply(square, (2,))
    gone, alive = psutil.wait_procs([psutil.Process(p) for p in pids if psutil.pid_exists(p)],
                                    timeout=10)
    assert not [p for p in alive if p.status() != psutil.STATUS_ZOMBIE]


def nested_map(values):
    # A pool inside a pool's process: the runtime is already connected, and the
    # inner actors take no CPU, so this cannot deadlock on a 1-CPU cluster.
    with Pool(processes=1) as inner:
        return inner.map(square, values)


def test_pool_inside_a_pool_process_and_a_task(ray_init):
    ray_init(num_cpus=1)
    with Pool(processes=1) as outer:
        assert outer.map(nested_map, [[1, 2], [3]]) == [[1, 4], [9]]

    @ray.remote
    def task():
        with Pool() as pool:   # defaults to the cluster's CPUs
            return pool.map(square, range(5))
    assert ray.get(task.remote(), timeout=60) == [0, 1, 4, 9, 16]


def test_pool_starts_the_runtime_when_none_is_running(shutdown_only):
    if ray.is_initialized():
        ray.shutdown()
    pool = Pool(processes=2)
    try:
        assert ray.is_initialized()
        assert int(ray.cluster_resources()["CPU"]) == 2
        assert len(set(pool.map(pid_of, [(), ()], chunksize=1))) == 2
    finally:
        pool.terminate()
        pool.join()
