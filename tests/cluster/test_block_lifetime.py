"""`minray start --block`: the node lives exactly as long as that process (as
`ray start --block`), and a failed start leaves nothing behind (issue 13).

A supervisor (or a test) that SIGKILLs the foreground process group must find
no node manager, zygote, worker, job server, port or /dev/shm segment of that
node left, and the head reporting the node dead.
"""

import os
import signal
import socket
import subprocess
import sys

import numpy as np
import psutil
import pytest

import minray as ray

sys.path.insert(0, os.path.dirname(__file__))
from cluster_utils import Cluster  # noqa: E402
from helpers import wait_until  # noqa: E402

pytestmark = pytest.mark.slow


def _tree(pid):
    try:
        root = psutil.Process(pid)
        return [root] + root.children(recursive=True)
    except psutil.NoSuchProcess:
        return []


def _alive(procs):
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p.pid)
        except psutil.NoSuchProcess:
            pass
    return out


def _port_free(ip, port):
    """Nobody listens on ip:port (SO_REUSEADDR: connections the dead node closed may
    linger in TIME_WAIT, which is the kernel's, not a leak)."""
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((ip, port))
            s.listen()
            return True
        except OSError:
            return False


def test_sigkill_of_a_blocking_nodes_process_group_leaves_nothing(tmp_path):
    c = Cluster(tmp_path)
    try:
        c.start_head(num_cpus=1)
        victim = c.add_node("127.0.0.2", num_cpus=1, resources={"victim": 1})
        ray.init(address=c.address, _temp_dir=c.head.temp_dir)
        c.wait_for_nodes(ray, 2)

        @ray.remote(resources={"victim": 1}, num_cpus=0)
        class Holder:
            def hold(self):
                # A large object on the victim's own store: a /dev/shm segment.
                self.ref = ray.put(np.ones(1 << 20))
                return ray.get_runtime_context().get_node_id()

        holder = Holder.remote()
        victim_id = ray.get(holder.hold.remote(), timeout=60)
        prefix = "mr" + os.path.basename(victim.session_dir)[-8:] + "_"
        assert wait_until(lambda: any(n.startswith(prefix) for n in os.listdir("/dev/shm")))
        port = victim.info()["port"]
        procs = _tree(victim.proc.pid)
        nm_pid = victim.nm_pid
        assert nm_pid in {p.pid for p in procs} and len(procs) >= 3   # start, nm, zygote...

        os.killpg(victim.proc.pid, signal.SIGKILL)   # as a supervisor stops a unit
        victim.proc.wait(timeout=10)

        assert wait_until(lambda: not _alive(procs), timeout=15), _alive(procs)
        assert wait_until(lambda: not any(n.startswith(prefix)
                                          for n in os.listdir("/dev/shm")), timeout=10)
        assert wait_until(lambda: _port_free("127.0.0.2", port), timeout=5)
        assert wait_until(lambda: [n["Alive"] for n in ray.nodes()
                                   if n["NodeID"] == victim_id] == [False], timeout=15), \
            ray.nodes()
    finally:
        ray.shutdown()
        c.shutdown()


def _start(tmp_path, *args, env=None):
    return subprocess.run([sys.executable, "-m", "minray.scripts", "start", *args,
                           "--temp-dir", str(tmp_path), "--include-dashboard", "false"],
                          capture_output=True, text=True, timeout=60, env=env)


def test_a_port_in_use_fails_in_one_line_and_leaves_no_session(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        out = _start(tmp_path, "--head", "--port", str(port), "--node-ip-address",
                     "127.0.0.1")
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "--port" in lines[0] and str(port) in lines[0], out.stderr
    assert os.listdir(tmp_path) == []


def test_a_wrong_token_fails_and_leaves_no_session(tmp_path):
    c = Cluster(tmp_path / "c")
    try:
        c.start_head(num_cpus=1)
        env = dict(os.environ, MINRAY_CLUSTER_TOKEN="not-the-token")
        out = _start(tmp_path / "n", "--address", c.address, "--node-ip-address",
                     "127.0.0.3", env=env)
        assert out.returncode != 0
        lines = out.stderr.strip().splitlines()
        assert len(lines) == 1 and "token" in lines[0], out.stderr
        assert os.listdir(tmp_path / "n") == []
    finally:
        c.shutdown()
