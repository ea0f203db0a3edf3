"""Core I: real processes dying — workers killed mid-task, crashing tasks, a driver
killed with SIGKILL, and shutdown — and what the user and the machine see after.

Crash table (as loky's test_reusable_executor does): a worker dies by an
outside SIGKILL, ``os._exit``, SIGSEGV or its own SIGKILL, and the task is
retried (``max_retries``, default 3) or fails with ``WorkerCrashedError``.
A killed driver takes its node manager, workers and shared memory with it.
"""

import os
import select
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import psutil
import pytest

import minray as ray
from helpers import count_lines, touch, wait_for_path
from minray.exceptions import WorkerCrashedError


# ----------------------------------------------------------------- helpers


def gone(pid):
    """True once ``pid`` has exited (a zombie nobody reaped yet counts as gone)."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def wait_all_gone(pids, timeout=10.0):
    deadline = time.monotonic() + timeout
    while True:
        alive = [p for p in pids if not gone(p)]
        if not alive or time.monotonic() > deadline:
            return alive
        time.sleep(0.05)


def session_segments(session_dir):
    # NodeManager.segment_prefix: "mr" + last 8 characters of the session dir's name.
    prefix = "mr" + os.path.basename(session_dir)[-8:] + "_"
    return {n for n in os.listdir("/dev/shm") if n.startswith(prefix)}


def node_manager_pid(session_dir):
    with open(os.path.join(session_dir, "nm.ready")) as f:
        return int(f.read().strip())


def runtime_pids(session_dir):
    nm = psutil.Process(node_manager_pid(session_dir))
    return [nm.pid] + [c.pid for c in nm.children(recursive=True)]


# ------------------------------------------------------ worker killed mid-task
def test_worker_sigkill_mid_task_is_retried(ray_start_regular, tmp_path):
    marker = str(tmp_path / "first-attempt")

    @ray.remote   # default max_retries=3
    def task(marker):
        if not os.path.exists(marker):
            touch(marker, str(os.getpid()))
            time.sleep(60)
            return "first attempt finished", os.getpid()
        return "retried", os.getpid()

    ref = task.remote(marker)
    wait_for_path(marker)
    victim = int(open(marker).read())
    os.kill(victim, signal.SIGKILL)
    status, pid = ray.get(ref, timeout=30)
    assert status == "retried"
    assert pid != victim
    assert gone(victim)


def test_worker_sigkill_without_retries_raises_worker_crashed(ray_start_regular, tmp_path):
    marker = str(tmp_path / "started")

    @ray.remote(max_retries=0)
    def task(marker):
        touch(marker, str(os.getpid()))
        time.sleep(60)

    ref = task.remote(marker)
    wait_for_path(marker)
    os.kill(int(open(marker).read()), signal.SIGKILL)
    with pytest.raises(WorkerCrashedError):
        ray.get(ref, timeout=30)
    # The node replaces the worker: new tasks run.
    assert ray.get([ray.remote(lambda i: i).remote(i) for i in range(4)], timeout=30) == \
        [0, 1, 2, 3]


def _crash(how):
    import resource
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))   # no core files in the cwd
    if how == "exit":
        os._exit(3)
    elif how == "segv":
        os.kill(os.getpid(), signal.SIGSEGV)
    else:
        os.kill(os.getpid(), signal.SIGKILL)
    time.sleep(10)


@pytest.mark.parametrize("how", ["exit", "segv", "sigkill"])
def test_crashing_task_fails_after_its_retries(ray_start_regular, tmp_path, how):
    log = str(tmp_path / "attempts")

    @ray.remote
    def crashes(log, how):
        with open(log, "a") as f:
            f.write(f"{os.getpid()}\n")
        _crash(how)

    with pytest.raises(WorkerCrashedError):
        ray.get(crashes.options(max_retries=0).remote(log, how), timeout=30)
    assert count_lines(log) == 1

    log2 = str(tmp_path / "attempts2")
    with pytest.raises(WorkerCrashedError):
        ray.get(crashes.options(max_retries=2).remote(log2, how), timeout=30)
    assert count_lines(log2) == 3       # 1 try + 2 retries, each in a new worker
    assert len(set(open(log2).read().split())) == 3


@pytest.mark.parametrize("how", ["exit", "segv"])
def test_task_crashing_once_is_retried(ray_start_regular, tmp_path, how):
    marker = str(tmp_path / "crashed-once")

    @ray.remote(max_retries=1)
    def flaky(marker, how):
        if not os.path.exists(marker):
            touch(marker, "x")
            _crash(how)
        return "recovered"

    assert ray.get(flaky.remote(marker, how), timeout=30) == "recovered"


def test_worker_killed_with_several_tasks_in_flight(ray_start_regular, tmp_path):
    """Every task sent to a worker that dies is retried, not only the running one."""
    marker = str(tmp_path / "slow-started")

    @ray.remote
    def work(i, marker=None):
        if marker is not None and not os.path.exists(marker):
            touch(marker, str(os.getpid()))
            time.sleep(60)
        return i

    for _ in range(30):             # measured as short: queued several per worker
        ray.get(work.remote(0), timeout=30)
    slow = work.remote(-1, marker)
    refs = [work.remote(i) for i in range(200)]
    wait_for_path(marker)
    os.kill(int(open(marker).read()), signal.SIGKILL)
    assert ray.get(slow, timeout=30) == -1
    assert ray.get(refs, timeout=30) == list(range(200))


def test_idle_worker_killed_between_tasks(ray_start_regular):
    @ray.remote
    def pid():
        return os.getpid()

    victims = set(ray.get([pid.remote() for _ in range(4)]))
    for p in victims:
        os.kill(p, signal.SIGKILL)
    assert not wait_all_gone(victims)
    results = ray.get([pid.remote() for _ in range(8)], timeout=30)
    assert len(results) == 8 and not (set(results) & victims)


# ------------------------------------------------------------ driver killed
DRIVER_SCRIPT = textwrap.dedent("""
    import os
    import sys
    import time

    import numpy as np
    import minray as ray

    d = sys.argv[1]
    ctx = ray.init(num_cpus=4)

    @ray.remote
    def sleeper(i, d):
        open(os.path.join(d, f"started-{i}"), "w").close()
        time.sleep(300)

    @ray.remote
    def make():
        return np.ones(500_000)

    refs = [sleeper.remote(i, d) for i in range(2)]
    big = ray.put(np.ones(1_000_000))
    made = make.remote()
    ray.wait([made], timeout=60)
    while not all(os.path.exists(os.path.join(d, f"started-{i}")) for i in range(2)):
        time.sleep(0.01)
    nm_pid = int(open(os.path.join(ctx["session_dir"], "nm.ready")).read())
    print(nm_pid, ctx["session_dir"], flush=True)
    time.sleep(300)
""")


def _read_line(proc, timeout):
    deadline = time.monotonic() + timeout
    buf = b""
    fd = proc.stdout.fileno()
    while b"\n" not in buf:
        left = deadline - time.monotonic()
        if left <= 0 or proc.poll() is not None:
            break
        r, _, _ = select.select([fd], [], [], left)
        if r:
            chunk = os.read(fd, 4096)
            if not chunk:
                break
            buf += chunk
    return buf.decode().split("\n")[0]


def test_driver_sigkill_cleans_up_its_runtime(tmp_path):
    script = tmp_path / "driver.py"
    script.write_text(DRIVER_SCRIPT)
    proc = subprocess.Popen([sys.executable, str(script), str(tmp_path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            cwd=str(tmp_path))
    pids, session_dir = [], None
    try:
        line = _read_line(proc, timeout=60)
        if not line:
            proc.kill()
            _, err = proc.communicate(timeout=10)
            raise AssertionError(f"the driver printed nothing; its stderr:\n{err.decode()}")
        nm_pid, session_dir = line.split()
        nm_pid = int(nm_pid)
        pids = runtime_pids(session_dir)
        # node manager, worker template and the two sleeping workers at least
        assert nm_pid in pids and len(pids) >= 4, pids
        assert len(session_segments(session_dir)) >= 2

        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)

        alive = wait_all_gone(pids, timeout=10)
        assert not alive, f"still running after the driver died: {alive}"
        deadline = time.monotonic() + 5
        while session_segments(session_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert session_segments(session_dir) == set()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        for p in pids:
            if not gone(p):
                os.kill(p, signal.SIGKILL)
        if session_dir:
            shutil.rmtree(session_dir, ignore_errors=True)


# ------------------------------------------------------------------ shutdown
def test_shutdown_stops_every_process_and_segment(ray_init):
    ctx = ray_init(num_cpus=2)
    session_dir = ctx["session_dir"]

    @ray.remote
    def work(i):
        import numpy as np
        return np.full(200_000, i)

    refs = [work.remote(i) for i in range(4)]
    refs.append(ray.put(b"x" * 500_000))
    ray.get(refs)
    pids = runtime_pids(session_dir)
    assert len(pids) >= 3       # node manager, worker template, a worker
    assert session_segments(session_dir)

    ray.shutdown()
    assert not ray.is_initialized()
    assert not wait_all_gone(pids, timeout=10)
    assert session_segments(session_dir) == set()
    assert not os.path.exists(session_dir)
    assert not (set(pids) & {c.pid for c in psutil.Process().children(recursive=True)})


def test_init_again_after_shutdown(ray_init):
    first = ray_init(num_cpus=1)
    assert ray.get(ray.remote(lambda: 1).remote()) == 1
    ray.shutdown()
    second = ray_init(num_cpus=2)
    assert second["session_dir"] != first["session_dir"]
    assert ray.cluster_resources()["CPU"] == 2.0
    assert ray.get(ray.remote(lambda: 2).remote()) == 2
