"""Processes that stop, lose their sockets, or die: SIGSTOP, closed sockets and a
SIGKILLed node manager. (SIGKILL of workers and actors mid-task is in
tests/core/test_processes.py and tests/core/test_actor_failures.py.)
"""

import os
import signal
import socket
import sys
import time

import psutil
import pytest

import minray as ray
from minray.exceptions import (ActorDiedError, GetTimeoutError, RaySystemError,
                               TaskCancelledError, WorkerCrashedError)

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


def wait_file(path, timeout=30):
    deadline = time.monotonic() + timeout
    while not os.path.exists(path):
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)
    return int(open(path).read() or 0)


@ray.remote
def stoppable(marker, seconds=1.0):
    with open(marker + ".tmp", "w") as f:
        f.write(str(os.getpid()))
    os.replace(marker + ".tmp", marker)
    time.sleep(seconds)
    return "done"


@ray.remote
def quick(i):
    return i + 1


def test_sigstopped_worker_stalls_only_its_task(ray_start_regular, tmp_path):
    marker = str(tmp_path / "pid")
    ref = stoppable.remote(marker, 1.0)
    pid = wait_file(marker)
    os.kill(pid, signal.SIGSTOP)
    try:
        # The node manager and the other workers go on; the stopped task just waits.
        assert ray.get([quick.remote(i) for i in range(50)], timeout=30) == \
            list(range(1, 51))
        with pytest.raises(GetTimeoutError):
            ray.get(ref, timeout=1.5)
    finally:
        os.kill(pid, signal.SIGCONT)
    assert ray.get(ref, timeout=30) == "done"   # resumed, it finishes normally


def test_sigstopped_worker_can_be_force_cancelled(ray_start_regular, tmp_path):
    marker = str(tmp_path / "pid")
    ref = stoppable.remote(marker, 60.0)
    pid = wait_file(marker)
    os.kill(pid, signal.SIGSTOP)
    ray.cancel(ref, force=True)
    with pytest.raises(TaskCancelledError):
        ray.get(ref, timeout=30)

    def gone():
        try:
            return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
        except psutil.NoSuchProcess:
            return True
    assert wait_until(gone, timeout=10)


@ray.remote
class Sleepy:
    def pid(self):
        return os.getpid()

    def nap(self, s):
        time.sleep(s)
        return s


def test_sigstopped_actor_can_be_killed(ray_start_regular):
    a = Sleepy.remote()
    pid = ray.get(a.pid.remote())
    os.kill(pid, signal.SIGSTOP)
    pending = a.nap.remote(0)
    with pytest.raises(GetTimeoutError):
        ray.get(pending, timeout=1)
    ray.kill(a)
    with pytest.raises(ActorDiedError):
        ray.get(pending, timeout=30)


@ray.remote
def drop_node_manager_socket(marker):
    """The first run closes its own connection to the node manager."""
    if not os.path.exists(marker):
        open(marker, "w").close()
        client = ray._private.state.current_client()
        client.nm.sock.shutdown(socket.SHUT_RDWR)
        time.sleep(30)   # the worker exits when it sees the socket closed
    return "second run"


def test_worker_that_loses_its_node_manager_socket_is_retried(ray_start_regular, tmp_path):
    marker = str(tmp_path / "ran")
    assert ray.get(drop_node_manager_socket.remote(marker), timeout=60) == "second run"
    marker2 = str(tmp_path / "ran2")
    with pytest.raises(WorkerCrashedError):
        ray.get(drop_node_manager_socket.options(max_retries=0).remote(marker2), timeout=60)


def test_closed_task_socket_retries_the_task(ray_start_regular, tmp_path):
    """The driver's socket to a worker is cut (as by a peer reset): the task reruns."""
    marker = str(tmp_path / "pid")
    ref = stoppable.remote(marker, 2.0)
    wait_file(marker)
    client = ray._private.state.current_client()
    [w] = [w for q in client.queues.values() for w in q.workers if w.inflight]
    w.conn.sock.shutdown(socket.SHUT_RDWR)
    assert ray.get(ref, timeout=60) == "done"


def test_node_manager_sigkill_fails_pending_work_instead_of_hanging(ray_init, tmp_path):
    ctx = ray_init(num_cpus=2)
    session = ctx["session_dir"]
    a = Sleepy.remote()
    ray.get(a.pid.remote())
    marker = str(tmp_path / "pid")
    task = stoppable.remote(marker, 60.0)
    call = a.nap.remote(60)
    wait_file(marker)
    nm_pid = int(open(os.path.join(session, "nm.ready")).read())
    os.kill(nm_pid, signal.SIGKILL)
    start = time.monotonic()
    with pytest.raises(RaySystemError, match="node manager"):
        ray.get(task, timeout=30)
    with pytest.raises(RaySystemError):
        ray.get(call, timeout=30)
    with pytest.raises(RaySystemError):
        ray.get(quick.remote(1), timeout=30)      # new work fails at once too
    assert time.monotonic() - start < 10
    ray.shutdown()
    prefix = "mr" + os.path.basename(session)[-8:] + "_"
    assert not [n for n in os.listdir("/dev/shm") if n.startswith(prefix)]
