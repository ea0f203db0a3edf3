"""Memory pressure: the memory monitor kills the newest task's worker, for real.

The node's "memory" is a budget (``memory_monitor_capacity_bytes``: the workers'
resident memory counted against it), so the test crosses the threshold with a
few hundred MiB instead of exhausting the machine; the SIGKILL is real.
"""

import os
import time

import numpy as np
import pytest

import minray as ray
from minray._private.node.memory_monitor import Candidate, MemoryMonitor, pick_victim
from minray.exceptions import OutOfMemoryError

MiB = 1 << 20
BUDGET = {"memory_usage_threshold": 0.5, "memory_monitor_refresh_ms": 50,
          "memory_monitor_capacity_bytes": 1000 * MiB}   # kills above 500 MiB of workers


# -- the policy, without processes -------------------------------------------------

def test_victim_is_the_newest_retriable_task_then_restartable_actors():
    old, new = Candidate("old", False, True, 1.0), Candidate("new", False, True, 2.0)
    last = Candidate("last", False, False, 8.0)       # newest, but no retries left
    actor = Candidate("actor", True, False, 9.0)
    phoenix = Candidate("phoenix", True, True, 5.0)
    assert pick_victim([old, actor, last, new, phoenix]).key == "new"
    assert pick_victim([actor, last, phoenix]).key == "phoenix"
    assert pick_victim([actor, last]).key == "last"
    assert pick_victim([actor]).key == "actor"
    assert pick_victim([]) is None


def test_settings_come_from_system_config_then_ray_variables():
    env = {"RAY_memory_usage_threshold": "0.8", "RAY_memory_monitor_refresh_ms": "0"}
    m = MemoryMonitor.from_config({}, env)
    assert (m.threshold, m.refresh_ms, m.enabled) == (0.8, 0, False)
    m = MemoryMonitor.from_config({"memory_usage_threshold": 0.7}, env)
    assert m.threshold == 0.7
    m = MemoryMonitor.from_config({}, {})
    assert (m.threshold, m.refresh_ms, m.capacity_bytes) == (0.95, 250, None)
    with pytest.raises(ValueError, match="memory_usage_threshold"):
        MemoryMonitor(threshold=1.5)
    used, total = MemoryMonitor().usage([])
    assert 0 < used < total


# -- real kills ----------------------------------------------------------------------

@ray.remote
def hog(nbytes, log, hold_s=20.0, go=None, once=False):
    if once and attempts(log):
        return -1           # its retry, after the kill, needs no memory
    with open(log, "a") as f:
        f.write("x")
    while go and not os.path.exists(go):
        time.sleep(0.01)
    block = np.ones(nbytes, dtype=np.uint8)   # touched: resident for real
    time.sleep(hold_s)
    return int(block[0])


@ray.remote
def steady(log, hold_s=1.5):
    with open(log, "a") as f:
        f.write("s")
    block = np.ones(50 * MiB, dtype=np.uint8)
    time.sleep(hold_s)
    return int(block.sum() // MiB)


def attempts(path, ch="x"):
    try:
        with open(path) as f:
            return f.read().count(ch)
    except FileNotFoundError:
        return 0


@pytest.mark.slow
def test_hog_is_killed_retried_then_out_of_memory_error(ray_init, tmp_path):
    ray_init(num_cpus=2, _system_config=BUDGET)
    log = str(tmp_path / "hog")
    ref = hog.options(max_retries=1).remote(700 * MiB, log)
    start = time.monotonic()
    with pytest.raises(OutOfMemoryError) as info:
        ray.get(ref, timeout=60)
    assert time.monotonic() - start < 20, "the monitor was too slow"
    assert attempts(log) == 2          # the first run and its one retry
    msg = str(info.value)
    assert "memory monitor" in msg and "max_retries" in msg and "MiB used" in msg
    # The driver and the node manager are fine, and small tasks still run.
    assert ray.get(steady.remote(str(tmp_path / "ok")), timeout=30) == 50


@pytest.mark.slow
def test_newest_task_is_the_victim_and_older_work_survives(ray_init, tmp_path):
    ray_init(num_cpus=2, _system_config=BUDGET)
    slog, hlog = str(tmp_path / "steady"), str(tmp_path / "hog")
    older = steady.remote(slog)
    while attempts(slog, "s") == 0:
        time.sleep(0.01)
    newer = hog.options(max_retries=1).remote(700 * MiB, hlog, once=True)
    assert ray.get(newer, timeout=60) == -1    # killed once, then retried
    assert ray.get(older, timeout=30) == 50
    assert attempts(slog, "s") == 1    # never killed, never retried
    assert attempts(hlog) == 1


@pytest.mark.slow
def test_a_task_without_retries_is_spared_while_a_retriable_one_can_go(ray_init, tmp_path):
    ray_init(num_cpus=2, _system_config=BUDGET)
    slog, hlog, go = str(tmp_path / "steady"), str(tmp_path / "hog"), str(tmp_path / "go")
    older = hog.options(max_retries=1).remote(700 * MiB, hlog, go=go)
    while attempts(hlog) == 0:
        time.sleep(0.01)
    newer = steady.options(max_retries=0).remote(slog, 3.0)   # newest, not retriable
    while attempts(slog, "s") == 0:
        time.sleep(0.01)
    open(go, "w").close()                                     # now the hog allocates
    with pytest.raises(OutOfMemoryError):
        ray.get(older, timeout=60)
    assert ray.get(newer, timeout=30) == 50
    assert attempts(slog, "s") == 1
