"""The caller reads its own actor reply (CoreClient._read_direct).

`ray.get(actor.method.remote())` takes the actor's socket from the I/O thread
while it waits, and gives it back afterwards. These tests check that the
hand-over never loses a reply, never hangs and never leaves the socket unread:
another thread completing the call, the actor dying mid-call, timeouts, other
threads and other ways of waiting on the same actor.
"""
import os
import signal
import threading
import time

import pytest

import minray as ray
from minray.exceptions import GetTimeoutError, RayActorError


@ray.remote
class Echo:
    def echo(self, x):
        return x

    def sleep(self, s):
        time.sleep(s)
        return s

    def pid(self):
        return os.getpid()


@ray.remote(max_restarts=1)
class Restartable:
    def pid(self):
        return os.getpid()

    def sleep(self, s):
        time.sleep(s)
        return s


def _read_direct_calls(client):
    """Count the direct reads the client makes from now on (wraps the method)."""
    calls = {"n": 0, "taken": 0}
    original = client._read_direct

    def counting(conn, waiter, timeout):
        calls["n"] += 1
        result = original(conn, waiter, timeout)
        if result is not None:
            calls["taken"] += 1
        return result
    client._read_direct = counting
    return calls, original


def test_sync_calls_are_read_by_the_caller(ray_module):
    from minray._private import state
    client = state.current_client()
    a = Echo.remote()
    assert ray.get(a.echo.remote(0)) == 0
    calls, original = _read_direct_calls(client)
    try:
        for i in range(200):
            assert ray.get(a.echo.remote(i)) == i
    finally:
        client._read_direct = original
    # The fast path is the one taken (were it never taken, this feature is off).
    assert calls["taken"] >= 190, calls
    # Afterwards the I/O thread reads the socket again: an unwaited reply still lands.
    ref = a.echo.remote("later")
    fut = ref.future()
    assert fut.result(timeout=10) == "later"


def test_another_thread_completing_the_call_wakes_the_reader(ray_module):
    a = Echo.remote()
    ray.get(a.pid.remote())
    killer = threading.Timer(0.5, lambda: ray.kill(a))
    killer.start()
    t = time.monotonic()
    with pytest.raises(RayActorError):
        ray.get(a.sleep.remote(30))
    assert time.monotonic() - t < 10, "the caller stayed in its read after the actor was killed"
    killer.join()


def test_actor_process_killed_mid_call_restarts_and_answers(ray_module):
    a = Restartable.remote()
    pid = ray.get(a.pid.remote())
    threading.Timer(0.5, lambda: os.kill(pid, signal.SIGKILL)).start()
    with pytest.raises(RayActorError):
        ray.get(a.sleep.remote(30), timeout=20)
    # The restarted actor is reached on a new connection, read directly again.
    deadline = time.monotonic() + 20
    while True:
        try:
            new_pid = ray.get(a.pid.remote(), timeout=10)
            break
        except RayActorError:
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert new_pid != pid
    assert ray.get(a.sleep.remote(0)) == 0


def test_timeout_gives_the_socket_back(ray_module):
    a = Echo.remote()
    ref = a.sleep.remote(1.0)
    t = time.monotonic()
    with pytest.raises(GetTimeoutError):
        ray.get(ref, timeout=0.2)
    assert time.monotonic() - t < 0.9
    # Nobody waits now: the reply must still be read (by the I/O thread).
    fut = ref.future()
    assert fut.result(timeout=10) == 1.0
    assert ray.get(a.echo.remote("after")) == "after"


def test_many_threads_calling_one_actor(ray_module):
    a = Echo.remote()
    errors = []

    def caller(k):
        try:
            for i in range(300):
                assert ray.get(a.echo.remote((k, i))) == (k, i)
        except BaseException as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=caller, args=(k,)) for k in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a caller hung"
    assert errors == []


def test_sync_and_pipelined_calls_mixed(ray_module):
    a = Echo.remote()
    for round_ in range(20):
        refs = [a.echo.remote(i) for i in range(20)]
        assert ray.get(a.echo.remote("sync")) == "sync"
        assert ray.get(refs) == list(range(20))
        ready, _ = ray.wait([a.echo.remote(round_)], timeout=10)
        assert ray.get(ready) == [round_]


@ray.remote
def square(x):
    return x * x


def test_every_way_of_waiting_at_once(ray_module):
    """Threads wait on one actor and one function in every way at once: a reply
    must never sit unread on a socket a caller left muted."""
    a = Echo.remote()
    errors = []
    stop = time.monotonic() + 3.0

    def sync_calls():
        i = 0
        while time.monotonic() < stop:
            assert ray.get(a.echo.remote(i), timeout=20) == i
            assert ray.get(square.remote(i), timeout=20) == i * i
            i += 1

    def futures():
        i = 0
        while time.monotonic() < stop:
            assert a.echo.remote(i).future().result(timeout=20) == i
            assert square.remote(i).future().result(timeout=20) == i * i
            i += 1

    def lists_and_waits():
        i = 0
        while time.monotonic() < stop:
            refs = [a.echo.remote(i), square.remote(i)]
            ready, _ = ray.wait(refs, num_returns=2, timeout=20)
            assert len(ready) == 2
            assert ray.get(refs, timeout=20) == [i, i * i]
            i += 1

    def ref_arguments():
        i = 0
        while time.monotonic() < stop:
            assert ray.get(square.remote(a.echo.remote(i)), timeout=20) == i * i
            i += 1

    def run(fn):
        try:
            fn()
        except BaseException as exc:  # reported below
            errors.append(exc)
    threads = [threading.Thread(target=run, args=(fn,))
               for fn in (sync_calls, sync_calls, futures, lists_and_waits, ref_arguments)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(90)
    assert not any(t.is_alive() for t in threads), "a waiter hung"
    assert errors == [], errors
