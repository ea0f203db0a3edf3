"""Fixtures shared by every test tier.

Each fixture starts a fresh runtime and shuts it down afterwards, failing the
test if it leaked child processes (as CPython's futures tests do).
"""
import os
import faulthandler

import psutil
import pytest

import minray

faulthandler.enable()

# A plain init() joins the newest `minray start` node on this machine, as Ray's does. Tests
# start their own runtimes: never join a node some other run left on a shared machine.
# (Tests of joining set RAY_ADDRESS or pass address= themselves; "auto" ignores "local".)
os.environ.setdefault("RAY_ADDRESS", "local")


def _children():
    return {p.pid for p in psutil.Process().children(recursive=True)}


@pytest.fixture
def shutdown_only():
    """For tests that call init() themselves: always shut down afterwards."""
    yield None
    minray.shutdown()


@pytest.fixture
def ray_start_regular():
    """A fresh local runtime with 4 CPUs for one test."""
    if minray.is_initialized():
        minray.shutdown()
    before = _children()
    ctx = minray.init(num_cpus=4)
    yield ctx
    minray.shutdown()
    leaked = _wait_children_gone(before)
    assert not leaked, f"processes left behind after shutdown: {leaked}"


@pytest.fixture(scope="module")
def ray_module():
    """One runtime shared by a module's tests (faster; tests must not kill it)."""
    if minray.is_initialized():
        minray.shutdown()
    ctx = minray.init(num_cpus=4)
    yield ctx
    minray.shutdown()


def _wait_children_gone(before, timeout=10.0):
    import time
    deadline = time.monotonic() + timeout
    while True:
        leaked = _children() - before
        if not leaked or time.monotonic() > deadline:
            return leaked
        time.sleep(0.05)


@pytest.fixture
def ray_init():
    """Factory for tests that need their own ``init()`` arguments: ``ray_init(**kw)``.

    Shuts down a runtime left by an earlier test first (so in a module that also
    uses ``ray_module``, put these tests after the ``ray_module`` ones: pytest runs
    a module's tests in file order), and checks for leaked processes afterwards.
    """
    if minray.is_initialized():
        minray.shutdown()
    before = _children()

    def start(**kwargs):
        return minray.init(**kwargs)
    yield start
    minray.shutdown()
    leaked = _wait_children_gone(before)
    assert not leaked, f"processes left behind after shutdown: {leaked}"
