"""Actor failures on a real runtime: kill, exit_actor, crashing constructors and
methods, SIGKILL of the actor process, restarts and retried calls.

Each test that kills something gets its own runtime (``ray_start_regular``, which
also fails the test if processes are left behind).
"""
import asyncio
import os
import signal
import time

import psutil
import pytest

import minray as ray
from minray.exceptions import ActorDiedError, RayActorError, RayTaskError
from helpers import wait_until as _wait_until


def _alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@ray.remote
class Counter:
    def __init__(self, start=0):
        self.value = start

    def incr(self):
        self.value += 1
        return self.value

    def pid(self):
        return os.getpid()

    def sleep_then_pid(self, seconds):
        time.sleep(seconds)
        return os.getpid()

    def reconstructed(self):
        return ray.get_runtime_context().was_current_actor_reconstructed


# ------------------------------------------------------------------ ray.kill
def test_kill_fails_later_calls_with_actor_died_error(ray_start_regular):
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    ray.kill(c)
    with pytest.raises(ActorDiedError) as info:
        ray.get(c.incr.remote(), timeout=20)
    assert isinstance(info.value, RayActorError)
    assert _wait_until(lambda: not _alive(pid))


def test_kill_fails_running_and_queued_calls(ray_start_regular):
    c = Counter.remote()
    ray.get(c.pid.remote())
    running = c.sleep_then_pid.remote(30)
    queued = [c.incr.remote() for _ in range(3)]
    time.sleep(0.3)
    ray.kill(c)
    for ref in [running] + queued:
        with pytest.raises(RayActorError):
            ray.get(ref, timeout=20)


def test_kill_with_restart_allowed_restarts_the_actor(ray_start_regular):
    c = Counter.options(max_restarts=1).remote(10)
    assert ray.get(c.incr.remote()) == 11
    pid = ray.get(c.pid.remote())
    ray.kill(c, no_restart=False)
    assert _wait_until(lambda: not _alive(pid))
    # The constructor ran again in a new process: state starts over.
    assert ray.get(c.incr.remote(), timeout=30) == 11
    assert ray.get(c.pid.remote()) != pid
    assert ray.get(c.reconstructed.remote()) is True


def test_kill_no_restart_overrides_max_restarts(ray_start_regular):
    c = Counter.options(max_restarts=5).remote()
    ray.get(c.incr.remote())
    ray.kill(c)                      # no_restart=True by default
    with pytest.raises(ActorDiedError):
        ray.get(c.incr.remote(), timeout=20)


def test_kill_rejects_non_actors(ray_start_regular):
    @ray.remote
    def f():
        return 1

    with pytest.raises(ValueError, match="only supported for actors"):
        ray.kill(f.remote())


def test_killed_actor_fails_calls_from_a_task(ray_start_regular):
    @ray.remote
    def call(handle):
        try:
            ray.get(handle.incr.remote())
        except RayActorError as exc:
            return type(exc).__name__
        return "no error"

    c = Counter.remote()
    ray.get(c.incr.remote())
    ray.kill(c)
    assert ray.get(call.remote(c), timeout=30) == "ActorDiedError"


# -------------------------------------------------------------- exit_actor
@ray.remote
class Exiter:
    def __init__(self, marker=None):
        self.marker = marker
        if marker:
            import atexit
            atexit.register(lambda: open(marker, "w").close())

    def ping(self):
        return "pong"

    def pid(self):
        return os.getpid()

    def leave(self):
        ray.actor.exit_actor()
        return "not reached"


def test_exit_actor_ends_the_actor(ray_start_regular):
    e = Exiter.options(max_restarts=2).remote()   # an intended exit is never restarted
    pid = ray.get(e.pid.remote())
    with pytest.raises(RayActorError):
        ray.get(e.leave.remote(), timeout=20)
    assert _wait_until(lambda: not _alive(pid))
    with pytest.raises(ActorDiedError):
        ray.get(e.ping.remote(), timeout=20)


@pytest.mark.parametrize("how", ["exit_actor", "__ray_terminate__"])
def test_graceful_exit_runs_atexit_handlers(ray_start_regular, tmp_path, how):
    marker = str(tmp_path / "atexit-ran")
    e = Exiter.remote(marker)
    pid = ray.get(e.pid.remote())
    if how == "exit_actor":
        e.leave.remote()
    else:
        e.__ray_terminate__.remote()
    assert _wait_until(lambda: not _alive(pid))
    assert os.path.exists(marker)


def test_exit_actor_in_async_actor(ray_start_regular):
    @ray.remote
    class AsyncExiter:
        async def leave(self):
            ray.actor.exit_actor()

        async def ping(self):
            return "pong"

    a = AsyncExiter.remote()
    assert ray.get(a.ping.remote()) == "pong"
    with pytest.raises(RayActorError):
        ray.get(a.leave.remote(), timeout=20)
    with pytest.raises(RayActorError):
        ray.get(a.ping.remote(), timeout=20)


def test_exit_actor_outside_an_actor_raises_type_error(ray_start_regular):
    with pytest.raises(TypeError):
        ray.actor.exit_actor()

    @ray.remote
    def in_task():
        try:
            ray.actor.exit_actor()
        except TypeError:
            return "TypeError"
        return "no error"

    assert ray.get(in_task.remote()) == "TypeError"


# ------------------------------------------------------- failing user code
def test_constructor_error_fails_method_calls(ray_start_regular, tmp_path):
    runs = tmp_path / "constructor-runs"

    @ray.remote(max_restarts=2)
    class Broken:
        def __init__(self, path):
            with open(path, "a") as f:
                f.write("x")
            raise ZeroDivisionError("constructor exploded")

        def ping(self):
            return "pong"

    b = Broken.remote(str(runs))
    with pytest.raises(ActorDiedError) as info:
        ray.get(b.ping.remote(), timeout=30)
    assert "constructor exploded" in str(info.value)
    assert "ZeroDivisionError" in str(info.value)
    with pytest.raises(ActorDiedError):
        ray.get(b.ping.remote(), timeout=30)
    # A constructor error is not a crash: the actor is not restarted.
    time.sleep(0.5)
    assert runs.read_text() == "x"


def test_async_constructor_error_fails_method_calls(ray_start_regular):
    @ray.remote
    class BrokenAsync:
        def __init__(self):
            raise RuntimeError("async actor constructor failed")

        async def ping(self):
            return "pong"

    b = BrokenAsync.remote()
    with pytest.raises(ActorDiedError, match="async actor constructor failed"):
        ray.get(b.ping.remote(), timeout=30)


def test_method_error_is_both_the_original_type_and_ray_task_error(ray_start_regular):
    class MyError(Exception):
        pass

    @ray.remote
    class Faulty:
        def __init__(self):
            self.ok_calls = 0

        def fail(self):
            raise MyError("custom failure")

        def ok(self):
            self.ok_calls += 1
            return self.ok_calls

    f = Faulty.remote()
    with pytest.raises(MyError) as info:
        ray.get(f.fail.remote())
    assert isinstance(info.value, RayTaskError)
    assert "custom failure" in str(info.value)
    assert "Faulty.fail" in str(info.value)
    assert ray.get([f.ok.remote(), f.ok.remote()]) == [1, 2]     # still alive, state kept


def test_method_error_in_async_actor(ray_start_regular):
    @ray.remote
    class AsyncFaulty:
        async def fail(self):
            await asyncio.sleep(0)
            raise IndexError("async failure")

        async def ok(self):
            return "ok"

    a = AsyncFaulty.remote()
    with pytest.raises(IndexError, match="async failure"):
        ray.get(a.fail.remote())
    assert ray.get(a.ok.remote()) == "ok"


def test_method_exiting_the_process_kills_the_actor(ray_start_regular):
    @ray.remote
    class Quitter:
        def quit(self):
            os._exit(3)

        def ping(self):
            return "pong"

    q = Quitter.remote()
    assert ray.get(q.ping.remote()) == "pong"
    with pytest.raises(RayActorError):
        ray.get(q.quit.remote(), timeout=20)
    with pytest.raises(ActorDiedError):
        ray.get(q.ping.remote(), timeout=20)


# ------------------------------------------------------ SIGKILL and restarts
def test_sigkill_without_restarts_kills_the_actor(ray_start_regular):
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(ActorDiedError) as info:
        ray.get(c.incr.remote(), timeout=20)
    assert isinstance(info.value, RayActorError)
    # And it stays dead.
    with pytest.raises(ActorDiedError):
        ray.get(c.incr.remote(), timeout=20)


def test_sigkill_fails_the_running_call(ray_start_regular):
    c = Counter.remote()
    pid = ray.get(c.pid.remote())
    running = c.sleep_then_pid.remote(30)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RayActorError):
        ray.get(running, timeout=20)


def test_sigkill_with_one_restart(ray_start_regular):
    c = Counter.options(max_restarts=1).remote()
    assert ray.get([c.incr.remote(), c.incr.remote()]) == [1, 2]
    pid = ray.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    assert _wait_until(lambda: not _alive(pid))
    # Restarted: a new process, the constructor ran again, the state reset.
    deadline = time.monotonic() + 30
    while True:
        try:
            value = ray.get(c.incr.remote(), timeout=30)
            break
        except RayActorError:   # a call racing the restart may fail; later ones succeed
            assert time.monotonic() < deadline
            time.sleep(0.1)
    assert value == 1
    new_pid = ray.get(c.pid.remote())
    assert new_pid != pid
    assert ray.get(c.reconstructed.remote()) is True
    # The one restart is used up: the next crash is final.
    os.kill(new_pid, signal.SIGKILL)
    assert _wait_until(lambda: not _alive(new_pid))
    with pytest.raises(ActorDiedError):
        ray.get(c.incr.remote(), timeout=20)


def test_infinite_restarts(ray_start_regular):
    c = Counter.options(max_restarts=-1, max_task_retries=-1).remote()
    pids = []
    for _ in range(3):
        pid = ray.get(c.pid.remote(), timeout=30)
        pids.append(pid)
        os.kill(pid, signal.SIGKILL)
        assert _wait_until(lambda: not _alive(pid))
    assert ray.get(c.incr.remote(), timeout=30) == 1
    assert len(set(pids)) == 3


def test_in_flight_call_is_retried_with_max_task_retries(ray_start_regular):
    c = Counter.options(max_restarts=1, max_task_retries=-1).remote()
    pid = ray.get(c.pid.remote())
    running = c.sleep_then_pid.remote(1.0)
    time.sleep(0.3)                      # it is running in the first process now
    os.kill(pid, signal.SIGKILL)
    retried_pid = ray.get(running, timeout=30)
    assert retried_pid != pid            # it ran again, in the restarted actor
    assert ray.get(c.incr.remote(), timeout=30) == 1


def test_in_flight_call_fails_without_task_retries_but_actor_restarts(ray_start_regular):
    c = Counter.options(max_restarts=1).remote()
    pid = ray.get(c.pid.remote())
    running = c.sleep_then_pid.remote(30)
    time.sleep(0.3)
    os.kill(pid, signal.SIGKILL)
    with pytest.raises(RayActorError):
        ray.get(running, timeout=30)
    assert ray.get(c.incr.remote(), timeout=30) == 1
    assert ray.get(c.pid.remote()) != pid


def test_calls_submitted_while_restarting_run_after_restart(ray_start_regular):
    c = Counter.options(max_restarts=1, max_task_retries=-1).remote()
    pid = ray.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    refs = [c.incr.remote() for _ in range(5)]
    assert ray.get(refs, timeout=30) == [1, 2, 3, 4, 5]


def test_named_actor_keeps_its_name_across_restarts(ray_start_regular):
    c = Counter.options(name="test_restarting_named", max_restarts=1,
                        max_task_retries=-1).remote()
    pid = ray.get(c.pid.remote())
    os.kill(pid, signal.SIGKILL)
    assert ray.get(ray.get_actor("test_restarting_named").incr.remote(), timeout=30) == 1
