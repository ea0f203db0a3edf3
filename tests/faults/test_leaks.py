"""No leaks: 100k tasks and 1k actors later, the processes, file descriptors,
/dev/shm segments and table entries are back at their starting level; a
driver killed with SIGKILL takes everything it started with it.
"""

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import psutil
import pytest

import minray as ray

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


def segments(session_dir):
    prefix = "mr" + os.path.basename(session_dir)[-8:] + "_"
    return sorted(n for n in os.listdir("/dev/shm") if n.startswith(prefix))


def snapshot(session_dir):
    nm_pid = int(open(os.path.join(session_dir, "nm.ready")).read())
    nm = psutil.Process(nm_pid)
    client = ray._private.state.current_client()
    stats = client.call("object_stats")
    return {
        "processes": len(nm.children(recursive=True)) + 1,
        "driver_fds": len(os.listdir("/proc/self/fd")),
        "node_manager_fds": nm.num_fds(),
        "segments": len(segments(session_dir)),
        "directory_objects": stats["num_objects"],
        "owned_objects": len(client.objects),
        "tasks": len(client.tasks),
        "lineage": len(client.lineage),
    }


@ray.remote
def echo(i):
    if i % 500 == 0:
        return np.full(200_000, i % 251, dtype=np.uint8)   # a store object now and then
    return i


@ray.remote
class Counter:
    def __init__(self):
        self.n = 0

    def add(self, k):
        self.n += k
        return self.n


def workload(num_tasks, num_actors):
    for start in range(0, num_tasks, 10_000):
        n = min(10_000, num_tasks - start)
        out = ray.get([echo.remote(start + i) for i in range(n)])
        assert out[1] == start + 1
        del out
    for _ in range(0, num_actors, 50):
        actors = [Counter.remote() for _ in range(50)]
        assert ray.get([a.add.remote(2) for a in actors]) == [2] * 50
        killed, dropped = actors[:25], actors[25:]
        for a in killed:
            ray.kill(a)
        del actors, killed, dropped   # the rest end when their last handle goes


def test_100k_tasks_and_1k_actors_leave_nothing_behind(ray_init):
    session = ray_init(num_cpus=2)["session_dir"]
    workload(2_000, 100)          # warm up: pools and caches at their working size
    time.sleep(1.0)
    before = snapshot(session)
    start = time.monotonic()
    workload(100_000, 1_000)
    elapsed = time.monotonic() - start

    def settled():
        now = snapshot(session)
        return all(now[k] <= before[k] for k in before) and now
    after = wait_until(settled, timeout=20, interval=0.2)
    print("before", before, "\nafter ", after, f"\nwork {elapsed:.1f}s")
    assert after, (f"not back to the starting level after {elapsed:.0f}s of work:\n"
                   f"before {before}\nafter  {snapshot(session)}")


DRIVER = textwrap.dedent("""
    import json, os, sys, time
    import numpy as np
    import minray as ray
    spill = sys.argv[1]
    ctx = ray.init(num_cpus=2, object_store_memory=8 << 20, _system_config={
        "object_spilling_config": json.dumps(
            {"type": "filesystem", "params": {"directory_path": spill}})})

    @ray.remote
    class Holder:
        def pid(self):
            return os.getpid()

    @ray.remote
    def sleeper():
        time.sleep(300)

    actors = [Holder.remote() for _ in range(3)]
    ray.get([a.pid.remote() for a in actors])
    refs = [ray.put(np.full(3 << 20, i, dtype=np.uint8)) for i in range(5)]  # spills
    running = [sleeper.remote() for _ in range(2)]
    time.sleep(0.5)
    print(ctx["session_dir"], flush=True)
    time.sleep(300)
""")


def test_driver_sigkill_takes_actors_workers_segments_and_spill_files(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER)
    spill = tmp_path / "spill"
    spill.mkdir()
    proc = subprocess.Popen([sys.executable, str(script), str(spill)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=tmp_path)
    session = None
    pids = []
    try:
        session = proc.stdout.readline().decode().strip()
        assert session, proc.stderr.read().decode()[-3000:]
        nm = psutil.Process(int(open(os.path.join(session, "nm.ready")).read()))
        pids = [nm.pid] + [c.pid for c in nm.children(recursive=True)]
        assert len(pids) >= 6, pids    # node manager, zygote, 3 actors, 2 sleepers
        assert segments(session) and any(spill.iterdir())
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        start = time.monotonic()

        def gone():
            alive = [p for p in pids if psutil.pid_exists(p) and
                     psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            return not alive and not segments(session) and not any(spill.iterdir())
        assert wait_until(gone, timeout=10), "the killed driver's runtime lingers"
        assert time.monotonic() - start < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        for p in pids:
            try:
                os.kill(p, signal.SIGKILL)
            except ProcessLookupError:
                pass
