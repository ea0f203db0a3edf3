"""Real clusters for tests: a head and nodes, each its own process tree.

Every node is started the way a user starts one (`minray start ... --block`, in
a new session), on its own loopback address (127.0.0.1 for the head, 127.0.0.2,
127.0.0.3 ... for the others: Linux routes all of 127/8 to loopback), with its
own temp dir under the test's tmp_path. `Cluster.kill_node` SIGKILLs a node's
node manager the way a crashed machine would vanish; `shutdown` stops the rest
and checks that no process of theirs is left.
"""

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time

import psutil


def free_port(host="127.0.0.1"):
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class Node:
    def __init__(self, proc, temp_dir, ip):
        self.proc = proc          # the `minray start --block` process
        self.temp_dir = temp_dir
        self.ip = ip

    @property
    def session_dir(self):
        (name,) = [n for n in os.listdir(self.temp_dir) if n.startswith("s")]
        return os.path.join(self.temp_dir, name)

    def info(self):
        with open(os.path.join(self.session_dir, "cluster.json")) as f:
            return json.load(f)

    @property
    def nm_pid(self):
        with open(os.path.join(self.session_dir, "nm.ready")) as f:
            return int(f.read())

    def log(self):
        with open(os.path.join(self.session_dir, "logs", "node_manager.log")) as f:
            return f.read()


class Cluster:
    def __init__(self, tmp_path):
        self.tmp_path = tmp_path
        self.nodes = []
        self.port = free_port()
        self.token = None

    @property
    def address(self):
        return f"127.0.0.1:{self.port}"

    @property
    def head(self):
        return self.nodes[0]

    def _start(self, args, ip, env=None):
        temp_dir = str(self.tmp_path / f"node-{len(self.nodes)}")
        cmd = [sys.executable, "-m", "minray.scripts", "start", "--block",
               "--temp-dir", temp_dir, "--node-ip-address", ip, "--dashboard-port",
               str(free_port()), "--object-store-memory", str(256 << 20), *args]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
        node = Node(proc, temp_dir, ip)
        deadline = time.monotonic() + 30
        while True:
            try:
                if os.path.exists(os.path.join(node.session_dir, "cluster.json")):
                    break
            except (FileNotFoundError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                out = proc.stdout.read().decode() if proc.poll() is not None else ""
                proc.kill()
                raise RuntimeError(f"node {ip} did not start: {out}")
            time.sleep(0.05)
        self.nodes.append(node)
        return node

    def start_head(self, num_cpus=1, resources=None, env=None):
        args = ["--head", "--port", str(self.port), "--num-cpus", str(num_cpus)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        node = self._start(args, "127.0.0.1",
                           env=dict(os.environ, **env) if env else None)
        with open(os.path.join(node.session_dir, "cluster_token")) as f:
            self.token = f.read().strip()
        return node

    def add_node(self, ip, num_cpus=1, resources=None, token=None):
        args = ["--address", self.address, "--num-cpus", str(num_cpus)]
        if resources:
            args += ["--resources", json.dumps(resources)]
        env = dict(os.environ, MINRAY_CLUSTER_TOKEN=token or self.token)
        node = self._start(args, ip, env=env)
        return node

    def wait_for_nodes(self, ray, count, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            alive = [n for n in ray.nodes() if n["Alive"]]
            if len(alive) == count:
                return alive
            time.sleep(0.1)
        raise AssertionError(f"expected {count} live nodes, have {ray.nodes()}")

    def kill_node(self, node):
        """SIGKILL the node manager (its workers die with it), as if the host vanished."""
        os.kill(node.nm_pid, signal.SIGKILL)
        node.proc.wait(timeout=10)

    def shutdown(self):
        pids = set()
        for node in self.nodes:
            try:
                pids |= {p.pid for p in psutil.Process(node.proc.pid).children(recursive=True)}
            except psutil.NoSuchProcess:
                pass
            if node.proc.poll() is None:
                node.proc.send_signal(signal.SIGTERM)
        for node in self.nodes:
            try:
                node.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                node.proc.kill()
            node.proc.stdout.close()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            left = [p for p in pids if psutil.pid_exists(p) and
                    psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
            if not left:
                return
            time.sleep(0.1)
        raise AssertionError(f"processes of the cluster left behind: {left}")


@contextlib.contextmanager
def connected_cluster(ray, tmp_path, nodes, head_cpus=1):
    """A head plus ``nodes`` ([(ip, add_node kwargs)]), with this process's driver
    connected to it; shut down (driver first) on exit. For module fixtures."""
    if ray.is_initialized():
        ray.shutdown()
    c = Cluster(tmp_path)
    try:
        c.start_head(num_cpus=head_cpus)
        for ip, kwargs in nodes:
            c.add_node(ip, **kwargs)
        ray.init(address=c.address, _temp_dir=c.head.temp_dir)
        c.wait_for_nodes(ray, 1 + len(nodes))
        yield c
    finally:
        ray.shutdown()
        c.shutdown()
