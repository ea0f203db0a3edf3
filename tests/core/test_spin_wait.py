"""Busy-polling before blocking (net/spin.py) in real processes: synchronous
calls keep working with it on and off, an idle worker stops spinning, and a bad
MINRAY_SPIN_US is refused with a clear error."""

import os
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import minray as ray


@ray.remote
class Echo:
    def f(self, x=None):
        return x

    def pid(self):
        return os.getpid()

    def spin_budget(self):
        from minray._private.worker.main import current_server
        return current_server().loop.sel.spin_s


def test_an_idle_worker_stops_spinning(ray_module):
    a = Echo.remote()
    pid = ray.get(a.pid.remote())
    for i in range(2000):   # a synchronous burst: the worker's gate is open
        assert ray.get(a.f.remote(i)) == i
    proc = psutil.Process(pid)
    before = sum(proc.cpu_times()[:2])
    time.sleep(1.0)   # the measurement window: what a second of idling costs it
    spent = sum(proc.cpu_times()[:2]) - before
    assert spent < 0.1, f"an idle worker used {spent:.3f} s of CPU in 1 s"


def test_sync_tasks_and_calls_with_spinning(ray_module):
    @ray.remote
    def g(x):
        return x * 2
    assert [ray.get(g.remote(i)) for i in range(300)] == [i * 2 for i in range(300)]
    a = Echo.remote()
    assert ray.get(a.spin_budget.remote()) > 0
    # A wait with a timeout shorter than a slow call still times out.
    @ray.remote
    def slow():
        time.sleep(0.5)
        return 1
    ref = slow.remote()
    with pytest.raises(ray.exceptions.GetTimeoutError):
        ray.get(ref, timeout=0.05)
    assert ray.get(ref) == 1


def _driver(code, env):
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code)], env=env,
                          capture_output=True, text=True, timeout=120)


def test_spinning_off_with_zero():
    env = dict(os.environ, MINRAY_SPIN_US="0")
    out = _driver("""
        import minray as ray
        ray.init(num_cpus=1)
        @ray.remote
        class A:
            def budget(self):
                from minray._private.worker.main import current_server
                return current_server().loop.sel.spin_s
            def f(self, i):
                return i
        a = A.remote()
        assert [ray.get(a.f.remote(i)) for i in range(200)] == list(range(200))
        print("budget", ray.get(a.budget.remote()))
        ray.shutdown()
    """, env)
    assert out.returncode == 0, out.stderr
    assert "budget 0.0" in out.stdout


def test_a_bad_spin_budget_is_refused():
    env = dict(os.environ, MINRAY_SPIN_US="fast")
    out = _driver("import minray as ray; ray.init(num_cpus=1)", env)
    assert out.returncode != 0
    assert "MINRAY_SPIN_US must be a whole number of microseconds" in out.stderr


def test_async_and_threaded_actors_block_at_once(ray_module):
    """Their calls run on other threads, which need the GIL a spinning loop takes."""
    @ray.remote
    class Async:
        async def budget(self):
            from minray._private.worker.main import current_server
            return current_server().loop.sel.spin_s

    @ray.remote(max_concurrency=4)
    class Threaded:
        def budget(self):
            from minray._private.worker.main import current_server
            return current_server().loop.sel.spin_s
    assert ray.get(Async.remote().budget.remote()) == 0.0
    assert ray.get(Threaded.remote().budget.remote()) == 0.0
    assert ray.get(Echo.remote().spin_budget.remote()) > 0
